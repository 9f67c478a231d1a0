//! `GET /api/p2p/events/`: the same push stream as the WebSocket, as Server-Sent Events, for
//! networks that block WebSockets. `id:` is the signal's seq, so a browser's automatic reconnect
//! (`Last-Event-ID`) resumes where it stopped. Sending goes through `POST /api/p2p/send-signal/`,
//! acknowledging through `POST /api/p2p/ack/`.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{AppQuery, CurrentUser};
use super::AppState;
use crate::domain::Seq;
use crate::metrics::Transport;
use crate::relay::OutgoingKind;

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// The last seq processed (overridden by the `Last-Event-ID` header on reconnects).
    last_seq: Option<i64>,
}

pub async fn events(
    State(state): State<AppState>,
    current: CurrentUser,
    headers: HeaderMap,
    AppQuery(query): AppQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let after = Seq(last_event_id.or(query.last_seq).unwrap_or(0).max(0));
    let stream = state
        .relay
        .open_stream(current.user.id, Transport::Sse, after)
        .await?;
    let welcome = Event::default().event("welcome").data(
        serde_json::json!({"v": super::ws::PROTOCOL_VERSION, "user": current.user, "last_seq": after.0})
            .to_string(),
    );
    let relay = state.relay.clone();
    let live = stream::unfold(stream, move |mut stream| {
        let relay = relay.clone();
        async move {
            let outgoing = stream.next().await.ok().flatten()?;
            let event = match outgoing.kind {
                OutgoingKind::Signal(seq) => {
                    let metrics = relay.metrics();
                    metrics.delivered(Transport::Sse, 1);
                    if let Some(stored_at) = outgoing.stored_at {
                        metrics.observe_latency(Transport::Sse, stored_at);
                    }
                    Event::default().event("signal").id(seq.0.to_string())
                }
                OutgoingKind::Receipt => Event::default().event("receipt"),
                OutgoingKind::Message => Event::default().event("message"),
            };
            Some((Ok(event.data(&*outgoing.json)), stream))
        }
    });
    let events = stream::once(async move { Ok(welcome) })
        .chain(live)
        .take_until(state.shutdown.clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(state.config.sse_keepalive)))
}
