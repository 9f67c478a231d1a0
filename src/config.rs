//! Configuration: defaults → TOML file → `SWITCHBOARD_*` environment variables → flags.
//!
//! Every field's doc comment names its default; `docs/CONFIGURATION.md` lists them all.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
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
    /// SQLite: the write-ahead log is checkpointed back into the database and truncated before
    /// it passes this many bytes, however busy the node is. Default `67108864` (64 MiB).
    pub sqlite_wal_limit: u64,
    /// Whether anyone may create an account with `POST /api/auth/register`. Default `true`.
    pub open_registration: bool,
    /// How long a session cookie stays valid. Default `14days`.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Mark cookies `Secure` even without built-in TLS (set it behind an HTTPS proxy); with TLS
    /// on, cookies are always `Secure`. Default `false`.
    pub cookie_secure: bool,
    /// PEM certificate chain to serve HTTPS with (and `turns:`); reloaded when the file changes
    /// or on SIGHUP. Needs `tls_key`. Default: unset (plain HTTP).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`. Default: unset.
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate generated for `tls_hostnames` and kept in
    /// `tls_self_signed_dir` (for LANs and tests). Default `false`.
    pub tls_self_signed: bool,
    /// Names and IP addresses the self-signed certificate covers. Default: the listen address,
    /// `localhost` and the machine's non-loopback addresses.
    pub tls_hostnames: Vec<String>,
    /// Where the self-signed certificate and key are kept between starts.
    /// Default `switchboard-tls`.
    pub tls_self_signed_dir: PathBuf,
    /// How often the certificate files are checked for changes. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub tls_reload_interval: Duration,
    /// A plain-HTTP address whose every request is redirected to HTTPS. Default: unset.
    pub http_redirect_listen: Option<SocketAddr>,
    /// `max-age` of the `Strict-Transport-Security` header sent over HTTPS; unset = no header.
    /// Default: unset.
    #[serde(default, with = "humantime_serde::option")]
    pub hsts_max_age: Option<Duration>,
    /// Run the embedded STUN/TURN server. Default `true`.
    pub turn_enabled: bool,
    /// UDP and TCP address of the embedded STUN/TURN server. Default `0.0.0.0:3478`.
    pub turn_listen: SocketAddr,
    /// TURN over TLS (`turns:`) address, used when TLS is configured. Default `0.0.0.0:5349`.
    pub turn_tls_listen: SocketAddr,
    /// First port of the relay range. Default `49152`.
    pub turn_relay_port_min: u16,
    /// Last port of the relay range. Default `65535`.
    pub turn_relay_port_max: u16,
    /// The public address of this host when it sits behind 1:1 NAT (cloud VMs): advertised as
    /// the relay address and in the TURN URLs. Default: unset.
    pub turn_external_ip: Option<IpAddr>,
    /// Host name or IP put in the `turn:`/`stun:` URLs handed to browsers. Default: unset =
    /// `turn_external_ip`, else the host the browser used to reach this server.
    pub turn_public_host: Option<String>,
    /// TURN realm. Default `switchboard`.
    pub turn_realm: String,
    /// Shared secret of the TURN REST credentials (coturn's `static-auth-secret`). Default:
    /// unset = generated once and kept in the store, so every node shares it.
    pub turn_secret: Option<String>,
    /// TURN URLs handed to browsers instead of the embedded server's (an external coturn with
    /// `use-auth-secret`). Default: none.
    pub turn_urls: Vec<String>,
    /// How long minted TURN credentials are valid for new allocations. Default `1h`.
    #[serde(with = "humantime_serde")]
    pub turn_credential_ttl: Duration,
    /// Most allocations one user may hold at once. Default `10`.
    pub turn_user_quota: usize,
    /// Longest allocation lifetime granted; clients refresh before it ends. Default `10m`.
    #[serde(with = "humantime_serde")]
    pub turn_allocation_lifetime: Duration,
    /// Cap on the bits per second relayed for one allocation; unset = no cap. Default: unset.
    pub turn_max_bitrate: Option<u64>,
    /// Let the relay reach loopback peers (tests only). Default `false`.
    pub turn_allow_loopback_peers: bool,
    /// Let the relay reach private, link-local and unique-local peers (tests and LANs).
    /// Default `false`.
    pub turn_allow_private_peers: bool,
    /// Call signals (`webrtc.*`, `call.*`) older than this are never delivered. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub call_signal_ttl: Duration,
    /// A call still ringing this long after its invite is recorded as missed (the caller's tab
    /// vanished mid-ring). Default `90s`.
    #[serde(with = "humantime_serde")]
    pub call_ring_timeout: Duration,
    /// An active call whose two people both have had no live connection this long is over
    /// (both closed their tabs); a reload comes back well within it. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub call_rejoin_grace: Duration,
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
    /// Extra ICE servers handed to browsers by `GET /api/p2p/ice-servers/`, after the embedded
    /// STUN/TURN server (or `turn_urls`). Default: none.
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
            sqlite_wal_limit: 64 * 1024 * 1024,
            redis_url: None,
            redis_prefix: "switchboard".to_owned(),
            bus_catch_up_interval: Duration::from_secs(1),
            open_registration: true,
            session_ttl: Duration::from_secs(14 * 24 * 3600),
            cookie_secure: false,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            tls_hostnames: Vec::new(),
            tls_self_signed_dir: PathBuf::from("switchboard-tls"),
            tls_reload_interval: Duration::from_secs(10),
            http_redirect_listen: None,
            hsts_max_age: None,
            turn_enabled: true,
            turn_listen: SocketAddr::from(([0, 0, 0, 0], 3478)),
            turn_tls_listen: SocketAddr::from(([0, 0, 0, 0], 5349)),
            turn_relay_port_min: 49152,
            turn_relay_port_max: 65535,
            turn_external_ip: None,
            turn_public_host: None,
            turn_realm: "switchboard".to_owned(),
            turn_secret: None,
            turn_urls: Vec::new(),
            turn_credential_ttl: Duration::from_secs(3600),
            turn_user_quota: 10,
            turn_allocation_lifetime: Duration::from_secs(600),
            turn_max_bitrate: None,
            turn_allow_loopback_peers: false,
            turn_allow_private_peers: false,
            call_signal_ttl: Duration::from_secs(30),
            call_ring_timeout: Duration::from_secs(90),
            call_rejoin_grace: Duration::from_secs(30),
            consumed_retention: Duration::from_secs(60),
            unconsumed_retention: Duration::from_secs(300),
            cleanup_interval: Duration::from_secs(5),
            max_payload_bytes: 64 * 1024,
            max_signals_per_fetch: 500,
            ice_servers: Vec::new(),
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
    /// Whether this server terminates TLS itself.
    pub fn tls_enabled(&self) -> bool {
        self.tls_self_signed || self.tls_cert.is_some()
    }

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
