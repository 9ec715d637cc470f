//! The usage figure the capacity gate reads: ingest adds what it accepts at once, and
//! the lifecycle usage job re-bases it on the truth, so it is never more than one
//! accepted upload behind.
//!
//! The usage job may run in another process: it then publishes its measurement, and the
//! ingest process re-bases on it with [`UsageGauge::rebase_at`], keeping what it added
//! itself after the measurement was taken (the last hour of changes is remembered).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How long changes are remembered for [`UsageGauge::rebase_at`].
const REMEMBER: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct UsageGauge {
    used: AtomicU64,
    capacity: u64,
    recent: Mutex<VecDeque<(SystemTime, i64)>>,
}

impl UsageGauge {
    pub fn new(capacity: u64) -> Self {
        Self { used: AtomicU64::new(0), capacity, recent: Mutex::new(VecDeque::new()) }
    }

    fn remember(&self, delta: i64) {
        let now = SystemTime::now();
        let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        while r.front().is_some_and(|(t, _)| now.duration_since(*t).unwrap_or_default() > REMEMBER) {
            r.pop_front();
        }
        r.push_back((now, delta));
    }

    /// Replaces the figure with one measured at `taken_at`, plus this process's own
    /// changes since then.
    pub fn rebase_at(&self, bytes: u64, taken_at: SystemTime) {
        let r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let since: i64 = r.iter().filter(|(t, _)| *t > taken_at).map(|(_, d)| d).sum();
        self.used.store(bytes.saturating_add_signed(since), Ordering::Relaxed);
    }
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
    pub fn capacity(&self) -> u64 {
        self.capacity
    }
    pub fn add(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
        self.remember(bytes as i64);
    }
    pub fn sub(&self, bytes: u64) {
        let _ = self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(bytes)));
        self.remember(-(bytes as i64));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebase_keeps_what_was_added_after_the_measurement() {
        let g = UsageGauge::new(1000);
        g.add(10);
        let measured_at = SystemTime::now();
        std::thread::sleep(Duration::from_millis(5));
        g.add(7);
        g.sub(2);
        g.rebase_at(500, measured_at);
        assert_eq!(g.used(), 505, "the 10 added before the measurement are in its 500");
        g.rebase(400);
        assert_eq!(g.used(), 400);
    }
}
