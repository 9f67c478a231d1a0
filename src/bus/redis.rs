//! The Redis bus: several nodes, one Redis. Every push is dispatched to this node's hub at once
//! and published on one Redis channel; every node subscribes and hands what others published to
//! its own hub. Redis only wakes nodes up — the signal itself is already committed in the store.
//!
//! When the subscription is down (Redis stopped or restarting), pushes from other nodes cannot
//! arrive, so every `catch_up_interval` this node tells all its connections to re-read the store
//! from their cursors; when the subscription comes back it does so once more, then stops.
//! Delivery therefore never stops, it only slows to the catch-up interval, and recovers by itself.
//!
//! Presence (for `online` in send results) travels the same channel: every node publishes the
//! users it holds every `PRESENCE_INTERVAL`, and the others remember each node's list for three
//! intervals — so a killed node's users stop counting as online by themselves, and a send never
//! waits for Redis to answer "is bob online?".

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Bus;
use crate::clock::{Clock, SystemClock};
use crate::domain::{ChatId, Seq, UserId};
use crate::hub::{Hub, Push};

/// Pushes waiting for the Redis publisher; beyond this they are dropped (the other nodes'
/// clients still get them by catch-up or their next gap check) rather than growing memory.
const OUTBOX: usize = 65_536;

/// How often a node tells the others which users it holds.
const PRESENCE_INTERVAL: Duration = Duration::from_secs(2);

/// What this node knows of other nodes' users: node id → (users, valid until).
type RemotePresence = Arc<std::sync::Mutex<HashMap<String, (HashSet<i64>, Instant)>>>;

pub struct RedisBus {
    node: String,
    hub: Hub,
    outbox: mpsc::Sender<Envelope>,
    connected: Arc<AtomicBool>,
    remote: RemotePresence,
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    node: String,
    user: i64,
    #[serde(flatten)]
    push: WirePush,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum WirePush {
    Signal {
        seq: i64,
        chat: i64,
        json: String,
        stored_ms: i64,
    },
    Receipt {
        json: String,
    },
    Message {
        json: String,
    },
    /// The users with a live connection on the publishing node.
    Presence {
        users: Vec<i64>,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL {0:?}")]
pub struct RedisUrlError(String);

impl RedisBus {
    /// Starts the publisher and subscriber tasks; they run until `shutdown`. Connecting happens
    /// in the background, so a node starts even while Redis is down.
    pub fn start(
        url: &str,
        prefix: &str,
        hub: Hub,
        catch_up_interval: Duration,
        gauge: prometheus_client::metrics::gauge::Gauge,
        shutdown: CancellationToken,
    ) -> Result<Self, RedisUrlError> {
        let client = redis::Client::open(url).map_err(|_| RedisUrlError(url.to_owned()))?;
        let channel = format!("{prefix}:push");
        let node = uuid::Uuid::new_v4().to_string();
        let (outbox, rx) = mpsc::channel(OUTBOX);
        let connected = Arc::new(AtomicBool::new(false));
        let remote = RemotePresence::default();
        gauge.set(0);
        tokio::spawn(announce_presence(
            node.clone(),
            hub.clone(),
            outbox.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(publish_loop(
            client.clone(),
            channel.clone(),
            rx,
            shutdown.clone(),
        ));
        tokio::spawn(subscribe_loop(SubscribeLoop {
            client,
            channel,
            node: node.clone(),
            hub: hub.clone(),
            connected: connected.clone(),
            remote: remote.clone(),
            catch_up_interval,
            shutdown,
            gauge,
        }));
        Ok(Self {
            node,
            hub,
            outbox,
            connected,
            remote,
        })
    }

    /// Whether the subscription to Redis is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

impl Bus for RedisBus {
    fn publish(&self, user: UserId, push: Push) {
        let wire = match &push {
            Push::Signal {
                seq,
                chat,
                json,
                stored_at,
            } => Some(WirePush::Signal {
                seq: seq.0,
                chat: chat.0,
                json: json.to_string(),
                stored_ms: SystemClock.now().millis() - stored_at.elapsed().as_millis() as i64,
            }),
            Push::Receipt(json) => Some(WirePush::Receipt {
                json: json.to_string(),
            }),
            Push::Message(json) => Some(WirePush::Message {
                json: json.to_string(),
            }),
            Push::Resync => None,
        };
        self.hub.dispatch(user, push);
        if let Some(push) = wire {
            let envelope = Envelope {
                node: self.node.clone(),
                user: user.0,
                push,
            };
            if self.outbox.try_send(envelope).is_err() {
                tracing::warn!("[BUS] Redis outbox full; other nodes will catch up from the store");
            }
        }
    }

    fn is_online(&self, user: UserId) -> bool {
        if self.hub.is_online(user) {
            return true;
        }
        let now = Instant::now();
        let remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        remote
            .values()
            .any(|(users, until)| *until > now && users.contains(&user.0))
    }
}

async fn announce_presence(
    node: String,
    hub: Hub,
    outbox: mpsc::Sender<Envelope>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(PRESENCE_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let users = hub.online_users().into_iter().map(|u| u.0).collect();
        let _ = outbox.try_send(Envelope {
            node: node.clone(),
            user: 0,
            push: WirePush::Presence { users },
        });
    }
}

async fn publish_loop(
    client: redis::Client,
    channel: String,
    mut outbox: mpsc::Receiver<Envelope>,
    shutdown: CancellationToken,
) {
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    loop {
        let envelope = tokio::select! {
            _ = shutdown.cancelled() => return,
            envelope = outbox.recv() => match envelope { Some(e) => e, None => return },
        };
        let Ok(payload) = serde_json::to_string(&envelope) else {
            continue;
        };
        if connection.is_none() {
            connection = client.get_multiplexed_async_connection().await.ok();
        }
        let Some(conn) = connection.as_mut() else {
            continue; // Redis is down: this push reaches other nodes by catch-up.
        };
        let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(payload)
            .query_async(conn)
            .await;
        if let Err(err) = published {
            tracing::warn!(error = %err, "[BUS] publishing to Redis failed; reconnecting");
            connection = None;
        }
    }
}

struct SubscribeLoop {
    client: redis::Client,
    channel: String,
    node: String,
    hub: Hub,
    connected: Arc<AtomicBool>,
    remote: RemotePresence,
    catch_up_interval: Duration,
    shutdown: CancellationToken,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl SubscribeLoop {
    fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
        self.gauge.set(i64::from(up));
    }
}

async fn subscribe_loop(s: SubscribeLoop) {
    let mut was_connected = true; // so a node that starts with Redis down says so once
    loop {
        let subscribed = async {
            let mut pubsub = s.client.get_async_pubsub().await?;
            pubsub.subscribe(&s.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            _ = s.shutdown.cancelled() => return,
            result = tokio::time::timeout(s.catch_up_interval, subscribed) => result,
        };
        match pubsub {
            Ok(Ok(pubsub)) => {
                s.set_connected(true);
                was_connected = true;
                tracing::info!("[BUS] subscribed to Redis channel {}", s.channel);
                // Whatever other nodes published while we were away is in the store.
                s.hub.resync_all();
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        _ = s.shutdown.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    let Ok(payload) = message.get_payload::<String>() else {
                        continue;
                    };
                    match serde_json::from_str::<Envelope>(&payload) {
                        Ok(envelope) if envelope.node != s.node => {
                            deliver(&s.hub, &s.remote, envelope)
                        }
                        Ok(_) => {} // our own: already dispatched locally
                        Err(err) => {
                            tracing::warn!(error = %err, "[BUS] ignoring a malformed message")
                        }
                    }
                }
                s.set_connected(false);
                tracing::warn!("[BUS] Redis subscription lost; catching up from the store every {:?} until it is back", s.catch_up_interval);
            }
            _ => {
                s.set_connected(false);
                if was_connected {
                    tracing::warn!("[BUS] Redis unreachable; catching up from the store every {:?} until it is back", s.catch_up_interval);
                    was_connected = false;
                }
            }
        }
        s.hub.resync_all();
        tokio::select! {
            _ = s.shutdown.cancelled() => return,
            _ = tokio::time::sleep(s.catch_up_interval) => {}
        }
    }
}

fn deliver(hub: &Hub, remote: &RemotePresence, envelope: Envelope) {
    let user = UserId(envelope.user);
    let push = match envelope.push {
        WirePush::Signal {
            seq,
            chat,
            json,
            stored_ms,
        } => {
            let age = SystemClock.now().millis().saturating_sub(stored_ms).max(0) as u64;
            Push::Signal {
                seq: Seq(seq),
                chat: ChatId(chat),
                json: json.into(),
                stored_at: Instant::now()
                    .checked_sub(Duration::from_millis(age))
                    .unwrap_or_else(Instant::now),
            }
        }
        WirePush::Receipt { json } => Push::Receipt(json.into()),
        WirePush::Message { json } => Push::Message(json.into()),
        WirePush::Presence { users } => {
            let until = Instant::now() + 3 * PRESENCE_INTERVAL;
            let mut remote = remote.lock().unwrap_or_else(|e| e.into_inner());
            remote.insert(envelope.node, (users.into_iter().collect(), until));
            remote.retain(|_, (_, valid)| *valid > Instant::now());
            return;
        }
    };
    hub.dispatch(user, push);
}
