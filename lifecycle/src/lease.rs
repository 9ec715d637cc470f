//! One runner per job, across processes: a row of the metadata database's `leases` table.
//!
//! - **Taking** it is one statement (`MetadataStore::acquire_lease`: an `INSERT .. ON
//!   CONFLICT (name) DO UPDATE .. WHERE expires_at <= now`), atomic in SQLite and in
//!   PostgreSQL: of two runners racing, exactly one writes its random token; the other
//!   is told who holds the lease and until when ([`LifecycleError::Busy`]).
//! - **Renewal**: every third of the time to live, the holder moves `expires_at` forward
//!   where the row still carries its token. A renewal that finds another token (the lease
//!   expired and was taken over) cancels [`Lease::lost`], and so does failing to renew for
//!   a whole time to live (the database unreachable from here); the jobs check it between
//!   batches and stop with [`LifecycleError::LeaseLost`].
//! - **Release** deletes the row where it still carries our token.
//!
//! Residual risks, stated plainly: a holder that stalls for longer than the time to live
//! (a frozen VM) can lose the lease to another runner, and both run until the stale one
//! next checks; and expiry is judged on the acquiring host's clock, so the hosts' clocks
//! must agree to well within the time to live (NTP). Every job is idempotent
//! (deterministic event ids, deletes of missing keys are no-ops, conditional database
//! updates), so a double run wastes requests but loses nothing and counts nothing twice.

use crate::{JobName, LifecycleError};
use imagelake_core::clock::SharedClock;
use imagelake_core::meta::SharedMeta;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A held lease; dropping it without [`Lease::release`] lets it expire.
pub struct Lease {
    meta: SharedMeta,
    job: JobName,
    token: String,
    lost: CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Cancelled when a renewal found the lease taken over (or could not renew in time).
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Errors with [`LifecycleError::LeaseLost`] once the lease is gone.
    pub fn check(&self) -> Result<(), LifecycleError> {
        if self.lost.is_cancelled() {
            Err(LifecycleError::LeaseLost(self.job.as_str()))
        } else {
            Ok(())
        }
    }

    /// Stops renewing and frees the lease if it is still ours.
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(e) = self.meta.release_lease(self.job.as_str(), &self.token).await {
            tracing::warn!(job = %self.job, error = %e, "could not release the lease; it will expire");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Takes the lease of `job` for `owner` for `ttl` (renewed while held), or answers
/// [`LifecycleError::Busy`].
pub async fn acquire(
    meta: SharedMeta,
    clock: SharedClock,
    job: JobName,
    owner: &str,
    ttl: Duration,
) -> Result<Lease, LifecycleError> {
    let ttl_c = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(5));
    let token = uuid::Uuid::new_v4().simple().to_string();
    let now = clock.now();
    if let Some((holder, until)) = meta.acquire_lease(job.as_str(), owner, &token, now, now + ttl_c).await? {
        return Err(LifecycleError::Busy { job: job.as_str(), owner: holder, until });
    }
    let lost = CancellationToken::new();
    let renewer = {
        let (meta, lost, token) = (meta.clone(), lost.clone(), token.clone());
        tokio::spawn(async move {
            let mut renewed = Instant::now();
            loop {
                tokio::time::sleep(ttl / 3).await;
                match meta.renew_lease(job.as_str(), &token, clock.now() + ttl_c).await {
                    Ok(true) => renewed = Instant::now(),
                    Ok(false) => {
                        tracing::error!(job = %job, "lease taken over while the job ran; stopping it");
                        lost.cancel();
                        return;
                    }
                    Err(e) if renewed.elapsed() >= ttl => {
                        tracing::error!(job = %job, error = %e, "lease not renewed within its time to live; stopping the job");
                        lost.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(job = %job, error = %e, "could not renew the lease; retrying"),
                }
            }
        })
    };
    Ok(Lease { meta, job, token, lost, renewer })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagelake_core::clock::{ManualClock, SystemClock};
    use imagelake_core::meta::SqlMetadata;
    use std::path::Path;
    use std::sync::Arc;

    async fn open(file: &Path) -> SharedMeta {
        let url = format!("sqlite://{}", file.display());
        Arc::new(SqlMetadata::connect(&url, 4, Duration::from_secs(5)).await.expect("open the database"))
    }

    fn db_file() -> std::path::PathBuf {
        imagelake_core::testing::temp_dir("lease").join("imagelake.db")
    }

    fn is_busy<T>(r: &Result<T, LifecycleError>) -> bool {
        matches!(r, Err(LifecycleError::Busy { .. }))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_runners_one_lease() {
        let meta = open(&db_file()).await;
        let clock: SharedClock = Arc::new(SystemClock);
        let ttl = Duration::from_secs(30);
        for _ in 0..5 {
            let (a, b) = tokio::join!(
                acquire(meta.clone(), clock.clone(), JobName::Expire, "a", ttl),
                acquire(meta.clone(), clock.clone(), JobName::Expire, "b", ttl)
            );
            assert!(a.is_ok() != b.is_ok() && (is_busy(&a) || is_busy(&b)), "exactly one holds it");
            let held = a.or(b).unwrap();
            // Held: a third runner is turned away; another job is independent.
            assert!(is_busy(&acquire(meta.clone(), clock.clone(), JobName::Expire, "c", ttl).await));
            let other = acquire(meta.clone(), clock.clone(), JobName::Usage, "c", ttl).await.unwrap();
            other.release().await;
            held.release().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_processes_never_both_hold_it() {
        // Two pools on one file: what two lifecycle processes on one host see.
        let file = db_file();
        let (p1, p2) = (open(&file).await, open(&file).await);
        let clock: SharedClock = Arc::new(SystemClock);
        let ttl = Duration::from_secs(30);
        for round in 0..20 {
            let (a, b) = tokio::join!(
                acquire(p1.clone(), clock.clone(), JobName::Reconcile, "p1", ttl),
                acquire(p2.clone(), clock.clone(), JobName::Reconcile, "p2", ttl)
            );
            assert!(
                a.is_ok() != b.is_ok(),
                "round {round}: exactly one holds it: {:?} / {:?}",
                a.as_ref().err(),
                b.as_ref().err()
            );
            assert!(is_busy(&a) || is_busy(&b), "round {round}: the other is busy");
            a.or(b).unwrap().release().await;
        }
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_the_holder_notices() {
        let meta = open(&db_file()).await;
        let manual = ManualClock::new(chrono::Utc::now());
        let clock: SharedClock = Arc::new(manual.clone());
        // The stale holder renews every 1 s of real time.
        let stale = acquire(meta.clone(), clock.clone(), JobName::Expire, "a", Duration::from_secs(3)).await.unwrap();
        // Still held a moment later.
        manual.advance(chrono::Duration::seconds(2));
        assert!(is_busy(&acquire(meta.clone(), clock.clone(), JobName::Expire, "b", Duration::from_secs(30)).await));
        // The first holder stalled past its lease: 10 s pass on the clock before it renews.
        manual.advance(chrono::Duration::seconds(8));
        let fresh = acquire(meta.clone(), clock.clone(), JobName::Expire, "b", Duration::from_secs(30)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), stale.lost().cancelled())
            .await
            .expect("the stale holder's next renewal sees it lost the lease");
        assert!(stale.check().is_err());
        assert!(fresh.check().is_ok());
        stale.release().await; // not ours any more: must not free b's lease
        assert!(is_busy(&acquire(meta.clone(), clock.clone(), JobName::Expire, "c", Duration::from_secs(30)).await));
        fresh.release().await;
        acquire(meta.clone(), clock.clone(), JobName::Expire, "c", Duration::from_secs(30)).await.unwrap().release().await;
    }
}
