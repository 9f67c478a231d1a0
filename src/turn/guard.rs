//! The guard: a [`Conn`] in front of each of the server's listening conns that enforces what
//! the webrtc-rs server does not — the peer policy at the protocol level (403 to a
//! CreatePermission/ChannelBind naming a denied peer, as coturn answers), the per-user quota
//! (486), the allocation lifetime cap (it rewrites LIFETIME and re-signs the request), and the
//! counting of malformed input and bad signatures. Messages are decoded and built with the
//! `stun`/`turn` crates; the server itself stays unmodified.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use stun::attributes::{
    ATTR_FINGERPRINT, ATTR_LIFETIME, ATTR_MESSAGE_INTEGRITY, ATTR_REALM, ATTR_USERNAME,
    ATTR_XOR_PEER_ADDRESS,
};
use stun::error_code::{ErrorCode, ErrorCodeAttribute, CODE_ALLOC_QUOTA_REACHED, CODE_FORBIDDEN};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{
    is_message, Getter, Message, MessageType, Setter, CLASS_ERROR_RESPONSE, CLASS_INDICATION,
    CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE, METHOD_CHANNEL_BIND,
    METHOD_CREATE_PERMISSION, METHOD_REFRESH, METHOD_SEND,
};
use stun::textattrs::TextAttribute;
use turn::auth::generate_auth_key;
use turn::proto::chandata::ChannelData;
use turn::proto::lifetime::{Lifetime, DEFAULT_LIFETIME};
use turn::proto::peeraddr::PeerAddress;
use webrtc_util::Conn;

use super::auth::{Credentials, Ledger};
use super::credentials;
use super::policy::PeerPolicy;

/// The server grants at most an hour (RFC 5766 §6.2) and the default for anything longer.
const SERVER_MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// What the guard does with one inbound packet.
enum Verdict {
    /// Hand it to the server unchanged.
    Pass,
    /// Hand the server this instead (a re-signed request).
    Replace(Vec<u8>),
    /// Answer the client directly; the server never sees the request.
    Answer(Vec<u8>),
    /// Drop it silently.
    Drop,
}

/// Rules shared by all guarded conns of one server.
pub(crate) struct Gate {
    pub credentials: Arc<Credentials>,
    pub ledger: Arc<Ledger>,
    pub policy: PeerPolicy,
    pub user_quota: usize,
    pub lifetime_cap: Duration,
    /// Raw type of an Allocate success / error response (what the guard watches on the way out).
    allocate_success: u16,
    allocate_error: u16,
}

impl Gate {
    pub fn new(
        credentials: Arc<Credentials>,
        policy: PeerPolicy,
        user_quota: usize,
        lifetime_cap: Duration,
    ) -> Self {
        Self {
            ledger: credentials.ledger.clone(),
            credentials,
            policy,
            user_quota,
            // A lifetime of 0 would make every Refresh a delete.
            lifetime_cap: lifetime_cap.max(Duration::from_secs(1)),
            allocate_success: MessageType::new(METHOD_ALLOCATE, CLASS_SUCCESS_RESPONSE).value(),
            allocate_error: MessageType::new(METHOD_ALLOCATE, CLASS_ERROR_RESPONSE).value(),
        }
    }

    fn inspect(&self, packet: &[u8], client: SocketAddr) -> Verdict {
        // Media: the server checks the channel against the allocation; the relay socket
        // checks the peer. Nothing to decode here. Without an allocation it is dropped here:
        // the server would log an error line per packet.
        if ChannelData::is_channel_data(packet) {
            if self.ledger.has_allocation(client) {
                return Verdict::Pass;
            }
            return Verdict::Drop;
        }
        if !is_message(packet) {
            self.credentials.counters.malformed.inc();
            return Verdict::Drop;
        }
        let mut m = Message {
            raw: packet.to_vec(),
            ..Default::default()
        };
        if m.decode().is_err() {
            self.credentials.counters.malformed.inc();
            return Verdict::Drop;
        }
        if m.typ.class == CLASS_INDICATION {
            if !self.ledger.has_allocation(client) {
                return Verdict::Drop;
            }
            if m.typ.method == METHOD_SEND && self.names_denied_peer(&m) {
                self.credentials.counters.peers_denied.inc();
                return Verdict::Drop;
            }
            return Verdict::Pass;
        }
        if m.typ.class != CLASS_REQUEST {
            // A client never sends responses; nothing for the server to do with one.
            return Verdict::Drop;
        }
        if !m.contains(ATTR_MESSAGE_INTEGRITY) {
            // Binding requests, and the first (unauthenticated) try of the others, which the
            // server answers with 401 and a nonce.
            return Verdict::Pass;
        }
        let (Some(username), Some(realm)) = (text(&m, ATTR_USERNAME), text(&m, ATTR_REALM)) else {
            return Verdict::Pass;
        };
        // Refused credentials are answered (and counted) by the server's AuthHandler.
        let Ok(password) = self.credentials.password(&username, client) else {
            return Verdict::Pass;
        };
        let key = generate_auth_key(&username, &realm, &password);
        if MessageIntegrity(key.clone()).check(&mut m.clone()).is_err() {
            // Signed with another secret (or tampered with); the server refuses it too.
            self.credentials.counters.bad_signature.inc();
            return Verdict::Pass;
        }

        let method = m.typ.method;
        if method == METHOD_ALLOCATE {
            if !self.ledger.has_allocation(client) {
                let Ok(user) = credentials::parse(&username) else {
                    return Verdict::Pass;
                };
                if self
                    .ledger
                    .allocate_requested(m.transaction_id, user.user, self.user_quota)
                    .is_err()
                {
                    self.credentials.counters.quota.inc();
                    tracing::info!(%client, user_id = %user.user, "TURN allocation quota reached");
                    return answer_error(
                        &m,
                        CODE_ALLOC_QUOTA_REACHED,
                        "Allocation Quota Reached",
                        key,
                    );
                }
            }
            return self.cap_lifetime(&m, key);
        }
        if method == METHOD_REFRESH {
            return self.cap_lifetime(&m, key);
        }
        if (method == METHOD_CREATE_PERMISSION || method == METHOD_CHANNEL_BIND)
            && self.names_denied_peer(&m)
        {
            self.credentials.counters.peers_denied.inc();
            tracing::info!(%client, "TURN peer refused by policy");
            return answer_error(&m, CODE_FORBIDDEN, "Forbidden", key);
        }
        Verdict::Pass
    }

    /// True when any XOR-PEER-ADDRESS of `m` (or one that does not decode) is denied.
    fn names_denied_peer(&self, m: &Message) -> bool {
        m.attributes
            .0
            .iter()
            .filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS)
            .any(|attr| {
                // Each attribute is decoded on its own: `get_from` only ever reads the first.
                let mut one = Message::new();
                one.transaction_id = m.transaction_id;
                one.write_header();
                one.add(attr.typ, &attr.value);
                let mut peer = PeerAddress::default();
                match peer.get_from(&one) {
                    Ok(()) => self.policy.is_denied(SocketAddr::new(peer.ip, peer.port)),
                    Err(_) => true,
                }
            })
    }

    /// Rewrites LIFETIME to min(asked or the server's default, cap) and re-signs the request.
    fn cap_lifetime(&self, m: &Message, key: Vec<u8>) -> Verdict {
        let mut asked = Lifetime::default();
        let asked = asked.get_from(m).ok().map(|()| asked.0);
        if m.typ.method == METHOD_REFRESH && asked == Some(Duration::ZERO) {
            return Verdict::Pass; // a delete
        }
        let effective = match asked {
            Some(lifetime) if lifetime < SERVER_MAX_LIFETIME => lifetime,
            _ => DEFAULT_LIFETIME,
        };
        let granted = Duration::from_secs(effective.min(self.lifetime_cap).as_secs().max(1));
        if granted == effective {
            return Verdict::Pass; // the server grants exactly this on its own
        }

        let mut out = Message::new();
        out.typ = m.typ;
        out.transaction_id = m.transaction_id;
        out.write_header();
        let mut had_fingerprint = false;
        for attr in &m.attributes.0 {
            if attr.typ == ATTR_MESSAGE_INTEGRITY {
                // MESSAGE-INTEGRITY covers only what precedes it; FINGERPRINT is the only
                // attribute allowed after it.
                had_fingerprint = m.contains(ATTR_FINGERPRINT);
                break;
            }
            if attr.typ != ATTR_LIFETIME {
                out.add(attr.typ, &attr.value);
            }
        }
        let mut setters: Vec<Box<dyn Setter>> =
            vec![Box::new(Lifetime(granted)), Box::new(MessageIntegrity(key))];
        if had_fingerprint {
            setters.push(Box::new(FINGERPRINT));
        }
        for setter in setters {
            if setter.add_to(&mut out).is_err() {
                return Verdict::Pass;
            }
        }
        Verdict::Replace(out.raw)
    }

    /// Watches the server's answers to Allocate requests (for the quota's ledger).
    fn outbound(&self, packet: &[u8], client: SocketAddr) {
        if packet.len() < 2 || !is_message(packet) {
            return;
        }
        let typ = u16::from_be_bytes([packet[0], packet[1]]);
        if typ != self.allocate_success && typ != self.allocate_error {
            return;
        }
        let mut m = Message {
            raw: packet.to_vec(),
            ..Default::default()
        };
        if m.decode().is_ok() {
            self.ledger.allocate_answered(
                m.transaction_id,
                client,
                m.typ.class == CLASS_SUCCESS_RESPONSE,
            );
        }
    }
}

fn text(m: &Message, attr: stun::attributes::AttrType) -> Option<String> {
    let mut value = TextAttribute::new(attr, String::new());
    value.get_from(m).ok().map(|()| value.text)
}

/// An error response to `m`, signed with the user's key as RFC 5389 §10.2.2 asks.
fn answer_error(m: &Message, code: ErrorCode, reason: &str, key: Vec<u8>) -> Verdict {
    let mut out = Message::new();
    let built = out.build(&[
        Box::new(m.transaction_id),
        Box::new(MessageType::new(m.typ.method, CLASS_ERROR_RESPONSE)),
        Box::new(ErrorCodeAttribute {
            code,
            reason: reason.as_bytes().to_vec(),
        }),
        Box::new(MessageIntegrity(key)),
        Box::new(FINGERPRINT),
    ]);
    match built {
        Ok(()) => Verdict::Answer(out.raw),
        Err(_) => Verdict::Drop,
    }
}

/// One of the server's listening conns (UDP socket or stream adapter), guarded.
pub(crate) struct GuardConn {
    inner: Arc<dyn Conn + Send + Sync>,
    gate: Arc<Gate>,
}

impl GuardConn {
    pub fn new(inner: Arc<dyn Conn + Send + Sync>, gate: Arc<Gate>) -> Self {
        Self { inner, gate }
    }
}

#[async_trait]
impl Conn for GuardConn {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        self.inner.connect(addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        self.inner.recv(buf).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, client) = self.inner.recv_from(buf).await?;
            match self.gate.inspect(&buf[..n], client) {
                Verdict::Pass => return Ok((n, client)),
                Verdict::Replace(packet) if packet.len() <= buf.len() => {
                    buf[..packet.len()].copy_from_slice(&packet);
                    return Ok((packet.len(), client));
                }
                Verdict::Replace(_) => return Ok((n, client)),
                Verdict::Answer(packet) => {
                    if let Err(error) = self.inner.send_to(&packet, client).await {
                        tracing::debug!(%client, %error, "cannot answer a TURN request");
                    }
                }
                Verdict::Drop => {}
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.inner.send(buf).await
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        self.gate.outbound(buf, target);
        self.inner.send_to(buf, target).await
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.inner.close().await
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
