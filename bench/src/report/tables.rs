//! The text tables: one per scenario (per size), both servers side by side with their ratio
//! (Switchboard ÷ PeerJS), and the delivery check under each.

use std::fmt::{self, Write};

use super::{find_burst, find_idle, find_rate, Report};
use crate::client::ClientEventCounts;
use crate::measure::delivery::DeliveryCheck;
use crate::scenarios::burst::BurstResult;
use crate::scenarios::idle::IdleResult;
use crate::scenarios::rates::{Load, RateResult};
use crate::scenarios::transports;
use crate::servers::ServerName;

/// Every table of the report.
pub(super) fn render(report: &Report) -> String {
    let mut out = String::new();
    burst_tables(report, &mut out);
    rate_tables(report, &mut out);
    idle_tables(report, &mut out);
    polling_tables(report, &mut out);
    transport_tables(report, &mut out);
    out
}

/// A number with as many decimals as make sense for its size.
pub(super) fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1_000.0 {
        format!("{value:.0}")
    } else if magnitude >= 100.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

pub(super) fn ratio(switchboard: f64, peerjs: f64) -> String {
    if peerjs == 0.0 {
        "-".to_owned()
    } else {
        format!("{:.2}x", switchboard / peerjs)
    }
}

fn opt(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), number)
}

fn check_cell(check: &DeliveryCheck, events: &ClientEventCounts) -> String {
    format!(
        "{}/{}/{} err {}",
        check.lost,
        check.duplicated,
        check.reordered,
        events.failures()
    )
}

/// A plain text table: the first column left-aligned, the others right-aligned.
struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Self {
            title: title.into(),
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// A metric for both servers, with Switchboard ÷ PeerJS.
    fn compare(&mut self, label: &str, sb: Option<f64>, pj: Option<f64>) {
        let ratio = match (sb, pj) {
            (Some(sb), Some(pj)) => ratio(sb, pj),
            _ => "-".to_owned(),
        };
        self.row(vec![label.to_owned(), opt(sb), opt(pj), ratio]);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self.header.len();
        let mut widths = vec![0; columns];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        writeln!(f, "{}", self.title)?;
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                let pad = widths[i] - cell.chars().count();
                if i == 0 {
                    let _ = write!(line, "  {cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(line, "  {}{cell}", " ".repeat(pad));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

const SERVERS: [&str; 4] = ["", "Switchboard", "PeerJS", "SB/PeerJS"];

fn burst_tables(report: &Report, out: &mut String) {
    use ServerName::{PeerJs, Switchboard as Sb};
    for &p in &report.plan.pairs {
        let (sb, pj) = (
            find_burst(&report.burst, Sb, p),
            find_burst(&report.burst, PeerJs, p),
        );
        let Some(any) = sb.or(pj) else { continue };
        let mut table = Table::new(
            format!(
                "(a) Call-setup burst: P={p} calls at once, {} measured rounds after 1 warm-up, 22 signals per call, over {}",
                any.rounds, any.transport
            ),
            &SERVERS,
        );
        let get = |r: Option<&BurstResult>, f: fn(&BurstResult) -> f64| r.map(f);
        table.compare(
            "one-way p50 (ms)",
            get(sb, |r| r.latency.p50_ms),
            get(pj, |r| r.latency.p50_ms),
        );
        table.compare(
            "one-way p95 (ms)",
            get(sb, |r| r.latency.p95_ms),
            get(pj, |r| r.latency.p95_ms),
        );
        table.compare(
            "one-way p99 (ms)",
            get(sb, |r| r.latency.p99_ms),
            get(pj, |r| r.latency.p99_ms),
        );
        table.compare(
            "one-way max (ms)",
            get(sb, |r| r.latency.max_ms),
            get(pj, |r| r.latency.max_ms),
        );
        table.compare(
            "whole call p50 (ms)",
            get(sb, |r| r.call_setup.p50_ms),
            get(pj, |r| r.call_setup.p50_ms),
        );
        table.compare(
            "whole call p99 (ms)",
            get(sb, |r| r.call_setup.p99_ms),
            get(pj, |r| r.call_setup.p99_ms),
        );
        table.compare(
            "signals/s",
            get(sb, |r| r.signals_per_second),
            get(pj, |r| r.signals_per_second),
        );
        cost_and_delivery_rows(&mut table, sb, pj);
        let _ = writeln!(out, "{table}");
    }
}

/// What the load scenarios (burst, rates) have in common: CPU per signal and a delivery check.
trait LoadRun {
    fn server_cpu_us_per_signal(&self) -> Option<f64>;
    fn generator_cpu_us_per_signal(&self) -> Option<f64>;
    fn delivery(&self) -> (&DeliveryCheck, &ClientEventCounts);
}

macro_rules! load_run {
    ($($result:ty),*) => {$(
        impl LoadRun for $result {
            fn server_cpu_us_per_signal(&self) -> Option<f64> {
                self.server_cpu_us_per_signal
            }
            fn generator_cpu_us_per_signal(&self) -> Option<f64> {
                self.generator_cpu_us_per_signal
            }
            fn delivery(&self) -> (&DeliveryCheck, &ClientEventCounts) {
                (&self.check, &self.events)
            }
        }
    )*};
}
load_run!(BurstResult, RateResult);

/// The rows under every load table: CPU per signal on both sides, then the delivery check.
fn cost_and_delivery_rows<R: LoadRun>(table: &mut Table, sb: Option<&R>, pj: Option<&R>) {
    table.compare(
        "server CPU (us/signal)",
        sb.and_then(R::server_cpu_us_per_signal),
        pj.and_then(R::server_cpu_us_per_signal),
    );
    table.compare(
        "generator CPU (us/signal)",
        sb.and_then(R::generator_cpu_us_per_signal),
        pj.and_then(R::generator_cpu_us_per_signal),
    );
    delivery_rows(table, sb.map(R::delivery), pj.map(R::delivery));
}

fn delivery_rows(
    table: &mut Table,
    sb: Option<(&DeliveryCheck, &ClientEventCounts)>,
    pj: Option<(&DeliveryCheck, &ClientEventCounts)>,
) {
    let cell = |r: Option<(&DeliveryCheck, &ClientEventCounts)>| {
        r.map_or_else(|| "-".to_owned(), |(c, e)| check_cell(c, e))
    };
    table.row(vec![
        "lost/dup/reordered, client errors".to_owned(),
        cell(sb),
        cell(pj),
        String::new(),
    ]);
    let signals = |r: Option<(&DeliveryCheck, &ClientEventCounts)>| {
        r.map_or_else(
            || "-".to_owned(),
            |(c, _)| format!("{}/{}", c.delivered, c.sent),
        )
    };
    table.row(vec![
        "delivered/sent".to_owned(),
        signals(sb),
        signals(pj),
        String::new(),
    ]);
    let retries = |r: Option<(&DeliveryCheck, &ClientEventCounts)>| {
        r.map_or_else(
            || "-".to_owned(),
            |(c, e)| {
                format!(
                    "{}/{}/{}/{}",
                    e.reconnects, e.redelivered, e.rate_limited, c.foreign
                )
            },
        )
    };
    table.row(vec![
        "reconnects/redelivered/429s/foreign".to_owned(),
        retries(sb),
        retries(pj),
        String::new(),
    ]);
}

fn rate_tables(report: &Report, out: &mut String) {
    use ServerName::{PeerJs, Switchboard as Sb};
    let loads = report
        .plan
        .rates
        .iter()
        .map(|&rate| Load::Open { rate })
        .chain(std::iter::once(Load::Closed {
            in_flight: report.plan.in_flight,
        }));
    for load in loads {
        let (sb, pj) = (
            find_rate(&report.rates, Sb, load),
            find_rate(&report.rates, PeerJs, load),
        );
        let Some(any) = sb.or(pj) else { continue };
        let title = match load {
            Load::Open { rate } => format!(
                "(b) Open loop: {rate} ICE candidates/s over {} pairs, both directions, {:.0} s; latency from the scheduled send time",
                any.pairs, any.duration_seconds
            ),
            Load::Closed { in_flight } => format!(
                "(b) Closed loop: {in_flight} undelivered candidates in flight per direction, {} pairs, {:.0} s",
                any.pairs, any.duration_seconds
            ),
        };
        let mut table = Table::new(title, &SERVERS);
        let get = |r: Option<&RateResult>, f: fn(&RateResult) -> f64| r.map(f);
        if let Load::Open { .. } = load {
            table.compare(
                "achieved send rate (/s)",
                get(sb, |r| r.achieved_send_rate),
                get(pj, |r| r.achieved_send_rate),
            );
            table.compare(
                "max schedule lag (ms)",
                get(sb, |r| r.max_schedule_lag_ms),
                get(pj, |r| r.max_schedule_lag_ms),
            );
        }
        table.compare(
            "delivered signals/s",
            get(sb, |r| r.delivered_per_second),
            get(pj, |r| r.delivered_per_second),
        );
        table.compare(
            "latency p50 (ms)",
            get(sb, |r| r.latency.p50_ms),
            get(pj, |r| r.latency.p50_ms),
        );
        table.compare(
            "latency p95 (ms)",
            get(sb, |r| r.latency.p95_ms),
            get(pj, |r| r.latency.p95_ms),
        );
        table.compare(
            "latency p99 (ms)",
            get(sb, |r| r.latency.p99_ms),
            get(pj, |r| r.latency.p99_ms),
        );
        table.compare(
            "latency max (ms)",
            get(sb, |r| r.latency.max_ms),
            get(pj, |r| r.latency.max_ms),
        );
        table.compare(
            "server CPU (% of a core)",
            sb.and_then(|r| r.cpu.server_percent()),
            pj.and_then(|r| r.cpu.server_percent()),
        );
        cost_and_delivery_rows(&mut table, sb, pj);
        let _ = writeln!(out, "{table}");
    }
}

fn idle_tables(report: &Report, out: &mut String) {
    use ServerName::{PeerJs, Switchboard as Sb};
    for &n in &report.plan.idle {
        let (sb, pj) = (
            find_idle(&report.idle, Sb, n),
            find_idle(&report.idle, PeerJs, n),
        );
        let Some(any) = sb.or(pj) else { continue };
        let mut table = Table::new(
            format!(
                "(c) Idle: {} WebSocket clients with heartbeats (Switchboard: ping every 20 s, at most 10 per user; PeerJS: HEARTBEAT every 5 s)",
                any.connections
            ),
            &SERVERS,
        );
        let mib = |kib: Option<u64>| kib.map(|k| k as f64 / 1024.0);
        table.compare(
            "connect time (s)",
            sb.map(|r| r.connect_seconds),
            pj.map(|r| r.connect_seconds),
        );
        table.compare(
            "RSS fresh (MiB)",
            sb.and_then(|r| mib(r.rss_fresh_kib)),
            pj.and_then(|r| mib(r.rss_fresh_kib)),
        );
        table.compare(
            "RSS before this run (MiB)",
            sb.and_then(|r| mib(r.rss_before_kib)),
            pj.and_then(|r| mib(r.rss_before_kib)),
        );
        table.compare(
            "RSS connected (MiB)",
            sb.and_then(|r| mib(r.rss_after_kib)),
            pj.and_then(|r| mib(r.rss_after_kib)),
        );
        table.compare(
            "RSS per connection vs fresh (KiB)",
            sb.and_then(|r| r.rss_per_connection_kib),
            pj.and_then(|r| r.rss_per_connection_kib),
        );
        table.compare(
            "server CPU idle (% of a core)",
            sb.and_then(|r| r.server_cpu_percent),
            pj.and_then(|r| r.server_cpu_percent),
        );
        table.compare(
            "store queries in the window",
            sb.and_then(|r| r.store_queries.map(|q| q as f64)),
            pj.and_then(|r| r.store_queries.map(|q| q as f64)),
        );
        let errors = |r: Option<&IdleResult>| {
            r.map_or_else(
                || "-".to_owned(),
                |r| format!("{}/{}", r.events.disconnects, r.events.reconnects),
            )
        };
        table.row(vec![
            "disconnects/reconnects".to_owned(),
            errors(sb),
            errors(pj),
            String::new(),
        ]);
        let _ = writeln!(out, "{table}");
    }
}

fn polling_tables(report: &Report, out: &mut String) {
    for result in &report.polling {
        let mut table = Table::new(
            format!(
                "(d) Polling fallback (Switchboard): {} clients over {} users, each GET …/signals/?after=<seq> every 1.5 s, {:.0} s",
                result.pollers, result.users, result.duration_seconds
            ),
            &["", "Switchboard"],
        );
        let r = &result.response;
        for (label, value) in [
            ("requests", result.requests as f64),
            (
                "requests/s",
                result.requests as f64 / result.duration_seconds.max(1e-9),
            ),
            ("response p50 (ms)", r.p50_ms),
            ("response p95 (ms)", r.p95_ms),
            ("response p99 (ms)", r.p99_ms),
            ("response max (ms)", r.max_ms),
            ("errors", result.errors as f64),
        ] {
            table.row(vec![label.to_owned(), number(value)]);
        }
        table.row(vec![
            "server CPU (% of a core)".to_owned(),
            opt(result.server_cpu_percent),
        ]);
        table.row(vec![
            "server CPU (us/request)".to_owned(),
            opt(result.server_cpu_us_per_request),
        ]);
        let _ = writeln!(out, "{table}");
    }
}

fn transport_tables(report: &Report, out: &mut String) {
    if report.transports.is_empty() {
        return;
    }
    let results: Vec<Option<&BurstResult>> = transports::ALL
        .iter()
        .map(|t| report.transports.iter().find(|r| r.transport == *t))
        .collect();
    let mut header = vec![String::new()];
    header.extend(transports::ALL.iter().map(|t| t.to_string()));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let any = results.iter().flatten().next();
    let mut table = Table::new(
        format!(
            "(e) Transports (Switchboard): the burst of (a) at P={}, receivers on each transport; WebSocket clients send over the socket, the others with POST /api/p2p/send-signal/",
            any.map_or(0, |r| r.pairs)
        ),
        &header,
    );
    let metric = |label: &str, f: fn(&BurstResult) -> f64| {
        let mut row = vec![label.to_owned()];
        row.extend(results.iter().map(|r| opt(r.map(f))));
        row
    };
    table.row(metric("one-way p50 (ms)", |r| r.latency.p50_ms));
    table.row(metric("one-way p95 (ms)", |r| r.latency.p95_ms));
    table.row(metric("one-way p99 (ms)", |r| r.latency.p99_ms));
    table.row(metric("one-way max (ms)", |r| r.latency.max_ms));
    table.row(metric("whole call p50 (ms)", |r| r.call_setup.p50_ms));
    table.row(metric("whole call p99 (ms)", |r| r.call_setup.p99_ms));
    table.row(metric("server CPU (us/signal)", |r| {
        r.server_cpu_us_per_signal.unwrap_or(f64::NAN)
    }));
    let mut checks = vec!["lost/dup/reordered, errors".to_owned()];
    checks.extend(
        results
            .iter()
            .map(|r| r.map_or_else(|| "-".to_owned(), |r| check_cell(&r.check, &r.events))),
    );
    table.row(checks);
    let _ = writeln!(out, "{table}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let mut table = Table::new("title", &SERVERS);
        table.compare("p99 (ms)", Some(1.5), Some(3.0));
        table.compare("longer label", Some(1234.0), None);
        let text = table.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "title");
        assert!(lines[2].ends_with("0.50x"), "{text}");
        assert_eq!(lines[2].len(), lines[1].len(), "{text}");
    }
}
