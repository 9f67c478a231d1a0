//! What `GET /api/p2p/ice-servers/` hands a browser for its `RTCPeerConnection`: this node's own
//! STUN/TURN server (or the external TURN URLs configured), with TURN REST credentials minted
//! for the user, then any extra servers from `ice_servers`.
//!
//! The URLs name the host the browser used to reach us unless `turn_public_host` or
//! `turn_external_ip` says otherwise: a browser that could reach the web page over that name can
//! usually reach the TURN port there too, and a LAN server needs no configuration.

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use super::credentials::{self, TurnSecret};
use crate::config::IceServer;
use crate::domain::UserId;
use crate::Config;

/// The embedded server's bound ports, as browsers must reach them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedTurn {
    /// UDP and TCP.
    pub port: u16,
    /// TURN over TLS, when TLS is configured.
    pub tls_port: Option<u16>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IceServers {
    #[serde(rename = "iceServers")]
    pub ice_servers: Vec<IceServer>,
    /// Seconds the TURN credentials stay valid for new allocations; fetch fresh ones per call.
    pub ttl: u64,
}

#[derive(Debug, Clone)]
pub struct IceServerList {
    secret: TurnSecret,
    credential_ttl: Duration,
    external_urls: Vec<String>,
    embedded: Option<EmbeddedTurn>,
    public_host: Option<String>,
    extra: Vec<IceServer>,
}

impl IceServerList {
    pub fn new(config: &Config, secret: TurnSecret, embedded: Option<EmbeddedTurn>) -> Self {
        let public_host = config
            .turn_public_host
            .clone()
            .or_else(|| config.turn_external_ip.map(|ip| ip.to_string()));
        Self {
            secret,
            credential_ttl: config.turn_credential_ttl,
            external_urls: config.turn_urls.clone(),
            embedded,
            public_host,
            extra: config.ice_servers.clone(),
        }
    }

    /// The servers for `user`; `request_host` is the request's `Host` header.
    pub fn for_user(&self, user: UserId, request_host: Option<&str>, now_unix: u64) -> IceServers {
        let ttl = self.credential_ttl.as_secs().max(1);
        let mut servers = Vec::new();
        let turn_urls = if !self.external_urls.is_empty() {
            self.external_urls.clone()
        } else if let Some(embedded) = self.embedded {
            let host = self
                .public_host
                .clone()
                .or_else(|| request_host.and_then(host_of));
            match host {
                Some(host) => {
                    servers.push(IceServer {
                        urls: vec![format!("stun:{host}:{}", embedded.port)],
                        username: None,
                        credential: None,
                    });
                    let mut urls = vec![
                        format!("turn:{host}:{}?transport=udp", embedded.port),
                        format!("turn:{host}:{}?transport=tcp", embedded.port),
                    ];
                    if let Some(tls_port) = embedded.tls_port {
                        urls.push(format!("turns:{host}:{tls_port}?transport=tcp"));
                    }
                    urls
                }
                None => Vec::new(),
            }
        } else {
            Vec::new()
        };
        if !turn_urls.is_empty() {
            let minted = credentials::mint(&self.secret, user, now_unix, ttl);
            servers.push(IceServer {
                urls: turn_urls,
                username: Some(minted.username),
                credential: Some(minted.credential),
            });
        }
        servers.extend(self.extra.iter().cloned());
        IceServers {
            ice_servers: servers,
            ttl,
        }
    }
}

/// The host part of a `Host` header (`name`, `name:port`, `1.2.3.4:port`, `[::1]:port`), kept
/// only if it is a plain host name or address: it ends up inside a URL.
fn host_of(header: &str) -> Option<String> {
    let host = if let Some(rest) = header.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        format!("[{inside}]")
    } else {
        header.split(':').next()?.to_owned()
    };
    let plain = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    (plain && !host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_forms() {
        assert_eq!(host_of("example.org").as_deref(), Some("example.org"));
        assert_eq!(host_of("10.0.0.5:8443").as_deref(), Some("10.0.0.5"));
        assert_eq!(host_of("[::1]:8000").as_deref(), Some("[::1]"));
        assert_eq!(host_of("evil.org/x?y"), None);
        assert_eq!(host_of(""), None);
    }
}
