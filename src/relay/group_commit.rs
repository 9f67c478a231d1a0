//! Group commit: one task per node writes every signal and acknowledgement, many per
//! transaction, then publishes the stored signals in commit order.
//!
//! A commit costs the same whether it carries one signal or a hundred, so under load the
//! queue that builds up while one transaction runs becomes the next transaction. With nothing
//! queued a request is written at once, alone: batching never waits for company.
//!
//! Publishing from this one task (rather than from each sender's task) means a recipient's
//! pushes leave this node in `seq` order, so its streams rarely see a gap to re-read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use super::receipts::{publish_receipt, Receipt, ReceiptStatus};
use super::to_json;
use crate::bus::Bus;
use crate::clock::Clock;
use crate::domain::{ChatId, Seq, SignalId, SignalType, UserId};
use crate::hub::Push;
use crate::metrics::Metrics;
use crate::store::{
    AckRange, Acked, Appended, NewSignal, Store, StoreError, StoredSignal, User, WriteBatch,
};

/// Requests written per transaction, at most. Bounds one commit's latency and memory.
const MAX_BATCH: usize = 512;
/// Requests waiting for the writer before senders wait too (backpressure, not loss).
const QUEUE: usize = 8_192;

/// A validated signal on its way to the store.
pub(super) struct PendingSignal {
    pub sender: User,
    pub chat: ChatId,
    pub kind: SignalType,
    pub payload: Box<RawValue>,
    pub signal_id: SignalId,
    pub to: Option<UserId>,
    pub recipients: Vec<UserId>,
}

pub(super) type Reply<T> = oneshot::Receiver<Result<T, StoreError>>;

enum Request {
    Append {
        signal: PendingSignal,
        reply: oneshot::Sender<Result<Appended, StoreError>>,
    },
    Ack {
        range: AckRange,
        reply: Option<oneshot::Sender<Result<usize, StoreError>>>,
    },
}

/// What the writer task needs: where to write, whom to wake, how to tell time.
pub(super) struct Writer {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub call_signal_ttl: std::time::Duration,
    pub watermarks: Arc<AckWatermarks>,
    /// When this node last stored a signal (ms since the epoch, by `clock`; 0: never).
    pub last_stored: Arc<AtomicI64>,
}

/// The handle senders use; the writer task stops when the last handle is dropped.
#[derive(Clone)]
pub(super) struct GroupCommit {
    requests: mpsc::Sender<Request>,
}

impl GroupCommit {
    pub fn spawn(writer: Writer) -> Self {
        let (requests, queue) = mpsc::channel(QUEUE);
        tokio::spawn(writer.run(queue));
        Self { requests }
    }

    /// Queues a signal; the reply comes after its transaction commits. Queue order is
    /// commit order, so a caller that queues A before B gets A's seqs before B's.
    pub async fn append(&self, signal: PendingSignal) -> Result<Reply<Appended>, StoreError> {
        let (reply, receiver) = oneshot::channel();
        self.submit(Request::Append { signal, reply }).await?;
        Ok(receiver)
    }

    /// Acknowledges and waits for the commit; returns how many signals it marked consumed.
    pub async fn ack(&self, range: AckRange) -> Result<usize, StoreError> {
        let (reply, receiver) = oneshot::channel();
        self.submit(Request::Ack {
            range,
            reply: Some(reply),
        })
        .await?;
        receiver.await.map_err(|_| writer_gone())?
    }

    /// Queues an acknowledgement without waiting for it (push transports: the client has
    /// nothing to wait for, and the next frame should not wait on the store).
    pub async fn ack_later(&self, range: AckRange) -> Result<(), StoreError> {
        self.submit(Request::Ack { range, reply: None }).await
    }

    async fn submit(&self, request: Request) -> Result<(), StoreError> {
        self.requests.send(request).await.map_err(|_| writer_gone())
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolClosed)
}

impl Writer {
    async fn run(self, mut queue: mpsc::Receiver<Request>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
            // Let the connections that are runnable right now queue their signals too: one
            // scheduler turn costs microseconds, a commit costs far more.
            tokio::task::yield_now().await;
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch).await;
            batch.clear();
        }
    }

    async fn commit(&self, requests: &mut Vec<Request>) {
        let now = self.clock.now();
        let call_cutoff = now.minus(self.call_signal_ttl);
        let mut appends = Vec::new();
        let mut acks: Vec<AckRange> = Vec::new();
        // Several acks of one recipient's cursor in one batch are one update: the highest.
        let mut ack_slot = Vec::new();
        for request in requests.iter() {
            match request {
                Request::Append { signal, .. } => appends.push(NewSignal {
                    chat: signal.chat,
                    sender: signal.sender.id,
                    signal_id: signal.signal_id.as_str(),
                    kind: signal.kind.as_str(),
                    is_call: signal.kind.is_call(),
                    payload: signal.payload.get(),
                    to: signal.to,
                    recipients: &signal.recipients,
                    now,
                }),
                Request::Ack { range, .. } => {
                    let slot = acks
                        .iter()
                        .position(|a| a.recipient == range.recipient && a.chat == range.chat);
                    match slot {
                        Some(slot) => {
                            acks[slot].upto = acks[slot].upto.max(range.upto);
                            ack_slot.push(slot);
                        }
                        None => {
                            ack_slot.push(acks.len());
                            acks.push(*range);
                        }
                    }
                }
            }
        }
        let result = self
            .store
            .write_batch(WriteBatch {
                appends: &appends,
                acks: &acks,
                call_cutoff,
                now,
            })
            .await;
        drop(appends);
        let stored_at = Instant::now();
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::error!(error = %err, requests = requests.len(), "group commit failed");
                let shared = Arc::new(err);
                for request in requests.drain(..) {
                    let err = StoreError::Shared(shared.clone());
                    match request {
                        Request::Append { reply, .. } => drop(reply.send(Err(err))),
                        Request::Ack { reply, .. } => {
                            if let Some(reply) = reply {
                                drop(reply.send(Err(err)));
                            }
                        }
                    }
                }
                return;
            }
        };

        if outcome
            .appended
            .iter()
            .any(|a| matches!(a, Appended::Stored(_)))
        {
            self.last_stored.store(now.millis(), Ordering::Relaxed);
        }
        let mut appended = outcome.appended.into_iter();
        let mut acked: Vec<Option<Vec<Acked>>> = outcome.acked.into_iter().map(Some).collect();
        for (range, rows) in acks.iter().zip(&acked) {
            if let Some(rows) = rows {
                self.watermarks.record(range, rows);
            }
        }
        let mut ack_slot = ack_slot.into_iter();
        for request in requests.drain(..) {
            match request {
                Request::Append { signal, reply } => {
                    let Some(appended) = appended.next() else {
                        break;
                    };
                    if let Appended::Stored(deliveries) = &appended {
                        self.publish_signal(&signal, deliveries, now, stored_at);
                    }
                    drop(reply.send(Ok(appended)));
                }
                Request::Ack { reply, .. } => {
                    let Some(slot) = ack_slot.next() else { break };
                    // The first request of a slot publishes the receipts; the count is the
                    // slot's, shared by every request merged into it.
                    let count = match acked[slot].take() {
                        Some(rows) => {
                            let count = rows.len();
                            self.publish_receipts(rows);
                            count
                        }
                        None => 0,
                    };
                    if let Some(reply) = reply {
                        drop(reply.send(Ok(count)));
                    }
                }
            }
        }
    }

    fn publish_signal(
        &self,
        signal: &PendingSignal,
        deliveries: &[crate::store::Delivery],
        now: crate::domain::Timestamp,
        stored_at: Instant,
    ) {
        self.metrics.signals_stored.inc_by(deliveries.len() as u64);
        for delivery in deliveries {
            let stored = StoredSignal {
                id: delivery.id,
                seq: delivery.seq,
                chat_id: signal.chat,
                kind: signal.kind.as_str().to_owned(),
                payload: signal.payload.clone(),
                sender: signal.sender.clone(),
                signal_id: signal.signal_id.as_str().to_owned(),
                created_at: now,
            };
            self.bus.publish(
                delivery.recipient,
                Push::Signal {
                    seq: delivery.seq,
                    chat: signal.chat,
                    json: to_json(&stored),
                    stored_at,
                },
            );
        }
    }

    fn publish_receipts(&self, rows: Vec<Acked>) {
        for acked in rows {
            publish_receipt(
                self.bus.as_ref(),
                Receipt::from_acked(acked, ReceiptStatus::Delivered),
            );
        }
    }
}

/// What this node has seen acknowledged, per recipient and chat: a poll whose cursor was
/// already acknowledged skips the write. Acknowledged state only grows, so a stale entry is a
/// lower bound and never wrong; entries are only recorded when the acknowledged row at the
/// cursor itself was seen, which proves every lower seq had committed before it.
#[derive(Default)]
pub(super) struct AckWatermarks {
    acked: Mutex<HashMap<(UserId, Option<ChatId>), Seq>>,
}

/// Recipients × chats remembered before starting over (memory bound; forgetting is harmless).
const MAX_WATERMARKS: usize = 100_000;

impl AckWatermarks {
    pub fn covers(&self, range: &AckRange) -> bool {
        if range.upto.0 <= 0 {
            return true;
        }
        let acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
        // An acknowledgement in all chats (`None`) covers every chat.
        [range.chat, None].into_iter().any(|chat| {
            acked
                .get(&(range.recipient, chat))
                .is_some_and(|&seq| seq >= range.upto)
        })
    }

    fn record(&self, range: &AckRange, rows: &[Acked]) {
        if !rows.iter().any(|row| row.seq == range.upto) {
            return;
        }
        let mut acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
        if acked.len() >= MAX_WATERMARKS {
            acked.clear();
        }
        let entry = acked
            .entry((range.recipient, range.chat))
            .or_insert(range.upto);
        *entry = (*entry).max(range.upto);
    }
}
