//! `/api/p2p/*`: the guide's server relay (send and fetch signals) and the ICE server list.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{lenient_id, lenient_optional_id, AppJson, AppPath, AppQuery, CurrentUser};
use super::AppState;
use crate::domain::{ChatId, Seq, UserId};
use crate::metrics::Transport;
use crate::relay::OutgoingSignal;
use crate::store::StoredSignal;
use crate::turn::ice_servers::IceServers;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_signal))
        .routes(routes!(get_signals))
        .routes(routes!(acknowledge))
        .routes(routes!(ice_servers))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SendSignalBody {
    /// The chat the signal belongs to (integer, or a string of digits).
    #[serde(deserialize_with = "lenient_id")]
    #[schema(value_type = i64)]
    chat_id: i64,
    /// `^[a-z][a-z0-9_.-]{0,63}$`, e.g. `webrtc.offer`.
    #[serde(rename = "type")]
    kind: String,
    /// Any JSON, stored and delivered verbatim.
    #[schema(value_type = Object)]
    payload: Box<RawValue>,
    /// Client-generated unique id; the same id from the same sender is stored once.
    signal_id: Option<String>,
    /// Address one participant only (user id); default: every other participant.
    #[serde(default, deserialize_with = "lenient_optional_id")]
    #[schema(value_type = Option<i64>)]
    to: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SendSignalResponse {
    success: bool,
    /// How many recipients the signal was stored for.
    recipients: u32,
    /// How many of them have a live push connection right now.
    online: u32,
    signal_id: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignalsQuery {
    /// Cursor: acknowledge every signal with `seq <= after` and return the ones after it,
    /// without consuming them. Without it, returned signals are consumed (the guide's behaviour).
    after: Option<i64>,
    /// Long-poll: when nothing is there, hold the request up to this many seconds (max 30)
    /// until a signal arrives.
    wait: Option<f64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AckBody {
    /// Acknowledge (consume) every signal of yours with `seq <= seq`, in all chats.
    seq: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AckResponse {
    success: bool,
    /// How many signals this acknowledged that were not acknowledged before.
    acknowledged: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignalsResponse {
    success: bool,
    signals: Vec<StoredSignal>,
}

/// Store a signal for the chat's other participants (or one, with `to`).
#[utoipa::path(post, path = "/api/p2p/send-signal/", tag = "p2p", request_body = SendSignalBody,
    params(("X-CSRFToken" = String, Header, description = "The csrftoken cookie's value")),
    responses((status = 201, body = SendSignalResponse, description = "Stored"),
              (status = 200, body = SendSignalResponse, description = "This signal_id was stored before; nothing new stored"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "signal_id reused for a different signal"),
              (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn send_signal(
    State(state): State<AppState>,
    current: CurrentUser,
    AppJson(body): AppJson<SendSignalBody>,
) -> Result<(StatusCode, Json<SendSignalResponse>), ApiError> {
    let outcome = state
        .relay
        .send(
            &current.user,
            OutgoingSignal {
                chat: ChatId(body.chat_id),
                kind: &body.kind,
                payload: body.payload,
                signal_id: body.signal_id.as_deref(),
                to: body.to.map(UserId),
            },
        )
        .await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(SendSignalResponse {
            success: true,
            recipients: outcome.recipients,
            online: outcome.online,
            signal_id: outcome.signal_id,
        }),
    ))
}

/// The caller's signals in a chat, in `seq` order.
#[utoipa::path(get, path = "/api/p2p/{chat_id}/signals/", tag = "p2p",
    params(("chat_id" = i64, Path), SignalsQuery),
    responses((status = 200, body = SignalsResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_signals(
    State(state): State<AppState>,
    current: CurrentUser,
    AppPath(chat_id): AppPath<i64>,
    AppQuery(query): AppQuery<SignalsQuery>,
) -> Result<Json<SignalsResponse>, ApiError> {
    if query.after.is_some_and(|after| after < 0) {
        return Err(ApiError::BadRequest(
            "after must be a seq (0 or more)".to_owned(),
        ));
    }
    let wait = match query.wait {
        Some(w) if !w.is_finite() || w < 0.0 => {
            return Err(ApiError::BadRequest(
                "wait must be a number of seconds (0 to 30)".to_owned(),
            ))
        }
        Some(w) => Duration::from_secs_f64(w).min(state.config.longpoll_max_wait),
        None => Duration::ZERO,
    };
    let (chat, after) = (ChatId(chat_id), query.after.map(Seq));
    let signals = if wait.is_zero() {
        state
            .relay
            .fetch(&current.user, chat, after, Transport::Poll)
            .await?
    } else {
        state
            .relay
            .fetch_waiting(&current.user, chat, after, wait, &state.shutdown)
            .await?
    };
    Ok(Json(SignalsResponse {
        success: true,
        signals,
    }))
}

/// Acknowledge signals received over a push transport (SSE clients; WebSocket clients send an
/// `ack` frame instead).
#[utoipa::path(post, path = "/api/p2p/ack/", tag = "p2p", request_body = AckBody,
    params(("X-CSRFToken" = String, Header, description = "The csrftoken cookie's value")),
    responses((status = 200, body = AckResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn acknowledge(
    State(state): State<AppState>,
    current: CurrentUser,
    AppJson(body): AppJson<AckBody>,
) -> Result<Json<AckResponse>, ApiError> {
    if body.seq < 0 {
        return Err(ApiError::BadRequest("seq must be 0 or more".to_owned()));
    }
    let acknowledged = state.relay.ack(current.user.id, Seq(body.seq)).await?;
    Ok(Json(AckResponse {
        success: true,
        acknowledged,
    }))
}

/// The STUN/TURN servers for the browser's RTCPeerConnection, with TURN credentials minted for
/// the caller (valid `ttl` seconds for new allocations). Fetch them afresh for each call.
#[utoipa::path(get, path = "/api/p2p/ice-servers/", tag = "p2p",
    responses((status = 200, body = IceServers), (status = 401, body = ErrorBody)))]
async fn ice_servers(
    State(state): State<AppState>,
    current: CurrentUser,
    headers: HeaderMap,
) -> Json<IceServers> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let now_unix = state.clock.now().millis().max(0) as u64 / 1000;
    Json(state.ice_servers.for_user(current.user.id, host, now_unix))
}
