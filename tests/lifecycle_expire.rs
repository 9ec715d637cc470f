//! The lifecycle jobs end to end, in process: ingest and the processor on a manual clock,
//! the jobs through their library API (`run_job_with`), with the metadata database in
//! SQLite, on the embedded store and against Garage.

mod common;

use common::{image_bytes, Backend, InProcess};
use image::ImageFormat;
use imagelake_core::app::Context;
use imagelake_core::clock::Clock;
use imagelake_core::deletion::deletion_event;
use imagelake_core::ids;
use imagelake_core::meta::{Figures, SharedMeta, SqlMetadata};
use imagelake_core::record::{self, Status, VariantState};
use imagelake_core::store::{list_all, SharedStore};
use imagelake_lifecycle::chrono::{DateTime, Duration as Days, Utc};
use imagelake_lifecycle::{lease, run_job_with, status, JobName, LifecycleError, Options};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

async fn run(p: &InProcess, job: JobName) -> imagelake_lifecycle::JobReport {
    run_job_with(&p.ctx, job, None, &Options::default()).await.unwrap_or_else(|e| panic!("{job}: {e}"))
}

/// Bytes and objects counted in the database, all customers.
async fn counted(ctx: &Context) -> Figures {
    let mut t = Figures::default();
    for (_, f) in ctx.meta.usage().await.unwrap() {
        t.originals_bytes += f.originals_bytes;
        t.originals += f.originals;
        t.variants_bytes += f.variants_bytes;
        t.variants += f.variants;
    }
    t
}

/// A local copy of the lake (`lake/` of the store), for the Python peers.
async fn lake_copy(store: &SharedStore) -> PathBuf {
    let dir = imagelake_core::testing::temp_dir("lake-copy");
    for m in list_all(store.as_ref(), "lake/").await.unwrap() {
        let body = store.get(&m.key, None).await.unwrap().bytes().await.unwrap();
        let path = dir.join(&m.key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    dir.join("lake")
}

async fn expire_after_seven_days(backend: Backend) {
    let p = InProcess::start(backend, None).await;
    let t0 = p.clock.now();
    let mut ids_ = Vec::new();
    for i in 0..3 {
        let rec = p.upload_processed(image_bytes(320 + i * 8, 240, ImageFormat::Jpeg)).await;
        ids_.push(rec["id"].as_str().unwrap().to_string());
    }
    let store = p.ctx.store.clone();
    let mut records = Vec::new();
    for id in &ids_ {
        records.push(p.ctx.meta.image(id).await.unwrap().unwrap());
    }
    let made = records[0].variants[0].created_at;
    assert_eq!(made, t0);
    let keys: Vec<String> =
        records.iter().flat_map(|r| r.variants.iter().map(move |v| v.object_key(&r.customer, &r.id))).collect();
    assert_eq!(keys.len(), 12, "3 images, 4 presets");
    let variant_bytes: u64 = records.iter().flat_map(|r| r.variants.iter().map(|v| v.bytes)).sum();

    // One second early: nothing goes, and the bucket is neither listed nor read (the one
    // request is the backstop rule).
    p.clock.set(made + Days::days(7) - Days::seconds(1));
    let r = run(&p, JobName::Expire).await;
    assert_eq!(r.count("variants_expired"), 0, "{r}");
    assert_eq!(r.requests, 1, "{r}");
    for k in &keys {
        assert!(store.head(k).await.unwrap().is_some(), "{k} deleted early");
    }
    let res = p.client.get(&p.key, &format!("/v1/images/{}/variants/thumb", ids_[0])).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // An interrupted earlier sweep: image 0's objects deleted and its rows written, but
    // its variants not marked yet.
    let at = made + Days::days(7) + Days::seconds(1);
    let r0 = &records[0];
    store.delete_many(&r0.variants.iter().map(|v| v.object_key(&r0.customer, &r0.id)).collect::<Vec<_>>()).await.unwrap();
    let rows = r0
        .variants
        .iter()
        .map(|v| {
            deletion_event(
                &r0.id,
                &r0.customer,
                Some((&v.name, &v.format)),
                v.bytes,
                at,
                imagelake_core::lake::DeletionReason::Expired,
            )
        })
        .collect();
    p.ctx.lake.write_durable(rows).await.unwrap();

    // One second late: everything due is gone.
    p.clock.set(at);
    let used_before = p.ctx.usage.used();
    let counted_before = counted(&p.ctx).await;
    let r = run(&p, JobName::Expire).await;
    assert_eq!(r.count("variants_expired"), 12, "{r}");
    assert_eq!(r.count("bytes_freed"), variant_bytes, "{r}");
    assert!(r.count("delete_calls") >= 1, "{r}");
    assert_eq!(r.requests, 1 + r.count("delete_calls"), "no listing, no reads: {r}");
    assert_eq!(p.ctx.usage.used(), used_before.saturating_sub(variant_bytes));
    let after = counted(&p.ctx).await;
    assert_eq!((after.variants_bytes, after.variants), (0, 0));
    assert_eq!(after.originals_bytes, counted_before.originals_bytes);
    for k in &keys {
        assert!(store.head(k).await.unwrap().is_none(), "{k} still there");
    }
    for id in &ids_ {
        let rec = p.ctx.meta.image(id).await.unwrap().unwrap();
        assert!(rec.variants.iter().all(|v| v.state == VariantState::Expired), "{rec:?}");
        assert!(store.head(&record::original_key("acme", id)).await.unwrap().is_some(), "original removed");
        for name in ["thumb", "small", "medium", "web"] {
            let res = p.client.get(&p.key, &format!("/v1/images/{id}/variants/{name}")).send().await.unwrap();
            assert_eq!(res.status(), 410, "{name}");
        }
        let res = p.client.get(&p.key, &format!("/v1/images/{id}/original")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    // One `deletions` row per object, deterministic ids: the interrupted sweep's rows have
    // the same ids, so the views (one row per event_id) count each object once.
    let summary = common::lake::check_lake(&lake_copy(&store).await, &["--expect".into(), "deletions=12".into()]);
    assert_eq!(summary["deletions"]["duckdb"]["raw_rows"], 16, "4 duplicates from the interrupted sweep: {summary}");

    // A second sweep finds nothing.
    let r = run(&p, JobName::Expire).await;
    assert_eq!((r.count("variants_expired"), r.requests), (0, 1), "{r}");

    // Status is persisted per job.
    let st = status(&p.ctx).await;
    let e = st.iter().find(|s| s.job == JobName::Expire).unwrap();
    assert_eq!(e.last_run.as_ref().unwrap().outcome, "ok", "{e}");
    assert_eq!(e.schedule, "0 0 * * * *");
    assert!(st.iter().find(|s| s.job == JobName::Compact).unwrap().last_run.is_none());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expire_after_seven_days_embedded() {
    expire_after_seven_days(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expire_after_seven_days_garage() {
    expire_after_seven_days(Backend::Servers).await;
}

/// Uploads succeed until usage crosses capacity, then 507; an expiry frees space.
async fn capacity_gate(backend: Backend) {
    let body = image_bytes(320, 240, ImageFormat::Jpeg);
    // What one image costs (original + variants), measured on a scratch platform.
    let scratch = InProcess::start(backend, None).await;
    scratch.upload_processed(body.clone()).await;
    let one = counted(&scratch.ctx).await;
    let (o, t) = (one.originals_bytes, one.bytes());
    assert_eq!(o, body.len() as u64);
    scratch.stop().await;

    let capacity = 2 * t + 1;
    assert!(3 * o < capacity, "variants too small for this test: o={o} t={t}");
    let p = InProcess::start(backend, Some(capacity)).await;
    assert_eq!(counted(&p.ctx).await.bytes(), 0);
    for _ in 0..3 {
        p.upload_processed(body.clone()).await;
    }
    assert_eq!(p.ctx.usage.used(), 3 * t);
    assert_eq!(counted(&p.ctx).await.bytes(), 3 * t);
    let res = p.client.upload(&p.key, body.clone(), "image/jpeg").await;
    assert_eq!(res.status(), 507);
    // The usage job agrees and writes its rows, without listing the bucket.
    let r = run(&p, JobName::Usage).await;
    assert_eq!(r.count("used_bytes"), 3 * t, "{r}");
    assert_eq!(r.count("rows_written"), 2, "total + acme");
    assert!(r.count("percent_used_x100") >= 10_000, "{r}");
    assert_eq!(r.requests, 0, "{r}");
    let res = p.client.upload(&p.key, body.clone(), "image/jpeg").await;
    assert_eq!(res.status(), 507);
    // An ingest process of its own (a fresh gauge on the same database) reads the counters.
    let mut ingest = p.ctx.clone();
    ingest.usage = Arc::new(imagelake_core::usage::UsageGauge::new(capacity));
    ingest.refresh_usage().await.unwrap();
    assert_eq!(ingest.usage.used(), 3 * t);
    assert!(ingest.usage.is_full());

    p.clock.advance(Days::days(7) + Days::seconds(1));
    let r = run(&p, JobName::Expire).await;
    assert_eq!(r.count("variants_expired"), 12, "{r}");
    assert_eq!(p.ctx.usage.used(), 3 * o);
    assert_eq!(counted(&p.ctx).await.bytes(), 3 * o);
    p.upload_processed(body.clone()).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capacity_gate_embedded() {
    capacity_gate(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capacity_gate_garage() {
    capacity_gate(Backend::Servers).await;
}

/// Two lifecycle processes on one database (two pools): while one holds a job's lease the
/// other's run is refused as busy, and runs started together never both fail. (That two
/// overlapping runs are never both let through is `lifecycle/tests/jobs.rs`, whose store
/// is slowed down so that the runs surely overlap.)
async fn one_runner_at_a_time(backend: Backend) {
    let p = InProcess::start(backend, None).await;
    let db = &p.ctx.config.database;
    let url = db.url.clone().unwrap_or_else(|| format!("sqlite://{}", p.ctx.config.data_dir.join("imagelake.db").display()));
    let meta: SharedMeta = Arc::new(SqlMetadata::connect(&url, 4, Duration::from_secs(5)).await.unwrap());
    let other = Context { meta, ..p.ctx.clone() };
    let o = Options::default();
    for job in [JobName::Usage, JobName::Expire] {
        let held = lease::acquire(other.meta.clone(), other.clock.clone(), job, "the other process", o.lease_ttl).await.unwrap();
        for _ in 0..3 {
            match run_job_with(&p.ctx, job, None, &o).await {
                Err(LifecycleError::Busy { owner, .. }) => assert_eq!(owner, "the other process"),
                r => panic!("{job}: {r:?}"),
            }
        }
        held.release().await;
        // Released: the next run goes ahead.
        run_job_with(&p.ctx, job, None, &o).await.unwrap();
        for round in 0..10 {
            let (a, b) = tokio::join!(run_job_with(&p.ctx, job, None, &o), run_job_with(&other, job, None, &o));
            let busy = [&a, &b].iter().filter(|r| matches!(r, Err(LifecycleError::Busy { .. }))).count();
            let ok = [&a, &b].iter().filter(|r| r.is_ok()).count();
            assert!(ok >= 1 && ok + busy == 2, "{job}, round {round}: {:?} / {:?}", a.err(), b.err());
        }
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_runner_at_a_time_embedded() {
    one_runner_at_a_time(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_runner_at_a_time_garage() {
    one_runner_at_a_time(Backend::Servers).await;
}

/// Reconcile, abort-multipart and compact on a small mess.
async fn reconcile_and_housekeeping(backend: Backend) {
    let p = InProcess::start(backend, None).await;
    let store = p.ctx.store.clone();
    let t0 = p.clock.now();
    let kept = p.upload_processed(image_bytes(320, 240, ImageFormat::Jpeg)).await;
    let kept = p.ctx.meta.image(kept["id"].as_str().unwrap()).await.unwrap().unwrap();
    // An original whose record was never written (a crashed upload).
    let orphan = ids::new_id();
    store.put(&record::original_key("acme", &orphan), vec![1u8; 100].into()).await.unwrap();
    // A record whose original is gone.
    let mut lost = kept.clone();
    lost.id = ids::new_id();
    lost.variants.clear();
    assert!(p.ctx.meta.import_image(&lost).await.unwrap());
    // A delete that stopped after its tombstone, its original still there.
    let mut tomb = kept.clone();
    tomb.id = ids::new_id();
    tomb.variants.clear();
    assert!(p.ctx.meta.import_image(&tomb).await.unwrap());
    store.put(&record::original_key("acme", &tomb.id), vec![2u8; tomb.bytes as usize].into()).await.unwrap();
    p.ctx.meta.begin_delete(&tomb.id, t0).await.unwrap().unwrap();
    // A stale multipart upload.
    store.create_multipart("originals/acme/stale-upload").await.unwrap();

    let at: DateTime<Utc> = t0 + Days::days(8);
    p.clock.set(at);
    let r = run(&p, JobName::Reconcile).await;
    assert_eq!(r.count("deletes_finished"), 1, "{r}");
    assert!(p.ctx.meta.image(&tomb.id).await.unwrap().is_none());
    assert!(store.head(&record::original_key("acme", &tomb.id)).await.unwrap().is_none());
    assert_eq!(r.count("originals_orphaned"), 1, "{r}");
    assert_eq!(r.count("records_original_missing"), 1, "{r}");
    // The kept image's variants were past expiry and not swept: reconcile expired them.
    assert_eq!(r.count("variants_expired"), 4, "{r}");
    assert!(store.head(&record::original_key("acme", &orphan)).await.unwrap().is_none());
    let lost_now = p.ctx.meta.image(&lost.id).await.unwrap().unwrap();
    assert_eq!(lost_now.status, Status::Failed);
    assert_eq!(lost_now.error.unwrap().code, "original_missing");
    // The counters held the lost original's bytes, which the bucket does not: corrected.
    assert_eq!(r.count("usage_drift_bytes"), lost.bytes, "{r}");
    assert_eq!(counted(&p.ctx).await, Figures { originals_bytes: kept.bytes, originals: 1, variants_bytes: 0, variants: 0 });
    let r = run(&p, JobName::Reconcile).await;
    for c in ["deletes_finished", "originals_orphaned", "records_original_missing", "variants_expired", "usage_drift_bytes"] {
        assert_eq!(r.count(c), 0, "{c}: {r}");
    }

    let r = run(&p, JobName::AbortMultipart).await;
    assert_eq!(r.count("aborted"), 1, "{r}");
    assert!(store.list_multipart("").await.unwrap().is_empty());

    let r = run(&p, JobName::Compact).await;
    assert!(r.count("partitions_seen") >= 1, "{r}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconcile_and_housekeeping_embedded() {
    reconcile_and_housekeeping(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconcile_and_housekeeping_garage() {
    reconcile_and_housekeeping(Backend::Servers).await;
}
