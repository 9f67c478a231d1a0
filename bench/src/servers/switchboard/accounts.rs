//! The bench's Switchboard users: registered once per run, each logged in (session cookie and
//! CSRF token), paired two by two in direct chats, and reused by every scenario.
//!
//! Registration hashes a password with Argon2 (tens of ms of server CPU), which is why the pool
//! is made once, a few at a time, before any measurement starts.

use std::sync::atomic::{AtomicI64, Ordering};

use serde::Deserialize;
use serde_json::json;

use super::api::{Api, ApiError};

/// A logged-in user.
#[derive(Debug)]
pub struct Account {
    pub username: String,
    /// The `Cookie` header value: `sessionid=…; csrftoken=…`.
    pub cookie: String,
    /// Sent as `X-CSRFToken` on every POST.
    pub csrf: String,
    /// The highest seq any of this user's receivers processed: where the next one resumes, so
    /// nothing of an earlier scenario is delivered again.
    cursor: AtomicI64,
}

impl Account {
    pub fn cursor(&self) -> i64 {
        self.cursor.load(Ordering::Relaxed)
    }

    pub fn advance_cursor(&self, seq: i64) {
        self.cursor.fetch_max(seq, Ordering::Relaxed);
    }
}

#[derive(Deserialize)]
struct Registered {
    csrf_token: String,
}

#[derive(Deserialize)]
struct CreatedChat {
    id: i64,
}

/// Every user shares this password; it only has to pass validation.
const PASSWORD: &str = "bench-password-1";

/// Registers `username` (which logs it in).
pub async fn register(api: &Api, username: String) -> Result<Account, ApiError> {
    let body = json!({"username": username, "password": PASSWORD, "display_name": username});
    let response = api
        .post_anonymous("/api/auth/register", body.to_string())
        .await?;
    // The cookies to echo: `name=value` of each Set-Cookie, as a browser would send them.
    let cookie = response
        .headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ");
    let registered: Registered = response.json(201)?;
    Ok(Account {
        username,
        cookie,
        csrf: registered.csrf_token,
        cursor: AtomicI64::new(0),
    })
}

/// Opens the direct chat of `creator` with `other`; returns its id.
pub async fn direct_chat(api: &Api, creator: &Account, other: &Account) -> Result<i64, ApiError> {
    let body = json!({"participants": [other.username]}).to_string();
    let response = api.post(creator, "/api/chats/", body).await?;
    // 201 for a new chat; 200 if this pair already had one (a rerun).
    let status = response.status;
    let chat: CreatedChat = response.json(if status == 200 { 200 } else { 201 })?;
    Ok(chat.id)
}

#[cfg(test)]
impl Account {
    pub fn for_tests() -> Self {
        Self {
            username: "tester".to_owned(),
            cookie: String::new(),
            csrf: String::new(),
            cursor: AtomicI64::new(0),
        }
    }
}
