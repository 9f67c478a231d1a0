//! A connected client as a scenario sees it, whatever server and transport carry it: an
//! [`Outbox`] to send through, an [`Inbox`] its arrivals go to, and [`ClientEvents`] where
//! it counts what went wrong on its side of the wire.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::signal::{Arrival, Outgoing};

/// How long a client gets to say goodbye (final ack, close handshake) before it is aborted.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Where a client hands the signals it receives. Called on the client's own task, in arrival
/// order, so it must not block: answering means pushing to an [`Outbox`].
pub trait Inbox: Send + 'static {
    fn arrived(&mut self, arrival: Arrival);
}

/// An inbox for clients that expect nothing (idle connections); what still comes is counted.
#[derive(Default)]
pub struct CountingInbox {
    pub count: Arc<AtomicU64>,
}

impl Inbox for CountingInbox {
    fn arrived(&mut self, _: Arrival) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// The signals a client is to send, in order. Pushing never waits (open-loop senders must not
/// be slowed by the system they measure); the client's task writes them out as fast as it can.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
}

/// The receiving end of an [`Outbox`], owned by the client's task.
pub struct OutboxQueue(pub(crate) mpsc::UnboundedReceiver<Outgoing>);

impl Outbox {
    pub fn channel() -> (Outbox, OutboxQueue) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Outbox { tx }, OutboxQueue(rx))
    }

    pub fn send(&self, signal: Outgoing) {
        // A closed queue means the client has ended; what it failed to send shows as lost.
        let _ = self.tx.send(signal);
    }
}

/// A running client: its tasks and the token that stops them.
pub struct Client {
    outbox: Outbox,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Client {
    pub fn new(outbox: Outbox, stop: CancellationToken, tasks: Vec<JoinHandle<()>>) -> Self {
        Self {
            outbox,
            stop,
            tasks,
        }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Stops the client: it acknowledges what it processed, closes its connection and ends.
    pub async fn close(mut self) {
        self.stop.cancel();
        for mut task in std::mem::take(&mut self.tasks) {
            if tokio::time::timeout(CLOSE_GRACE, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl Drop for Client {
    /// A client dropped without [`Client::close`] (a scenario that failed half-way) still stops.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Closes many clients at once: every stop is signalled before any is waited for.
pub async fn close_all(clients: Vec<Client>) {
    for client in &clients {
        client.stop.cancel();
    }
    futures_util::future::join_all(clients.into_iter().map(Client::close)).await;
}

/// What clients ran into during one scenario run, shared by all of its clients.
#[derive(Default)]
pub struct ClientEvents {
    send_errors: AtomicU64,
    rate_limited: AtomicU64,
    reconnects: AtomicU64,
    disconnects: AtomicU64,
    redelivered: AtomicU64,
    request_errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientEvents {
    /// The server refused a signal (not stored: it will show as lost).
    pub fn send_error(&self, what: impl FnOnce() -> String) {
        self.send_errors.fetch_add(1, Ordering::Relaxed);
        self.remember(what);
    }

    /// The server answered 429 and the send was retried after `Retry-After`.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// The connection dropped and was reopened (resuming from the cursor).
    pub fn reconnected(&self, why: impl FnOnce() -> String) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        self.remember(why);
    }

    /// The connection dropped for good before the scenario closed it.
    pub fn disconnected(&self, why: impl FnOnce() -> String) {
        self.disconnects.fetch_add(1, Ordering::Relaxed);
        self.remember(why);
    }

    /// A signal at or below the client's cursor came again (the protocol's at-least-once
    /// resend after a reconnect); dropped by the client as the protocol says.
    pub fn redelivered(&self) {
        self.redelivered.fetch_add(1, Ordering::Relaxed);
    }

    /// A request other than a send failed (an ack, a poll, an unreadable frame).
    pub fn request_error(&self, what: impl FnOnce() -> String) {
        self.request_errors.fetch_add(1, Ordering::Relaxed);
        self.remember(what);
    }

    fn remember(&self, what: impl FnOnce() -> String) {
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(what());
        }
    }

    pub fn counts(&self) -> ClientEventCounts {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ClientEventCounts {
            send_errors: get(&self.send_errors),
            rate_limited: get(&self.rate_limited),
            reconnects: get(&self.reconnects),
            disconnects: get(&self.disconnects),
            redelivered: get(&self.redelivered),
            request_errors: get(&self.request_errors),
            first_error: self
                .first_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// A snapshot of [`ClientEvents`], for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientEventCounts {
    pub send_errors: u64,
    pub rate_limited: u64,
    pub reconnects: u64,
    pub disconnects: u64,
    pub redelivered: u64,
    pub request_errors: u64,
    pub first_error: Option<String>,
}

impl ClientEventCounts {
    /// Failures that make a run's result untrustworthy (retries and resends are not).
    pub fn failures(&self) -> u64 {
        self.send_errors + self.disconnects + self.request_errors
    }
}
