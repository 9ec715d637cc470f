//! The services as separate processes (`scripts/deploy.sh`): two ingest behind HAProxy,
//! two processor, one reporting and two lifecycle, on Garage, the SQS server and
//! PostgreSQL, under load. Issue 17's availability checks: a rolling restart with
//! SIGTERM, `kill -9` of an ingest and a processor, and a lifecycle killed while it holds
//! a job's lease.
//!
//! The tests run one at a time (each loads both cores), about six minutes together.

mod common;

use common::deploy::{upload_load, Deployment, LoadReport};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// One deployment under load at a time: they would slow each other down.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A short visibility timeout, so that a job whose receive was cut off (a processor
/// stopped mid long-poll, or killed) comes back within the test.
const KNOBS: &[(&str, &str)] = &[("DEPLOY_VISIBILITY", "15s"), ("DEPLOY_GRACE", "20s")];

/// Waits until every image of the deployment's customer is `processed` (none left
/// `uploaded` or `processing`); returns how long that took.
fn wait_processed(dep: &Deployment, expected: usize, within: Duration) -> Duration {
    let mut sql = dep.sql();
    let start = Instant::now();
    loop {
        let pending = sql.count(&format!(
            "SELECT count(*) FROM images WHERE customer = '{}' AND status NOT IN ('processed', 'failed')",
            dep.customer
        ));
        if pending == 0 {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{pending} of {expected} images still not processed after {within:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every accepted upload is exactly one record, `processed`; every Idempotency-Key
/// answered one image, however often it was retried.
fn check_records(dep: &Deployment, load: &LoadReport) {
    for u in &load.uploads {
        let ids: HashSet<&String> = u.ids.iter().collect();
        assert!(ids.len() <= 1, "Idempotency-Key {} answered several images: {:?}", u.key, u.ids);
    }
    let accepted: HashSet<String> = load.accepted().into_iter().collect();
    assert_eq!(accepted.len(), load.accepted().len(), "two keys answered the same image");
    let mut sql = dep.sql();
    let rows = sql.rows(&format!("SELECT id, status FROM images WHERE customer = '{}'", dep.customer));
    let in_db: HashSet<String> = rows.iter().map(|r| r[0].clone()).collect();
    let not_processed: Vec<&Vec<String>> = rows.iter().filter(|r| r[1] != "processed").collect();
    assert!(not_processed.is_empty(), "records not processed: {not_processed:?}");
    let missing: Vec<&String> = accepted.difference(&in_db).collect();
    assert!(missing.is_empty(), "{} accepted uploads have no record: {missing:?}", missing.len());
    let extra: Vec<&String> = in_db.difference(&accepted).collect();
    assert!(extra.is_empty(), "{} records that no answer named (a retry made a second record?): {extra:?}", extra.len());
}

/// The lake counts each accepted upload once: one upload fact, one succeeded job, and
/// the database's variants, each once, through the deduplicating views.
async fn check_lake(dep: &Deployment, load: &LoadReport) -> common::deploy::Facts {
    let facts = dep.lake_facts().await;
    let accepted: HashSet<String> = load.accepted().into_iter().collect();
    let n = accepted.len() as u64;
    let lake_images: HashSet<String> = facts.upload_images().into_iter().collect();
    assert_eq!(facts.n("uploads"), n, "upload facts vs accepted uploads: {:?}", facts.0["uploads_raw"]);
    assert_eq!(lake_images, accepted, "the uploads view names exactly the accepted images");
    assert_eq!(facts.n("jobs_succeeded_images"), n, "every accepted image has a succeeded job fact");
    let db_variants = dep.sql().count(&format!("SELECT count(*) FROM variants WHERE customer = '{}'", dep.customer));
    assert_eq!(facts.n("variants"), db_variants, "variant facts vs the database's variants");
    assert_eq!(facts.n("variant_pairs"), db_variants, "one variant fact per image and variant");
    facts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dep = Deployment::start(KNOBS);
    let load =
        tokio::spawn(upload_load(dep.url.clone(), dep.key.clone(), 4, Duration::from_secs(180), Duration::from_millis(150)));
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Each process in turn: SIGTERM, wait for the exit, start it again, wait until it is
    // ready (an ingest: until HAProxy sends it requests again), then a pause.
    for name in dep.processes() {
        let t = Instant::now();
        dep.stop_one(&name, "TERM");
        let stopped = t.elapsed();
        dep.start_one(&name);
        eprintln!("{name}: stopped in {stopped:.1?}, ready again after {:.1?}", t.elapsed());
        tokio::time::sleep(Duration::from_secs(12)).await;
    }
    let load = load.await.unwrap();
    eprintln!("rolling restart: {}", load.summary());
    eprintln!("HAProxy: {}", dep.retry_counters());
    let drained = wait_processed(&dep, load.accepted().len(), Duration::from_secs(120));
    eprintln!("backlog drained {drained:.1?} after the load");

    assert!(load.failed().is_empty(), "uploads that failed even with retries: {:?}", load.failed());
    let ratio = load.first_try() as f64 / load.requests() as f64;
    assert!(
        ratio >= 0.9999,
        "{:.4} % succeeded without a retry ({} of {}); retried: {:?}",
        ratio * 100.0,
        load.first_try(),
        load.requests(),
        load.retried()
    );
    check_records(&dep, &load);
    let facts = check_lake(&dep, &load).await;
    assert_eq!(facts.n("images_succeeded_twice"), 0, "an image processed twice across a restart");
    assert_eq!(facts.n("jobs_succeeded"), load.accepted().len() as u64, "succeeded job facts");
    eprintln!(
        "lake: {} upload rows in files for {} facts, {} succeeded jobs, {} variants",
        facts.n("uploads_raw"),
        facts.n("uploads"),
        facts.n("jobs_succeeded"),
        facts.n("variants")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_an_ingest_and_a_processor_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dep = Deployment::start(KNOBS);
    let load =
        tokio::spawn(upload_load(dep.url.clone(), dep.key.clone(), 4, Duration::from_secs(40), Duration::from_millis(100)));
    tokio::time::sleep(Duration::from_secs(12)).await;
    // Mid-load, no goodbye: requests in flight on ingest-1 and jobs on processor-1 die.
    dep.signal("ingest-1", "KILL");
    dep.signal("processor-1", "KILL");
    dep.wait_backend("ingest-1", "DOWN", Duration::from_secs(10));
    let load = load.await.unwrap();
    eprintln!("kill -9: {}", load.summary());
    eprintln!("HAProxy: {}", dep.retry_counters());
    // Jobs held by the dead processor come back after the visibility timeout (15 s);
    // jobs committed but not sent by the dead ingest, from the other's outbox sweeper.
    let drained = wait_processed(&dep, load.accepted().len(), Duration::from_secs(120));
    eprintln!("backlog drained {drained:.1?} after the load");

    assert!(load.failed().is_empty(), "uploads that failed even with retries: {:?}", load.failed());
    check_records(&dep, &load);
    let facts = check_lake(&dep, &load).await;
    eprintln!(
        "lake after kill -9: {} upload rows in files for {} facts; {} images with two succeeded attempts",
        facts.n("uploads_raw"),
        facts.n("uploads"),
        facts.n("images_succeeded_twice")
    );
}

/// The lease of `job` in the database: its owner and when it expires (µs).
fn lease(sql: &mut common::deploy::Sql, job: &str) -> Option<(String, i64)> {
    let rows = sql.rows(&format!("SELECT owner, expires_at FROM leases WHERE name = '{job}'"));
    rows.first().map(|r| (r[0].clone(), r[1].parse().unwrap()))
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_killed_holding_a_lease_is_taken_over_within_its_ttl() {
    let _one = ONE_AT_A_TIME.lock().await;
    let ttl = Duration::from_secs(3); // the minimum the configuration accepts
    let mut knobs = KNOBS.to_vec();
    knobs.extend([("DEPLOY_LEASE_TTL", "3s"), ("DEPLOY_LIFECYCLE_SCHEDULE", "* * * * * *")]);
    let dep = Deployment::start(&knobs);
    let victim = format!("/pid{}", dep.pid("lifecycle-1"));
    let survivor = format!("/pid{}", dep.pid("lifecycle-2"));
    let mut sql = dep.sql();

    // Catch lifecycle-1 holding a lease: freeze it (SIGSTOP) when the table names it, and
    // keep it frozen only if the lease is still its own once the frozen process's last
    // statements have landed (a run can end in between).
    let start = Instant::now();
    let (job, expires_at) = loop {
        assert!(start.elapsed() < Duration::from_secs(60), "lifecycle-1 was never seen holding a lease");
        let rows = sql.rows("SELECT name, owner FROM leases");
        let Some(job) = rows.into_iter().find(|r| r[1].ends_with(&victim)).map(|r| r[0].clone()) else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        dep.signal("lifecycle-1", "STOP");
        // A statement it sent just before the freeze (the release's DELETE after a quick
        // run, or a renewal) still lands in PostgreSQL: let it, then read the row again.
        std::thread::sleep(Duration::from_millis(300));
        match lease(&mut sql, &job) {
            Some((owner, until)) if owner.ends_with(&victim) => break (job, until),
            _ => dep.signal("lifecycle-1", "CONT"),
        }
    };
    dep.signal("lifecycle-1", "KILL");
    let killed_at = now_micros();
    eprintln!("lifecycle-1 killed holding the lease of {job}, valid {} ms more", (expires_at - killed_at) / 1000);
    assert!(expires_at - killed_at <= ttl.as_micros() as i64, "a lease is never valid for more than its ttl");

    // lifecycle-2 runs the job every second; it must get the lease once it expires.
    let state = format!("lifecycle/status/{job}");
    let taken_at = loop {
        let elapsed = Duration::from_micros((now_micros() - killed_at) as u64);
        assert!(elapsed < ttl * 3, "lifecycle-2 did not take {job} over within {elapsed:?}");
        let doc = sql.rows(&format!("SELECT doc FROM job_state WHERE name = '{state}'"));
        if let Some(run) = doc.first().and_then(|r| serde_json::from_str::<serde_json::Value>(&r[0]).ok()) {
            let owner = run["owner"].as_str().unwrap_or_default();
            let started: chrono::DateTime<chrono::Utc> = run["started_at"].as_str().unwrap_or_default().parse().unwrap();
            if owner.ends_with(&survivor) && started.timestamp_micros() > killed_at {
                break started.timestamp_micros();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let takeover = Duration::from_micros((taken_at - killed_at) as u64);
    eprintln!("lifecycle-2 ran {job} {takeover:.2?} after the kill (lease ttl {ttl:?}, schedule every 1 s)");
    assert!(taken_at >= expires_at, "lifecycle-2 ran {job} while lifecycle-1's lease was still valid");
    // Within one ttl of the kill, plus the schedule's one-second tick at which it tries.
    assert!(takeover <= ttl + Duration::from_millis(1500), "took {takeover:?} to take {job} over");
    assert!(dep.log("lifecycle-2").contains("already running elsewhere"), "lifecycle-2 was never turned away");
}
