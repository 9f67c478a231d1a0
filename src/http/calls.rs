//! `/api/calls/*`: the calls the signed-in user is in right now (docs/CALLS.md), so a reloaded
//! tab can rejoin the call it was in.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::CurrentUser;
use super::AppState;
use crate::domain::{CallId, CallRecord, CallState, ChatId, Timestamp};
use crate::store::User;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(active_calls))
}

/// A call the user is in, with both people.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallView {
    call_id: CallId,
    chat_id: ChatId,
    caller: User,
    callee: User,
    /// The tab that placed the call.
    caller_device: Option<String>,
    /// The tab that answered it; null while ringing.
    answered_device: Option<String>,
    state: CallState,
    video: bool,
    created_at: Timestamp,
    answered_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveCalls {
    success: bool,
    /// Newest first; normally one at most.
    calls: Vec<CallView>,
}

/// The user's calls that are ringing or active.
#[utoipa::path(get, path = "/api/calls/active", tag = "calls",
    responses((status = 200, body = ActiveCalls), (status = 401, body = ErrorBody)))]
async fn active_calls(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<ActiveCalls>, ApiError> {
    let records = state.relay.calls().open_calls_of(current.user.id).await?;
    let mut calls = Vec::with_capacity(records.len());
    for record in records {
        // The chat (and so both people) from the relay's membership cache.
        let Ok(chat) = state
            .relay
            .participant_chat(&current.user, record.chat_id)
            .await
        else {
            continue;
        };
        let person = |id| chat.participants.iter().find(|p| p.id == id).cloned();
        if let (Some(caller), Some(callee)) = (person(record.caller), person(record.callee)) {
            calls.push(view(record, caller, callee));
        }
    }
    Ok(Json(ActiveCalls {
        success: true,
        calls,
    }))
}

fn view(record: CallRecord, caller: User, callee: User) -> CallView {
    CallView {
        call_id: record.call_id,
        chat_id: record.chat_id,
        caller,
        callee,
        caller_device: record.caller_device,
        answered_device: record.answered_device,
        state: record.state,
        video: record.video,
        created_at: record.created_at,
        answered_at: record.answered_at,
    }
}
