//! The embedded STUN/TURN server against an independent client: `turnutils_uclient` and
//! `turnutils_peer` from Debian's `coturn` package (`apt-get install -y coturn`).

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stun::agent::TransactionId;
use stun::attributes::ATTR_USERNAME;
use stun::error_code::ErrorCodeAttribute;
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{
    Getter, Message, MessageType, Setter, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE,
    METHOD_BINDING, METHOD_REFRESH,
};
use stun::textattrs::{Nonce, Realm, Username};
use switchboard::metrics::Metrics;
use switchboard::turn::{TurnServer, TurnSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use turn::proto::lifetime::Lifetime;
use turn::proto::reqtrans::RequestedTransport;
use turn::proto::PROTO_UDP;

use switchboard::domain::UserId;
use switchboard::turn::credentials::{self, Credentials, TurnSecret};
use switchboard::Config;
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};

use crate::helpers::{spawn_app_with, TestApp};

const SECRET: &str = "turn-test-secret";
/// One uclient run; a healthy one takes a second or two.
const UCLIENT_TIMEOUT: Duration = Duration::from_secs(60);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn mint(user: i64, ttl_secs: u64) -> Credentials {
    credentials::mint(&TurnSecret::new(SECRET), UserId(user), now(), ttl_secs)
}

async fn turn_app(tweak: impl FnOnce(&mut Config)) -> (TestApp, SocketAddr) {
    let app = spawn_app_with(|c| {
        c.turn_enabled = true;
        c.turn_listen = "127.0.0.1:0".parse().unwrap();
        c.turn_secret = Some(SECRET.to_owned());
        tweak(c);
    })
    .await;
    let addr = app
        .turn
        .as_ref()
        .expect("the TURN server runs")
        .udp_tcp_addr;
    (app, addr)
}

fn binary(name: &str) -> String {
    let path = format!("/usr/bin/{name}");
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install Debian's coturn package (apt-get install -y coturn)"
    );
    path
}

/// A `turnutils_peer` UDP echo on 127.0.0.1, ready when it has echoed a probe.
struct Peer {
    port: u16,
    _child: Child,
}

async fn start_peer() -> Peer {
    let port = {
        let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        probe.local_addr().unwrap().port()
    };
    let child = Command::new(binary("turnutils_peer"))
        .args(["-L", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("turnutils_peer starts");
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..100 {
        probe.send_to(b"ping", ("127.0.0.1", port)).await.unwrap();
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(100), probe.recv_from(&mut buf)).await
        {
            if &buf[..n] == b"ping" {
                return Peer {
                    port,
                    _child: child,
                };
            }
        }
    }
    panic!("turnutils_peer on 127.0.0.1:{port} never echoed");
}

/// What one `turnutils_uclient` run printed.
struct Run {
    success: bool,
    output: String,
}

impl Run {
    /// `Total lost packets N (x%)`, the summary's loss line.
    fn lost_packets(&self) -> Option<u64> {
        self.summary("Total lost packets")
    }

    fn summary(&self, prefix: &str) -> Option<u64> {
        self.output.lines().find_map(|line| {
            let rest = line.split(prefix).nth(1)?;
            rest.split_whitespace()
                .next()?
                .trim_matches(':')
                .parse()
                .ok()
        })
    }

    /// The final `tot_send_msgs=N, tot_recv_msgs=M` of the summary.
    fn totals(&self) -> Option<(u64, u64)> {
        let line = self
            .output
            .lines()
            .rev()
            .find(|line| line.contains("tot_send_msgs=") && !line.contains("msz="))?;
        let value = |key: &str| -> Option<u64> {
            let rest = line.split(key).nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        Some((value("tot_send_msgs=")?, value("tot_recv_msgs=")?))
    }
}

async fn uclient(args: &[String]) -> Run {
    let child = Command::new(binary("turnutils_uclient"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("turnutils_uclient starts");
    let output = tokio::time::timeout(UCLIENT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!("turnutils_uclient {args:?} ran longer than {UCLIENT_TIMEOUT:?}")
        })
        .unwrap();
    Run {
        success: output.status.success(),
        output: format!(
            "uclient {args:?} exited with {}\n--- stdout\n{}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// uclient arguments: credentials, a server port, peer, messages.
fn client_args(server: SocketAddr, creds: &Credentials, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-u".into(),
        creds.username.clone(),
        "-w".into(),
        creds.credential.clone(),
        "-p".into(),
        server.port().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(server.ip().to_string());
    args
}

fn metric(app: &TestApp, series: &str) -> f64 {
    app.metrics
        .encode()
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_valid_credential_relays_over_udp_to_a_loopback_peer_when_allowed() {
    let (app, server) = turn_app(|c| c.turn_allow_loopback_peers = true).await;
    let peer = start_peer().await;
    let creds = mint(1, 600);
    let run = uclient(&client_args(
        server,
        &creds,
        &[
            "-e",
            "127.0.0.1",
            "-r",
            &peer.port.to_string(),
            "-n",
            "20",
            "-l",
            "200",
            "-z",
            "5",
        ],
    ))
    .await;
    assert!(run.success, "{}", run.output);
    assert_eq!(run.lost_packets(), Some(0), "{}", run.output);
    assert!(
        metric(
            &app,
            "switchboard_turn_relayed_packets_total{direction=\"to_peer\"}"
        ) >= 20.0,
        "{}\n{}",
        run.output,
        app.metrics.encode()
    );
}

fn relay_to_peer_args(peer: &Peer) -> Vec<String> {
    [
        "-e",
        "127.0.0.1",
        "-r",
        &peer.port.to_string(),
        "-n",
        "20",
        "-l",
        "200",
        "-z",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test]
async fn a_valid_credential_relays_over_tcp_to_a_loopback_peer_when_allowed() {
    let (app, server) = turn_app(|c| c.turn_allow_loopback_peers = true).await;
    let peer = start_peer().await;
    let mut extra = vec!["-t".to_owned()];
    extra.extend(relay_to_peer_args(&peer));
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let run = uclient(&client_args(server, &mint(1, 600), &extra)).await;
    assert!(run.success, "{}", run.output);
    assert_eq!(run.lost_packets(), Some(0), "{}", run.output);
    assert_eq!(run.totals(), Some((40, 40)), "{}", run.output);
    assert!(
        metric(
            &app,
            "switchboard_turn_relayed_packets_total{direction=\"to_client\"}"
        ) >= 20.0
    );
}

/// A rustls server config with a fresh self-signed certificate for `localhost`, offering the
/// ALPN protocols of the HTTPS server it is shared with.
fn self_signed_tls() -> Arc<rustls::ServerConfig> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key.into())
    .unwrap();
    let mut config = config;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

fn test_settings() -> TurnSettings {
    TurnSettings::from_config(&Config {
        turn_listen: "127.0.0.1:0".parse().unwrap(),
        turn_tls_listen: "127.0.0.1:0".parse().unwrap(),
        turn_allow_loopback_peers: true,
        ..Config::default()
    })
}

#[tokio::test]
async fn a_valid_credential_relays_over_tls_to_a_loopback_peer_when_allowed() {
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let metrics = Arc::new(Metrics::default());
    let turn = TurnServer::start(
        test_settings(),
        TurnSecret::new(SECRET),
        Some(self_signed_tls()),
        metrics.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let tls = turn.tls_addr().expect("TLS is on");
    assert_ne!(tls.port(), turn.udp_tcp_addr().port());
    let peer = start_peer().await;
    let mut extra = vec!["-t".to_owned(), "-S".to_owned()];
    extra.extend(relay_to_peer_args(&peer));
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let run = uclient(&client_args(tls, &mint(1, 600), &extra)).await;
    assert!(run.success, "{}", run.output);
    assert_eq!(run.lost_packets(), Some(0), "{}", run.output);
    assert_eq!(run.totals(), Some((40, 40)), "{}", run.output);
}

#[tokio::test]
async fn expired_foreign_and_malformed_credentials_are_refused_and_counted() {
    let (app, server) = turn_app(|c| c.turn_allow_loopback_peers = true).await;
    let peer = start_peer().await;
    let extra = relay_to_peer_args(&peer);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let secret = TurnSecret::new(SECRET);
    let expired = credentials::mint(&secret, UserId(1), now() - 100, 10);
    let foreign = credentials::mint(&TurnSecret::new("another secret"), UserId(1), now(), 600);
    let malformed = Credentials {
        username: "bob".to_owned(),
        credential: credentials::password(&secret, "bob"),
        expires_at: 0,
    };
    for (creds, reason) in [
        (expired, "expired"),
        (foreign, "bad_signature"),
        (malformed, "malformed"),
    ] {
        let series = format!("switchboard_turn_auth_failures_total{{reason=\"{reason}\"}}");
        let before = metric(&app, &series);
        let run = uclient(&client_args(server, &creds, &extra)).await;
        // The server refuses the Allocate (400, the webrtc-rs answer to refused credentials).
        assert!(!run.success, "{reason}: {}", run.output);
        assert!(run.output.contains("error 400"), "{reason}: {}", run.output);
        assert!(
            metric(&app, &series) > before,
            "{series} did not move\n{}\n{}",
            run.output,
            app.metrics.encode()
        );
    }
    assert_eq!(metric(&app, "switchboard_turn_allocations"), 0.0);
}

#[tokio::test]
async fn by_default_relaying_to_loopback_and_private_peers_is_refused() {
    let (app, server) = turn_app(|_| {}).await;
    let peer = start_peer().await;
    for host in ["127.0.0.1", "10.0.0.1"] {
        let before = metric(&app, "switchboard_turn_peers_denied_total");
        let port = peer.port.to_string();
        let run = uclient(&client_args(
            server,
            &mint(1, 600),
            &["-e", host, "-r", &port, "-n", "10", "-z", "5"],
        ))
        .await;
        // uclient gives up on the 403 Forbidden to its ChannelBind.
        assert!(!run.success, "{host}: {}", run.output);
        assert!(run.output.contains("403"), "{host}: {}", run.output);
        assert!(
            metric(&app, "switchboard_turn_peers_denied_total") > before,
            "{host}: the denied counter did not move\n{}\n{}",
            run.output,
            app.metrics.encode()
        );
    }
    assert_eq!(
        metric(
            &app,
            "switchboard_turn_relayed_packets_total{direction=\"to_peer\"}"
        ),
        0.0
    );
}

/// A minimal TURN client over UDP built from the `stun`/`turn` crates' messages, for what
/// uclient does not show (the LIFETIME granted, a Refresh after the credentials expired).
struct RawClient {
    socket: UdpSocket,
    server: SocketAddr,
    creds: Credentials,
    realm: String,
    nonce: String,
}

impl RawClient {
    async fn new(server: SocketAddr, creds: Credentials) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Self {
            socket,
            server,
            creds,
            realm: String::new(),
            nonce: String::new(),
        }
    }

    async fn exchange(&self, setters: Vec<Box<dyn Setter>>) -> Message {
        let mut request = Message::new();
        request.build(&setters).unwrap();
        let mut buf = vec![0u8; 1500];
        for _ in 0..5 {
            self.socket
                .send_to(&request.raw, self.server)
                .await
                .unwrap();
            let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_secs(1), self.socket.recv_from(&mut buf)).await
            else {
                continue;
            };
            let mut response = Message {
                raw: buf[..n].to_vec(),
                ..Default::default()
            };
            response.decode().unwrap();
            if response.transaction_id == request.transaction_id {
                return response;
            }
        }
        panic!("no answer from the TURN server at {}", self.server);
    }

    /// A signed request; the first one learns the realm and nonce from the 401.
    async fn request(
        &mut self,
        method: stun::message::Method,
        extra: Vec<Box<dyn Setter>>,
    ) -> Message {
        if self.nonce.is_empty() {
            let mut setters: Vec<Box<dyn Setter>> = vec![
                Box::new(TransactionId::new()),
                Box::new(MessageType::new(method, CLASS_REQUEST)),
                Box::new(RequestedTransport {
                    protocol: PROTO_UDP,
                }),
            ];
            setters.push(Box::new(FINGERPRINT));
            let challenge = self.exchange(setters).await;
            let mut realm = Realm::new(stun::attributes::ATTR_REALM, String::new());
            realm.get_from(&challenge).unwrap();
            let mut nonce = Nonce::new(stun::attributes::ATTR_NONCE, String::new());
            nonce.get_from(&challenge).unwrap();
            self.realm = realm.text;
            self.nonce = nonce.text;
        }
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(method, CLASS_REQUEST)),
        ];
        setters.extend(extra);
        setters.push(Box::new(Username::new(
            ATTR_USERNAME,
            self.creds.username.clone(),
        )));
        setters.push(Box::new(Realm::new(
            stun::attributes::ATTR_REALM,
            self.realm.clone(),
        )));
        setters.push(Box::new(Nonce::new(
            stun::attributes::ATTR_NONCE,
            self.nonce.clone(),
        )));
        setters.push(Box::new(MessageIntegrity::new_long_term_integrity(
            self.creds.username.clone(),
            self.realm.clone(),
            self.creds.credential.clone(),
        )));
        setters.push(Box::new(FINGERPRINT));
        self.exchange(setters).await
    }

    async fn allocate(&mut self, lifetime: Option<Duration>) -> Message {
        let mut extra: Vec<Box<dyn Setter>> = vec![Box::new(RequestedTransport {
            protocol: PROTO_UDP,
        })];
        if let Some(lifetime) = lifetime {
            extra.push(Box::new(Lifetime(lifetime)));
        }
        self.request(METHOD_ALLOCATE, extra).await
    }

    async fn refresh(&mut self, lifetime: Duration) -> Message {
        self.request(METHOD_REFRESH, vec![Box::new(Lifetime(lifetime))])
            .await
    }
}

fn lifetime_of(response: &Message) -> Duration {
    let mut lifetime = Lifetime::default();
    lifetime.get_from(response).unwrap();
    lifetime.0
}

fn error_code_of(response: &Message) -> Option<u16> {
    let mut code = ErrorCodeAttribute::default();
    code.get_from(response).ok().map(|()| code.code.0)
}

#[tokio::test]
async fn the_allocation_lifetime_granted_is_capped() {
    let (_app, server) = turn_app(|c| c.turn_allocation_lifetime = Duration::from_secs(30)).await;
    for asked in [
        Some(Duration::from_secs(3000)),
        Some(Duration::from_secs(900)),
        None,
    ] {
        let mut client = RawClient::new(server, mint(1, 600)).await;
        let allocated = client.allocate(asked).await;
        assert_eq!(
            allocated.typ.class, CLASS_SUCCESS_RESPONSE,
            "{asked:?}: {allocated}"
        );
        assert_eq!(
            lifetime_of(&allocated),
            Duration::from_secs(30),
            "{asked:?}"
        );
        let refreshed = client.refresh(Duration::from_secs(3000)).await;
        assert_eq!(refreshed.typ.class, CLASS_SUCCESS_RESPONSE, "{refreshed}");
        assert_eq!(lifetime_of(&refreshed), Duration::from_secs(30));
    }
    // A shorter lifetime than the cap is granted as asked.
    let mut client = RawClient::new(server, mint(1, 600)).await;
    let allocated = client.allocate(Some(Duration::from_secs(20))).await;
    assert_eq!(lifetime_of(&allocated), Duration::from_secs(20));
}

#[tokio::test]
async fn an_allocation_is_refreshed_after_its_credentials_expired() {
    let (app, server) = turn_app(|c| c.turn_allocation_lifetime = Duration::from_secs(60)).await;
    let creds = mint(1, 2);
    let mut client = RawClient::new(server, creds.clone()).await;
    let allocated = client.allocate(None).await;
    assert_eq!(allocated.typ.class, CLASS_SUCCESS_RESPONSE, "{allocated}");

    // The behaviour under test is the clock passing the expiry, not a synchronisation.
    while now() <= creds.expires_at {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refreshed = client.refresh(Duration::from_secs(60)).await;
    assert_eq!(
        refreshed.typ.class,
        CLASS_SUCCESS_RESPONSE,
        "refresh with expired credentials: {refreshed} (error {:?})",
        error_code_of(&refreshed)
    );
    assert_eq!(metric(&app, "switchboard_turn_allocations"), 1.0);

    // The allocation outlives its credentials for as long as the client keeps refreshing; a
    // Refresh with lifetime 0 (sent with the expired credentials too) ends it.
    let released = client.refresh(Duration::ZERO).await;
    assert_eq!(released.typ.class, CLASS_SUCCESS_RESPONSE, "{released}");
    assert_eq!(metric(&app, "switchboard_turn_allocations"), 0.0);

    // A new allocation with the same expired credentials is refused.
    let mut newcomer = RawClient::new(server, creds).await;
    let refused = newcomer.allocate(None).await;
    assert_ne!(refused.typ.class, CLASS_SUCCESS_RESPONSE, "{refused}");
    assert!(
        metric(
            &app,
            "switchboard_turn_auth_failures_total{reason=\"expired\"}"
        ) >= 1.0
    );
}

#[tokio::test]
async fn malformed_datagrams_and_stream_garbage_are_counted_and_the_server_keeps_serving() {
    let (app, server) = turn_app(|c| c.turn_allow_loopback_peers = true).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    let mut binding = Message::new();
    binding
        .build(&[
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_BINDING, CLASS_REQUEST)),
        ])
        .unwrap();
    let mut huge_length = binding.raw.clone();
    huge_length[2..4].copy_from_slice(&0xfffcu16.to_be_bytes());
    let mut noise = vec![0xffu8; 300];
    let mut x: u32 = 12345;
    for byte in noise.iter_mut().skip(1) {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *byte = (x >> 16) as u8;
    }
    let garbage: Vec<Vec<u8>> = vec![noise, binding.raw[..10].to_vec(), huge_length];
    for datagram in &garbage {
        socket.send_to(datagram, server).await.unwrap();
    }

    // Garbage on the TCP port: the stream is closed, not left hanging.
    let mut tcp = TcpStream::connect(server).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: turn\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("the server closes a garbage stream");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // Still answering: a Binding request over UDP, then a whole allocation with uclient.
    socket.send_to(&binding.raw, server).await.unwrap();
    let mut buf = vec![0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("a Binding answer")
        .unwrap();
    let mut answer = Message {
        raw: buf[..n].to_vec(),
        ..Default::default()
    };
    answer.decode().unwrap();
    assert_eq!(answer.transaction_id, binding.transaction_id);
    assert!(
        metric(&app, "switchboard_turn_malformed_total") >= 4.0,
        "{}",
        app.metrics.encode()
    );

    let peer = start_peer().await;
    let extra = relay_to_peer_args(&peer);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let run = uclient(&client_args(server, &mint(1, 600), &extra)).await;
    assert!(run.success, "{}", run.output);
    assert_eq!(run.lost_packets(), Some(0), "{}", run.output);
}

#[tokio::test]
async fn an_allocation_flood_from_one_user_is_capped_and_others_are_still_served() {
    let (app, server) = turn_app(|c| {
        c.turn_allow_loopback_peers = true;
        c.turn_user_quota = 10;
    })
    .await;
    let peer = start_peer().await;
    let port = peer.port.to_string();
    // 20 clients, one allocation each (-c: no RTCP allocations), all as user 1.
    let flood = uclient(&client_args(
        server,
        &mint(1, 600),
        &[
            "-c",
            "-m",
            "20",
            "-e",
            "127.0.0.1",
            "-r",
            &port,
            "-n",
            "5",
            "-z",
            "5",
        ],
    ))
    .await;
    // uclient stops at its first refusal.
    assert!(flood.output.contains("486"), "{}", flood.output);
    assert!(
        metric(
            &app,
            "switchboard_turn_auth_failures_total{reason=\"quota\"}"
        ) >= 1.0,
        "{}",
        flood.output
    );
    assert!(
        metric(&app, "switchboard_turn_allocations") <= 10.0,
        "{}",
        app.metrics.encode()
    );

    // Counted exactly with one client per allocation: user 3 gets 10, then 486.
    let mut clients = Vec::new();
    for i in 0..12 {
        let mut client = RawClient::new(server, mint(3, 600)).await;
        let answer = client.allocate(None).await;
        if i < 10 {
            assert_eq!(
                answer.typ.class, CLASS_SUCCESS_RESPONSE,
                "allocation {i}: {answer}"
            );
        } else {
            assert_eq!(
                error_code_of(&answer),
                Some(486),
                "allocation {i}: {answer}"
            );
        }
        clients.push(client);
    }

    let other = uclient(&client_args(
        server,
        &mint(2, 600),
        &["-e", "127.0.0.1", "-r", &port, "-n", "20", "-z", "5"],
    ))
    .await;
    assert!(other.success, "{}", other.output);
    assert_eq!(other.lost_packets(), Some(0), "{}", other.output);
}

#[tokio::test]
async fn two_clients_relay_to_each_other_although_the_relay_address_is_a_denied_range() {
    // Default policy: loopback peers are denied, and the relay address here is 127.0.0.1. The
    // server's own relay addresses stay reachable, as on a LAN where they are private.
    let (app, server) = turn_app(|_| {}).await;
    let run = uclient(&client_args(
        server,
        &mint(1, 600),
        &["-y", "-n", "20", "-l", "200", "-z", "5"],
    ))
    .await;
    assert!(run.success, "{}", run.output);
    assert_eq!(run.lost_packets(), Some(0), "{}", run.output);
    assert!(
        metric(
            &app,
            "switchboard_turn_relayed_packets_total{direction=\"to_peer\"}"
        ) >= 20.0,
        "{}",
        app.metrics.encode()
    );
    assert_eq!(metric(&app, "switchboard_turn_peers_denied_total"), 0.0);
}

#[tokio::test]
async fn the_bitrate_cap_drops_what_an_allocation_relays_beyond_it() {
    // 100 kbit/s per allocation: the burst (64 KiB) passes, the rest of ~240 KB sent within a
    // fraction of a second does not.
    let (app, server) = turn_app(|c| {
        c.turn_allow_loopback_peers = true;
        c.turn_max_bitrate = Some(100_000);
    })
    .await;
    let peer = start_peer().await;
    let port = peer.port.to_string();
    let run = uclient(&client_args(
        server,
        &mint(1, 600),
        &[
            "-c",
            "-e",
            "127.0.0.1",
            "-r",
            &port,
            "-n",
            "200",
            "-l",
            "1200",
            "-z",
            "1",
        ],
    ))
    .await;
    let (sent, received) = run.totals().unwrap_or_else(|| panic!("{}", run.output));
    assert_eq!(sent, 200, "{}", run.output);
    // Both directions share the bucket: at most ~64 KiB plus the refill comes back.
    assert!(
        received < 100,
        "{received} of 200 came back\n{}",
        run.output
    );
    let relayed = metric(
        &app,
        "switchboard_turn_relayed_bytes_total{direction=\"to_peer\"}",
    );
    assert!(
        relayed < 120_000.0,
        "{relayed} of 240000 bytes relayed to the peer"
    );
}

#[tokio::test]
async fn a_taken_port_is_a_typed_error_naming_the_address() {
    let taken = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let settings = TurnSettings {
        listen: addr,
        ..test_settings()
    };
    let result = TurnServer::start(
        settings,
        TurnSecret::new(SECRET),
        None,
        Arc::new(Metrics::default()),
        CancellationToken::new(),
    )
    .await;
    match result {
        Err(
            error @ switchboard::turn::TurnError::Bind {
                transport: "udp", ..
            },
        ) => {
            assert!(error.to_string().contains(&addr.to_string()), "{error}");
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("bound a taken port"),
    }
}

#[tokio::test]
async fn with_tls_on_the_app_serves_turns_with_its_https_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}", dir.path().join("turn.db").display()),
        tls_self_signed: true,
        tls_self_signed_dir: dir.path().join("self-signed"),
        turn_enabled: true,
        turn_listen: "127.0.0.1:0".parse().unwrap(),
        turn_tls_listen: "127.0.0.1:0".parse().unwrap(),
        turn_secret: Some(SECRET.to_owned()),
        turn_allow_loopback_peers: true,
        ..Config::default()
    };
    let app = switchboard::App::build(config).await.expect("app builds");
    let turn = app.turn().expect("the TURN server runs");
    let tls = turn.tls_addr.expect("TURN over TLS is on with TLS");
    let shutdown = app.shutdown_token();
    let _stop = shutdown.drop_guard();
    tokio::spawn(app.run_until_stopped());

    let peer = start_peer().await;
    let mut extra = vec!["-t".to_owned(), "-S".to_owned()];
    extra.extend(relay_to_peer_args(&peer));
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let run = uclient(&client_args(tls, &mint(1, 600), &extra)).await;
    assert!(run.success, "{}", run.output);
    assert_eq!(run.lost_packets(), Some(0), "{}", run.output);
}
