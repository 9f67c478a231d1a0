//! The embedded default store: one SQLite file in WAL mode.
//!
//! All writes go through a pool of exactly one connection. SQLite allows one writer at a time
//! anyway; queueing writers in-process (instead of letting several connections race for the
//! file lock) means no `SQLITE_BUSY` on lock upgrade, and it makes the per-recipient `seq`
//! trivially follow commit order. Reads use a separate pool and never wait for the writer.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use tokio_util::sync::{CancellationToken, DropGuard};

use super::rows::*;
use super::sql::*;
use super::*;
use crate::domain::{CallOutcome, MessageId};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Stops the checkpointer when the store is dropped.
    _checkpointer: DropGuard,
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
/// How often the WAL's size is looked at: at 10,000 signals/s the log grows ~8 MB in this time.
const WAL_SIZE_CHECK_INTERVAL: Duration = Duration::from_millis(100);

impl SqliteStore {
    /// Opens (creating if need be) the database `url` names; its WAL is kept under `wal_limit`
    /// bytes.
    pub async fn connect(url: &str, wal_limit: u64) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl(url.to_owned()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode survives a crash of the process; only a power cut can lose the
            // last transactions. Signals live for seconds, so this trade is the right one.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Pages are read through a memory map instead of a read() copy each, and the page
            // cache holds a busy minute of signals (SQLite's default is 2 MiB).
            .pragma("mmap_size", "268435456")
            .pragma("cache_size", "-32768")
            // After a checkpoint resets the log, SQLite truncates the file to this size instead
            // of keeping its high-water mark on disk.
            .pragma("journal_size_limit", (wal_limit / 2).to_string());
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(
                options
                    .clone()
                    // A checkpoint copies the WAL into the database and syncs it to disk: tens
                    // of milliseconds that, run by the writer as SQLite does by default, stall
                    // every signal queued behind that commit. The checkpointer does it instead.
                    .pragma("wal_autocheckpoint", "0")
                    // Multi-row statements come in one text per row count (see sql.rs).
                    .statement_cache_capacity(1024),
            )
            .await
            .map_err(StoreError::classify)?;
        MIGRATOR.run(&writer).await?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            // A checkpoint that finds readers in its way gives up soon and is tried again at the
            // next look at the log's size, instead of waiting out the writer's 5 s.
            .connect_with(options.clone().busy_timeout(Duration::from_millis(100)))
            .await
            .map_err(StoreError::classify)?;
        let stop = CancellationToken::new();
        let wal = WalFile {
            path: wal_path(&options),
            limit: wal_limit,
        };
        tokio::spawn(checkpoint_until(
            checkpointer,
            writer.clone(),
            wal,
            stop.clone(),
        ));
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            // A connection to a local file does not go stale; checking it on every acquire
            // cost a round trip to its thread per query.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await
            .map_err(StoreError::classify)?;
        Ok(Self {
            writer,
            reader,
            _checkpointer: stop.drop_guard(),
        })
    }
}

/// The write-ahead log beside the database file, and the size it must stay under.
struct WalFile {
    path: Option<std::path::PathBuf>,
    limit: u64,
}

impl WalFile {
    fn size(&self) -> u64 {
        self.path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    }
}

fn wal_path(options: &SqliteConnectOptions) -> Option<std::path::PathBuf> {
    let db = options.get_filename();
    let name = db.file_name()?.to_str()?;
    // An in-memory database has no log on disk.
    (name != ":memory:").then(|| db.with_file_name(format!("{name}-wal")))
}

/// Copies the WAL back into the database file every [`CHECKPOINT_INTERVAL`], beside the writer
/// (a passive checkpoint never blocks it), until `stop`; and keeps the log under its limit.
///
/// A passive checkpoint copies what it can but never *resets* the log while a reader still
/// looks at it, and under steady load some reader always does: the log then grows without end
/// (gigabytes after minutes at 10,000 signals/s). So once the file passes half the limit, a
/// TRUNCATE checkpoint copies everything and cuts the file to zero when the readers let it; past
/// three quarters it runs on the writer's connection, so commits wait until it has.
async fn checkpoint_until(
    pool: SqlitePool,
    writer: SqlitePool,
    wal: WalFile,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(WAL_SIZE_CHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_checkpoint = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let size = wal.size();
        let (mode, on) = if size > wal.limit * 3 / 4 {
            // Past three quarters the TRUNCATE runs on the writer's own connection: no commit can
            // add to the log while it waits for the readers, so the log cannot outgrow the limit
            // (commits wait for it instead, for milliseconds).
            ("TRUNCATE", &writer)
        } else if size > wal.limit / 2 {
            // Past half, beside the writer: it succeeds whenever the readers let it.
            ("TRUNCATE", &pool)
        } else if last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
            ("PASSIVE", &pool)
        } else {
            continue;
        };
        last_checkpoint = tokio::time::Instant::now();
        match sqlx::query(&format!("PRAGMA wal_checkpoint({mode})"))
            .execute(on)
            .await
        {
            Ok(_) if mode == "TRUNCATE" => tracing::info!(
                wal_bytes = size,
                after = wal.size(),
                "[STORE] WAL passed half its limit: checkpointed and truncated"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, mode, "WAL checkpoint failed; retrying"),
        }
    }
    pool.close().await;
}

fn db(err: sqlx::Error) -> StoreError {
    StoreError::classify(err)
}

// SQLite serialises writers itself (one writer connection): no row lock is needed.
sql_store!(SqliteStore, sqlx::Sqlite, "", Placeholders::Positional);
