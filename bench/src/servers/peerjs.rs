//! The PeerJS server adapter (npm package `peer` 1.x), speaking its WebSocket protocol as the
//! `peerjs` browser client does.
//!
//! A client connects to `ws://HOST:PORT<path>peerjs?key=…&id=<peer id>&token=…` and gets
//! `{"type":"OPEN"}`; it sends `{"type":"OFFER"|"ANSWER"|"CANDIDATE","dst":…,"payload":…}` and
//! the destination receives the same message with `"src"` added; it sends `{"type":"HEARTBEAT"}`
//! every 5 s. There is no storage, no ordering promise and no acknowledgement: a peer that is
//! not connected gets its messages queued in memory for a few seconds, then they expire.

use std::borrow::Cow;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use super::ws::{self as socket, Socket};
use super::{loopback_url, ClientSpec, ConnectError, Kit, Pair, Party, ServerName, Transport};
use crate::client::{Client, ClientEvents, Inbox, OutboxQueue};
use crate::measure::process::ProcessProbe;
use crate::signal::{Arrival, Mark, Outgoing, Route, SignalKind};

/// What the peerjs client library does.
const HEARTBEAT: Duration = Duration::from_secs(5);
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
const WRITE_BATCH: usize = 256;
const HEARTBEAT_FRAME: &str = r#"{"type":"HEARTBEAT"}"#;

/// A peer id (the client's address on the PeerJS server).
#[derive(Debug, Clone)]
pub struct PeerId(Arc<str>);

pub struct PeerJs {
    /// `ws://HOST:PORT<path>peerjs`
    socket_url: String,
    key: String,
    kit: Kit,
    probe: Option<ProcessProbe>,
    /// Every peer id of the run is new: the server forgets an id only when its socket closes.
    next_peer: AtomicU64,
}

impl PeerJs {
    /// Checks that a PeerJS server answers at `url` (`http://127.0.0.1:PORT/<path>`).
    pub async fn open(url: &str, key: &str, pid: Option<u32>, kit: Kit) -> anyhow::Result<Self> {
        let parsed = loopback_url(url)?;
        let host = parsed.host_str().unwrap_or("127.0.0.1");
        let port = parsed.port().unwrap_or(9000);
        let mut path = parsed.path().to_owned();
        if !path.ends_with('/') {
            path.push('/');
        }
        let http = reqwest::Client::builder().no_proxy().build()?;
        let answer = http
            .get(parsed.clone())
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .with_context(|| format!("PeerJS at {url} does not answer"))?;
        let text = answer.text().await.unwrap_or_default();
        anyhow::ensure!(
            text.contains("PeerJS"),
            "{url} does not look like a PeerJS server: {text:?}"
        );
        Ok(Self {
            socket_url: format!("ws://{host}:{port}{path}peerjs"),
            key: key.to_owned(),
            kit,
            probe: pid.map(ProcessProbe::of_pid),
            next_peer: AtomicU64::new(0),
        })
    }

    pub fn probe(&self) -> Option<&ProcessProbe> {
        self.probe.as_ref()
    }

    fn new_peer(&self) -> PeerId {
        let n = self.next_peer.fetch_add(1, Ordering::Relaxed);
        PeerId(format!("{}-p{n}", self.kit.run_tag).into())
    }

    fn route(to: &PeerId) -> Route {
        Route::new(format!(r#""dst":"{}""#, to.0))
    }

    pub fn pairs(&self, count: usize) -> Vec<Pair> {
        (0..count)
            .map(|_| {
                let (caller, callee) = (self.new_peer(), self.new_peer());
                Pair {
                    to_callee: Self::route(&callee),
                    to_caller: Self::route(&caller),
                    caller: Party::PeerJs(caller),
                    callee: Party::PeerJs(callee),
                }
            })
            .collect()
    }

    pub fn idle_party(&self, _index: usize) -> Party {
        Party::PeerJs(self.new_peer())
    }

    pub async fn connect(&self, spec: ClientSpec) -> Result<Client, ConnectError> {
        let Party::PeerJs(peer) = spec.party else {
            unreachable!("a Switchboard party given to PeerJS");
        };
        if spec.transport != Transport::WebSocket {
            return Err(ConnectError::Unsupported(
                ServerName::PeerJs,
                spec.transport,
            ));
        }
        let url = format!(
            "{}?key={}&id={}&token={}",
            self.socket_url, self.key, peer.0, peer.0
        );
        let mut socket = socket::connect(&url, &[]).await?;
        let first = tokio::time::timeout(OPEN_TIMEOUT, socket.next())
            .await
            .map_err(|_| ConnectError::Timeout)?;
        match first {
            Some(Ok(Message::Text(text))) if text.contains(r#""OPEN""#) => {}
            other => {
                return Err(ConnectError::Rejected(format!(
                    "expected OPEN, got {other:?}"
                )))
            }
        }
        let stop = CancellationToken::new();
        let client = PeerClient {
            kit: self.kit.clone(),
            inbox: spec.inbox,
            queue: spec.queue,
            events: spec.events,
            stop: stop.clone(),
        };
        let task = tokio::spawn(client.run(socket, spec.heartbeat_phase));
        Ok(Client::new(spec.outbox, stop, vec![task]))
    }
}

/// A signal as the server relays it (`src` and `dst` are not needed).
#[derive(Deserialize)]
struct SignalFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    payload: Mark,
}

/// Anything else the server sends (`ERROR`, `EXPIRE`, `LEAVE`, `ID-TAKEN`).
#[derive(Deserialize)]
struct NoticeFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

struct PeerClient {
    kit: Kit,
    inbox: Box<dyn Inbox>,
    queue: OutboxQueue,
    events: Arc<ClientEvents>,
    stop: CancellationToken,
}

impl PeerClient {
    async fn run(mut self, mut socket: Socket, heartbeat_phase: f64) {
        let mut heartbeat = tokio::time::interval_at(
            Instant::now() + HEARTBEAT.mul_f64(heartbeat_phase.clamp(0.0, 1.0)),
            HEARTBEAT,
        );
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // One cancellation future for the whole loop: making one per wake-up takes a lock.
        let stop = self.stop.clone();
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        let lost = loop {
            tokio::select! {
                biased;
                _ = &mut stopped => break None,
                message = socket.next() => match message {
                    Some(Ok(Message::Text(text))) => self.handle(&text),
                    Some(Ok(Message::Close(frame))) => {
                        break Some(format!("PeerJS closed the WebSocket: {frame:?}"))
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => break Some(error.to_string()),
                    None => break Some("the connection ended".to_owned()),
                },
                Some(first) = self.queue.0.recv() => {
                    if let Err(error) = self.write(&mut socket, first).await {
                        break Some(error.to_string());
                    }
                }
                _ = heartbeat.tick() => {
                    if let Err(error) = socket.send(Message::text(HEARTBEAT_FRAME)).await {
                        break Some(error.to_string());
                    }
                }
            }
        };
        match lost {
            // PeerJS has no resume: a dropped client is gone, with whatever was in flight.
            Some(why) => self.events.disconnected(|| why),
            None => {
                let closing = async {
                    socket.close(None).await?;
                    while socket.next().await.is_some() {}
                    Ok::<_, tungstenite::Error>(())
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
            }
        }
    }

    fn handle(&mut self, text: &str) {
        let received_at = self.kit.clock.now();
        if let Ok(frame) = serde_json::from_str::<SignalFrame>(text) {
            if let Some(kind) = SignalKind::from_peerjs_type(&frame.kind) {
                return self.inbox.arrived(Arrival {
                    kind,
                    mark: frame.payload,
                    received_at,
                });
            }
        }
        match serde_json::from_str::<NoticeFrame>(text) {
            Ok(notice) => self.events.request_error(|| {
                format!(
                    "PeerJS sent {}: {}",
                    notice.kind,
                    notice.payload.map(RawValue::get).unwrap_or("")
                )
            }),
            Err(error) => self
                .events
                .request_error(|| format!("unreadable PeerJS frame ({error})")),
        }
    }

    async fn write(
        &mut self,
        socket: &mut Socket,
        first: Outgoing,
    ) -> Result<(), tungstenite::Error> {
        socket.feed(Message::text(self.render(&first))).await?;
        for _ in 1..WRITE_BATCH {
            match self.queue.0.try_recv() {
                Ok(next) => socket.feed(Message::text(self.render(&next))).await?,
                Err(_) => break,
            }
        }
        socket.flush().await
    }

    fn render(&self, signal: &Outgoing) -> String {
        let payloads = &self.kit.payloads;
        let mut frame = String::with_capacity(payloads.capacity(signal.kind) + 96);
        let _ = write!(
            frame,
            r#"{{"type":"{}",{},"payload":"#,
            signal.kind.peerjs_type(),
            signal.route.as_str()
        );
        payloads.write(&mut frame, signal.kind, signal.mark);
        frame.push('}');
        frame
    }
}
