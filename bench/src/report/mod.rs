//! The report: per scenario a table with both servers side by side and their ratio, the issue's
//! targets as PASS/FAIL lines, the generator's share of the CPU, and all of it as JSON.
//!
//! - [`targets`]: the targets, judged from the results;
//! - [`tables`]: the text tables.

mod tables;
mod targets;

use std::fmt;

use serde::Serialize;

use crate::cli::Plan;
use crate::measure::process::CpuUsage;
use crate::scenarios::burst::BurstResult;
use crate::scenarios::idle::IdleResult;
use crate::scenarios::polling::PollResult;
use crate::scenarios::rates::{Load, RateResult};
use crate::servers::ServerName;
pub use targets::{Target, Verdict};

#[derive(Debug, Serialize)]
pub struct Report {
    pub plan: Plan,
    /// What the reader should know to interpret the figures.
    pub notes: Vec<String>,
    pub burst: Vec<BurstResult>,
    pub rates: Vec<RateResult>,
    pub idle: Vec<IdleResult>,
    pub polling: Vec<PollResult>,
    pub transports: Vec<BurstResult>,
    /// Scenario runs that could not complete.
    pub failures: Vec<ScenarioFailure>,
    pub targets: Vec<Target>,
    pub generator: Vec<GeneratorShare>,
    pub delivery_clean: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioFailure {
    pub scenario: String,
    pub server: ServerName,
    pub error: String,
}

/// The bench's CPU against one server's, over every measured window.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorShare {
    pub server: ServerName,
    pub generator_cpu_seconds: f64,
    pub server_cpu_seconds: f64,
    /// generator / (generator + server)
    pub generator_share: f64,
}

impl Report {
    pub fn new(plan: Plan) -> Self {
        Self {
            plan,
            notes: Vec::new(),
            burst: Vec::new(),
            rates: Vec::new(),
            idle: Vec::new(),
            polling: Vec::new(),
            transports: Vec::new(),
            failures: Vec::new(),
            targets: Vec::new(),
            generator: Vec::new(),
            delivery_clean: true,
        }
    }

    /// Computes the targets, the generator's share and the overall delivery verdict.
    pub fn conclude(&mut self) {
        self.targets = targets::judge(self);
        self.generator = generator_shares(self);
        let checks = self
            .burst
            .iter()
            .chain(&self.transports)
            .map(|r| (&r.check, &r.events))
            .chain(self.rates.iter().map(|r| (&r.check, &r.events)));
        let idle_clean = self
            .idle
            .iter()
            .all(|r| r.events.failures() == 0 && r.unexpected_signals == 0);
        let polls_clean = self.polling.iter().all(|r| r.errors == 0);
        self.delivery_clean = idle_clean
            && polls_clean
            && checks
                .collect::<Vec<_>>()
                .iter()
                .all(|(check, events)| check.clean() && events.failures() == 0);
    }

    pub fn targets_failed(&self) -> bool {
        self.targets.iter().any(|t| t.verdict == Verdict::Fail)
    }
}

pub(super) fn find_burst(
    results: &[BurstResult],
    server: ServerName,
    pairs: usize,
) -> Option<&BurstResult> {
    results
        .iter()
        .find(|r| r.server == server && r.pairs == pairs)
}

pub(super) fn find_rate(
    results: &[RateResult],
    server: ServerName,
    load: Load,
) -> Option<&RateResult> {
    results
        .iter()
        .find(|r| r.server == server && r.load == load)
}

pub(super) fn find_idle(
    results: &[IdleResult],
    server: ServerName,
    n: usize,
) -> Option<&IdleResult> {
    results
        .iter()
        .find(|r| r.server == server && r.connections == n)
}

fn generator_shares(report: &Report) -> Vec<GeneratorShare> {
    [ServerName::Switchboard, ServerName::PeerJs]
        .into_iter()
        .filter_map(|server| {
            let windows: Vec<&CpuUsage> = report
                .burst
                .iter()
                .chain(&report.transports)
                .filter(|r| r.server == server)
                .map(|r| &r.cpu)
                .chain(
                    report
                        .rates
                        .iter()
                        .filter(|r| r.server == server)
                        .map(|r| &r.cpu),
                )
                .chain(
                    report
                        .idle
                        .iter()
                        .filter(|r| r.server == server)
                        .map(|r| &r.cpu),
                )
                .chain(
                    report
                        .polling
                        .iter()
                        .filter(|r| r.server == server)
                        .map(|r| &r.cpu),
                )
                .collect();
            let server_seconds: f64 = windows.iter().filter_map(|c| c.server_seconds).sum();
            let generator_seconds: f64 = windows.iter().map(|c| c.generator_seconds).sum();
            (server_seconds > 0.0).then(|| GeneratorShare {
                server,
                generator_cpu_seconds: generator_seconds,
                server_cpu_seconds: server_seconds,
                generator_share: generator_seconds / (generator_seconds + server_seconds),
            })
        })
        .collect()
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&tables::render(self))?;
        for failure in &self.failures {
            writeln!(
                f,
                "ERROR  {} on {}: {}",
                failure.scenario, failure.server, failure.error
            )?;
        }
        if !self.generator.is_empty() {
            writeln!(f, "Generator CPU share (over every measured window):")?;
            for share in &self.generator {
                writeln!(
                    f,
                    "  vs {}: generator {:.1} s, server {:.1} s -> generator share {:.0}%",
                    share.server,
                    share.generator_cpu_seconds,
                    share.server_cpu_seconds,
                    100.0 * share.generator_share
                )?;
            }
            writeln!(f)?;
        }
        writeln!(f, "Targets:")?;
        for target in &self.targets {
            let verdict = match target.verdict {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
                Verdict::Skip => "SKIP",
            };
            writeln!(f, "  {verdict}  {} — {}", target.claim, target.detail)?;
        }
        writeln!(f)?;
        for note in &self.notes {
            writeln!(f, "Note: {note}")?;
        }
        writeln!(
            f,
            "Delivery checks: {}",
            if self.delivery_clean {
                "clean (0 lost, 0 duplicated, 0 reordered, no client errors)"
            } else {
                "FAILED (see lost/dup/reordered and client errors above)"
            }
        )
    }
}
