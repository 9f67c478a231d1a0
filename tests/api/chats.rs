use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{error_message, spawn_app};

#[tokio::test]
async fn create_list_and_get_a_chat() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;

    let (status, chat) = alice
        .post(
            "/api/chats/",
            json!({"participants": ["bob"], "title": "Planning"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");
    assert_eq!(chat["title"], "Planning");
    let names: Vec<_> = chat["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"], "the creator is included");
    let id = chat["id"].as_i64().unwrap();

    for user in [&alice, &bob] {
        let (status, list) = user.get("/api/chats/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["chats"][0]["id"], id);
        let (status, one) = user.get(&format!("/api/chats/{id}/")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one["participants"], chat["participants"]);
    }
}

#[tokio::test]
async fn only_participants_see_a_chat() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let eve = app.register("eve").await;
    let chat = app.chat(&alice, &[&bob]).await;

    let (status, list) = eve.get("/api/chats/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["chats"], json!([]));
    for path in [
        format!("/api/chats/{chat}/"),
        format!("/api/chats/{chat}/messages/"),
    ] {
        let (status, body) = eve.get(&path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        error_message(&body);
    }
    let (status, _) = eve
        .post(
            &format!("/api/chats/{chat}/messages/"),
            json!({"body": "hi"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = alice.get("/api/chats/999/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = alice.get("/api/chats/abc/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_direct_chat_exists_once() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    app.register("bob").await;
    let (status, first) = alice
        .post("/api/chats/", json!({"participants": ["bob"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["title"], json!(null));
    let (status, again) = alice
        .post("/api/chats/", json!({"participants": ["Bob", "alice"]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], first["id"]);
}

#[tokio::test]
async fn chat_creation_is_validated() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    for (body, expected) in [
        (json!({"participants": []}), "at least one other"),
        (json!({"participants": ["alice"]}), "at least one other"),
        (json!({"participants": ["ghost"]}), "unknown user(s): ghost"),
        (json!({"participants": ["bad name"]}), "not valid"),
        (json!({"participants": "bob"}), "Invalid request body"),
        (json!({"title": "x"}), "participants"),
    ] {
        let (status, response) = alice.post("/api/chats/", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(error_message(&response).contains(expected), "{response}");
    }
    let (_, list) = alice.get("/api/chats/").await;
    assert_eq!(list["chats"], json!([]));
}

#[tokio::test]
async fn messages_are_posted_and_listed_in_order() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let path = format!("/api/chats/{chat}/messages/");
    let (status, message) = alice.post(&path, json!({"body": "hello bob"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(message["sender"]["username"], "alice");
    let (status, _) = bob.post(&path, json!({"body": "hi alice"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = bob.post(&path, json!({"body": "   "})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, list) = bob.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    let bodies: Vec<_> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["hello bob", "hi alice"]);
    let first_id = list["messages"][1]["id"].as_i64().unwrap();
    let (_, older) = bob.get(&format!("{path}?before={first_id}")).await;
    assert_eq!(older["messages"].as_array().unwrap().len(), 1);
}
