//! The memory budget shared by the jobs in flight (`[processor] memory_budget`).
//!
//! A job knows its peak before it decodes ([`crate::pipeline::Prepared::memory`]); it
//! reserves that much here and holds the reservation while it renders. A job that does
//! not fit waits for others to finish (its message's visibility keeps being extended
//! meanwhile); one that could never fit fails at once with `decode_limit`, so no job
//! reaches the kernel's OOM killer and no message is redelivered in a loop.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Reservations are counted in MiB (a semaphore's permits are a u32).
const UNIT: u64 = 1 << 20;

/// The budget: cheap to clone, shared by the worker's jobs.
#[derive(Clone, Debug)]
pub struct Budget {
    permits: Arc<Semaphore>,
    units: u32,
}

/// Why a reservation was refused: the job alone needs more than the whole budget.
#[derive(Debug, thiserror::Error)]
#[error("the render needs about {needed} bytes, over the memory budget of {budget} bytes")]
pub struct OverBudget {
    /// Bytes the job needs.
    pub needed: u64,
    /// The whole budget.
    pub budget: u64,
}

impl Budget {
    /// A budget of `bytes` (at least 1 MiB).
    pub fn new(bytes: u64) -> Self {
        let units = (bytes / UNIT).clamp(1, u64::from(u32::MAX >> 3)) as u32;
        Budget { permits: Arc::new(Semaphore::new(units as usize)), units }
    }

    /// The whole budget, in bytes.
    pub fn total(&self) -> u64 {
        u64::from(self.units) * UNIT
    }

    /// Bytes not reserved now.
    pub fn available(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT
    }

    /// Waits until `bytes` fit, and reserves them until the permit is dropped.
    pub async fn reserve(&self, bytes: u64) -> Result<OwnedSemaphorePermit, OverBudget> {
        let units = bytes.div_ceil(UNIT).max(1);
        if units > u64::from(self.units) {
            return Err(OverBudget { needed: bytes, budget: self.total() });
        }
        Ok(self.permits.clone().acquire_many_owned(units as u32).await.expect("the budget's semaphore is never closed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_job_that_does_not_fit_waits_and_one_that_never_fits_fails() {
        let budget = Budget::new(100 * UNIT);
        let first = budget.reserve(60 * UNIT).await.unwrap();
        assert_eq!(budget.available(), 40 * UNIT);
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(50 * UNIT).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "50 MiB do not fit beside 60 of 100");
        drop(first);
        waiting.await.unwrap().unwrap();
        let err = budget.reserve(101 * UNIT).await.unwrap_err();
        assert_eq!(err.needed, 101 * UNIT);
    }
}
