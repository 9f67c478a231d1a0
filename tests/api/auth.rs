use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{error_message, password_of, spawn_app, spawn_app_with};

#[tokio::test]
async fn register_login_me_logout() {
    let app = spawn_app().await;
    app.register("alice").await;

    let client = app.anonymous();
    let response = client
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "Alice", "password": password_of("alice")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("sessionid="))
        .unwrap();
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Lax"), "{session}");
    let csrf_cookie = cookies
        .iter()
        .find(|c| c.starts_with("csrftoken="))
        .unwrap();
    assert!(
        !csrf_cookie.contains("HttpOnly"),
        "the page must read it: {csrf_cookie}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");
    assert_eq!(body["user"]["display_name"], "Alice");
    assert!(body["user"]["id"].is_i64());
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    assert!(csrf_cookie.starts_with(&format!("csrftoken={csrf}")));

    let mut user = client;
    user.csrf = csrf;
    let (status, me) = user.get("/api/auth/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["username"], "alice");

    let (status, _) = user.post("/api/auth/logout", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = user.get("/api/auth/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    error_message(&body);
}

#[tokio::test]
async fn a_copied_session_cookie_stops_working_after_logout() {
    let app = spawn_app().await;
    app.register("alice").await;
    let plain = reqwest::Client::new();
    let login = plain
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "alice", "password": password_of("alice")}))
        .send()
        .await
        .unwrap();
    let cookie_value = |name: &str| {
        login
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .find_map(|c| c.strip_prefix(&format!("{name}=")))
            .and_then(|c| c.split(';').next())
            .unwrap()
            .to_owned()
    };
    let (session, csrf) = (cookie_value("sessionid"), cookie_value("csrftoken"));
    let cookies = format!("sessionid={session}; csrftoken={csrf}");
    let me = |cookies: String| {
        plain
            .get(app.url("/api/auth/me"))
            .header("Cookie", cookies)
            .send()
    };
    assert_eq!(me(cookies.clone()).await.unwrap().status(), StatusCode::OK);
    let logout = plain
        .post(app.url("/api/auth/logout"))
        .header("Cookie", cookies.clone())
        .header("X-CSRFToken", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    assert_eq!(
        me(cookies).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let app = spawn_app().await;
    app.register("alice").await;
    let anon = app.anonymous();
    let (status, wrong) = anon
        .post_unchecked(
            "/api/auth/login",
            json!({"username": "alice", "password": "nope-nope"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, unknown) = anon
        .post_unchecked(
            "/api/auth/login",
            json!({"username": "mallory", "password": "nope-nope"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_message(&wrong), error_message(&unknown));
}

#[tokio::test]
async fn usernames_are_unique_regardless_of_case() {
    let app = spawn_app().await;
    app.register("alice").await;
    let (status, body) = app
        .anonymous()
        .post_unchecked(
            "/api/auth/register",
            json!({"username": "ALICE", "password": "password123"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error_message(&body).contains("already taken"));
}

#[tokio::test]
async fn registration_can_be_closed() {
    let app = spawn_app_with(|c| c.open_registration = false).await;
    let (status, body) = app
        .anonymous()
        .post_unchecked(
            "/api/auth/register",
            json!({"username": "alice", "password": "password123"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error_message(&body).contains("closed"));
    let users = app.store.list_users().await.unwrap();
    assert!(users.is_empty());
}

#[tokio::test]
async fn registration_validates_its_fields() {
    let app = spawn_app().await;
    let anon = app.anonymous();
    for body in [
        json!({"username": "al", "password": "password123"}),
        json!({"username": "alice", "password": "short"}),
        json!({"username": "alice smith", "password": "password123"}),
        json!({"username": "alice", "password": "password123", "display_name": ""}),
        json!({"username": "alice"}),
        json!({"username": 5, "password": "password123"}),
    ] {
        let (status, response) = anon
            .post_unchecked("/api/auth/register", body.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {response}");
        error_message(&response);
    }
    assert!(app.store.list_users().await.unwrap().is_empty());
}

#[tokio::test]
async fn state_changing_requests_need_the_csrf_header() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    let signal = json!({"chat_id": chat, "type": "webrtc.offer", "payload": {}});

    let (status, body) = alice
        .post_unchecked("/api/p2p/send-signal/", signal.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"success": false, "error": "CSRF token missing or incorrect"})
    );

    let response = alice
        .client
        .post(app.url("/api/p2p/send-signal/"))
        .header("X-CSRFToken", "forged")
        .json(&signal)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // Bob's valid token does not open Alice's session.
    let response = alice
        .client
        .post(app.url("/api/p2p/send-signal/"))
        .header("X-CSRFToken", &bob.csrf)
        .json(&signal)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let (status, _) = alice
        .post_unchecked("/api/chats/", json!({"participants": ["bob"]}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = alice.post_unchecked("/api/auth/logout", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.stored_signals().await, 0);

    let (status, _) = alice.post("/api/p2p/send-signal/", signal).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn everything_but_login_needs_a_session() {
    let app = spawn_app().await;
    let anon = app.anonymous();
    for path in [
        "/api/auth/me",
        "/api/chats/",
        "/api/chats/1/",
        "/api/p2p/1/signals/",
        "/api/p2p/ice-servers/",
    ] {
        let (status, body) = anon.get(path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        error_message(&body);
    }
}
