//! `GET /api/p2p/ice-servers/`: what a browser gets for its RTCPeerConnection, and TURN REST
//! credentials a coturn holding the same secret would accept.

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::clock::Clock;
use switchboard::turn::credentials::{self, TurnSecret};

use crate::helpers::spawn_app_with;

fn turn_entry(body: &Value) -> &Value {
    body["iceServers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["username"].is_string())
        .unwrap_or_else(|| panic!("no TURN entry with credentials in {body}"))
}

#[tokio::test]
async fn external_turn_urls_get_credentials_minted_for_the_caller() {
    let app = spawn_app_with(|c| {
        c.turn_secret = Some("coturn-static-auth-secret".into());
        c.turn_urls = vec!["turn:turn.example.org:3478?transport=udp".into()];
        c.turn_credential_ttl = std::time::Duration::from_secs(600);
        c.ice_servers = vec![switchboard::config::IceServer {
            urls: vec!["stun:stun.example.org:3478".into()],
            username: None,
            credential: None,
        }];
    })
    .await;
    let alice = app.register("alice").await;
    let (status, body) = alice.get("/api/p2p/ice-servers/").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ttl"], json!(600));
    let turn = turn_entry(&body);
    assert_eq!(
        turn["urls"],
        json!(["turn:turn.example.org:3478?transport=udp"])
    );
    let username = turn["username"].as_str().unwrap();
    let (user, expected) = credentials::check(
        &TurnSecret::new("coturn-static-auth-secret"),
        username,
        app.clock.now().millis() as u64 / 1000,
    )
    .expect("a fresh credential checks out");
    assert_eq!(user.user.0, alice.id);
    assert_eq!(turn["credential"], json!(expected));
    assert_eq!(
        user.expires_at,
        app.clock.now().millis() as u64 / 1000 + 600,
        "expiry is now + ttl"
    );
    // The extra servers follow, untouched.
    assert_eq!(
        body["iceServers"].as_array().unwrap().last().unwrap(),
        &json!({"urls": ["stun:stun.example.org:3478"]})
    );
}

#[tokio::test]
async fn no_third_party_stun_server_by_default() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.register("alice").await;
    let (status, body) = alice.get("/api/p2p/ice-servers/").await;
    assert_eq!(status, StatusCode::OK);
    let text = body.to_string();
    assert!(!text.contains("google"), "{text}");
}

#[tokio::test]
async fn ice_servers_need_a_session() {
    let app = spawn_app_with(|_| {}).await;
    let (status, _) = app.anonymous().get("/api/p2p/ice-servers/").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_generated_secret_is_kept_in_the_store_and_shared() {
    let app = spawn_app_with(|c| {
        c.turn_urls = vec!["turn:turn.example.org:3478".into()];
    })
    .await;
    let alice = app.register("alice").await;
    let (_, body) = alice.get("/api/p2p/ice-servers/").await;
    let turn = turn_entry(&body);
    // Another node (or a restart) on the same database reads the same secret.
    let secret = switchboard::turn::secret::load_or_create(app.store.as_ref(), None)
        .await
        .unwrap();
    assert_eq!(
        turn["credential"],
        json!(credentials::password(
            &secret,
            turn["username"].as_str().unwrap()
        ))
    );
}

#[tokio::test]
async fn the_embedded_server_is_named_by_the_host_the_browser_used() {
    let app = spawn_app_with(|c| {
        c.turn_enabled = true;
        c.turn_listen = "127.0.0.1:0".parse().unwrap();
        c.turn_secret = Some("s3cret".into());
    })
    .await;
    let port = app.turn.as_ref().expect("TURN runs").udp_tcp_addr.port();
    let alice = app.register("alice").await;
    let (status, body) = alice.get("/api/p2p/ice-servers/").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["iceServers"][0],
        json!({"urls": [format!("stun:127.0.0.1:{port}")]})
    );
    let turn = turn_entry(&body);
    assert_eq!(
        turn["urls"],
        json!([
            format!("turn:127.0.0.1:{port}?transport=udp"),
            format!("turn:127.0.0.1:{port}?transport=tcp")
        ]),
        "no turns: without TLS"
    );
    let (_, password) = credentials::check(
        &TurnSecret::new("s3cret"),
        turn["username"].as_str().unwrap(),
        app.clock.now().millis() as u64 / 1000,
    )
    .unwrap();
    assert_eq!(turn["credential"], json!(password));
}

#[tokio::test]
async fn turn_public_host_overrides_the_request_host() {
    let app = spawn_app_with(|c| {
        c.turn_enabled = true;
        c.turn_listen = "127.0.0.1:0".parse().unwrap();
        c.turn_public_host = Some("turn.example.org".into());
    })
    .await;
    let port = app.turn.as_ref().expect("TURN runs").udp_tcp_addr.port();
    let alice = app.register("alice").await;
    let (_, body) = alice.get("/api/p2p/ice-servers/").await;
    assert_eq!(
        turn_entry(&body)["urls"][0],
        json!(format!("turn:turn.example.org:{port}?transport=udp"))
    );
}
