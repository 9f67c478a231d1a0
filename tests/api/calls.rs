//! The call record (docs/CALLS.md): a call is answered once, by one device; busy; history
//! messages; the calls a reloaded tab can rejoin; unread counts and presence in the chat list.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_message, spawn_app, spawn_app_with, TestApp, TestUser};
use crate::push_clients::{WsClient, WAIT};

const CALL: &str = "c-1";

async fn invite(alice: &TestUser, chat: i64, call: &str, device: &str) -> (StatusCode, Value) {
    alice
        .send_signal(
            chat,
            "call.invite",
            json!({"call_id": call, "device": device, "video": true}),
        )
        .await
}

async fn signal(
    user: &TestUser,
    chat: i64,
    kind: &str,
    call: &str,
    device: &str,
) -> (StatusCode, Value) {
    user.send_signal(chat, kind, json!({"call_id": call, "device": device}))
        .await
}

/// The chat's call event messages, oldest first.
async fn call_events(user: &TestUser, chat: i64) -> Vec<Value> {
    let (status, body) = user.get(&format!("/api/chats/{chat}/messages/")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "call")
        .cloned()
        .collect()
}

async fn active_calls(user: &TestUser) -> Vec<Value> {
    let (status, body) = user.get("/api/calls/active").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["calls"].as_array().unwrap().clone()
}

fn types(signals: &[Value]) -> Vec<&str> {
    signals
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_call_is_answered_once_and_a_late_accept_elsewhere_is_refused() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    assert_eq!(
        invite(&alice, chat, CALL, "a1").await.0,
        StatusCode::CREATED
    );
    let accept = json!({"call_id": CALL, "device": "b1"});
    let (status, _) = bob
        .send_with_id(chat, "call.accept", accept.clone(), "accept-1")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // The same accept again (its second path, a retry) is fine, and stored once.
    let (status, again) = bob
        .send_with_id(chat, "call.accept", accept, "accept-1")
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");

    // Bob's other tab, still ringing, presses Accept, then Decline, then gives up with call.end.
    let (status, body) = signal(&bob, chat, "call.accept", CALL, "b2").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "answered_elsewhere");
    assert_eq!(
        error_message(&body),
        "This call was already answered on another device."
    );
    let (status, body) = signal(&bob, chat, "call.decline", CALL, "b2").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("answered_elsewhere"))
    );
    let (status, body) = signal(&bob, chat, "call.end", CALL, "b2").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_in_call"))
    );

    // Alice got one accept and nothing from the stale tab; the call is still on.
    let to_alice = alice.signals(chat, Some(0)).await;
    assert_eq!(types(&to_alice), ["call.accept"]);
    let calls = active_calls(&alice).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["state"], "active");
    assert_eq!(calls[0]["answered_device"], "b1");
    assert_eq!(calls[0]["caller_device"], "a1");

    // Bob's tabs learned that b1 answered (b1 itself ignores it by its device).
    let to_bob = bob.signals(chat, Some(0)).await;
    let notice = to_bob
        .iter()
        .find(|s| s["type"] == "call.answered_elsewhere")
        .expect("an answered-elsewhere notice for bob's own tabs");
    assert_eq!(
        notice["payload"],
        json!({"call_id": CALL, "device": "b1", "outcome": "answered"})
    );
}

#[tokio::test]
async fn the_answered_elsewhere_notice_is_pushed_to_the_other_tabs_at_once() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let (mut second_tab, _) = WsClient::connect(&app, &bob, 0).await;
    invite(&alice, chat, CALL, "a1").await;
    assert_eq!(second_tab.signal().await["type"], "call.invite");
    signal(&bob, chat, "call.decline", CALL, "b1").await;
    let notice = second_tab.signal().await;
    assert_eq!(notice["type"], "call.answered_elsewhere");
    assert_eq!(notice["payload"]["outcome"], "declined");
}

#[tokio::test]
async fn someone_in_a_call_is_busy_and_the_refused_call_is_in_their_history() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let carol = app.register("carol").await;
    let carol_chat = app.chat(&carol, &[&bob]).await;
    invite(&alice, chat, CALL, "a1").await;
    signal(&bob, chat, "call.accept", CALL, "b1").await;

    let (status, body) = invite(&carol, carol_chat, "c-2", "c1").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "busy");
    assert_eq!(error_message(&body), "Bob is in another call.");
    assert!(
        bob.signals(carol_chat, Some(0)).await.is_empty(),
        "nothing rings for bob"
    );
    let events = call_events(&bob, carol_chat).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["call"]["outcome"], "busy");
    assert_eq!(events[0]["sender"]["username"], "carol");

    // Alice, in the call, cannot place a second one from another tab either.
    let (status, body) = invite(&alice, chat, "c-3", "a2").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_in_call"))
    );
}

#[tokio::test]
async fn every_ending_is_written_to_the_chat_with_its_outcome() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;

    invite(&alice, chat, "declined", "a1").await;
    signal(&bob, chat, "call.decline", "declined", "b1").await;

    invite(&alice, chat, "no-answer", "a1").await;
    alice
        .send_signal(
            chat,
            "call.cancel",
            json!({"call_id": "no-answer", "device": "a1", "reason": "no-answer"}),
        )
        .await;

    invite(&alice, chat, "offline", "a1").await;
    alice
        .send_signal(
            chat,
            "call.cancel",
            json!({"call_id": "offline", "device": "a1", "reason": "unreachable"}),
        )
        .await;

    invite(&alice, chat, "talked", "a1").await;
    signal(&bob, chat, "call.accept", "talked", "b1").await;
    app.clock.advance(Duration::from_secs(125));
    signal(&bob, chat, "call.end", "talked", "b1").await;

    invite(&alice, chat, "failed", "a1").await;
    signal(&bob, chat, "call.accept", "failed", "b1").await;
    alice
        .send_signal(
            chat,
            "call.end",
            json!({"call_id": "failed", "device": "a1", "reason": "connection-failed", "cause": "relay-failed"}),
        )
        .await;

    let events = call_events(&bob, chat).await;
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["call"]["outcome"].as_str().unwrap(),
                e["call"]["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("declined", ""),
            ("missed", "no-answer"),
            ("missed", "offline"),
            ("ended", "hangup"),
            ("failed", "relay-failed"),
        ]
    );
    let talked = &events[3];
    assert_eq!(talked["call"]["duration_ms"], 125_000);
    assert_eq!(talked["body"], "Video call · 2:05");
    assert_eq!(talked["call"]["ended_by"], bob.id);
    assert_eq!(events[1]["body"], "Missed video call");
    assert_eq!(
        call_events(&alice, chat).await,
        events,
        "both see the same history"
    );
    assert!(active_calls(&alice).await.is_empty());
}

#[tokio::test]
async fn a_reloaded_tab_finds_its_call_with_the_devices_on_record() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    invite(&alice, chat, CALL, "a1").await;
    let ringing = active_calls(&bob).await;
    assert_eq!(ringing.len(), 1);
    assert_eq!(ringing[0]["state"], "ringing");
    assert_eq!(ringing[0]["caller"]["username"], "alice");
    assert_eq!(ringing[0]["callee"]["username"], "bob");
    assert_eq!(ringing[0]["chat_id"], chat);
    assert_eq!(ringing[0]["answered_device"], Value::Null);

    signal(&bob, chat, "call.accept", CALL, "b1").await;
    // Signals that do not change the record pass from the devices in the call.
    for kind in ["call.rejoin", "call.media", "call.away"] {
        assert_eq!(
            signal(&alice, chat, kind, CALL, "a1").await.0,
            StatusCode::CREATED,
            "{kind}"
        );
    }
    assert_eq!(active_calls(&alice).await[0]["state"], "active");
    let (status, _) = app.anonymous().get("/api/calls/active").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signals_without_a_call_record_are_relayed_as_before() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    // The guide's flow: no invite, no call_id, no device.
    assert_eq!(
        alice.send_signal(chat, "call.end", json!({})).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        alice
            .send_signal(chat, "call.accept", json!({"call_id": "unknown"}))
            .await
            .0,
        StatusCode::CREATED
    );
    // An older client without devices still answers and hangs up.
    alice
        .send_signal(chat, "call.invite", json!({"call_id": CALL}))
        .await;
    assert_eq!(
        bob.send_signal(chat, "call.accept", json!({"call_id": CALL}))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        bob.send_signal(chat, "call.end", json!({"call_id": CALL}))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(call_events(&alice, chat).await.len(), 1);
    // A malformed call_id is a 400, and nothing is stored.
    let (status, body) = alice
        .send_signal(chat, "call.invite", json!({"call_id": "<bad>"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn someone_elses_call_id_cannot_be_taken_over() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    invite(&alice, chat, CALL, "a1").await;
    let (status, body) = invite(&bob, chat, CALL, "b1").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("call_id_taken"))
    );
    // The caller cannot answer their own call.
    let (status, body) = signal(&alice, chat, "call.accept", CALL, "a1").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_in_call"))
    );
}

#[tokio::test]
async fn when_both_call_at_once_the_answered_call_wins_and_the_other_leaves_no_trace() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    assert_eq!(
        invite(&alice, chat, "from-alice", "a1").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        invite(&bob, chat, "from-bob", "b1").await.0,
        StatusCode::CREATED
    );
    signal(&bob, chat, "call.accept", "from-alice", "b1").await;
    let calls = active_calls(&bob).await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["call_id"], "from-alice");
    assert!(call_events(&bob, chat).await.is_empty());
}

#[tokio::test]
async fn calls_nobody_ends_are_ended_by_the_server() {
    let app = spawn_app_with(|c| {
        c.cleanup_interval = Duration::from_millis(20);
        c.call_ring_timeout = Duration::from_secs(90);
        c.call_rejoin_grace = Duration::from_secs(30);
    })
    .await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    // The caller's tab vanished mid-ring.
    invite(&alice, chat, "rang-out", "a1").await;
    app.clock.advance(Duration::from_secs(91));
    let events = wait_for_events(&app, &bob, chat, 1).await;
    assert_eq!(events[0]["call"]["outcome"], "missed");
    assert_eq!(events[0]["call"]["reason"], "no-answer");
    // Both closed their tabs mid-call: nobody online. Once seen orphaned, the grace runs.
    invite(&alice, chat, "talking", "a1").await;
    signal(&bob, chat, "call.accept", "talking", "b1").await;
    app.clock.advance(Duration::from_secs(31));
    let events = wait_for_events(&app, &bob, chat, 2).await;
    assert_eq!(events[1]["call"]["outcome"], "ended");
    assert_eq!(events[1]["call"]["reason"], "connection-lost");
    assert!(active_calls(&bob).await.is_empty());
}

/// Waits (bounded) for the chat to hold `count` call events; the sweep runs in the background.
async fn wait_for_events(app: &TestApp, user: &TestUser, chat: i64, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = call_events(user, chat).await;
        if events.len() >= count {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {count} call events"
        );
        // The grace counts from the pass that first saw the call orphaned, which may come after
        // the test's advance: let time go on.
        app.clock.advance(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_chat_list_shows_the_last_message_unread_counts_and_presence() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let carol = app.register("carol").await;
    let quiet = app.chat(&carol, &[&bob]).await;
    let entry = |list: &Value, id: i64| {
        list["chats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap()
    };

    let (_, list) = bob.get("/api/chats/").await;
    assert_eq!(entry(&list, chat)["last_message"], Value::Null);
    assert_eq!(entry(&list, chat)["unread"], 0);

    let mut last = 0;
    app.clock.advance(Duration::from_secs(1));
    for text in ["hi", "are you there?"] {
        let (status, message) = alice
            .post(
                &format!("/api/chats/{chat}/messages/"),
                json!({"body": text}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        last = message["id"].as_i64().unwrap();
    }
    let (_, list) = bob.get("/api/chats/").await;
    assert_eq!(
        list["chats"][0]["id"], chat,
        "the chat with news comes first"
    );
    let with_alice = entry(&list, chat);
    assert_eq!(with_alice["unread"], 2);
    assert_eq!(with_alice["last_message"]["body"], "are you there?");
    assert_eq!(with_alice["last_message"]["kind"], "text");
    assert_eq!(entry(&list, quiet)["unread"], 0);
    let (_, list) = alice.get("/api/chats/").await;
    assert_eq!(
        entry(&list, chat)["unread"],
        0,
        "your own messages are not unread"
    );

    let (status, read) = bob
        .post(
            &format!("/api/chats/{chat}/read"),
            json!({"upto": last - 1}),
        )
        .await;
    assert_eq!((status, read["unread"].as_u64()), (StatusCode::OK, Some(1)));
    let (_, read) = bob
        .post(&format!("/api/chats/{chat}/read"), json!({"upto": last}))
        .await;
    assert_eq!(read["unread"], 0);
    let (_, read) = bob
        .post(&format!("/api/chats/{chat}/read"), json!({"upto": 1}))
        .await;
    assert_eq!(read["unread"], 0, "the marker never moves back");
    let (status, _) = carol
        .post(&format!("/api/chats/{chat}/read"), json!({"upto": last}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = bob
        .post(&format!("/api/chats/{chat}/read"), json!({"upto": -1}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Presence: a live push connection makes bob online for alice.
    let online = |list: &Value| {
        entry(list, chat)["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["username"] == "bob")
            .unwrap()["online"]
            .as_bool()
            .unwrap()
    };
    assert!(!online(&alice.get("/api/chats/").await.1));
    let (ws, _) = WsClient::connect(&app, &bob, 0).await;
    assert!(online(&alice.get("/api/chats/").await.1));
    drop(ws);
}
