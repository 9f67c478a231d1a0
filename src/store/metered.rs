//! A [`Store`] decorator that counts every call, so `/metrics` (and the tests) can show that an
//! idle connected client costs no store query.

use std::sync::Arc;

use async_trait::async_trait;
use prometheus_client::metrics::counter::Counter;

use super::*;

pub struct Metered {
    inner: Arc<dyn Store>,
    queries: Counter,
}

impl Metered {
    pub fn new(inner: Arc<dyn Store>, queries: Counter) -> Self {
        Self { inner, queries }
    }
}

macro_rules! metered {
    ($( fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        #[async_trait]
        impl Store for Metered {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    self.queries.inc();
                    self.inner.$name($($arg),*).await
                }
            )*
        }
    };
}

metered! {
    fn ping(&self) -> StoreResult<()>;
    fn create_user(&self, new: NewUser<'_>) -> StoreResult<User>;
    fn set_password(&self, user: UserId, password_hash: &str) -> StoreResult<()>;
    fn credentials(&self, username: &str) -> StoreResult<Option<Credentials>>;
    fn users_by_username(&self, usernames: &[String]) -> StoreResult<Vec<User>>;
    fn list_users(&self) -> StoreResult<Vec<User>>;
    fn create_session(&self, new: NewSession<'_>) -> StoreResult<()>;
    fn session(&self, token_hash: &str, now: Timestamp) -> StoreResult<Option<Session>>;
    fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    fn create_chat(&self, new: NewChat<'_>) -> StoreResult<Chat>;
    fn direct_chat(&self, a: UserId, b: UserId) -> StoreResult<Option<Chat>>;
    fn chat(&self, id: ChatId) -> StoreResult<Option<Chat>>;
    fn chats_of(&self, user: UserId) -> StoreResult<Vec<Chat>>;
    fn add_message(&self, new: NewMessage<'_>) -> StoreResult<Message>;
    fn messages(&self, chat: ChatId, before: Option<i64>, limit: u32) -> StoreResult<Vec<Message>>;
    fn chat_activity(&self, user: UserId) -> StoreResult<Vec<ChatActivity>>;
    fn mark_read(&self, user: UserId, chat: ChatId, upto: MessageId) -> StoreResult<u32>;
    fn insert_call(&self, call: &CallRecord) -> StoreResult<bool>;
    fn call(&self, id: &CallId) -> StoreResult<Option<CallRecord>>;
    fn open_calls_of(&self, user: UserId) -> StoreResult<Vec<CallRecord>>;
    fn open_calls(&self) -> StoreResult<Vec<CallRecord>>;
    fn answer_call(&self, id: &CallId, device: Option<&str>, now: Timestamp) -> StoreResult<Option<CallRecord>>;
    fn end_call(&self, end: CallEnd<'_>) -> StoreResult<Option<CallRecord>>;
    fn delete_calls_ended_before(&self, before: Timestamp) -> StoreResult<u64>;
    fn write_batch(&self, batch: WriteBatch<'_>) -> StoreResult<BatchOutcome>;
    fn take_signals(&self, query: SignalQuery) -> StoreResult<Vec<StoredSignal>>;
    fn fetch_after(&self, recipient: UserId, chat: Option<ChatId>, after: Seq, call_cutoff: Timestamp, limit: u32) -> StoreResult<Vec<StoredSignal>>;
    fn mark_expired(&self, call_cutoff: Timestamp, now: Timestamp) -> StoreResult<Vec<Acked>>;
    fn cleanup(&self, cutoffs: CleanupCutoffs) -> StoreResult<CleanupReport>;
    fn inspect(&self, filter: &InspectFilter) -> StoreResult<Inspection>;
    fn signals_since(&self, filter: &InspectFilter, after_id: i64) -> StoreResult<Vec<SignalRow>>;
    fn setting_or_insert(&self, key: &str, candidate: &str) -> StoreResult<String>;
}
