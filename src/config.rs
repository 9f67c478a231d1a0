//! Configuration: defaults → TOML file → `SWITCHBOARD_*` environment variables → flags.
//!
//! Every field's doc comment names its default; `docs/CONFIGURATION.md` lists them all.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address the HTTP server listens on. Default `127.0.0.1:8000`.
    pub listen: SocketAddr,
    /// Where everything is stored. Default `sqlite://switchboard.db` (created if missing).
    pub database_url: String,
    /// Redis for waking other nodes (`redis://127.0.0.1:6379`); unset = one node, in-process bus.
    /// Default: unset.
    pub redis_url: Option<String>,
    /// Prefix of this deployment's Redis keys and channels. Default `switchboard`.
    pub redis_prefix: String,
    /// While Redis is unreachable, how often every connection re-reads the store. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub bus_catch_up_interval: Duration,
    /// Most connections to PostgreSQL per node (SQLite uses one writer and four readers).
    /// Default `16`.
    pub database_max_connections: u32,
    /// Whether anyone may create an account with `POST /api/auth/register`. Default `true`.
    pub open_registration: bool,
    /// How long a session cookie stays valid. Default `14days`.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Mark cookies `Secure` (set it when served over HTTPS). Default `false`.
    pub cookie_secure: bool,
    /// Call signals (`webrtc.*`, `call.*`) older than this are never delivered. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub call_signal_ttl: Duration,
    /// Consumed signals are deleted this long after consumption. Default `1m`.
    #[serde(with = "humantime_serde")]
    pub consumed_retention: Duration,
    /// Any signal is deleted this long after it was sent, consumed or not. Default `5m`.
    #[serde(with = "humantime_serde")]
    pub unconsumed_retention: Duration,
    /// How often the cleanup task runs (it also marks call signals that expired unread and
    /// sends their senders an `expired` receipt). Default `5s`.
    #[serde(with = "humantime_serde")]
    pub cleanup_interval: Duration,
    /// Largest accepted signal payload, in bytes of JSON. Default `65536` (64 KiB).
    pub max_payload_bytes: usize,
    /// Most signals one GET returns; the rest follow on the next poll. Default `500`.
    pub max_signals_per_fetch: u32,
    /// ICE servers handed to browsers by `GET /api/p2p/ice-servers/`.
    /// Default: one STUN server, `stun:stun.l.google.com:19302`.
    pub ice_servers: Vec<IceServer>,
    /// Sustained signals per second one user may send (HTTP and WebSocket together); over it,
    /// 429 with `Retry-After`. Default `100`.
    pub send_rate_per_second: u32,
    /// Signals one user may send in a burst before the rate applies. Default `400`.
    pub send_burst: u32,
    /// Most live push connections (WebSocket, SSE, long-poll) per user per node. Default `16`.
    pub max_connections_per_user: usize,
    /// Pushes queued per connection before a slow reader is disconnected (it resumes from its
    /// cursor). Default `256`.
    pub connection_queue: usize,
    /// Origins allowed to open a WebSocket, besides the server's own (the Host header).
    /// Default: none.
    pub allowed_origins: Vec<String>,
    /// How often the server pings a WebSocket. Default `20s`.
    #[serde(with = "humantime_serde")]
    pub ws_ping_interval: Duration,
    /// A WebSocket silent (no frame, no pong) this long is closed. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub ws_idle_timeout: Duration,
    /// How often an idle SSE stream gets a keep-alive comment. Default `15s`.
    #[serde(with = "humantime_serde")]
    pub sse_keepalive: Duration,
    /// The longest a long-poll (`?wait=`) is held. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub longpoll_max_wait: Duration,
    /// How long shutdown waits for open requests and streams. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Log format: `text` or `json`. Default `text`.
    pub log_format: LogFormat,
}

/// One entry of RTCConfiguration.iceServers, as the browser expects it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            database_url: "sqlite://switchboard.db".to_owned(),
            database_max_connections: 16,
            redis_url: None,
            redis_prefix: "switchboard".to_owned(),
            bus_catch_up_interval: Duration::from_secs(1),
            open_registration: true,
            session_ttl: Duration::from_secs(14 * 24 * 3600),
            cookie_secure: false,
            call_signal_ttl: Duration::from_secs(30),
            consumed_retention: Duration::from_secs(60),
            unconsumed_retention: Duration::from_secs(300),
            cleanup_interval: Duration::from_secs(5),
            max_payload_bytes: 64 * 1024,
            max_signals_per_fetch: 500,
            ice_servers: vec![IceServer {
                urls: vec!["stun:stun.l.google.com:19302".to_owned()],
                username: None,
                credential: None,
            }],
            send_rate_per_second: 100,
            send_burst: 400,
            max_connections_per_user: 16,
            connection_queue: 256,
            allowed_origins: Vec::new(),
            ws_ping_interval: Duration::from_secs(20),
            ws_idle_timeout: Duration::from_secs(60),
            sse_keepalive: Duration::from_secs(15),
            longpoll_max_wait: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            log_format: LogFormat::Text,
        }
    }
}

/// Values given as command-line flags; `None` leaves the layer below in place.
#[derive(Debug, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

impl Config {
    /// Layers the sources in order of precedence. A missing file is an error only when named.
    pub fn load(file: Option<&Path>, flags: FlagOverrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment
            .merge(Env::prefixed("SWITCHBOARD_").ignore(&["config"]))
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|e| ConfigError(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the closure's error type
    fn layers_file_env_and_flags_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "sb.toml",
                "listen = \"127.0.0.1:9000\"\ncall_signal_ttl = \"45s\"\nmax_payload_bytes = 10",
            )?;
            jail.set_env("SWITCHBOARD_MAX_PAYLOAD_BYTES", "20");
            jail.set_env("SWITCHBOARD_DATABASE_URL", "sqlite://env.db");
            let flags = FlagOverrides {
                database_url: Some("sqlite://flag.db".into()),
                ..Default::default()
            };
            let config = Config::load(Some(Path::new("sb.toml")), flags).unwrap();
            assert_eq!(config.listen.port(), 9000);
            assert_eq!(config.call_signal_ttl, Duration::from_secs(45));
            assert_eq!(config.max_payload_bytes, 20);
            assert_eq!(config.database_url, "sqlite://flag.db");
            assert_eq!(config.unconsumed_retention, Duration::from_secs(300));
            Ok(())
        });
    }
}
