//! One push connection's view of its user's signals: first the backlog after the client's
//! cursor, then live pushes — no gap and no duplicate at the seam.
//!
//! The hub subscription is taken *before* the backlog is read, so a signal committed in between
//! arrives as a push; pushes at or below the cursor are dropped as duplicates, and a push that
//! skips ahead (a lost or reordered push) makes the stream re-read the store from its cursor.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::{to_json, Relay, RelayError};
use crate::domain::{Seq, UserId};
use crate::hub::{Push, Subscription};
use crate::metrics::Transport;
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingKind {
    Signal(Seq),
    Receipt,
    Message,
}

/// One thing to write to the client: a JSON object, serialised once.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub kind: OutgoingKind,
    pub json: Arc<str>,
    /// When the signal was stored on this node, for the latency histogram.
    pub stored_at: Option<Instant>,
}

pub struct SignalStream {
    relay: Relay,
    user: UserId,
    subscription: Subscription,
    /// The highest seq handed to the client.
    cursor: Seq,
    pending: VecDeque<Outgoing>,
    /// Set before re-reading the store, cleared after: if `next` is cancelled mid-read, the
    /// next call reads again instead of forgetting the gap.
    needs_refill: bool,
}

impl SignalStream {
    pub(super) async fn open(
        relay: Relay,
        user: UserId,
        subscription: Subscription,
        after: Seq,
    ) -> Result<Self, RelayError> {
        let mut stream = Self {
            relay,
            user,
            subscription,
            cursor: after,
            pending: VecDeque::new(),
            needs_refill: true,
        };
        stream.refill().await?;
        Ok(stream)
    }

    pub fn cursor(&self) -> Seq {
        self.cursor
    }

    pub fn transport(&self) -> Transport {
        self.subscription.transport()
    }

    /// Reads what the store holds after the cursor into `pending`.
    async fn refill(&mut self) -> Result<(), StoreError> {
        let limit = self.relay.shared.policy.max_signals_per_fetch;
        loop {
            let batch = self
                .relay
                .store()
                .fetch_after(
                    self.user,
                    None,
                    self.cursor,
                    self.relay.call_cutoff(),
                    limit,
                )
                .await?;
            let full = batch.len() as u32 == limit;
            for signal in batch {
                self.cursor = signal.seq;
                self.pending.push_back(Outgoing {
                    kind: OutgoingKind::Signal(signal.seq),
                    json: to_json(&signal),
                    stored_at: None,
                });
            }
            if !full {
                self.needs_refill = false;
                return Ok(());
            }
        }
    }

    /// The next thing to send, `Ok(None)` when the hub closed the connection for overflowing
    /// (the client must reconnect and resume from its cursor). Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<Outgoing>, StoreError> {
        loop {
            if let Some(outgoing) = self.pending.pop_front() {
                return Ok(Some(outgoing));
            }
            if self.needs_refill {
                self.refill().await?;
                continue;
            }
            let Some(push) = self.subscription.recv().await else {
                return Ok(None);
            };
            match push {
                Push::Signal {
                    seq,
                    json,
                    stored_at,
                    ..
                } => {
                    if seq <= self.cursor {
                        continue; // already sent from the backlog
                    }
                    if seq.0 != self.cursor.0 + 1 {
                        self.needs_refill = true;
                        continue;
                    }
                    self.cursor = seq;
                    return Ok(Some(Outgoing {
                        kind: OutgoingKind::Signal(seq),
                        json,
                        stored_at: Some(stored_at),
                    }));
                }
                Push::Resync => self.needs_refill = true,
                Push::Receipt(json) => {
                    return Ok(Some(Outgoing {
                        kind: OutgoingKind::Receipt,
                        json,
                        stored_at: None,
                    }))
                }
                Push::Message(json) => {
                    return Ok(Some(Outgoing {
                        kind: OutgoingKind::Message,
                        json,
                        stored_at: None,
                    }))
                }
            }
        }
    }
}
