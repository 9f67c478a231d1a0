//! Everything the bench measures: latency histograms, the delivery check, the servers' and its
//! own CPU and memory from `/proc`, and Switchboard's `/metrics`.

pub mod delivery;
pub mod latency;
pub mod metrics;
pub mod process;
