//! Scenario (d), the polling fallback (Switchboard only): many clients each poll their chat
//! every 1.5 s (`GET /api/p2p/<chat_id>/signals/?after=<seq>`), their first polls spread evenly
//! over the first period. Nothing is being sent meanwhile, so this is the steady cost of clients
//! that found no push transport: almost every poll is empty.
//!
//! Measured: response time (request sent → body read) and the server's CPU.

use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;
use tokio::time::{Instant, MissedTickBehavior};

use super::Context;
use crate::clock::BenchClock;
use crate::measure::latency::{LatencyRecorder, LatencySummary};
use crate::measure::process::{CpuMeter, CpuUsage};
use crate::servers::switchboard::{poll_once, Seat, Switchboard};
use crate::servers::{Server, ServerName};

#[derive(Debug, Clone, Copy)]
pub struct PollPlan {
    pub pollers: usize,
    pub duration: Duration,
    pub interval: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct PollResult {
    pub server: ServerName,
    pub pollers: usize,
    pub users: usize,
    pub duration_seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub signals_returned: u64,
    pub response: LatencySummary,
    pub cpu: CpuUsage,
    pub server_cpu_percent: Option<f64>,
    pub server_cpu_us_per_request: Option<f64>,
}

/// What one poller did.
#[derive(Default)]
struct Tally {
    requests: u64,
    errors: u64,
    signals: u64,
    first_error: Option<String>,
}

pub async fn run(server: &Server, plan: PollPlan, context: &Context) -> anyhow::Result<PollResult> {
    let switchboard = server
        .as_switchboard()
        .ok_or_else(|| anyhow::anyhow!("the polling scenario is Switchboard's only"))?;
    let seats = (0..plan.pollers)
        .map(|i| switchboard.seat(i, plan.pollers))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let users = seats.len().min(switchboard.users());
    let response = LatencyRecorder::default();
    let start = Instant::now();
    let deadline = start + plan.duration;
    let meter = CpuMeter::start(server.probe())?;
    let label = format!("{}: {} clients polling", server.name(), plan.pollers);
    let waiting = context.progress.wait(&label, plan.duration);
    let pollers = seats.iter().enumerate().map(|(i, seat)| {
        let poller = Poller {
            switchboard,
            seat,
            first: start + plan.interval.mul_f64(i as f64 / plan.pollers as f64),
            deadline,
            interval: plan.interval,
            response: &response,
            clock: context.clock,
            shard: i,
        };
        poller.run()
    });
    let (tallies, ()) = tokio::join!(join_all(pollers), waiting);
    let cpu = meter.stop()?;
    let mut total = Tally::default();
    for tally in tallies {
        total.requests += tally.requests;
        total.errors += tally.errors;
        total.signals += tally.signals;
        total.first_error = total.first_error.or(tally.first_error);
    }
    Ok(PollResult {
        server: server.name(),
        pollers: plan.pollers,
        users,
        duration_seconds: cpu.wall_seconds,
        requests: total.requests,
        errors: total.errors,
        first_error: total.first_error,
        signals_returned: total.signals,
        response: response.summary(),
        server_cpu_percent: cpu.server_percent(),
        server_cpu_us_per_request: cpu.server_micros_per(total.requests),
        cpu,
    })
}

/// One polling client.
struct Poller<'a> {
    switchboard: &'a Switchboard,
    seat: &'a Seat,
    /// When its first poll is due (spread evenly over the first period).
    first: Instant,
    deadline: Instant,
    interval: Duration,
    response: &'a LatencyRecorder,
    clock: BenchClock,
    /// Its histogram shard.
    shard: usize,
}

impl Poller<'_> {
    async fn run(self) -> Tally {
        let mut tally = Tally::default();
        let mut ticker = tokio::time::interval_at(self.first, self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut cursor = self.seat.account.cursor();
        loop {
            ticker.tick().await;
            if Instant::now() >= self.deadline {
                return tally;
            }
            let sent = self.clock.now();
            let polled = poll_once(self.switchboard.api(), self.seat, cursor).await;
            self.response
                .record(self.shard, self.clock.now().saturating_sub(sent));
            tally.requests += 1;
            match polled {
                Ok(polled) => {
                    tally.signals += polled.signals as u64;
                    cursor = cursor.max(polled.last_seq.unwrap_or(0));
                }
                Err(error) => {
                    tally.errors += 1;
                    tally.first_error.get_or_insert_with(|| error.to_string());
                }
            }
        }
    }
}
