//! The scenarios of the issue, each in its own module, each run against one server at a time:
//!
//! - [`burst`] (a): call-setup bursts of P simultaneous calls, 22 signals per call;
//! - [`rates`] (b): open loop at fixed rates, and closed loop with a fixed window in flight;
//! - [`idle`] (c): N idle connections: memory per connection, idle CPU, idle store queries;
//! - [`polling`] (d): thousands of clients polling every 1.5 s (Switchboard only);
//! - [`transports`] (e): the burst over each Switchboard transport.

pub mod burst;
pub mod idle;
pub mod polling;
pub mod rates;
pub mod transports;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};

use crate::client::{Client, ClientEvents, Inbox, Outbox};
use crate::clock::BenchClock;
use crate::measure::delivery::KeySpace;
use crate::progress::Progress;
use crate::servers::{ClientSpec, ConnectError, Pair, Party, Server, Transport};

/// Handshakes in flight at once: enough to connect thousands quickly, few enough to stay far
/// from the listen backlog.
pub const CONNECT_CONCURRENCY: usize = 64;

/// What every scenario run needs.
pub struct Context {
    pub keys: KeySpace,
    pub clock: BenchClock,
    pub progress: Progress,
    /// How long a scenario waits, after its last send, for the last signals to arrive.
    pub drain: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Caller,
    Callee,
}

/// Both ends of a pair, connected.
pub struct ConnectedPair {
    pub caller: Client,
    pub callee: Client,
}

/// Connects both ends of every pair over `transport`. `inbox(pair, role, outbox)` builds each
/// client's inbox (given the client's own outbox, to answer through).
pub async fn connect_pairs(
    server: &Server,
    pairs: &[Pair],
    transport: Transport,
    events: &Arc<ClientEvents>,
    progress: &Progress,
    mut inbox: impl FnMut(usize, Role, &Outbox) -> Box<dyn Inbox>,
) -> Result<Vec<ConnectedPair>, ConnectError> {
    let total = pairs.len() * 2;
    let mut specs = Vec::with_capacity(total);
    for (i, pair) in pairs.iter().enumerate() {
        for (role, party) in [(Role::Caller, &pair.caller), (Role::Callee, &pair.callee)] {
            let (outbox, queue) = Outbox::channel();
            specs.push(ClientSpec {
                party: party.clone(),
                transport,
                inbox: inbox(i, role, &outbox),
                outbox,
                queue,
                events: events.clone(),
                heartbeat_phase: specs.len() as f64 / total as f64,
            });
        }
    }
    let label = format!(
        "{}: connecting {} clients ({transport})",
        server.name(),
        total
    );
    let clients = connect_all(server, specs, progress, &label).await?;
    let mut clients = clients.into_iter();
    let mut connected = Vec::with_capacity(pairs.len());
    while let (Some(caller), Some(callee)) = (clients.next(), clients.next()) {
        connected.push(ConnectedPair { caller, callee });
    }
    Ok(connected)
}

/// Connects every spec, [`CONNECT_CONCURRENCY`] at a time; the clients come back in order.
pub async fn connect_all(
    server: &Server,
    specs: Vec<ClientSpec>,
    progress: &Progress,
    label: &str,
) -> Result<Vec<Client>, ConnectError> {
    let bar = progress.bar(label, specs.len() as u64);
    let clients = futures_util::stream::iter(specs)
        .map(|spec| {
            let bar = bar.clone();
            async move {
                let client = server.connect(spec).await;
                bar.inc(1);
                client
            }
        })
        .buffered(CONNECT_CONCURRENCY)
        .try_collect()
        .await;
    bar.finish_and_clear();
    clients
}

/// Idle parties for `count` connections.
pub fn idle_parties(server: &Server, count: usize) -> anyhow::Result<Vec<Party>> {
    (0..count).map(|i| server.idle_party(i, count)).collect()
}

/// Waits until the server is quiet (under 5% of a core over a quarter second), at most
/// `limit`: a scenario that overloaded it must not leave its backlog to the next one.
pub async fn quiesce(server: &Server, limit: Duration) {
    const STEP: Duration = Duration::from_millis(250);
    let Some(probe) = server.probe() else {
        tokio::time::sleep(STEP).await;
        return;
    };
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        let Ok(before) = probe.sample() else { return };
        tokio::time::sleep(STEP).await;
        let Ok(after) = probe.sample() else { return };
        if after.cpu_seconds - before.cpu_seconds < 0.05 * STEP.as_secs_f64() {
            return;
        }
    }
}

/// Polls `done` every millisecond until it holds or `timeout` passes; true if it held.
pub async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
