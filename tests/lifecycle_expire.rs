//! The lifecycle jobs end to end, in process: ingest and the processor on a manual clock,
//! the jobs through their library API (`run_job_with`), on the embedded default and
//! against Garage.

mod common;

use common::{image_bytes, Backend, InProcess};
use image::ImageFormat;
use imagelake_core::clock::Clock;
use imagelake_core::ids;
use imagelake_core::record::{self, Status, VariantState};
use imagelake_lifecycle::chrono::{DateTime, Duration as Days, Utc};
use imagelake_lifecycle::{expire, lakeread, run_job_with, status, JobName, LifecycleError, Options};
use std::collections::BTreeSet;
use std::time::Duration;

fn opts() -> Options {
    // A settle long enough that a loaded machine never trips the slow-write guard (settle / 2).
    Options { lease_settle: Duration::from_millis(1000), ..Options::default() }
}

async fn run(p: &InProcess, job: JobName) -> imagelake_lifecycle::JobReport {
    run_job_with(&p.ctx, job, None, &opts()).await.unwrap_or_else(|e| panic!("{job}: {e}"))
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
    let records: Vec<_> = {
        let mut v = Vec::new();
        for id in &ids_ {
            v.push(record::read(store.as_ref(), "acme", id).await.unwrap().unwrap());
        }
        v
    };
    let made = records[0].variants[0].created_at;
    assert_eq!(made, t0);
    let keys: Vec<String> =
        records.iter().flat_map(|r| r.variants.iter().map(move |v| v.object_key(&r.customer, &r.id))).collect();
    assert_eq!(keys.len(), 12, "3 images, 4 presets");
    let variant_bytes: u64 = records.iter().flat_map(|r| r.variants.iter().map(|v| v.bytes)).sum();

    // One second early: nothing goes.
    p.clock.set(made + Days::days(7) - Days::seconds(1));
    let r = run(&p, JobName::Expire).await;
    assert_eq!(r.count("variants_expired"), 0, "{r}");
    for k in &keys {
        assert!(store.head(k).await.unwrap().is_some(), "{k} deleted early");
    }
    let res = p.client.get(&p.key, &format!("/v1/images/{}/variants/thumb", ids_[0])).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // An interrupted earlier sweep: image 0's objects deleted and its rows written, but
    // its record not updated yet.
    let at = made + Days::days(7) + Days::seconds(1);
    let r0 = &records[0];
    store.delete_many(&r0.variants.iter().map(|v| v.object_key(&r0.customer, &r0.id)).collect::<Vec<_>>()).await.unwrap();
    p.ctx.lake.write_durable(r0.variants.iter().map(|v| expire::deletion_event(r0, &v.name, v.bytes, at)).collect()).await.unwrap();

    // One second late: everything due is gone.
    p.clock.set(at);
    let used_before = p.ctx.usage.used();
    let r = run(&p, JobName::Expire).await;
    assert_eq!(r.count("variants_expired"), 12, "{r}");
    assert_eq!(r.count("bytes_freed"), variant_bytes, "{r}");
    assert!(r.count("delete_calls") >= 1 && r.requests > 0, "{r}");
    assert_eq!(p.ctx.usage.used(), used_before.saturating_sub(variant_bytes));
    for k in &keys {
        assert!(store.head(k).await.unwrap().is_none(), "{k} still there");
    }
    for id in &ids_ {
        let rec = record::read(store.as_ref(), "acme", id).await.unwrap().unwrap();
        assert!(rec.variants.iter().all(|v| v.state == VariantState::Expired), "{rec:?}");
        assert!(store.head(&record::original_key("acme", id)).await.unwrap().is_some(), "original removed");
        for name in ["thumb", "small", "medium", "web"] {
            let res = p.client.get(&p.key, &format!("/v1/images/{id}/variants/{name}")).send().await.unwrap();
            assert_eq!(res.status(), 410, "{name}");
        }
        let res = p.client.get(&p.key, &format!("/v1/images/{id}/original")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    // One `deletions` row per object, deterministic ids: the interrupted sweep's rows
    // have the same ids, so the views (one row per event_id) count each object once.
    let rows = lakeread::deletion_rows(store.as_ref(), at.date_naive()).await.unwrap();
    let distinct: BTreeSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(distinct.len(), 12, "{rows:?}");
    assert_eq!(rows.len(), 16, "4 duplicates from the interrupted sweep");
    for row in &rows {
        assert_eq!(row.reason, "expired");
        assert_eq!(row.kind, "variant");
        assert_eq!(row.event_id, ids::event_id(&["deletion", &row.image_id, "variant", row.variant.as_deref().unwrap()]));
    }
    let mut seen = BTreeSet::new();
    let freed: u64 = rows.iter().filter(|r| seen.insert(r.event_id.clone())).map(|r| r.bytes).sum();
    assert_eq!(freed, variant_bytes);

    // A second sweep finds nothing; the watermark moved past the day.
    let r = run(&p, JobName::Expire).await;
    assert_eq!(r.count("variants_expired"), 0, "{r}");
    assert!(r.count("days_scanned") <= 1, "{r}");

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
    let u = imagelake_lifecycle::measure_usage(&scratch.ctx).await.unwrap();
    let (o, t) = (u.total.originals_bytes, u.total.bytes());
    assert_eq!(o, body.len() as u64);
    scratch.stop().await;

    let capacity = 2 * t + 1;
    assert!(3 * o < capacity, "variants too small for this test: o={o} t={t}");
    let p = InProcess::start(backend, Some(capacity)).await;
    let seeded = imagelake_lifecycle::measure_usage(&p.ctx).await.unwrap();
    assert_eq!(seeded.total.bytes(), 0);
    for _ in 0..3 {
        p.upload_processed(body.clone()).await;
    }
    assert_eq!(p.ctx.usage.used(), 3 * t);
    let res = p.client.upload(&p.key, body.clone(), "image/jpeg").await;
    assert_eq!(res.status(), 507);
    // The usage job agrees and writes its snapshot.
    let r = run(&p, JobName::Usage).await;
    assert_eq!(r.count("used_bytes"), 3 * t, "{r}");
    assert_eq!(r.count("rows_written"), 2, "total + acme");
    assert!(r.count("percent_used_x100") >= 10_000, "{r}");
    let res = p.client.upload(&p.key, body.clone(), "image/jpeg").await;
    assert_eq!(res.status(), 507);
    // An ingest process of its own (a fresh gauge on the same store) follows the usage
    // job's published measurement without listing the bucket.
    let mut ingest = p.ctx.clone();
    ingest.usage = std::sync::Arc::new(imagelake_core::usage::UsageGauge::new(capacity));
    imagelake_lifecycle::follow_usage(&ingest).await.unwrap();
    assert_eq!(ingest.usage.used(), 3 * t);
    assert!(ingest.usage.is_full());

    p.clock.advance(Days::days(7) + Days::seconds(1));
    let r = run(&p, JobName::Expire).await;
    assert_eq!(r.count("variants_expired"), 12, "{r}");
    assert_eq!(p.ctx.usage.used(), 3 * o);
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

/// Two runners of one job at once: exactly one runs, the other is told it is busy.
async fn one_runner_at_a_time(backend: Backend) {
    let p = InProcess::start(backend, None).await;
    for job in [JobName::Usage, JobName::Expire] {
        let o = Options { lease_settle: Duration::from_millis(1000), ..Options::default() };
        let (a, b) = tokio::join!(run_job_with(&p.ctx, job, None, &o), run_job_with(&p.ctx, job, None, &o));
        let busy = [&a, &b].iter().filter(|r| matches!(r, Err(LifecycleError::Busy { .. }))).count();
        let ok = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!((ok, busy), (1, 1), "{job}: {a:?} / {b:?}");
        // Released: the next run goes ahead.
        run_job_with(&p.ctx, job, None, &o).await.unwrap();
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
    let kept = p.upload_processed(image_bytes(320, 240, ImageFormat::Jpeg)).await;
    let kept_id = kept["id"].as_str().unwrap().to_string();
    // An original whose record was never written (a crashed upload).
    let orphan = ids::new_id();
    store.put(&record::original_key("acme", &orphan), vec![1u8; 100].into()).await.unwrap();
    // A record whose original is gone.
    let mut lost = record::read(store.as_ref(), "acme", &kept_id).await.unwrap().unwrap();
    lost.id = ids::new_id();
    lost.variants.clear();
    record::create(store.as_ref(), &lost).await.unwrap();
    // A stale multipart upload.
    store.create_multipart("originals/acme/stale-upload").await.unwrap();

    let at: DateTime<Utc> = p.clock.now() + Days::days(8);
    p.clock.set(at);
    let r = run(&p, JobName::Reconcile).await;
    assert_eq!(r.count("originals_orphaned"), 1, "{r}");
    assert_eq!(r.count("records_original_missing"), 1, "{r}");
    // The kept image's variants were past expiry and not swept: reconcile expired them.
    assert_eq!(r.count("variants_expired"), 4, "{r}");
    assert!(store.head(&record::original_key("acme", &orphan)).await.unwrap().is_none());
    let lost = record::read(store.as_ref(), "acme", &lost.id).await.unwrap().unwrap();
    assert_eq!(lost.status, Status::Failed);
    assert_eq!(lost.error.unwrap().code, "original_missing");
    let r = run(&p, JobName::Reconcile).await;
    assert_eq!(r.count("originals_orphaned") + r.count("records_original_missing") + r.count("variants_expired"), 0, "{r}");

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
