//! One runner per job, across processes, without conditional writes.
//!
//! The obvious lease, a `PutObject` with `If-None-Match: *` / `If-Match`, is not available:
//! Garage ignores both headers. So the lease is a small object
//! `lifecycle/leases/{job}.json` = `{owner, nonce, expires_at}`, taken like this:
//!
//! 1. read it; if it exists, is not expired and is someone else's, the job is busy;
//! 2. write our own (a fresh random nonce), and time steps 1 to 2 on the monotonic clock;
//! 3. if that read-to-write took longer than half the *settle delay*, give up (busy);
//! 4. wait the settle delay, read it again: we hold the lease only if it still carries
//!    our nonce (the last writer wins, and S3 reads are strongly consistent).
//!
//! While the job runs, the lease is renewed every third of its time to live; a renewal
//! that finds another nonce cancels [`Lease::lost`], and the jobs stop at their next batch.
//! On release the object is deleted if it is still ours.
//!
//! Why two runners cannot both hold it: say A and B race. A holds only if its re-read,
//! which comes at least `settle` after A's write became visible, saw A's nonce, so B's
//! write became visible after A's re-read. B wrote only because B's first read saw no live
//! lease, i.e. B read before A's write became visible. So B's read-to-write took longer
//! than `settle`, and step 3 made B give up. **Residual risks**, stated honestly: (a) a
//! holder that stalls longer than the whole time to live (a frozen VM) loses the lease to
//! another runner and both may run until its next renewal notices; (b) the argument
//! assumes the two hosts' monotonic clocks run at about the same rate and the store is
//! strongly consistent per key (S3 and Garage are). Every job is idempotent (deterministic
//! event ids, deletes of missing keys are no-ops), so the worst outcome of a double run is
//! wasted requests, never a lost object or a double-counted statistic. A runner that gives
//! up in step 3 leaves its lease object to expire (deleting it could free a lease someone
//! else holds): the job is then skipped until the time to live passes.

use crate::state::{read_json, write_json};
use crate::{JobName, LifecycleError};
use chrono::{DateTime, Utc};
use imagelake_core::clock::SharedClock;
use imagelake_core::store::SharedStore;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseDoc {
    job: JobName,
    owner: String,
    nonce: String,
    acquired_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

pub fn lease_key(job: JobName) -> String {
    format!("lifecycle/leases/{}.json", job.as_str())
}

/// A held lease; dropping it without [`Lease::release`] lets it expire.
pub struct Lease {
    store: SharedStore,
    job: JobName,
    nonce: String,
    lost: CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Cancelled when a renewal found the lease taken over.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Errors with [`LifecycleError::LeaseLost`] once the lease is gone.
    pub fn check(&self) -> Result<(), LifecycleError> {
        if self.lost.is_cancelled() { Err(LifecycleError::LeaseLost(self.job.as_str())) } else { Ok(()) }
    }

    /// Stops renewing and deletes the lease object if it is still ours.
    pub async fn release(self) {
        self.renewer.abort();
        let key = lease_key(self.job);
        if let Ok(Some(doc)) = read_json::<LeaseDoc>(self.store.as_ref(), &key).await {
            if doc.nonce == self.nonce {
                if let Err(e) = self.store.delete_many(&[key]).await {
                    tracing::warn!(job = %self.job, error = %e, "could not release the lease; it will expire");
                }
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Takes the lease of `job` for `owner`, or answers [`LifecycleError::Busy`].
pub async fn acquire(
    store: SharedStore,
    clock: SharedClock,
    job: JobName,
    owner: &str,
    ttl: Duration,
    settle: Duration,
) -> Result<Lease, LifecycleError> {
    let key = lease_key(job);
    let ttl_c = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(5));
    let started = Instant::now();
    let now = clock.now();
    if let Some(doc) = read_json::<LeaseDoc>(store.as_ref(), &key).await? {
        if doc.expires_at > now {
            return Err(LifecycleError::Busy { job: job.as_str(), owner: doc.owner, until: doc.expires_at });
        }
    }
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let mine = LeaseDoc { job, owner: owner.to_string(), nonce: nonce.clone(), acquired_at: now, expires_at: now + ttl_c };
    write_json(store.as_ref(), &key, &mine).await?;
    if started.elapsed() > settle / 2 {
        tracing::warn!(job = %job, took = ?started.elapsed(), "lease write was slow; not taking the lease this time");
        return Err(LifecycleError::Busy { job: job.as_str(), owner: format!("{owner} (slow write)"), until: mine.expires_at });
    }
    tokio::time::sleep(settle).await;
    match read_json::<LeaseDoc>(store.as_ref(), &key).await? {
        Some(doc) if doc.nonce == nonce => {}
        Some(doc) => return Err(LifecycleError::Busy { job: job.as_str(), owner: doc.owner, until: doc.expires_at }),
        None => {
            return Err(LifecycleError::Busy { job: job.as_str(), owner: "(released meanwhile)".into(), until: now })
        }
    }
    let lost = CancellationToken::new();
    let renewer = {
        let (store, clock, lost, nonce) = (store.clone(), clock.clone(), lost.clone(), nonce.clone());
        let mut doc = mine;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                match read_json::<LeaseDoc>(store.as_ref(), &key).await {
                    Ok(Some(d)) if d.nonce == nonce => {}
                    Ok(_) => {
                        tracing::error!(job = %job, "lease taken over while the job ran; stopping it");
                        lost.cancel();
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(job = %job, error = %e, "could not read the lease to renew it");
                        continue;
                    }
                }
                doc.expires_at = clock.now() + ttl_c;
                if let Err(e) = write_json(store.as_ref(), &key, &doc).await {
                    tracing::warn!(job = %job, error = %e, "could not renew the lease");
                }
            }
        })
    };
    Ok(Lease { store, job, nonce, lost, renewer })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagelake_core::clock::{ManualClock, SystemClock};
    use imagelake_core::store::LocalStore;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_runners_one_lease() {
        let store: SharedStore = Arc::new(LocalStore::open(imagelake_core::testing::temp_dir("lease")).unwrap());
        let clock: SharedClock = Arc::new(SystemClock);
        let (ttl, settle) = (Duration::from_secs(30), Duration::from_millis(600));
        for _ in 0..5 {
            let (a, b) = tokio::join!(
                acquire(store.clone(), clock.clone(), JobName::Expire, "a", ttl, settle),
                acquire(store.clone(), clock.clone(), JobName::Expire, "b", ttl, settle)
            );
            assert_eq!(a.is_ok() as u8 + b.is_ok() as u8, 1, "exactly one holds it");
            let held = a.or(b).unwrap();
            // Held: a third runner is turned away; another job is independent.
            assert!(matches!(
                acquire(store.clone(), clock.clone(), JobName::Expire, "c", ttl, settle).await,
                Err(LifecycleError::Busy { .. })
            ));
            let other = acquire(store.clone(), clock.clone(), JobName::Usage, "c", ttl, settle).await.unwrap();
            other.release().await;
            held.release().await;
        }
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_the_holder_notices() {
        let store: SharedStore = Arc::new(LocalStore::open(imagelake_core::testing::temp_dir("lease")).unwrap());
        let manual = ManualClock::new(chrono::Utc::now());
        let clock: SharedClock = Arc::new(manual.clone());
        // Settle long enough that a loaded machine's fsync never trips the slow-write
        // guard (settle / 2); the stale holder renews every 1 s of real time.
        let settle = Duration::from_millis(400);
        let stale = acquire(store.clone(), clock.clone(), JobName::Expire, "a", Duration::from_secs(3), settle).await.unwrap();
        // The first holder stalled past its lease: 10 s pass on the clock before it renews.
        manual.advance(chrono::Duration::seconds(10));
        let fresh = acquire(store.clone(), clock.clone(), JobName::Expire, "b", Duration::from_secs(30), settle).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), stale.lost().cancelled())
            .await
            .expect("the stale holder's next renewal sees it lost the lease");
        assert!(stale.check().is_err());
        assert!(fresh.check().is_ok());
        stale.release().await; // not ours any more: must not delete b's lease
        assert!(matches!(
            acquire(store.clone(), clock.clone(), JobName::Expire, "c", Duration::from_secs(30), settle).await,
            Err(LifecycleError::Busy { .. })
        ));
        fresh.release().await;
    }
}
