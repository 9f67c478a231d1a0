//! The hub: this node's live push connections, keyed by user.
//!
//! Each connection gets a bounded queue. A push that finds the queue full closes that connection
//! instead of growing memory: the client reconnects and resumes from its cursor, and the store
//! still holds everything it missed. Nothing here touches the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::domain::{ChatId, Seq, UserId};
use crate::metrics::{Metrics, Transport, TransportLabel};

/// Something to push to a user's connections. JSON is serialised once, shared by all of them.
#[derive(Debug, Clone)]
pub enum Push {
    /// A stored signal (its JSON is the same object the HTTP API returns).
    Signal {
        seq: Seq,
        chat: ChatId,
        json: Arc<str>,
        stored_at: Instant,
    },
    /// A delivery receipt for a signal this user sent.
    Receipt(Arc<str>),
    /// A new chat message.
    Message(Arc<str>),
    /// Pushes may have been missed (the bus was down): re-read the store from the cursor.
    Resync,
}

#[derive(Debug, thiserror::Error)]
#[error("too many open connections for this user (limit {0}); close another tab or try later")]
pub struct TooManyConnections(pub usize);

#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    // A std Mutex: the critical sections are a few non-blocking `try_send`s, never held across
    // an `.await`, so an async mutex would only add overhead.
    users: Mutex<HashMap<UserId, Vec<Subscriber>>>,
    next_id: AtomicU64,
    queue_capacity: usize,
    max_per_user: usize,
    metrics: Arc<Metrics>,
}

struct Subscriber {
    id: u64,
    tx: flume::Sender<Push>,
    kicked: CancellationToken,
}

impl Hub {
    pub fn new(queue_capacity: usize, max_per_user: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            shared: Arc::new(Shared {
                users: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                queue_capacity: queue_capacity.max(1),
                max_per_user,
                metrics,
            }),
        }
    }

    /// Registers a connection of `user`. Register *before* reading the backlog from the store,
    /// so that a signal stored in between is pushed rather than missed.
    pub fn subscribe(
        &self,
        user: UserId,
        transport: Transport,
    ) -> Result<Subscription, TooManyConnections> {
        // flume's bounded queue allocates as it fills (tokio's allocates a block of 32 slots
        // up front): an idle connection's queue costs nothing but its handle.
        let (tx, rx) = flume::bounded(self.shared.queue_capacity);
        let kicked = CancellationToken::new();
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut users = self.shared.users.lock().unwrap_or_else(|e| e.into_inner());
            let subscribers = users.entry(user).or_default();
            if subscribers.len() >= self.shared.max_per_user {
                return Err(TooManyConnections(self.shared.max_per_user));
            }
            subscribers.push(Subscriber {
                id,
                tx,
                kicked: kicked.clone(),
            });
        }
        self.shared
            .metrics
            .connected_clients
            .get_or_create(&TransportLabel { transport })
            .inc();
        Ok(Subscription {
            hub: self.clone(),
            user,
            id,
            transport,
            rx,
            kicked,
        })
    }

    /// Queues `push` on every connection of `user` on this node. Never waits.
    pub fn dispatch(&self, user: UserId, push: Push) {
        let mut users = self.shared.users.lock().unwrap_or_else(|e| e.into_inner());
        let Some(subscribers) = users.get_mut(&user) else {
            return;
        };
        subscribers.retain(|subscriber| match subscriber.tx.try_send(push.clone()) {
            Ok(()) => true,
            Err(flume::TrySendError::Full(_)) => {
                self.shared.metrics.connections_overflowed.inc();
                tracing::warn!(user_id = %user, "push queue full: closing the connection; the client resumes from its cursor");
                subscriber.kicked.cancel();
                false
            }
            Err(flume::TrySendError::Disconnected(_)) => false,
        });
        if subscribers.is_empty() {
            users.remove(&user);
        }
    }

    /// Tells every connection on this node to re-read the store from its cursor.
    pub fn resync_all(&self) {
        let users: Vec<UserId> = {
            let users = self.shared.users.lock().unwrap_or_else(|e| e.into_inner());
            users.keys().copied().collect()
        };
        for user in users {
            self.dispatch(user, Push::Resync);
        }
    }

    /// The users with a live connection on this node.
    pub fn online_users(&self) -> Vec<UserId> {
        let users = self.shared.users.lock().unwrap_or_else(|e| e.into_inner());
        users.keys().copied().collect()
    }

    /// Whether `user` has a live connection on this node.
    pub fn is_online(&self, user: UserId) -> bool {
        let users = self.shared.users.lock().unwrap_or_else(|e| e.into_inner());
        users.get(&user).is_some_and(|s| !s.is_empty())
    }

    fn unsubscribe(&self, user: UserId, id: u64) {
        let mut users = self.shared.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(subscribers) = users.get_mut(&user) {
            subscribers.retain(|s| s.id != id);
            if subscribers.is_empty() {
                users.remove(&user);
            }
        }
    }
}

/// One live connection's end of the hub. Dropping it unregisters the connection.
pub struct Subscription {
    hub: Hub,
    user: UserId,
    id: u64,
    transport: Transport,
    rx: flume::Receiver<Push>,
    kicked: CancellationToken,
}

impl Subscription {
    /// The next push, or `None` once the hub closed this connection for overflowing.
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Option<Push> {
        tokio::select! {
            biased;
            _ = self.kicked.cancelled() => None,
            push = self.rx.recv_async() => push.ok(),
        }
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.user, self.id);
        self.hub
            .shared
            .metrics
            .connected_clients
            .get_or_create(&TransportLabel {
                transport: self.transport,
            })
            .dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Push {
        Push::Message(Arc::from("{}"))
    }

    #[tokio::test]
    async fn a_full_queue_closes_the_connection_instead_of_growing() {
        let hub = Hub::new(2, 4, Arc::default());
        let mut sub = hub.subscribe(UserId(1), Transport::Websocket).unwrap();
        for _ in 0..3 {
            hub.dispatch(UserId(1), message());
        }
        assert!(
            !hub.is_online(UserId(1)),
            "the overflowing connection was dropped"
        );
        assert!(sub.recv().await.is_none(), "and told so");
    }

    #[tokio::test]
    async fn pushes_reach_every_connection_of_the_user_only() {
        let hub = Hub::new(8, 4, Arc::default());
        let mut a = hub.subscribe(UserId(1), Transport::Websocket).unwrap();
        let mut b = hub.subscribe(UserId(1), Transport::Sse).unwrap();
        let other = hub.subscribe(UserId(2), Transport::Sse).unwrap();
        hub.dispatch(UserId(1), message());
        assert!(a.recv().await.is_some());
        assert!(b.recv().await.is_some());
        assert!(other.rx.try_recv().is_err());
        drop(a);
        drop(b);
        assert!(!hub.is_online(UserId(1)));
    }

    #[test]
    fn connections_per_user_are_limited() {
        let hub = Hub::new(8, 2, Arc::default());
        let _a = hub.subscribe(UserId(1), Transport::Websocket).unwrap();
        let _b = hub.subscribe(UserId(1), Transport::Websocket).unwrap();
        assert!(hub.subscribe(UserId(1), Transport::Websocket).is_err());
        assert!(hub.subscribe(UserId(2), Transport::Websocket).is_ok());
    }
}
