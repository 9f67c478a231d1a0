//! Scenario (c), idle connections: N WebSocket clients connect and then only keep their
//! heartbeats (Switchboard: an application `ping` every 20 s, and pongs to the server's pings;
//! PeerJS: `HEARTBEAT` every 5 s), staggered evenly over the period.
//!
//! Measured: the server's resident memory after all are connected and settled, per connection
//! against its memory before its first idle connection ("fresh"), its CPU over an idle window,
//! and — Switchboard — how many store queries that window cost.
//!
//! Why against the fresh figure, sizes in increasing order: neither glibc nor V8 hands freed
//! memory back at once, so a run's connections first reuse what an earlier run freed (its own
//! "before" figure would then hide their cost), and only the rest is new. Measured from the
//! fresh process, `(connected − fresh) / N` holds for every size.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{connect_all, idle_parties, Context};
use crate::client::{close_all, ClientEventCounts, ClientEvents, CountingInbox, Outbox};
use crate::measure::process::{CpuMeter, CpuUsage};
use crate::servers::{ClientSpec, Server, ServerName, Transport};

#[derive(Debug, Clone, Copy)]
pub struct IdlePlan {
    pub connections: usize,
    /// Wait after the last connection before reading memory.
    pub settle: Duration,
    /// The idle window CPU and store queries are measured over.
    pub window: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleResult {
    pub server: ServerName,
    pub connections: usize,
    pub connect_seconds: f64,
    /// Before the server's first idle connection of the bench.
    pub rss_fresh_kib: Option<u64>,
    /// Before this run's connections.
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    /// (after − fresh) / connections
    pub rss_per_connection_kib: Option<f64>,
    pub cpu: CpuUsage,
    pub server_cpu_percent: Option<f64>,
    /// Switchboard: store queries during the idle window (from `/metrics`).
    pub store_queries: Option<u64>,
    /// Signals that reached an idle client (there should be none).
    pub unexpected_signals: u64,
    pub events: ClientEventCounts,
}

/// The server's resident memory now, if its PID is known.
pub fn resident_kib(server: &Server) -> Option<u64> {
    server
        .probe()
        .and_then(|p| p.sample().ok())
        .map(|s| s.rss_kib)
}

/// Runs `plan`; `fresh` is the server's memory before its first idle connection.
pub async fn run(
    server: &Server,
    plan: IdlePlan,
    fresh: Option<u64>,
    context: &Context,
) -> anyhow::Result<IdleResult> {
    crate::limits::ensure_room_for(plan.connections, server.probe())?;
    let parties = idle_parties(server, plan.connections)?;
    let rss_before = resident_kib(server);
    let events = Arc::new(ClientEvents::default());
    let unexpected = Arc::new(AtomicU64::new(0));
    let total = parties.len();
    let specs = parties
        .into_iter()
        .enumerate()
        .map(|(i, party)| {
            let (outbox, queue) = Outbox::channel();
            ClientSpec {
                party,
                transport: Transport::WebSocket,
                inbox: Box::new(CountingInbox {
                    count: unexpected.clone(),
                }),
                outbox,
                queue,
                events: events.clone(),
                heartbeat_phase: i as f64 / total as f64,
            }
        })
        .collect();
    let connecting = std::time::Instant::now();
    let label = format!("{}: connecting {total} idle clients", server.name());
    let clients = connect_all(server, specs, &context.progress, &label).await?;
    let connect_seconds = connecting.elapsed().as_secs_f64();

    let label = format!("{}: settling", server.name());
    context.progress.wait(&label, plan.settle).await;
    let rss_after = resident_kib(server);
    let queries_before = store_queries(server).await?;
    let meter = CpuMeter::start(server.probe())?;
    let label = format!("{}: {total} clients idle", server.name());
    context.progress.wait(&label, plan.window).await;
    let cpu = meter.stop()?;
    let queries_after = store_queries(server).await?;
    let label = format!("{}: closing {total} idle clients", server.name());
    let bar = context.progress.bar(&label, 1);
    close_all(clients).await;
    bar.finish_and_clear();

    let rss_per_connection_kib = match (fresh, rss_after) {
        (Some(fresh), Some(after)) if total > 0 => {
            Some((after as f64 - fresh as f64) / total as f64)
        }
        _ => None,
    };
    Ok(IdleResult {
        server: server.name(),
        connections: total,
        connect_seconds,
        rss_fresh_kib: fresh,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_per_connection_kib,
        server_cpu_percent: cpu.server_percent(),
        cpu,
        store_queries: queries_before
            .zip(queries_after)
            .map(|(before, after)| after.saturating_sub(before)),
        unexpected_signals: unexpected.load(Ordering::Relaxed),
        events: events.counts(),
    })
}

/// Switchboard's store query counter; `None` for servers without one.
async fn store_queries(server: &Server) -> anyhow::Result<Option<u64>> {
    match server.as_switchboard() {
        Some(switchboard) => Ok(Some(switchboard.store_queries().await?)),
        None => Ok(None),
    }
}
