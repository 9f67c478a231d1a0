//! `/api/chats/*`: creating and listing chats, and their text messages.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, CurrentUser};
use super::AppState;
use crate::chats::{start_chat, Started};
use std::collections::HashMap;

use crate::domain::{ChatId, MessageBody, MessageId, Timestamp};
use crate::store::{Chat, ChatActivity, Message, NewMessage, User};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_chats, create_chat))
        .routes(routes!(get_chat))
        .routes(routes!(list_messages, post_message))
        .routes(routes!(mark_read))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateChatBody {
    /// Usernames of the other participants (the creator is always included).
    participants: Vec<String>,
    title: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatList {
    success: bool,
    /// Most recent activity first.
    chats: Vec<ChatEntry>,
}

/// A chat as the signed-in user's chat list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatEntry {
    id: ChatId,
    title: Option<String>,
    participants: Vec<Participant>,
    created_at: Timestamp,
    /// The newest message (a text or a call event), if any.
    last_message: Option<Message>,
    /// Messages from others after the user's read marker.
    unread: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Participant {
    #[serde(flatten)]
    user: User,
    /// Whether the person has a live push connection (WebSocket, SSE or long-poll) on any node.
    online: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReadBody {
    /// The id of the newest message the user has seen.
    upto: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadReply {
    success: bool,
    /// Messages from others still unread in this chat.
    unread: u32,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MessageBodyJson {
    body: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// Only messages with an id below this one (for paging back).
    before: Option<i64>,
    /// At most this many (default 50, at most 200).
    limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    success: bool,
    messages: Vec<Message>,
}

/// Start a chat. An untitled chat with exactly one other user is a direct chat: asking for it
/// again returns the existing one (200) instead of creating a twin.
#[utoipa::path(post, path = "/api/chats/", tag = "chats", request_body = CreateChatBody,
    responses((status = 201, body = Chat, description = "Created"), (status = 200, body = Chat, description = "The existing direct chat"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_chat(
    State(state): State<AppState>,
    current: CurrentUser,
    AppJson(body): AppJson<CreateChatBody>,
) -> Result<(StatusCode, Json<Chat>), ApiError> {
    let started = start_chat(
        state.store.as_ref(),
        &current.user,
        &body.participants,
        body.title.as_deref(),
        state.clock.now(),
    )
    .await?;
    Ok(match started {
        Started::Created(chat) => (StatusCode::CREATED, Json(chat)),
        Started::Existing(chat) => (StatusCode::OK, Json(chat)),
    })
}

/// The caller's chats, most recent activity first, each with its last message, the caller's
/// unread count and who is online.
#[utoipa::path(get, path = "/api/chats/", tag = "chats",
    responses((status = 200, body = ChatList), (status = 401, body = ErrorBody)))]
async fn list_chats(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<ChatList>, ApiError> {
    let chats = state.store.chats_of(current.user.id).await?;
    let mut activity: HashMap<ChatId, ChatActivity> = state
        .store
        .chat_activity(current.user.id)
        .await?
        .into_iter()
        .map(|a| (a.chat, a))
        .collect();
    let presence = state.relay.presence();
    let mut entries: Vec<ChatEntry> = chats
        .into_iter()
        .map(|chat| {
            let activity = activity.remove(&chat.id);
            ChatEntry {
                id: chat.id,
                title: chat.title,
                participants: chat
                    .participants
                    .into_iter()
                    .map(|user| Participant {
                        online: presence.is_online(user.id),
                        user,
                    })
                    .collect(),
                created_at: chat.created_at,
                unread: activity.as_ref().map_or(0, |a| a.unread),
                last_message: activity.and_then(|a| a.last_message),
            }
        })
        .collect();
    let last_active = |e: &ChatEntry| {
        e.last_message
            .as_ref()
            .map_or(e.created_at, |m| m.created_at)
    };
    entries.sort_by(|a, b| {
        last_active(b)
            .cmp(&last_active(a))
            .then(b.id.0.cmp(&a.id.0))
    });
    Ok(Json(ChatList {
        success: true,
        chats: entries,
    }))
}

/// Marks the chat read up to a message (the read marker only moves forward).
#[utoipa::path(post, path = "/api/chats/{chat_id}/read", tag = "chats",
    params(("chat_id" = i64, Path)), request_body = ReadBody,
    responses((status = 200, body = ReadReply), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn mark_read(
    State(state): State<AppState>,
    current: CurrentUser,
    AppPath(chat_id): AppPath<i64>,
    AppJson(body): AppJson<ReadBody>,
) -> Result<Json<ReadReply>, ApiError> {
    if body.upto < 0 {
        return Err(ApiError::BadRequest(
            "upto must be a message id (0 or more)".to_owned(),
        ));
    }
    let chat = state
        .relay
        .participant_chat(&current.user, ChatId(chat_id))
        .await?;
    let unread = state
        .store
        .mark_read(current.user.id, chat.id, MessageId(body.upto))
        .await?;
    Ok(Json(ReadReply {
        success: true,
        unread,
    }))
}

/// One chat the caller takes part in.
#[utoipa::path(get, path = "/api/chats/{chat_id}/", tag = "chats", params(("chat_id" = i64, Path)),
    responses((status = 200, body = Chat), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_chat(
    State(state): State<AppState>,
    current: CurrentUser,
    AppPath(chat_id): AppPath<i64>,
) -> Result<Json<Chat>, ApiError> {
    let chat = state
        .relay
        .participant_chat(&current.user, ChatId(chat_id))
        .await?;
    Ok(Json(chat.as_ref().clone()))
}

/// A page of the chat's messages, oldest first.
#[utoipa::path(get, path = "/api/chats/{chat_id}/messages/", tag = "chats",
    params(("chat_id" = i64, Path), MessagesQuery),
    responses((status = 200, body = MessageList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_messages(
    State(state): State<AppState>,
    current: CurrentUser,
    AppPath(chat_id): AppPath<i64>,
    AppQuery(query): AppQuery<MessagesQuery>,
) -> Result<Json<MessageList>, ApiError> {
    let chat = state
        .relay
        .participant_chat(&current.user, ChatId(chat_id))
        .await?;
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let messages = state.store.messages(chat.id, query.before, limit).await?;
    Ok(Json(MessageList {
        success: true,
        messages,
    }))
}

/// Post a text message.
#[utoipa::path(post, path = "/api/chats/{chat_id}/messages/", tag = "chats",
    params(("chat_id" = i64, Path)), request_body = MessageBodyJson,
    responses((status = 201, body = Message), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn post_message(
    State(state): State<AppState>,
    current: CurrentUser,
    AppPath(chat_id): AppPath<i64>,
    AppJson(body): AppJson<MessageBodyJson>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let body = MessageBody::parse(&body.body)?;
    let chat = state
        .relay
        .participant_chat(&current.user, ChatId(chat_id))
        .await?;
    let message = state
        .store
        .add_message(NewMessage {
            chat: chat.id,
            sender: &current.user,
            body: body.as_str(),
            call: None,
            now: state.clock.now(),
        })
        .await?;
    state.relay.publish_message(&chat, &message);
    Ok((StatusCode::CREATED, Json(message)))
}
