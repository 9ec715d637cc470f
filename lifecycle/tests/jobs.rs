//! The jobs against the embedded backends (local directory, SQLite), with records planted
//! straight into the database: no binary, no ingest, no processor.

use bytes::Bytes;
use chrono::{DateTime, Duration as Days, Utc};
use imagelake_core::app::Context;
use imagelake_core::clock::{ManualClock, SharedClock};
use imagelake_core::config::Config;
use imagelake_core::lake::LakeWriter;
use imagelake_core::meta::{Figures, NewImage, SharedMeta, SqlMetadata};
use imagelake_core::record::{self, ImageRecord, Status, VariantRecord, VariantState};
use imagelake_core::store::{self, GetResult, ListPage, ObjectMeta, ObjectStore, PartTag, PendingUpload, SharedStore};
use imagelake_core::{ids, testing};
use imagelake_lifecycle::{run_job_with, status, JobName, JobReport, LifecycleError, Options};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

const PRESETS: [&str; 4] = ["thumb", "small", "medium", "web"];

struct Env {
    ctx: Context,
    clock: ManualClock,
    t0: DateTime<Utc>,
}

async fn env() -> Env {
    let config = Config { data_dir: testing::temp_dir("lifecycle-jobs"), ..Config::default() };
    let mut ctx = Context::connect(config).await.expect("connect");
    let t0 = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let clock = ManualClock::new(t0);
    let shared: SharedClock = Arc::new(clock.clone());
    ctx.clock = shared.clone();
    ctx.lake = LakeWriter::new(ctx.store.clone(), "jobs-test", ctx.config.lake.clone(), shared);
    Env { ctx, clock, t0 }
}

/// A processed image as the database holds it, made at `at`, its variants expiring at
/// `expires`; the original is 1000 bytes, variant i is 100 + i bytes.
fn processed(customer: &str, at: DateTime<Utc>, expires: DateTime<Utc>, names: &[&str]) -> ImageRecord {
    let id = ids::new_id();
    let variants = names
        .iter()
        .enumerate()
        .map(|(i, name)| VariantRecord {
            name: name.to_string(),
            format: "jpeg".into(),
            width: 100,
            height: 100,
            bytes: 100 + i as u64,
            url: record::variant_url(&id, name),
            created_at: at,
            expires_at: expires,
            state: VariantState::Ready,
        })
        .collect();
    ImageRecord {
        id,
        customer: customer.into(),
        status: Status::Processed,
        content_type: "image/jpeg".into(),
        format: "jpeg".into(),
        bytes: 1000,
        width: Some(800),
        height: Some(600),
        sha256: "0".repeat(64),
        uploaded_at: at,
        processed_at: Some(at),
        error: None,
        exif: None,
        requested_variants: names.iter().map(|s| s.to_string()).collect(),
        variants,
        attempts: 1,
        callback_url: None,
    }
}

/// Writes the record to the database and its bytes to the store.
async fn plant(ctx: &Context, rec: &ImageRecord) {
    assert!(ctx.meta.import_image(rec).await.unwrap());
    ctx.store.put(&record::original_key(&rec.customer, &rec.id), vec![1u8; rec.bytes as usize].into()).await.unwrap();
    for v in &rec.variants {
        ctx.store.put(&v.object_key(&rec.customer, &rec.id), vec![2u8; v.bytes as usize].into()).await.unwrap();
    }
}

async fn exists(ctx: &Context, key: &str) -> bool {
    ctx.store.head(key).await.unwrap().is_some()
}

async fn figures(ctx: &Context, customer: &str) -> Figures {
    ctx.meta.usage().await.unwrap().into_iter().find(|(c, _)| c == customer).map(|(_, f)| f).unwrap_or_default()
}

async fn run(ctx: &Context, job: JobName, opts: &Options) -> JobReport {
    run_job_with(ctx, job, None, opts).await.unwrap_or_else(|e| panic!("{job}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_takes_what_is_due_from_the_database() {
    let Env { ctx, clock, t0 } = env().await;
    let due_at = t0 + Days::days(7);
    let recs = [
        processed("acme", t0, due_at, &PRESETS),
        processed("acme", t0, due_at, &PRESETS),
        processed("globex", t0, due_at, &PRESETS),
    ];
    for r in &recs {
        plant(&ctx, r).await;
    }
    let later = processed("globex", t0, due_at + Days::days(1), &PRESETS);
    plant(&ctx, &later).await;
    // An image committed with an idempotency key that expires after a day.
    let keyed = processed("acme", t0, due_at, &[]);
    let new = NewImage {
        record: &keyed,
        job_id: "job-1",
        job_body: "{}",
        send_after: t0,
        idempotency: Some(("k1", t0 + Days::days(1))),
        post: None,
        in_flight: false,
    };
    ctx.meta.create_image(new).await.unwrap();
    ctx.refresh_usage().await.unwrap();
    let opts = Options { expire_chunk: 5, ..Options::default() };

    // One second early: nothing goes, and the bucket is neither listed nor read.
    clock.set(due_at - Days::seconds(1));
    let r = run(&ctx, JobName::Expire, &opts).await;
    assert_eq!(r.count("variants_expired"), 0, "{r}");
    assert_eq!(r.requests, 1, "only the backstop rule: {r}");
    assert_eq!(r.count("idempotency_keys_purged"), 1, "{r}");
    for rec in recs.iter().chain([&later]) {
        for v in &rec.variants {
            assert!(exists(&ctx, &v.object_key(&rec.customer, &rec.id)).await);
        }
    }

    // One second late: everything due is gone, in chunks of 5.
    clock.set(due_at + Days::seconds(1));
    let used = ctx.usage.used();
    let r = run(&ctx, JobName::Expire, &opts).await;
    let due_bytes: u64 = recs.iter().flat_map(|r| r.variants.iter().map(|v| v.bytes)).sum();
    assert_eq!(r.count("variants_expired"), 12, "{r}");
    assert_eq!(r.count("chunks"), 3, "{r}");
    assert_eq!(r.count("delete_calls"), 3, "{r}");
    assert_eq!(r.count("bytes_freed"), due_bytes, "{r}");
    assert_eq!(r.requests, 1 + 3, "the backstop rule and one delete call a chunk: {r}");
    assert!(r.count("lake_files_written") >= 3, "{r}");
    assert_eq!(ctx.usage.used(), used - due_bytes);
    for rec in &recs {
        let now = ctx.meta.image(&rec.id).await.unwrap().unwrap();
        assert!(now.variants.iter().all(|v| v.state == VariantState::Expired), "{now:?}");
        for v in &rec.variants {
            assert!(!exists(&ctx, &v.object_key(&rec.customer, &rec.id)).await);
        }
        assert!(exists(&ctx, &record::original_key(&rec.customer, &rec.id)).await, "originals stay");
    }
    let now = ctx.meta.image(&later.id).await.unwrap().unwrap();
    assert!(now.variants.iter().all(|v| v.state == VariantState::Ready), "not due yet");
    assert_eq!(figures(&ctx, "acme").await, Figures { originals_bytes: 3000, originals: 3, variants_bytes: 0, variants: 0 });
    assert_eq!(figures(&ctx, "globex").await.variants, 4);

    // Nothing left: the second sweep does nothing.
    let r = run(&ctx, JobName::Expire, &opts).await;
    assert_eq!((r.count("variants_expired"), r.requests), (0, 1), "{r}");

    // The last run is kept in the database.
    let st = status(&ctx).await;
    let e = st.iter().find(|s| s.job == JobName::Expire).unwrap();
    assert_eq!(e.last_run.as_ref().unwrap().outcome, "ok", "{e}");
    assert_eq!(e.last_run.as_ref().unwrap().report.count("variants_expired"), 0);
    assert!(st.iter().find(|s| s.job == JobName::Compact).unwrap().last_run.is_none());
}

/// A preset in several formats: one row and one object per format. Chunks of 2 end
/// between two formats of a variant; each chunk deletes and marks exactly its objects,
/// and the next one goes on with the rest (it is not mistaken for rows that stayed ready).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_takes_a_variant_format_by_format() {
    let Env { ctx, clock, t0 } = env().await;
    let due_at = t0 + Days::days(7);
    let mut rec = processed("acme", t0, due_at, &["web", "web", "web", "thumb"]);
    for (v, format) in rec.variants.iter_mut().zip(["webp", "jpeg", "png", "jpeg"]) {
        v.format = format.into();
    }
    plant(&ctx, &rec).await;
    ctx.refresh_usage().await.unwrap();
    let keys: Vec<String> = rec.variants.iter().map(|v| v.object_key("acme", &rec.id)).collect();
    let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), 4, "an object per format: {keys:?}");
    assert_eq!(figures(&ctx, "acme").await.variants, 4);

    clock.set(due_at + Days::seconds(1));
    let r = run(&ctx, JobName::Expire, &Options { expire_chunk: 2, ..Options::default() }).await;
    assert_eq!((r.count("variants_expired"), r.count("chunks")), (4, 2), "{r}");
    assert_eq!(r.count("bytes_freed"), 100 + 101 + 102 + 103, "{r}");
    assert!(!r.to_string().contains("stayed ready"), "{r}");
    for k in &keys {
        assert!(!exists(&ctx, k).await, "{k} still there");
    }
    let now = ctx.meta.image(&rec.id).await.unwrap().unwrap();
    assert!(now.variants.iter().all(|v| v.state == VariantState::Expired), "{now:?}");
    assert_eq!(figures(&ctx, "acme").await, Figures { originals_bytes: 1000, originals: 1, variants_bytes: 0, variants: 0 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reports_the_database_counters() {
    let Env { ctx, t0, .. } = env().await;
    let a = processed("acme", t0, t0 + Days::days(7), &PRESETS);
    let g = processed("globex", t0, t0 + Days::days(7), &PRESETS[..1]);
    plant(&ctx, &a).await;
    plant(&ctx, &g).await;
    ctx.usage.rebase(0);
    let r = run(&ctx, JobName::Usage, &Options::default()).await;
    let total = 2000 + (100 + 101 + 102 + 103) + 100;
    assert_eq!(r.count("used_bytes"), total, "{r}");
    assert_eq!(r.count("objects"), 2 + 5, "{r}");
    assert_eq!(r.count("customers"), 2, "{r}");
    assert_eq!(r.count("rows_written"), 3, "total + acme + globex");
    assert_eq!(r.requests, 0, "the bucket is not listed: {r}");
    assert_eq!(ctx.usage.used(), total, "the gauge is re-based");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_repairs_database_and_bucket() {
    let Env { ctx, clock, t0 } = env().await;
    let at = t0 + Days::days(8);
    // Processed, its variants overdue (no sweep ran).
    let kept = processed("acme", t0, t0 + Days::days(7), &PRESETS);
    plant(&ctx, &kept).await;
    // An original whose record was never written (a crashed upload).
    let orphan = record::original_key("acme", &ids::new_id());
    ctx.store.put(&orphan, vec![0u8; 100].into()).await.unwrap();
    // A record whose original is gone, and a young one (uploaded ten minutes before `at`).
    let lost = processed("acme", t0, t0 + Days::days(7), &[]);
    let young = processed("acme", at - Days::minutes(10), at + Days::days(7), &[]);
    for r in [&lost, &young] {
        plant(&ctx, r).await;
        ctx.store.delete_many(&[record::original_key("acme", &r.id)]).await.unwrap();
    }
    // A delete that stopped after its tombstone.
    let tomb = processed("acme", t0, t0 + Days::days(7), &PRESETS[..1]);
    plant(&ctx, &tomb).await;
    ctx.meta.begin_delete(&tomb.id, t0).await.unwrap().unwrap();
    // Counters that drifted by 500 bytes.
    let clean = processed("globex", t0, t0 + Days::days(30), &PRESETS[..2]);
    plant(&ctx, &clean).await;
    let mut wrong = figures(&ctx, "globex").await;
    wrong.originals_bytes += 500;
    ctx.meta.set_usage("globex", wrong).await.unwrap();

    clock.set(at);
    let r = run(&ctx, JobName::Reconcile, &Options::default()).await;
    assert_eq!(r.count("deletes_finished"), 1, "{r}");
    assert!(ctx.meta.image(&tomb.id).await.unwrap().is_none());
    assert!(!exists(&ctx, &record::original_key("acme", &tomb.id)).await);
    assert!(!exists(&ctx, &tomb.variants[0].object_key("acme", &tomb.id)).await);
    assert_eq!(r.count("originals_orphaned"), 1, "{r}");
    assert_eq!(r.count("orphan_bytes_freed"), 100, "{r}");
    assert!(!exists(&ctx, &orphan).await);
    assert_eq!(r.count("records_original_missing"), 1, "{r}");
    let l = ctx.meta.image(&lost.id).await.unwrap().unwrap();
    assert_eq!((l.status, l.error.unwrap().code.as_str()), (Status::Failed, "original_missing"));
    assert_eq!(ctx.meta.image(&young.id).await.unwrap().unwrap().status, Status::Processed, "too young to judge");
    assert_eq!(r.count("variants_expired"), 4, "{r}");
    assert!(!exists(&ctx, &kept.variants[0].object_key("acme", &kept.id)).await);
    // acme counted the two originals that are not there; globex 500 bytes too many.
    assert_eq!(r.count("usage_drift_bytes"), 2000 + 500, "{r}");
    assert_eq!(r.count("usage_corrected"), 2, "{r}");
    assert_eq!(r.count("usage_drift_skipped"), 0, "{r}");
    assert_eq!(figures(&ctx, "acme").await, Figures { originals_bytes: 1000, originals: 1, variants_bytes: 0, variants: 0 });
    assert_eq!(figures(&ctx, "globex").await, Figures { originals_bytes: 1000, originals: 1, variants_bytes: 201, variants: 2 });

    // A second run finds nothing to do.
    let r = run(&ctx, JobName::Reconcile, &Options::default()).await;
    for c in [
        "deletes_finished",
        "originals_orphaned",
        "records_original_missing",
        "variants_expired",
        "usage_drift_bytes",
        "usage_corrected",
    ] {
        assert_eq!(r.count(c), 0, "{c}: {r}");
    }
    assert_eq!(r.count("records_seen"), 4, "kept, lost, young, clean: {r}");
}

/// The race of issue 17: a long upload's original is complete (on S3 its `LastModified`
/// is when the upload started, hours ago) but its record is not committed yet. Reconcile
/// must keep it; and an upload that died keeps its original only until its in-flight row
/// is stale, after which a late commit is refused rather than acknowledged without bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_keeps_the_original_of_an_upload_in_flight() {
    let Env { ctx, clock, t0 } = env().await;
    plant(&ctx, &processed("acme", t0, t0 + Days::days(7), &[])).await;
    let commit = |rec: ImageRecord| {
        let meta = ctx.meta.clone();
        async move {
            let new = NewImage {
                record: &rec,
                job_id: "job",
                job_body: "{}",
                send_after: rec.uploaded_at,
                idempotency: None,
                post: None,
                in_flight: true,
            };
            meta.create_image(new).await
        }
    };
    let long = processed("acme", t0, t0 + Days::days(7), &[]);
    let dead = processed("acme", t0, t0 + Days::days(7), &[]);
    for r in [&long, &dead] {
        ctx.meta.begin_upload(&r.id, "acme", t0).await.unwrap();
        ctx.store.put(&record::original_key("acme", &r.id), vec![1u8; 1000].into()).await.unwrap();
    }
    let lost_row = ids::new_id();
    ctx.meta.begin_upload(&lost_row, "acme", t0).await.unwrap();

    // Two hours on, both originals look older than `orphan_age` (1 h), but both uploads
    // are within `max_upload_time` (6 h): kept.
    clock.set(t0 + Days::hours(2));
    let r = run(&ctx, JobName::Reconcile, &Options::default()).await;
    assert_eq!((r.count("originals_orphaned"), r.count("originals_in_flight")), (0, 2), "{r}");
    assert!(exists(&ctx, &record::original_key("acme", &long.id)).await);
    assert_eq!(r.count("uploads_abandoned"), 0, "{r}");
    // The long upload commits.
    assert_eq!(commit(long.clone()).await.unwrap(), imagelake_core::meta::Created::New);

    // Past `max_upload_time` + `orphan_age`, the dead upload's original is an orphan, and
    // the row without an original is swept.
    clock.set(t0 + Days::hours(8));
    let r = run(&ctx, JobName::Reconcile, &Options::default()).await;
    assert_eq!(r.count("originals_orphaned"), 1, "{r}");
    assert!(!exists(&ctx, &record::original_key("acme", &dead.id)).await);
    assert!(exists(&ctx, &record::original_key("acme", &long.id)).await, "a committed upload keeps its original");
    assert_eq!(r.count("uploads_abandoned"), 1, "{r}");
    // A commit of the dead upload (a process that hung for hours) is refused.
    let e = commit(dead.clone()).await.unwrap_err();
    assert_eq!(e.code(), "database_unavailable", "{e}");
    assert!(ctx.meta.image(&dead.id).await.unwrap().is_none());
}

/// A store whose first request of every job (expire's backstop rule) and lake writes
/// (usage) take 300 ms: a run then surely overlaps the other process's attempt.
struct Slow(SharedStore);

const SLOW: Duration = Duration::from_millis(300);

#[async_trait::async_trait]
impl ObjectStore for Slow {
    fn backend(&self) -> &'static str {
        self.0.backend()
    }
    async fn put(&self, key: &str, body: Bytes) -> store::Result<ObjectMeta> {
        tokio::time::sleep(SLOW).await;
        self.0.put(key, body).await
    }
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> store::Result<GetResult> {
        self.0.get(key, range).await
    }
    async fn head(&self, key: &str) -> store::Result<Option<ObjectMeta>> {
        self.0.head(key).await
    }
    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> store::Result<ListPage> {
        self.0.list(prefix, after, limit).await
    }
    async fn delete_many(&self, keys: &[String]) -> store::Result<()> {
        self.0.delete_many(keys).await
    }
    async fn create_multipart(&self, key: &str) -> store::Result<String> {
        self.0.create_multipart(key).await
    }
    async fn put_part(&self, key: &str, upload_id: &str, number: u32, body: Bytes) -> store::Result<PartTag> {
        self.0.put_part(key, upload_id, number, body).await
    }
    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<PartTag>) -> store::Result<ObjectMeta> {
        self.0.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> store::Result<()> {
        self.0.abort_multipart(key, upload_id).await
    }
    async fn list_multipart(&self, prefix: &str) -> store::Result<Vec<PendingUpload>> {
        self.0.list_multipart(prefix).await
    }
    async fn install_expiry_rule(&self, prefix: &str, days: u32) -> store::Result<bool> {
        tokio::time::sleep(SLOW).await;
        self.0.install_expiry_rule(prefix, days).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_never_run_a_job_at_once() {
    let Env { mut ctx, clock, .. } = env().await;
    let slow: SharedStore = Arc::new(Slow(ctx.store.clone()));
    let shared: SharedClock = Arc::new(clock);
    ctx.store = slow.clone();
    ctx.lake = LakeWriter::new(slow, "jobs-test", ctx.config.lake.clone(), shared);
    // A second process on the same database: its own pool.
    let url = format!("sqlite://{}", ctx.config.data_dir.join("imagelake.db").display());
    let other_meta: SharedMeta = Arc::new(SqlMetadata::connect(&url, 4, Duration::from_secs(5)).await.unwrap());
    let other = Context { meta: other_meta, ..ctx.clone() };
    let opts = Options::default();
    for job in [JobName::Usage, JobName::Expire] {
        for round in 0..20 {
            let (a, b) = tokio::join!(run_job_with(&ctx, job, None, &opts), run_job_with(&other, job, None, &opts));
            let busy = [&a, &b].iter().filter(|r| matches!(r, Err(LifecycleError::Busy { .. }))).count();
            let ok = [&a, &b].iter().filter(|r| r.is_ok()).count();
            assert_eq!((ok, busy), (1, 1), "{job} round {round}: {:?} / {:?}", a.err(), b.err());
        }
    }
    // Either process sees the last run.
    let st = status(&other).await;
    assert_eq!(st.iter().find(|s| s.job == JobName::Usage).unwrap().last_run.as_ref().unwrap().outcome, "ok");
}

/// An expiry chunk redone the next day (its run died between writing the deletion facts
/// and marking the variants expired) writes the same facts into the same day's partition,
/// so the lake counts them once; and the daily aggregates of that day count them once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_redone_the_next_day_is_counted_once() {
    let env = env().await;
    let ctx = &env.ctx;
    let day = (env.t0 - Days::days(3)).date_naive();
    let due_at = day.and_hms_opt(23, 30, 0).unwrap().and_utc();
    let rec = processed("acme", due_at - Days::days(7), due_at, &PRESETS[..2]);
    plant(ctx, &rec).await;
    let due = ctx.meta.due_variants(due_at + Days::minutes(20), 100).await.unwrap();
    assert_eq!(due.len(), 2);
    let mut report = JobReport::new(JobName::Expire, due_at);
    // The first run, at 23:50, and the same chunk redone at 00:10 the next day.
    imagelake_lifecycle::expire::expire_variants(ctx, &due, due_at + Days::minutes(20), &mut report).await.unwrap();
    imagelake_lifecycle::expire::expire_variants(ctx, &due, due_at + Days::minutes(40), &mut report).await.unwrap();
    let listing = imagelake_core::lake::aggregate::listing(&ctx.store).await.unwrap();
    let days: std::collections::BTreeSet<_> = listing
        .keys()
        .filter_map(|k| imagelake_core::lake::layout::parse(k))
        .filter(|p| p.dir == "deletions")
        .map(|p| p.day)
        .collect();
    assert_eq!(days.into_iter().collect::<Vec<_>>(), vec![day], "both runs' facts are in the day they expired");
    // The day's aggregate counts two deletions, not four.
    let scratch = ctx.config.data_dir.join("tmp");
    let r = imagelake_core::lake::aggregate::aggregate_closed_days(&ctx.store, env.t0, &scratch).await.unwrap();
    assert_eq!(r.built, vec![day]);
    let d = &imagelake_core::lake::agg::days(&imagelake_core::lake::aggregate::listing(&ctx.store).await.unwrap())[&day];
    assert!(d.current);
    let key = imagelake_core::lake::agg::Agg::Deletions.key(day, &d.fingerprint);
    let body = ctx.store.get(&key, None).await.unwrap().bytes().await.unwrap();
    let path = ctx.config.data_dir.join("agg_deletions.parquet");
    std::fs::write(&path, &body).unwrap();
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let (n, bytes): (i64, i64) = conn
        .query_row(&format!("SELECT sum(deletions), sum(bytes) FROM read_parquet('{}')", path.display()), [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((n, bytes), (2, 100 + 101));
}
