//! Who may allocate: the TURN REST credential check (an [`AuthHandler`] for the webrtc-rs
//! server), the per-user allocation quota, and the ledger of live allocations both rely on.
//!
//! Credentials that expire mid-call must not drop the call, so a request from a client address
//! that already holds an allocation (a Refresh, CreatePermission or ChannelBind) is accepted
//! with expired credentials; only a new allocation needs unexpired ones. (An Allocate from such
//! an address is refused by the server anyway: 437 Allocation Mismatch.)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use stun::agent::TransactionId;
use turn::auth::{generate_auth_key, AuthHandler};

use super::credentials::{self, CredentialError, TurnSecret};
use crate::domain::UserId;
use crate::metrics::{DirectionLabel, ReasonLabel, TurnMetrics};

/// Pending Allocate requests are forgotten past this many (a client that never waits for its
/// answer must not grow the map).
const MAX_PENDING: usize = 4096;

/// The TURN metrics' handles, resolved once: the relay path only touches atomics.
pub(crate) struct Counters {
    pub allocations: Gauge,
    pub to_peer_bytes: Counter,
    pub to_peer_packets: Counter,
    pub to_client_bytes: Counter,
    pub to_client_packets: Counter,
    pub peers_denied: Counter,
    pub malformed: Counter,
    pub malformed_username: Counter,
    pub expired: Counter,
    pub bad_signature: Counter,
    pub quota: Counter,
}

impl Counters {
    pub fn new(metrics: &TurnMetrics) -> Self {
        let bytes = |direction| {
            metrics
                .relayed_bytes
                .get_or_create(&DirectionLabel { direction })
                .clone()
        };
        let packets = |direction| {
            metrics
                .relayed_packets
                .get_or_create(&DirectionLabel { direction })
                .clone()
        };
        let auth = |reason| {
            metrics
                .auth_failures
                .get_or_create(&ReasonLabel { reason })
                .clone()
        };
        Self {
            allocations: metrics.allocations.clone(),
            to_peer_bytes: bytes("to_peer"),
            to_peer_packets: packets("to_peer"),
            to_client_bytes: bytes("to_client"),
            to_client_packets: packets("to_client"),
            peers_denied: metrics.peers_denied.clone(),
            malformed: metrics.malformed.clone(),
            malformed_username: auth(CredentialError::Malformed.reason()),
            expired: auth(CredentialError::Expired.reason()),
            bad_signature: auth("bad_signature"),
            quota: auth("quota"),
        }
    }

    fn refused(&self, error: CredentialError) {
        match error {
            CredentialError::Malformed => self.malformed_username.inc(),
            CredentialError::Expired => self.expired.inc(),
        };
    }
}

/// Live allocations per client address and per user. Fed by the guard (Allocate requests and
/// the server's answers to them) and by the server's allocation-closed notifications.
#[derive(Default)]
pub(crate) struct Ledger {
    inner: Mutex<LedgerInner>,
}

#[derive(Default)]
struct LedgerInner {
    per_user: HashMap<UserId, usize>,
    by_client: HashMap<SocketAddr, UserId>,
    pending: HashMap<TransactionId, UserId>,
}

/// The user already holds `turn_user_quota` allocations.
#[derive(Debug)]
pub(crate) struct QuotaReached;

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerInner> {
        // A std Mutex: every critical section is a few map operations, never an await.
        self.inner
            .lock()
            .expect("the ledger's lock is never held across a panic")
    }

    pub fn has_allocation(&self, client: SocketAddr) -> bool {
        self.lock().by_client.contains_key(&client)
    }

    /// An authenticated Allocate from `user` is about to reach the server.
    pub fn allocate_requested(
        &self,
        transaction: TransactionId,
        user: UserId,
        quota: usize,
    ) -> Result<(), QuotaReached> {
        let mut inner = self.lock();
        if inner.per_user.get(&user).copied().unwrap_or(0) >= quota {
            return Err(QuotaReached);
        }
        if inner.pending.len() >= MAX_PENDING {
            inner.pending.clear();
        }
        inner.pending.insert(transaction, user);
        Ok(())
    }

    /// The server answered an Allocate; on success `client` now holds an allocation.
    pub fn allocate_answered(&self, transaction: TransactionId, client: SocketAddr, ok: bool) {
        let mut inner = self.lock();
        let Some(user) = inner.pending.remove(&transaction) else {
            return;
        };
        if ok && inner.by_client.insert(client, user).is_none() {
            *inner.per_user.entry(user).or_default() += 1;
        }
    }

    /// The server closed `client`'s allocation (expired, deleted or shut down).
    pub fn closed(&self, client: SocketAddr) {
        let mut inner = self.lock();
        if let Some(user) = inner.by_client.remove(&client) {
            if let Some(count) = inner.per_user.get_mut(&user) {
                *count -= 1;
                if *count == 0 {
                    inner.per_user.remove(&user);
                }
            }
        }
    }
}

/// The credential rules shared by the [`AuthHandler`] and the guard.
pub(crate) struct Credentials {
    pub secret: TurnSecret,
    pub ledger: Arc<Ledger>,
    pub counters: Arc<Counters>,
}

impl Credentials {
    /// The password `username` must have signed with, if it may use the server from `client`.
    pub fn password(&self, username: &str, client: SocketAddr) -> Result<String, CredentialError> {
        match credentials::check(&self.secret, username, unix_now()) {
            Ok((_, password)) => Ok(password),
            Err(CredentialError::Expired) if self.ledger.has_allocation(client) => {
                Ok(credentials::password(&self.secret, username))
            }
            Err(error) => Err(error),
        }
    }
}

/// The webrtc-rs server asks this for the long-term key of every authenticated request.
pub(crate) struct RestAuth(pub Arc<Credentials>);

impl AuthHandler for RestAuth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        src_addr: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        match self.0.password(username, src_addr) {
            Ok(password) => Ok(generate_auth_key(username, realm, &password)),
            Err(error) => {
                self.0.counters.refused(error);
                tracing::debug!(%src_addr, username, %error, "TURN credentials refused");
                Err(turn::Error::Other(error.to_string()))
            }
        }
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
