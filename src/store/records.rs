//! The records the store takes and gives back.

use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::domain::{
    CallEvent, CallId, CallOutcome, CallState, ChatId, MessageId, Seq, Timestamp, UserId,
};

/// A user as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
}

#[derive(Debug)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
    pub now: Timestamp,
}

/// A user with the hash its password is checked against.
#[derive(Debug)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

#[derive(Debug)]
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user: UserId,
    pub csrf_token: &'a str,
    pub now: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
}

#[derive(Debug)]
pub struct NewChat<'a> {
    pub creator: UserId,
    /// Every participant, the creator included, without duplicates.
    pub participants: &'a [UserId],
    pub title: Option<&'a str>,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Chat {
    pub id: ChatId,
    pub title: Option<String>,
    pub participants: Vec<User>,
    pub created_at: Timestamp,
}

impl Chat {
    pub fn has_participant(&self, user: UserId) -> bool {
        self.participants.iter().any(|p| p.id == user)
    }
}

#[derive(Debug)]
pub struct NewMessage<'a> {
    pub chat: ChatId,
    pub sender: &'a User,
    pub body: &'a str,
    /// `Some` for a call event message (`kind: "call"`).
    pub call: Option<&'a CallEvent>,
    pub now: Timestamp,
}

/// What a message is: something a person wrote, or the record of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Text,
    Call,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Call => "call",
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Message {
    pub id: MessageId,
    pub chat_id: ChatId,
    pub kind: MessageKind,
    pub sender: User,
    /// The text; for a call event, a plain-text summary ("Missed video call").
    pub body: String,
    /// The call event, for `kind: "call"`; null otherwise.
    pub call: Option<CallEvent>,
    pub created_at: Timestamp,
}

/// Ends a call, if it is still in state `from` (a compare-and-set, so two nodes or two tabs
/// racing to end or answer a call settle on one outcome).
#[derive(Debug, Clone, Copy)]
pub struct CallEnd<'a> {
    pub call: &'a CallId,
    pub from: CallState,
    pub outcome: CallOutcome,
    pub reason: Option<&'a str>,
    pub ended_by: Option<UserId>,
    pub now: Timestamp,
}

/// One chat as its list entry shows it to one participant.
#[derive(Debug, Clone)]
pub struct ChatActivity {
    pub chat: ChatId,
    pub last_message: Option<Message>,
    /// Messages from others after this participant's read marker.
    pub unread: u32,
}

#[derive(Debug)]
pub struct NewSignal<'a> {
    pub chat: ChatId,
    pub sender: UserId,
    pub signal_id: &'a str,
    pub kind: &'a str,
    pub is_call: bool,
    /// The client's payload, verbatim JSON.
    pub payload: &'a str,
    /// `Some` when the sender addressed one participant.
    pub to: Option<UserId>,
    pub recipients: &'a [UserId],
    pub now: Timestamp,
}

/// Acknowledge the recipient's signals up to `upto` (in `chat` only, when given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRange {
    pub recipient: UserId,
    pub chat: Option<ChatId>,
    pub upto: Seq,
}

/// One group commit: the signals to append and the acknowledgements to apply, written in one
/// transaction. Writing many at once is what lets one SQLite file keep up with tens of
/// thousands of signals a second: the cost of a commit is paid once per batch.
#[derive(Debug)]
pub struct WriteBatch<'a> {
    pub appends: &'a [NewSignal<'a>],
    pub acks: &'a [AckRange],
    /// Call signals created before this instant have expired: acknowledging never touches them.
    pub call_cutoff: Timestamp,
    pub now: Timestamp,
}

/// What a [`WriteBatch`] did, item by item, in the order of the batch.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub appended: Vec<Appended>,
    pub acked: Vec<Vec<Acked>>,
}

/// One recipient's copy of a freshly stored signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub recipient: UserId,
    pub seq: Seq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    Stored(Vec<Delivery>),
    /// `(sender, signal_id)` was stored before; nothing new was written.
    Duplicate(PreviousSend),
}

/// What the first send of a `signal_id` stored, to answer a retry with the same result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSend {
    pub chat: ChatId,
    pub kind: String,
    pub to: Option<UserId>,
    pub recipients: u32,
}

/// Which of one recipient's signals a read is about.
#[derive(Debug, Clone, Copy)]
pub struct SignalQuery {
    pub recipient: UserId,
    pub chat: ChatId,
    pub now: Timestamp,
    /// Call signals created before this instant have expired.
    pub call_cutoff: Timestamp,
    pub limit: u32,
}

/// A signal as its recipient receives it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoredSignal {
    pub id: i64,
    #[schema(value_type = i64)]
    pub seq: Seq,
    pub chat_id: ChatId,
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    pub sender: User,
    pub signal_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// A recipient's signal that changed state (acknowledged or expired): what its sender needs to
/// know to get a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub sender: UserId,
    pub recipient: UserId,
    pub signal_id: String,
    pub kind: String,
    pub chat: ChatId,
    pub seq: Seq,
}

#[derive(Debug, Clone, Copy)]
pub struct CleanupCutoffs {
    /// Consumed signals consumed before this are deleted.
    pub consumed_before: Timestamp,
    /// Any signal (and idempotency record) created before this is deleted.
    pub created_before: Timestamp,
    /// Sessions expiring before this are deleted.
    pub now: Timestamp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub consumed: u64,
    pub stale: u64,
    pub sends: u64,
    pub sessions: u64,
}

/// Filters of `switchboard signals`.
#[derive(Debug, Clone, Default)]
pub struct InspectFilter {
    pub chat: Option<ChatId>,
    /// Signals this user sent or receives.
    pub user: Option<UserId>,
    pub recent_limit: u32,
}

/// One stored row, as the inspection tool shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SignalRow {
    pub id: i64,
    pub seq: i64,
    pub chat_id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub is_call: bool,
    pub sender: String,
    pub receiver: String,
    pub created_at: Timestamp,
    pub consumed_at: Option<Timestamp>,
    pub payload_bytes: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserSignalCount {
    pub username: String,
    pub received: i64,
    pub unconsumed: i64,
    pub sent: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub total: i64,
    pub unconsumed: i64,
    pub recent: Vec<SignalRow>,
    pub per_user: Vec<UserSignalCount>,
}
