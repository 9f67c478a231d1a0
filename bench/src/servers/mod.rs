//! The two servers under test, behind one small interface: make pairs of parties that can
//! signal each other, and connect a party as a client over a transport.
//!
//! - [`switchboard`]: accounts, direct chats, and the WebSocket, SSE, long-poll and polling
//!   transports of `docs/PROTOCOL.md`;
//! - [`peerjs`]: the PeerJS server's WebSocket protocol (`OFFER`/`ANSWER`/`CANDIDATE`).

pub mod peerjs;
pub mod switchboard;
mod ws;

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use tokio_tungstenite::tungstenite;

use crate::client::{Client, ClientEvents, Inbox, Outbox, OutboxQueue};
use crate::clock::BenchClock;
use crate::measure::process::ProcessProbe;
use crate::signal::{Payloads, Route};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ServerName {
    Switchboard,
    #[serde(rename = "PeerJS")]
    PeerJs,
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Switchboard => "Switchboard",
            Self::PeerJs => "PeerJS",
        })
    }
}

/// How a client receives (and, for Switchboard, sends) signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// Receives and sends over one WebSocket.
    WebSocket,
    /// Receives Server-Sent Events; sends with `POST /api/p2p/send-signal/`.
    Sse,
    /// Receives by long-poll (`?wait=25`); sends with `POST`.
    LongPoll,
    /// Receives by polling every 1.5 s; sends with `POST`.
    Polling,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WebSocket => "WebSocket",
            Self::Sse => "SSE",
            Self::LongPoll => "long-poll",
            Self::Polling => "polling 1.5 s",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("bad URL {0}: {1}")]
    Url(String, String),
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server refused the connection with HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("WebSocket handshake failed: {0}")]
    Handshake(tungstenite::Error),
    #[error("the server refused the client: {0}")]
    Rejected(String),
    #[error("the handshake timed out")]
    Timeout,
    #[error("HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0} does not support the {1} transport")]
    Unsupported(ServerName, Transport),
}

impl From<tungstenite::Error> for ConnectError {
    fn from(error: tungstenite::Error) -> Self {
        match error {
            tungstenite::Error::Http(response) => ConnectError::Refused {
                status: response.status().as_u16(),
                body: response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            },
            tungstenite::Error::Io(error) => ConnectError::Io(error),
            other => ConnectError::Handshake(other),
        }
    }
}

/// What every client needs, whichever server it talks to.
#[derive(Clone)]
pub struct Kit {
    pub clock: BenchClock,
    pub payloads: Arc<Payloads>,
    /// Distinguishes this run's names and signal ids from any earlier run's on the same server.
    pub run_tag: Arc<str>,
}

/// One end of a call: who connects, and as whom.
#[derive(Clone)]
pub enum Party {
    Switchboard(switchboard::Seat),
    PeerJs(peerjs::PeerId),
}

/// Two parties that can signal each other, with the routes to address each.
#[derive(Clone)]
pub struct Pair {
    pub caller: Party,
    pub callee: Party,
    pub to_callee: Route,
    pub to_caller: Route,
}

/// How to connect one client.
pub struct ClientSpec {
    pub party: Party,
    pub transport: Transport,
    pub inbox: Box<dyn Inbox>,
    /// The client's outbox and its queue, made by the caller (whose inbox may hold the outbox
    /// to answer through it).
    pub outbox: Outbox,
    pub queue: OutboxQueue,
    pub events: Arc<ClientEvents>,
    /// Where in the heartbeat period this client's first heartbeat falls (0.0–1.0), so that
    /// thousands of idle clients do not all beat at once.
    pub heartbeat_phase: f64,
}

pub enum Server {
    Switchboard(switchboard::Switchboard),
    PeerJs(peerjs::PeerJs),
}

impl Server {
    pub fn name(&self) -> ServerName {
        match self {
            Self::Switchboard(_) => ServerName::Switchboard,
            Self::PeerJs(_) => ServerName::PeerJs,
        }
    }

    /// The server process, when its PID was given.
    pub fn probe(&self) -> Option<&ProcessProbe> {
        match self {
            Self::Switchboard(server) => server.probe(),
            Self::PeerJs(server) => server.probe(),
        }
    }

    /// `count` pairs of parties for one scenario run.
    pub fn pairs(&self, count: usize) -> anyhow::Result<Vec<Pair>> {
        match self {
            Self::Switchboard(server) => server.pairs(count),
            Self::PeerJs(server) => Ok(server.pairs(count)),
        }
    }

    /// The party of the `index`th of `count` idle connections.
    pub fn idle_party(&self, index: usize, count: usize) -> anyhow::Result<Party> {
        match self {
            Self::Switchboard(server) => server.idle_party(index, count),
            Self::PeerJs(server) => Ok(server.idle_party(index)),
        }
    }

    pub async fn connect(&self, spec: ClientSpec) -> Result<Client, ConnectError> {
        match self {
            Self::Switchboard(server) => server.connect(spec).await,
            Self::PeerJs(server) => server.connect(spec).await,
        }
    }

    /// Drops what the server still holds for these pairs after a scenario that left signals
    /// undelivered (only Switchboard stores them).
    pub async fn discard_backlog(&self, pairs: &[Pair]) {
        if let Self::Switchboard(server) = self {
            let seats = pairs
                .iter()
                .flat_map(|pair| [&pair.caller, &pair.callee])
                .filter_map(|party| match party {
                    Party::Switchboard(seat) => Some(seat.clone()),
                    Party::PeerJs(_) => None,
                })
                .collect();
            server.discard_backlog(seats).await;
        }
    }

    pub fn as_switchboard(&self) -> Option<&switchboard::Switchboard> {
        match self {
            Self::Switchboard(server) => Some(server),
            Self::PeerJs(_) => None,
        }
    }
}

/// Accepts only loopback URLs: the bench must never send load anywhere else.
pub fn loopback_url(url: &str) -> anyhow::Result<reqwest::Url> {
    let parsed = reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("bad URL {url:?}: {e}"))?;
    anyhow::ensure!(
        parsed.scheme() == "http",
        "{url}: only plain http:// on loopback is supported"
    );
    let loopback = match parsed.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    anyhow::ensure!(
        loopback,
        "{url}: the bench only targets loopback addresses (127.0.0.0/8, ::1, localhost)"
    );
    anyhow::ensure!(parsed.port().is_some(), "{url}: give the port explicitly");
    Ok(parsed)
}
