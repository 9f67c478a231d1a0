//! Prometheus metrics, served as text at `GET /metrics`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// How a signal reached (or a client is connected to) this node.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Transport {
    Websocket,
    Sse,
    Longpoll,
    Poll,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Websocket => "websocket",
            Self::Sse => "sse",
            Self::Longpoll => "longpoll",
            Self::Poll => "poll",
        }
    }
}

impl EncodeLabelValue for Transport {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabel {
    pub transport: Transport,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: u16,
}

type LatencyFamily = Family<TransportLabel, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub signals_stored: Counter,
    pub signals_deduplicated: Counter,
    pub signals_expired: Counter,
    pub signals_delivered: Family<TransportLabel, Counter>,
    pub delivery_latency: LatencyFamily,
    pub connected_clients: Family<TransportLabel, Gauge>,
    pub connections_overflowed: Counter,
    pub requests_rejected: Family<StatusLabel, Counter>,
    pub store_queries: Counter,
    /// 1 while the bus can wake other nodes (always 1 with the in-process bus).
    pub bus_connected: Gauge,
    pub turn: TurnMetrics,
}

/// The embedded TURN server's metrics (`switchboard_turn_*`).
#[derive(Default)]
pub struct TurnMetrics {
    /// Allocations alive now.
    pub allocations: Gauge,
    /// Payload bytes the relay sockets sent to peers / received from peers.
    pub relayed_bytes: Family<DirectionLabel, Counter>,
    pub relayed_packets: Family<DirectionLabel, Counter>,
    /// Requests refused by credential check or quota, per reason.
    pub auth_failures: Family<ReasonLabel, Counter>,
    /// Permissions, channel binds and packets refused because the peer is in a denied range.
    pub peers_denied: Counter,
    /// Datagrams and stream frames that are neither STUN nor ChannelData, or fail to decode.
    pub malformed: Counter,
}

/// Which way a relayed packet went: `to_peer` (client → relay → peer) or `to_client`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    pub direction: &'static str,
}

/// Why a TURN request was refused: `malformed`, `expired`, `bad_signature` or `quota`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

impl TurnMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "turn_allocations",
            "TURN allocations alive on this node",
            self.allocations.clone(),
        );
        registry.register(
            "turn_relayed_bytes",
            "Payload bytes relayed by the TURN server, per direction (to_peer, to_client)",
            self.relayed_bytes.clone(),
        );
        registry.register(
            "turn_relayed_packets",
            "Packets relayed by the TURN server, per direction (to_peer, to_client)",
            self.relayed_packets.clone(),
        );
        registry.register(
            "turn_auth_failures",
            "TURN requests refused, per reason (malformed, expired, bad_signature, quota)",
            self.auth_failures.clone(),
        );
        registry.register(
            "turn_peers_denied",
            "TURN permissions, channel binds and packets refused because the peer address is denied",
            self.peers_denied.clone(),
        );
        registry.register(
            "turn_malformed",
            "TURN datagrams and stream frames dropped as malformed",
            self.malformed.clone(),
        );
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let metrics = Self {
            signals_stored: Counter::default(),
            signals_deduplicated: Counter::default(),
            signals_expired: Counter::default(),
            signals_delivered: Family::default(),
            delivery_latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            connected_clients: Family::default(),
            connections_overflowed: Counter::default(),
            requests_rejected: Family::default(),
            store_queries: Counter::default(),
            bus_connected: Gauge::default(),
            turn: TurnMetrics::default(),
            registry: Registry::default(),
        };
        registry.register(
            "signals_stored",
            "Signal rows stored (one per recipient)",
            metrics.signals_stored.clone(),
        );
        registry.register(
            "signals_deduplicated",
            "Sends ignored because their signal_id was stored before",
            metrics.signals_deduplicated.clone(),
        );
        registry.register(
            "signals_expired",
            "Call signals that expired unread",
            metrics.signals_expired.clone(),
        );
        registry.register(
            "signals_delivered",
            "Signals written to a client, per transport",
            metrics.signals_delivered.clone(),
        );
        registry.register(
            "delivery_latency_seconds",
            "From stored to written to the client's connection, per transport",
            metrics.delivery_latency.clone(),
        );
        registry.register(
            "connected_clients",
            "Live push connections on this node, per transport",
            metrics.connected_clients.clone(),
        );
        registry.register(
            "connections_overflowed",
            "Connections closed because the client read too slowly (it resumes from its cursor)",
            metrics.connections_overflowed.clone(),
        );
        registry.register(
            "requests_rejected",
            "Requests refused, per HTTP status",
            metrics.requests_rejected.clone(),
        );
        registry.register(
            "store_queries",
            "Calls into the store",
            metrics.store_queries.clone(),
        );
        registry.register(
            "bus_connected",
            "1 while the bus can wake other nodes; 0 while Redis is unreachable (catch-up mode)",
            metrics.bus_connected.clone(),
        );
        metrics.turn.register(&mut registry);
        metrics.bus_connected.set(1);
        Self {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    pub fn delivered(&self, transport: Transport, count: u64) {
        self.signals_delivered
            .get_or_create(&TransportLabel { transport })
            .inc_by(count);
    }

    pub fn observe_latency(&self, transport: Transport, since: std::time::Instant) {
        self.delivery_latency
            .get_or_create(&TransportLabel { transport })
            .observe(since.elapsed().as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
