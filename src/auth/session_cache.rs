//! Live sessions, remembered for a few seconds. Every HTTP request carries its session cookie,
//! and a client on the polling fallback makes one every 1.5 s: reading the session from the
//! store each time was half the cost of an empty poll.
//!
//! The price is bounded staleness: a logout on *this* node takes effect at once (it forgets the
//! entry); a logout on another node, or a session reaching its expiry, takes effect here within
//! [`REMEMBER_FOR`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::domain::Timestamp;
use crate::store::Session;

pub const REMEMBER_FOR: Duration = Duration::from_secs(5);
/// Sessions remembered before starting over: a memory bound, not a tuning knob.
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct SessionCache {
    /// By token hash: the session and when it was read from the store.
    entries: Mutex<HashMap<String, (Session, Timestamp)>>,
}

impl SessionCache {
    pub fn get(&self, token_hash: &str, now: Timestamp) -> Option<Session> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (session, read_at) = entries.get(token_hash)?;
        (*read_at > now.minus(REMEMBER_FOR)).then(|| session.clone())
    }

    pub fn remember(&self, token_hash: String, session: Session, now: Timestamp) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, read_at)| *read_at > now.minus(REMEMBER_FOR));
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(token_hash, (session, now));
    }

    pub fn forget(&self, token_hash: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(token_hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;
    use crate::store::User;

    fn session() -> Session {
        Session {
            user: User {
                id: UserId(1),
                username: "alice".into(),
                display_name: "Alice".into(),
            },
            csrf_token: "csrf".into(),
        }
    }

    #[test]
    fn a_session_is_remembered_briefly_and_forgotten_on_logout() {
        let cache = SessionCache::default();
        let t0 = Timestamp::from_millis(1_000_000);
        cache.remember("hash".into(), session(), t0);
        assert!(cache.get("hash", t0.plus(Duration::from_secs(4))).is_some());
        assert!(
            cache.get("hash", t0.plus(REMEMBER_FOR)).is_none(),
            "read from the store again after REMEMBER_FOR"
        );
        cache.remember("hash".into(), session(), t0);
        cache.forget("hash");
        assert!(cache.get("hash", t0).is_none());
    }
}
