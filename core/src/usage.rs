//! The usage figure the capacity gate reads. Every process updates the database's byte
//! counters in the same transactions as its records (`core::meta`); each process re-reads
//! their total every few seconds ([`crate::app::Context::refresh_usage`]) and adds what it
//! accepts itself in between, so the gate is never more than a few seconds of other
//! processes' uploads behind.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct UsageGauge {
    used: AtomicU64,
    capacity: u64,
}

impl UsageGauge {
    pub fn new(capacity: u64) -> Self {
        Self { used: AtomicU64::new(0), capacity }
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn add(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn sub(&self, bytes: u64) {
        let _ = self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(bytes)));
    }

    /// Replaces the figure with the counters' total.
    pub fn rebase(&self, bytes: u64) {
        self.used.store(bytes, Ordering::Relaxed);
    }

    pub fn is_full(&self) -> bool {
        self.used() >= self.capacity
    }

    pub fn percent(&self) -> f64 {
        if self.capacity == 0 {
            100.0
        } else {
            self.used() as f64 * 100.0 / self.capacity as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauge_adds_subtracts_and_rebases() {
        let g = UsageGauge::new(1000);
        g.add(600);
        g.sub(700);
        assert_eq!(g.used(), 0, "never below zero");
        g.rebase(1000);
        assert!(g.is_full());
        assert_eq!(g.percent(), 100.0);
    }
}
