//! The store: the source of truth for accounts, sessions, chats, messages and signals.
//!
//! [`Store`] is the one trait every backend implements; [`sqlite::SqliteStore`] is the embedded
//! default. The store knows nothing of HTTP or sockets, and takes "now" as an argument so the
//! caller's clock decides what has expired.

pub mod metered;
pub mod postgres;
pub mod records;
mod rows;
mod sql;
pub mod sqlite;

use async_trait::async_trait;

use crate::domain::{CallId, CallRecord, ChatId, MessageId, Seq, Timestamp, UserId};
pub use records::*;

/// What can go wrong in the store, as the layers above need to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("username is already taken")]
    UsernameTaken,
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// One failure shared by every request of a group commit.
    #[error(transparent)]
    Shared(std::sync::Arc<StoreError>),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
}

impl StoreError {
    /// Whether the database could not be reached (as opposed to refusing a query).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Shared(inner) => inner.is_unavailable(),
            _ => false,
        }
    }

    /// Connection-level failures mean "try again later" (503), not a bug (500).
    pub(crate) fn classify(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => Self::Unavailable(err),
            other => Self::Database(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the database answers a query.
    async fn ping(&self) -> StoreResult<()>;

    // ---- accounts ----
    async fn create_user(&self, new: NewUser<'_>) -> StoreResult<User>;
    async fn set_password(&self, user: UserId, password_hash: &str) -> StoreResult<()>;
    async fn credentials(&self, username: &str) -> StoreResult<Option<Credentials>>;
    async fn users_by_username(&self, usernames: &[String]) -> StoreResult<Vec<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;

    // ---- sessions ----
    async fn create_session(&self, new: NewSession<'_>) -> StoreResult<()>;
    /// The live session with this token hash, if any.
    async fn session(&self, token_hash: &str, now: Timestamp) -> StoreResult<Option<Session>>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;

    // ---- chats and messages ----
    async fn create_chat(&self, new: NewChat<'_>) -> StoreResult<Chat>;
    /// The untitled chat whose participants are exactly `a` and `b`, if one exists.
    async fn direct_chat(&self, a: UserId, b: UserId) -> StoreResult<Option<Chat>>;
    async fn chat(&self, id: ChatId) -> StoreResult<Option<Chat>>;
    async fn chats_of(&self, user: UserId) -> StoreResult<Vec<Chat>>;
    async fn add_message(&self, new: NewMessage<'_>) -> StoreResult<Message>;
    /// Up to `limit` messages before message id `before` (or the newest), oldest first.
    async fn messages(
        &self,
        chat: ChatId,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;

    /// Every chat of `user` with its newest message and `user`'s unread count.
    async fn chat_activity(&self, user: UserId) -> StoreResult<Vec<ChatActivity>>;
    /// Moves `user`'s read marker in `chat` forward to `upto` (never back); returns how many
    /// messages from others are still unread there.
    async fn mark_read(&self, user: UserId, chat: ChatId, upto: MessageId) -> StoreResult<u32>;

    // ---- calls (docs/CALLS.md) ----
    /// Stores a new call; false when a call with this id exists already.
    async fn insert_call(&self, call: &CallRecord) -> StoreResult<bool>;
    async fn call(&self, id: &CallId) -> StoreResult<Option<CallRecord>>;
    /// The calls of `user` still ringing or active, newest first.
    async fn open_calls_of(&self, user: UserId) -> StoreResult<Vec<CallRecord>>;
    /// Every call still ringing or active (a handful), oldest first.
    async fn open_calls(&self) -> StoreResult<Vec<CallRecord>>;
    /// Moves a ringing call to active, answered by `device`; `None` if it was not ringing.
    async fn answer_call(
        &self,
        id: &CallId,
        device: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<Option<CallRecord>>;
    /// Ends a call that is in state `end.from`; `None` if it was not.
    async fn end_call(&self, end: CallEnd<'_>) -> StoreResult<Option<CallRecord>>;
    /// Forgets finished calls (their event messages stay in the chats).
    async fn delete_calls_ended_before(&self, before: Timestamp) -> StoreResult<u64>;

    // ---- signals ----
    /// Appends signals and applies acknowledgements in one transaction (a group commit).
    ///
    /// Each append stores one row per recipient, allocating each recipient's next `seq` in batch
    /// order; or, if `(sender, signal_id)` was stored before (or earlier in the batch), stores
    /// nothing and says so. Each acknowledgement marks consumed the recipient's unconsumed
    /// signals with `seq <= upto` (in `chat` only, when given) and returns what it marked, so
    /// senders can be told "delivered"; expired call signals were never delivered, so they are
    /// left alone.
    async fn write_batch(&self, batch: WriteBatch<'_>) -> StoreResult<BatchOutcome>;
    /// The guide's plain GET: the recipient's unconsumed, unexpired signals in `chat`, in `seq`
    /// order, marked consumed in the same transaction.
    async fn take_signals(&self, query: SignalQuery) -> StoreResult<Vec<StoredSignal>>;
    /// The recipient's unconsumed, unexpired signals with `seq > after` (in `chat` only, when
    /// given), in `seq` order, without consuming them.
    async fn fetch_after(
        &self,
        recipient: UserId,
        chat: Option<ChatId>,
        after: Seq,
        call_cutoff: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<StoredSignal>>;
    /// Marks unconsumed call signals created before `call_cutoff` as expired (once each) and
    /// returns them, so senders can be told "expired".
    async fn mark_expired(&self, call_cutoff: Timestamp, now: Timestamp)
        -> StoreResult<Vec<Acked>>;
    /// Deletes what the retention policy says is old. Idempotent, safe to run concurrently.
    async fn cleanup(&self, cutoffs: CleanupCutoffs) -> StoreResult<CleanupReport>;

    // ---- inspection (the guide's test_signal_flow.py) ----
    async fn inspect(&self, filter: &InspectFilter) -> StoreResult<Inspection>;
    /// Signals with a row id above `after_id`, oldest first, for `switchboard signals --watch`.
    async fn signals_since(
        &self,
        filter: &InspectFilter,
        after_id: i64,
    ) -> StoreResult<Vec<SignalRow>>;

    // ---- server settings ----
    /// The value stored under `key`, storing `candidate` first if there is none.
    async fn setting_or_insert(&self, key: &str, candidate: &str) -> StoreResult<String>;
}

/// How to open a store, besides its URL.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// PostgreSQL pool size.
    pub max_connections: u32,
    /// SQLite: the write-ahead log is checkpointed and truncated before it passes this size.
    pub sqlite_wal_limit: u64,
}

/// Opens the store a database URL names (`sqlite:` or `postgres:`), applying migrations.
pub async fn connect(url: &str, options: StoreOptions) -> StoreResult<std::sync::Arc<dyn Store>> {
    let max_connections = options.max_connections;
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(
            sqlite::SqliteStore::connect(url, options.sqlite_wal_limit).await?,
        ))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(
            postgres::PostgresStore::connect(url, max_connections).await?,
        ))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}
