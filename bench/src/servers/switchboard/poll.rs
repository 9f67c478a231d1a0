//! Switchboard's HTTP receivers: long-poll (`GET /api/p2p/<chat>/signals/?after=<seq>&wait=25`)
//! and the guide's polling every 1.5 s (the same without `wait`). Each request acknowledges what
//! the previous one returned (`after` is the cursor) and returns what follows.

use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::api::{Api, ApiError};
use super::{ack_body, ClientParts, Receiver, Seat, WireSignal};

/// The browser client's polling period.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1_500);
/// Seconds a long-poll is held (the server caps it at `longpoll_max_wait`, 30 s).
const LONG_POLL_WAIT_SECONDS: u32 = 25;
const ERROR_PAUSE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy)]
pub(super) enum Schedule {
    /// A new request as soon as the previous one answers.
    LongPoll,
    /// A request every `period`, the first at `phase` (0–1) of it.
    Every { period: Duration, phase: f64 },
}

impl Schedule {
    pub fn every_poll_interval(phase: f64) -> Self {
        Self::Every {
            period: POLL_INTERVAL,
            phase,
        }
    }
}

#[derive(Deserialize)]
struct SignalPage<'a> {
    #[serde(borrow)]
    signals: Vec<WireSignal<'a>>,
}

/// What one poll returned.
#[derive(Debug, Clone, Copy, Default)]
pub struct Polled {
    pub signals: usize,
    /// The highest seq returned, if any: the next poll's `after`.
    pub last_seq: Option<i64>,
}

/// One plain poll of `seat`'s chat after `after` (the polling scenario times these).
pub async fn poll_once(api: &Api, seat: &Seat, after: i64) -> Result<Polled, ApiError> {
    let path = format!("/api/p2p/{}/signals/?after={after}", seat.chat);
    let answer = api.get(&seat.account, &path).await?;
    let page: SignalPage = answer.json(200)?;
    Ok(Polled {
        signals: page.signals.len(),
        last_seq: page.signals.iter().map(|s| s.seq).max(),
    })
}

pub(super) fn start(parts: ClientParts, receiver: Receiver, schedule: Schedule) -> JoinHandle<()> {
    tokio::spawn(run(parts, receiver, schedule))
}

async fn run(parts: ClientParts, mut receiver: Receiver, schedule: Schedule) {
    let mut ticker = match schedule {
        Schedule::LongPoll => None,
        Schedule::Every { period, phase } => {
            let first = Instant::now() + period.mul_f64(phase.clamp(0.0, 1.0));
            let mut ticker = tokio::time::interval_at(first, period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            Some(ticker)
        }
    };
    let wait = match schedule {
        Schedule::LongPoll => format!("&wait={LONG_POLL_WAIT_SECONDS}"),
        Schedule::Every { .. } => String::new(),
    };
    let (api, seat) = (&parts.api, &parts.seat);
    loop {
        if let Some(ticker) = ticker.as_mut() {
            tokio::select! {
                biased;
                _ = parts.stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
        }
        let path = format!(
            "/api/p2p/{}/signals/?after={}{wait}",
            seat.chat, receiver.cursor
        );
        let answer = tokio::select! {
            biased;
            _ = parts.stop.cancelled() => break,
            answer = api.get(&seat.account, &path) => answer,
        };
        let received_at = parts.kit.clock.now();
        let page = answer.and_then(|answer| {
            let page: SignalPage = answer.json(200)?;
            for signal in page.signals {
                receiver.take(signal, received_at);
            }
            Ok(())
        });
        if let Err(error) = page {
            parts.events.request_error(|| error.to_string());
            tokio::select! {
                _ = parts.stop.cancelled() => break,
                _ = tokio::time::sleep(ERROR_PAUSE) => {}
            }
        }
    }
    // Acknowledge the last page too, so no later client of this user is handed it again.
    if receiver.cursor > 0 {
        let acked = api
            .post(&seat.account, "/api/p2p/ack/", ack_body(receiver.cursor))
            .await
            .and_then(|answer| answer.expect(200));
        if let Err(error) = acked {
            parts.events.request_error(|| error.to_string());
        }
    }
}
