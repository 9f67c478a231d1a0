//! Ends the calls nobody ends: a call ringing past the ring timeout (the caller's tab closed
//! mid-ring) is missed; an active call whose two people have both been without a live
//! connection for the rejoin grace (both closed their tabs) is over. Runs with the cleanup task
//! on every node; the store's compare-and-set makes a call end once whichever node sees it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use super::Calls;
use crate::domain::{CallId, CallOutcome, CallState, Timestamp};
use crate::store::StoreError;

/// Active calls seen with nobody online, and since when (this node's view).
#[derive(Default)]
pub(super) struct Orphans(Mutex<HashMap<CallId, Timestamp>>);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub missed: usize,
    pub abandoned: usize,
    pub forgotten: u64,
}

impl Calls {
    /// One pass; see the module's comment.
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        let policy = self.shared.policy;
        let now = self.now();
        let mut report = SweepReport::default();
        if !self.shared.maybe_open.swap(false, Ordering::Relaxed) {
            return Ok(report);
        }
        let open = self.store().open_calls().await?;
        if !open.is_empty() {
            self.shared.maybe_open.store(true, Ordering::Relaxed);
        }
        let mut still_orphaned = HashMap::new();
        let previous = std::mem::take(&mut *self.orphans());
        for call in open {
            match call.state {
                CallState::Ringing if call.created_at <= now.minus(policy.ring_timeout) => {
                    let ended = self
                        .end(
                            &call,
                            CallState::Ringing,
                            CallOutcome::Missed,
                            Some("no-answer"),
                            None,
                        )
                        .await?;
                    report.missed += usize::from(ended.is_some());
                }
                CallState::Active => {
                    let bus = self.shared.bus.as_ref();
                    if bus.is_online(call.caller) || bus.is_online(call.callee) {
                        continue;
                    }
                    let since = previous.get(&call.call_id).copied().unwrap_or(now);
                    if since <= now.minus(policy.rejoin_grace) {
                        let ended = self
                            .end(
                                &call,
                                CallState::Active,
                                CallOutcome::Ended,
                                Some("connection-lost"),
                                None,
                            )
                            .await?;
                        report.abandoned += usize::from(ended.is_some());
                    } else {
                        still_orphaned.insert(call.call_id.clone(), since);
                    }
                }
                _ => {}
            }
        }
        *self.orphans() = still_orphaned;
        report.forgotten = self
            .store()
            .delete_calls_ended_before(now.minus(policy.keep_ended))
            .await?;
        Ok(report)
    }

    fn orphans(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, Timestamp>> {
        self.shared
            .sweep
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}
