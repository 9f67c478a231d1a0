//! The delivery check: per direction (sender → receiver), the payload numbers `n` must arrive
//! as 1, 2, 3, … with nothing lost, nothing twice and nothing out of order.
//!
//! A scenario opens one [`Lanes`] with a lane per direction. Senders number their signals with
//! [`Lanes::mark`]; receivers report what arrived with [`Lanes::observe`]. Direction keys come
//! from a process-wide [`KeySpace`], so a stale signal from an earlier scenario (a resend after a
//! reconnect, say) is recognised as foreign instead of being counted against this one.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::signal::Mark;

/// Hands out direction keys that are unique for the life of the process.
#[derive(Debug, Default)]
pub struct KeySpace {
    next: AtomicU32,
}

impl KeySpace {
    /// Reserves `count` consecutive keys; returns the first.
    fn allocate(&self, count: usize) -> u32 {
        self.next.fetch_add(count as u32, Ordering::Relaxed)
    }
}

/// The directions of one scenario run.
pub struct Lanes {
    base: u32,
    lanes: Box<[Lane]>,
    sent: AtomicU64,
    /// Distinct signals that arrived (duplicates not counted): the drain is over when it reaches
    /// `sent`.
    delivered: AtomicU64,
    foreign: AtomicU64,
}

#[derive(Default)]
struct Lane {
    sent: AtomicU32,
    // One receiver per direction: this lock is taken by one task at a time, so never waits.
    order: Mutex<Order>,
}

/// What one direction's receiver has seen so far.
#[derive(Debug, Default)]
struct Order {
    /// Every `n` up to here has been seen or is in `gaps`.
    highest: u32,
    /// Numbers skipped over: lost so far (reordered if they still come).
    gaps: BTreeSet<u32>,
    duplicated: u64,
    reordered: u64,
}

/// What happened to one arrival, relative to the ones before it on its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    InOrder,
    /// It came after a later number of its direction.
    Late,
    Duplicate,
}

impl Order {
    fn observe(&mut self, n: u32) -> Verdict {
        if n > self.highest {
            self.gaps.extend(self.highest + 1..n);
            self.highest = n;
            Verdict::InOrder
        } else if self.gaps.remove(&n) {
            self.reordered += 1;
            Verdict::Late
        } else {
            self.duplicated += 1;
            Verdict::Duplicate
        }
    }
}

impl Lanes {
    pub fn new(keys: &KeySpace, count: usize) -> Self {
        Self {
            base: keys.allocate(count),
            lanes: (0..count).map(|_| Lane::default()).collect(),
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
        }
    }

    /// Numbers the next signal of `lane`, sent (or scheduled) at `t`.
    pub fn mark(&self, lane: usize, t: u64) -> Mark {
        let n = self.lanes[lane].sent.fetch_add(1, Ordering::Relaxed) + 1;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Mark {
            t,
            n,
            k: self.base + lane as u32,
        }
    }

    /// Records an arrival. `None` when it does not belong to this run (counted as foreign).
    pub fn observe(&self, mark: &Mark) -> Option<(usize, Verdict)> {
        let lane = mark.k.wrapping_sub(self.base) as usize;
        let Some(state) = self.lanes.get(lane) else {
            self.foreign.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let verdict = state
            .order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(mark.n);
        if verdict != Verdict::Duplicate {
            self.delivered.fetch_add(1, Ordering::Relaxed);
        }
        Some((lane, verdict))
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Waits until everything sent has arrived, at most `timeout`; true if it all did.
    pub async fn drained(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.delivered() >= self.sent() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn check(&self) -> DeliveryCheck {
        let mut check = DeliveryCheck {
            sent: self.sent(),
            delivered: self.delivered(),
            foreign: self.foreign.load(Ordering::Relaxed),
            ..DeliveryCheck::default()
        };
        for lane in self.lanes.iter() {
            let sent = lane.sent.load(Ordering::Relaxed);
            let order = lane.order.lock().unwrap_or_else(|e| e.into_inner());
            // Skipped numbers that never came, plus the tail that never came at all.
            check.lost += order.gaps.len() as u64 + u64::from(sent.saturating_sub(order.highest));
            check.duplicated += order.duplicated;
            check.reordered += order.reordered;
        }
        check
    }
}

/// The delivery check of one scenario run. Everything but `sent`/`delivered` must be 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryCheck {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Signals whose direction key belongs to no direction of this run.
    pub foreign: u64,
}

impl DeliveryCheck {
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.reordered == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(count: usize) -> Lanes {
        Lanes::new(&KeySpace::default(), count)
    }

    #[test]
    fn in_order_delivery_is_clean() {
        let lanes = lanes(2);
        let marks: Vec<Mark> = (0..5).map(|_| lanes.mark(1, 0)).collect();
        for mark in &marks {
            assert_eq!(lanes.observe(mark), Some((1, Verdict::InOrder)));
        }
        let check = lanes.check();
        assert!(check.clean(), "{check:?}");
        assert_eq!((check.sent, check.delivered), (5, 5));
    }

    #[test]
    fn late_duplicate_and_missing_signals_are_each_counted() {
        let lanes = lanes(1);
        let marks: Vec<Mark> = (0..6).map(|_| lanes.mark(0, 0)).collect();
        // 1, 3, 2 (late), 3 again (duplicate), 5; 4 and 6 never come.
        for i in [0, 2, 1, 2, 4] {
            lanes.observe(&marks[i]);
        }
        let check = lanes.check();
        assert_eq!(check.reordered, 1);
        assert_eq!(check.duplicated, 1);
        assert_eq!(check.lost, 2);
        assert_eq!(check.delivered, 4);
        assert!(!check.clean());
    }

    #[test]
    fn keys_of_another_run_are_foreign() {
        let keys = KeySpace::default();
        let earlier = Lanes::new(&keys, 3);
        let current = Lanes::new(&keys, 3);
        let stale = earlier.mark(0, 0);
        assert_eq!(current.observe(&stale), None);
        assert_eq!(current.check().foreign, 1);
    }
}
