//! The PostgreSQL store, for several Switchboard nodes sharing one database.
//!
//! Same SQL and behaviour as the SQLite store (see `sql.rs`). Writers run concurrently here, so
//! `seq` order relies on the per-recipient counter row lock held until commit, and a consuming
//! read locks the rows it returns (`FOR UPDATE`) so two polls cannot both consume them.
//! Migrations take PostgreSQL's advisory lock, so nodes starting together are safe.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::rows::*;
use super::sql::*;
use super::*;
use crate::domain::{CallOutcome, MessageId};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresStore {
    writer: PgPool,
    /// The same pool: PostgreSQL readers never wait for writers.
    reader: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl(url.to_owned()))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            // Fail fast when the database is unreachable: the client gets a 503 in seconds,
            // not a hanging request; the pool reconnects by itself when it is back.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await
            .map_err(StoreError::classify)?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
        })
    }
}

fn db(err: sqlx::Error) -> StoreError {
    StoreError::classify(err)
}

sql_store!(
    PostgresStore,
    sqlx::Postgres,
    " FOR UPDATE OF s",
    Placeholders::Numbered
);
