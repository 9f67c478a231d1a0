//! Scenario (e), Switchboard's transports side by side: the call-setup burst of (a) with both
//! ends receiving over WebSocket, SSE, long-poll and 1.5 s polling in turn. WebSocket clients
//! send over their socket; the others send with `POST /api/p2p/send-signal/` (what a browser
//! on that transport does).

use std::time::Duration;

use super::burst::{self, BurstPlan, BurstResult};
use super::{quiesce, Context};
use crate::servers::{Server, Transport};

pub const ALL: [Transport; 4] = [
    Transport::WebSocket,
    Transport::Sse,
    Transport::LongPoll,
    Transport::Polling,
];

pub async fn run(
    server: &Server,
    pairs: usize,
    rounds: usize,
    round_timeout: Duration,
    context: &Context,
) -> Vec<(Transport, anyhow::Result<BurstResult>)> {
    let mut results = Vec::new();
    for transport in ALL {
        let plan = BurstPlan {
            pairs,
            rounds,
            transport,
            round_timeout,
        };
        quiesce(server, Duration::from_secs(15)).await;
        results.push((transport, burst::run(server, plan, context).await));
    }
    results
}
