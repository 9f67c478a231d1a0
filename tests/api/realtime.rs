//! Real-time delivery: WebSocket, SSE and long-poll push; resume; dedup across paths; slow
//! consumers; order; limits; Origin; idle cost; receipts; shutdown.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{send_numbered_concurrently, spawn_app, spawn_app_with, TestApp};
use crate::push_clients::{SseClient, WsClient, WAIT};

/// Waits (bounded) until `condition` holds: for state the test cannot be notified of.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn gauge(app: &TestApp, transport: &str) -> bool {
    app.metrics.encode().contains(&format!(
        "switchboard_connected_clients{{transport=\"{transport}\"}} 1"
    ))
}

#[tokio::test]
async fn a_signal_is_pushed_over_websocket_the_moment_it_is_stored() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let (mut ws, welcome) = WsClient::connect(&app, &bob, 0).await;
    assert_eq!(welcome["v"], 1);
    assert_eq!(welcome["user"]["username"], "bob");

    let (status, sent) = alice
        .send_signal(chat, "webrtc.offer", json!({"sdp": "o"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(sent["online"], 1, "bob has a live connection");
    let signal = ws.signal().await;
    assert_eq!(signal["seq"], 1);
    assert_eq!(signal["type"], "webrtc.offer");
    assert_eq!(signal["payload"], json!({"sdp": "o"}));
    assert_eq!(signal["sender"]["username"], "alice");
    assert_eq!(signal["chat_id"], chat);
}

#[tokio::test]
async fn a_signal_is_pushed_over_sse_with_its_seq_as_event_id() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let mut sse = SseClient::connect(&app, &bob, None).await;
    alice
        .send_signal(chat, "webrtc.offer", json!({"sdp": "o"}))
        .await;
    let event = sse.signal().await;
    assert_eq!(event.id.as_deref(), Some("1"));
    assert_eq!(event.json()["type"], "webrtc.offer");

    // Resume with Last-Event-ID after acknowledging through HTTP.
    let (status, acked) = bob.post("/api/p2p/ack/", json!({"seq": 1})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(acked["acknowledged"], 1);
    drop(sse);
    alice.send_signal(chat, "webrtc.ice", json!(2)).await;
    let mut sse = SseClient::connect(&app, &bob, Some(1)).await;
    let event = sse.signal().await;
    assert_eq!(event.id.as_deref(), Some("2"));
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_a_signal_arrives() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let path = format!("/api/p2p/{chat}/signals/?after=0&wait=30");
    let started = std::time::Instant::now();
    let poll = tokio::spawn(async move { bob.get(&path).await });
    eventually("the long-poll to be waiting", || gauge(&app, "longpoll")).await;
    alice.send_signal(chat, "webrtc.offer", json!({})).await;
    let (status, body) = tokio::time::timeout(WAIT, poll).await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["signals"][0]["type"], "webrtc.offer");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "woken by the signal, not the timeout"
    );
}

#[tokio::test]
async fn a_long_poll_with_nothing_to_deliver_ends_at_its_wait() {
    let app = spawn_app().await;
    let (_alice, bob, chat) = app.alice_and_bob().await;
    let (status, body) = bob
        .get(&format!("/api/p2p/{chat}/signals/?after=0&wait=0.2"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["signals"], json!([]));
    let (status, _) = bob.get(&format!("/api/p2p/{chat}/signals/?wait=-1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn resume_delivers_exactly_the_missed_signals_in_order() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let (mut ws, _) = WsClient::connect(&app, &bob, 0).await;
    alice.send_signal(chat, "webrtc.offer", json!(1)).await;
    assert_eq!(ws.signal().await["seq"], 1);
    ws.send(json!({"op": "ack", "seq": 1})).await;
    ws.ping().await; // the ack was processed before the pong
    drop(ws);

    for n in 2..=4 {
        alice.send_signal(chat, "webrtc.ice", json!(n)).await;
    }
    let (mut ws, welcome) = WsClient::connect(&app, &bob, 1).await;
    assert_eq!(welcome["last_seq"], 1);
    for n in 2..=4 {
        let signal = ws.signal().await;
        assert_eq!(
            (signal["seq"].as_i64(), signal["payload"].as_i64()),
            (Some(n), Some(n))
        );
    }
    alice.send_signal(chat, "webrtc.ice", json!(5)).await;
    assert_eq!(
        ws.signal().await["seq"],
        5,
        "then the live stream, no gap, no duplicate"
    );

    // A client that lost its state (cursor 0) gets everything not acknowledged yet.
    let (mut fresh, _) = WsClient::connect(&app, &bob, 0).await;
    for n in 2..=5 {
        assert_eq!(fresh.signal().await["seq"], n);
    }
}

#[tokio::test]
async fn a_signal_sent_on_both_paths_is_stored_and_delivered_once() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let (mut alice_ws, _) = WsClient::connect(&app, &alice, 0).await;
    let (mut bob_ws, _) = WsClient::connect(&app, &bob, 0).await;

    alice_ws
        .send(json!({"op": "send", "ref": "r1", "chat_id": chat, "type": "webrtc.offer", "payload": {"sdp": "o"}, "signal_id": "dual-1"}))
        .await;
    let sent = alice_ws.frame().await;
    assert_eq!(sent["op"], "sent");
    assert_eq!(sent["ref"], "r1");
    assert_eq!(sent["created"], true);
    assert_eq!(sent["online"], 1);
    let (status, again) = alice
        .send_with_id(chat, "webrtc.offer", json!({"sdp": "o"}), "dual-1")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["recipients"], 1);

    alice.send_signal(chat, "marker", json!({})).await;
    assert_eq!(bob_ws.signal().await["signal_id"], "dual-1");
    assert_eq!(
        bob_ws.signal().await["type"],
        "marker",
        "the duplicate was not pushed"
    );
    assert_eq!(app.stored_signals().await, 2);
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_and_loses_nothing() {
    const SIGNALS: i64 = 200;
    let app = spawn_app_with(|c| {
        c.connection_queue = 4;
        c.send_burst = 1000;
    })
    .await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let (mut ws, _) = WsClient::connect(&app, &bob, 0).await;
    // Bob does not read while ~12 MB are sent: socket buffers fill, then his queue overflows.
    let big = "x".repeat(60_000);
    for n in 1..=SIGNALS {
        let (status, _) = alice
            .send_signal(chat, "file.chunk", json!({"n": n, "data": big}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut last = 0;
    let code = loop {
        match ws.next().await {
            Ok(frame) if frame["op"] == "signal" => {
                let seq = frame["signal"]["seq"].as_i64().unwrap();
                assert_eq!(seq, last + 1, "in order, no gap");
                last = seq;
            }
            Ok(_) => {}
            Err(closed) => break closed.code,
        }
    };
    assert_eq!(
        code, 4008,
        "closed for overflowing, with the code that says: resume"
    );
    assert!(
        last < SIGNALS,
        "the overflow happened before everything was read"
    );
    let (mut ws, _) = WsClient::connect(&app, &bob, last).await;
    while last < SIGNALS {
        let signal = ws.signal().await;
        assert_eq!(signal["seq"].as_i64().unwrap(), last + 1);
        assert_eq!(signal["payload"]["n"].as_i64().unwrap(), last + 1);
        last += 1;
    }
}

#[tokio::test]
async fn order_holds_under_concurrent_senders() {
    const PER_SENDER: i64 = 30;
    let app = spawn_app().await;
    let bob = app.register("bob").await;
    let mut senders = Vec::new();
    for name in ["alice", "carol", "dave"] {
        senders.push(app.register(name).await);
    }
    let chat = app.chat(&bob, &senders.iter().collect::<Vec<_>>()).await;
    let (mut ws, _) = WsClient::connect(&app, &bob, 0).await;
    send_numbered_concurrently(&senders, chat, PER_SENDER).await;
    let mut next_n = std::collections::HashMap::new();
    for seq in 1..=3 * PER_SENDER {
        let signal = ws.signal().await;
        assert_eq!(
            signal["seq"].as_i64(),
            Some(seq),
            "strictly increasing, no gap, no duplicate"
        );
        let sender = signal["sender"]["username"].as_str().unwrap().to_owned();
        let expected = next_n.entry(sender).or_insert(0);
        assert_eq!(signal["payload"]["n"].as_i64(), Some(*expected));
        *expected += 1;
    }
}

#[tokio::test]
async fn sends_over_the_rate_are_refused_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.send_rate_per_second = 1;
        c.send_burst = 3;
    })
    .await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    for _ in 0..3 {
        assert_eq!(
            alice.send_signal(chat, "webrtc.ice", json!({})).await.0,
            StatusCode::CREATED
        );
    }
    let response = alice
        .client
        .post(app.url("/api/p2p/send-signal/"))
        .header("X-CSRFToken", &alice.csrf)
        .json(&json!({"chat_id": chat, "type": "webrtc.ice", "payload": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after));

    let (mut ws, _) = WsClient::connect(&app, &alice, 0).await;
    ws.send(json!({"op": "send", "ref": 7, "chat_id": chat, "type": "webrtc.ice", "payload": {}}))
        .await;
    let error = ws.frame().await;
    assert_eq!(error["op"], "error");
    assert_eq!(error["ref"], 7);
    assert_eq!(error["status"], 429);
    assert!(error["retry_after_ms"].as_u64().unwrap() > 0);
    assert_eq!(
        app.stored_signals().await,
        3,
        "refused sends stored nothing"
    );
    // Bob is not limited by Alice's rate.
    assert_eq!(
        bob.send_signal(chat, "webrtc.ice", json!({})).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn connections_per_user_are_limited() {
    let app = spawn_app_with(|c| c.max_connections_per_user = 1).await;
    let bob = app.register("bob").await;
    let (_first, _) = WsClient::connect(&app, &bob, 0).await;
    let refused = WsClient::try_connect(&app, &bob, 0, None).await;
    assert_eq!(refused.err(), Some(429));
}

#[tokio::test]
async fn a_foreign_origin_cannot_open_a_websocket() {
    let app = spawn_app().await;
    let bob = app.register("bob").await;
    let refused = WsClient::try_connect(&app, &bob, 0, Some("https://evil.example")).await;
    assert_eq!(refused.err(), Some(403));
    let own = app.address.clone();
    assert!(WsClient::try_connect(&app, &bob, 0, Some(&own))
        .await
        .is_ok());

    let app = spawn_app_with(|c| c.allowed_origins = vec!["https://app.example".into()]).await;
    let bob = app.register("bob").await;
    assert!(
        WsClient::try_connect(&app, &bob, 0, Some("https://app.example"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_websocket_needs_a_session() {
    let app = spawn_app().await;
    let anonymous = app.anonymous();
    assert_eq!(
        WsClient::try_connect(&app, &anonymous, 0, None).await.err(),
        Some(401)
    );
}

#[tokio::test]
async fn an_idle_connected_client_costs_no_store_query() {
    let app = spawn_app_with(|c| c.cleanup_interval = Duration::from_secs(3600)).await;
    let bob = app.register("bob").await;
    let (mut ws, _) = WsClient::connect(&app, &bob, 0).await;
    let sse = SseClient::connect(&app, &bob, None).await;
    ws.ping().await;
    let before = app.store_queries();
    for _ in 0..20 {
        ws.ping().await;
    }
    assert_eq!(
        app.store_queries(),
        before,
        "heartbeats and idle streams never touch the store"
    );
    drop(sse);
}

#[tokio::test]
async fn an_idle_server_makes_no_store_query_between_sweeps() {
    let app = spawn_app_with(|c| c.cleanup_interval = Duration::from_millis(10)).await;
    let (alice, _bob, chat) = app.alice_and_bob().await;
    // Nothing stored yet: after the start-up pass, twenty sweep intervals pass without a query.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = app.store_queries();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.store_queries(), before, "no cleanup pass while idle");

    // A stored signal may need expiring and deleting: the sweeps resume.
    alice.send_signal(chat, "call.invite", json!({})).await;
    let after_send = app.store_queries();
    eventually("a cleanup pass", || app.store_queries() > after_send).await;
}

#[tokio::test]
async fn the_sender_learns_delivered_and_expired() {
    let app = spawn_app_with(|c| c.cleanup_interval = Duration::from_millis(20)).await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let (mut alice_ws, _) = WsClient::connect(&app, &alice, 0).await;

    // Bob is offline: the invite expires unread, and Alice is told.
    let (_, sent) = alice
        .send_with_id(chat, "call.invite", json!({}), "invite-1")
        .await;
    assert_eq!(sent["online"], 0);
    app.clock.advance(Duration::from_secs(31));
    let receipt = alice_ws.frame().await;
    assert_eq!(receipt["op"], "receipt");
    assert_eq!(receipt["receipt"]["status"], "expired");
    assert_eq!(receipt["receipt"]["signal_id"], "invite-1");
    assert_eq!(receipt["receipt"]["recipient"], bob.id);

    // Bob comes online, gets the next invite and acknowledges it: Alice sees "delivered".
    let (mut bob_ws, _) = WsClient::connect(&app, &bob, 0).await;
    let (_, sent) = alice
        .send_with_id(chat, "call.invite", json!({}), "invite-2")
        .await;
    assert_eq!(sent["online"], 1);
    let signal = bob_ws.signal().await;
    assert_eq!(
        signal["signal_id"], "invite-2",
        "the expired invite is never delivered"
    );
    bob_ws
        .send(json!({"op": "ack", "seq": signal["seq"]}))
        .await;
    let receipt = alice_ws.frame().await;
    assert_eq!(receipt["receipt"]["status"], "delivered");
    assert_eq!(receipt["receipt"]["signal_id"], "invite-2");
}

#[tokio::test]
async fn sdp_and_ice_get_no_receipt_call_control_does() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let (mut alice_ws, _) = WsClient::connect(&app, &alice, 0).await;
    let (mut bob_ws, _) = WsClient::connect(&app, &bob, 0).await;
    for (kind, id) in [("webrtc.ice", "ice-1"), ("call.hangup", "bye-1")] {
        alice.send_with_id(chat, kind, json!({}), id).await;
        let signal = bob_ws.signal().await;
        bob_ws
            .send(json!({"op": "ack", "seq": signal["seq"]}))
            .await;
    }
    let receipt = alice_ws.frame().await;
    assert_eq!(receipt["op"], "receipt");
    assert_eq!(
        receipt["receipt"]["signal_id"], "bye-1",
        "the acknowledged ICE candidate got no receipt"
    );
}

#[tokio::test]
async fn pipelined_sends_over_one_websocket_are_stored_in_the_order_sent() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let (mut alice_ws, _) = WsClient::connect(&app, &alice, 0).await;
    let (mut bob_ws, _) = WsClient::connect(&app, &bob, 0).await;
    // All frames leave before the first answer is read: the server works on many at once.
    for n in 0..100 {
        alice_ws
            .send(
                json!({"op": "send", "ref": n, "chat_id": chat, "type": "webrtc.ice",
                         "payload": {"n": n}}),
            )
            .await;
    }
    for n in 0..100 {
        let sent = alice_ws.frame().await;
        assert_eq!(
            (sent["op"].as_str(), sent["ref"].as_i64()),
            (Some("sent"), Some(n))
        );
        assert_eq!(sent["created"], true);
    }
    let mut last_seq = 0;
    for n in 0..100 {
        let signal = bob_ws.signal().await;
        assert_eq!(signal["payload"]["n"], n, "received in the order sent");
        let seq = signal["seq"].as_i64().unwrap();
        assert_eq!(seq, last_seq + 1, "seq has no gap");
        last_seq = seq;
    }
}

#[tokio::test]
async fn replies_to_pipelined_frames_come_back_in_the_order_sent_errors_included() {
    let app = spawn_app().await;
    let (alice, _bob, chat) = app.alice_and_bob().await;
    let (mut alice_ws, _) = WsClient::connect(&app, &alice, 0).await;
    // Refused frames are answered at once by the server; they must still not overtake the
    // replies to the sends before them, which wait for their commit.
    for n in 0..60 {
        let frame = match n % 3 {
            0 => {
                json!({"op": "send", "ref": n, "chat_id": chat, "type": "webrtc.ice", "payload": {"n": n}})
            }
            1 => {
                json!({"op": "send", "ref": n, "chat_id": chat, "type": "Not A Type", "payload": {}})
            }
            _ => json!({"op": "ping", "ref": n}),
        };
        alice_ws.send(frame).await;
    }
    for n in 0..60 {
        let reply = alice_ws.frame().await;
        let expected = ["sent", "error", "pong"][n % 3];
        assert_eq!(reply["op"], expected, "reply {n}: {reply}");
        if expected != "pong" {
            assert_eq!(reply["ref"], n as i64, "reply {n} answers frame {n}");
        }
    }
}

#[tokio::test]
async fn new_chat_messages_are_pushed() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let (mut ws, _) = WsClient::connect(&app, &bob, 0).await;
    alice
        .post(
            &format!("/api/chats/{chat}/messages/"),
            json!({"body": "hello"}),
        )
        .await;
    let frame = ws.frame().await;
    assert_eq!(frame["op"], "message");
    assert_eq!(frame["message"]["body"], "hello");
    assert_eq!(frame["message"]["chat_id"], chat);
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_connection_stays_up() {
    let app = spawn_app().await;
    let (alice, _bob, chat) = app.alice_and_bob().await;
    let (mut ws, _) = WsClient::connect(&app, &alice, 0).await;
    for (frame, status) in [
        (json!({"op": "dance"}), 400),
        (
            json!({"op": "send", "chat_id": chat, "type": "Bad Type", "payload": {}}),
            400,
        ),
        (
            json!({"op": "send", "chat_id": 999, "type": "webrtc.offer", "payload": {}}),
            404,
        ),
    ] {
        ws.send(frame.clone()).await;
        let reply = ws.frame().await;
        assert_eq!(reply["op"], "error", "{frame}");
        assert_eq!(reply["status"], status, "{frame}");
        assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    ws.ping().await;
    assert_eq!(app.stored_signals().await, 0);
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let (mut ws, _) = WsClient::connect(&app, &bob, 0).await;
    alice
        .send_with_id(chat, "webrtc.offer", json!({}), "m1")
        .await;
    alice
        .send_with_id(chat, "webrtc.offer", json!({}), "m1")
        .await;
    ws.signal().await;
    ws.ping().await;
    let (status, _) = alice.get("/api/p2p/999/signals/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let text = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "switchboard_signals_stored_total 1",
        "switchboard_signals_deduplicated_total 1",
        "switchboard_signals_delivered_total{transport=\"websocket\"} 1",
        "switchboard_delivery_latency_seconds_count{transport=\"websocket\"} 1",
        "switchboard_connected_clients{transport=\"websocket\"} 1",
        "switchboard_requests_rejected_total{status=\"404\"} 1",
        "switchboard_store_queries_total",
        "switchboard_signals_expired_total 0",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
}

#[tokio::test]
async fn shutdown_closes_websocket_sse_and_long_poll_promptly() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let (mut ws, _) = WsClient::connect(&app, &bob, 0).await;
    let mut sse = SseClient::connect(&app, &alice, None).await;
    let path = format!("/api/p2p/{chat}/signals/?after=0&wait=30");
    let poll = tokio::spawn(async move { bob.get(&path).await });
    eventually("the long-poll to be waiting", || gauge(&app, "longpoll")).await;

    app.stop();
    let closed = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    assert_eq!(closed.err().map(|c| c.code), Some(1001), "going away");
    assert!(tokio::time::timeout(Duration::from_secs(5), sse.event())
        .await
        .unwrap()
        .is_none());
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["signals"], json!([]));
}
