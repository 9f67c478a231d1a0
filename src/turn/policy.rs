//! Which peers the relay may reach (coturn's `denied-peer-ip`): never the server's own network,
//! unless the operator allows it for tests or a LAN. This server's own relay addresses are
//! always allowed, so two clients relaying through the same server still reach each other.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};

/// The peer policy plus the set of relay addresses currently allocated (the exemption).
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    allow_loopback: bool,
    allow_private: bool,
    // Read on every packet between two relays of this server; written once per allocation.
    own_relays: Arc<RwLock<HashSet<SocketAddr>>>,
}

impl PeerPolicy {
    pub fn new(allow_loopback: bool, allow_private: bool) -> Self {
        Self {
            allow_loopback,
            allow_private,
            own_relays: Arc::default(),
        }
    }

    /// True when the relay must neither send to nor accept packets from `peer`.
    pub fn is_denied(&self, peer: SocketAddr) -> bool {
        let denied = match canonical(peer.ip()) {
            IpAddr::V4(ip) => self.denies_v4(ip),
            IpAddr::V6(ip) => self.denies_v6(ip),
        };
        // The exemption is looked up only for denied addresses, so allowed traffic (the
        // common case on the internet) never takes the lock.
        denied && !self.is_own_relay(peer)
    }

    fn denies_v4(&self, ip: Ipv4Addr) -> bool {
        let [a, b, ..] = ip.octets();
        // 0.0.0.0/8 "this network", multicast, broadcast: never a peer.
        if a == 0 || ip.is_multicast() || ip.is_broadcast() {
            return true;
        }
        if ip.is_loopback() {
            return !self.allow_loopback;
        }
        let carrier_grade_nat = a == 100 && (64..128).contains(&b);
        if ip.is_private() || ip.is_link_local() || carrier_grade_nat {
            return !self.allow_private;
        }
        false
    }

    fn denies_v6(&self, ip: Ipv6Addr) -> bool {
        if ip.is_unspecified() || ip.is_multicast() {
            return true;
        }
        if ip.is_loopback() {
            return !self.allow_loopback;
        }
        let first = ip.segments()[0];
        let unique_local = first & 0xfe00 == 0xfc00; // fc00::/7
        let link_local = first & 0xffc0 == 0xfe80; // fe80::/10
        if unique_local || link_local {
            return !self.allow_private;
        }
        false
    }

    fn is_own_relay(&self, peer: SocketAddr) -> bool {
        let peer = SocketAddr::new(canonical(peer.ip()), peer.port());
        self.own_relays
            .read()
            .expect("the relay set's lock is never held across a panic")
            .contains(&peer)
    }

    /// Records relay addresses of a new allocation; they stay exempt until released.
    pub fn add_own_relays(&self, addrs: &[SocketAddr]) {
        let mut set = self.own_relays.write().expect("never poisoned");
        set.extend(addrs.iter().copied());
    }

    pub fn remove_own_relays(&self, addrs: &[SocketAddr]) {
        let mut set = self.own_relays.write().expect("never poisoned");
        for addr in addrs {
            set.remove(addr);
        }
    }
}

/// `::ffff:10.0.0.1` is 10.0.0.1: a mapped address must not slip past the IPv4 rules.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_policy_refuses_the_servers_own_networks() {
        let policy = PeerPolicy::new(false, false);
        for denied in [
            "127.0.0.1:9",
            "10.0.0.1:9",
            "172.16.5.4:9",
            "192.168.1.1:9",
            "100.64.0.1:9",
            "169.254.1.1:9",
            "0.0.0.0:9",
            "224.0.0.1:9",
            "255.255.255.255:9",
            "[::1]:9",
            "[::]:9",
            "[fc00::1]:9",
            "[fd12::1]:9",
            "[fe80::1]:9",
            "[ff02::1]:9",
            "[::ffff:10.0.0.1]:9",
            "[::ffff:127.0.0.1]:9",
        ] {
            assert!(policy.is_denied(addr(denied)), "{denied} should be denied");
        }
        for allowed in [
            "8.8.8.8:9",
            "100.128.0.1:9",
            "172.32.0.1:9",
            "[2001:db8::1]:9",
        ] {
            assert!(
                !policy.is_denied(addr(allowed)),
                "{allowed} should be allowed"
            );
        }
    }

    #[test]
    fn the_allow_flags_open_only_their_ranges() {
        let loopback = PeerPolicy::new(true, false);
        assert!(!loopback.is_denied(addr("127.0.0.1:9")));
        assert!(loopback.is_denied(addr("10.0.0.1:9")));
        let private = PeerPolicy::new(false, true);
        assert!(private.is_denied(addr("127.0.0.1:9")));
        assert!(!private.is_denied(addr("10.0.0.1:9")));
        assert!(!private.is_denied(addr("[fe80::1]:9")));
        assert!(private.is_denied(addr("0.0.0.0:9")));
    }

    #[test]
    fn own_relay_addresses_are_exempt_while_allocated() {
        let policy = PeerPolicy::new(false, false);
        let relay = addr("10.231.1.1:50000");
        assert!(policy.is_denied(relay));
        policy.add_own_relays(&[relay]);
        assert!(!policy.is_denied(relay));
        assert!(policy.is_denied(addr("10.231.1.1:50001")));
        policy.remove_own_relays(&[relay]);
        assert!(policy.is_denied(relay));
    }
}
