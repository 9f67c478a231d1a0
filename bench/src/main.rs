//! `switchboard-bench`: the load generator that compares Switchboard with a PeerJS server.
//!
//! # Layout
//! - [`cli`]: the flags and the plan they resolve to; [`bench`] runs the plan;
//! - [`servers`]: the two protocol adapters (Switchboard's transports, PeerJS's WebSocket);
//! - [`client`]: a connected client as scenarios see it (outbox, inbox, events);
//! - [`signal`]: signal kinds, the marks every payload carries, the padded payloads;
//! - [`scenarios`]: (a) bursts, (b) rates, (c) idle, (d) polling, (e) transports;
//! - [`measure`]: histograms, the delivery check, `/proc` sampling, `/metrics`;
//! - [`report`]: tables, PASS/FAIL lines and JSON.
//!
//! It never links the server: it talks to running processes over loopback, as browsers do.

mod bench;
mod cli;
mod client;
mod clock;
mod limits;
mod measure;
mod progress;
mod report;
mod scenarios;
mod servers;
mod signal;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::Cli;
use crate::progress::Progress;

/// A delivery check failed: something was lost, duplicated or reordered, or a client failed.
const EXIT_DELIVERY: u8 = 1;
/// The bench or a scenario could not run.
const EXIT_ERROR: u8 = 2;
/// A target failed (only with `--require-targets`).
const EXIT_TARGET: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let plan = cli.plan();
    // Scenarios that need more sockets than the limit allows fail on their own, clearly.
    if let Err(error) = limits::raise_open_files() {
        eprintln!("warning: {error}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let outcome = runtime.block_on(bench::run(&cli, plan, Progress::default()));
    runtime.shutdown_timeout(Duration::from_secs(2));
    let report = match outcome {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    print!("{report}");
    if let Some(path) = &cli.json {
        let written = serde_json::to_string_pretty(&report)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(path, json + "\n"));
        if let Err(error) = written {
            eprintln!("error: cannot write {}: {error}", path.display());
            return ExitCode::from(EXIT_ERROR);
        }
    }
    if !report.delivery_clean {
        ExitCode::from(EXIT_DELIVERY)
    } else if !report.failures.is_empty() {
        ExitCode::from(EXIT_ERROR)
    } else if cli.require_targets && report.targets_failed() {
        ExitCode::from(EXIT_TARGET)
    } else {
        ExitCode::SUCCESS
    }
}
