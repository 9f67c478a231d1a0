//! The background task that deletes what the retention policy says is old: consumed signals
//! after `consumed_retention`, any signal after `unconsumed_retention`, expired sessions.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::relay::Relay;
use crate::store::{CleanupCutoffs, CleanupReport, Store, StoreResult};

#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub consumed: Duration,
    pub unconsumed: Duration,
}

/// One cleanup pass, as of the clock's "now".
pub async fn run_once(
    store: &dyn Store,
    clock: &dyn Clock,
    retention: Retention,
) -> StoreResult<CleanupReport> {
    let now = clock.now();
    let report = store
        .cleanup(CleanupCutoffs {
            consumed_before: now.minus(retention.consumed),
            created_before: now.minus(retention.unconsumed),
            now,
        })
        .await?;
    if report != CleanupReport::default() {
        tracing::info!(
            consumed = report.consumed,
            stale = report.stale,
            idempotency_records = report.sends,
            sessions = report.sessions,
            "[CLEANUP] Deleted {} consumed and {} stale signals",
            report.consumed,
            report.stale
        );
    }
    Ok(report)
}

/// Without signals stored on this node lately, a pass runs this rarely (expired sessions).
const IDLE_PASS_EVERY: Duration = Duration::from_secs(3600);

/// Runs a pass every `interval` until `shutdown` is cancelled. A failed pass is logged and
/// retried at the next tick: the store may come back.
///
/// Passes only run while this node's own signals may still need expiring or deleting (it stored
/// one within both retention periods), and once an hour otherwise: an idle server makes no store
/// query at all. With several nodes each cleans up after what it stored; the queries are global,
/// so any busy node also cleans up after the others.
pub async fn run(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    relay: Relay,
    retention: Retention,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let busy_for = retention.unconsumed + retention.consumed + 2 * interval;
    let mut last_pass = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {
                relay.forget_idle_rate_limits();
                // Calls nobody ended (tabs closed mid-ring or mid-call). It queries the store only
                // while calls may be open, so it runs on every tick.
                match relay.calls().sweep().await {
                    Ok(report) if report.missed + report.abandoned > 0 => tracing::info!(
                        missed = report.missed,
                        abandoned = report.abandoned,
                        "[CLEANUP] Ended {} calls nobody ended",
                        report.missed + report.abandoned
                    ),
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "[CLEANUP] call sweep failed; retrying next interval"),
                }
                let now = clock.now();
                let busy = relay.last_stored().is_some_and(|at| at >= now.minus(busy_for));
                let due = last_pass.is_none_or(|at: crate::domain::Timestamp| at <= now.minus(IDLE_PASS_EVERY));
                if !busy && !due {
                    continue;
                }
                last_pass = Some(now);
                if let Err(err) = relay.sweep_expired().await {
                    tracing::warn!(error = %err, "[CLEANUP] expiry sweep failed; retrying next interval");
                }
                if let Err(err) = run_once(store.as_ref(), clock.as_ref(), retention).await {
                    tracing::warn!(error = %err, "[CLEANUP] pass failed; retrying next interval");
                }
            }
        }
    }
}
