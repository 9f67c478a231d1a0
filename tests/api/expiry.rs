//! TTLs and cleanup, with the app's clock moved by hand instead of sleeping.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use switchboard::cleanup::{run_once, Retention};

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn call_signals_older_than_30s_are_never_returned() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    alice.send_signal(chat, "webrtc.offer", json!({})).await;
    alice.send_signal(chat, "call.invite", json!({})).await;
    alice.send_signal(chat, "typing", json!({})).await;

    app.clock.advance(Duration::from_secs(29));
    assert_eq!(
        bob.signals(chat, Some(0)).await.len(),
        3,
        "still fresh at 29 s"
    );
    app.clock.advance(Duration::from_secs(2));
    let left = bob.signals(chat, Some(0)).await;
    let kinds: Vec<_> = left.iter().map(|s| s["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["typing"],
        "call signals expire, other signals do not"
    );
    assert_eq!(bob.signals(chat, None).await.len(), 1);
}

#[tokio::test]
async fn the_call_ttl_is_configurable() {
    let app = spawn_app_with(|c| c.call_signal_ttl = Duration::from_secs(5)).await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    alice.send_signal(chat, "webrtc.offer", json!({})).await;
    app.clock.advance(Duration::from_secs(6));
    assert!(bob.signals(chat, None).await.is_empty());
}

#[tokio::test]
async fn cleanup_deletes_consumed_after_1_minute_and_the_rest_after_5() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let retention = Retention {
        consumed: app.config.consumed_retention,
        unconsumed: app.config.unconsumed_retention,
    };
    alice.send_signal(chat, "typing", json!(1)).await;
    assert_eq!(bob.signals(chat, None).await.len(), 1); // consumed now
    alice.send_signal(chat, "typing", json!(2)).await; // stays unconsumed
    let cleanup = || run_once(app.store.as_ref(), &app.clock, retention);

    app.clock.advance(Duration::from_secs(59));
    assert_eq!(cleanup().await.unwrap().consumed, 0);
    assert_eq!(app.stored_signals().await, 2);

    app.clock.advance(Duration::from_secs(2));
    let report = cleanup().await.unwrap();
    assert_eq!((report.consumed, report.stale), (1, 0));
    assert_eq!(app.stored_signals().await, 1);

    app.clock.advance(Duration::from_secs(4 * 60));
    let report = cleanup().await.unwrap();
    assert_eq!((report.consumed, report.stale), (0, 1));
    assert_eq!(app.stored_signals().await, 0);
    assert_eq!(cleanup().await.unwrap(), Default::default(), "idempotent");

    // The idempotency record went with it: the same signal_id may be used again.
    let signal = json!({"chat_id": chat, "type": "typing", "payload": 3, "signal_id": "again"});
    let (status, _) = alice.post("/api/p2p/send-signal/", signal.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    app.clock.advance(Duration::from_secs(301));
    cleanup().await.unwrap();
    let (status, _) = alice.post("/api/p2p/send-signal/", signal).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn the_background_task_runs_cleanup_on_its_own() {
    let app = spawn_app_with(|c| c.cleanup_interval = Duration::from_millis(20)).await;
    let (alice, _bob, chat) = app.alice_and_bob().await;
    alice.send_signal(chat, "webrtc.offer", json!({})).await;
    assert_eq!(app.stored_signals().await, 1);
    app.clock.advance(Duration::from_secs(301));
    // Await the task's effect (bounded): it must delete the stale row by itself.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.stored_signals().await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "cleanup task never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
