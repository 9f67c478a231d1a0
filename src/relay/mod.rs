//! The signal relay: the guide's `p2p_send_signal` / `p2p_get_signals`, made ordered,
//! deduplicated and acknowledged.
//!
//! Every transport (HTTP, WebSocket, SSE, long-poll) goes through [`Relay`], so validation,
//! dedup by `signal_id`, expiry, rate limits, receipts and the guide's `[P2P_SEND]` /
//! `[P2P_GET]` log lines are the same on every path. It knows nothing of HTTP: it stores, then
//! publishes on the [`Bus`], and opens [`SignalStream`]s for push transports.

mod chat_cache;
mod group_commit;
mod receipts;
mod stream;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::value::RawValue;

use crate::bus::Bus;
use crate::calls::{CallError, CallPolicy, Calls, ANSWERED_ELSEWHERE};
use crate::clock::Clock;
use crate::domain::{ChatId, Seq, SignalId, SignalType, UserId, ValidationError};
use crate::hub::{Hub, Push, TooManyConnections};
use crate::metrics::{Metrics, Transport};
use crate::store::{
    AckRange, Appended, Chat, Message, SignalQuery, Store, StoreError, StoredSignal, User,
};
use chat_cache::ChatCache;
use group_commit::{AckWatermarks, GroupCommit, PendingSignal, Reply, Writer};
use receipts::publish_receipt;
pub use receipts::{Receipt, ReceiptStatus};
pub use stream::{Outgoing, OutgoingKind, SignalStream};

/// The limits the relay enforces.
#[derive(Debug, Clone, Copy)]
pub struct RelayPolicy {
    pub call_signal_ttl: Duration,
    pub max_payload_bytes: usize,
    pub max_signals_per_fetch: u32,
    /// Sustained signals per second one user may send.
    pub send_rate_per_second: u32,
    /// Signals one user may send at once before the rate applies.
    pub send_burst: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("payload is {size} bytes; the limit is {limit} bytes")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("chat {0} does not exist")]
    ChatNotFound(ChatId),
    #[error("you are not a participant of chat {0}")]
    NotParticipant(ChatId),
    #[error("user {to} is not a participant of chat {chat}")]
    RecipientNotParticipant { to: UserId, chat: ChatId },
    #[error("a signal cannot be addressed to its own sender")]
    SelfAddressed,
    #[error("signal_id {0:?} was already used for a different signal")]
    SignalIdReused(String),
    #[error("too many signals: slow down and retry in {} ms", .retry_after.as_millis())]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    TooManyConnections(#[from] TooManyConnections),
    /// The call's record refused the signal (docs/CALLS.md).
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A signal as a sender submits it, on any path.
#[derive(Debug)]
pub struct OutgoingSignal<'a> {
    pub chat: ChatId,
    pub kind: &'a str,
    pub payload: Box<RawValue>,
    pub signal_id: Option<&'a str>,
    pub to: Option<UserId>,
}

/// What a send did: `created` is false when the `signal_id` had been stored before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    pub created: bool,
    pub recipients: u32,
    /// How many recipients have a live push connection right now.
    pub online: u32,
    pub signal_id: String,
}

#[derive(Clone)]
pub struct Relay {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    policy: RelayPolicy,
    hub: Hub,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    send_limiter: DefaultKeyedRateLimiter<UserId>,
    chats: ChatCache,
    writer: GroupCommit,
    watermarks: Arc<AckWatermarks>,
    last_stored: Arc<AtomicI64>,
    calls: Calls,
}

/// What the relay is built from.
pub struct RelayParts {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub policy: RelayPolicy,
    pub call_policy: CallPolicy,
    pub hub: Hub,
    pub bus: Arc<dyn Bus>,
    pub metrics: Arc<Metrics>,
}

impl Relay {
    pub fn new(parts: RelayParts) -> Self {
        let rate = NonZeroU32::new(parts.policy.send_rate_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(parts.policy.send_burst).unwrap_or(rate);
        let watermarks = Arc::new(AckWatermarks::default());
        let last_stored = Arc::new(AtomicI64::new(0));
        let writer = GroupCommit::spawn(Writer {
            store: parts.store.clone(),
            bus: parts.bus.clone(),
            clock: parts.clock.clone(),
            metrics: parts.metrics.clone(),
            call_signal_ttl: parts.policy.call_signal_ttl,
            watermarks: watermarks.clone(),
            last_stored: last_stored.clone(),
        });
        let calls = Calls::new(
            parts.store.clone(),
            parts.clock.clone(),
            parts.bus.clone(),
            parts.call_policy,
        );
        Self {
            shared: Arc::new(Shared {
                calls,
                chats: ChatCache::default(),
                writer,
                watermarks,
                last_stored,
                send_limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
                store: parts.store,
                clock: parts.clock,
                policy: parts.policy,
                hub: parts.hub,
                bus: parts.bus,
                metrics: parts.metrics,
            }),
        }
    }

    pub fn policy(&self) -> RelayPolicy {
        self.shared.policy
    }

    pub fn hub(&self) -> &Hub {
        &self.shared.hub
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Who is online: a live push connection on any node.
    pub fn presence(&self) -> &dyn Bus {
        self.shared.bus.as_ref()
    }

    /// The call records the relay keeps while it relays call signals.
    pub fn calls(&self) -> &Calls {
        &self.shared.calls
    }

    fn store(&self) -> &dyn Store {
        self.shared.store.as_ref()
    }

    fn call_cutoff(&self) -> crate::domain::Timestamp {
        self.shared
            .clock
            .now()
            .minus(self.shared.policy.call_signal_ttl)
    }

    /// Refuses a send over the user's rate, saying when to retry.
    fn check_rate(&self, sender: UserId) -> Result<(), RelayError> {
        self.shared
            .send_limiter
            .check_key(&sender)
            .map_err(|not_until| RelayError::RateLimited {
                retry_after: not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                )),
            })
    }

    /// Forgets rate-limit state of users idle long enough to be back at a full burst.
    pub fn forget_idle_rate_limits(&self) {
        self.shared.send_limiter.retain_recent();
    }

    /// Validates and stores one signal: one row per recipient (every other participant, or `to`).
    pub async fn send(
        &self,
        sender: &User,
        signal: OutgoingSignal<'_>,
    ) -> Result<SendOutcome, RelayError> {
        self.submit(sender, signal).await?.outcome().await
    }

    /// Validates one signal and queues it for the next group commit, without waiting for the
    /// commit. Signals submitted one after the other get their seqs in that order, so a
    /// connection can pipeline its sends and still have them stored in the order it sent them.
    pub async fn submit(
        &self,
        sender: &User,
        signal: OutgoingSignal<'_>,
    ) -> Result<QueuedSend, RelayError> {
        self.check_rate(sender.id)?;
        let kind = SignalType::parse(signal.kind)?;
        let signal_id = match signal.signal_id {
            Some(id) => SignalId::parse(id)?,
            None => SignalId::generate(),
        };
        let size = signal.payload.get().len();
        let limit = self.shared.policy.max_payload_bytes;
        if size > limit {
            return Err(RelayError::PayloadTooLarge { size, limit });
        }
        let chat = self.participant_chat(sender, signal.chat).await?;
        let recipients: Vec<UserId> = match signal.to {
            Some(to) if to == sender.id => return Err(RelayError::SelfAddressed),
            Some(to) if !chat.has_participant(to) => {
                return Err(RelayError::RecipientNotParticipant { to, chat: chat.id })
            }
            Some(to) => vec![to],
            None => chat
                .participants
                .iter()
                .map(|p| p.id)
                .filter(|&id| id != sender.id)
                .collect(),
        };
        let online = recipients
            .iter()
            .filter(|&&r| self.shared.bus.is_online(r))
            .count() as u32;
        let notice = if kind.is_call() {
            self.shared
                .calls
                .apply(sender, &chat, &kind, &signal.payload)
                .await?
        } else {
            None
        };
        let reply = self
            .shared
            .writer
            .append(PendingSignal {
                sender: sender.clone(),
                chat: chat.id,
                kind: kind.clone(),
                payload: signal.payload,
                signal_id: signal_id.clone(),
                to: signal.to,
                recipients,
            })
            .await?;
        if let Some(notice) = notice {
            // The sender's own other tabs stop ringing; queued after the signal, not awaited.
            let _commit = self
                .shared
                .writer
                .append(PendingSignal {
                    sender: sender.clone(),
                    chat: chat.id,
                    kind: SignalType::parse(ANSWERED_ELSEWHERE)?,
                    payload: notice.payload,
                    signal_id: SignalId::generate(),
                    to: Some(notice.user),
                    recipients: vec![notice.user],
                })
                .await?;
        }
        Ok(QueuedSend {
            relay: self.clone(),
            reply,
            sender: sender.clone(),
            chat: chat.id,
            kind,
            signal_id,
            to: signal.to,
            online,
        })
    }

    /// The caller's deliverable signals in a chat, in `seq` order.
    ///
    /// Without a cursor this is the guide's GET: what is returned is consumed (at most once).
    /// With `after`, everything up to `after` is acknowledged and the rest is returned without
    /// being consumed, so a response lost on the way loses nothing (at least once).
    pub async fn fetch(
        &self,
        user: &User,
        chat: ChatId,
        after: Option<Seq>,
        transport: Transport,
    ) -> Result<Vec<StoredSignal>, RelayError> {
        let chat = self.participant_chat(user, chat).await?;
        let signals = self.fetch_in(user, &chat, after).await?;
        self.shared
            .metrics
            .delivered(transport, signals.len() as u64);
        let message = format!(
            "[P2P_GET] Retrieved {} call signals for user {} ({}) in chat {}",
            signals.len(),
            user.id,
            user.display_name,
            chat.id
        );
        // Empty polls arrive every 1.5 s per client: worth seeing only when debugging.
        if signals.is_empty() {
            tracing::debug!(chat_id = %chat.id, user_id = %user.id, "{message}");
        } else {
            tracing::info!(chat_id = %chat.id, user_id = %user.id, "{message}");
        }
        Ok(signals)
    }

    async fn fetch_in(
        &self,
        user: &User,
        chat: &Chat,
        after: Option<Seq>,
    ) -> Result<Vec<StoredSignal>, RelayError> {
        let now = self.shared.clock.now();
        let limit = self.shared.policy.max_signals_per_fetch;
        match after {
            None => {
                let signals = self
                    .store()
                    .take_signals(SignalQuery {
                        recipient: user.id,
                        chat: chat.id,
                        now,
                        call_cutoff: self.call_cutoff(),
                        limit,
                    })
                    .await?;
                for signal in &signals {
                    publish_receipt(
                        self.shared.bus.as_ref(),
                        Receipt::delivered_from(signal, user.id),
                    );
                }
                Ok(signals)
            }
            Some(after) => {
                let range = AckRange {
                    recipient: user.id,
                    chat: Some(chat.id),
                    upto: after,
                };
                if !self.shared.watermarks.covers(&range) {
                    self.shared.writer.ack(range).await?;
                }
                Ok(self
                    .store()
                    .fetch_after(user.id, Some(chat.id), after, self.call_cutoff(), limit)
                    .await?)
            }
        }
    }

    /// Long-poll: like [`Relay::fetch`] with a cursor, but when nothing is there it waits up to
    /// `wait` for a signal in this chat (or until `stop`), then looks again.
    pub async fn fetch_waiting(
        &self,
        user: &User,
        chat: ChatId,
        after: Option<Seq>,
        wait: Duration,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Vec<StoredSignal>, RelayError> {
        let chat = self.participant_chat(user, chat).await?;
        // Registered before the first read: a signal stored in between wakes us up.
        let mut subscription = self.shared.hub.subscribe(user.id, Transport::Longpoll)?;
        let signals = self.fetch_in(user, &chat, after).await?;
        if !signals.is_empty() {
            self.shared
                .metrics
                .delivered(Transport::Longpoll, signals.len() as u64);
            return Ok(signals);
        }
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        let mut stored_at = None;
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                _ = stop.cancelled() => break,
                push = subscription.recv() => match push {
                    Some(Push::Signal { chat: c, stored_at: at, .. }) if c == chat.id => {
                        stored_at = Some(at);
                        break;
                    }
                    Some(Push::Resync) => break,
                    Some(_) => continue,
                    None => break,
                },
            }
        }
        drop(subscription);
        let signals = self.fetch_in(user, &chat, after).await?;
        let metrics = &self.shared.metrics;
        metrics.delivered(Transport::Longpoll, signals.len() as u64);
        if let (Some(at), false) = (stored_at, signals.is_empty()) {
            metrics.observe_latency(Transport::Longpoll, at);
        }
        if !signals.is_empty() {
            tracing::info!(chat_id = %chat.id, user_id = %user.id,
                "[P2P_GET] Retrieved {} call signals for user {} ({}) in chat {}",
                signals.len(), user.id, user.display_name, chat.id);
        }
        Ok(signals)
    }

    /// Acknowledges every signal of `user` up to `upto`, in all chats, and waits for it to be
    /// written; returns how many signals it marked consumed.
    pub async fn ack(&self, user: UserId, upto: Seq) -> Result<usize, RelayError> {
        let range = AckRange {
            recipient: user,
            chat: None,
            upto,
        };
        Ok(self.shared.writer.ack(range).await?)
    }

    /// Like [`Relay::ack`], without waiting for the write (push transports acknowledge as they
    /// go; the client has nothing to wait for).
    pub async fn ack_later(&self, user: UserId, upto: Seq) -> Result<(), RelayError> {
        let range = AckRange {
            recipient: user,
            chat: None,
            upto,
        };
        if self.shared.watermarks.covers(&range) {
            return Ok(());
        }
        Ok(self.shared.writer.ack_later(range).await?)
    }

    /// Opens a push stream for `user`: what is unacknowledged after `after`, then live signals.
    pub async fn open_stream(
        &self,
        user: UserId,
        transport: Transport,
        after: Seq,
    ) -> Result<SignalStream, RelayError> {
        let subscription = self.shared.hub.subscribe(user, transport)?;
        SignalStream::open(self.clone(), user, subscription, after).await
    }

    /// When this node last stored a signal, if it ever did.
    pub fn last_stored(&self) -> Option<crate::domain::Timestamp> {
        match self.shared.last_stored.load(Ordering::Relaxed) {
            0 => None,
            millis => Some(crate::domain::Timestamp::from_millis(millis)),
        }
    }

    /// Marks call signals that expired unread, and tells their senders.
    pub async fn sweep_expired(&self) -> Result<usize, StoreError> {
        let expired = self
            .store()
            .mark_expired(self.call_cutoff(), self.shared.clock.now())
            .await?;
        let count = expired.len();
        self.shared.metrics.signals_expired.inc_by(count as u64);
        self.publish_receipts(expired, ReceiptStatus::Expired);
        Ok(count)
    }

    /// Pushes a new chat message to every participant's connections.
    pub fn publish_message(&self, chat: &Chat, message: &Message) {
        publish_message(self.shared.bus.as_ref(), chat, message);
    }

    fn publish_receipts(&self, changed: Vec<crate::store::Acked>, status: ReceiptStatus) {
        for acked in changed {
            publish_receipt(self.shared.bus.as_ref(), Receipt::from_acked(acked, status));
        }
    }

    /// The chat, if it exists and `user` takes part in it.
    pub async fn participant_chat(
        &self,
        user: &User,
        chat: ChatId,
    ) -> Result<Arc<Chat>, RelayError> {
        let chat = self
            .shared
            .chats
            .get(self.store(), chat)
            .await?
            .ok_or(RelayError::ChatNotFound(chat))?;
        if chat.has_participant(user.id) {
            Ok(chat)
        } else {
            Err(RelayError::NotParticipant(chat.id))
        }
    }
}

/// A signal validated and queued for the store; [`QueuedSend::outcome`] waits for the commit.
pub struct QueuedSend {
    relay: Relay,
    reply: Reply<Appended>,
    sender: User,
    chat: ChatId,
    kind: SignalType,
    signal_id: SignalId,
    to: Option<UserId>,
    online: u32,
}

impl QueuedSend {
    pub async fn outcome(self) -> Result<SendOutcome, RelayError> {
        let appended = self
            .reply
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))??;
        let (sender, kind, chat) = (&self.sender, &self.kind, self.chat);
        let signal_id = self.signal_id.as_str();
        match appended {
            Appended::Stored(deliveries) => {
                tracing::info!(
                    chat_id = %chat,
                    user_id = %sender.id,
                    signal_id,
                    "[P2P_SEND] Signal stored: {} from user {} ({}) to {} users in chat {}",
                    kind,
                    sender.id,
                    sender.display_name,
                    deliveries.len(),
                    chat
                );
                Ok(SendOutcome {
                    created: true,
                    recipients: deliveries.len() as u32,
                    online: self.online,
                    signal_id: signal_id.to_owned(),
                })
            }
            Appended::Duplicate(previous) => {
                if previous.chat != chat || previous.kind != kind.as_str() || previous.to != self.to
                {
                    return Err(RelayError::SignalIdReused(signal_id.to_owned()));
                }
                self.relay.shared.metrics.signals_deduplicated.inc();
                tracing::info!(
                    chat_id = %chat,
                    user_id = %sender.id,
                    signal_id,
                    "[P2P_SEND] Duplicate ignored: {} from user {} ({}) in chat {} was already stored",
                    kind,
                    sender.id,
                    sender.display_name,
                    chat
                );
                Ok(SendOutcome {
                    created: false,
                    recipients: previous.recipients,
                    online: self.online,
                    signal_id: signal_id.to_owned(),
                })
            }
        }
    }
}

/// Pushes a new chat message to every participant's connections, on every node.
pub(crate) fn publish_message(bus: &dyn Bus, chat: &Chat, message: &Message) {
    let json = to_json(message);
    for participant in &chat.participants {
        bus.publish(participant.id, Push::Message(json.clone()));
    }
}

/// Serialises a record once, to be shared by every connection that receives it.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Arc<str> {
    // Our records are plain data (strings, numbers, raw JSON): serialising cannot fail.
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".to_owned())
        .into()
}
