//! One benchmark run: reach the servers, prepare Switchboard's users once, run the planned
//! scenarios against each server in turn, and gather the report.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cli::{Cli, Plan, Scenario};
use crate::clock::BenchClock;
use crate::measure::delivery::KeySpace;
use crate::progress::Progress;
use crate::report::{Report, ScenarioFailure};
use crate::scenarios::burst::{self, BurstPlan};
use crate::scenarios::idle::{self, IdlePlan};
use crate::scenarios::polling::{self, PollPlan};
use crate::scenarios::rates::{self, Load, RatePlan};
use crate::scenarios::{quiesce, transports, Context};
use crate::servers::peerjs::PeerJs;
use crate::servers::switchboard::{Switchboard, MAX_CONNECTIONS_PER_USER};
use crate::servers::{loopback_url, Kit, Server, ServerName, Transport};
use crate::signal::Payloads;

/// The longest a scenario waits for the server to finish the previous one's backlog.
const QUIESCE_LIMIT: Duration = Duration::from_secs(15);

pub async fn run(cli: &Cli, plan: Plan, progress: Progress) -> anyhow::Result<Report> {
    let clock = BenchClock::start();
    let kit = Kit {
        clock,
        payloads: Arc::new(Payloads::default()),
        run_tag: run_tag().into(),
    };
    let mut report = Report::new(plan.clone());
    let mut servers = Vec::new();
    if let Some(url) = &cli.switchboard {
        loopback_url(url)?;
        for node in &cli.switchboard_nodes {
            loopback_url(node)?;
        }
        let mut switchboard = Switchboard::open(
            url,
            &cli.switchboard_nodes,
            cli.switchboard_pid,
            kit.clone(),
        )
        .await?;
        let users = plan.switchboard_users();
        if users > 0 {
            let started = Instant::now();
            switchboard.prepare(users, &progress).await?;
            report.notes.push(format!(
                "Switchboard users: {} registered once in {:.0} s (Argon2, 4 at a time) and reused \
                 by every scenario, each pair in one direct chat; idle and polling clients share \
                 users, at most {MAX_CONNECTIONS_PER_USER} per user (the server's default \
                 max_connections_per_user is 16).",
                switchboard.users(),
                started.elapsed().as_secs_f64()
            ));
        }
        servers.push(Server::Switchboard(switchboard));
    }
    if let Some(url) = &cli.peerjs {
        let peerjs = PeerJs::open(url, &cli.peerjs_key, cli.peerjs_pid, kit.clone()).await?;
        servers.push(Server::PeerJs(peerjs));
    }
    anyhow::ensure!(
        !servers.is_empty(),
        "nothing to measure: give --switchboard URL and/or --peerjs URL"
    );
    report.notes.extend(standing_notes());

    let context = Context {
        keys: KeySpace::default(),
        clock,
        progress,
        drain: plan.drain_timeout,
    };
    let mut record = |scenario: String, server: ServerName, error: anyhow::Error| {
        context
            .progress
            .note(&format!("error: {scenario} on {server}: {error:#}"));
        report.failures.push(ScenarioFailure {
            scenario,
            server,
            error: format!("{error:#}"),
        });
    };
    let mut results = Results::default();

    // Idle first, smallest first, each measured against the server's memory before its first
    // idle connection (see `idle`).
    if plan.runs(Scenario::C) {
        let fresh: Vec<Option<u64>> = servers.iter().map(idle::resident_kib).collect();
        let mut sizes = plan.idle.clone();
        sizes.sort_unstable();
        for connections in sizes {
            // One server after the other, every connection closed in between.
            for (server, &fresh) in servers.iter().zip(&fresh) {
                let idle_plan = IdlePlan {
                    connections,
                    settle: plan.idle_settle,
                    window: plan.idle_window,
                };
                quiesce(server, QUIESCE_LIMIT).await;
                match idle::run(server, idle_plan, fresh, &context).await {
                    Ok(result) => results.idle.push(result),
                    Err(error) => record(format!("(c) {connections} idle"), server.name(), error),
                }
            }
        }
    }
    if plan.runs(Scenario::A) {
        for &pairs in &plan.pairs {
            for server in &servers {
                let burst_plan = BurstPlan {
                    pairs,
                    rounds: plan.rounds,
                    transport: Transport::WebSocket,
                    round_timeout: plan.round_timeout,
                };
                quiesce(server, QUIESCE_LIMIT).await;
                match burst::run(server, burst_plan, &context).await {
                    Ok(result) => results.burst.push(result),
                    Err(error) => record(format!("(a) P={pairs}"), server.name(), error),
                }
            }
        }
    }
    if plan.runs(Scenario::B) {
        let loads = plan
            .rates
            .iter()
            .map(|&rate| (Load::Open { rate }, plan.rate_duration))
            .chain(std::iter::once((
                Load::Closed {
                    in_flight: plan.in_flight,
                },
                plan.closed_duration,
            )));
        for (load, duration) in loads {
            for server in &servers {
                let rate_plan = RatePlan {
                    load,
                    pairs: plan.rate_pairs,
                    duration,
                };
                quiesce(server, QUIESCE_LIMIT).await;
                match rates::run(server, rate_plan, &context).await {
                    Ok(result) => results.rates.push(result),
                    Err(error) => record(format!("(b) {load:?}"), server.name(), error),
                }
            }
        }
    }
    let switchboard = servers.iter().find(|s| s.as_switchboard().is_some());
    if let (true, Some(server)) = (plan.runs(Scenario::D), switchboard) {
        let poll_plan = PollPlan {
            pollers: plan.pollers,
            duration: plan.poll_duration,
            interval: plan.poll_interval,
        };
        quiesce(server, QUIESCE_LIMIT).await;
        match polling::run(server, poll_plan, &context).await {
            Ok(result) => results.polling.push(result),
            Err(error) => record("(d) polling".to_owned(), server.name(), error),
        }
    }
    if let (true, Some(server)) = (plan.runs(Scenario::E), switchboard) {
        let runs = transports::run(
            server,
            plan.transport_pairs,
            plan.rounds,
            plan.round_timeout,
            &context,
        )
        .await;
        for (transport, result) in runs {
            match result {
                Ok(result) => results.transports.push(result),
                Err(error) => record(format!("(e) {transport}"), server.name(), error),
            }
        }
    }
    report.burst = results.burst;
    report.rates = results.rates;
    report.idle = results.idle;
    report.polling = results.polling;
    report.transports = results.transports;
    report.conclude();
    Ok(report)
}

#[derive(Default)]
struct Results {
    burst: Vec<burst::BurstResult>,
    rates: Vec<rates::RateResult>,
    idle: Vec<idle::IdleResult>,
    polling: Vec<polling::PollResult>,
    transports: Vec<burst::BurstResult>,
}

/// How to read the figures, whatever the run.
fn standing_notes() -> Vec<String> {
    vec![
        "Latency is one-way: the receiver's read time minus the send time written in the payload, \
         both on this process's monotonic clock; open-loop latency counts from the scheduled send \
         time (no coordinated omission)."
            .to_owned(),
        "Switchboard clients acknowledge the highest seq after each burst of frames (at least every \
         64): WebSocket with an ack frame, SSE with POST /api/p2p/ack/, long-poll and polling with \
         the next request's after=. Receipts the server pushes back are read and skipped."
            .to_owned(),
        "Switchboard is meant to run with RUST_LOG=warn (compare.sh does): its per-signal \
         [P2P_SEND] info line is product diagnostics, not relaying. PeerJS logs each connect and \
         disconnect to stdout (sent to a file by compare.sh)."
            .to_owned(),
        "CPU comes from /proc/<pid>/stat (10 ms ticks) over each measured window; the generator's \
         own from /proc/self. All three processes share the machine's cores."
            .to_owned(),
    ]
}

/// A short tag, new for every run, that keeps usernames, peer ids and signal ids unique on a
/// server that has seen earlier runs.
fn run_tag() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut value = (nanos / 1_000_000) as u64 ^ (u64::from(std::process::id()) << 40);
    let mut tag = String::from("b");
    while value > 0 && tag.len() < 10 {
        let digit = (value % 36) as u32;
        tag.push(char::from_digit(digit, 36).unwrap_or('0'));
        value /= 36;
    }
    tag
}
