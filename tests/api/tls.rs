//! Built-in TLS, spoken to by real TLS clients that trust only the test's certificate: HTTPS
//! with a self-signed certificate, Secure cookies and HSTS, certificate reload under an open
//! WebSocket and SSE stream (by mtime, and by SIGHUP to the real binary), plain HTTP on the TLS port and the
//! redirect listener, and start-up errors for bad certificate files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use switchboard::tls::{fingerprint, Tls};
use switchboard::{App, Config};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::helpers::{register_with, TestUser};
use crate::push_clients::{Closed, SseClient, WsClient};

const WAIT: Duration = Duration::from_secs(20);

/// A server with TLS on, in process, with its own database.
struct TlsApp {
    address: String,
    addr: SocketAddr,
    redirect: Option<SocketAddr>,
    tls: Tls,
    shutdown: CancellationToken,
    _dir: TempDir,
}

impl Drop for TlsApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn spawn_tls_app(tweak: impl FnOnce(&mut Config)) -> TlsApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}", dir.path().join("tls.db").display()),
        turn_enabled: false,
        tls_self_signed_dir: dir.path().join("self-signed"),
        ..Config::default()
    };
    tweak(&mut config);
    let app = App::build(config).await.expect("app builds");
    let tls = app.tls().expect("TLS is on");
    let addr = app.local_addr();
    let redirect = app.redirect_addr();
    let shutdown = app.shutdown_token();
    assert_eq!(app.url(), format!("https://{addr}"));
    tokio::spawn(app.run_until_stopped());
    TlsApp {
        address: format!("https://{addr}"),
        addr,
        redirect,
        tls,
        shutdown,
        _dir: dir,
    }
}

/// The first certificate of a PEM file.
fn pem_certificate(path: &Path) -> CertificateDer<'static> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

/// A browser-like HTTPS client that trusts `root` and nothing else.
fn https_client(root: &CertificateDer<'_>) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_der(root).unwrap())
        .cookie_store(true)
        .build()
        .unwrap()
}

fn rustls_client(root: &CertificateDer<'_>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone().into_owned()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Opens a fresh TLS connection and returns the certificate the server presented.
async fn served_certificate(
    addr: SocketAddr,
    root: &CertificateDer<'_>,
) -> CertificateDer<'static> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(rustls_client(root));
    let tls = tokio::time::timeout(
        WAIT,
        connector.connect(ServerName::IpAddress(addr.ip().into()), tcp),
    )
    .await
    .expect("handshake in time")
    .expect("the server's certificate verifies against the root");
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// A certificate authority of the test's own, so a "renewed" certificate (new key, same issuer)
/// is trusted by the same clients, as after a real renewal.
struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A leaf certificate and key, as PEM, and the certificate's DER.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "Switchboard test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    fn root(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    fn issue(&self) -> Leaf {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// Writes the pair the way certbot and friends do: new files renamed over the old ones.
fn install(leaf: &Leaf, cert: &Path, key: &Path) {
    for (path, contents) in [(key, &leaf.key_pem), (cert, &leaf.cert_pem)] {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
}

fn cert_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("cert.pem"), dir.join("key.pem"))
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn self_signed_https_serves_secure_cookies_and_hsts() {
    let app = spawn_tls_app(|c| {
        c.tls_self_signed = true;
        c.hsts_max_age = Some(Duration::from_secs(31_536_000));
    })
    .await;
    let kept = app.tls.self_signed().expect("self-signed mode").clone();
    assert!(kept.generated);
    assert!(
        kept.names.contains(&"127.0.0.1".to_owned()),
        "{:?}",
        kept.names
    );
    assert!(kept.names.contains(&"localhost".to_owned()));
    let root = pem_certificate(&kept.files.cert);

    // The fingerprint the server reports (and `serve` prints) is the served certificate's.
    let served = served_certificate(app.addr, &root).await;
    assert_eq!(fingerprint(&served), app.tls.fingerprint());
    assert_eq!(served, root);

    let client = https_client(&root);
    let response = client
        .post(format!("{}/api/auth/register", app.address))
        .json(&json!({"username": "alice", "password": "password-of-alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in &cookies {
        assert!(cookie.contains("; Secure"), "{cookie}");
    }
    let me = client
        .get(format!("{}/api/auth/me", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "the Secure cookie comes back over HTTPS"
    );
    let missing = client
        .get(format!("{}/no/such/page", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(
        missing.headers().contains_key("strict-transport-security"),
        "every HTTPS response carries HSTS"
    );

    // Without hsts_max_age, no header; the certificate kept in the directory is reused.
    let dir = kept.files.cert.parent().unwrap().to_owned();
    let plain = spawn_tls_app(|c| {
        c.tls_self_signed = true;
        c.tls_self_signed_dir = dir;
    })
    .await;
    assert!(!plain.tls.self_signed().unwrap().generated, "reused");
    assert_eq!(plain.tls.fingerprint(), app.tls.fingerprint());
    let response = https_client(&root)
        .get(format!("{}/healthz", plain.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn without_tls_cookies_are_not_secure_and_no_hsts_is_sent() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.hsts_max_age = Some(Duration::from_secs(60));
    })
    .await;
    let response = reqwest::Client::new()
        .post(app.url("/api/auth/register"))
        .json(&json!({"username": "alice", "password": "password-of-alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(!response.headers().contains_key("strict-transport-security"));
    for cookie in set_cookies(&response) {
        assert!(!cookie.contains("Secure"), "{cookie}");
    }
}

#[tokio::test]
async fn a_certificate_reload_keeps_open_websockets_and_serves_new_handshakes() {
    let ca = TestCa::new();
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = cert_paths(files.path());
    let first = ca.issue();
    install(&first, &cert, &key);
    let app = spawn_tls_app(|c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
        c.tls_reload_interval = Duration::from_millis(50);
    })
    .await;
    let root = ca.root();
    assert_eq!(served_certificate(app.addr, &root).await, first.der);

    let alice = register_with(https_client(&root), &app.address, "alice").await;
    let bob = register_with(https_client(&root), &app.address, "bob").await;
    let chat = chat_between(&alice, &bob).await;
    let (mut socket, _) = WsClient::connect_tls(&app.address, &bob, 0, rustls_client(&root)).await;
    let mut events = SseClient::connect_with(&https_client(&root), &app.address, &bob, None).await;

    let mut reloads = app.tls.reloads();
    let second = ca.issue();
    install(&second, &cert, &key);
    let counts = *tokio::time::timeout(WAIT, reloads.wait_for(|r| r.loaded + r.failed > 0))
        .await
        .expect("the change is noticed")
        .unwrap();
    assert_eq!(
        (counts.loaded, counts.failed),
        (1, 0),
        "the pair is loaded whole, never half-written"
    );
    assert_eq!(served_certificate(app.addr, &root).await, second.der);
    assert_ne!(second.der, first.der);

    // The WebSocket and the SSE stream handshaken with the old certificate still deliver.
    let (status, body) = alice
        .send_signal(chat, "webrtc.offer", json!({"sdp": "after reload"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let signal = socket.signal().await;
    assert_eq!(signal["type"], "webrtc.offer");
    assert_eq!(signal["payload"]["sdp"], "after reload");
    let pushed = events.signal().await.json();
    assert_eq!(pushed["payload"]["sdp"], "after reload", "{pushed}");

    // A broken file is refused; the certificate in use stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    tokio::time::timeout(WAIT, reloads.wait_for(|r| r.failed == 1))
        .await
        .expect("the change is noticed")
        .unwrap();
    assert_eq!(served_certificate(app.addr, &root).await, second.der);
    socket.ping().await;

    // Graceful shutdown still closes the TLS WebSocket cleanly.
    app.shutdown.cancel();
    assert_eq!(socket.next().await, Err(Closed { code: 1001 }));
}

async fn chat_between(creator: &TestUser, other: &TestUser) -> i64 {
    let (status, body) = creator
        .post("/api/chats/", json!({"participants": [other.username]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

#[tokio::test]
async fn the_websocket_origin_check_accepts_this_servers_https_origin() {
    let app = spawn_tls_app(|c| c.tls_self_signed = true).await;
    let root = pem_certificate(&app.tls.files().cert);
    let bob = register_with(https_client(&root), &app.address, "bob").await;
    let refusal = |origin: String| {
        let connector = tokio_tungstenite::Connector::Rustls(rustls_client(&root));
        let (address, bob) = (app.address.clone(), bob.clone());
        async move {
            WsClient::try_connect_with(&address, &bob, 0, Some(&origin), Some(connector))
                .await
                .err()
        }
    };
    assert_eq!(
        refusal(app.address.clone()).await,
        None,
        "its own https origin"
    );
    assert_eq!(refusal("https://evil.example".into()).await, Some(403));
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_redirected_or_told_and_never_blocks() {
    let app = spawn_tls_app(|c| {
        c.tls_self_signed = true;
        c.http_redirect_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let root = pem_certificate(&app.tls.files().cert);

    // A silent client that never starts its handshake holds up nobody.
    let _silent = TcpStream::connect(app.addr).await.unwrap();

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .get(format!("http://{}/api/chats/?x=1", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        response.headers()["location"],
        format!("https://{}/api/chats/?x=1", app.addr).as_str()
    );

    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"HELLO\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut answer))
        .await
        .expect("answered, not left hanging")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("This port speaks HTTPS"), "{answer}");

    // The redirect listener sends every request to the same path over HTTPS.
    let redirect = app.redirect.expect("http_redirect_listen is bound");
    let response = no_redirects
        .post(format!("http://{redirect}/api/auth/login?next=%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        response.headers()["location"],
        format!(
            "https://127.0.0.1:{}/api/auth/login?next=%2F",
            app.addr.port()
        )
        .as_str()
    );
    let followed = https_client(&root)
        .get(format!("http://{redirect}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), StatusCode::OK);
    assert_eq!(followed.url().scheme(), "https");
    assert_eq!(followed.url().port(), Some(app.addr.port()));
}

#[tokio::test]
async fn bad_certificate_files_stop_the_start_with_a_clear_error() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cert_paths(dir.path());
    let leaf = ca.issue();
    install(&leaf, &cert, &key);
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, ca.issue().key_pem).unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello").unwrap();
    let missing = dir.path().join("missing-key.pem");

    let start_error = |cert: Option<&Path>, key: Option<&Path>| {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}", dir.path().join("never.db").display()),
            turn_enabled: false,
            tls_cert: cert.map(Path::to_owned),
            tls_key: key.map(Path::to_owned),
            ..Config::default()
        };
        async move {
            match App::build(config).await {
                Ok(_) => panic!("the server must not start"),
                Err(err) => format!("{:#}", anyhow::Error::from(err)),
            }
        }
    };
    let err = start_error(Some(&cert), Some(&missing)).await;
    assert!(
        err.contains("private key") && err.contains(&missing.display().to_string()),
        "{err}"
    );
    let err = start_error(Some(&cert), Some(&other_key)).await;
    assert!(err.contains("does not belong to the certificate"), "{err}");
    assert!(err.contains(&other_key.display().to_string()), "{err}");
    assert!(err.contains(&cert.display().to_string()), "{err}");
    let err = start_error(Some(&garbage), Some(&key)).await;
    assert!(
        err.contains(&format!("{} holds no PEM certificate", garbage.display())),
        "{err}"
    );
    let err = start_error(Some(&cert), None).await;
    assert!(err.contains("tls_key is not"), "{err}");
    assert!(
        !dir.path().join("never.db").exists(),
        "nothing is created when the certificate is bad"
    );

    // The binary says the same and exits non-zero.
    let output = std::process::Command::new(BIN)
        .arg("--database")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("never.db").display()
        ))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("SWITCHBOARD_CONFIG")
        .env("SWITCHBOARD_TURN_ENABLED", "false")
        .env("SWITCHBOARD_TLS_CERT", &cert)
        .env("SWITCHBOARD_TLS_KEY", &missing)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&missing.display().to_string()) && stderr.contains("No such file"),
        "{stderr}"
    );
}

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// `switchboard serve` with TLS settings in its environment; stdout and stderr piped.
fn serve(db: &str, env: &[(&str, &Path)]) -> Child {
    let mut command = Command::new(BIN);
    command
        .args(["--database", db, "serve", "--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .env_remove("SWITCHBOARD_CONFIG")
        .env("SWITCHBOARD_TURN_ENABLED", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("the binary starts")
}

/// Reads `serve`'s stdout up to its "running on" line: (address, printed fingerprint, output).
async fn startup(child: &mut Child) -> (SocketAddr, String, String) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = String::new();
    let mut fingerprint = None;
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .unwrap_or_else(|| panic!("stdout ended:\n{out}"));
        out.push_str(&line);
        out.push('\n');
        if let Some(fp) = line.trim().strip_prefix("SHA-256 fingerprint: ") {
            fingerprint = Some(fp.to_owned());
        }
        if let Some(url) = line.strip_prefix("Switchboard is running on https://") {
            let addr = url.trim().parse().unwrap();
            return (addr, fingerprint.expect("fingerprint printed first"), out);
        }
    }
}

#[tokio::test]
async fn serve_prints_the_self_signed_fingerprint_and_keeps_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("serve.db").display());
    let tls_dir = dir.path().join("tls");
    let env: &[(&str, &Path)] = &[
        ("SWITCHBOARD_TLS_SELF_SIGNED", Path::new("true")),
        ("SWITCHBOARD_TLS_SELF_SIGNED_DIR", &tls_dir),
    ];
    let mut server = serve(&db, env);
    let (addr, printed, out) = startup(&mut server).await;
    assert!(out.contains("for LANs and testing"), "{out}");
    let root = pem_certificate(&tls_dir.join("cert.pem"));
    assert_eq!(fingerprint(&served_certificate(addr, &root).await), printed);
    server.kill().await.unwrap();

    let mut again = serve(&db, env);
    let (addr, reprinted, out) = startup(&mut again).await;
    assert_eq!(reprinted, printed, "the kept certificate is reused:\n{out}");
    assert!(out.contains("reused"), "{out}");
    assert_eq!(fingerprint(&served_certificate(addr, &root).await), printed);
    again.kill().await.unwrap();
}

#[tokio::test]
async fn sighup_reloads_the_certificate_files() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cert_paths(dir.path());
    let first = ca.issue();
    install(&first, &cert, &key);
    let db = format!("sqlite://{}", dir.path().join("hup.db").display());
    let mut server = serve(
        &db,
        &[
            ("SWITCHBOARD_TLS_CERT", &cert),
            ("SWITCHBOARD_TLS_KEY", &key),
            // Only the signal can cause the reload within this test.
            ("SWITCHBOARD_TLS_RELOAD_INTERVAL", Path::new("1h")),
        ],
    );
    let (addr, printed, _) = startup(&mut server).await;
    assert_eq!(printed, fingerprint(&first.der));
    let root = ca.root();
    assert_eq!(served_certificate(addr, &root).await, first.der);

    let second = ca.issue();
    install(&second, &cert, &key);
    let pid = server.id().unwrap().to_string();
    let mut stderr = BufReader::new(server.stderr.take().unwrap()).lines();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    loop {
        let line = tokio::time::timeout(WAIT, stderr.next_line())
            .await
            .expect("the reload is logged")
            .unwrap()
            .expect("the server is still running");
        if line.contains("TLS certificate reloaded") {
            assert!(line.contains(&fingerprint(&second.der)), "{line}");
            break;
        }
    }
    assert_eq!(served_certificate(addr, &root).await, second.der);
    server.kill().await.unwrap();
}
