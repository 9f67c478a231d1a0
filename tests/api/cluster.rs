//! Several nodes on PostgreSQL and Redis: real `switchboard` processes on different ports,
//! a private `redis-server` the tests stop and restart, and a TCP proxy in front of PostgreSQL
//! the tests cut. Needs PostgreSQL on 127.0.0.1:5432 (user postgres, database test) and the
//! `redis-server` binary; `scripts/test.sh` checks both before running.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use crate::helpers::{
    assert_gap_free_in_sender_order, register_at, send_numbered_concurrently, TestDatabase,
    TestUser,
};
use crate::push_clients::{SseClient, WsClient, WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// One `switchboard serve` process.
struct Node {
    child: Child,
    address: String,
}

impl Node {
    async fn start(database_url: &str, redis_url: &str, prefix: &str) -> Node {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("SWITCHBOARD_DATABASE_URL", database_url)
            .env("SWITCHBOARD_REDIS_URL", redis_url)
            .env("SWITCHBOARD_REDIS_PREFIX", prefix)
            .env("SWITCHBOARD_BUS_CATCH_UP_INTERVAL", "200ms")
            .env("SWITCHBOARD_CLEANUP_INTERVAL", "1h")
            .env("SWITCHBOARD_TURN_ENABLED", "false")
            .env_remove("SWITCHBOARD_CONFIG")
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("switchboard starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let address = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(address) = line.strip_prefix("Switchboard is running on ") {
                    return address.trim().to_owned();
                }
            }
            panic!("the node exited before listening");
        })
        .await
        .expect("the node starts listening in time");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Node { child, address }
    }

    async fn metric(&self, line: &str) -> bool {
        let text = reqwest::get(format!("{}/metrics", self.address))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines().any(|l| l == line)
    }
}

/// A `redis-server` of the test's own, so it can be stopped and restarted on the same port.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    async fn start() -> PrivateRedis {
        let port = free_port().await;
        let mut redis = PrivateRedis { port, child: None };
        redis.restart().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

/// A TCP proxy whose connections can be cut (and new ones refused) and restored.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: &'static str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (cut_flag, tasks) = (cut.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut_flag.load(Ordering::SeqCst) {
                    continue; // dropped: the database is "unreachable"
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy {
            port,
            cut,
            connections,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

async fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn prefix() -> String {
    format!("sbtest-{}", uuid::Uuid::new_v4().simple())
}

/// Two nodes on one fresh database and the given Redis, with alice and bob in a chat.
struct Cluster {
    a: Node,
    b: Node,
    alice: TestUser,
    bob: TestUser,
    chat: i64,
    _database: TestDatabase,
}

async fn cluster(redis_url: &str) -> Cluster {
    let database = TestDatabase::create_postgres().await;
    let prefix = prefix();
    let a = Node::start(&database.url, redis_url, &prefix).await;
    let b = Node::start(&database.url, redis_url, &prefix).await;
    let alice = register_at(&a.address, "alice").await;
    let bob = register_at(&b.address, "bob").await;
    let (status, chat) = alice
        .post("/api/chats/", json!({"participants": ["bob"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");
    Cluster {
        chat: chat["id"].as_i64().unwrap(),
        a,
        b,
        alice,
        bob,
        _database: database,
    }
}

#[tokio::test]
async fn signals_cross_nodes_both_ways_on_every_transport() {
    let c = cluster("redis://127.0.0.1:6379").await;
    // Sessions live in the database: bob registered on B, and his cookie works on A too.
    let (status, _) = c.bob.on(&c.a.address).get("/api/auth/me").await;
    assert_eq!(status, StatusCode::OK);

    let (mut bob_ws, _) = WsClient::connect_at(&c.b.address, &c.bob, 0).await;
    let (mut alice_ws, _) = WsClient::connect_at(&c.a.address, &c.alice, 0).await;

    // Presence crosses nodes too: bob, connected to B, counts as online for a send through A
    // once B has announced him (every 2 s).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, sent) = c
            .alice
            .send_signal(c.chat, "presence.probe", json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            bob_ws.signal().await["type"],
            "presence.probe",
            "A → B over WebSocket"
        );
        if sent["online"] == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never counted as online from A"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut bob_sse = SseClient::connect_at(&c.b.address, &c.bob, None).await;
    let (status, _) = c
        .alice
        .send_signal(c.chat, "webrtc.offer", json!({"sdp": "o"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let offer = bob_ws.signal().await;
    assert_eq!(offer["type"], "webrtc.offer", "A → B over WebSocket");
    loop {
        // The SSE stream starts with the unacknowledged probes, then the offer.
        if bob_sse.signal().await.json()["type"] == "webrtc.offer" {
            break; // A → B over SSE
        }
    }

    bob_ws
        .send(json!({"op": "send", "chat_id": c.chat, "type": "webrtc.answer", "payload": {"sdp": "a"}}))
        .await;
    assert_eq!(
        alice_ws.signal().await["type"],
        "webrtc.answer",
        "B → A over WebSocket"
    );

    // Long-poll on B, woken by a signal stored through A.
    let path = format!(
        "/api/p2p/{}/signals/?after={}&wait=30",
        c.chat, offer["seq"]
    );
    let bob = c.bob.clone();
    let poll = tokio::spawn(async move { bob.get(&path).await });
    let deadline = tokio::time::Instant::now() + WAIT;
    while !c
        .b
        .metric("switchboard_connected_clients{transport=\"longpoll\"} 1")
        .await
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the long-poll never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.alice
        .send_signal(c.chat, "webrtc.ice", json!({"c": 1}))
        .await;
    let (status, body) = tokio::time::timeout(WAIT, poll).await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["signals"][0]["type"], "webrtc.ice",
        "A → B over long-poll"
    );
}

#[tokio::test]
async fn a_redis_restart_slows_push_to_catch_up_and_recovers() {
    let mut redis = PrivateRedis::start().await;
    let c = cluster(&redis.url()).await;
    for node in [&c.a, &c.b] {
        wait_for_metric(node, "switchboard_bus_connected 1").await;
    }
    let (mut bob_ws, _) = WsClient::connect_at(&c.b.address, &c.bob, 0).await;
    c.alice.send_signal(c.chat, "webrtc.offer", json!(1)).await;
    assert_eq!(bob_ws.signal().await["payload"], 1);

    redis.stop().await;
    wait_for_metric(&c.b, "switchboard_bus_connected 0").await;
    let (status, _) = c.alice.send_signal(c.chat, "webrtc.ice", json!(2)).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "sending does not depend on Redis"
    );
    assert_eq!(
        bob_ws.signal().await["payload"],
        2,
        "delivered by catch-up from the store"
    );

    redis.restart().await;
    for node in [&c.a, &c.b] {
        wait_for_metric(node, "switchboard_bus_connected 1").await;
    }
    c.alice.send_signal(c.chat, "webrtc.ice", json!(3)).await;
    let signal = bob_ws.signal().await;
    assert_eq!(
        (signal["seq"].as_i64(), signal["payload"].as_i64()),
        (Some(3), Some(3))
    );
}

#[tokio::test]
async fn a_killed_nodes_clients_resume_on_another_without_loss_or_duplicates() {
    let mut c = cluster("redis://127.0.0.1:6379").await;
    let (mut bob_ws, _) = WsClient::connect_at(&c.b.address, &c.bob, 0).await;
    for n in 1..=5 {
        c.alice.send_signal(c.chat, "webrtc.ice", json!(n)).await;
    }
    let mut processed = 0;
    for n in 1..=5 {
        let signal = bob_ws.signal().await;
        assert_eq!(signal["seq"].as_i64(), Some(n));
        processed = n;
    }
    bob_ws.send(json!({"op": "ack", "seq": 2})).await; // later acks die with the node

    c.b.child.start_kill().unwrap(); // SIGKILL
    c.b.child.wait().await.unwrap();
    assert!(
        bob_ws.next().await.is_err(),
        "the connection dropped with the node"
    );
    for n in 6..=8 {
        c.alice.send_signal(c.chat, "webrtc.ice", json!(n)).await;
    }
    let (mut bob_ws, _) = WsClient::connect_at(&c.a.address, &c.bob, processed).await;
    for n in 6..=8 {
        let signal = bob_ws.signal().await;
        assert_eq!(
            signal["seq"].as_i64(),
            Some(n),
            "resumed after its cursor: no duplicate"
        );
        assert_eq!(signal["payload"].as_i64(), Some(n));
    }
}

#[tokio::test]
async fn concurrent_senders_on_two_nodes_keep_seq_in_order_without_gaps() {
    const PER_SENDER: i64 = 25;
    let database = TestDatabase::create_postgres().await;
    let prefix = prefix();
    let a = Node::start(&database.url, "redis://127.0.0.1:6379", &prefix).await;
    let b = Node::start(&database.url, "redis://127.0.0.1:6379", &prefix).await;
    let bob = register_at(&a.address, "bob").await;
    let mut senders = Vec::new();
    for (i, name) in ["alice", "carol", "dave", "erin"].iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        senders.push(register_at(&node.address, name).await);
    }
    let names: Vec<_> = senders.iter().map(|s| s.username.clone()).collect();
    let (_, chat) = bob
        .post(
            "/api/chats/",
            json!({"participants": names, "title": "team"}),
        )
        .await;
    let chat = chat["id"].as_i64().unwrap();
    send_numbered_concurrently(&senders, chat, PER_SENDER).await;

    let signals = bob.on(&b.address).signals(chat, Some(0)).await;
    assert_eq!(signals.len() as i64, 4 * PER_SENDER);
    assert_gap_free_in_sender_order(&signals);
}

#[tokio::test]
async fn an_unreachable_database_gives_503_and_the_node_recovers() {
    let database = TestDatabase::create_postgres().await;
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let via_proxy = database.url.replace(":5432/", &format!(":{}/", proxy.port));
    let node = Node::start(&via_proxy, "redis://127.0.0.1:6379", &prefix()).await;
    let alice = register_at(&node.address, "alice").await;
    let bob = register_at(&node.address, "bob").await;
    let (_, chat) = alice
        .post("/api/chats/", json!({"participants": ["bob"]}))
        .await;
    let chat = chat["id"].as_i64().unwrap();

    proxy.cut();
    let (status, body) = alice.send_signal(chat, "webrtc.offer", json!({})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("database is unavailable"),
        "{body}"
    );
    let (status, _) = reqwest::get(format!("{}/healthz", node.address))
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    let (status, body) = alice.send_signal(chat, "webrtc.offer", json!({})).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "recovered without a restart: {body}"
    );
    assert_eq!(
        bob.signals(chat, None).await.len(),
        1,
        "exactly the send that succeeded"
    );
}

async fn wait_for_metric(node: &Node, line: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !node.metric(line).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{line:?} never showed on {}",
            node.address
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn presence_and_the_call_record_hold_across_nodes() {
    let c = cluster("redis://127.0.0.1:6379").await;
    let (_bob_ws, _) = WsClient::connect_at(&c.b.address, &c.bob, 0).await;
    // The chat list on A shows bob online once B has announced him (every 2 s).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, list) = c.alice.get("/api/chats/").await;
        assert_eq!(status, StatusCode::OK);
        let bob_online = list["chats"][0]["participants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["username"] == "bob" && p["online"] == true);
        if bob_online {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never shown online on A"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Alice calls through A; bob answers on B; his other tab, on A, cannot answer again.
    let call = |device: &str| json!({"call_id": "x-node", "device": device});
    let (status, _) = c.alice.send_signal(c.chat, "call.invite", call("a1")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = c.bob.send_signal(c.chat, "call.accept", call("b1")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = c
        .bob
        .on(&c.a.address)
        .send_signal(c.chat, "call.accept", call("b2"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "answered_elsewhere");
    let (_, active) = c.bob.on(&c.a.address).get("/api/calls/active").await;
    assert_eq!(active["calls"][0]["answered_device"], "b1");
}
