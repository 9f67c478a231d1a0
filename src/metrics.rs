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
