//! Chats by id, remembered: every send and poll checks the chat's participants, and reading
//! them from the store each time was the largest cost of a send after the commit itself.
//!
//! A chat's participants never change once it is created (there is no API to add or remove
//! one, and chats are never deleted), so a remembered chat is never stale, on this node or any
//! other. Should membership ever become mutable, this cache must learn to forget.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::domain::ChatId;
use crate::store::{Chat, Store, StoreError};

/// Chats remembered before starting over: a memory bound, not a tuning knob.
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct ChatCache {
    chats: RwLock<HashMap<ChatId, Arc<Chat>>>,
}

impl ChatCache {
    /// The chat, from memory or else from the store. A chat that does not exist (yet) is not
    /// remembered.
    pub async fn get(
        &self,
        store: &dyn Store,
        id: ChatId,
    ) -> Result<Option<Arc<Chat>>, StoreError> {
        if let Some(chat) = self.read().get(&id) {
            return Ok(Some(chat.clone()));
        }
        let Some(chat) = store.chat(id).await? else {
            return Ok(None);
        };
        let chat = Arc::new(chat);
        let mut chats = self.chats.write().unwrap_or_else(|e| e.into_inner());
        if chats.len() >= CAPACITY {
            chats.clear();
        }
        chats.insert(id, chat.clone());
        Ok(Some(chat))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ChatId, Arc<Chat>>> {
        self.chats.read().unwrap_or_else(|e| e.into_inner())
    }
}
