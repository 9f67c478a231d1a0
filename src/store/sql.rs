//! The `Store` implementation shared by SQLite and PostgreSQL.
//!
//! The SQL is written once, in the subset both databases speak (`$N` parameters, `RETURNING`,
//! `ON CONFLICT`, `CAST`), and [`sql_store!`] expands the same method bodies for each backend's
//! pool type — sqlx's traits are per database, so a macro is simpler than a generic with a
//! dozen `Encode`/`Decode` bounds. The two differences are parameters of the macro: the row lock
//! a consuming read needs on PostgreSQL, and nothing else.

/// Deliverable = unconsumed and not an expired call signal ($1 recipient, $2 chat or NULL,
/// $3 call cutoff).
pub const DELIVERABLE: &str =
    "s.recipient_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR s.chat_id = $2) \
     AND s.consumed_at IS NULL AND (s.is_call = FALSE OR s.created_at >= $3)";

pub const SIGNAL_COLUMNS: &str = "SELECT s.id, s.seq, s.chat_id, s.kind, s.payload, s.signal_id, \
     s.created_at, u.id AS sender_id, u.username AS sender_username, \
     u.display_name AS sender_display_name \
     FROM signals s JOIN users u ON u.id = s.sender_id";

pub const CHAT_COLUMNS: &str = "SELECT c.id AS chat_id, c.title, c.created_at, \
     u.id AS user_id, u.username AS user_username, u.display_name AS user_display_name \
     FROM chats c JOIN chat_participants p ON p.chat_id = c.id JOIN users u ON u.id = p.user_id";

pub const MESSAGE_COLUMNS: &str = "SELECT m.id, m.chat_id, m.kind, m.body, m.meta, m.created_at, \
     u.id AS sender_id, u.username AS sender_username, u.display_name AS sender_display_name \
     FROM messages m JOIN users u ON u.id = m.sender_id";

/// Each chat of participant $1: its newest message (if any) and how many messages from others
/// lie past the participant's read marker.
pub const CHAT_ACTIVITY: &str = "SELECT a.chat_id AS activity_chat_id, a.unread, \
     m.id, m.chat_id, m.kind, m.body, m.meta, m.created_at, \
     u.id AS sender_id, u.username AS sender_username, u.display_name AS sender_display_name \
     FROM (SELECT p.chat_id, \
             (SELECT MAX(x.id) FROM messages x WHERE x.chat_id = p.chat_id) AS last_id, \
             (SELECT COUNT(*) FROM messages x WHERE x.chat_id = p.chat_id \
                AND x.sender_id <> p.user_id AND x.id > COALESCE(r.last_read, 0)) AS unread \
           FROM chat_participants p \
           LEFT JOIN chat_reads r ON r.chat_id = p.chat_id AND r.user_id = p.user_id \
           WHERE p.user_id = $1) a \
     LEFT JOIN messages m ON m.id = a.last_id \
     LEFT JOIN users u ON u.id = m.sender_id";

pub const CALL_FIELDS: &str = "call_id, chat_id, caller_id, callee_id, caller_device, \
     answered_device, state, video, created_at, answered_at, ended_at, outcome, reason, ended_by";

pub const INSPECT_FILTER: &str = "(CAST($1 AS BIGINT) IS NULL OR s.chat_id = $1) \
     AND (CAST($2 AS BIGINT) IS NULL OR s.sender_id = $2 OR s.recipient_id = $2)";

pub const INSPECT_COLUMNS: &str = "SELECT s.id, s.seq, s.chat_id, s.kind, s.is_call, \
     su.username AS sender, ru.username AS receiver, s.created_at, s.consumed_at, \
     CAST(length(s.payload) AS BIGINT) AS bytes \
     FROM signals s JOIN users su ON su.id = s.sender_id JOIN users ru ON ru.id = s.recipient_id";

pub const ACKED_COLUMNS: &str = "RETURNING sender_id, recipient_id, signal_id, kind, chat_id, seq";

/// Rows per multi-row statement, at most: 64 rows of 9 columns stay under SQLite's oldest
/// parameter limit (999). A batch is written as full chunks plus one of the remainder, so a
/// backend's statement cache holds one text per row count, at most 64 per statement kind.
const MAX_CHUNK: usize = 64;

/// How a backend numbers parameters in multi-row statements.
#[derive(Debug, Clone, Copy)]
pub enum Placeholders {
    /// `$1, $2, …` (PostgreSQL).
    Numbered,
    /// `?, ?, …` in order. SQLite binds these by position; for `$N` sqlx asks SQLite for each
    /// parameter's name, a linear search, which made binding a 64-row insert quadratic.
    Positional,
}

/// Splits `0..n` into consecutive ranges of at most [`MAX_CHUNK`].
pub fn chunks(n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n)
        .step_by(MAX_CHUNK)
        .map(move |start| start..(start + MAX_CHUNK).min(n))
}

/// `{prefix}($1, $2), ($3, $4){suffix}` for `rows` rows of `columns` parameters.
pub fn values_sql(
    placeholders: Placeholders,
    prefix: &str,
    columns: usize,
    rows: usize,
    suffix: &str,
) -> String {
    let mut sql = String::with_capacity(prefix.len() + suffix.len() + rows * columns * 6);
    sql.push_str(prefix);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&placeholder(placeholders, row * columns + column + 1));
        }
        sql.push(')');
    }
    sql.push_str(suffix);
    sql
}

/// Marks consumed, for each of `acks` (recipient, chat or NULL, upto) rows, that recipient's
/// deliverable signals up to `upto`; then `consumed_at`, then the call cutoff.
pub fn ack_sql(placeholders: Placeholders, acks: usize) -> String {
    let mut sql = String::from("WITH a (recipient, chat, upto) AS (VALUES ");
    for row in 0..acks {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..3 {
            if column > 0 {
                sql.push_str(", ");
            }
            // Untyped parameters in VALUES would be text on PostgreSQL.
            sql.push_str("CAST(");
            sql.push_str(&placeholder(placeholders, row * 3 + column + 1));
            sql.push_str(" AS BIGINT)");
        }
        sql.push(')');
    }
    let next = 3 * acks;
    sql.push_str(") UPDATE signals AS s SET consumed_at = ");
    sql.push_str(&placeholder(placeholders, next + 1));
    sql.push_str(
        " FROM a WHERE s.recipient_id = a.recipient AND (a.chat IS NULL OR s.chat_id = a.chat) \
         AND s.consumed_at IS NULL AND s.seq <= a.upto AND (s.is_call = FALSE OR s.created_at >= ",
    );
    sql.push_str(&placeholder(placeholders, next + 2));
    sql.push_str(") RETURNING sender_id, recipient_id, signal_id, kind, chat_id, seq");
    sql
}

fn placeholder(placeholders: Placeholders, index: usize) -> String {
    match placeholders {
        Placeholders::Numbered => format!("${index}"),
        Placeholders::Positional => "?".to_owned(),
    }
}

/// Cleanup deletes in batches so a big backlog never holds locks for long: on SQLite the
/// cleanup shares the one writer with every signal, and a 5,000-row delete held the signals
/// queued behind it for tens of milliseconds.
pub const CLEANUP_BATCH: i64 = 500;

/// `created_at < $1` changes nothing (a signal is consumed after it is created) but lets the
/// `signals_created` index find the candidates instead of a scan of the whole table.
pub const CLEANUP_CONSUMED: &str = "DELETE FROM signals WHERE id IN (SELECT id FROM signals \
     WHERE created_at < $1 AND consumed_at IS NOT NULL AND consumed_at < $1 LIMIT $2)";
pub const CLEANUP_STALE: &str =
    "DELETE FROM signals WHERE id IN (SELECT id FROM signals WHERE created_at < $1 LIMIT $2)";
pub const CLEANUP_SENDS: &str = "DELETE FROM signal_sends WHERE (sender_id, signal_id) IN \
     (SELECT sender_id, signal_id FROM signal_sends WHERE created_at < $1 LIMIT $2)";
pub const CLEANUP_SESSIONS: &str = "DELETE FROM sessions WHERE token_hash IN \
     (SELECT token_hash FROM sessions WHERE expires_at < $1 LIMIT $2)";

/// Implements [`Store`](super::Store) for `$store`, whose `writer` and `reader` fields are
/// `sqlx::Pool<$db>`; `$lock` is appended to the read that precedes a consuming update;
/// `$placeholders` is how multi-row statements number their parameters.
macro_rules! sql_store {
    ($store:ty, $db:ty, $lock:expr, $placeholders:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.reader).await.map_err(db)?;
                Ok(())
            }

            async fn create_user(&self, new: NewUser<'_>) -> StoreResult<User> {
                let result = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO users (username, display_name, password_hash, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(new.username)
                .bind(new.display_name)
                .bind(new.password_hash)
                .bind(new.now.millis())
                .fetch_one(&self.writer)
                .await;
                match result {
                    Ok(id) => Ok(User {
                        id: UserId(id),
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
                sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(password_hash)
                    .bind(user.0)
                    .execute(&self.writer)
                    .await
                    .map_err(db)?;
                Ok(())
            }

            async fn credentials(&self, username: &str) -> StoreResult<Option<Credentials>> {
                let row = sqlx::query_as::<$db, CredentialsRow>(
                    "SELECT id, username, display_name, password_hash FROM users WHERE username = $1",
                )
                .bind(username)
                .fetch_optional(&self.reader)
                .await
                .map_err(db)?;
                Ok(row.map(|row| Credentials {
                    user: row.user.into(),
                    password_hash: row.password_hash,
                }))
            }

            async fn users_by_username(&self, usernames: &[String]) -> StoreResult<Vec<User>> {
                if usernames.is_empty() {
                    return Ok(Vec::new());
                }
                let placeholders: Vec<String> =
                    (1..=usernames.len()).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "SELECT id, username, display_name FROM users WHERE username IN ({}) ORDER BY id",
                    placeholders.join(", ")
                );
                let mut query = sqlx::query_as::<$db, UserRow>(&sql);
                for name in usernames {
                    query = query.bind(name);
                }
                Ok(all(query.fetch_all(&self.reader).await.map_err(db)?))
            }

            async fn list_users(&self) -> StoreResult<Vec<User>> {
                let rows = sqlx::query_as::<$db, UserRow>(
                    "SELECT id, username, display_name FROM users ORDER BY id",
                )
                .fetch_all(&self.reader)
                .await
                .map_err(db)?;
                Ok(all(rows))
            }

            async fn create_session(&self, new: NewSession<'_>) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
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
                let row = sqlx::query_as::<$db, SessionRow>(
                    "SELECT s.csrf_token, u.id, u.username, u.display_name \
                     FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.token_hash = $1 AND s.expires_at > $2",
                )
                .bind(token_hash)
                .bind(now.millis())
                .fetch_optional(&self.reader)
                .await
                .map_err(db)?;
                Ok(row.map(|row| Session {
                    user: row.user.into(),
                    csrf_token: row.csrf_token,
                }))
            }

            async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&self.writer)
                    .await
                    .map_err(db)?;
                Ok(())
            }

            async fn create_chat(&self, new: NewChat<'_>) -> StoreResult<Chat> {
                let mut tx = self.writer.begin().await.map_err(db)?;
                let chat_id = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO chats (title, created_by, created_at) VALUES ($1, $2, $3) RETURNING id",
                )
                .bind(new.title)
                .bind(new.creator.0)
                .bind(new.now.millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
                for participant in new.participants {
                    sqlx::query("INSERT INTO chat_participants (chat_id, user_id) VALUES ($1, $2)")
                        .bind(chat_id)
                        .bind(participant.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                let rows = sqlx::query_as::<$db, ChatMemberRow>(&format!(
                    "{CHAT_COLUMNS} WHERE c.id = $1 ORDER BY u.id"
                ))
                .bind(chat_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
                tx.commit().await.map_err(db)?;
                chats_from(rows)
                    .pop()
                    .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
            }

            async fn direct_chat(&self, a: UserId, b: UserId) -> StoreResult<Option<Chat>> {
                let id = sqlx::query_scalar::<$db, i64>(
                    "SELECT c.id FROM chats c WHERE c.title IS NULL \
                     AND (SELECT COUNT(*) FROM chat_participants p WHERE p.chat_id = c.id) = 2 \
                     AND EXISTS (SELECT 1 FROM chat_participants p WHERE p.chat_id = c.id AND p.user_id = $1) \
                     AND EXISTS (SELECT 1 FROM chat_participants p WHERE p.chat_id = c.id AND p.user_id = $2) \
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
                let rows = sqlx::query_as::<$db, ChatMemberRow>(&format!(
                    "{CHAT_COLUMNS} WHERE c.id = $1 ORDER BY u.id"
                ))
                .bind(id.0)
                .fetch_all(&self.reader)
                .await
                .map_err(db)?;
                Ok(chats_from(rows).pop())
            }

            async fn chats_of(&self, user: UserId) -> StoreResult<Vec<Chat>> {
                let rows = sqlx::query_as::<$db, ChatMemberRow>(&format!(
                    "{CHAT_COLUMNS} WHERE c.id IN \
                     (SELECT chat_id FROM chat_participants WHERE user_id = $1) ORDER BY c.id DESC, u.id"
                ))
                .bind(user.0)
                .fetch_all(&self.reader)
                .await
                .map_err(db)?;
                Ok(chats_from(rows))
            }

            async fn add_message(&self, new: NewMessage<'_>) -> StoreResult<Message> {
                let kind = if new.call.is_some() { MessageKind::Call } else { MessageKind::Text };
                // A call event is plain data: serialising it cannot fail.
                let meta = new.call.map(|event| serde_json::to_string(event).unwrap_or_default());
                let id = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO messages (chat_id, sender_id, kind, body, meta, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(new.chat.0)
                .bind(new.sender.id.0)
                .bind(kind.as_str())
                .bind(new.body)
                .bind(meta)
                .bind(new.now.millis())
                .fetch_one(&self.writer)
                .await
                .map_err(db)?;
                Ok(Message {
                    id: MessageId(id),
                    chat_id: new.chat,
                    kind,
                    sender: new.sender.clone(),
                    body: new.body.to_owned(),
                    call: new.call.cloned(),
                    created_at: new.now,
                })
            }

            async fn chat_activity(&self, user: UserId) -> StoreResult<Vec<ChatActivity>> {
                let rows = sqlx::query_as::<$db, ChatActivityRow>(CHAT_ACTIVITY)
                    .bind(user.0)
                    .fetch_all(&self.reader)
                    .await
                    .map_err(db)?;
                Ok(all(rows))
            }

            async fn mark_read(&self, user: UserId, chat: ChatId, upto: MessageId) -> StoreResult<u32> {
                sqlx::query(
                    "INSERT INTO chat_reads (chat_id, user_id, last_read) VALUES ($1, $2, $3) \
                     ON CONFLICT (chat_id, user_id) DO UPDATE SET last_read = \
                     CASE WHEN excluded.last_read > chat_reads.last_read \
                     THEN excluded.last_read ELSE chat_reads.last_read END",
                )
                .bind(chat.0)
                .bind(user.0)
                .bind(upto.0)
                .execute(&self.writer)
                .await
                .map_err(db)?;
                let unread = sqlx::query_scalar::<$db, i64>(
                    "SELECT COUNT(*) FROM messages x WHERE x.chat_id = $1 AND x.sender_id <> $2 \
                     AND x.id > (SELECT last_read FROM chat_reads WHERE chat_id = $1 AND user_id = $2)",
                )
                .bind(chat.0)
                .bind(user.0)
                .fetch_one(&self.writer)
                .await
                .map_err(db)?;
                Ok(u32::try_from(unread).unwrap_or(u32::MAX))
            }

            async fn insert_call(&self, call: &CallRecord) -> StoreResult<bool> {
                let result = sqlx::query(&format!(
                    "INSERT INTO calls ({CALL_FIELDS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                     ON CONFLICT (call_id) DO NOTHING"
                ))
                .bind(call.call_id.as_str())
                .bind(call.chat_id.0)
                .bind(call.caller.0)
                .bind(call.callee.0)
                .bind(call.caller_device.as_deref())
                .bind(call.answered_device.as_deref())
                .bind(call.state.as_str())
                .bind(call.video)
                .bind(call.created_at.millis())
                .bind(call.answered_at.map(Timestamp::millis))
                .bind(call.ended_at.map(Timestamp::millis))
                .bind(call.outcome.map(CallOutcome::as_str))
                .bind(call.reason.as_deref())
                .bind(call.ended_by.map(|u| u.0))
                .execute(&self.writer)
                .await
                .map_err(db)?;
                Ok(result.rows_affected() == 1)
            }

            async fn call(&self, id: &CallId) -> StoreResult<Option<CallRecord>> {
                // From the writer: a decision about a call must see the transition just made.
                sqlx::query_as::<$db, CallRow>(&format!("SELECT {CALL_FIELDS} FROM calls WHERE call_id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(&self.writer)
                    .await
                    .map_err(db)?
                    .map(CallRecord::try_from)
                    .transpose()
            }

            async fn open_calls_of(&self, user: UserId) -> StoreResult<Vec<CallRecord>> {
                let rows = sqlx::query_as::<$db, CallRow>(&format!(
                    "SELECT {CALL_FIELDS} FROM calls WHERE state <> 'ended' AND caller_id = $1 \
                     UNION ALL SELECT {CALL_FIELDS} FROM calls WHERE state <> 'ended' AND callee_id = $1 \
                     ORDER BY created_at DESC"
                ))
                .bind(user.0)
                .fetch_all(&self.writer)
                .await
                .map_err(db)?;
                rows.into_iter().map(CallRecord::try_from).collect()
            }

            async fn open_calls(&self) -> StoreResult<Vec<CallRecord>> {
                let rows = sqlx::query_as::<$db, CallRow>(&format!(
                    "SELECT {CALL_FIELDS} FROM calls WHERE state <> 'ended' ORDER BY created_at"
                ))
                .fetch_all(&self.reader)
                .await
                .map_err(db)?;
                rows.into_iter().map(CallRecord::try_from).collect()
            }

            async fn answer_call(
                &self,
                id: &CallId,
                device: Option<&str>,
                now: Timestamp,
            ) -> StoreResult<Option<CallRecord>> {
                sqlx::query_as::<$db, CallRow>(&format!(
                    "UPDATE calls SET state = 'active', answered_device = $2, answered_at = $3 \
                     WHERE call_id = $1 AND state = 'ringing' RETURNING {CALL_FIELDS}"
                ))
                .bind(id.as_str())
                .bind(device)
                .bind(now.millis())
                .fetch_optional(&self.writer)
                .await
                .map_err(db)?
                .map(CallRecord::try_from)
                .transpose()
            }

            async fn end_call(&self, end: CallEnd<'_>) -> StoreResult<Option<CallRecord>> {
                sqlx::query_as::<$db, CallRow>(&format!(
                    "UPDATE calls SET state = 'ended', ended_at = $2, outcome = $3, reason = $4, \
                     ended_by = $5 WHERE call_id = $1 AND state = $6 RETURNING {CALL_FIELDS}"
                ))
                .bind(end.call.as_str())
                .bind(end.now.millis())
                .bind(end.outcome.as_str())
                .bind(end.reason)
                .bind(end.ended_by.map(|u| u.0))
                .bind(end.from.as_str())
                .fetch_optional(&self.writer)
                .await
                .map_err(db)?
                .map(CallRecord::try_from)
                .transpose()
            }

            async fn delete_calls_ended_before(&self, before: Timestamp) -> StoreResult<u64> {
                let result = sqlx::query("DELETE FROM calls WHERE state = 'ended' AND ended_at < $1")
                    .bind(before.millis())
                    .execute(&self.writer)
                    .await
                    .map_err(db)?;
                Ok(result.rows_affected())
            }

            async fn messages(
                &self,
                chat: ChatId,
                before: Option<i64>,
                limit: u32,
            ) -> StoreResult<Vec<Message>> {
                let rows = sqlx::query_as::<$db, MessageRow>(&format!(
                    "{MESSAGE_COLUMNS} \
                     WHERE m.chat_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR m.id < $2) \
                     ORDER BY m.id DESC LIMIT $3"
                ))
                .bind(chat.0)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await
                .map_err(db)?;
                let mut messages: Vec<Message> = all(rows);
                messages.reverse();
                Ok(messages)
            }

            async fn write_batch(&self, batch: WriteBatch<'_>) -> StoreResult<BatchOutcome> {
                let mut tx = self.writer.begin().await.map_err(db)?;

                // 1. Claim each (sender, signal_id). Within the batch the first claim wins and
                //    later ones are duplicates, exactly as if they had come one by one.
                let mut claimed: std::collections::HashSet<(i64, String)> = std::collections::HashSet::new();
                for range in chunks(batch.appends.len()) {
                    let part = &batch.appends[range];
                    let sql = values_sql(
                        $placeholders,
                        "INSERT INTO signal_sends \
                         (sender_id, signal_id, chat_id, kind, to_user, recipients, created_at) VALUES ",
                        7,
                        part.len(),
                        " ON CONFLICT (sender_id, signal_id) DO NOTHING RETURNING sender_id, signal_id",
                    );
                    let mut query = sqlx::query_as::<$db, (i64, String)>(&sql);
                    for new in part {
                        query = query
                            .bind(new.sender.0)
                            .bind(new.signal_id)
                            .bind(new.chat.0)
                            .bind(new.kind)
                            .bind(new.to.map(|u| u.0))
                            .bind(new.recipients.len() as i64)
                            .bind(new.now.millis());
                    }
                    claimed.extend(query.fetch_all(&mut *tx).await.map_err(db)?);
                }
                let stored: Vec<bool> = batch
                    .appends
                    .iter()
                    .map(|new| claimed.remove(&(new.sender.0, new.signal_id.to_owned())))
                    .collect();

                // 2. Bump each recipient's counter once for the whole batch. Counter rows are
                //    written in id order, so concurrent writers (PostgreSQL) cannot deadlock;
                //    each lock is held to commit, so seq follows commit order.
                let mut per_recipient: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
                for (new, _) in batch.appends.iter().zip(&stored).filter(|(_, s)| **s) {
                    for recipient in new.recipients {
                        *per_recipient.entry(recipient.0).or_default() += 1;
                    }
                }
                let counts: Vec<(i64, i64)> = per_recipient.into_iter().collect();
                let mut next_seq: std::collections::HashMap<i64, i64> = std::collections::HashMap::with_capacity(counts.len());
                for range in chunks(counts.len()) {
                    let part = &counts[range];
                    let sql = values_sql(
                        $placeholders,
                        "INSERT INTO signal_counters (user_id, last_seq) VALUES ",
                        2,
                        part.len(),
                        " ON CONFLICT (user_id) DO UPDATE \
                         SET last_seq = signal_counters.last_seq + excluded.last_seq \
                         RETURNING user_id, last_seq",
                    );
                    let mut query = sqlx::query_as::<$db, (i64, i64)>(&sql);
                    for (user, count) in part {
                        query = query.bind(*user).bind(*count);
                    }
                    for (user, last) in query.fetch_all(&mut *tx).await.map_err(db)? {
                        let count = part
                            .iter()
                            .find(|(u, _)| *u == user)
                            .map_or(0, |(_, count)| *count);
                        next_seq.insert(user, last - count + 1);
                    }
                }

                // 3. One row per recipient, seqs handed out in batch order.
                let mut rows: Vec<(usize, UserId, i64)> = Vec::new();
                for (index, (new, _)) in batch
                    .appends
                    .iter()
                    .zip(&stored)
                    .enumerate()
                    .filter(|(_, (_, s))| **s)
                {
                    let mut recipients = new.recipients.to_vec();
                    recipients.sort();
                    for recipient in recipients {
                        let next = next_seq
                            .get_mut(&recipient.0)
                            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
                        rows.push((index, recipient, *next));
                        *next += 1;
                    }
                }
                let mut ids: std::collections::HashMap<(i64, i64), i64> = std::collections::HashMap::with_capacity(rows.len());
                for range in chunks(rows.len()) {
                    let part = &rows[range];
                    let sql = values_sql(
                        $placeholders,
                        "INSERT INTO signals (recipient_id, seq, chat_id, sender_id, signal_id, kind, \
                         is_call, payload, created_at) VALUES ",
                        9,
                        part.len(),
                        " RETURNING id, recipient_id, seq",
                    );
                    let mut query = sqlx::query_as::<$db, (i64, i64, i64)>(&sql);
                    for (index, recipient, seq) in part {
                        let new = &batch.appends[*index];
                        query = query
                            .bind(recipient.0)
                            .bind(*seq)
                            .bind(new.chat.0)
                            .bind(new.sender.0)
                            .bind(new.signal_id)
                            .bind(new.kind)
                            .bind(new.is_call)
                            .bind(new.payload)
                            .bind(new.now.millis());
                    }
                    for (id, recipient, seq) in query.fetch_all(&mut *tx).await.map_err(db)? {
                        ids.insert((recipient, seq), id);
                    }
                }

                let mut appended = Vec::with_capacity(batch.appends.len());
                let mut rows = rows.into_iter().peekable();
                for (index, (new, stored)) in batch.appends.iter().zip(&stored).enumerate() {
                    if *stored {
                        let mut deliveries = Vec::with_capacity(new.recipients.len());
                        while let Some((_, recipient, seq)) = rows.next_if(|row| row.0 == index) {
                            deliveries.push(Delivery {
                                id: ids.get(&(recipient.0, seq)).copied().unwrap_or_default(),
                                recipient,
                                seq: Seq(seq),
                            });
                        }
                        appended.push(Appended::Stored(deliveries));
                    } else {
                        let previous = sqlx::query_as::<$db, PreviousSendRow>(
                            "SELECT chat_id, kind, to_user, recipients FROM signal_sends \
                             WHERE sender_id = $1 AND signal_id = $2",
                        )
                        .bind(new.sender.0)
                        .bind(new.signal_id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db)?;
                        appended.push(Appended::Duplicate(previous.into()));
                    }
                }

                // 4. Acknowledgements, all in one statement; each row marked goes back to the
                //    first acknowledgement that covers it.
                let mut acked: Vec<Vec<Acked>> = vec![Vec::new(); batch.acks.len()];
                for range in chunks(batch.acks.len()) {
                    let part = &batch.acks[range.clone()];
                    let sql = ack_sql($placeholders, part.len());
                    let mut query = sqlx::query_as::<$db, AckedRow>(&sql);
                    for ack in part {
                        query = query
                            .bind(ack.recipient.0)
                            .bind(ack.chat.map(|c| c.0))
                            .bind(ack.upto.0);
                    }
                    let rows = query
                        .bind(batch.now.millis())
                        .bind(batch.call_cutoff.millis())
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db)?;
                    for row in rows {
                        let row = Acked::from(row);
                        let slot = part.iter().position(|ack| {
                            ack.recipient == row.recipient
                                && ack.chat.is_none_or(|chat| chat == row.chat)
                                && row.seq <= ack.upto
                        });
                        if let Some(slot) = slot {
                            acked[range.start + slot].push(row);
                        }
                    }
                }

                tx.commit().await.map_err(db)?;
                Ok(BatchOutcome { appended, acked })
            }

            async fn take_signals(&self, query: SignalQuery) -> StoreResult<Vec<StoredSignal>> {
                let mut tx = self.writer.begin().await.map_err(db)?;
                let rows = sqlx::query_as::<$db, SignalRecordRow>(&format!(
                    "{SIGNAL_COLUMNS} WHERE {DELIVERABLE} ORDER BY s.seq LIMIT $4{}",
                    $lock
                ))
                .bind(query.recipient.0)
                .bind(query.chat.0)
                .bind(query.call_cutoff.millis())
                .bind(i64::from(query.limit))
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
                let signals = signals_from(rows)?;
                if let Some(last) = signals.last() {
                    sqlx::query(&format!(
                        "UPDATE signals AS s SET consumed_at = $5 WHERE {DELIVERABLE} AND s.seq <= $4"
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

            async fn fetch_after(
                &self,
                recipient: UserId,
                chat: Option<ChatId>,
                after: Seq,
                call_cutoff: Timestamp,
                limit: u32,
            ) -> StoreResult<Vec<StoredSignal>> {
                let rows = sqlx::query_as::<$db, SignalRecordRow>(&format!(
                    "{SIGNAL_COLUMNS} WHERE {DELIVERABLE} AND s.seq > $4 ORDER BY s.seq LIMIT $5"
                ))
                .bind(recipient.0)
                .bind(chat.map(|c| c.0))
                .bind(call_cutoff.millis())
                .bind(after.0)
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await
                .map_err(db)?;
                signals_from(rows)
            }

            async fn mark_expired(&self, call_cutoff: Timestamp, now: Timestamp) -> StoreResult<Vec<Acked>> {
                let rows = sqlx::query_as::<$db, AckedRow>(&format!(
                    "UPDATE signals SET expired_at = $2 WHERE is_call = TRUE AND consumed_at IS NULL \
                     AND expired_at IS NULL AND created_at < $1 {ACKED_COLUMNS}"
                ))
                .bind(call_cutoff.millis())
                .bind(now.millis())
                .fetch_all(&self.writer)
                .await
                .map_err(db)?;
                Ok(all(rows))
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
                    consumed: batched(CLEANUP_CONSUMED, cutoffs.consumed_before).await?,
                    stale: batched(CLEANUP_STALE, cutoffs.created_before).await?,
                    sends: batched(CLEANUP_SENDS, cutoffs.created_before).await?,
                    sessions: batched(CLEANUP_SESSIONS, cutoffs.now).await?,
                })
            }

            async fn inspect(&self, filter: &InspectFilter) -> StoreResult<Inspection> {
                let chat = filter.chat.map(|c| c.0);
                let user = filter.user.map(|u| u.0);
                let (total, unconsumed) = sqlx::query_as::<$db, (i64, i64)>(&format!(
                    "SELECT COUNT(*), COUNT(CASE WHEN s.consumed_at IS NULL THEN 1 END) \
                     FROM signals s WHERE {INSPECT_FILTER}"
                ))
                .bind(chat)
                .bind(user)
                .fetch_one(&self.reader)
                .await
                .map_err(db)?;
                let recent = sqlx::query_as::<$db, InspectRow>(&format!(
                    "{INSPECT_COLUMNS} WHERE {INSPECT_FILTER} ORDER BY s.id DESC LIMIT $3"
                ))
                .bind(chat)
                .bind(user)
                .bind(i64::from(filter.recent_limit))
                .fetch_all(&self.reader)
                .await
                .map_err(db)?;
                let counts = sqlx::query_as::<$db, CountRow>(
                    "SELECT u.username, \
                       (SELECT COUNT(*) FROM signals s WHERE s.recipient_id = u.id \
                          AND (CAST($1 AS BIGINT) IS NULL OR s.chat_id = $1)) AS received, \
                       (SELECT COUNT(*) FROM signals s WHERE s.recipient_id = u.id \
                          AND s.consumed_at IS NULL AND (CAST($1 AS BIGINT) IS NULL OR s.chat_id = $1)) AS unconsumed, \
                       (SELECT COUNT(*) FROM signals s WHERE s.sender_id = u.id \
                          AND (CAST($1 AS BIGINT) IS NULL OR s.chat_id = $1)) AS sent \
                     FROM users u WHERE (CAST($2 AS BIGINT) IS NULL OR u.id = $2) ORDER BY u.id",
                )
                .bind(chat)
                .bind(user)
                .fetch_all(&self.reader)
                .await
                .map_err(db)?;
                Ok(Inspection {
                    total,
                    unconsumed,
                    recent: all(recent),
                    per_user: all::<CountRow, UserSignalCount>(counts)
                        .into_iter()
                        .filter(|c| c.received + c.sent > 0)
                        .collect(),
                })
            }

            async fn signals_since(
                &self,
                filter: &InspectFilter,
                after_id: i64,
            ) -> StoreResult<Vec<SignalRow>> {
                let rows = sqlx::query_as::<$db, InspectRow>(&format!(
                    "{INSPECT_COLUMNS} WHERE {INSPECT_FILTER} AND s.id > $4 ORDER BY s.id LIMIT $3"
                ))
                .bind(filter.chat.map(|c| c.0))
                .bind(filter.user.map(|u| u.0))
                .bind(i64::from(filter.recent_limit))
                .bind(after_id)
                .fetch_all(&self.reader)
                .await
                .map_err(db)?;
                Ok(all(rows))
            }

            async fn setting_or_insert(&self, key: &str, candidate: &str) -> StoreResult<String> {
                // Two nodes starting at once both insert; the first wins and both read its value.
                sqlx::query(
                    "INSERT INTO server_settings (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(key)
                .bind(candidate)
                .execute(&self.writer)
                .await
                .map_err(db)?;
                sqlx::query_scalar::<$db, String>("SELECT value FROM server_settings WHERE key = $1")
                    .bind(key)
                    .fetch_one(&self.writer)
                    .await
                    .map_err(db)
            }
        }
    };
}

pub(crate) use sql_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_once_in_order() {
        for n in [0, 1, 3, 4, 5, 63, 64, 65, 100, 1000] {
            let ranges: Vec<_> = chunks(n).collect();
            let covered: Vec<usize> = ranges.iter().cloned().flatten().collect();
            assert_eq!(covered, (0..n).collect::<Vec<_>>());
            assert!(ranges.iter().all(|r| !r.is_empty() && r.len() <= MAX_CHUNK));
        }
    }

    #[test]
    fn values_are_numbered_row_by_row() {
        assert_eq!(
            values_sql(
                Placeholders::Numbered,
                "INSERT INTO t (a, b) VALUES ",
                2,
                2,
                " RETURNING a"
            ),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) RETURNING a"
        );
        assert_eq!(
            values_sql(Placeholders::Positional, "VALUES ", 2, 2, ""),
            "VALUES (?, ?), (?, ?)"
        );
    }
}
