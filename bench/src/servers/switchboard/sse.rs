//! Switchboard's Server-Sent Events receiver (`GET /api/p2p/events/?last_seq=`).
//!
//! Reading and acknowledging are separate tasks: the reader never waits for an HTTP round trip,
//! and hands the highest seq it processed to the acker through a `watch`, which coalesces a
//! burst of signals into one `POST /api/p2p/ack/`.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{FutureExt, Stream, StreamExt};
use reqwest::header::COOKIE;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{ack_body, ClientParts, Receiver, WireSignal};
use crate::servers::ConnectError;

/// Reconnects in a row, without progress in between, before the client gives up (a browser
/// would go on; the bench must end).
const MAX_FRUITLESS_RECONNECTS: u32 = 10;
/// A connection that delivered something, or lasted this long, counts as progress.
const PROGRESS: Duration = Duration::from_secs(1);

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// Opens the stream (so a refusal reaches the caller) and starts the reader and the acker.
pub(super) async fn start(
    parts: ClientParts,
    receiver: Receiver,
) -> Result<Vec<JoinHandle<()>>, ConnectError> {
    let body = open(&parts, receiver.cursor).await?;
    let (acks, acked) = watch::channel(receiver.cursor);
    let acker = tokio::spawn(acknowledge(parts.clone(), acked));
    let reader = SseReader {
        parts,
        receiver,
        acks,
        buffer: Vec::with_capacity(16 * 1024),
    };
    Ok(vec![tokio::spawn(reader.run(body)), acker])
}

async fn open(parts: &ClientParts, cursor: i64) -> Result<Body, ConnectError> {
    let response = parts
        .api
        .http
        .get(
            parts
                .api
                .url(&format!("/api/p2p/events/?last_seq={cursor}")),
        )
        .header(COOKIE, &parts.seat.account.cookie)
        .send()
        .await?;
    let status = response.status().as_u16();
    if status != 200 {
        let body = response.text().await.unwrap_or_default();
        return Err(ConnectError::Refused { status, body });
    }
    Ok(Box::pin(response.bytes_stream()))
}

struct SseReader {
    parts: ClientParts,
    receiver: Receiver,
    acks: watch::Sender<i64>,
    buffer: Vec<u8>,
}

impl SseReader {
    async fn run(mut self, mut body: Body) {
        let mut reconnects = 0;
        loop {
            let (cursor, started) = (self.receiver.cursor, std::time::Instant::now());
            let why = match self.session(&mut body).await {
                None => break,
                Some(why) => why,
            };
            if self.receiver.cursor > cursor || started.elapsed() >= PROGRESS {
                reconnects = 0;
            }
            if self.parts.stop.is_cancelled() {
                break;
            }
            if reconnects == MAX_FRUITLESS_RECONNECTS {
                self.parts.events.disconnected(|| why);
                break;
            }
            reconnects += 1;
            self.parts.events.reconnected(|| why);
            tokio::time::sleep(Duration::from_millis(50) * reconnects).await;
            self.buffer.clear();
            match open(&self.parts, self.receiver.cursor).await {
                Ok(reopened) => body = reopened,
                Err(error) => {
                    self.parts
                        .events
                        .disconnected(|| format!("reconnecting failed: {error}"));
                    break;
                }
            }
        }
        // The acker posts this last cursor, then ends because the sender is dropped.
        self.acks.send_replace(self.receiver.cursor);
    }

    /// Reads until stopped (`None`) or the stream is lost (why).
    async fn session(&mut self, body: &mut Body) -> Option<String> {
        let stop = self.parts.stop.clone();
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                biased;
                _ = &mut stopped => return None,
                chunk = body.next() => {
                    let mut chunk = chunk;
                    loop {
                        match chunk {
                            Some(Ok(bytes)) => self.buffer.extend_from_slice(&bytes),
                            Some(Err(error)) => return Some(error.to_string()),
                            None => return Some("the event stream ended".to_owned()),
                        }
                        match body.next().now_or_never() {
                            Some(next) => chunk = next,
                            None => break,
                        }
                    }
                    let received_at = self.parts.kit.clock.now();
                    let consumed = read_events(&self.buffer, &mut self.receiver, received_at);
                    self.buffer.drain(..consumed);
                    let cursor = self.receiver.cursor;
                    self.acks.send_if_modified(|acked| {
                        let newer = cursor > *acked;
                        *acked = cursor.max(*acked);
                        newer
                    });
                }
            }
        }
    }
}

/// Hands every complete `signal` event in `buffer` to the receiver; returns the bytes used.
fn read_events(buffer: &[u8], receiver: &mut Receiver, received_at: u64) -> usize {
    let mut consumed = 0;
    while let Some(end) = buffer[consumed..].windows(2).position(|w| w == b"\n\n") {
        let block = &buffer[consumed..consumed + end];
        consumed += end + 2;
        let mut is_signal = false;
        let mut data: &[u8] = &[];
        for line in block.split(|&b| b == b'\n') {
            if let Some(event) = line.strip_prefix(b"event:") {
                is_signal = event.trim_ascii() == b"signal";
            } else if let Some(value) = line.strip_prefix(b"data:") {
                data = value.trim_ascii_start();
            }
        }
        if !is_signal {
            continue; // welcome, receipt, message, keep-alive comment
        }
        match serde_json::from_slice::<WireSignal>(data) {
            Ok(signal) => receiver.take(signal, received_at),
            Err(error) => receiver
                .events
                .request_error(|| format!("unreadable signal event: {error}")),
        }
    }
    consumed
}

/// Posts the newest cursor whenever it moves; ends after the last one once the reader is gone.
async fn acknowledge(parts: ClientParts, mut cursor: watch::Receiver<i64>) {
    let mut acked = *cursor.borrow_and_update();
    loop {
        let open = cursor.changed().await.is_ok();
        let seq = *cursor.borrow_and_update();
        if seq > acked {
            let answer = parts
                .api
                .post(&parts.seat.account, "/api/p2p/ack/", ack_body(seq))
                .await
                .and_then(|answer| answer.expect(200));
            match answer {
                Ok(()) => acked = seq,
                Err(error) => parts.events.request_error(|| error.to_string()),
            }
        }
        if !open {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::client::{ClientEvents, Inbox};
    use crate::servers::switchboard::accounts::Account;
    use crate::signal::Arrival;

    struct Collect(Arc<AtomicI64>);
    impl Inbox for Collect {
        fn arrived(&mut self, arrival: Arrival) {
            self.0
                .fetch_add(i64::from(arrival.mark.n), Ordering::Relaxed);
        }
    }

    #[test]
    fn reads_signal_events_and_keeps_an_incomplete_one_for_later() {
        let total = Arc::new(AtomicI64::new(0));
        let account = Arc::new(Account::for_tests());
        let mut receiver = Receiver::new(
            account,
            Box::new(Collect(total.clone())),
            Arc::new(ClientEvents::default()),
        );
        let signal = |seq: i64, n: u32| {
            format!(
                "event: signal\nid: {seq}\ndata: {{\"seq\":{seq},\"type\":\"webrtc.ice\",\"payload\":{{\"t\":1,\"n\":{n},\"k\":0}}}}\n\n"
            )
        };
        let mut stream = String::from("event: welcome\ndata: {\"v\":1}\n\n:\n\n");
        stream += &signal(1, 10);
        stream += &signal(2, 20);
        stream += "event: signal\nid: 3\ndata: {\"seq\":3";
        let consumed = read_events(stream.as_bytes(), &mut receiver, 5);
        assert_eq!(total.load(Ordering::Relaxed), 30);
        assert_eq!(receiver.cursor, 2);
        assert!(stream[consumed..].starts_with("event: signal\nid: 3"));
    }
}
