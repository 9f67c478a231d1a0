//! The embedded STUN/TURN server and the TURN REST credentials it shares with the HTTP API.
//!
//! - [`credentials`]: mint and check `<expiry>:<user id>` usernames (coturn's scheme).
//! - [`secret`]: the shared secret, configured or generated once and kept in the store.
//! - [`ice_servers`]: what `GET /api/p2p/ice-servers/` returns to a browser.
//!
//! # Design
//! The protocol is webrtc-rs's `turn` server, unmodified: it relays through real UDP sockets,
//! so a relay reaches any peer (another Switchboard node, a browser on the internet). What it
//! lacks is added *around* it, through its two extension points:
//!
//! - **The listening conns** (`Conn`s the server reads packets from) are wrapped in a
//!   [`guard::GuardConn`]. The guard decodes each request with the `stun`/`turn` crates and
//!   answers itself when the server must not act: 403 to a CreatePermission/ChannelBind naming a
//!   denied peer (coturn's `denied-peer-ip`), 486 past the per-user quota. It rewrites LIFETIME
//!   to the configured cap and re-signs the request (it knows the user's key), checks
//!   MESSAGE-INTEGRITY to count bad signatures, and drops malformed input before the server
//!   sees it. On the way out it watches Allocate answers to keep the quota's ledger.
//! - **TCP and TLS** ([`stream::StreamConn`]): the server only reads packets, so streams are cut
//!   into STUN/ChannelData messages (RFC 5766 §2.1) and presented as one more packet `Conn`,
//!   guarded like the UDP socket. TCP shares the UDP port; TLS listens on `turn_tls_listen`
//!   with the same (reloading) rustls config as HTTPS.
//! - **The relay sockets** come from [`relay::RelayGenerator`], which wraps the crate's port
//!   range generator: each socket refuses denied peers both ways (defence in depth behind the
//!   guard), applies `turn_max_bitrate`, and counts relayed bytes and packets. This server's own
//!   relay addresses are exempt from the policy, so two clients relaying through it reach each
//!   other even when the relay address is private.
//! - **Credentials** ([`auth`]): TURN REST (see [`credentials`]); a client address that holds
//!   an allocation may go on with expired credentials, so calls survive their expiry.

mod auth;
pub mod credentials;
mod guard;
pub mod ice_servers;
pub mod policy;
mod relay;
pub mod secret;
mod stream;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use turn::server::config::{ConnConfig, ServerConfig};
use turn::server::Server;
use webrtc_util::Conn;

use self::auth::{Counters, Credentials, Ledger, RestAuth};
use self::credentials::TurnSecret;
use self::guard::{Gate, GuardConn};
use self::policy::PeerPolicy;
use self::relay::RelayGenerator;
use self::stream::StreamConn;
use crate::metrics::Metrics;
use crate::Config;

/// What the TURN server needs from the configuration.
#[derive(Debug, Clone)]
pub struct TurnSettings {
    /// UDP and TCP, same port; port 0 picks one free for both.
    pub listen: SocketAddr,
    /// TURN over TLS, used only when a TLS config is given.
    pub tls_listen: SocketAddr,
    pub relay_port_min: u16,
    pub relay_port_max: u16,
    pub external_ip: Option<IpAddr>,
    pub realm: String,
    pub user_quota: usize,
    pub allocation_lifetime: Duration,
    /// Bits per second per allocation.
    pub max_bitrate: Option<u64>,
    pub allow_loopback_peers: bool,
    pub allow_private_peers: bool,
}

impl TurnSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            listen: config.turn_listen,
            tls_listen: config.turn_tls_listen,
            relay_port_min: config.turn_relay_port_min,
            relay_port_max: config.turn_relay_port_max,
            external_ip: config.turn_external_ip,
            realm: config.turn_realm.clone(),
            user_quota: config.turn_user_quota,
            allocation_lifetime: config.turn_allocation_lifetime,
            max_bitrate: config.turn_max_bitrate,
            allow_loopback_peers: config.turn_allow_loopback_peers,
            allow_private_peers: config.turn_allow_private_peers,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("cannot bind the TURN {transport} listener on {addr}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the TURN relay port range {min}-{max} is empty or starts at 0")]
    PortRange { min: u16, max: u16 },
    #[error("cannot start the TURN server")]
    Server(#[source] turn::Error),
    #[error("cannot start the TURN server's thread")]
    Thread(#[source] std::io::Error),
}

/// Where a running TURN server can be reached (for `/api/p2p/ice-servers/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnInfo {
    /// UDP and TCP (`turn:` / `stun:`).
    pub udp_tcp_addr: SocketAddr,
    /// TLS (`turns:`), when TLS is configured.
    pub tls_addr: Option<SocketAddr>,
    /// The IP relay addresses are advertised at.
    pub relay_ip: IpAddr,
    pub realm: String,
}

/// A running TURN server; it stops when the shutdown token given to [`TurnServer::start`] is
/// cancelled.
pub struct TurnServer {
    info: TurnInfo,
    stopped: oneshot::Receiver<()>,
}

/// The server as it runs on its own thread.
struct Running {
    info: TurnInfo,
    task: JoinHandle<()>,
}

/// Tries to find a port free for both UDP and TCP when the listen port is 0.
const PORT_ATTEMPTS: usize = 8;
/// Receive buffer of the UDP listener. Every client's packets queue on this one socket while
/// the server's single read loop works: with the kernel's default (208 KiB) 50 flows × 1 Mbit/s
/// lost 11 % of their packets in bench/turn/relay.sh, with 4 MiB none. The kernel caps it at
/// `net.core.rmem_max`.
const UDP_RECV_BUFFER: usize = 4 << 20;

impl TurnServer {
    /// Binds the UDP and TCP (and, with `tls`, TLS) listeners and starts serving.
    ///
    /// The server runs on a thread of its own with a single-threaded runtime. The crate handles
    /// each packet in tasks (one per listener, one per relay socket); on the shared multi-thread
    /// runtime a packet often woke a task on the other worker, and parking and context switches
    /// were ~13 % of its CPU. On one thread the same load cost 6 % less CPU per relayed packet
    /// (bench/turn/relay.sh, docs/BENCHMARKS.md); one core relays about 1 Gbit/s of calls at
    /// that cost, and the signal path keeps its own workers.
    pub async fn start(
        settings: TurnSettings,
        secret: TurnSecret,
        tls: Option<Arc<rustls::ServerConfig>>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<Self, TurnError> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stopped_tx, stopped) = oneshot::channel();
        std::thread::Builder::new()
            .name("switchboard-turn".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(source) => {
                        let _ = ready_tx.send(Err(TurnError::Thread(source)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match Self::run(settings, secret, tls, metrics, shutdown).await {
                        Ok(running) => {
                            let _ = ready_tx.send(Ok(running.info));
                            let _ = running.task.await;
                        }
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                        }
                    }
                });
                // The runtime is dropped here, and with it every listener and relay socket.
                drop(runtime);
                let _ = stopped_tx.send(());
            })
            .map_err(TurnError::Thread)?;
        let info = ready_rx.await.map_err(|_| {
            TurnError::Thread(std::io::Error::other(
                "the TURN thread ended while starting",
            ))
        })??;
        Ok(Self { info, stopped })
    }

    /// Binds and serves on the current runtime until `shutdown`.
    async fn run(
        settings: TurnSettings,
        secret: TurnSecret,
        tls: Option<Arc<rustls::ServerConfig>>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<Running, TurnError> {
        let (min, max) = (settings.relay_port_min, settings.relay_port_max);
        if min == 0 || max < min {
            return Err(TurnError::PortRange { min, max });
        }
        let (udps, tcp) = bind_udp_and_tcp(settings.listen).await?;
        for (udp, _) in &udps {
            if let Err(error) = socket2::SockRef::from(udp).set_recv_buffer_size(UDP_RECV_BUFFER) {
                tracing::warn!(%error, "cannot enlarge the TURN UDP receive buffer");
            }
        }
        let udp_tcp_addr = tcp.local_addr().map_err(|source| TurnError::Bind {
            transport: "tcp",
            addr: settings.listen,
            source,
        })?;
        let tls_listener =
            match &tls {
                None => None,
                Some(_) => Some(TcpListener::bind(settings.tls_listen).await.map_err(
                    |source| TurnError::Bind {
                        transport: "tls",
                        addr: settings.tls_listen,
                        source,
                    },
                )?),
            };
        let tls_addr = tls_listener.as_ref().and_then(|l| l.local_addr().ok());

        let bind_ip = settings.listen.ip();
        let relay_ip = settings.external_ip.unwrap_or_else(|| {
            if bind_ip.is_unspecified() {
                first_non_loopback_ipv4()
            } else {
                bind_ip
            }
        });
        // Relay sockets send from the address they advertise (unless behind a 1:1 NAT, where the
        // advertised address is not ours): one bound to 0.0.0.0 would send from whichever
        // address the route to the peer picks, and a peer (or its NAT) that was told the relay
        // is at `relay_ip` drops packets from another address.
        let relay_bind_ip = if !bind_ip.is_unspecified() {
            bind_ip
        } else if settings.external_ip.is_none() {
            relay_ip
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };

        let counters = Arc::new(Counters::new(&metrics.turn));
        let ledger = Arc::new(Ledger::default());
        let credentials = Arc::new(Credentials {
            secret,
            ledger: ledger.clone(),
            counters: counters.clone(),
        });
        let policy = PeerPolicy::new(settings.allow_loopback_peers, settings.allow_private_peers);
        let gate = Arc::new(Gate::new(
            credentials.clone(),
            policy.clone(),
            settings.user_quota,
            settings.allocation_lifetime,
        ));
        // A stream carries at least a Refresh per lifetime; one silent for longer is dead.
        let idle_timeout = settings.allocation_lifetime + Duration::from_secs(60);

        // Each listener with the relay address and bind address of its relay sockets. A UDP
        // socket of one local address relays from that address: the client reached it there.
        let mut listeners: Vec<(Arc<dyn Conn + Send + Sync>, IpAddr, IpAddr)> = Vec::new();
        for (udp, local_ip) in udps {
            let relay = settings.external_ip.unwrap_or(local_ip);
            listeners.push((Arc::new(udp), relay, local_ip));
        }
        listeners.push((
            Arc::new(
                StreamConn::start(tcp, None, idle_timeout, counters.clone(), &shutdown).map_err(
                    |source| TurnError::Bind {
                        transport: "tcp",
                        addr: udp_tcp_addr,
                        source,
                    },
                )?,
            ),
            relay_ip,
            relay_bind_ip,
        ));
        if let (Some(listener), Some(config)) = (tls_listener, tls) {
            // The HTTPS config offers h2/http1.1 by ALPN; a TURN client offering something else
            // (RFC 7443's "stun.turn") would be refused. Without ALPN the server ignores the
            // client's list. The certificate resolver is shared, so reloads still apply.
            let mut config = (*config).clone();
            config.alpn_protocols.clear();
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            listeners.push((
                Arc::new(
                    StreamConn::start(
                        listener,
                        Some(acceptor),
                        idle_timeout,
                        counters.clone(),
                        &shutdown,
                    )
                    .map_err(|source| TurnError::Bind {
                        transport: "tls",
                        addr: settings.tls_listen,
                        source,
                    })?,
                ),
                relay_ip,
                relay_bind_ip,
            ));
        }
        let conn_configs = listeners
            .into_iter()
            .map(|(conn, relay_ip, relay_bind_ip)| ConnConfig {
                conn: Arc::new(GuardConn::new(conn, gate.clone())),
                relay_addr_generator: Box::new(RelayGenerator::new(
                    relay_ip,
                    relay_bind_ip,
                    (min, max),
                    policy.clone(),
                    counters.clone(),
                    settings.max_bitrate,
                )),
            })
            .collect();

        let (closed_tx, mut closed_rx) = tokio::sync::mpsc::channel(1024);
        let server = Server::new(ServerConfig {
            conn_configs,
            realm: settings.realm.clone(),
            auth_handler: Arc::new(RestAuth(credentials)),
            // Zero = the crate's default (10 minutes), as coturn.
            channel_bind_timeout: Duration::ZERO,
            alloc_close_notify: Some(closed_tx),
        })
        .await
        .map_err(TurnError::Server)?;

        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    closed = closed_rx.recv() => match closed {
                        Some(info) => ledger.closed(info.five_tuple.src_addr),
                        None => break,
                    },
                    () = shutdown.cancelled() => break,
                }
            }
            if let Err(error) = server.close().await {
                tracing::warn!(%error, "TURN server did not close cleanly");
            }
        });

        match tls_addr {
            Some(tls_addr) => tracing::info!(
                "TURN listening on udp+tcp {udp_tcp_addr} (relay {relay_ip}:{min}-{max}), tls {tls_addr}"
            ),
            None => tracing::info!(
                "TURN listening on udp+tcp {udp_tcp_addr} (relay {relay_ip}:{min}-{max})"
            ),
        }
        Ok(Running {
            info: TurnInfo {
                udp_tcp_addr,
                tls_addr,
                relay_ip,
                realm: settings.realm,
            },
            task,
        })
    }

    pub fn info(&self) -> &TurnInfo {
        &self.info
    }

    pub fn udp_tcp_addr(&self) -> SocketAddr {
        self.info.udp_tcp_addr
    }

    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.info.tls_addr
    }

    pub fn relay_ip(&self) -> IpAddr {
        self.info.relay_ip
    }

    /// Waits until the server has stopped (after the shutdown token was cancelled).
    pub async fn stopped(self) {
        let _ = self.stopped.await;
    }
}

/// UDP and TCP on the same port. With port 0 the first UDP socket picks it, and TCP (or another
/// address's UDP socket) may find it taken by another program: then all are tried again on
/// another port.
///
/// On an unspecified address (`0.0.0.0`, `[::]`) TCP listens there, but UDP gets one socket per
/// local address of that family: a UDP socket bound to the unspecified address answers from
/// whichever address the route back picks, and on a host with several addresses a client
/// (a browser checks) drops TURN answers from another address than the one it asked. coturn
/// listens per address for the same reason. Addresses added after start are not listened on.
async fn bind_udp_and_tcp(
    listen: SocketAddr,
) -> Result<(Vec<(UdpSocket, IpAddr)>, TcpListener), TurnError> {
    let ips = if listen.ip().is_unspecified() {
        local_addresses(listen.ip().is_ipv4())
    } else {
        vec![listen.ip()]
    };
    let mut attempt = 0;
    'attempt: loop {
        attempt += 1;
        let mut port = listen.port();
        let mut udps = Vec::with_capacity(ips.len());
        for &ip in &ips {
            let addr = SocketAddr::new(ip, port);
            match UdpSocket::bind(addr).await {
                Ok(udp) => {
                    if port == 0 {
                        port = udp
                            .local_addr()
                            .map_err(|source| TurnError::Bind {
                                transport: "udp",
                                addr,
                                source,
                            })?
                            .port();
                    }
                    udps.push((udp, ip));
                }
                Err(error)
                    if listen.port() == 0
                        && error.kind() == std::io::ErrorKind::AddrInUse
                        && attempt < PORT_ATTEMPTS =>
                {
                    continue 'attempt
                }
                Err(source) => {
                    return Err(TurnError::Bind {
                        transport: "udp",
                        addr,
                        source,
                    })
                }
            }
        }
        let addr = SocketAddr::new(listen.ip(), port);
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udps, tcp)),
            Err(error)
                if listen.port() == 0
                    && error.kind() == std::io::ErrorKind::AddrInUse
                    && attempt < PORT_ATTEMPTS => {}
            Err(source) => {
                return Err(TurnError::Bind {
                    transport: "tcp",
                    addr,
                    source,
                })
            }
        }
    }
}

/// Every local address of one family, loopback included (a browser on this machine asks there).
fn local_addresses(ipv4: bool) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|iface| iface.ip())
        .filter(|ip| ip.is_ipv4() == ipv4)
        // Link-local IPv6 addresses need a scope id to bind; browsers do not use them for TURN.
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
        .collect();
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        ips.push(if ipv4 {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        });
    }
    ips
}

/// The relay address when listening on every interface: the first non-loopback IPv4 address,
/// else 127.0.0.1 (a machine without a network can still relay to itself).
fn first_non_loopback_ipv4() -> IpAddr {
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|iface| !iface.is_loopback())
        .map(|iface| iface.ip())
        .find(IpAddr::is_ipv4)
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}
