//! Rows as both SQL backends return them (`sqlx::FromRow` is generic over the database), and
//! their conversion into the store's records: the mapping is written once for SQLite and
//! PostgreSQL alike.

use serde_json::value::RawValue;

use super::records::*;
use super::{StoreError, StoreResult};
use crate::domain::{
    CallId, CallOutcome, CallRecord, CallState, ChatId, MessageId, Seq, Timestamp, UserId,
};

#[derive(sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: UserId(row.id),
            username: row.username,
            display_name: row.display_name,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct CredentialsRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub password_hash: String,
}

#[derive(sqlx::FromRow)]
pub struct SessionRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub csrf_token: String,
}

/// One participant of one chat (`chats JOIN chat_participants JOIN users`).
#[derive(sqlx::FromRow)]
pub struct ChatMemberRow {
    pub chat_id: i64,
    pub title: Option<String>,
    pub created_at: i64,
    pub user_id: i64,
    pub user_username: String,
    pub user_display_name: String,
}

/// Groups member rows (ordered by chat) into chats.
pub fn chats_from(rows: Vec<ChatMemberRow>) -> Vec<Chat> {
    let mut chats: Vec<Chat> = Vec::new();
    for row in rows {
        let participant = User {
            id: UserId(row.user_id),
            username: row.user_username,
            display_name: row.user_display_name,
        };
        match chats.last_mut() {
            Some(chat) if chat.id.0 == row.chat_id => chat.participants.push(participant),
            _ => chats.push(Chat {
                id: ChatId(row.chat_id),
                title: row.title,
                participants: vec![participant],
                created_at: Timestamp(row.created_at),
            }),
        }
    }
    chats
}

/// The columns of a message with its sender, as `MESSAGE_COLUMNS` selects them.
#[derive(sqlx::FromRow)]
pub struct MessageRow {
    pub id: i64,
    pub chat_id: i64,
    pub kind: String,
    pub body: String,
    pub meta: Option<String>,
    pub created_at: i64,
    pub sender_id: i64,
    pub sender_username: String,
    pub sender_display_name: String,
}

impl From<MessageRow> for Message {
    fn from(row: MessageRow) -> Self {
        // A call event that cannot be read back (written by a newer version, say) shows as its
        // plain-text body rather than failing the whole list.
        let call = (row.kind == "call")
            .then(|| {
                row.meta
                    .as_deref()
                    .and_then(|m| serde_json::from_str(m).ok())
            })
            .flatten();
        Message {
            id: MessageId(row.id),
            chat_id: ChatId(row.chat_id),
            kind: if call.is_some() {
                MessageKind::Call
            } else {
                MessageKind::Text
            },
            sender: User {
                id: UserId(row.sender_id),
                username: row.sender_username,
                display_name: row.sender_display_name,
            },
            body: row.body,
            call,
            created_at: Timestamp(row.created_at),
        }
    }
}

/// A chat of one participant with its unread count and, when it has messages, the last one.
#[derive(sqlx::FromRow)]
pub struct ChatActivityRow {
    pub activity_chat_id: i64,
    pub unread: i64,
    #[sqlx(flatten)]
    pub last: OptionalMessageRow,
}

#[derive(sqlx::FromRow)]
pub struct OptionalMessageRow {
    pub id: Option<i64>,
    pub chat_id: Option<i64>,
    pub kind: Option<String>,
    pub body: Option<String>,
    pub meta: Option<String>,
    pub created_at: Option<i64>,
    pub sender_id: Option<i64>,
    pub sender_username: Option<String>,
    pub sender_display_name: Option<String>,
}

impl From<ChatActivityRow> for ChatActivity {
    fn from(row: ChatActivityRow) -> Self {
        let m = row.last;
        let last_message = match (m.id, m.chat_id, m.kind, m.body, m.created_at, m.sender_id) {
            (
                Some(id),
                Some(chat_id),
                Some(kind),
                Some(body),
                Some(created_at),
                Some(sender_id),
            ) => Some(Message::from(MessageRow {
                id,
                chat_id,
                kind,
                body,
                meta: m.meta,
                created_at,
                sender_id,
                sender_username: m.sender_username.unwrap_or_default(),
                sender_display_name: m.sender_display_name.unwrap_or_default(),
            })),
            _ => None,
        };
        ChatActivity {
            chat: ChatId(row.activity_chat_id),
            last_message,
            unread: u32::try_from(row.unread).unwrap_or(u32::MAX),
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct CallRow {
    pub call_id: String,
    pub chat_id: i64,
    pub caller_id: i64,
    pub callee_id: i64,
    pub caller_device: Option<String>,
    pub answered_device: Option<String>,
    pub state: String,
    pub video: bool,
    pub created_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub ended_by: Option<i64>,
}

impl TryFrom<CallRow> for CallRecord {
    type Error = StoreError;

    fn try_from(row: CallRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| {
            StoreError::Database(sqlx::Error::Decode(
                format!("call {}: unknown {what}", row.call_id).into(),
            ))
        };
        Ok(CallRecord {
            call_id: CallId::parse(&row.call_id).map_err(|_| corrupt("call_id"))?,
            chat_id: ChatId(row.chat_id),
            caller: UserId(row.caller_id),
            callee: UserId(row.callee_id),
            caller_device: row.caller_device.clone(),
            answered_device: row.answered_device.clone(),
            state: CallState::parse(&row.state).ok_or_else(|| corrupt("state"))?,
            video: row.video,
            created_at: Timestamp(row.created_at),
            answered_at: row.answered_at.map(Timestamp),
            ended_at: row.ended_at.map(Timestamp),
            outcome: match row.outcome.as_deref() {
                None => None,
                Some(raw) => Some(CallOutcome::parse(raw).ok_or_else(|| corrupt("outcome"))?),
            },
            reason: row.reason.clone(),
            ended_by: row.ended_by.map(UserId),
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct SignalRecordRow {
    pub id: i64,
    pub seq: i64,
    pub chat_id: i64,
    pub kind: String,
    pub payload: String,
    pub signal_id: String,
    pub created_at: i64,
    pub sender_id: i64,
    pub sender_username: String,
    pub sender_display_name: String,
}

pub fn signals_from(rows: Vec<SignalRecordRow>) -> StoreResult<Vec<StoredSignal>> {
    rows.into_iter()
        .map(|row| {
            Ok(StoredSignal {
                id: row.id,
                seq: Seq(row.seq),
                chat_id: ChatId(row.chat_id),
                kind: row.kind,
                // Stored payloads were validated JSON when they came in.
                payload: RawValue::from_string(row.payload)
                    .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?,
                sender: User {
                    id: UserId(row.sender_id),
                    username: row.sender_username,
                    display_name: row.sender_display_name,
                },
                signal_id: row.signal_id,
                created_at: Timestamp(row.created_at),
            })
        })
        .collect()
}

#[derive(sqlx::FromRow)]
pub struct AckedRow {
    pub sender_id: i64,
    pub recipient_id: i64,
    pub signal_id: String,
    pub kind: String,
    pub chat_id: i64,
    pub seq: i64,
}

impl From<AckedRow> for Acked {
    fn from(row: AckedRow) -> Self {
        Acked {
            sender: UserId(row.sender_id),
            recipient: UserId(row.recipient_id),
            signal_id: row.signal_id,
            kind: row.kind,
            chat: ChatId(row.chat_id),
            seq: Seq(row.seq),
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct PreviousSendRow {
    pub chat_id: i64,
    pub kind: String,
    pub to_user: Option<i64>,
    pub recipients: i64,
}

impl From<PreviousSendRow> for PreviousSend {
    fn from(row: PreviousSendRow) -> Self {
        PreviousSend {
            chat: ChatId(row.chat_id),
            kind: row.kind,
            to: row.to_user.map(UserId),
            recipients: row.recipients as u32,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct InspectRow {
    pub id: i64,
    pub seq: i64,
    pub chat_id: i64,
    pub kind: String,
    pub is_call: bool,
    pub sender: String,
    pub receiver: String,
    pub created_at: i64,
    pub consumed_at: Option<i64>,
    pub bytes: i64,
}

impl From<InspectRow> for SignalRow {
    fn from(row: InspectRow) -> Self {
        SignalRow {
            id: row.id,
            seq: row.seq,
            chat_id: row.chat_id,
            kind: row.kind,
            is_call: row.is_call,
            sender: row.sender,
            receiver: row.receiver,
            created_at: Timestamp(row.created_at),
            consumed_at: row.consumed_at.map(Timestamp),
            payload_bytes: row.bytes,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct CountRow {
    pub username: String,
    pub received: i64,
    pub unconsumed: i64,
    pub sent: i64,
}

impl From<CountRow> for UserSignalCount {
    fn from(row: CountRow) -> Self {
        UserSignalCount {
            username: row.username,
            received: row.received,
            unconsumed: row.unconsumed,
            sent: row.sent,
        }
    }
}

/// Converts every row of a result set.
pub fn all<R, T: From<R>>(rows: Vec<R>) -> Vec<T> {
    rows.into_iter().map(T::from).collect()
}
