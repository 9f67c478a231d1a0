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
    /// How often the cleanup task runs. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub cleanup_interval: Duration,
    /// Largest accepted signal payload, in bytes of JSON. Default `65536` (64 KiB).
    pub max_payload_bytes: usize,
    /// Most signals one GET returns; the rest follow on the next poll. Default `500`.
    pub max_signals_per_fetch: u32,
    /// ICE servers handed to browsers by `GET /api/p2p/ice-servers/`.
    /// Default: one STUN server, `stun:stun.l.google.com:19302`.
    pub ice_servers: Vec<IceServer>,
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
            open_registration: true,
            session_ttl: Duration::from_secs(14 * 24 * 3600),
            cookie_secure: false,
            call_signal_ttl: Duration::from_secs(30),
            consumed_retention: Duration::from_secs(60),
            unconsumed_retention: Duration::from_secs(300),
            cleanup_interval: Duration::from_secs(10),
            max_payload_bytes: 64 * 1024,
            max_signals_per_fetch: 500,
            ice_servers: vec![IceServer {
                urls: vec!["stun:stun.l.google.com:19302".to_owned()],
                username: None,
                credential: None,
            }],
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
