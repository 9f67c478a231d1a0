//! The targets, judged from a run's results: Switchboard against PeerJS where the
//! target is a comparison, against a fixed bound otherwise. A target that this run could not
//! measure (no PeerJS, no PID, scenario not run) is SKIP, never PASS.

use serde::Serialize;

use super::tables::{number, ratio};
use super::{find_burst, find_idle, find_rate, Report};
use crate::client::ClientEventCounts;
use crate::measure::delivery::DeliveryCheck;
use crate::scenarios::rates::Load;
use crate::servers::ServerName;

const IDLE_KIB_PER_CONNECTION: f64 = 8.0;
/// Target (d): p99 of a poll.
const POLL_P99_MS: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    #[serde(rename = "PASS")]
    Pass,
    #[serde(rename = "FAIL")]
    Fail,
    /// Not measurable in this run (no PeerJS, no PID, scenario not run).
    #[serde(rename = "SKIP")]
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub claim: String,
    pub verdict: Verdict,
    pub detail: String,
}

/// A comparison "Switchboard ≤ factor × PeerJS" (or ≥ when `at_least`).
fn compare(
    claim: String,
    switchboard: Option<f64>,
    peerjs: Option<f64>,
    factor: f64,
    at_least: bool,
    unit: &str,
) -> Target {
    let (Some(sb), Some(pj)) = (switchboard, peerjs) else {
        return Target {
            claim,
            verdict: Verdict::Skip,
            detail: "not measured for both servers in this run".to_owned(),
        };
    };
    let pass = if at_least {
        sb >= factor * pj
    } else {
        sb <= factor * pj
    };
    Target {
        claim,
        verdict: if pass { Verdict::Pass } else { Verdict::Fail },
        detail: format!(
            "Switchboard {} {unit}, PeerJS {} {unit} (ratio {})",
            number(sb),
            number(pj),
            ratio(sb, pj)
        ),
    }
}

fn absolute(claim: String, value: Option<f64>, pass: impl Fn(f64) -> bool, unit: &str) -> Target {
    match value {
        Some(value) => Target {
            claim,
            verdict: if pass(value) {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            detail: format!("{} {unit}", number(value)),
        },
        None => Target {
            claim,
            verdict: Verdict::Skip,
            detail: "not measured in this run (is the PID given?)".to_owned(),
        },
    }
}

fn delivery_target(claim: String, check: &DeliveryCheck, events: &ClientEventCounts) -> Target {
    let clean = check.clean() && events.failures() == 0;
    Target {
        claim,
        verdict: if clean { Verdict::Pass } else { Verdict::Fail },
        detail: format!(
            "lost {}, duplicated {}, reordered {}; client errors {}",
            check.lost,
            check.duplicated,
            check.reordered,
            events.failures()
        ),
    }
}

/// Every target this run speaks to, in scenario order.
pub(super) fn judge(report: &Report) -> Vec<Target> {
    use ServerName::{PeerJs, Switchboard as Sb};
    let mut targets = Vec::new();
    for &p in &report.plan.pairs {
        let (sb, pj) = (
            find_burst(&report.burst, Sb, p),
            find_burst(&report.burst, PeerJs, p),
        );
        if sb.is_none() && pj.is_none() {
            continue;
        }
        targets.push(compare(
            format!("(a) P={p}: Switchboard p99 one-way latency <= 0.5x PeerJS's"),
            sb.map(|r| r.latency.p99_ms),
            pj.map(|r| r.latency.p99_ms),
            0.5,
            false,
            "ms",
        ));
        targets.push(compare(
            format!("(a) P={p}: Switchboard whole-call p99 <= 0.5x PeerJS's"),
            sb.map(|r| r.call_setup.p99_ms),
            pj.map(|r| r.call_setup.p99_ms),
            0.5,
            false,
            "ms",
        ));
        if let Some(sb) = sb {
            targets.push(delivery_target(
                format!("(a) P={p}: Switchboard 0 lost/duplicated/reordered"),
                &sb.check,
                &sb.events,
            ));
        }
    }
    for &rate in &report.plan.rates {
        let load = Load::Open { rate };
        let (sb, pj) = (
            find_rate(&report.rates, Sb, load),
            find_rate(&report.rates, PeerJs, load),
        );
        if sb.is_none() && pj.is_none() {
            continue;
        }
        targets.push(compare(
            format!("(b) {rate}/s: Switchboard p99 <= PeerJS's"),
            sb.map(|r| r.latency.p99_ms),
            pj.map(|r| r.latency.p99_ms),
            1.0,
            false,
            "ms",
        ));
        targets.push(compare(
            format!("(b) {rate}/s: Switchboard server CPU per signal <= 0.5x PeerJS's"),
            sb.and_then(|r| r.server_cpu_us_per_signal),
            pj.and_then(|r| r.server_cpu_us_per_signal),
            0.5,
            false,
            "us",
        ));
    }
    let closed = Load::Closed {
        in_flight: report.plan.in_flight,
    };
    let (sb, pj) = (
        find_rate(&report.rates, Sb, closed),
        find_rate(&report.rates, PeerJs, closed),
    );
    if sb.is_some() || pj.is_some() {
        targets.push(compare(
            "(b) closed loop: Switchboard peak delivered signals/s >= 1.5x PeerJS's".to_owned(),
            sb.map(|r| r.delivered_per_second),
            pj.map(|r| r.delivered_per_second),
            1.5,
            true,
            "signals/s",
        ));
        targets.push(compare(
            "(b) closed loop: Switchboard server CPU per signal <= 0.5x PeerJS's".to_owned(),
            sb.and_then(|r| r.server_cpu_us_per_signal),
            pj.and_then(|r| r.server_cpu_us_per_signal),
            0.5,
            false,
            "us",
        ));
    }
    for result in &report.rates {
        let (Some(server), Some(generator)) = (
            result.server_cpu_us_per_signal,
            result.generator_cpu_us_per_signal,
        ) else {
            continue;
        };
        targets.push(Target {
            claim: format!(
                "(b) {} vs {}: generator CPU per signal < the server's",
                load_name(result.load),
                result.server
            ),
            verdict: if generator < server {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            detail: format!(
                "generator {} us, server {} us",
                number(generator),
                number(server)
            ),
        });
    }
    for &n in &report.plan.idle {
        let Some(sb) = find_idle(&report.idle, Sb, n) else {
            continue;
        };
        targets.push(absolute(
            format!("(c) {n} idle connections: Switchboard <= 8 KiB per connection"),
            sb.rss_per_connection_kib,
            |kib| kib <= IDLE_KIB_PER_CONNECTION,
            "KiB",
        ));
        targets.push(absolute(
            format!("(c) {n} idle connections: 0 store queries while idle"),
            sb.store_queries.map(|q| q as f64),
            |q| q == 0.0,
            "queries",
        ));
    }
    for result in &report.polling {
        targets.push(absolute(
            format!("(d) {} pollers: p99 response <= 2 ms", result.pollers),
            (result.response.count > 0).then_some(result.response.p99_ms),
            |p99| p99 <= POLL_P99_MS,
            "ms",
        ));
    }
    targets
}

fn load_name(load: Load) -> String {
    match load {
        Load::Open { rate } => format!("open loop {rate}/s"),
        Load::Closed { in_flight } => format!("closed loop ({in_flight} in flight)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_pass_fail_and_skip() {
        let pass = compare("c".into(), Some(1.0), Some(4.0), 0.5, false, "ms");
        assert_eq!(pass.verdict, Verdict::Pass);
        let fail = compare("c".into(), Some(3.0), Some(4.0), 0.5, false, "ms");
        assert_eq!(fail.verdict, Verdict::Fail);
        let at_least = compare("c".into(), Some(7.0), Some(4.0), 1.5, true, "/s");
        assert_eq!(at_least.verdict, Verdict::Pass);
        let skip = compare("c".into(), Some(3.0), None, 0.5, false, "ms");
        assert_eq!(skip.verdict, Verdict::Skip);
    }
}
