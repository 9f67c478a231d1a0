//! The `switchboard` binary: account and chat commands, the inspection tool, and `serve`'s
//! log lines and shutdown, run as a user would run them.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

use crate::helpers::spawn_app;

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
const WAIT: Duration = Duration::from_secs(20);

fn switchboard(database_url: &str, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(BIN)
        .arg("--database")
        .arg(database_url)
        .args(args)
        .env_remove("SWITCHBOARD_CONFIG")
        .env("SWITCHBOARD_TURN_ENABLED", "false")
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() || !stderr.is_empty(),
        "a failure explains itself"
    );
    (output.status.success(), stdout + &stderr)
}

#[test]
fn user_and_chat_commands() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let (ok, out) = switchboard(
        &db,
        &["user", "create", "alice", "--password", "alice-password"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("Created user alice"), "{out}");
    let (ok, out) = switchboard(&db, &["user", "create", "Bob", "--display-name", "Bob B."]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Password: "),
        "a generated password is printed: {out}"
    );
    let (ok, out) = switchboard(&db, &["user", "create", "alice"]);
    assert!(!ok);
    assert!(out.contains("already taken"), "{out}");

    let (ok, out) = switchboard(&db, &["user", "list"]);
    assert!(ok);
    assert!(
        out.contains("alice") && out.contains("Bob B.") && out.contains("2 user(s)"),
        "{out}"
    );

    let (ok, out) = switchboard(&db, &["chat", "create", "alice", "bob"]);
    assert!(ok, "{out}");
    assert!(out.contains("Created chat 1 between alice, bob"), "{out}");
    let (ok, out) = switchboard(&db, &["chat", "create", "bob", "alice"]);
    assert!(ok);
    assert!(out.contains("Found existing chat 1"), "{out}");
    let (ok, out) = switchboard(&db, &["chat", "create", "alice", "ghost"]);
    assert!(!ok);
    assert!(out.contains("ghost"), "{out}");
}

#[tokio::test]
async fn signals_shows_what_the_database_holds() {
    let app = spawn_app().await;
    let (alice, bob, chat) = app.alice_and_bob().await;
    alice
        .send_signal(chat, "webrtc.offer", json!({"sdp": "x"}))
        .await;
    assert_eq!(bob.signals(chat, None).await.len(), 1);
    alice
        .send_signal(chat, "webrtc.ice", json!({"candidate": "c"}))
        .await;
    bob.send_signal(chat, "webrtc.answer", json!({"sdp": "y"}))
        .await;

    let (ok, out) = switchboard(&app.database_url, &["signals"]);
    assert!(ok, "{out}");
    for expected in [
        "Total signals: 3",
        "Unconsumed signals: 2",
        "webrtc.offer",
        "consumed",
        "unconsumed",
    ] {
        assert!(out.contains(expected), "{expected:?} in\n{out}");
    }

    let (ok, out) = switchboard(&app.database_url, &["signals", "--json"]);
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["total"], 3);
    assert_eq!(report["unconsumed"], 2);
    let recent = report["recent"].as_array().unwrap();
    assert_eq!(recent[0]["type"], "webrtc.answer", "newest first");
    assert_eq!(recent[0]["sender"], "bob");
    assert_eq!(recent[0]["receiver"], "alice");
    assert_eq!(recent[2]["status"], "consumed");
    assert_eq!(recent[1]["status"], "unconsumed");
    let bob_counts = report["per_user"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["username"] == "bob")
        .unwrap();
    assert_eq!(bob_counts["received"], 2);
    assert_eq!(bob_counts["unconsumed"], 1);
    assert_eq!(bob_counts["sent"], 1);

    let (ok, out) = switchboard(
        &app.database_url,
        &[
            "signals",
            "--json",
            "--user",
            "bob",
            "--chat",
            &chat.to_string(),
        ],
    );
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["total"], 3);
    let (ok, out) = switchboard(&app.database_url, &["signals", "--json", "--chat", "999"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["total"], 0);
}

#[tokio::test]
async fn signals_watch_follows_new_signals() {
    let app = spawn_app().await;
    let (alice, _bob, chat) = app.alice_and_bob().await;
    let mut watch = spawn(&[
        "--database",
        &app.database_url,
        "signals",
        "--watch",
        "--json",
    ]);
    let mut out = lines(watch.stdout.take().unwrap());
    let summary: Value = serde_json::from_str(&next_line(&mut out).await).unwrap();
    assert_eq!(summary["total"], 0);

    alice
        .send_signal(chat, "webrtc.offer", json!({"sdp": "x"}))
        .await;
    let row: Value = serde_json::from_str(&next_line(&mut out).await).unwrap();
    assert_eq!(row["type"], "webrtc.offer");
    assert_eq!(row["receiver"], "bob");
    assert_eq!(row["status"], "unconsumed");
    watch.kill().await.unwrap();
}

#[tokio::test]
async fn serve_logs_the_guides_lines_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("serve.db").display());
    let mut server = spawn(&[
        "--database",
        &db,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--demo",
    ]);
    let mut stdout = lines(server.stdout.take().unwrap());
    let mut stderr = lines(server.stderr.take().unwrap());
    let mut passwords = Vec::new();
    let address = loop {
        let line = next_line(&mut stdout).await;
        if let Some(password) = line.split("password: ").nth(1) {
            passwords.push(password.trim().to_owned());
        }
        if let Some(address) = line.strip_prefix("Switchboard is running on ") {
            break address.trim().to_owned();
        }
    };
    assert_eq!(
        passwords.len(),
        2,
        "alice's and bob's passwords are printed"
    );

    let login = |name: &'static str, password: String| {
        let address = address.clone();
        async move {
            let client = reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap();
            let body: Value = client
                .post(format!("{address}/api/auth/login"))
                .json(&json!({"username": name, "password": password}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (
                client,
                body["csrf_token"].as_str().expect("logged in").to_owned(),
            )
        }
    };
    let (alice, csrf) = login("alice", passwords[0].clone()).await;
    let (bob, _) = login("bob", passwords[1].clone()).await;
    let sent = alice
        .post(format!("{address}/api/p2p/send-signal/"))
        .header("X-CSRFToken", csrf)
        .json(&json!({"chat_id": 1, "type": "webrtc.offer", "payload": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 201);
    wait_for_line(
        &mut stderr,
        "[P2P_SEND] Signal stored: webrtc.offer from user 1 (Alice) to 1 users in chat 1",
    )
    .await;
    let got = bob
        .get(format!("{address}/api/p2p/1/signals/"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    wait_for_line(
        &mut stderr,
        "[P2P_GET] Retrieved 1 call signals for user 2 (Bob) in chat 1",
    )
    .await;
    let refused = bob
        .get(format!("{address}/api/p2p/9/signals/"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    wait_for_line(
        &mut stderr,
        "[P2P_GET] Rejected GET /api/p2p/9/signals/ (404): chat 9 does not exist",
    )
    .await;

    let pid = server.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(WAIT, server.wait())
        .await
        .expect("stops promptly")
        .unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
}

#[tokio::test]
async fn log_format_json_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("json.db").display());
    let mut server = spawn(&[
        "--database",
        &db,
        "--log-format",
        "json",
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]);
    let mut stderr = lines(server.stderr.take().unwrap());
    let line = next_line(&mut stderr).await;
    let event: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    assert!(
        event["message"].as_str().unwrap().contains("listening"),
        "{event}"
    );
    assert_eq!(event["level"], "INFO");
    server.kill().await.unwrap();
}

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("SWITCHBOARD_CONFIG")
        .env("SWITCHBOARD_TURN_ENABLED", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts")
}

trait Output: tokio::io::AsyncRead + Unpin {}
impl Output for ChildStdout {}
impl Output for ChildStderr {}

fn lines<R: Output>(output: R) -> Lines<BufReader<R>> {
    BufReader::new(output).lines()
}

async fn next_line<R: Output>(lines: &mut Lines<BufReader<R>>) -> String {
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a line in time")
        .unwrap()
        .expect("the process is still writing")
}

async fn wait_for_line<R: Output>(lines: &mut Lines<BufReader<R>>, expected: &str) {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(expected) {
                return true;
            }
            seen.push(line);
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "{expected:?} not logged; saw:\n{}",
        seen.join("\n")
    );
}
