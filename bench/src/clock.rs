//! The bench's one clock: nanoseconds since the process started measuring.
//!
//! Senders write the send time into each payload and receivers subtract it from the time they
//! read the frame; both ends live in this process, so one monotonic clock makes one-way latency
//! exact without any clock synchronisation.

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct BenchClock {
    origin: Instant,
}

impl BenchClock {
    pub fn start() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// Nanoseconds since the origin (a u64 lasts 584 years).
    pub fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// Nanoseconds to microseconds, the unit latencies are recorded in.
pub fn micros(nanos: u64) -> u64 {
    nanos / 1_000
}
