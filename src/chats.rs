//! Starting chats: who may be in one, and the rule that a direct chat exists once.
//! Shared by the HTTP API and the `switchboard chat create` command.

use std::collections::BTreeSet;

use crate::domain::{ChatTitle, Timestamp, Username, ValidationError};
use crate::store::{Chat, NewChat, Store, StoreError, User};

/// Most participants a chat may have (every signal is stored once per recipient).
pub const MAX_PARTICIPANTS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("participants must name at least one other user")]
    NoOtherParticipant,
    #[error("a chat has at most {MAX_PARTICIPANTS} participants")]
    TooManyParticipants,
    #[error("unknown user(s): {}", .0.join(", "))]
    UnknownUsers(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`start_chat`] did.
pub enum Started {
    Created(Chat),
    /// The untitled two-person chat already existed; asking again returns it.
    Existing(Chat),
}

/// Starts a chat between `creator` and the named users (the creator's own name is ignored).
pub async fn start_chat(
    store: &dyn Store,
    creator: &User,
    usernames: &[String],
    title: Option<&str>,
    now: Timestamp,
) -> Result<Started, ChatError> {
    let title = title.map(ChatTitle::parse).transpose()?.flatten();
    let mut names = BTreeSet::new();
    for raw in usernames {
        let name = Username::parse(raw)?;
        if name.as_str() != creator.username {
            names.insert(name.into_string());
        }
    }
    if names.is_empty() {
        return Err(ChatError::NoOtherParticipant);
    }
    if names.len() + 1 > MAX_PARTICIPANTS {
        return Err(ChatError::TooManyParticipants);
    }
    let names: Vec<String> = names.into_iter().collect();
    let others = store.users_by_username(&names).await?;
    if others.len() != names.len() {
        let unknown = names
            .into_iter()
            .filter(|n| !others.iter().any(|u| &u.username == n))
            .collect();
        return Err(ChatError::UnknownUsers(unknown));
    }
    if let ([other], None) = (others.as_slice(), &title) {
        if let Some(existing) = store.direct_chat(creator.id, other.id).await? {
            return Ok(Started::Existing(existing));
        }
    }
    let mut participants: Vec<_> = others.iter().map(|u| u.id).collect();
    participants.push(creator.id);
    let chat = store
        .create_chat(NewChat {
            creator: creator.id,
            participants: &participants,
            title: title.as_ref().map(ChatTitle::as_str),
            now,
        })
        .await?;
    tracing::info!(chat_id = %chat.id, user_id = %creator.id, "[CHAT] Chat {} created by user {} ({})", chat.id, creator.id, creator.username);
    Ok(Started::Created(chat))
}
