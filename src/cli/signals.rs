//! `switchboard signals`: the guide's `test_signal_flow.py` — what is in the signal table, who
//! it is for, and whether it was consumed — once, or followed live with `--watch`.

use std::time::Duration;

use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::domain::{ChatId, Timestamp};
use crate::store::{InspectFilter, Inspection, SignalRow};
use crate::Config;

#[derive(Debug, clap::Args)]
pub struct SignalsArgs {
    /// Only signals of this chat.
    #[arg(long)]
    chat: Option<i64>,
    /// Only signals this user sent or receives.
    #[arg(long)]
    user: Option<String>,
    /// Print JSON (with --watch: one JSON object per new signal, one per line).
    #[arg(long)]
    json: bool,
    /// After the summary, keep printing signals as they are stored, until Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// How many recent signals to list.
    #[arg(long, default_value_t = 20)]
    limit: u32,
}

/// A signal's state as the guide names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Consumed,
    Unconsumed,
    /// An unconsumed call signal past the call TTL: it will never be delivered.
    Expired,
}

impl Status {
    pub fn of(row: &SignalRow, now: Timestamp, call_ttl: Duration) -> Self {
        if row.consumed_at.is_some() {
            Self::Consumed
        } else if row.is_call && row.created_at.age(now) > call_ttl {
            Self::Expired
        } else {
            Self::Unconsumed
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Consumed => "consumed",
            Self::Unconsumed => "unconsumed",
            Self::Expired => "expired",
        }
    }
}

#[derive(Serialize)]
struct RowView<'a> {
    #[serde(flatten)]
    row: &'a SignalRow,
    status: Status,
    age_ms: u128,
}

#[derive(Serialize)]
struct Report<'a> {
    database: &'a str,
    total: i64,
    unconsumed: i64,
    recent: Vec<RowView<'a>>,
    per_user: &'a [crate::store::UserSignalCount],
}

pub async fn run(config: Config, args: SignalsArgs) -> anyhow::Result<()> {
    let (store, _) = super::open(&config).await?;
    let user = match &args.user {
        Some(name) => Some(super::find_user(store.as_ref(), name).await?.id),
        None => None,
    };
    let filter = InspectFilter {
        chat: args.chat.map(ChatId),
        user,
        recent_limit: args.limit,
    };
    let ttl = config.call_signal_ttl;
    let inspection = store.inspect(&filter).await?;
    let now = SystemClock.now();
    if args.json {
        // With --watch: the summary first, on one line, then one line per new signal.
        let report = Report {
            database: &config.database_url,
            total: inspection.total,
            unconsumed: inspection.unconsumed,
            recent: views(&inspection.recent, now, ttl),
            per_user: &inspection.per_user,
        };
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_summary(&config.database_url, &inspection, now, ttl);
    }
    if !args.watch {
        return Ok(());
    }
    if !args.json {
        println!("\nWatching for new signals (Ctrl-C to stop)...");
    }
    let mut last_id = inspection.recent.iter().map(|r| r.id).max().unwrap_or(0);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let stop = crate::app::termination_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = ticker.tick() => {}
        }
        let filter = InspectFilter {
            recent_limit: 1000,
            ..filter.clone()
        };
        let rows = store.signals_since(&filter, last_id).await?;
        let now = SystemClock.now();
        for view in views(&rows, now, ttl) {
            if args.json {
                println!("{}", serde_json::to_string(&view)?);
            } else {
                println!("{}", line(&view));
            }
            last_id = last_id.max(view.row.id);
        }
    }
}

fn views(rows: &[SignalRow], now: Timestamp, ttl: Duration) -> Vec<RowView<'_>> {
    rows.iter()
        .map(|row| RowView {
            row,
            status: Status::of(row, now, ttl),
            age_ms: row.created_at.age(now).as_millis(),
        })
        .collect()
}

const HEADER: &str = "     ID    SEQ   CHAT  TYPE                  SENDER            RECEIVER          STATUS       AGE    BYTES";

fn line(view: &RowView) -> String {
    let row = view.row;
    format!(
        "{:>7} {:>6} {:>6}  {:<20}  {:<16}  {:<16}  {:<10} {:>6} {:>8}",
        row.id,
        row.seq,
        row.chat_id,
        row.kind,
        row.sender,
        row.receiver,
        view.status.label(),
        age(Duration::from_millis(view.age_ms as u64)),
        row.payload_bytes
    )
}

fn age(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

fn print_summary(database: &str, inspection: &Inspection, now: Timestamp, ttl: Duration) {
    println!("Switchboard signals in {database}");
    println!("Total signals: {}", inspection.total);
    println!("Unconsumed signals: {}", inspection.unconsumed);
    println!(
        "\nRecent signals (newest first, {} shown):",
        inspection.recent.len()
    );
    if inspection.recent.is_empty() {
        println!("  (none)");
    } else {
        println!("{HEADER}");
        for view in views(&inspection.recent, now, ttl) {
            println!("{}", line(&view));
        }
    }
    println!("\nSignals per user:");
    if inspection.per_user.is_empty() {
        println!("  (none)");
    }
    for count in &inspection.per_user {
        println!(
            "  {:<16} received {:>5} (unconsumed {:>5})   sent {:>5}",
            count.username, count.received, count.unconsumed, count.sent
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(is_call: bool, consumed: bool) -> SignalRow {
        SignalRow {
            id: 1,
            seq: 1,
            chat_id: 1,
            kind: "webrtc.offer".into(),
            is_call,
            sender: "alice".into(),
            receiver: "bob".into(),
            created_at: Timestamp(0),
            consumed_at: consumed.then_some(Timestamp(1)),
            payload_bytes: 2,
        }
    }

    #[test]
    fn status_follows_the_guide() {
        let ttl = Duration::from_secs(30);
        let late = Timestamp(31_000);
        assert_eq!(
            Status::of(&row(true, false), Timestamp(29_000), ttl),
            Status::Unconsumed
        );
        assert_eq!(Status::of(&row(true, false), late, ttl), Status::Expired);
        assert_eq!(
            Status::of(&row(false, false), late, ttl),
            Status::Unconsumed
        );
        assert_eq!(Status::of(&row(true, true), late, ttl), Status::Consumed);
    }
}
