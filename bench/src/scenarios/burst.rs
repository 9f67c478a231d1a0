//! Scenario (a), call-setup bursts: P calls start at once; in each, the caller sends an offer
//! (~3.2 KB) and 10 ICE candidates (~270 B), and the callee, the moment the offer arrives,
//! sends an answer and 10 candidates: 22 signals per call. One warm-up round, then the measured
//! rounds, one after another.
//!
//! Measured: one-way latency of every signal (receive time − send time, one clock), the
//! whole-call setup time (the caller's offer → the 22nd signal seen at either end), and
//! signals per second over the measured rounds.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{connect_pairs, wait_until, Context, Role};
use crate::client::{close_all, ClientEventCounts, ClientEvents, Inbox, Outbox};
use crate::clock::BenchClock;
use crate::measure::delivery::{DeliveryCheck, Lanes};
use crate::measure::latency::{LatencyRecorder, LatencySummary};
use crate::measure::process::{CpuMeter, CpuUsage};
use crate::servers::{Server, ServerName, Transport};
use crate::signal::{Arrival, Outgoing, Route, SignalKind};

/// ICE candidates each side sends per call.
pub const ICE_PER_SIDE: u32 = 10;
/// Signals each side sends per call: an offer or answer, then the candidates.
const SIGNALS_PER_SIDE: u32 = 1 + ICE_PER_SIDE;
const SIGNALS_PER_CALL: u32 = 2 * SIGNALS_PER_SIDE;
/// Pause between rounds, so one round's acknowledgements and receipts are not the next's load.
const BETWEEN_ROUNDS: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy)]
pub struct BurstPlan {
    pub pairs: usize,
    /// Measured rounds (one warm-up round comes first).
    pub rounds: usize,
    pub transport: Transport,
    /// A round still incomplete after this is given up (its missing signals show as lost).
    pub round_timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct BurstResult {
    pub server: ServerName,
    pub transport: Transport,
    pub pairs: usize,
    pub rounds: usize,
    /// One-way latency of every signal of the measured rounds.
    pub latency: LatencySummary,
    /// Call start (offer sent) → all 22 signals seen at both ends.
    pub call_setup: LatencySummary,
    pub signals_per_second: f64,
    /// Rounds that did not complete within the round timeout.
    pub incomplete_rounds: usize,
    pub check: DeliveryCheck,
    pub events: ClientEventCounts,
    /// Over the measured rounds.
    pub cpu: CpuUsage,
    pub server_cpu_us_per_signal: Option<f64>,
    pub generator_cpu_us_per_signal: Option<f64>,
}

/// The shared state of one burst run: lanes 2i (caller → callee) and 2i + 1 (callee → caller)
/// of pair i, and per round and pair, how many of the call's 22 signals have been seen.
struct Calls {
    clock: BenchClock,
    pairs: usize,
    lanes: Lanes,
    latency: LatencyRecorder,
    setup: LatencyRecorder,
    seen: Box<[AtomicU32]>,
    started: Box<[AtomicU64]>,
    /// Per round: calls not complete yet, and when the last one completed.
    remaining: Box<[AtomicU32]>,
    finished_at: Box<[AtomicU64]>,
}

impl Calls {
    fn new(context: &Context, pairs: usize, rounds: usize) -> Self {
        let all_rounds = rounds + 1;
        let counters = |n: usize| (0..n).map(|_| AtomicU32::new(0)).collect();
        let times = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        Self {
            clock: context.clock,
            pairs,
            lanes: Lanes::new(&context.keys, 2 * pairs),
            latency: LatencyRecorder::default(),
            setup: LatencyRecorder::default(),
            seen: counters(all_rounds * pairs),
            started: times(all_rounds * pairs),
            remaining: (0..all_rounds)
                .map(|_| AtomicU32::new(pairs as u32))
                .collect(),
            finished_at: times(all_rounds),
        }
    }

    /// Sends one side's signals of a call: the offer or answer, then the candidates.
    fn send_side(&self, outbox: &Outbox, route: &Route, lane: usize, opening: SignalKind) {
        for kind in std::iter::once(opening).chain((0..ICE_PER_SIDE).map(|_| SignalKind::Ice)) {
            outbox.send(Outgoing {
                route: route.clone(),
                kind,
                mark: self.lanes.mark(lane, self.clock.now()),
            });
        }
    }

    /// Starts pair `pair`'s call of `round` from the caller's side.
    fn start_call(&self, round: usize, pair: usize, outbox: &Outbox, to_callee: &Route) {
        self.started[round * self.pairs + pair].store(self.clock.now(), Ordering::Relaxed);
        self.send_side(outbox, to_callee, 2 * pair, SignalKind::Offer);
    }

    /// Counts one of a call's signals as seen; the 22nd completes the call.
    fn seen(&self, round: usize, pair: usize, at: u64) {
        let Some(seen) = self.seen.get(round * self.pairs + pair) else {
            return;
        };
        if seen.fetch_add(1, Ordering::Relaxed) + 1 != SIGNALS_PER_CALL {
            return;
        }
        let started = self.started[round * self.pairs + pair].load(Ordering::Relaxed);
        if round > 0 {
            self.setup.record(pair, at.saturating_sub(started));
        }
        if self.remaining[round].fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finished_at[round].store(at, Ordering::Release);
        }
    }
}

struct BurstInbox {
    calls: Arc<Calls>,
    /// The callee answers every offer, on its own outbox.
    answer: Option<(Outbox, Route)>,
}

impl Inbox for BurstInbox {
    fn arrived(&mut self, arrival: Arrival) {
        let calls = &self.calls;
        let Some((lane, _)) = calls.lanes.observe(&arrival.mark) else {
            return;
        };
        let pair = lane / 2;
        // Each side sends exactly 11 signals per round, numbered on from round to round.
        let round = (arrival.mark.n.saturating_sub(1) / SIGNALS_PER_SIDE) as usize;
        if round > 0 {
            let latency = arrival.received_at.saturating_sub(arrival.mark.t);
            calls.latency.record(lane, latency);
        }
        if let (Some((outbox, to_caller)), SignalKind::Offer) = (&self.answer, arrival.kind) {
            calls.send_side(outbox, to_caller, 2 * pair + 1, SignalKind::Answer);
        }
        calls.seen(round, pair, arrival.received_at);
    }
}

pub async fn run(
    server: &Server,
    plan: BurstPlan,
    context: &Context,
) -> anyhow::Result<BurstResult> {
    let pairs = server.pairs(plan.pairs)?;
    let calls = Arc::new(Calls::new(context, plan.pairs, plan.rounds));
    let events = Arc::new(ClientEvents::default());
    let connected = connect_pairs(
        server,
        &pairs,
        plan.transport,
        &events,
        &context.progress,
        |i, role, outbox| {
            Box::new(BurstInbox {
                calls: calls.clone(),
                answer: (role == Role::Callee)
                    .then(|| (outbox.clone(), pairs[i].to_caller.clone())),
            })
        },
    )
    .await?;

    let label = format!(
        "{}: P={} bursts ({})",
        server.name(),
        plan.pairs,
        plan.transport
    );
    let bar = context.progress.bar(&label, (plan.rounds + 1) as u64);
    let mut cpu = None;
    let mut busy_nanos = 0;
    let mut incomplete_rounds = 0;
    for round in 0..=plan.rounds {
        if round == 1 {
            // The warm-up round is over: measure from here.
            cpu = Some(CpuMeter::start(server.probe())?);
        }
        let started = context.clock.now();
        for (i, pair) in connected.iter().enumerate() {
            calls.start_call(round, i, pair.caller.outbox(), &pairs[i].to_callee);
        }
        let complete = wait_until(plan.round_timeout, || {
            calls.remaining[round].load(Ordering::Acquire) == 0
        })
        .await;
        let finished = if complete {
            calls.finished_at[round].load(Ordering::Acquire)
        } else {
            incomplete_rounds += 1;
            context.clock.now()
        };
        if round > 0 {
            busy_nanos += finished.saturating_sub(started);
        }
        bar.inc(1);
        tokio::time::sleep(BETWEEN_ROUNDS).await;
    }
    bar.finish_and_clear();
    let cpu = match cpu {
        Some(meter) => meter.stop()?,
        None => CpuUsage::default(),
    };
    calls.lanes.drained(context.drain).await;
    close_all(
        connected
            .into_iter()
            .flat_map(|pair| [pair.caller, pair.callee])
            .collect(),
    )
    .await;
    let check = calls.lanes.check();
    if check.lost > 0 {
        server.discard_backlog(&pairs).await;
    }

    let measured_signals = u64::from(SIGNALS_PER_CALL) * (plan.pairs * plan.rounds) as u64;
    Ok(BurstResult {
        server: server.name(),
        transport: plan.transport,
        pairs: plan.pairs,
        rounds: plan.rounds,
        latency: calls.latency.summary(),
        call_setup: calls.setup.summary(),
        signals_per_second: measured_signals as f64 / (busy_nanos as f64 / 1e9).max(1e-9),
        incomplete_rounds,
        check,
        events: events.counts(),
        server_cpu_us_per_signal: cpu.server_micros_per(measured_signals),
        generator_cpu_us_per_signal: cpu.generator_micros_per(measured_signals),
        cpu,
    })
}
