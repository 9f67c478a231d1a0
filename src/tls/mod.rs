//! Built-in TLS: the certificate (PEM files, or self-signed for LANs and tests), a rustls
//! configuration whose certificate can be swapped while the server runs, and the reload task.
//!
//! Reloads reach new handshakes only: a connection keeps the session it was handshaken with, so
//! open WebSocket and SSE streams are not dropped. The embedded TURN server's `turns:` listener
//! uses [`Tls::turn_server_config`], which shares the same certificate and so the same reloads.

mod certs;
pub mod listener;
pub mod redirect;
mod self_signed;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use certs::{fingerprint, CertFiles};
pub use listener::TlsListener;
pub use self_signed::{default_hostnames, machine_addresses, SelfSigned};

use crate::Config;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls_cert is set but tls_key is not: both PEM files are needed")]
    MissingKey,
    #[error("tls_key is set but tls_cert is not: both PEM files are needed")]
    MissingCert,
    #[error("tls_cert and tls_self_signed are both set: choose one")]
    Conflict,
    #[error("cannot read the TLS {kind} file {path}")]
    Read {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM {kind}")]
    NoPem { kind: &'static str, path: PathBuf },
    #[error("cannot parse the TLS {kind} file {path}: {detail}")]
    Parse {
        kind: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("the private key {key} does not belong to the certificate {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("the private key {path} cannot be used: {detail}")]
    UnusableKey { path: PathBuf, detail: String },
    #[error("{0:?} in tls_hostnames is not a host name or an IP address")]
    Hostname(String),
    #[error("cannot generate the self-signed certificate")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot configure TLS")]
    Rustls(#[from] rustls::Error),
}

/// How many reloads succeeded and failed so far; [`Tls::reloads`] lets a caller await the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reloads {
    pub loaded: u64,
    pub failed: u64,
}

/// The server's TLS: a cheap-to-clone handle on the current certificate and the configs.
#[derive(Clone)]
pub struct Tls {
    shared: Arc<Shared>,
}

struct Shared {
    files: CertFiles,
    self_signed: Option<SelfSigned>,
    provider: Arc<CryptoProvider>,
    resolver: Arc<SwappableCert>,
    http: Arc<ServerConfig>,
    turn: Arc<ServerConfig>,
    reloads: watch::Sender<Reloads>,
    /// The files as they were when first loaded; the watch compares against it.
    loaded_stamps: Stamps,
}

/// Hands every new handshake the current certificate; [`Tls::reload`] swaps it. A lock-free
/// swap, because this is read on every handshake and written once in a blue moon.
#[derive(Debug)]
struct SwappableCert {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for SwappableCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl Tls {
    /// The TLS the configuration asks for, `None` for plain HTTP. Self-signed mode makes (or
    /// reuses) its certificate here.
    pub fn from_config(config: &Config) -> Result<Option<Self>, TlsError> {
        match (&config.tls_cert, &config.tls_key, config.tls_self_signed) {
            (Some(_), _, true) => Err(TlsError::Conflict),
            (Some(cert), Some(key), false) => Self::new(
                CertFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                },
                None,
            )
            .map(Some),
            (Some(_), None, false) => Err(TlsError::MissingKey),
            (None, Some(_), _) => Err(TlsError::MissingCert),
            (None, None, true) => {
                let names = if config.tls_hostnames.is_empty() {
                    default_hostnames(config.listen)
                } else {
                    config.tls_hostnames.clone()
                };
                let kept = self_signed::ensure(&config.tls_self_signed_dir, &names, &provider())?;
                Self::new(kept.files.clone(), Some(kept)).map(Some)
            }
            (None, None, false) => Ok(None),
        }
    }

    /// TLS from a PEM certificate chain and key.
    pub fn from_files(files: CertFiles) -> Result<Self, TlsError> {
        Self::new(files, None)
    }

    fn new(files: CertFiles, self_signed: Option<SelfSigned>) -> Result<Self, TlsError> {
        let provider = provider();
        let loaded_stamps = Stamps::of(&files);
        let certified = certs::load(&files, &provider)?;
        let resolver = Arc::new(SwappableCert {
            current: ArcSwap::from_pointee(certified),
        });
        let config = || {
            Ok::<_, TlsError>(
                ServerConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()?
                    .with_no_client_auth()
                    .with_cert_resolver(resolver.clone()),
            )
        };
        let mut http = config()?;
        // axum serves HTTP/1.1 here (its `http2` feature is off); WebSockets need it anyway.
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        // TURN clients offer no ALPN or their own ("stun.turn"); offering none accepts both.
        let turn = config()?;
        Ok(Self {
            shared: Arc::new(Shared {
                files,
                self_signed,
                provider,
                resolver,
                http: Arc::new(http),
                turn: Arc::new(turn),
                reloads: watch::Sender::new(Reloads::default()),
                loaded_stamps,
            }),
        })
    }

    /// The rustls configuration of the HTTPS listener (ALPN `http/1.1`).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.shared.http.clone()
    }

    /// The same certificate for TURN over TLS (`turns:`), without ALPN.
    pub fn turn_server_config(&self) -> Arc<ServerConfig> {
        self.shared.turn.clone()
    }

    /// The certificate new handshakes get (the leaf of the chain).
    pub fn certificate(&self) -> CertificateDer<'static> {
        self.shared.resolver.current.load().cert[0].clone()
    }

    /// SHA-256 fingerprint of [`Tls::certificate`], colon-separated hex as browsers show it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.certificate())
    }

    /// The files the certificate is read from (the generated ones in self-signed mode).
    pub fn files(&self) -> &CertFiles {
        &self.shared.files
    }

    /// Set in self-signed mode: the names covered and whether it was made on this start.
    pub fn self_signed(&self) -> Option<&SelfSigned> {
        self.shared.self_signed.as_ref()
    }

    /// Watch the reload counts (each reload attempt changes the value).
    pub fn reloads(&self) -> watch::Receiver<Reloads> {
        self.shared.reloads.subscribe()
    }

    /// Reads the files again and, if they are good, serves them to every new handshake. A bad
    /// pair is reported and the certificate in use is kept.
    pub fn reload(&self) -> Result<(), TlsError> {
        let result = certs::load(&self.shared.files, &self.shared.provider);
        match &result {
            Ok(certified) => {
                self.shared
                    .resolver
                    .current
                    .store(Arc::new(certified.clone()));
                tracing::info!(
                    cert = %self.shared.files.cert.display(),
                    fingerprint = %self.fingerprint(),
                    "TLS certificate reloaded"
                );
            }
            Err(err) => tracing::error!(
                error = %ErrorChain(err),
                "cannot reload the TLS certificate; keeping the one in use"
            ),
        }
        self.shared.reloads.send_modify(|counts| {
            if result.is_ok() {
                counts.loaded += 1;
            } else {
                counts.failed += 1;
            }
        });
        result.map(|_| ())
    }

    /// Reloads when the files change (checked every `interval`: modification time, size and
    /// inode, so an atomic rename and a symlink switch are seen too) and on SIGHUP, until
    /// `shutdown`. A change is loaded once the files have stayed as they are for one more
    /// check, so a pair written one file after the other is read whole rather than as a new
    /// certificate with the old key. A change that fails to load is not retried until the files
    /// change again.
    pub async fn watch(self, interval: Duration, shutdown: CancellationToken) {
        let mut seen = self.shared.loaded_stamps.clone();
        let mut settling: Option<Stamps> = None;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut hangup = hangups();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {
                    let now = Stamps::of(&self.shared.files);
                    if now == seen {
                        settling = None;
                    } else if settling.as_ref() == Some(&now) {
                        seen = now;
                        settling = None;
                        let _ = self.reload();
                    } else {
                        settling = Some(now);
                    }
                }
                Some(()) = next_hangup(&mut hangup) => {
                    tracing::info!("SIGHUP: reloading the TLS certificate");
                    seen = Stamps::of(&self.shared.files);
                    settling = None;
                    let _ = self.reload();
                }
            }
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What the watch compares: enough to see a rewrite, a replacement or a switched symlink.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamps([Option<(SystemTime, u64, u64)>; 2]);

impl Stamps {
    fn of(files: &CertFiles) -> Self {
        let stamp = |path: &PathBuf| {
            let meta = std::fs::metadata(path).ok()?;
            #[cfg(unix)]
            let inode = std::os::unix::fs::MetadataExt::ino(&meta);
            #[cfg(not(unix))]
            let inode = 0;
            Some((meta.modified().ok()?, meta.len(), inode))
        };
        Self([stamp(&files.cert), stamp(&files.key)])
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

#[cfg(unix)]
fn hangups() -> Hangups {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGHUP; the files are still watched");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangups() -> Hangups {}

#[cfg(unix)]
async fn next_hangup(hangups: &mut Hangups) -> Option<()> {
    match hangups {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangups) -> Option<()> {
    std::future::pending().await
}

/// Displays an error with its causes, `a: b: c`, for one log field.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The URLs to print for a server listening on `addr`: the address itself, or for an
/// unspecified address (`0.0.0.0`, `[::]`) every address of the machine other machines can use.
pub fn reachable_urls(scheme: &str, addr: SocketAddr) -> Vec<String> {
    if !addr.ip().is_unspecified() {
        return vec![format!("{scheme}://{addr}")];
    }
    let v4_only = addr.is_ipv4();
    machine_addresses()
        .into_iter()
        .filter(|ip| !v4_only || ip.is_ipv4())
        .map(|ip| format!("{scheme}://{}", SocketAddr::new(ip, addr.port())))
        .collect()
}
