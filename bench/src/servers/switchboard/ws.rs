//! Switchboard's WebSocket client (`GET /ws/p2p/?last_seq=`): sends `send` frames, receives
//! `signal` frames, acknowledges with `ack` frames and pings every 20 s.
//!
//! It behaves like a careful browser client: after each burst of frames it acknowledges the
//! highest seq it processed (when no further frame is ready, or every 64 frames); when the
//! server drops it (4008 "too slow", a restart) it reconnects with `last_seq` and sends again,
//! under the same `signal_id`, whatever the server had not confirmed — the server stores those
//! once, so nothing is lost or doubled.
//!
//! Reading and writing run concurrently (two futures in the client's one task): a write that
//! waits for the server to drain its receive buffer must never stop this client from reading,
//! or an overloaded server blocked on writing to us would deadlock with us.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::{self, Message};

use super::{render_signal, ClientParts, Receiver, WireSignal};
use crate::client::OutboxQueue;
use crate::servers::ws::{self as socket, Socket};
use crate::servers::ConnectError;
use crate::signal::Outgoing;

/// The protocol's advice: ping every `ws_ping_interval` (20 s).
const HEARTBEAT: Duration = Duration::from_secs(20);
/// Acknowledge at least every this many frames, even in a continuous stream.
const ACK_EVERY: usize = 64;
/// Write at most this many queued signals before flushing.
const WRITE_BATCH: usize = 256;
/// Reconnects in a row, without progress in between, before the client gives up (a browser
/// would go on; the bench must end).
const MAX_FRUITLESS_RECONNECTS: u32 = 10;
/// A connection that delivered something, or lasted this long, counts as progress.
const PROGRESS: Duration = Duration::from_secs(1);
const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);
const PING: &str = r#"{"op":"ping"}"#;

/// What the server sends, read without copying.
#[derive(Deserialize)]
struct ServerFrame<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(rename = "ref")]
    reference: Option<u64>,
    #[serde(borrow)]
    signal: Option<WireSignal<'a>>,
    status: Option<u16>,
    #[serde(borrow)]
    error: Option<Cow<'a, str>>,
}

/// Connects (the handshake and welcome frame happen here, so a refusal reaches the caller) and
/// starts the client's task.
pub(super) async fn start(
    parts: ClientParts,
    receiver: Receiver,
    queue: OutboxQueue,
    heartbeat_phase: f64,
) -> Result<JoinHandle<()>, ConnectError> {
    let socket = open(&parts, receiver.cursor).await?;
    let mut heartbeat = tokio::time::interval_at(
        Instant::now() + HEARTBEAT.mul_f64(heartbeat_phase.clamp(0.0, 1.0)),
        HEARTBEAT,
    );
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let client = WsClient {
        shared: Shared {
            unconfirmed: Mutex::new(VecDeque::new()),
            ack_wanted: AtomicI64::new(receiver.cursor),
            ack_ready: Notify::new(),
        },
        writer: Writer {
            queue,
            resend: Vec::new(),
            heartbeat,
            next_ref: 1,
            acked: receiver.cursor,
        },
        receiver,
        parts,
    };
    Ok(tokio::spawn(client.run(socket)))
}

async fn open(parts: &ClientParts, cursor: i64) -> Result<Socket, ConnectError> {
    let url = format!("{}/ws/p2p/?last_seq={cursor}", parts.api.ws_base());
    let headers = [
        ("Cookie", parts.seat.account.cookie.as_str()),
        // The handshake is refused without the server's own origin (its CSRF defence).
        ("Origin", parts.api.origin()),
    ];
    let mut socket = socket::connect(&url, &headers).await?;
    let first = tokio::time::timeout(WELCOME_TIMEOUT, socket.next())
        .await
        .map_err(|_| ConnectError::Timeout)?;
    match first {
        Some(Ok(Message::Text(text))) => {
            let frame: ServerFrame = serde_json::from_str(&text)
                .map_err(|e| ConnectError::Rejected(format!("unreadable first frame: {e}")))?;
            if frame.op == "welcome" {
                Ok(socket)
            } else {
                Err(ConnectError::Rejected(format!(
                    "expected welcome, got {text}"
                )))
            }
        }
        other => Err(ConnectError::Rejected(format!(
            "expected welcome, got {other:?}"
        ))),
    }
}

/// Why one connection of the client ended.
enum Ended {
    /// The scenario closed the client.
    Stopped,
    /// The connection was lost or closed by the server.
    Lost(String),
}

struct WsClient {
    parts: ClientParts,
    receiver: Receiver,
    writer: Writer,
    shared: Shared,
}

/// What the reading and the writing half share.
struct Shared {
    /// Sent, but not yet answered with `sent` or `error`: sent again after a reconnect. The
    /// lock is never contended: both halves run on one task.
    unconfirmed: Mutex<VecDeque<(u64, Outgoing)>>,
    /// The highest seq processed, for the writer to acknowledge.
    ack_wanted: AtomicI64,
    ack_ready: Notify,
}

struct Writer {
    queue: OutboxQueue,
    /// Sent before a reconnect but never confirmed: written again first, same refs and ids.
    resend: Vec<(u64, Outgoing)>,
    heartbeat: Interval,
    next_ref: u64,
    /// The highest seq acknowledged to the server.
    acked: i64,
}

impl WsClient {
    async fn run(mut self, mut socket: Socket) {
        let mut reconnects = 0;
        loop {
            let (mut sink, mut stream) = socket.split();
            let (cursor, started) = (self.receiver.cursor, Instant::now());
            let why = match self.session(&mut sink, &mut stream).await {
                Ended::Stopped => return self.goodbye(sink, stream).await,
                Ended::Lost(why) => why,
            };
            if self.receiver.cursor > cursor || started.elapsed() >= PROGRESS {
                reconnects = 0;
            }
            if self.parts.stop.is_cancelled() {
                return;
            }
            if reconnects == MAX_FRUITLESS_RECONNECTS {
                return self.parts.events.disconnected(|| why);
            }
            reconnects += 1;
            self.parts.events.reconnected(|| why);
            tokio::time::sleep(Duration::from_millis(50) * reconnects).await;
            match self.reopen().await {
                Ok(reopened) => socket = reopened,
                Err(error) => {
                    return self
                        .parts
                        .events
                        .disconnected(|| format!("reconnecting failed: {error}"))
                }
            }
        }
    }

    async fn session(
        &mut self,
        sink: &mut SplitSink<Socket, Message>,
        stream: &mut SplitStream<Socket>,
    ) -> Ended {
        let Self {
            parts,
            receiver,
            writer,
            shared,
        } = self;
        tokio::select! {
            biased;
            _ = parts.stop.cancelled() => Ended::Stopped,
            why = read(stream, receiver, shared, parts) => Ended::Lost(why),
            why = writer.write(sink, shared, parts) => Ended::Lost(why),
        }
    }

    /// Reconnects after what this client processed; the writer first sends again what the
    /// server had not confirmed (while the reader already reads: that can be a lot).
    async fn reopen(&mut self) -> Result<Socket, ConnectError> {
        let socket = open(&self.parts, self.receiver.cursor).await?;
        self.writer.resend = lock(&self.shared.unconfirmed).iter().cloned().collect();
        Ok(socket)
    }

    /// Acknowledges what was processed and closes the WebSocket properly.
    async fn goodbye(
        mut self,
        mut sink: SplitSink<Socket, Message>,
        mut stream: SplitStream<Socket>,
    ) {
        let cursor = self.receiver.cursor;
        let closing = async {
            if cursor > self.writer.acked {
                self.writer.acked = cursor;
                sink.send(ack_frame(cursor)).await?;
            }
            sink.close().await?;
            // Read until the server's close frame, so the server has let go of the connection
            // before the next scenario starts.
            while stream.next().await.is_some() {}
            Ok::<_, tungstenite::Error>(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
    }
}

/// The reading half: until the connection is lost (returns why).
async fn read(
    stream: &mut SplitStream<Socket>,
    receiver: &mut Receiver,
    shared: &Shared,
    parts: &ClientParts,
) -> String {
    loop {
        let mut message = stream.next().await;
        let mut batch = 0;
        loop {
            match message {
                Some(Ok(Message::Text(text))) => handle(&text, receiver, shared, parts),
                Some(Ok(Message::Close(frame))) => {
                    return format!("the server closed the WebSocket: {frame:?}")
                }
                // Pings are answered by tungstenite itself while we read.
                Some(Ok(_)) => {}
                Some(Err(error)) => return error.to_string(),
                None => return "the connection ended".to_owned(),
            }
            batch += 1;
            if batch == ACK_EVERY {
                break;
            }
            match stream.next().now_or_never() {
                Some(next) => message = next,
                None => break,
            }
        }
        if receiver.cursor > shared.ack_wanted.load(Ordering::Relaxed) {
            shared.ack_wanted.store(receiver.cursor, Ordering::Relaxed);
            shared.ack_ready.notify_one();
        }
    }
}

fn handle(text: &str, receiver: &mut Receiver, shared: &Shared, parts: &ClientParts) {
    let received_at = parts.kit.clock.now();
    let frame: ServerFrame = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(error) => {
            return parts
                .events
                .request_error(|| format!("unreadable frame ({error}): {}", preview(text)))
        }
    };
    match &*frame.op {
        "signal" => {
            if let Some(signal) = frame.signal {
                receiver.take(signal, received_at);
            }
        }
        "sent" => confirm(shared, frame.reference),
        "error" => {
            let status = frame.status.unwrap_or(0);
            let error = frame.error.unwrap_or_default();
            if frame.reference.is_some() {
                confirm(shared, frame.reference);
                if status == 429 {
                    parts.events.rate_limited();
                }
                parts
                    .events
                    .send_error(|| format!("WebSocket send refused: {status} {error}"));
            } else {
                parts
                    .events
                    .request_error(|| format!("WebSocket frame refused: {status} {error}"));
            }
        }
        // welcome, receipt, message, pong: nothing to do.
        _ => {}
    }
}

/// The server answered every frame up to `reference` (it handles a connection's frames in
/// order).
fn confirm(shared: &Shared, reference: Option<u64>) {
    let Some(reference) = reference else { return };
    let mut unconfirmed = lock(&shared.unconfirmed);
    while unconfirmed
        .front()
        .is_some_and(|(sent, _)| *sent <= reference)
    {
        unconfirmed.pop_front();
    }
}

impl Writer {
    /// The writing half: until the connection is lost (returns why).
    async fn write(
        &mut self,
        sink: &mut SplitSink<Socket, Message>,
        shared: &Shared,
        parts: &ClientParts,
    ) -> String {
        let result: Result<(), tungstenite::Error> = async {
            if !self.resend.is_empty() {
                for (reference, signal) in std::mem::take(&mut self.resend) {
                    sink.feed(Message::text(render_signal(
                        parts,
                        &signal,
                        Some(reference),
                    )))
                    .await?;
                }
                sink.flush().await?;
            }
            loop {
                tokio::select! {
                    biased;
                    _ = shared.ack_ready.notified() => {
                        let seq = shared.ack_wanted.load(Ordering::Relaxed);
                        if seq > self.acked {
                            self.acked = seq;
                            sink.send(ack_frame(seq)).await?;
                        }
                    }
                    Some(first) = self.queue.0.recv() => {
                        self.feed(sink, shared, parts, first).await?;
                        for _ in 1..WRITE_BATCH {
                            match self.queue.0.try_recv() {
                                Ok(next) => self.feed(sink, shared, parts, next).await?,
                                Err(_) => break,
                            }
                        }
                        sink.flush().await?;
                    }
                    _ = self.heartbeat.tick() => sink.send(Message::text(PING)).await?,
                }
            }
        }
        .await;
        match result {
            Err(error) => error.to_string(),
            Ok(()) => "the writer stopped".to_owned(),
        }
    }

    async fn feed(
        &mut self,
        sink: &mut SplitSink<Socket, Message>,
        shared: &Shared,
        parts: &ClientParts,
        signal: Outgoing,
    ) -> Result<(), tungstenite::Error> {
        let reference = self.next_ref;
        self.next_ref += 1;
        let frame = render_signal(parts, &signal, Some(reference));
        lock(&shared.unconfirmed).push_back((reference, signal));
        sink.feed(Message::text(frame)).await
    }
}

fn ack_frame(seq: i64) -> Message {
    Message::text(format!(r#"{{"op":"ack","seq":{seq}}}"#))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The start of a frame, for error messages.
fn preview(text: &str) -> &str {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
