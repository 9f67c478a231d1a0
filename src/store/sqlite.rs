//! The embedded default store: one SQLite file in WAL mode.
//!
//! All writes go through a pool of exactly one connection. SQLite allows one writer at a time
//! anyway; queueing writers in-process (instead of letting several connections race for the
//! file lock) means no `SQLITE_BUSY` on lock upgrade, and it makes the per-recipient `seq`
//! trivially follow commit order. Reads use a separate pool and never wait for the writer.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::value::RawValue;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;

use super::*;
use crate::domain::MessageId;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Cleanup deletes in batches so a big backlog never holds the write lock for long.
const CLEANUP_BATCH: i64 = 5_000;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl(url.to_owned()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode survives a crash of the process; only a power cut can lose the
            // last transactions. Signals live for seconds, so this trade is the right one.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(StoreError::classify)?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await
            .map_err(StoreError::classify)?;
        Ok(Self { writer, reader })
    }
}

fn db(err: sqlx::Error) -> StoreError {
    StoreError::classify(err)
}

fn user_from(row: &SqliteRow, prefix: &str) -> Result<User, sqlx::Error> {
    Ok(User {
        id: UserId(row.try_get(format!("{prefix}id").as_str())?),
        username: row.try_get(format!("{prefix}username").as_str())?,
        display_name: row.try_get(format!("{prefix}display_name").as_str())?,
    })
}

fn signal_from(row: &SqliteRow) -> Result<StoredSignal, sqlx::Error> {
    let payload: String = row.try_get("payload")?;
    Ok(StoredSignal {
        id: row.try_get("id")?,
        seq: Seq(row.try_get("seq")?),
        chat_id: ChatId(row.try_get("chat_id")?),
        kind: row.try_get("kind")?,
        payload: RawValue::from_string(payload).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        sender: user_from(row, "sender_")?,
        signal_id: row.try_get("signal_id")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

fn acked_from(rows: &[SqliteRow]) -> StoreResult<Vec<Acked>> {
    rows.iter()
        .map(|row| {
            Ok(Acked {
                sender: UserId(row.try_get("sender_id")?),
                recipient: UserId(row.try_get("recipient_id")?),
                signal_id: row.try_get("signal_id")?,
                chat: ChatId(row.try_get("chat_id")?),
                seq: Seq(row.try_get("seq")?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(db)
}

/// Groups `chat JOIN participant` rows (ordered by chat) into chats.
fn chats_from(rows: &[SqliteRow]) -> Result<Vec<Chat>, sqlx::Error> {
    let mut chats: Vec<Chat> = Vec::new();
    for row in rows {
        let id = ChatId(row.try_get("chat_id")?);
        let participant = user_from(row, "user_")?;
        match chats.last_mut() {
            Some(chat) if chat.id == id => chat.participants.push(participant),
            _ => chats.push(Chat {
                id,
                title: row.try_get("title")?,
                participants: vec![participant],
                created_at: Timestamp(row.try_get("created_at")?),
            }),
        }
    }
    Ok(chats)
}

const CHAT_COLUMNS: &str = "SELECT c.id AS chat_id, c.title, c.created_at, \
     u.id AS user_id, u.username AS user_username, u.display_name AS user_display_name \
     FROM chats c JOIN chat_participants p ON p.chat_id = c.id JOIN users u ON u.id = p.user_id";

const SIGNAL_COLUMNS: &str = "SELECT s.id, s.seq, s.chat_id, s.kind, s.payload, s.signal_id, \
     s.created_at, u.id AS sender_id, u.username AS sender_username, \
     u.display_name AS sender_display_name \
     FROM signals s JOIN users u ON u.id = s.sender_id";

/// The deliverable signals of one recipient in one chat: unconsumed, and not an expired call signal.
const DELIVERABLE: &str = "s.recipient_id = ?1 AND s.chat_id = ?2 AND s.consumed_at IS NULL \
     AND (s.is_call = 0 OR s.created_at >= ?3)";

const INSPECT_FILTER: &str =
    "(?1 IS NULL OR s.chat_id = ?1) AND (?2 IS NULL OR s.sender_id = ?2 OR s.recipient_id = ?2)";

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn create_user(&self, new: NewUser<'_>) -> StoreResult<User> {
        let result = sqlx::query(
            "INSERT INTO users (username, display_name, password_hash, created_at) \
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(new.username)
        .bind(new.display_name)
        .bind(new.password_hash)
        .bind(new.now.millis())
        .fetch_one(&self.writer)
        .await;
        match result {
            Ok(row) => Ok(User {
                id: UserId(row.try_get("id").map_err(db)?),
                username: new.username.to_owned(),
                display_name: new.display_name.to_owned(),
            }),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::UsernameTaken)
            }
            Err(e) => Err(db(e)),
        }
    }

    async fn set_password(&self, user: UserId, password_hash: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(user.0)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn credentials(&self, username: &str) -> StoreResult<Option<Credentials>> {
        let row = sqlx::query(
            "SELECT id, username, display_name, password_hash FROM users WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        row.map(|row| {
            Ok(Credentials {
                user: user_from(&row, "")?,
                password_hash: row.try_get("password_hash")?,
            })
        })
        .transpose()
        .map_err(db)
    }

    async fn users_by_username(&self, usernames: &[String]) -> StoreResult<Vec<User>> {
        if usernames.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = vec!["?"; usernames.len()].join(", ");
        let sql = format!(
            "SELECT id, username, display_name FROM users WHERE username IN ({placeholders}) \
             ORDER BY id"
        );
        let mut query = sqlx::query(&sql);
        for name in usernames {
            query = query.bind(name);
        }
        let rows = query.fetch_all(&self.reader).await.map_err(db)?;
        rows.iter()
            .map(|row| user_from(row, ""))
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query("SELECT id, username, display_name FROM users ORDER BY id")
            .fetch_all(&self.reader)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|row| user_from(row, ""))
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    async fn create_session(&self, new: NewSession<'_>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(new.token_hash)
        .bind(new.user.0)
        .bind(new.csrf_token)
        .bind(new.now.millis())
        .bind(new.expires_at.millis())
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn session(&self, token_hash: &str, now: Timestamp) -> StoreResult<Option<Session>> {
        let row = sqlx::query(
            "SELECT s.csrf_token, u.id, u.username, u.display_name \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ? AND s.expires_at > ?",
        )
        .bind(token_hash)
        .bind(now.millis())
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        row.map(|row| {
            Ok(Session {
                user: user_from(&row, "")?,
                csrf_token: row.try_get("csrf_token")?,
            })
        })
        .transpose()
        .map_err(db)
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn create_chat(&self, new: NewChat<'_>) -> StoreResult<Chat> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        let chat_id: i64 = sqlx::query_scalar(
            "INSERT INTO chats (title, created_by, created_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(new.title)
        .bind(new.creator.0)
        .bind(new.now.millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        for participant in new.participants {
            sqlx::query("INSERT INTO chat_participants (chat_id, user_id) VALUES (?, ?)")
                .bind(chat_id)
                .bind(participant.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let rows = sqlx::query(&format!("{CHAT_COLUMNS} WHERE c.id = ? ORDER BY u.id"))
            .bind(chat_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        chats_from(&rows)
            .map_err(db)?
            .pop()
            .ok_or_else(|| StoreError::Database(sqlx::Error::RowNotFound))
    }

    async fn direct_chat(&self, a: UserId, b: UserId) -> StoreResult<Option<Chat>> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT c.id FROM chats c WHERE c.title IS NULL \
             AND (SELECT COUNT(*) FROM chat_participants p WHERE p.chat_id = c.id) = 2 \
             AND EXISTS (SELECT 1 FROM chat_participants p WHERE p.chat_id = c.id AND p.user_id = ?) \
             AND EXISTS (SELECT 1 FROM chat_participants p WHERE p.chat_id = c.id AND p.user_id = ?) \
             ORDER BY c.id LIMIT 1",
        )
        .bind(a.0)
        .bind(b.0)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        match id {
            Some(id) => self.chat(ChatId(id)).await,
            None => Ok(None),
        }
    }

    async fn chat(&self, id: ChatId) -> StoreResult<Option<Chat>> {
        let rows = sqlx::query(&format!("{CHAT_COLUMNS} WHERE c.id = ? ORDER BY u.id"))
            .bind(id.0)
            .fetch_all(&self.reader)
            .await
            .map_err(db)?;
        Ok(chats_from(&rows).map_err(db)?.pop())
    }

    async fn chats_of(&self, user: UserId) -> StoreResult<Vec<Chat>> {
        let rows = sqlx::query(&format!(
            "{CHAT_COLUMNS} WHERE c.id IN (SELECT chat_id FROM chat_participants WHERE user_id = ?) \
             ORDER BY c.id DESC, u.id"
        ))
        .bind(user.0)
        .fetch_all(&self.reader)
        .await
        .map_err(db)?;
        chats_from(&rows).map_err(db)
    }

    async fn add_message(&self, new: NewMessage<'_>) -> StoreResult<Message> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO messages (chat_id, sender_id, body, created_at) VALUES (?, ?, ?, ?) \
             RETURNING id",
        )
        .bind(new.chat.0)
        .bind(new.sender.id.0)
        .bind(new.body)
        .bind(new.now.millis())
        .fetch_one(&self.writer)
        .await
        .map_err(db)?;
        Ok(Message {
            id: MessageId(id),
            chat_id: new.chat,
            sender: new.sender.clone(),
            body: new.body.to_owned(),
            created_at: new.now,
        })
    }

    async fn messages(
        &self,
        chat: ChatId,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let rows = sqlx::query(
            "SELECT m.id, m.chat_id, m.body, m.created_at, u.id AS sender_id, \
             u.username AS sender_username, u.display_name AS sender_display_name \
             FROM messages m JOIN users u ON u.id = m.sender_id \
             WHERE m.chat_id = ?1 AND (?2 IS NULL OR m.id < ?2) ORDER BY m.id DESC LIMIT ?3",
        )
        .bind(chat.0)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db)?;
        let mut messages = rows
            .iter()
            .map(|row| {
                Ok(Message {
                    id: MessageId(row.try_get("id")?),
                    chat_id: ChatId(row.try_get("chat_id")?),
                    sender: user_from(row, "sender_")?,
                    body: row.try_get("body")?,
                    created_at: Timestamp(row.try_get("created_at")?),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db)?;
        messages.reverse();
        Ok(messages)
    }

    async fn append_signal(&self, new: NewSignal<'_>) -> StoreResult<Appended> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        let claimed = sqlx::query(
            "INSERT INTO signal_sends \
             (sender_id, signal_id, chat_id, kind, to_user, recipients, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sender_id, signal_id) DO NOTHING",
        )
        .bind(new.sender.0)
        .bind(new.signal_id)
        .bind(new.chat.0)
        .bind(new.kind)
        .bind(new.to.map(|u| u.0))
        .bind(new.recipients.len() as i64)
        .bind(new.now.millis())
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected()
            == 1;
        if !claimed {
            let row = sqlx::query(
                "SELECT chat_id, kind, to_user, recipients FROM signal_sends \
                 WHERE sender_id = ? AND signal_id = ?",
            )
            .bind(new.sender.0)
            .bind(new.signal_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            let previous = PreviousSend {
                chat: ChatId(row.try_get("chat_id").map_err(db)?),
                kind: row.try_get("kind").map_err(db)?,
                to: row
                    .try_get::<Option<i64>, _>("to_user")
                    .map_err(db)?
                    .map(UserId),
                recipients: row.try_get::<i64, _>("recipients").map_err(db)? as u32,
            };
            tx.rollback().await.map_err(db)?;
            return Ok(Appended::Duplicate(previous));
        }
        let mut deliveries = Vec::with_capacity(new.recipients.len());
        for &recipient in new.recipients {
            let seq: i64 = sqlx::query_scalar(
                "INSERT INTO signal_counters (user_id, last_seq) VALUES (?, 1) \
                 ON CONFLICT (user_id) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq",
            )
            .bind(recipient.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO signals (recipient_id, seq, chat_id, sender_id, signal_id, kind, \
                 is_call, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(recipient.0)
            .bind(seq)
            .bind(new.chat.0)
            .bind(new.sender.0)
            .bind(new.signal_id)
            .bind(new.kind)
            .bind(new.is_call)
            .bind(new.payload)
            .bind(new.now.millis())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            deliveries.push(Delivery {
                id,
                recipient,
                seq: Seq(seq),
            });
        }
        tx.commit().await.map_err(db)?;
        Ok(Appended::Stored(deliveries))
    }

    async fn take_signals(&self, query: SignalQuery) -> StoreResult<Vec<StoredSignal>> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        let rows = sqlx::query(&format!(
            "{SIGNAL_COLUMNS} WHERE {DELIVERABLE} ORDER BY s.seq LIMIT ?4"
        ))
        .bind(query.recipient.0)
        .bind(query.chat.0)
        .bind(query.call_cutoff.millis())
        .bind(i64::from(query.limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let signals = rows
            .iter()
            .map(signal_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        if let Some(last) = signals.last() {
            sqlx::query(&format!(
                "UPDATE signals AS s SET consumed_at = ?5 WHERE {DELIVERABLE} AND s.seq <= ?4"
            ))
            .bind(query.recipient.0)
            .bind(query.chat.0)
            .bind(query.call_cutoff.millis())
            .bind(last.seq.0)
            .bind(query.now.millis())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(signals)
    }

    async fn ack(
        &self,
        recipient: UserId,
        chat: Option<ChatId>,
        upto: Seq,
        call_cutoff: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Vec<Acked>> {
        let rows = sqlx::query(
            "UPDATE signals SET consumed_at = ?4 WHERE recipient_id = ?1 \
             AND (?2 IS NULL OR chat_id = ?2) AND seq <= ?3 AND consumed_at IS NULL \
             AND (is_call = 0 OR created_at >= ?5) \
             RETURNING sender_id, recipient_id, signal_id, chat_id, seq",
        )
        .bind(recipient.0)
        .bind(chat.map(|c| c.0))
        .bind(upto.0)
        .bind(now.millis())
        .bind(call_cutoff.millis())
        .fetch_all(&self.writer)
        .await
        .map_err(db)?;
        acked_from(&rows)
    }

    async fn fetch_after(
        &self,
        recipient: UserId,
        chat: Option<ChatId>,
        after: Seq,
        call_cutoff: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<StoredSignal>> {
        let rows = sqlx::query(&format!(
            "{SIGNAL_COLUMNS} WHERE s.recipient_id = ?1 AND (?2 IS NULL OR s.chat_id = ?2) \
             AND s.consumed_at IS NULL AND (s.is_call = 0 OR s.created_at >= ?3) \
             AND s.seq > ?4 ORDER BY s.seq LIMIT ?5"
        ))
        .bind(recipient.0)
        .bind(chat.map(|c| c.0))
        .bind(call_cutoff.millis())
        .bind(after.0)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db)?;
        rows.iter()
            .map(signal_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)
    }

    async fn mark_expired(
        &self,
        call_cutoff: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Vec<Acked>> {
        let rows = sqlx::query(
            "UPDATE signals SET expired_at = ?2 WHERE is_call = 1 AND consumed_at IS NULL \
             AND expired_at IS NULL AND created_at < ?1 \
             RETURNING sender_id, recipient_id, signal_id, chat_id, seq",
        )
        .bind(call_cutoff.millis())
        .bind(now.millis())
        .fetch_all(&self.writer)
        .await
        .map_err(db)?;
        acked_from(&rows)
    }

    async fn cleanup(&self, cutoffs: CleanupCutoffs) -> StoreResult<CleanupReport> {
        let batched = |sql: &'static str, cutoff: Timestamp| {
            let writer = self.writer.clone();
            async move {
                let mut total = 0;
                loop {
                    let deleted = sqlx::query(sql)
                        .bind(cutoff.millis())
                        .bind(CLEANUP_BATCH)
                        .execute(&writer)
                        .await
                        .map_err(db)?
                        .rows_affected();
                    total += deleted;
                    if deleted < CLEANUP_BATCH as u64 {
                        return Ok::<u64, StoreError>(total);
                    }
                }
            }
        };
        Ok(CleanupReport {
            consumed: batched(
                "DELETE FROM signals WHERE id IN (SELECT id FROM signals \
                 WHERE consumed_at IS NOT NULL AND consumed_at < ?1 LIMIT ?2)",
                cutoffs.consumed_before,
            )
            .await?,
            stale: batched(
                "DELETE FROM signals WHERE id IN (SELECT id FROM signals \
                 WHERE created_at < ?1 LIMIT ?2)",
                cutoffs.created_before,
            )
            .await?,
            sends: batched(
                "DELETE FROM signal_sends WHERE rowid IN (SELECT rowid FROM signal_sends \
                 WHERE created_at < ?1 LIMIT ?2)",
                cutoffs.created_before,
            )
            .await?,
            sessions: batched(
                "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions \
                 WHERE expires_at < ?1 LIMIT ?2)",
                cutoffs.now,
            )
            .await?,
        })
    }

    async fn inspect(&self, filter: &InspectFilter) -> StoreResult<Inspection> {
        let chat = filter.chat.map(|c| c.0);
        let user = filter.user.map(|u| u.0);
        let (total, unconsumed): (i64, i64) = sqlx::query_as(&format!(
            "SELECT COUNT(*), COALESCE(SUM(s.consumed_at IS NULL), 0) FROM signals s \
             WHERE {INSPECT_FILTER}"
        ))
        .bind(chat)
        .bind(user)
        .fetch_one(&self.reader)
        .await
        .map_err(db)?;
        let recent = self
            .rows(
                filter,
                &format!("{INSPECT_FILTER} ORDER BY s.id DESC LIMIT ?3"),
                None,
            )
            .await?;
        let counts = sqlx::query(
            "SELECT u.username, \
               (SELECT COUNT(*) FROM signals s WHERE s.recipient_id = u.id \
                  AND (?1 IS NULL OR s.chat_id = ?1)) AS received, \
               (SELECT COUNT(*) FROM signals s WHERE s.recipient_id = u.id \
                  AND s.consumed_at IS NULL AND (?1 IS NULL OR s.chat_id = ?1)) AS unconsumed, \
               (SELECT COUNT(*) FROM signals s WHERE s.sender_id = u.id \
                  AND (?1 IS NULL OR s.chat_id = ?1)) AS sent \
             FROM users u WHERE (?2 IS NULL OR u.id = ?2) ORDER BY u.id",
        )
        .bind(chat)
        .bind(user)
        .fetch_all(&self.reader)
        .await
        .map_err(db)?;
        let per_user = counts
            .iter()
            .map(|row| {
                Ok(UserSignalCount {
                    username: row.try_get("username")?,
                    received: row.try_get("received")?,
                    unconsumed: row.try_get("unconsumed")?,
                    sent: row.try_get("sent")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db)?
            .into_iter()
            .filter(|c| c.received + c.sent > 0)
            .collect();
        Ok(Inspection {
            total,
            unconsumed,
            recent,
            per_user,
        })
    }

    async fn signals_since(
        &self,
        filter: &InspectFilter,
        after_id: i64,
    ) -> StoreResult<Vec<SignalRow>> {
        self.rows(
            filter,
            &format!("{INSPECT_FILTER} AND s.id > ?4 ORDER BY s.id LIMIT ?3"),
            Some(after_id),
        )
        .await
    }
}

impl SqliteStore {
    /// Inspection rows matching `condition` (which may use ?1 chat, ?2 user, ?3 limit, ?4 id).
    async fn rows(
        &self,
        filter: &InspectFilter,
        condition: &str,
        after_id: Option<i64>,
    ) -> StoreResult<Vec<SignalRow>> {
        let sql = format!(
            "SELECT s.id, s.seq, s.chat_id, s.kind, s.is_call, su.username AS sender, \
             ru.username AS receiver, s.created_at, s.consumed_at, length(s.payload) AS bytes \
             FROM signals s JOIN users su ON su.id = s.sender_id \
             JOIN users ru ON ru.id = s.recipient_id WHERE {condition}"
        );
        let mut query = sqlx::query(&sql)
            .bind(filter.chat.map(|c| c.0))
            .bind(filter.user.map(|u| u.0))
            .bind(i64::from(filter.recent_limit));
        if let Some(id) = after_id {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.reader).await.map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(SignalRow {
                    id: row.try_get("id")?,
                    seq: row.try_get("seq")?,
                    chat_id: row.try_get("chat_id")?,
                    kind: row.try_get("kind")?,
                    is_call: row.try_get("is_call")?,
                    sender: row.try_get("sender")?,
                    receiver: row.try_get("receiver")?,
                    created_at: Timestamp(row.try_get("created_at")?),
                    consumed_at: row.try_get::<Option<i64>, _>("consumed_at")?.map(Timestamp),
                    payload_bytes: row.try_get("bytes")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db)
    }
}
