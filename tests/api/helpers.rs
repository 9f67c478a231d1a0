//! `spawn_app()` and typed clients, shared by every test.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::clock::ManualClock;
use switchboard::store::{InspectFilter, Store};
use switchboard::{App, Config};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub address: String,
    pub metrics: Arc<switchboard::metrics::Metrics>,
    pub clock: ManualClock,
    pub store: Arc<dyn Store>,
    pub config: Config,
    pub database_url: String,
    /// The embedded TURN server's addresses, when the test turned it on.
    pub turn: Option<switchboard::turn::TurnInfo>,
    shutdown: CancellationToken,
    _dir: TempDir,
    _postgres: Option<TestDatabase>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server on a free port with its own database file, after `tweak` adjusts the config.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        switchboard::telemetry::init(switchboard::config::LogFormat::Text);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let postgres = TestDatabase::create().await;
    let database_url = match &postgres {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}", dir.path().join("test.db").display()),
    };
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.clone(),
        // Tests that need the embedded TURN server turn it on, on a port of their own.
        turn_enabled: false,
        ..Config::default()
    };
    tweak(&mut config);
    let clock = ManualClock::default();
    let app = App::build_with_clock(config.clone(), Arc::new(clock.clone()))
        .await
        .expect("app builds");
    let address = format!("http://{}", app.local_addr());
    let store = app.store();
    let metrics = app.metrics();
    let shutdown = app.shutdown_token();
    let turn = app.turn();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        metrics,
        clock,
        store,
        config,
        database_url,
        turn,
        shutdown,
        _dir: dir,
        _postgres: postgres,
    }
}

/// The PostgreSQL server the store suite runs against when `SWITCHBOARD_TEST_STORE=postgres`.
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database of its own for one test, dropped when the test ends.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// `Some` when the suite runs against PostgreSQL (`SWITCHBOARD_TEST_STORE=postgres`).
    pub async fn create() -> Option<Self> {
        if std::env::var("SWITCHBOARD_TEST_STORE").as_deref() != Ok("postgres") {
            return None;
        }
        Some(Self::create_postgres().await)
    }

    /// A fresh PostgreSQL database, whatever the suite's store.
    pub async fn create_postgres() -> Self {
        let name = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(POSTGRES_ADMIN_URL)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (user postgres, database test) must be running");
        sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        Self {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async code: a thread of its own with a small runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(mut admin) =
                    <sqlx::PgConnection as sqlx::Connection>::connect(POSTGRES_ADMIN_URL).await
                {
                    let _ = sqlx::Executor::execute(
                        &mut admin,
                        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                    )
                    .await;
                }
            });
        })
        .join();
    }
}

impl TestApp {
    /// Stops the server the way Ctrl-C does.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Calls made into the store so far.
    pub fn store_queries(&self) -> u64 {
        self.metrics.store_queries.get()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A client without a session.
    pub fn anonymous(&self) -> TestUser {
        TestUser {
            id: 0,
            username: String::new(),
            client: client(),
            csrf: String::new(),
            cookie: String::new(),
            base: self.address.clone(),
        }
    }

    /// Registers `name` (display name: capitalised) and returns its logged-in client.
    pub async fn register(&self, name: &str) -> TestUser {
        register_at(&self.address, name).await
    }

    /// The usual cast: alice and bob, and a chat between them.
    pub async fn alice_and_bob(&self) -> (TestUser, TestUser, i64) {
        let alice = self.register("alice").await;
        let bob = self.register("bob").await;
        let chat = self.chat(&alice, &[&bob]).await;
        (alice, bob, chat)
    }

    /// Starts a chat from `creator` with `others`; returns its id.
    pub async fn chat(&self, creator: &TestUser, others: &[&TestUser]) -> i64 {
        let names: Vec<_> = others.iter().map(|u| u.username.clone()).collect();
        let (status, body) = creator
            .post(
                "/api/chats/",
                json!({"participants": names, "title": "test chat"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// Every signal row in the store, consumed or not.
    pub async fn stored_signals(&self) -> i64 {
        self.store
            .inspect(&InspectFilter {
                recent_limit: 0,
                ..Default::default()
            })
            .await
            .unwrap()
            .total
    }
}

/// Registers `name` on the server at `address`; returns its logged-in client.
pub async fn register_at(address: &str, name: &str) -> TestUser {
    register_with(client(), address, name).await
}

/// As [`register_at`], with the given HTTP client (one that trusts a test certificate, say).
pub async fn register_with(client: reqwest::Client, address: &str, name: &str) -> TestUser {
    let mut user = TestUser {
        id: 0,
        username: String::new(),
        client,
        csrf: String::new(),
        cookie: String::new(),
        base: address.to_owned(),
    };
    let display = format!("{}{}", name[..1].to_uppercase(), &name[1..]);
    let response = user
        .client
        .post(format!("{address}/api/auth/register"))
        .json(&json!({"username": name, "password": password_of(name), "display_name": display}))
        .send()
        .await
        .unwrap();
    user.cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ");
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    user.id = body["user"]["id"].as_i64().unwrap();
    user.username = name.to_owned();
    user.csrf = body["csrf_token"].as_str().unwrap().to_owned();
    user
}

pub fn password_of(name: &str) -> String {
    format!("password-of-{name}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// A logged-in (or anonymous) browser-like client: it keeps cookies and sends the CSRF header.
#[derive(Clone)]
pub struct TestUser {
    pub id: i64,
    pub username: String,
    pub client: reqwest::Client,
    pub csrf: String,
    /// The `Cookie` header value, for clients other than `client` (WebSocket, SSE).
    pub cookie: String,
    pub base: String,
}

impl TestUser {
    /// The same session, talking to another node.
    pub fn on(&self, address: &str) -> TestUser {
        TestUser {
            base: address.to_owned(),
            ..self.clone()
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("X-CSRFToken", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    /// A POST without the CSRF header.
    pub async fn post_unchecked(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    /// A POST of raw bytes with the CSRF header and the given content type.
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        content_type: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("X-CSRFToken", &self.csrf)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        read(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub async fn send_with_id(
        &self,
        chat: i64,
        kind: &str,
        payload: Value,
        signal_id: &str,
    ) -> (StatusCode, Value) {
        self.post(
            "/api/p2p/send-signal/",
            json!({"chat_id": chat, "type": kind, "payload": payload, "signal_id": signal_id}),
        )
        .await
    }

    pub async fn send_signal(&self, chat: i64, kind: &str, payload: Value) -> (StatusCode, Value) {
        self.post(
            "/api/p2p/send-signal/",
            json!({"chat_id": chat, "type": kind, "payload": payload}),
        )
        .await
    }

    /// GET /api/p2p/<chat>/signals/ (with `?after=` when given); asserts success.
    pub async fn signals(&self, chat: i64, after: Option<i64>) -> Vec<Value> {
        let path = match after {
            Some(after) => format!("/api/p2p/{chat}/signals/?after={after}"),
            None => format!("/api/p2p/{chat}/signals/"),
        };
        let (status, body) = self.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["success"], true);
        body["signals"].as_array().unwrap().clone()
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("response is not JSON ({status}): {text:?}"));
    (status, body)
}

/// The JSON error shape every refusal has; returns the message.
pub fn error_message(body: &Value) -> &str {
    assert_eq!(body["success"], false, "{body}");
    body["error"].as_str().expect("error message")
}

/// Asserts what a recipient relies on when several users send at once: seq runs 1..=n without a
/// gap, and each sender's signals (payload `{"n": 0, 1, 2, …}`) arrive in the order sent.
pub fn assert_gap_free_in_sender_order(signals: &[Value]) {
    let seqs: Vec<i64> = signals.iter().map(|s| s["seq"].as_i64().unwrap()).collect();
    let expected: Vec<i64> = (1..=signals.len() as i64).collect();
    assert_eq!(seqs, expected, "strictly increasing, no gaps");
    let mut next_n = std::collections::HashMap::new();
    for signal in signals {
        let sender = signal["sender"]["username"].as_str().unwrap().to_owned();
        let expected = next_n.entry(sender.clone()).or_insert(0);
        assert_eq!(
            signal["payload"]["n"].as_i64(),
            Some(*expected),
            "{sender}'s signals arrive in send order"
        );
        *expected += 1;
    }
}

/// Every sender sends `per_sender` signals numbered `{"n": 0, 1, …}` to `chat`, all senders at
/// once; each send must be stored.
pub async fn send_numbered_concurrently(senders: &[TestUser], chat: i64, per_sender: i64) {
    let runs = senders.iter().map(|sender| async move {
        for n in 0..per_sender {
            let (status, body) = sender
                .send_signal(chat, "webrtc.ice", json!({"n": n}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    });
    futures_util::future::join_all(runs).await;
}
