//! The signal relay: the guide's `p2p_send_signal` / `p2p_get_signals`, made ordered,
//! deduplicated and acknowledged.
//!
//! Every transport (HTTP now, push later) goes through [`Relay`], so validation, dedup by
//! `signal_id`, expiry and the guide's `[P2P_SEND]` / `[P2P_GET]` log lines are the same on
//! every path. It knows nothing of HTTP.

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

use crate::clock::Clock;
use crate::domain::{ChatId, Seq, SignalId, SignalType, UserId, ValidationError};
use crate::store::{Appended, Chat, NewSignal, SignalQuery, Store, StoreError, StoredSignal, User};

/// The limits the relay enforces.
#[derive(Debug, Clone, Copy)]
pub struct RelayPolicy {
    pub call_signal_ttl: Duration,
    pub max_payload_bytes: usize,
    pub max_signals_per_fetch: u32,
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
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A signal as a sender submits it, on any path.
#[derive(Debug)]
pub struct OutgoingSignal<'a> {
    pub chat: ChatId,
    pub kind: &'a str,
    pub payload: &'a RawValue,
    pub signal_id: Option<&'a str>,
    pub to: Option<UserId>,
}

/// What a send did: `created` is false when the `signal_id` had been stored before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    pub created: bool,
    pub recipients: u32,
    pub signal_id: String,
}

#[derive(Clone)]
pub struct Relay {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    policy: RelayPolicy,
}

impl Relay {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, policy: RelayPolicy) -> Self {
        Self {
            store,
            clock,
            policy,
        }
    }

    pub fn policy(&self) -> RelayPolicy {
        self.policy
    }

    /// Validates and stores one signal: one row per recipient (every other participant, or `to`).
    pub async fn send(
        &self,
        sender: &User,
        signal: OutgoingSignal<'_>,
    ) -> Result<SendOutcome, RelayError> {
        let kind = SignalType::parse(signal.kind)?;
        let signal_id = match signal.signal_id {
            Some(id) => SignalId::parse(id)?,
            None => SignalId::generate(),
        };
        let size = signal.payload.get().len();
        if size > self.policy.max_payload_bytes {
            return Err(RelayError::PayloadTooLarge {
                size,
                limit: self.policy.max_payload_bytes,
            });
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
        let appended = self
            .store
            .append_signal(NewSignal {
                chat: chat.id,
                sender: sender.id,
                signal_id: signal_id.as_str(),
                kind: kind.as_str(),
                is_call: kind.is_call(),
                payload: signal.payload.get(),
                to: signal.to,
                recipients: &recipients,
                now: self.clock.now(),
            })
            .await?;
        match appended {
            Appended::Stored(deliveries) => {
                tracing::info!(
                    chat_id = %chat.id,
                    user_id = %sender.id,
                    signal_id = signal_id.as_str(),
                    "[P2P_SEND] Signal stored: {} from user {} ({}) to {} users in chat {}",
                    kind,
                    sender.id,
                    sender.display_name,
                    deliveries.len(),
                    chat.id
                );
                Ok(SendOutcome {
                    created: true,
                    recipients: deliveries.len() as u32,
                    signal_id: signal_id.as_str().to_owned(),
                })
            }
            Appended::Duplicate(previous) => {
                if previous.chat != chat.id
                    || previous.kind != kind.as_str()
                    || previous.to != signal.to
                {
                    return Err(RelayError::SignalIdReused(signal_id.as_str().to_owned()));
                }
                tracing::info!(
                    chat_id = %chat.id,
                    user_id = %sender.id,
                    signal_id = signal_id.as_str(),
                    "[P2P_SEND] Duplicate ignored: {} from user {} ({}) in chat {} was already stored",
                    kind,
                    sender.id,
                    sender.display_name,
                    chat.id
                );
                Ok(SendOutcome {
                    created: false,
                    recipients: previous.recipients,
                    signal_id: signal_id.as_str().to_owned(),
                })
            }
        }
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
    ) -> Result<Vec<StoredSignal>, RelayError> {
        let chat = self.participant_chat(user, chat).await?;
        let now = self.clock.now();
        let query = SignalQuery {
            recipient: user.id,
            chat: chat.id,
            now,
            call_cutoff: now.minus(self.policy.call_signal_ttl),
            limit: self.policy.max_signals_per_fetch,
        };
        let signals = match after {
            None => self.store.take_signals(query).await?,
            Some(after) => self.store.ack_and_fetch(query, after).await?,
        };
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

    /// The chat, if it exists and `user` takes part in it.
    pub async fn participant_chat(&self, user: &User, chat: ChatId) -> Result<Chat, RelayError> {
        let chat = self
            .store
            .chat(chat)
            .await?
            .ok_or(RelayError::ChatNotFound(chat))?;
        if chat.has_participant(user.id) {
            Ok(chat)
        } else {
            Err(RelayError::NotParticipant(chat.id))
        }
    }
}
