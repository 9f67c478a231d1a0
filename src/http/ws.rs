//! `GET /ws/p2p/`: the WebSocket transport. One connection per tab, all of the user's chats.
//! The protocol (version 1) is written down in `docs/PROTOCOL.md`.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::error::ApiError;
use super::extract::{check_origin, lenient_optional_id, AppQuery, CurrentUser};
use super::AppState;
use crate::domain::{ChatId, Seq, UserId};
use crate::metrics::Transport;
use crate::relay::{Outgoing, OutgoingKind, OutgoingSignal, RelayError, SignalStream};
use crate::store::User;

pub const PROTOCOL_VERSION: u32 = 1;

/// Close codes the client acts on (see docs/PROTOCOL.md).
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_INTERNAL: u16 = 1011;
/// The client read too slowly; reconnect and resume from the cursor.
const CLOSE_OVERFLOW: u16 = 4008;
/// No frame or pong within the idle timeout.
const CLOSE_IDLE: u16 = 4000;

#[derive(Debug, Deserialize)]
pub struct ResumeQuery {
    /// The last seq the client processed; the server resends everything unacknowledged after it.
    last_seq: Option<i64>,
}

pub async fn upgrade(
    State(state): State<AppState>,
    current: CurrentUser,
    headers: HeaderMap,
    AppQuery(query): AppQuery<ResumeQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    check_origin(&headers, &state.config.allowed_origins)?;
    let ws = ws.map_err(|e| ApiError::BadRequest(format!("expected a WebSocket upgrade: {e}")))?;
    let after = Seq(query.last_seq.unwrap_or(0).max(0));
    let stream = state
        .relay
        .open_stream(current.user.id, Transport::Websocket, after)
        .await?;
    let max_frame = state.config.max_payload_bytes + 16 * 1024;
    Ok(ws
        // tungstenite's defaults (128 KiB each way) suit one busy socket, not 20,000 mostly idle
        // ones; signals are small, and a burst is flushed in one write anyway.
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_message_size(max_frame)
        .on_upgrade(move |socket| session(socket, stream, state, current.user, after)))
}

/// A frame a client sends. One flat struct rather than a tagged enum: serde cannot keep a
/// `RawValue` (the payload, forwarded verbatim) inside an internally tagged enum.
#[derive(Debug, Deserialize)]
struct ClientFrame {
    op: String,
    #[serde(rename = "ref")]
    reference: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "lenient_optional_id")]
    chat_id: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    payload: Option<Box<RawValue>>,
    signal_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_optional_id")]
    to: Option<i64>,
    seq: Option<i64>,
}

/// Read and write buffer per WebSocket.
const SOCKET_BUFFER: usize = 1024;
/// Sends a client may have waiting for the store at once; past this the server stops reading
/// the connection's frames until one completes (backpressure, as TCP would).
const MAX_SENDS_IN_FLIGHT: usize = 64;
/// Pushes written before one flush: a burst of signals costs one write to the socket.
const MAX_FRAMES_PER_FLUSH: usize = 64;

/// The reply to a frame: now, after the store answers (a send), or none (an ack).
enum Reply {
    Now(String),
    Later(BoxFuture<'static, String>),
    None,
}

async fn session(
    socket: WebSocket,
    mut stream: SignalStream,
    state: AppState,
    user: User,
    after: Seq,
) {
    let (mut sink, mut source) = socket.split();
    let config = state.config.clone();
    let shutdown = state.shutdown.clone();
    let welcome =
        json!({"op": "welcome", "v": PROTOCOL_VERSION, "user": user, "last_seq": after.0});
    if sink.send(text(welcome.to_string())).await.is_err() {
        return;
    }
    let mut ping = tokio::time::interval_at(
        Instant::now() + config.ws_ping_interval,
        config.ws_ping_interval,
    );
    let mut last_heard = Instant::now();
    // Replies to sends, in the order the sends came; the sends themselves are queued for the
    // store in that order before the next frame is read.
    let mut pending: FuturesOrdered<BoxFuture<'static, String>> = FuturesOrdered::new();
    let close = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Some((CLOSE_GOING_AWAY, "server shutting down")),
            outgoing = stream.next() => match outgoing {
                Ok(Some(first)) => {
                    let mut written = 0;
                    let mut next = Some(first);
                    let mut failed = false;
                    while let Some(outgoing) = next.take() {
                        if sink.feed(push_frame(&state, &outgoing)).await.is_err() {
                            failed = true;
                            break;
                        }
                        written += 1;
                        if written < MAX_FRAMES_PER_FLUSH {
                            // Whatever is already queued goes out in the same write.
                            next = stream.next().now_or_never().and_then(|o| o.ok().flatten());
                        }
                    }
                    if failed || sink.flush().await.is_err() {
                        break None;
                    }
                }
                Ok(None) => break Some((CLOSE_OVERFLOW, "too slow: reconnect and resume from your last seq")),
                Err(err) => {
                    tracing::error!(error = ?err, user_id = %user.id, "push stream failed");
                    break Some((CLOSE_INTERNAL, "store unavailable: reconnect and resume"));
                }
            },
            Some(reply) = pending.next(), if !pending.is_empty() => {
                if sink.send(text(reply)).await.is_err() {
                    break None;
                }
            }
            frame = source.next(), if pending.len() < MAX_SENDS_IN_FLIGHT => match frame {
                Some(Ok(Message::Text(body))) => {
                    last_heard = Instant::now();
                    match handle_frame(&state, &user, body.as_str()).await {
                        // Replies go out in the order the frames came: an immediate one (an
                        // error, a pong) waits behind the sends still being stored before it.
                        Reply::Now(reply) if !pending.is_empty() => {
                            pending.push_back(Box::pin(std::future::ready(reply)));
                        }
                        Reply::Now(reply) => {
                            if sink.send(text(reply)).await.is_err() {
                                break None;
                            }
                        }
                        Reply::Later(reply) => pending.push_back(reply),
                        Reply::None => {}
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let reply = error_frame(None, 400, "binary frames are not supported: send JSON text", None);
                    if sink.send(text(reply)).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => last_heard = Instant::now(),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > config.ws_idle_timeout {
                    break Some((CLOSE_IDLE, "no heartbeat: connection presumed dead"));
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
        }
    };
    if let Some((code, reason)) = close {
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })))
            .await;
    }
    let _ = sink.close().await;
    tracing::debug!(user_id = %user.id, cursor = stream.cursor().0, "websocket closed");
}

/// The frame for one push, counted in the delivery metrics.
fn push_frame(state: &AppState, outgoing: &Outgoing) -> Message {
    let frame = match outgoing.kind {
        OutgoingKind::Signal(_) => {
            let metrics = state.relay.metrics();
            metrics.delivered(Transport::Websocket, 1);
            if let Some(stored_at) = outgoing.stored_at {
                metrics.observe_latency(Transport::Websocket, stored_at);
            }
            format!(r#"{{"op":"signal","signal":{}}}"#, outgoing.json)
        }
        OutgoingKind::Receipt => format!(r#"{{"op":"receipt","receipt":{}}}"#, outgoing.json),
        OutgoingKind::Message => format!(r#"{{"op":"message","message":{}}}"#, outgoing.json),
    };
    text(frame)
}

fn text(body: String) -> Message {
    Message::Text(body.into())
}

/// Handles one client frame.
async fn handle_frame(state: &AppState, user: &User, body: &str) -> Reply {
    let frame: ClientFrame = match serde_json::from_str(body) {
        Ok(frame) => frame,
        Err(err) => {
            // Echo the ref if the frame is JSON at all, so the client can match the error.
            let reference = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("ref").cloned());
            return Reply::Now(error_frame(
                reference,
                400,
                &format!("invalid frame: {err}"),
                None,
            ));
        }
    };
    let reference = frame.reference;
    match frame.op.as_str() {
        "ping" => Reply::Now(r#"{"op":"pong"}"#.to_owned()),
        "ack" => match frame.seq {
            Some(seq) if seq >= 0 => match state.relay.ack_later(user.id, Seq(seq)).await {
                Ok(()) => Reply::None,
                Err(err) => Reply::Now(relay_error_frame(reference, err)),
            },
            _ => Reply::Now(error_frame(
                reference,
                400,
                "ack needs seq (0 or more)",
                None,
            )),
        },
        "send" => {
            let (Some(chat_id), Some(kind), Some(payload)) =
                (frame.chat_id, frame.kind, frame.payload)
            else {
                return Reply::Now(error_frame(
                    reference,
                    400,
                    "send needs chat_id, type and payload",
                    None,
                ));
            };
            let queued = state
                .relay
                .submit(
                    user,
                    OutgoingSignal {
                        chat: ChatId(chat_id),
                        kind: &kind,
                        payload,
                        signal_id: frame.signal_id.as_deref(),
                        to: frame.to.map(UserId),
                    },
                )
                .await;
            let queued = match queued {
                Ok(queued) => queued,
                Err(err) => return Reply::Now(relay_error_frame(reference, err)),
            };
            Reply::Later(Box::pin(async move {
                match queued.outcome().await {
                    Ok(outcome) => json!({
                        "op": "sent",
                        "ref": reference,
                        "created": outcome.created,
                        "recipients": outcome.recipients,
                        "online": outcome.online,
                        "signal_id": outcome.signal_id,
                    })
                    .to_string(),
                    Err(err) => relay_error_frame(reference, err),
                }
            }))
        }
        other => Reply::Now(error_frame(
            reference,
            400,
            &format!("unknown op {other:?}: expected send, ack or ping"),
            None,
        )),
    }
}

fn relay_error_frame(reference: Option<serde_json::Value>, err: RelayError) -> String {
    let retry_after = match &err {
        RelayError::RateLimited { retry_after } => Some(*retry_after),
        _ => None,
    };
    let error = ApiError::from(err);
    tracing::warn!(
        status = error.status().as_u16(),
        "[P2P_SEND] Rejected WebSocket frame: {error}"
    );
    let mut frame = error_json(
        reference,
        error.status().as_u16(),
        &error.to_string(),
        retry_after,
    );
    if let Some(code) = error.code() {
        frame["code"] = code.into();
    }
    frame.to_string()
}

fn error_frame(
    reference: Option<serde_json::Value>,
    status: u16,
    message: &str,
    retry_after: Option<Duration>,
) -> String {
    error_json(reference, status, message, retry_after).to_string()
}

fn error_json(
    reference: Option<serde_json::Value>,
    status: u16,
    message: &str,
    retry_after: Option<Duration>,
) -> serde_json::Value {
    json!({
        "op": "error",
        "ref": reference,
        "status": status,
        "error": message,
        "retry_after_ms": retry_after.map(|d| d.as_millis() as u64),
    })
}
