//! Relay sockets: the webrtc-rs range generator, wrapped so that every relay socket refuses
//! denied peers in both directions (defence in depth behind the guard's 403), applies the
//! optional per-allocation bitrate cap, counts what it relays, and keeps this server's own
//! relay addresses exempt from the peer policy while the allocation lives.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use turn::relay::relay_range::RelayAddressGeneratorRanges;
use turn::relay::RelayAddressGenerator;
use webrtc_util::vnet::net::Net;
use webrtc_util::Conn;

use super::auth::Counters;
use super::policy::PeerPolicy;

/// Hands out relay sockets in `min..=max` on `bind_ip`, advertised at `relay_ip`.
pub(crate) struct RelayGenerator {
    inner: RelayAddressGeneratorRanges,
    policy: PeerPolicy,
    counters: Arc<Counters>,
    max_bitrate: Option<u64>,
}

impl RelayGenerator {
    pub fn new(
        relay_ip: IpAddr,
        bind_ip: IpAddr,
        (min_port, max_port): (u16, u16),
        policy: PeerPolicy,
        counters: Arc<Counters>,
        max_bitrate: Option<u64>,
    ) -> Self {
        Self {
            inner: RelayAddressGeneratorRanges {
                relay_address: relay_ip,
                min_port,
                max_port,
                // Random picks in the range; more tries than the crate's 10 so that a busy,
                // narrow range still finds a free port.
                max_retries: 40,
                address: bind_ip.to_string(),
                net: Arc::new(Net::new(None)),
            },
            policy,
            counters,
            max_bitrate,
        }
    }
}

#[async_trait]
impl RelayAddressGenerator for RelayGenerator {
    fn validate(&self) -> Result<(), turn::Error> {
        self.inner.validate()
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let (conn, relay_addr) = self.inner.allocate_conn(use_ipv4, requested_port).await?;
        // Other relays of this server reach this one at the advertised address, or at the
        // bound one when it differs (a 1:1 NAT's external IP is not local).
        let mut own = vec![relay_addr];
        if let Ok(local) = conn.local_addr() {
            if !local.ip().is_unspecified() && local != relay_addr {
                own.push(local);
            }
        }
        self.policy.add_own_relays(&own);
        self.counters.allocations.inc();
        let relay = RelayConn {
            inner: conn,
            own,
            policy: self.policy.clone(),
            counters: self.counters.clone(),
            bucket: self
                .max_bitrate
                .map(|bps| Mutex::new(TokenBucket::new(bps))),
            released: AtomicBool::new(false),
        };
        Ok((Arc::new(relay), relay_addr))
    }
}

/// One allocation's relay socket.
struct RelayConn {
    inner: Arc<dyn Conn + Send + Sync>,
    own: Vec<SocketAddr>,
    policy: PeerPolicy,
    counters: Arc<Counters>,
    bucket: Option<Mutex<TokenBucket>>,
    released: AtomicBool,
}

impl RelayConn {
    fn within_bitrate(&self, bytes: usize) -> bool {
        match &self.bucket {
            None => true,
            Some(bucket) => bucket
                .lock()
                .expect("the bucket's lock is never held across a panic")
                .take(bytes),
        }
    }

    /// Once, when the allocation closes (or its socket is dropped without closing).
    fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.policy.remove_own_relays(&self.own);
            self.counters.allocations.dec();
        }
    }
}

impl Drop for RelayConn {
    fn drop(&mut self) {
        self.release();
    }
}

#[async_trait]
impl Conn for RelayConn {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        self.inner.connect(addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        self.inner.recv(buf).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, peer) = self.inner.recv_from(buf).await?;
            if self.policy.is_denied(peer) {
                self.counters.peers_denied.inc();
                continue;
            }
            if !self.within_bitrate(n) {
                continue;
            }
            self.counters.to_client_packets.inc();
            self.counters.to_client_bytes.inc_by(n as u64);
            return Ok((n, peer));
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.inner.send(buf).await
    }

    async fn send_to(&self, buf: &[u8], peer: SocketAddr) -> webrtc_util::Result<usize> {
        // Refused packets are dropped as UDP would drop them: reporting an error would only
        // make the server log one line per packet.
        if self.policy.is_denied(peer) {
            self.counters.peers_denied.inc();
            return Ok(buf.len());
        }
        if !self.within_bitrate(buf.len()) {
            return Ok(buf.len());
        }
        let sent = self.inner.send_to(buf, peer).await?;
        self.counters.to_peer_packets.inc();
        self.counters.to_peer_bytes.inc_by(sent as u64);
        Ok(sent)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.release();
        self.inner.close().await
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// `turn_max_bitrate` for one allocation, both directions together. The burst allows half a
/// second at the full rate (a video key frame) and never less than 64 KiB.
struct TokenBucket {
    bytes_per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(bits_per_second: u64) -> Self {
        let bytes_per_second = bits_per_second as f64 / 8.0;
        let burst = (bytes_per_second / 2.0).max(65_536.0);
        Self {
            bytes_per_second,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn take(&mut self, bytes: usize) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.bytes_per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= bytes as f64 {
            self.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;

    #[test]
    fn the_bucket_passes_its_burst_then_refuses() {
        let mut bucket = TokenBucket::new(8 * 1000); // 1000 B/s, burst 64 KiB
        let mut passed = 0;
        while bucket.take(1200) {
            passed += 1;
            assert!(passed < 100, "the bucket never empties");
        }
        assert_eq!(passed, 65_536 / 1200);
    }
}
