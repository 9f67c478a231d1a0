//! The embedded STUN/TURN server against an independent client: `turnutils_uclient` and
//! `turnutils_peer` from Debian's `coturn` package (`apt-get install -y coturn`).

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    let addr = app.turn.as_ref().expect("the TURN server runs").udp_tcp_addr;
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
            rest.split_whitespace().next()?.trim_matches(':').parse().ok()
        })
    }

    fn received_packets(&self) -> Option<u64> {
        self.summary("Total receive packets")
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
        .unwrap_or_else(|_| panic!("turnutils_uclient {args:?} ran longer than {UCLIENT_TIMEOUT:?}"))
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
        &["-e", "127.0.0.1", "-r", &peer.port.to_string(), "-n", "20", "-l", "200", "-z", "5"],
    ))
    .await;
    eprintln!("{}", run.output);
    assert!(run.success, "{}", run.output);
    assert_eq!(run.lost_packets(), Some(0), "{}", run.output);
    assert!(
        metric(&app, "switchboard_turn_relayed_packets_total{direction=\"to_peer\"}") >= 20.0,
        "{}\n{}",
        run.output,
        app.metrics.encode()
    );
}
