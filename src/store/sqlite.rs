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

impl SqliteStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
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
            .pragma("cache_size", "-32768");
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
            .connect_with(options.clone())
            .await
            .map_err(StoreError::classify)?;
        let stop = CancellationToken::new();
        tokio::spawn(checkpoint_until(checkpointer, stop.clone()));
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

/// Copies the WAL back into the database file every [`CHECKPOINT_INTERVAL`], beside the writer
/// (a passive checkpoint never blocks it), until `stop`.
async fn checkpoint_until(pool: SqlitePool, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(CHECKPOINT_INTERVAL) => {}
        }
        if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %err, "WAL checkpoint failed; retrying");
        }
    }
    pool.close().await;
}

fn db(err: sqlx::Error) -> StoreError {
    StoreError::classify(err)
}

// SQLite serialises writers itself (one writer connection): no row lock is needed.
sql_store!(SqliteStore, sqlx::Sqlite, "", Placeholders::Positional);
