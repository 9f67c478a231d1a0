//! The running server: [`App::build`] binds the port and wires the parts together;
//! [`App::run_until_stopped`] serves until the shutdown token is cancelled, then drains.

use std::fmt::Debug;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Accounts;
use crate::bus::redis::RedisBus;
use crate::bus::{Bus, LocalBus};
use crate::calls::CallPolicy;
use crate::cleanup::{self, Retention};
use crate::clock::{Clock, SystemClock};
use crate::http::{self, AppState};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::relay::{Relay, RelayParts, RelayPolicy};
use crate::store::metered::Metered;
use crate::store::{self, Store};
use crate::tls::{Tls, TlsError, TlsListener};
use crate::turn::ice_servers::{EmbeddedTurn, IceServerList};
use crate::turn::{self, TurnError, TurnInfo, TurnServer, TurnSettings};
use crate::Config;
use axum::serve::{Listener, ListenerExt};
use axum::Router;

pub struct App {
    listener: TcpListener,
    /// Set when this server terminates TLS itself; `listener` then speaks HTTPS.
    tls: Option<Tls>,
    /// `http_redirect_listen`: plain HTTP that redirects every request to HTTPS.
    redirect_listener: Option<TcpListener>,
    state: AppState,
    shutdown: CancellationToken,
    /// The embedded STUN/TURN server, when `turn_enabled`.
    turn: Option<TurnServer>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the database {url}")]
    Store {
        url: String,
        #[source]
        source: store::StoreError,
    },
    #[error("cannot start the Redis bus: {0}")]
    Bus(String),
    #[error("http_redirect_listen redirects to HTTPS, but TLS is off: set tls_cert and tls_key, or tls_self_signed")]
    RedirectWithoutTls,
    #[error("cannot set up TLS")]
    Tls(#[from] TlsError),
    #[error("cannot start the embedded TURN server")]
    Turn(#[source] TurnError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl App {
    /// Opens the store (running migrations) and binds the listener; port 0 picks a free port.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`App::build`], with the clock that decides what has expired (tests move it by hand).
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::default());
        // First, before the store: a bad certificate path should fail fast and say so.
        let tls = Tls::from_config(&config)?;
        let store = store::connect(
            &config.database_url,
            store::StoreOptions {
                max_connections: config.database_max_connections,
                sqlite_wal_limit: config.sqlite_wal_limit,
            },
        )
        .await
        .map_err(|source| StartError::Store {
            url: config.database_url.clone(),
            source,
        })?;
        let store: Arc<dyn Store> = Arc::new(Metered::new(store, metrics.store_queries.clone()));
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let redirect_listener = match config.http_redirect_listen {
            Some(_) if tls.is_none() => return Err(StartError::RedirectWithoutTls),
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        let accounts = Accounts::new(
            store.clone(),
            clock.clone(),
            config.session_ttl,
            config.open_registration,
        );
        let hub = Hub::new(
            config.connection_queue,
            config.max_connections_per_user,
            metrics.clone(),
        );
        let shutdown = CancellationToken::new();
        let bus: Arc<dyn Bus> = match &config.redis_url {
            Some(url) => Arc::new(
                RedisBus::start(
                    url,
                    &config.redis_prefix,
                    hub.clone(),
                    config.bus_catch_up_interval,
                    metrics.bus_connected.clone(),
                    shutdown.clone(),
                )
                .map_err(|e| StartError::Bus(e.to_string()))?,
            ),
            None => Arc::new(LocalBus::new(hub.clone())),
        };
        let relay = Relay::new(RelayParts {
            store: store.clone(),
            clock: clock.clone(),
            policy: RelayPolicy {
                call_signal_ttl: config.call_signal_ttl,
                max_payload_bytes: config.max_payload_bytes,
                max_signals_per_fetch: config.max_signals_per_fetch,
                send_rate_per_second: config.send_rate_per_second,
                send_burst: config.send_burst,
            },
            call_policy: CallPolicy {
                ring_timeout: config.call_ring_timeout,
                rejoin_grace: config.call_rejoin_grace,
                ..CallPolicy::default()
            },
            hub,
            bus,
            metrics: metrics.clone(),
        });
        let turn_secret =
            turn::secret::load_or_create(store.as_ref(), config.turn_secret.as_deref())
                .await
                .map_err(|source| StartError::Store {
                    url: config.database_url.clone(),
                    source,
                })?;
        let turn = if config.turn_enabled {
            Some(
                TurnServer::start(
                    TurnSettings::from_config(&config),
                    turn_secret.clone(),
                    tls.as_ref().map(Tls::turn_server_config),
                    metrics.clone(),
                    shutdown.clone(),
                )
                .await
                .map_err(StartError::Turn)?,
            )
        } else {
            None
        };
        let embedded = turn.as_ref().map(|turn| EmbeddedTurn {
            port: turn.udp_tcp_addr().port(),
            tls_port: turn.tls_addr().map(|addr| addr.port()),
        });
        let ice_servers = Arc::new(IceServerList::new(&config, turn_secret, embedded));
        let state = AppState {
            config: Arc::new(config),
            store,
            clock,
            accounts,
            relay,
            metrics,
            ice_servers,
            shutdown: shutdown.clone(),
        };
        Ok(Self {
            listener,
            tls,
            redirect_listener,
            state,
            shutdown,
            turn,
        })
    }

    /// The server's TLS (certificate, fingerprint, rustls configs), when it terminates TLS.
    pub fn tls(&self) -> Option<Tls> {
        self.tls.clone()
    }

    /// `https://<addr>` with TLS on, else `http://<addr>`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.local_addr())
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Where `http_redirect_listen` listens, when set.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where the embedded TURN server listens, when it runs.
    pub fn turn(&self) -> Option<TurnInfo> {
        self.turn.as_ref().map(|turn| turn.info().clone())
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    pub fn accounts(&self) -> Accounts {
        self.state.accounts.clone()
    }

    /// Cancelling this token stops the server (what Ctrl-C and SIGTERM do).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then gives open requests
    /// `shutdown_grace` to finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            listener,
            tls,
            redirect_listener,
            state,
            shutdown,
            turn,
        } = self;
        let config = state.config.clone();
        let cleanup_task = tokio::spawn(cleanup::run(
            state.store.clone(),
            state.clock.clone(),
            state.relay.clone(),
            Retention {
                consumed: config.consumed_retention,
                unconsumed: config.unconsumed_retention,
            },
            config.cleanup_interval,
            shutdown.clone(),
        ));
        let router = http::router(state);
        let https_port = listener.local_addr()?.port();
        let redirect_task = redirect_listener.map(|redirect| {
            tracing::info!(
                "redirecting plain HTTP on {} to https",
                redirect
                    .local_addr()
                    .map_or_else(|e| e.to_string(), |a| a.to_string())
            );
            tokio::spawn(serve(
                redirect,
                crate::tls::redirect::router(https_port),
                shutdown.clone(),
                config.shutdown_grace,
            ))
        });
        let result = match tls {
            Some(tls) => {
                let watch = tokio::spawn(
                    tls.clone()
                        .watch(config.tls_reload_interval, shutdown.clone()),
                );
                tracing::info!(
                    fingerprint = %tls.fingerprint(),
                    "Switchboard listening on https://{}",
                    listener.local_addr()?
                );
                let listener = TlsListener::new(listener, tls.server_config());
                let result = serve(listener, router, shutdown.clone(), config.shutdown_grace).await;
                watch.abort();
                result
            }
            None => {
                tracing::info!("Switchboard listening on http://{}", listener.local_addr()?);
                // Signals are small writes that must leave at once: without TCP_NODELAY a push
                // can wait for the client's delayed ACK (~40 ms on Linux) behind Nagle's algorithm.
                let listener = listener.tap_io(|tcp| {
                    if let Err(err) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %err, "could not set TCP_NODELAY");
                    }
                });
                serve(listener, router, shutdown.clone(), config.shutdown_grace).await
            }
        };
        if let Some(task) = redirect_task {
            task.abort();
        }
        cleanup_task.abort();
        if let Some(turn) = turn {
            // The token is cancelled by now; the TURN server closes its allocations.
            let _ = tokio::time::timeout(config.shutdown_grace, turn.stopped()).await;
        }
        tracing::info!("Switchboard stopped");
        result
    }
}

/// Serves `router` on `listener` until `shutdown`, then gives open requests `grace` to finish.
async fn serve<L>(
    listener: L,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()>
where
    L: Listener,
    L::Addr: Debug,
{
    let graceful = {
        let shutdown = shutdown.clone();
        async move { shutdown.cancelled().await }
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(graceful);
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => result,
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("shutdown grace of {grace:?} elapsed; closing remaining connections");
            Ok(())
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn termination_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
