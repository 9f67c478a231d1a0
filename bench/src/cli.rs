//! The command line, and the plan it resolves to: every size and duration, from the flags, else
//! from `--quick`'s smoke-run sizes, else from the full-size defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard-bench",
    about = "Benchmarks Switchboard against a PeerJS server over loopback, as clients do",
    after_help = "Both servers must already run on 127.0.0.1 (bench/compare.sh starts them). \
                  Exit status: 0 all delivery checks clean; 1 a signal was lost, duplicated or \
                  reordered (or a client failed); 2 a scenario could not run; 3 a target failed \
                  (with --require-targets)."
)]
pub struct Cli {
    /// Switchboard's base URL, e.g. http://127.0.0.1:8080
    #[arg(long)]
    pub switchboard: Option<String>,
    /// Another node of the same Switchboard deployment (repeatable): clients are spread over
    /// all nodes, the two users of a pair on different ones. CPU and memory are the first
    /// node's only.
    #[arg(long = "switchboard-node")]
    pub switchboard_nodes: Vec<String>,
    /// Switchboard's PID, for its CPU and memory (from /proc)
    #[arg(long)]
    pub switchboard_pid: Option<u32>,
    /// The PeerJS server's URL including its path, e.g. http://127.0.0.1:9000/
    #[arg(long)]
    pub peerjs: Option<String>,
    /// The PeerJS server's PID
    #[arg(long)]
    pub peerjs_pid: Option<u32>,
    /// The PeerJS server's connection key
    #[arg(long, default_value = "peerjs")]
    pub peerjs_key: String,
    /// Scenarios to run: a burst, b rates, c idle, d polling, e transports
    #[arg(long, value_delimiter = ',', default_value = "a,b,c,d,e")]
    pub scenarios: Vec<Scenario>,
    /// (a) simultaneous calls per burst [default 10,100,1000]
    #[arg(long, value_delimiter = ',')]
    pub pairs: Option<Vec<usize>>,
    /// (a, e) measured rounds, after one warm-up round [default 5]
    #[arg(long)]
    pub rounds: Option<usize>,
    /// (b) open-loop rates, signals/s [default 10000,40000]
    #[arg(long, value_delimiter = ',')]
    pub rates: Option<Vec<u32>>,
    /// (b) how long each open-loop rate runs [default 10s]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub rate_duration: Option<Duration>,
    /// (b) pairs the load is spread over, both directions [default 100]
    #[arg(long)]
    pub rate_pairs: Option<usize>,
    /// (b) how long the closed loop runs [default 20s]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub closed_duration: Option<Duration>,
    /// (b) undelivered signals the closed loop keeps in flight per direction [default 8]
    #[arg(long)]
    pub in_flight: Option<u32>,
    /// (c) idle connection counts [default 10000,20000]
    #[arg(long, value_delimiter = ',')]
    pub idle: Option<Vec<usize>>,
    /// (c) the idle window CPU and store queries are measured over [default 20s]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub idle_window: Option<Duration>,
    /// (c) wait after connecting before reading memory [default 5s]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub idle_settle: Option<Duration>,
    /// (d) polling clients [default 5000]
    #[arg(long)]
    pub pollers: Option<usize>,
    /// (d) how long they poll [default 30s]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub poll_duration: Option<Duration>,
    /// (e) simultaneous calls per burst on each transport [default 100]
    #[arg(long)]
    pub transport_pairs: Option<usize>,
    /// How long a scenario waits for its last signals after its last send [default 10s]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub drain_timeout: Option<Duration>,
    /// Write every number as JSON to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A smoke run that finishes well within a minute (every size small; flags still win)
    #[arg(long)]
    pub quick: bool,
    /// Exit with status 3 when a target fails
    #[arg(long)]
    pub require_targets: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
pub enum Scenario {
    /// Call-setup bursts
    A,
    /// Fixed rates and closed loop
    B,
    /// Idle connections
    C,
    /// Polling fallback
    D,
    /// Transports side by side
    E,
}

/// Everything a run does, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub quick: bool,
    pub scenarios: Vec<Scenario>,
    pub pairs: Vec<usize>,
    pub rounds: usize,
    pub rates: Vec<u32>,
    #[serde(with = "seconds")]
    pub rate_duration: Duration,
    pub rate_pairs: usize,
    #[serde(with = "seconds")]
    pub closed_duration: Duration,
    pub in_flight: u32,
    pub idle: Vec<usize>,
    #[serde(with = "seconds")]
    pub idle_window: Duration,
    #[serde(with = "seconds")]
    pub idle_settle: Duration,
    pub pollers: usize,
    #[serde(with = "seconds")]
    pub poll_duration: Duration,
    #[serde(with = "seconds")]
    pub poll_interval: Duration,
    pub transport_pairs: usize,
    #[serde(with = "seconds")]
    pub drain_timeout: Duration,
    #[serde(with = "seconds")]
    pub round_timeout: Duration,
}

impl Cli {
    pub fn plan(&self) -> Plan {
        let quick = self.quick;
        let secs = Duration::from_secs;
        let mut scenarios = self.scenarios.clone();
        scenarios.sort();
        scenarios.dedup();
        Plan {
            quick,
            scenarios,
            pairs: self
                .pairs
                .clone()
                .unwrap_or_else(|| pick(quick, vec![10, 100, 1000], vec![10])),
            rounds: self.rounds.unwrap_or(pick(quick, 5, 2)),
            rates: self
                .rates
                .clone()
                .unwrap_or_else(|| pick(quick, vec![10_000, 40_000], vec![500])),
            rate_duration: self.rate_duration.unwrap_or(pick(quick, secs(10), secs(2))),
            rate_pairs: self.rate_pairs.unwrap_or(pick(quick, 100, 10)),
            closed_duration: self
                .closed_duration
                .unwrap_or(pick(quick, secs(20), secs(2))),
            in_flight: self.in_flight.unwrap_or(8),
            idle: self
                .idle
                .clone()
                .unwrap_or_else(|| pick(quick, vec![10_000, 20_000], vec![200])),
            idle_window: self.idle_window.unwrap_or(pick(quick, secs(20), secs(2))),
            idle_settle: self.idle_settle.unwrap_or(pick(quick, secs(5), secs(1))),
            pollers: self.pollers.unwrap_or(pick(quick, 5_000, 50)),
            poll_duration: self.poll_duration.unwrap_or(pick(quick, secs(30), secs(3))),
            poll_interval: crate::servers::switchboard::POLL_INTERVAL,
            transport_pairs: self.transport_pairs.unwrap_or(pick(quick, 100, 10)),
            drain_timeout: self.drain_timeout.unwrap_or(pick(quick, secs(10), secs(5))),
            round_timeout: pick(quick, secs(30), secs(15)),
        }
    }
}

impl Plan {
    pub fn runs(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }

    /// Switchboard users the planned scenarios need (pairs, and at most
    /// [`MAX_CONNECTIONS_PER_USER`](crate::servers::switchboard::MAX_CONNECTIONS_PER_USER)
    /// idle or polling clients per user).
    pub fn switchboard_users(&self) -> usize {
        let per_user = crate::servers::switchboard::MAX_CONNECTIONS_PER_USER;
        let max = |v: &[usize]| v.iter().copied().max().unwrap_or(0);
        let mut users = 0;
        if self.runs(Scenario::A) {
            users = users.max(2 * max(&self.pairs));
        }
        if self.runs(Scenario::B) {
            users = users.max(2 * self.rate_pairs);
        }
        if self.runs(Scenario::C) {
            users = users.max(max(&self.idle).div_ceil(per_user));
        }
        if self.runs(Scenario::D) {
            users = users.max(self.pollers.div_ceil(per_user));
        }
        if self.runs(Scenario::E) {
            users = users.max(2 * self.transport_pairs);
        }
        users
    }
}

/// The full-size value, or the smoke run's.
fn pick<T>(quick: bool, full: T, smoke: T) -> T {
    if quick {
        smoke
    } else {
        full
    }
}

mod seconds {
    pub fn serialize<S: serde::Serializer>(
        duration: &std::time::Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_shrinks_the_defaults_but_explicit_flags_win() {
        let cli = Cli::parse_from(["switchboard-bench", "--quick", "--pairs", "3,4"]);
        let plan = cli.plan();
        assert_eq!(plan.pairs, vec![3, 4]);
        assert_eq!(plan.idle, vec![200]);
        assert_eq!(plan.rounds, 2);
        let full = Cli::parse_from(["switchboard-bench"]).plan();
        assert_eq!(full.pairs, vec![10, 100, 1000]);
        assert_eq!(full.rates, vec![10_000, 40_000]);
        assert_eq!(full.scenarios.len(), 5);
    }

    #[test]
    fn the_user_pool_covers_the_largest_scenario() {
        let plan = Cli::parse_from(["switchboard-bench"]).plan();
        // 1000 pairs; 20,000 idle at 10 per user; 5,000 pollers.
        assert_eq!(plan.switchboard_users(), 2_000);
        let idle_only = Cli::parse_from(["switchboard-bench", "--scenarios", "c", "--idle", "25"]);
        assert_eq!(idle_only.plan().switchboard_users(), 3);
    }
}
