//! The Switchboard adapter: its users and chats, and a client for each push transport of
//! `docs/PROTOCOL.md`.
//!
//! - [`accounts`]: registering the user pool and pairing users in direct chats;
//! - [`api`]: authenticated HTTP calls;
//! - [`ws`]: WebSocket clients (send, receive, ack and ping frames on one socket);
//! - [`sse`]: Server-Sent Events receivers, acknowledging with `POST /api/p2p/ack/`;
//! - [`poll`]: long-poll and 1.5 s polling receivers (`GET …/signals/?after=`);
//! - [`send`]: the HTTP sender (`POST /api/p2p/send-signal/`) of every non-WebSocket client.

pub mod accounts;
pub mod api;
mod poll;
mod send;
mod sse;
mod ws;

use std::borrow::Cow;
use std::fmt::Write;
use std::sync::Arc;

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use self::accounts::Account;
use self::api::Api;
pub use self::poll::{poll_once, POLL_INTERVAL};
use super::{ClientSpec, ConnectError, Kit, Pair, Party, Transport};
use crate::client::{Client, ClientEvents, Inbox};
use crate::measure::process::ProcessProbe;
use crate::progress::Progress;
use crate::signal::{Arrival, Mark, Outgoing, Route, SignalKind};

/// At most this many of a user's connections are opened at once (the server's default
/// `max_connections_per_user` is 16).
pub const MAX_CONNECTIONS_PER_USER: usize = 10;
/// Registrations in flight at once: each costs the server an Argon2 hash.
const REGISTRATION_CONCURRENCY: usize = 4;
const CHAT_CONCURRENCY: usize = 8;

/// A user taking part in one chat.
#[derive(Clone)]
pub struct Seat {
    pub account: Arc<Account>,
    pub chat: i64,
    /// Which node of the deployment this client talks to (users 2i and 2i + 1 of a pair sit on
    /// different nodes when there are two, so every signal crosses the bus).
    pub node: usize,
}

pub struct Switchboard {
    api: Api,
    /// Every node of the deployment, `api` first.
    nodes: Vec<Api>,
    kit: Kit,
    probe: Option<ProcessProbe>,
    /// Users `2i` and `2i + 1` share the direct chat `chats[i]`.
    accounts: Vec<Arc<Account>>,
    chats: Vec<i64>,
}

impl Switchboard {
    /// Checks that the server answers at `base` (`http://127.0.0.1:PORT`).
    /// `more_nodes`: further nodes of the same deployment (same database and Redis), which
    /// clients are spread over.
    pub async fn open(
        base: &str,
        more_nodes: &[String],
        pid: Option<u32>,
        kit: Kit,
    ) -> anyhow::Result<Self> {
        let mut nodes = Vec::new();
        for url in std::iter::once(base).chain(more_nodes.iter().map(String::as_str)) {
            let api = Api::new(url)?;
            api.get_anonymous("/healthz")
                .await
                .and_then(|answer| answer.expect(200))
                .with_context(|| format!("Switchboard at {url} is not healthy"))?;
            nodes.push(api);
        }
        Ok(Self {
            api: nodes[0].clone(),
            nodes,
            kit,
            probe: pid.map(ProcessProbe::of_pid),
            accounts: Vec::new(),
            chats: Vec::new(),
        })
    }

    pub fn probe(&self) -> Option<&ProcessProbe> {
        self.probe.as_ref()
    }

    pub fn api(&self) -> &Api {
        &self.api
    }

    pub fn users(&self) -> usize {
        self.accounts.len()
    }

    /// Acknowledges everything stored for these seats' users, delivered or not. After a run
    /// that overloaded the server, its undelivered backlog would otherwise be replayed to the
    /// next scenario's clients (they resume from their cursor) and load that measurement.
    pub async fn discard_backlog(&self, seats: Vec<Seat>) {
        let body = ack_body(i64::MAX);
        futures_util::stream::iter(seats)
            .for_each_concurrent(CHAT_CONCURRENCY, |seat| {
                let body = body.clone();
                async move {
                    let _ = self.api.post(&seat.account, "/api/p2p/ack/", body).await;
                }
            })
            .await;
    }

    /// The store query counter of `GET /metrics`.
    pub async fn store_queries(&self) -> anyhow::Result<u64> {
        let answer = self.api.get_anonymous("/metrics").await?;
        answer.expect(200)?;
        let text = String::from_utf8_lossy(&answer.body);
        let queries =
            crate::measure::metrics::counter(&text, crate::measure::metrics::STORE_QUERIES)
                .with_context(|| {
                    format!("/metrics has no {}", crate::measure::metrics::STORE_QUERIES)
                })?;
        Ok(queries as u64)
    }

    /// Registers `users` users (rounded up to pairs) and opens one direct chat per pair.
    pub async fn prepare(&mut self, users: usize, progress: &Progress) -> anyhow::Result<()> {
        let users = users.div_ceil(2) * 2;
        let bar = progress.bar("Switchboard: registering users", users as u64);
        let tag = self.kit.run_tag.clone();
        let api = self.api.clone();
        let registered: Vec<Account> = futures_util::stream::iter(0..users)
            .map(|i| {
                let (api, bar) = (api.clone(), bar.clone());
                let username = format!("{tag}-u{i}");
                async move {
                    let account = accounts::register(&api, username).await;
                    bar.inc(1);
                    account
                }
            })
            .buffered(REGISTRATION_CONCURRENCY)
            .try_collect()
            .await
            .context("registering the bench's users (is open registration on?)")?;
        bar.finish();
        self.accounts = registered.into_iter().map(Arc::new).collect();

        let bar = progress.bar("Switchboard: opening direct chats", (users / 2) as u64);
        let chats: Vec<i64> = futures_util::stream::iter(self.accounts.chunks(2))
            .map(|pair| {
                let (api, bar) = (api.clone(), bar.clone());
                async move {
                    let chat = accounts::direct_chat(&api, &pair[0], &pair[1]).await;
                    bar.inc(1);
                    chat
                }
            })
            .buffered(CHAT_CONCURRENCY)
            .try_collect()
            .await
            .context("opening the bench's chats")?;
        bar.finish();
        self.chats = chats;
        Ok(())
    }

    fn route(chat: i64) -> Route {
        Route::new(format!(r#""chat_id":{chat}"#))
    }

    /// The first `count` user pairs with their chats.
    pub fn pairs(&self, count: usize) -> anyhow::Result<Vec<Pair>> {
        anyhow::ensure!(
            count <= self.chats.len(),
            "{count} pairs asked for, but only {} users were registered",
            self.accounts.len()
        );
        Ok((0..count)
            .map(|i| {
                let chat = self.chats[i];
                let seat = |user: usize| {
                    Party::Switchboard(Seat {
                        account: self.accounts[user].clone(),
                        chat,
                        node: user % self.nodes.len(),
                    })
                };
                Pair {
                    caller: seat(2 * i),
                    callee: seat(2 * i + 1),
                    to_callee: Self::route(chat),
                    to_caller: Self::route(chat),
                }
            })
            .collect())
    }

    /// The `index`th of `count` clients spread over the users, at most
    /// [`MAX_CONNECTIONS_PER_USER`] each (several clients of one user, like several tabs).
    pub fn seat(&self, index: usize, count: usize) -> anyhow::Result<Seat> {
        anyhow::ensure!(!self.accounts.is_empty(), "no users registered");
        anyhow::ensure!(
            count.div_ceil(self.accounts.len()) <= MAX_CONNECTIONS_PER_USER,
            "{count} clients need at least {} users ({MAX_CONNECTIONS_PER_USER} each); {} registered",
            count.div_ceil(MAX_CONNECTIONS_PER_USER),
            self.accounts.len()
        );
        let user = index % self.accounts.len();
        Ok(Seat {
            account: self.accounts[user].clone(),
            chat: self.chats[user / 2],
            node: user % self.nodes.len(),
        })
    }

    pub fn idle_party(&self, index: usize, count: usize) -> anyhow::Result<Party> {
        Ok(Party::Switchboard(self.seat(index, count)?))
    }

    pub async fn connect(&self, spec: ClientSpec) -> Result<Client, ConnectError> {
        let Party::Switchboard(seat) = spec.party else {
            unreachable!("a PeerJS party given to Switchboard");
        };
        let stop = CancellationToken::new();
        let (outbox, queue) = (spec.outbox, spec.queue);
        let receiver = Receiver::new(seat.account.clone(), spec.inbox, spec.events.clone());
        let client = ClientParts {
            api: self.nodes[seat.node].clone(),
            kit: self.kit.clone(),
            seat,
            events: spec.events,
            stop: stop.clone(),
        };
        let tasks = match spec.transport {
            Transport::WebSocket => {
                vec![ws::start(client, receiver, queue, spec.heartbeat_phase).await?]
            }
            Transport::Sse => {
                let mut tasks = sse::start(client.clone(), receiver).await?;
                tasks.push(send::start(client, queue));
                tasks
            }
            Transport::LongPoll | Transport::Polling => {
                let schedule = if spec.transport == Transport::LongPoll {
                    poll::Schedule::LongPoll
                } else {
                    poll::Schedule::every_poll_interval(spec.heartbeat_phase)
                };
                vec![
                    poll::start(client.clone(), receiver, schedule),
                    send::start(client, queue),
                ]
            }
        };
        Ok(Client::new(outbox, stop, tasks))
    }
}

/// What every client task of one Switchboard client shares.
#[derive(Clone)]
struct ClientParts {
    api: Api,
    kit: Kit,
    seat: Seat,
    events: Arc<ClientEvents>,
    stop: CancellationToken,
}

/// A signal as Switchboard takes it: the body of `POST /api/p2p/send-signal/`, or with a
/// `reference`, the WebSocket `send` frame (the same object with `op` and `ref`).
fn render_signal(parts: &ClientParts, signal: &Outgoing, reference: Option<u64>) -> String {
    let payloads = &parts.kit.payloads;
    let mark = signal.mark;
    let mut out = String::with_capacity(payloads.capacity(signal.kind) + 160);
    out.push('{');
    if let Some(reference) = reference {
        let _ = write!(out, r#""op":"send","ref":{reference},"#);
    }
    let _ = write!(
        out,
        r#"{},"type":"{}","signal_id":"{}-{}-{}","payload":"#,
        signal.route.as_str(),
        signal.kind.switchboard_type(),
        parts.kit.run_tag,
        mark.k,
        mark.n,
    );
    payloads.write(&mut out, signal.kind, mark);
    out.push('}');
    out
}

/// A signal as every Switchboard transport carries it, read without copying its strings.
#[derive(Deserialize)]
struct WireSignal<'a> {
    seq: i64,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    payload: Mark,
}

/// The client side of the protocol's exactly-once rule: it keeps a cursor (the highest seq
/// processed) and drops anything at or below it.
struct Receiver {
    account: Arc<Account>,
    inbox: Box<dyn Inbox>,
    events: Arc<ClientEvents>,
    cursor: i64,
}

impl Receiver {
    fn new(account: Arc<Account>, inbox: Box<dyn Inbox>, events: Arc<ClientEvents>) -> Self {
        Self {
            cursor: account.cursor(),
            account,
            inbox,
            events,
        }
    }

    fn take(&mut self, signal: WireSignal<'_>, received_at: u64) {
        if signal.seq <= self.cursor {
            self.events.redelivered();
            return;
        }
        self.cursor = signal.seq;
        match SignalKind::from_switchboard_type(&signal.kind) {
            Some(kind) => self.inbox.arrived(Arrival {
                kind,
                mark: signal.payload,
                received_at,
            }),
            None => self
                .events
                .request_error(|| format!("unexpected signal type {:?}", signal.kind)),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // The next client of this user resumes after what this one processed.
        self.account.advance_cursor(self.cursor);
    }
}

/// `{"seq": N}` for `POST /api/p2p/ack/`.
fn ack_body(seq: i64) -> String {
    format!(r#"{{"seq":{seq}}}"#)
}
