//! Calls: the record the server keeps of every call it relays (docs/CALLS.md).
//!
//! The browsers still run the call between themselves with signals. The relay shows this module
//! each call-control signal (`call.invite`, `call.accept`, `call.decline`, `call.cancel`,
//! `call.end`) before storing it, and the record decides what a signal alone cannot: a call is
//! answered once, by one device; a late Accept from another tab is refused instead of ending
//! the live call; someone already in a call is busy; a reloaded tab can find the call it was in.
//! Every finished call becomes a call event message in its chat.
//!
//! Each transition is a compare-and-set in the store, so two tabs (or two nodes) racing settle
//! on one outcome.

mod payload;
mod sweep;

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

use crate::bus::Bus;
use crate::clock::Clock;
use crate::domain::{
    reason_token, CallEvent, CallId, CallOutcome, CallRecord, CallState, DeviceId, SignalType,
    Timestamp, UserId, ValidationError,
};
use crate::store::{CallEnd, Chat, NewMessage, Store, StoreError, User};
use payload::CallPayload;

/// The timings of the call record.
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    /// A call still ringing this long after its invite is over (missed).
    pub ring_timeout: Duration,
    /// An active call whose two people have had no live connection this long is over.
    pub rejoin_grace: Duration,
    /// Finished call records are kept this long (their event messages stay in the chat).
    pub keep_ended: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            ring_timeout: Duration::from_secs(90),
            rejoin_grace: Duration::from_secs(30),
            keep_ended: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Why a call signal was refused. Each has a stable `code` a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{name} is in another call.")]
    Busy { name: String },
    #[error("You are already in a call on another tab or device.")]
    AlreadyInCall,
    #[error("This call was already answered on another device.")]
    AnsweredElsewhere,
    #[error("This call has already ended.")]
    CallOver,
    #[error("This tab or device is not in the call.")]
    NotInCall,
    #[error("call_id {0:?} is already used by another call")]
    CallIdTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CallError {
    /// The machine-readable code sent beside the message (`None`: an ordinary 400 or 5xx).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::Busy { .. } => Some("busy"),
            Self::AlreadyInCall => Some("already_in_call"),
            Self::AnsweredElsewhere => Some("answered_elsewhere"),
            Self::CallOver => Some("call_over"),
            Self::NotInCall => Some("not_in_call"),
            Self::CallIdTaken(_) => Some("call_id_taken"),
            Self::Invalid(_) | Self::Store(_) => None,
        }
    }
}

/// What the relay must do besides storing the signal: tell the sender's other devices that
/// this one answered or declined (`call.answered_elsewhere`).
#[derive(Debug, Clone)]
pub struct ElsewhereNotice {
    pub user: UserId,
    pub payload: Box<RawValue>,
}

pub const ANSWERED_ELSEWHERE: &str = "call.answered_elsewhere";

#[derive(Clone)]
pub struct Calls {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    bus: Arc<dyn Bus>,
    policy: CallPolicy,
    sweep: sweep::Orphans,
    /// Whether a sweep may find something: set by every call-control signal, kept while the
    /// last sweep found open calls. An idle server makes no store query for calls.
    maybe_open: std::sync::atomic::AtomicBool,
}

impl Calls {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        bus: Arc<dyn Bus>,
        policy: CallPolicy,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                clock,
                bus,
                policy,
                sweep: sweep::Orphans::default(),
                maybe_open: std::sync::atomic::AtomicBool::new(true),
            }),
        }
    }

    fn store(&self) -> &dyn Store {
        self.shared.store.as_ref()
    }

    fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// The calls `user` is in right now (ringing or active), newest first.
    pub async fn open_calls_of(&self, user: UserId) -> Result<Vec<CallRecord>, StoreError> {
        self.store().open_calls_of(user).await
    }

    /// Applies one call signal to its call's record, before the relay stores the signal. `Err`
    /// refuses the signal (nothing is stored); `Ok(Some(notice))` asks the relay to tell the
    /// sender's other devices.
    pub async fn apply(
        &self,
        sender: &User,
        chat: &Chat,
        kind: &SignalType,
        payload: &RawValue,
    ) -> Result<Option<ElsewhereNotice>, CallError> {
        let step = match kind.as_str() {
            "call.invite" => Step::Invite,
            "call.accept" => Step::Accept,
            "call.decline" => Step::Decline,
            "call.cancel" => Step::Cancel,
            "call.end" => Step::End,
            // Media state, rejoin, ICE, descriptions (the hot part of the signal path): relayed
            // as they are, without a look at the payload or the record.
            _ => return Ok(None),
        };
        let applied = self.apply_step(sender, chat, step, payload).await;
        // After the step's writes: a sweep that ran meanwhile may have found nothing open yet.
        self.shared
            .maybe_open
            .store(true, std::sync::atomic::Ordering::Relaxed);
        applied
    }

    async fn apply_step(
        &self,
        sender: &User,
        chat: &Chat,
        step: Step,
        payload: &RawValue,
    ) -> Result<Option<ElsewhereNotice>, CallError> {
        let Some(payload) = CallPayload::read(payload) else {
            return Ok(None); // not a call this server can follow (no call_id): relay as before
        };
        let call_id = CallId::parse(&payload.call_id)?;
        let device = payload.device.as_deref().map(DeviceId::parse).transpose()?;
        let device = device.as_ref().map(DeviceId::as_str);
        if step == Step::Invite {
            self.invite(sender, chat, call_id, device, &payload).await?;
            return Ok(None);
        }
        let Some(call) = self.store().call(&call_id).await? else {
            return Ok(None); // a call that began without an invite (the guide's own flow)
        };
        if call.chat_id != chat.id || !call.involves(sender.id) {
            return Err(CallError::NotInCall);
        }
        match step {
            Step::Accept => self.accept(sender, call, device).await,
            Step::Decline => self.decline(sender, call, device, &payload).await,
            Step::Cancel | Step::End => {
                self.hang_up(sender, call, device, &payload).await?;
                Ok(None)
            }
            Step::Invite => Ok(None),
        }
    }

    async fn invite(
        &self,
        sender: &User,
        chat: &Chat,
        call_id: CallId,
        device: Option<&str>,
        payload: &CallPayload,
    ) -> Result<(), CallError> {
        // Calls are one-to-one: in a group chat the record would not know whom it is with.
        let others: Vec<&User> = chat
            .participants
            .iter()
            .filter(|p| p.id != sender.id)
            .collect();
        let [callee] = others.as_slice() else {
            return Ok(());
        };
        if let Some(existing) = self.store().call(&call_id).await? {
            return if existing.caller != sender.id {
                Err(CallError::CallIdTaken(call_id.as_str().to_owned()))
            } else if existing.outcome == Some(CallOutcome::Busy) {
                // The same refused invite again (its second path): refused again, or it would ring.
                Err(CallError::Busy {
                    name: callee.display_name.clone(),
                })
            } else {
                Ok(()) // the same invite again (a retry, or its second path)
            };
        }
        let now = self.now();
        let mut record = CallRecord {
            call_id,
            chat_id: chat.id,
            caller: sender.id,
            callee: callee.id,
            caller_device: device.map(str::to_owned),
            answered_device: None,
            state: CallState::Ringing,
            video: payload.video.unwrap_or(true),
            created_at: now,
            answered_at: None,
            ended_at: None,
            outcome: None,
            reason: None,
            ended_by: None,
        };
        let in_call = |calls: &[CallRecord]| calls.iter().any(|c| c.state == CallState::Active);
        if in_call(&self.store().open_calls_of(sender.id).await?) {
            return Err(CallError::AlreadyInCall);
        }
        if in_call(&self.store().open_calls_of(callee.id).await?) {
            // Recorded, so the callee's history shows who tried to call.
            record.state = CallState::Ended;
            record.ended_at = Some(now);
            record.outcome = Some(CallOutcome::Busy);
            record.reason = Some("busy".to_owned());
            if self.store().insert_call(&record).await? {
                self.write_event(&record).await?;
            }
            return Err(CallError::Busy {
                name: callee.display_name.clone(),
            });
        }
        if !self.store().insert_call(&record).await? {
            // Raced with the same invite on its other path.
            return Ok(());
        }
        tracing::info!(call_id = record.call_id.as_str(), chat_id = %chat.id,
            "[CALL] {} is calling {} in chat {}", sender.display_name, callee.display_name, chat.id);
        Ok(())
    }

    async fn accept(
        &self,
        sender: &User,
        call: CallRecord,
        device: Option<&str>,
    ) -> Result<Option<ElsewhereNotice>, CallError> {
        if sender.id != call.callee {
            return Err(CallError::NotInCall);
        }
        let call = match call.state {
            CallState::Ringing => match self
                .store()
                .answer_call(&call.call_id, device, self.now())
                .await?
            {
                Some(answered) => {
                    tracing::info!(
                        call_id = answered.call_id.as_str(),
                        device,
                        "[CALL] {} answered",
                        sender.display_name
                    );
                    self.close_glare_twins(&answered).await?;
                    return Ok(elsewhere(&answered, sender.id, device, "answered"));
                }
                // Someone else moved it first: decide on what they left.
                None => self.reload(&call.call_id).await?,
            },
            _ => call,
        };
        match call.state {
            CallState::Active if same_device(call.answered_device.as_deref(), device) => Ok(None),
            CallState::Active => Err(CallError::AnsweredElsewhere),
            CallState::Ended => Err(CallError::CallOver),
            CallState::Ringing => Err(CallError::CallOver), // cannot happen after a failed CAS
        }
    }

    async fn decline(
        &self,
        sender: &User,
        call: CallRecord,
        device: Option<&str>,
        payload: &CallPayload,
    ) -> Result<Option<ElsewhereNotice>, CallError> {
        if sender.id != call.callee {
            return Err(CallError::NotInCall);
        }
        if call.state == CallState::Ringing {
            let reason = reason_token(payload.reason.as_deref());
            let outcome = if reason.as_deref() == Some("busy") {
                CallOutcome::Busy
            } else {
                CallOutcome::Declined
            };
            if let Some(ended) = self
                .end(
                    &call,
                    CallState::Ringing,
                    outcome,
                    reason.as_deref(),
                    Some(sender.id),
                )
                .await?
            {
                return Ok(elsewhere(&ended, sender.id, device, "declined"));
            }
        }
        let call = self.reload(&call.call_id).await?;
        match call.state {
            CallState::Active if same_device(call.answered_device.as_deref(), device) => Ok(None),
            CallState::Active => Err(CallError::AnsweredElsewhere),
            // The same decline again (its second path, or a retry).
            CallState::Ended if call.ended_by == Some(sender.id) => Ok(None),
            _ => Err(CallError::CallOver),
        }
    }

    /// `call.cancel` and `call.end`: whoever hangs up, from the device that is in the call.
    async fn hang_up(
        &self,
        sender: &User,
        call: CallRecord,
        device: Option<&str>,
        payload: &CallPayload,
    ) -> Result<(), CallError> {
        if !same_device(call.device_of(sender.id), device) {
            return Err(CallError::NotInCall);
        }
        let reason = reason_token(payload.reason.as_deref());
        match call.state {
            CallState::Ringing => {
                if sender.id != call.caller {
                    return Err(CallError::NotInCall); // the callee declines instead
                }
                let reason = match reason.as_deref() {
                    Some("no-answer") => "no-answer",
                    Some("unreachable") | Some("offline") => "offline",
                    _ => "cancelled",
                };
                self.end(
                    &call,
                    CallState::Ringing,
                    CallOutcome::Missed,
                    Some(reason),
                    Some(sender.id),
                )
                .await?;
            }
            CallState::Active => {
                let (outcome, reason) = if reason.as_deref() == Some("connection-failed") {
                    let cause = reason_token(payload.cause.as_deref());
                    (
                        CallOutcome::Failed,
                        cause.unwrap_or_else(|| "connection-failed".to_owned()),
                    )
                } else {
                    (CallOutcome::Ended, "hangup".to_owned())
                };
                self.end(
                    &call,
                    CallState::Active,
                    outcome,
                    Some(&reason),
                    Some(sender.id),
                )
                .await?;
            }
            // Hanging up a call that is over already changes nothing; the signal still goes.
            CallState::Ended => {}
        }
        Ok(())
    }

    /// Both people called each other at once and one call was answered: the other one, still
    /// ringing between the same two people, is closed without a history entry.
    async fn close_glare_twins(&self, answered: &CallRecord) -> Result<(), StoreError> {
        for twin in self.store().open_calls_of(answered.callee).await? {
            let same_pair = twin.involves(answered.caller) && twin.chat_id == answered.chat_id;
            if twin.call_id != answered.call_id && twin.state == CallState::Ringing && same_pair {
                self.end(
                    &twin,
                    CallState::Ringing,
                    CallOutcome::Merged,
                    Some("glare"),
                    None,
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn reload(&self, id: &CallId) -> Result<CallRecord, StoreError> {
        self.store()
            .call(id)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Ends `call` if it is still in state `from`, and writes its event message. `None` when
    /// someone else changed it first.
    async fn end(
        &self,
        call: &CallRecord,
        from: CallState,
        outcome: CallOutcome,
        reason: Option<&str>,
        ended_by: Option<UserId>,
    ) -> Result<Option<CallRecord>, StoreError> {
        let ended = self
            .store()
            .end_call(CallEnd {
                call: &call.call_id,
                from,
                outcome,
                reason,
                ended_by,
                now: self.now(),
            })
            .await?;
        if let Some(ended) = &ended {
            tracing::info!(
                call_id = ended.call_id.as_str(),
                outcome = outcome.as_str(),
                reason,
                "[CALL] Call in chat {} ended: {}",
                ended.chat_id,
                outcome.as_str()
            );
            self.write_event(ended).await?;
        }
        Ok(ended)
    }

    /// Adds the call's event message to its chat and pushes it to both people.
    async fn write_event(&self, call: &CallRecord) -> Result<(), StoreError> {
        if call.outcome == Some(CallOutcome::Merged) {
            return Ok(());
        }
        let Some(chat) = self.store().chat(call.chat_id).await? else {
            return Ok(()); // the chat was deleted meanwhile
        };
        let Some(caller) = chat.participants.iter().find(|p| p.id == call.caller) else {
            return Ok(());
        };
        let event = CallEvent::of(call);
        let message = self
            .store()
            .add_message(NewMessage {
                chat: chat.id,
                sender: caller,
                body: &event.summary(),
                call: Some(&event),
                now: call.ended_at.unwrap_or_else(|| self.now()),
            })
            .await?;
        crate::relay::publish_message(self.shared.bus.as_ref(), &chat, &message);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Invite,
    Accept,
    Decline,
    Cancel,
    End,
}

/// Whether `device` may act for the device on record. A client that sends no device (an older
/// one) acts for whichever is on record, as before devices existed.
fn same_device(on_record: Option<&str>, device: Option<&str>) -> bool {
    match (on_record, device) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

fn elsewhere(
    call: &CallRecord,
    user: UserId,
    device: Option<&str>,
    outcome: &str,
) -> Option<ElsewhereNotice> {
    let json = serde_json::json!({
        "call_id": call.call_id.as_str(),
        "device": device,
        "outcome": outcome,
    });
    // Plain data always serialises; `None` is never seen in practice.
    let payload = serde_json::value::to_raw_value(&json).ok()?;
    Some(ElsewhereNotice { user, payload })
}
