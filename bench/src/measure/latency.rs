//! Latency histograms (HDR, microsecond resolution, 3 significant digits).
//!
//! Every receiving client records into the same recorder from whichever runtime thread it runs
//! on, so the histogram is split into shards (picked by direction) behind plain mutexes: a record
//! is a few nanoseconds under a lock that is almost never contended, and nothing allocates per
//! signal.

use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::clock::micros;

/// Longest latency kept exactly: 10 minutes (longer ones are clamped to it).
const HIGHEST_MICROS: u64 = 600_000_000;
const SHARDS: usize = 16;

pub struct LatencyRecorder {
    shards: Box<[Mutex<Histogram<u64>>]>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::with_shards(SHARDS)
    }
}

impl LatencyRecorder {
    /// A recorder for a handful of writers (one shard is enough for a single task).
    pub fn with_shards(shards: usize) -> Self {
        let histogram = || {
            Histogram::new_with_bounds(1, HIGHEST_MICROS, 3)
                .expect("static histogram bounds are valid")
        };
        Self {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(histogram()))
                .collect(),
        }
    }

    /// Records a latency of `nanos`; `hint` (any number, e.g. a direction) spreads writers over
    /// the shards.
    pub fn record(&self, hint: usize, nanos: u64) {
        let shard = &self.shards[hint % self.shards.len()];
        // A poisoned shard only means another recorder panicked: the counts are still valid.
        let mut histogram = shard.lock().unwrap_or_else(|e| e.into_inner());
        histogram.saturating_record(micros(nanos).max(1));
    }

    pub fn summary(&self) -> LatencySummary {
        let mut total = Histogram::<u64>::new_with_bounds(1, HIGHEST_MICROS, 3)
            .expect("static histogram bounds are valid");
        for shard in self.shards.iter() {
            let histogram = shard.lock().unwrap_or_else(|e| e.into_inner());
            // Same bounds on both sides: adding cannot fail.
            let _ = total.add(&*histogram);
        }
        LatencySummary::of(&total)
    }
}

/// A latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| micros as f64 / 1_000.0;
        Self {
            count: histogram.len(),
            mean_ms: histogram.mean() / 1_000.0,
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p95_ms: ms(histogram.value_at_quantile(0.95)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_every_shard() {
        let recorder = LatencyRecorder::default();
        for i in 1..=1_000u64 {
            recorder.record(i as usize, i * 1_000_000); // 1 ms … 1000 ms
        }
        let summary = recorder.summary();
        assert_eq!(summary.count, 1_000);
        assert!((summary.p50_ms - 500.0).abs() < 1.0, "{summary:?}");
        assert!((summary.p99_ms - 990.0).abs() < 1.0, "{summary:?}");
        assert!((summary.max_ms - 1_000.0).abs() < 1.0, "{summary:?}");
    }

    #[test]
    fn an_empty_recorder_reports_zeroes() {
        assert_eq!(
            LatencyRecorder::with_shards(1).summary(),
            LatencySummary::default()
        );
    }
}
