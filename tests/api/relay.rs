//! The guide's relay: send, fetch, consume, cursor, dedup, addressing, order.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    assert_gap_free_in_sender_order, error_message, send_numbered_concurrently, spawn_app,
};

#[tokio::test]
async fn a_signal_travels_from_alice_to_bob_once() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;

    let (status, sent) = alice
        .send_signal(chat, "webrtc.offer", json!({"sdp": "v=0 offer"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["success"], true);
    assert_eq!(sent["recipients"], 1);
    assert!(sent["signal_id"].as_str().is_some_and(|id| !id.is_empty()));

    assert!(
        alice.signals(chat, None).await.is_empty(),
        "a sender does not receive its own signal"
    );
    let signals = bob.signals(chat, None).await;
    assert_eq!(signals.len(), 1);
    let signal = &signals[0];
    assert_eq!(signal["type"], "webrtc.offer");
    assert_eq!(signal["payload"], json!({"sdp": "v=0 offer"}));
    assert_eq!(signal["chat_id"], chat);
    assert_eq!(signal["seq"], 1);
    assert_eq!(signal["signal_id"], sent["signal_id"]);
    assert_eq!(
        signal["sender"],
        json!({"id": alice.id, "username": "alice", "display_name": "Alice"})
    );
    assert!(signal["id"].is_i64());
    assert!(signal["created_at"].as_str().unwrap().ends_with('Z'));

    assert!(
        bob.signals(chat, None).await.is_empty(),
        "returned means consumed"
    );
    assert_eq!(
        app.stored_signals().await,
        1,
        "consumed rows stay until cleanup"
    );
}

#[tokio::test]
async fn the_cursor_acknowledges_instead_of_consuming() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    for kind in ["webrtc.offer", "webrtc.ice", "webrtc.ice"] {
        alice.send_signal(chat, kind, json!({})).await;
    }

    let seqs = |signals: Vec<serde_json::Value>| -> Vec<i64> {
        signals.iter().map(|s| s["seq"].as_i64().unwrap()).collect()
    };
    assert_eq!(seqs(bob.signals(chat, Some(0)).await), [1, 2, 3]);
    // The response was "lost": asking again with the same cursor returns the same signals.
    assert_eq!(seqs(bob.signals(chat, Some(0)).await), [1, 2, 3]);
    assert_eq!(seqs(bob.signals(chat, Some(2)).await), [3]);
    alice.send_signal(chat, "webrtc.ice", json!({})).await;
    assert_eq!(seqs(bob.signals(chat, Some(3)).await), [4]);
    assert_eq!(seqs(bob.signals(chat, Some(4)).await), Vec::<i64>::new());

    // Everything acknowledged is consumed: the guide's plain GET finds nothing left.
    assert!(bob.signals(chat, None).await.is_empty());
    let inspection = app.store.inspect(&Default::default()).await.unwrap();
    assert_eq!(inspection.unconsumed, 0);
}

#[tokio::test]
async fn acknowledging_one_chat_leaves_the_others_alone() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let with_alice = app.chat(&alice, &[&bob]).await;
    let with_carol = app.chat(&carol, &[&bob]).await;
    alice
        .send_signal(with_alice, "webrtc.offer", json!(1))
        .await; // bob's seq 1
    carol
        .send_signal(with_carol, "webrtc.offer", json!(2))
        .await; // bob's seq 2
    alice.send_signal(with_alice, "webrtc.ice", json!(3)).await; // bob's seq 3

    assert_eq!(bob.signals(with_alice, Some(3)).await.len(), 0);
    let from_carol = bob.signals(with_carol, Some(0)).await;
    assert_eq!(
        from_carol.len(),
        1,
        "carol's signal was not acknowledged by the other chat"
    );
    assert_eq!(from_carol[0]["seq"], 2);
}

#[tokio::test]
async fn the_same_signal_id_is_stored_once() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let signal = json!({"chat_id": chat, "type": "webrtc.offer", "payload": {"sdp": "x"}, "signal_id": "offer-1"});

    let (status, first) = alice.post("/api/p2p/send-signal/", signal.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    // The second delivery path (or a retry) sends the same id: nothing new, same answer.
    let (status, second) = alice.post("/api/p2p/send-signal/", signal.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first, second);
    assert_eq!(
        second,
        json!({"success": true, "recipients": 1, "online": 0, "signal_id": "offer-1"})
    );
    assert_eq!(app.stored_signals().await, 1);
    assert_eq!(bob.signals(chat, None).await.len(), 1);

    // Another sender may use the same id: ids are per sender.
    let (status, _) = bob.post("/api/p2p/send-signal/", signal.clone()).await;
    assert_eq!(status, StatusCode::CREATED);

    // Reusing the id for a different signal is a client bug worth a clear 409.
    let mut different = signal;
    different["type"] = json!("webrtc.answer");
    let (status, body) = alice.post("/api/p2p/send-signal/", different).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error_message(&body).contains("offer-1"));
    assert_eq!(app.stored_signals().await, 2);
}

#[tokio::test]
async fn concurrent_duplicates_store_once() {
    let app = spawn_app().await;
    let (alice, _bob, chat) = app.alice_and_bob().await;
    let signal = json!({"chat_id": chat, "type": "webrtc.ice", "payload": {}, "signal_id": "same"});
    let sends = (0..10).map(|_| alice.post("/api/p2p/send-signal/", signal.clone()));
    let results = futures_util::future::join_all(sends).await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let repeated = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!((created, repeated), (1, 9));
    assert_eq!(app.stored_signals().await, 1);
}

#[tokio::test]
async fn to_addresses_one_participant() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let eve = app.register("eve").await;
    let chat = app.chat(&alice, &[&bob, &carol]).await;

    let (status, sent) = alice.send_signal(chat, "call.invite", json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        sent["recipients"], 2,
        "without `to`, every other participant"
    );

    let (status, sent) = alice
        .post(
            "/api/p2p/send-signal/",
            json!({"chat_id": chat, "type": "webrtc.offer", "payload": {}, "to": carol.id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(sent["recipients"], 1);
    assert_eq!(bob.signals(chat, None).await.len(), 1);
    let for_carol = carol.signals(chat, None).await;
    assert_eq!(for_carol.len(), 2);
    assert_eq!(for_carol[1]["type"], "webrtc.offer");

    for (to, expected) in [(eve.id, "not a participant"), (alice.id, "own sender")] {
        let (status, body) = alice
            .post(
                "/api/p2p/send-signal/",
                json!({"chat_id": chat, "type": "webrtc.offer", "payload": {}, "to": to}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_message(&body).contains(expected), "{body}");
    }
    assert_eq!(app.stored_signals().await, 3);
}

#[tokio::test]
async fn seq_has_no_gaps_and_keeps_each_senders_order_under_concurrency() {
    const PER_SENDER: i64 = 40;
    let app = spawn_app().await;
    let bob = app.register("bob").await;
    let mut senders = Vec::new();
    for name in ["alice", "carol", "dave"] {
        senders.push(app.register(name).await);
    }
    let others: Vec<_> = senders.iter().collect();
    let chat = app.chat(&bob, &others).await;

    send_numbered_concurrently(&senders, chat, PER_SENDER).await;

    let signals = bob.signals(chat, Some(0)).await;
    assert_eq!(signals.len() as i64, 3 * PER_SENDER);
    assert_gap_free_in_sender_order(&signals);
}

#[tokio::test]
async fn health_and_openapi() {
    let app = spawn_app().await;
    let anon = app.anonymous();
    let (status, body) = anon.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, api) = anon.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(api["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/p2p/send-signal/",
        "/api/p2p/{chat_id}/signals/",
        "/api/auth/login",
        "/api/chats/",
    ] {
        assert!(api["paths"][path].is_object(), "{path} is documented");
    }
}
