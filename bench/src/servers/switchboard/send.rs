//! The HTTP sender of SSE, long-poll and polling clients: `POST /api/p2p/send-signal/`, one at a
//! time and in order (concurrent POSTs could be stored out of order), retrying under the same
//! `signal_id` after a 429 or a dropped connection, as the browser client does.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::api::ApiError;
use super::{render_signal, ClientParts};
use crate::client::OutboxQueue;
use crate::signal::Outgoing;

const SEND_PATH: &str = "/api/p2p/send-signal/";
const MAX_ATTEMPTS: u32 = 5;
const RETRY_PAUSE: Duration = Duration::from_millis(100);

pub(super) fn start(parts: ClientParts, mut queue: OutboxQueue) -> JoinHandle<()> {
    tokio::spawn(async move {
        let stopped = parts.stop.cancelled();
        tokio::pin!(stopped);
        loop {
            let signal = tokio::select! {
                biased;
                _ = &mut stopped => return,
                signal = queue.0.recv() => match signal {
                    Some(signal) => signal,
                    None => return,
                },
            };
            send(&parts, &signal).await;
        }
    })
}

async fn send(parts: &ClientParts, signal: &Outgoing) {
    let body = bytes::Bytes::from(render_signal(parts, signal, None));
    let account = &parts.seat.account;
    for attempt in 1..=MAX_ATTEMPTS {
        let pause = match parts.api.post(account, SEND_PATH, body.clone()).await {
            // 201 stored; 200 stored before (a retry of a send that had gone through).
            Ok(answer) if answer.status == 201 || answer.status == 200 => return,
            Ok(answer) => match answer.expect(201) {
                Err(ApiError::Status {
                    status: 429,
                    retry_after,
                    ..
                }) => {
                    parts.events.rate_limited();
                    retry_after.map_or(RETRY_PAUSE, Duration::from_secs_f64)
                }
                Err(error) => return parts.events.send_error(|| error.to_string()),
                Ok(()) => return,
            },
            Err(error) if attempt == MAX_ATTEMPTS => {
                return parts.events.send_error(|| error.to_string())
            }
            Err(_) => RETRY_PAUSE,
        };
        tokio::time::sleep(pause).await;
    }
    parts
        .events
        .send_error(|| format!("{SEND_PATH}: still refused after {MAX_ATTEMPTS} attempts"));
}
