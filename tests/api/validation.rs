//! Bad input gets a clear JSON error with the right status, and stores nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{error_message, spawn_app, spawn_app_with};

#[tokio::test]
async fn every_bad_signal_is_refused_and_nothing_is_stored() {
    let app = spawn_app_with(|c| c.max_payload_bytes = 1024).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let eve = app.register("eve").await;
    let chat = app.chat(&alice, &[&bob]).await;
    let big = "x".repeat(1100);

    let cases = [
        (
            json!({"type": "webrtc.offer", "payload": {}}),
            StatusCode::BAD_REQUEST,
            "chat_id",
        ),
        (
            json!({"chat_id": chat, "payload": {}}),
            StatusCode::BAD_REQUEST,
            "type",
        ),
        (
            json!({"chat_id": chat, "type": "webrtc.offer"}),
            StatusCode::BAD_REQUEST,
            "payload",
        ),
        (
            json!({"chat_id": true, "type": "webrtc.offer", "payload": {}}),
            StatusCode::BAD_REQUEST,
            "chat_id",
        ),
        (
            json!({"chat_id": "five", "type": "webrtc.offer", "payload": {}}),
            StatusCode::BAD_REQUEST,
            "integer",
        ),
        (
            json!({"chat_id": -1, "type": "webrtc.offer", "payload": {}}),
            StatusCode::BAD_REQUEST,
            "positive",
        ),
        (
            json!({"chat_id": chat, "type": 7, "payload": {}}),
            StatusCode::BAD_REQUEST,
            "type",
        ),
        (
            json!({"chat_id": chat, "type": "WebRTC Offer", "payload": {}}),
            StatusCode::BAD_REQUEST,
            "^[a-z]",
        ),
        (
            json!({"chat_id": chat, "type": "a".repeat(65), "payload": {}}),
            StatusCode::BAD_REQUEST,
            "^[a-z]",
        ),
        (
            json!({"chat_id": chat, "type": "webrtc.offer", "payload": {}, "signal_id": "no spaces"}),
            StatusCode::BAD_REQUEST,
            "signal_id",
        ),
        (
            json!({"chat_id": chat, "type": "webrtc.offer", "payload": {}, "signal_id": 5}),
            StatusCode::BAD_REQUEST,
            "signal_id",
        ),
        (
            json!({"chat_id": chat, "type": "webrtc.offer", "payload": {}, "to": "bob"}),
            StatusCode::BAD_REQUEST,
            "to",
        ),
        (
            json!({"chat_id": chat, "type": "webrtc.offer", "payload": {}, "to": eve.id}),
            StatusCode::BAD_REQUEST,
            "not a participant",
        ),
        (
            json!({"chat_id": chat, "type": "webrtc.offer", "payload": {"sdp": big}}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit is 1024",
        ),
        (
            json!({"chat_id": 999, "type": "webrtc.offer", "payload": {}}),
            StatusCode::NOT_FOUND,
            "does not exist",
        ),
    ];
    for (body, status, expected) in cases {
        let (got, response) = alice.post("/api/p2p/send-signal/", body.clone()).await;
        assert_eq!(got, status, "{body} -> {response}");
        let message = error_message(&response);
        assert!(
            message.contains(expected),
            "{body}: {message:?} should mention {expected:?}"
        );
    }

    let (status, body) = eve.send_signal(chat, "webrtc.offer", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error_message(&body).contains("not a participant"));

    let (status, body) = alice
        .post_raw(
            "/api/p2p/send-signal/",
            r#"{"chat_id": 1, "type": "#,
            Some("application/json"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).starts_with("Malformed JSON"));

    let (status, body) = alice
        .post_raw("/api/p2p/send-signal/", r#"{"chat_id": 1}"#, None)
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    error_message(&body);

    let (status, body) = alice
        .post_raw(
            "/api/p2p/send-signal/",
            vec![b' '; 2 * 1024 * 1024],
            Some("application/json"),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    error_message(&body);

    assert_eq!(
        app.stored_signals().await,
        0,
        "no refused request stored anything"
    );
    assert!(bob.signals(chat, None).await.is_empty());
}

#[tokio::test]
async fn a_string_chat_id_is_accepted_like_the_guides_client_sends_it() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let (status, _) = alice
        .post(
            "/api/p2p/send-signal/",
            json!({"chat_id": chat.to_string(), "type": "webrtc.offer", "payload": null}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(bob.signals(chat, None).await[0]["payload"], json!(null));
}

#[tokio::test]
async fn bad_fetches_are_refused() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let eve = app.register("eve").await;
    let chat = app.chat(&alice, &[&bob]).await;
    for (user, path, status) in [
        (
            &bob,
            format!("/api/p2p/{chat}/signals/?after=-1"),
            StatusCode::BAD_REQUEST,
        ),
        (
            &bob,
            format!("/api/p2p/{chat}/signals/?after=abc"),
            StatusCode::BAD_REQUEST,
        ),
        (
            &bob,
            "/api/p2p/abc/signals/".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            &bob,
            "/api/p2p/999/signals/".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            &eve,
            format!("/api/p2p/{chat}/signals/"),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (got, body) = user.get(&path).await;
        assert_eq!(got, status, "{path}");
        error_message(&body);
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let anon = app.anonymous();
    let (status, body) = anon.get("/api/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_message(&body).contains("/api/nothing-here"));
    let response = reqwest::Client::new()
        .delete(app.url("/api/p2p/send-signal/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: serde_json::Value = response.json().await.unwrap();
    error_message(&body);
}
