//! Rows as both SQL backends return them (`sqlx::FromRow` is generic over the database), and
//! their conversion into the store's records: the mapping is written once for SQLite and
//! PostgreSQL alike.

use serde_json::value::RawValue;

use super::records::*;
use super::{StoreError, StoreResult};
use crate::domain::{ChatId, MessageId, Seq, Timestamp, UserId};

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

#[derive(sqlx::FromRow)]
pub struct MessageRow {
    pub id: i64,
    pub chat_id: i64,
    pub body: String,
    pub created_at: i64,
    pub sender_id: i64,
    pub sender_username: String,
    pub sender_display_name: String,
}

impl From<MessageRow> for Message {
    fn from(row: MessageRow) -> Self {
        Message {
            id: MessageId(row.id),
            chat_id: ChatId(row.chat_id),
            sender: User {
                id: UserId(row.sender_id),
                username: row.sender_username,
                display_name: row.sender_display_name,
            },
            body: row.body,
            created_at: Timestamp(row.created_at),
        }
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
