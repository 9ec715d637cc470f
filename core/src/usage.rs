//! The usage figure the capacity gate reads: ingest adds what it accepts at once, and
//! the lifecycle usage job re-bases it on the truth, so it is never more than one
//! accepted upload behind.

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
    /// Replaces the figure with a measured one.
    pub fn rebase(&self, bytes: u64) {
        self.used.store(bytes, Ordering::Relaxed);
    }
    pub fn is_full(&self) -> bool {
        self.used() >= self.capacity
    }
    pub fn percent(&self) -> f64 {
        if self.capacity == 0 { 100.0 } else { self.used() as f64 * 100.0 / self.capacity as f64 }
    }
}
