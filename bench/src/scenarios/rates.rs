//! Scenario (b), sustained load: 270 B ICE candidates between many pairs, both directions.
//!
//! - **Open loop** at a fixed rate, on fixed 1 ms ticks: each tick releases the signals that
//!   came due in it (signal j is due at `start + j / rate`), stamped with the tick's *scheduled*
//!   time, so latency counts from when a signal should have left, not from when a busy generator
//!   got round to it (no coordinated omission). A dedicated thread keeps the ticks.
//! - **Closed loop**: each direction keeps a fixed number of undelivered candidates in flight;
//!   every arrival at the receiver immediately sends the direction's next one (a semaphore of
//!   that many permits, released by the receiver, without a task in between). Its delivered
//!   rate is the peak the system sustains.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;

use super::{connect_pairs, Context, Role};
use crate::client::{close_all, ClientEventCounts, ClientEvents, Inbox, Outbox};
use crate::clock::BenchClock;
use crate::measure::delivery::{DeliveryCheck, Lanes};
use crate::measure::latency::{LatencyRecorder, LatencySummary};
use crate::measure::process::{CpuMeter, CpuUsage};
use crate::servers::{Server, ServerName, Transport};
use crate::signal::{Arrival, Outgoing, Route, SignalKind};

/// How often the open-loop scheduler releases the signals that have come due.
/// The open-loop schedule's tick: every tick releases the signals that came due in it.
const SCHEDULER_TICK: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Load {
    /// Signals per second, in total over all directions.
    Open { rate: u32 },
    /// Undelivered signals kept in flight per direction.
    Closed { in_flight: u32 },
}

#[derive(Debug, Clone, Copy)]
pub struct RatePlan {
    pub load: Load,
    pub pairs: usize,
    pub duration: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct RateResult {
    pub server: ServerName,
    pub load: Load,
    pub pairs: usize,
    pub duration_seconds: f64,
    /// Open loop: signals per second actually released (the target if the bench kept up).
    pub achieved_send_rate: f64,
    /// Open loop: the furthest the bench fell behind its schedule.
    pub max_schedule_lag_ms: f64,
    /// Signals per second delivered: in the window (closed loop), or until the drain (open).
    pub delivered_per_second: f64,
    pub latency: LatencySummary,
    pub check: DeliveryCheck,
    pub events: ClientEventCounts,
    /// Open loop: start → everything delivered; closed loop: the load window.
    pub cpu: CpuUsage,
    pub server_cpu_us_per_signal: Option<f64>,
    pub generator_cpu_us_per_signal: Option<f64>,
}

/// Lane 2i is pair i's caller → callee, lane 2i + 1 the other way.
struct Flow {
    clock: BenchClock,
    lanes: Lanes,
    latency: LatencyRecorder,
    /// Per lane: the sending client's outbox and the route to the receiver.
    senders: OnceLock<Vec<(Outbox, Route)>>,
    /// Closed loop: arrivals before this time (ns) send the lane's next signal; 0 = never.
    refill_until: AtomicU64,
    delivered_in_window: AtomicU64,
}

impl Flow {
    fn send(&self, lane: usize, t: u64) {
        if let Some(senders) = self.senders.get() {
            let (outbox, route) = &senders[lane];
            outbox.send(Outgoing {
                route: route.clone(),
                kind: SignalKind::Ice,
                mark: self.lanes.mark(lane, t),
            });
        }
    }
}

struct FlowInbox(Arc<Flow>);

impl Inbox for FlowInbox {
    fn arrived(&mut self, arrival: Arrival) {
        let flow = &self.0;
        let Some((lane, _)) = flow.lanes.observe(&arrival.mark) else {
            return;
        };
        flow.latency
            .record(lane, arrival.received_at.saturating_sub(arrival.mark.t));
        if arrival.received_at < flow.refill_until.load(Ordering::Relaxed) {
            flow.delivered_in_window.fetch_add(1, Ordering::Relaxed);
            flow.send(lane, arrival.received_at);
        }
    }
}

pub async fn run(server: &Server, plan: RatePlan, context: &Context) -> anyhow::Result<RateResult> {
    let pairs = server.pairs(plan.pairs)?;
    let flow = Arc::new(Flow {
        clock: context.clock,
        lanes: Lanes::new(&context.keys, 2 * plan.pairs),
        latency: LatencyRecorder::default(),
        senders: OnceLock::new(),
        refill_until: AtomicU64::new(0),
        delivered_in_window: AtomicU64::new(0),
    });
    let events = Arc::new(ClientEvents::default());
    let connected = connect_pairs(
        server,
        &pairs,
        Transport::WebSocket,
        &events,
        &context.progress,
        |_, _: Role, _| Box::new(FlowInbox(flow.clone())),
    )
    .await?;
    let senders = connected
        .iter()
        .zip(&pairs)
        .flat_map(|(ends, pair)| {
            [
                (ends.caller.outbox().clone(), pair.to_callee.clone()),
                (ends.callee.outbox().clone(), pair.to_caller.clone()),
            ]
        })
        .collect();
    let _ = flow.senders.set(senders);

    let result = match plan.load {
        Load::Open { rate } => open_loop(server, &flow, rate, plan, context).await?,
        Load::Closed { in_flight } => closed_loop(server, &flow, in_flight, plan, context).await?,
    };
    close_all(
        connected
            .into_iter()
            .flat_map(|pair| [pair.caller, pair.callee])
            .collect(),
    )
    .await;
    let check = flow.lanes.check();
    if check.lost > 0 {
        server.discard_backlog(&pairs).await;
    }
    Ok(RateResult {
        server: server.name(),
        load: plan.load,
        pairs: plan.pairs,
        latency: flow.latency.summary(),
        check,
        events: events.counts(),
        ..result
    })
}

async fn open_loop(
    server: &Server,
    flow: &Arc<Flow>,
    rate: u32,
    plan: RatePlan,
    context: &Context,
) -> anyhow::Result<RateResult> {
    let total = (f64::from(rate) * plan.duration.as_secs_f64()).round() as u64;
    let label = format!("{}: open loop {rate}/s", server.name());
    let bar = context.progress.bar(&label, plan.duration.as_secs().max(1));
    let meter = CpuMeter::start(server.probe())?;
    let scheduler = {
        let flow = flow.clone();
        let bar = bar.clone();
        tokio::task::spawn_blocking(move || schedule(&flow, rate, total, &bar))
    };
    let (start, last_release, max_lag) = scheduler.await?;
    bar.finish_and_clear();
    flow.lanes.drained(context.drain).await;
    let cpu = meter.stop()?;
    let clock = &flow.clock;
    let delivered = flow.lanes.delivered();
    let released_seconds = (last_release.saturating_sub(start) as f64 / 1e9).max(1e-9);
    let until_drained = (clock.now().saturating_sub(start) as f64 / 1e9).max(1e-9);
    Ok(RateResult {
        duration_seconds: plan.duration.as_secs_f64(),
        achieved_send_rate: total.saturating_sub(1) as f64 / released_seconds,
        max_schedule_lag_ms: max_lag as f64 / 1e6,
        delivered_per_second: delivered as f64 / until_drained,
        server_cpu_us_per_signal: cpu.server_micros_per(delivered),
        generator_cpu_us_per_signal: cpu.generator_micros_per(delivered),
        cpu,
        ..empty_result(server, plan)
    })
}

/// Keeps the ticks: tick k (at `start + k ms`) releases every signal j due by then
/// (`start + j / rate`), round robin over the lanes, stamped with the tick's scheduled time.
/// Runs on its own thread so the ticks do not depend on the async runtime's timer; a tick that
/// is late releases late, and its signals' latency shows it. Returns the start, the time of the
/// last release and the largest lag behind schedule (ns).
fn schedule(flow: &Flow, rate: u32, total: u64, bar: &indicatif::ProgressBar) -> (u64, u64, u64) {
    let clock = &flow.clock;
    let lanes = flow.senders.get().map_or(1, Vec::len).max(1) as u64;
    let tick = SCHEDULER_TICK.as_nanos() as u64;
    // Signals due at or before `at`: j with start + j / rate <= at.
    let due_by = |start: u64, at: u64| {
        let due = u128::from(at - start) * u128::from(rate) / 1_000_000_000 + 1;
        (due as u64).min(total)
    };
    let start = clock.now();
    let (mut next, mut max_lag, mut last_release) = (0u64, 0u64, start);
    let mut tick_at = start;
    while next < total {
        let now = clock.now();
        if tick_at > now {
            std::thread::sleep(Duration::from_nanos(tick_at - now));
        }
        let released_at = clock.now();
        for j in next..due_by(start, tick_at) {
            flow.send((j % lanes) as usize, tick_at);
        }
        next = due_by(start, tick_at);
        max_lag = max_lag.max(released_at.saturating_sub(tick_at));
        last_release = released_at;
        bar.set_position((released_at - start) / 1_000_000_000);
        tick_at += tick;
    }
    (start, last_release, max_lag)
}

async fn closed_loop(
    server: &Server,
    flow: &Arc<Flow>,
    in_flight: u32,
    plan: RatePlan,
    context: &Context,
) -> anyhow::Result<RateResult> {
    let clock = &flow.clock;
    let lanes = flow.senders.get().map_or(0, Vec::len);
    let meter = CpuMeter::start(server.probe())?;
    let window_end = clock.now() + plan.duration.as_nanos() as u64;
    flow.refill_until.store(window_end, Ordering::Relaxed);
    for lane in 0..lanes {
        for _ in 0..in_flight {
            flow.send(lane, clock.now());
        }
    }
    let label = format!("{}: closed loop, {in_flight} in flight", server.name());
    context.progress.wait(&label, plan.duration).await;
    let in_window = flow.delivered_in_window.load(Ordering::Relaxed);
    let cpu = meter.stop()?;
    // Arrivals after the window's end send nothing more: what is in flight drains.
    flow.lanes.drained(context.drain).await;
    Ok(RateResult {
        duration_seconds: cpu.wall_seconds,
        delivered_per_second: in_window as f64 / cpu.wall_seconds.max(1e-9),
        server_cpu_us_per_signal: cpu.server_micros_per(in_window),
        generator_cpu_us_per_signal: cpu.generator_micros_per(in_window),
        cpu,
        ..empty_result(server, plan)
    })
}

fn empty_result(server: &Server, plan: RatePlan) -> RateResult {
    RateResult {
        server: server.name(),
        load: plan.load,
        pairs: plan.pairs,
        duration_seconds: 0.0,
        achieved_send_rate: 0.0,
        max_schedule_lag_ms: 0.0,
        delivered_per_second: 0.0,
        latency: LatencySummary::default(),
        check: DeliveryCheck::default(),
        events: ClientEventCounts::default(),
        cpu: CpuUsage::default(),
        server_cpu_us_per_signal: None,
        generator_cpu_us_per_signal: None,
    }
}
