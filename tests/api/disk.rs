//! Disk use stays bounded: the SQLite write-ahead log is checkpointed and cut back under its
//! limit however much was written (issue 12: it used to keep its high-water mark, or grow
//! without end under steady load).

use std::time::Duration;

use serde_json::json;

use crate::helpers::spawn_app_with;
use crate::push_clients::{WsClient, WAIT};

const LIMIT: u64 = 1024 * 1024;

fn wal_size(database_url: &str) -> u64 {
    let path = database_url.trim_start_matches("sqlite://");
    std::fs::metadata(format!("{path}-wal")).map_or(0, |m| m.len())
}

#[tokio::test]
async fn the_wal_is_cut_back_under_its_limit_after_a_burst_of_writes() {
    let app = spawn_app_with(|c| {
        c.sqlite_wal_limit = LIMIT;
        c.send_rate_per_second = 100_000;
        c.send_burst = 100_000;
    })
    .await;
    if !app.database_url.starts_with("sqlite:") {
        return; // PostgreSQL keeps its own log
    }
    let (alice, bob, chat) = app.alice_and_bob().await;
    let (mut ws, _) = WsClient::connect(&app, &alice, 0).await;
    let payload = "x".repeat(6000);
    // ~2,000 signals of 6 KB: 12 MB of payload, several times the limit, as fast as one
    // pipelined WebSocket stores them.
    let mut peak = 0;
    for round in 0..20 {
        for n in 0..100 {
            ws.send(
                json!({"op": "send", "ref": n, "chat_id": chat, "type": "bulk.data",
                           "payload": {"round": round, "blob": payload}}),
            )
            .await;
        }
        for _ in 0..100 {
            assert_eq!(ws.frame().await["op"], "sent");
        }
        peak = peak.max(wal_size(&app.database_url));
    }
    assert!(
        peak > LIMIT / 2,
        "the test wrote enough to need a checkpoint (peak {peak} B)"
    );

    // Bounded wait: the checkpointer looks at the log every 100 ms.
    let deadline = tokio::time::Instant::now() + WAIT;
    while wal_size(&app.database_url) > LIMIT / 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the WAL stayed at {} B (peak {peak} B), over half its {LIMIT} B limit",
            wal_size(&app.database_url)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing was lost on the way: bob can read every signal.
    let mut after = 0;
    let mut total = 0;
    loop {
        let page = bob.signals(chat, Some(after)).await;
        if page.is_empty() {
            break;
        }
        total += page.len();
        after = page.last().unwrap()["seq"].as_i64().unwrap();
    }
    assert_eq!(total, 2000);
}
