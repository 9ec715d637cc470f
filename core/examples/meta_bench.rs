//! Metadata database benchmarks (run by `scripts/bench-metadata.sh`):
//!
//!   meta_bench seed --url URL --images N [--customer bench] [--other N2] [--others K] [--batch B]
//!       Bulk-inserts N processed images for the customer (and N2 for K other customers),
//!       each with its four variants (thumb, small, medium, web: ready, expiring in 7
//!       days) and the matching usage counters, as multi-row INSERTs of B images (one
//!       transaction each). The schema is the real one (`SqlMetadata::connect` migrates).
//!       The database must not hold these ids yet. Prints rows/s and the cursors.
//!   meta_bench list --url URL --images N [--customer bench] [--runs R]
//!       `list_images(customer, cursor, 21)` as the handler calls it (limit 20, plus one),
//!       on the first page and on the page after the middle image; p50/p90/p99.
//!   meta_bench commit --url URL --store DIR [--n 2000]
//!       The database's part of an upload, as ingest does it: `create_image` (record and
//!       outbox job, one transaction), then `job_sent`, n times; then, in the same run,
//!       the previous version's writes for an accepted upload: the record JSON object and
//!       its two index objects, three fsynced puts to a `LocalStore` at DIR, n times;
//!       then both alternating, n times.
//!   meta_bench oldlist --dir DIR --images N [--customer bench] [--runs R] [--max-seconds S]
//!       The previous version's listing on a `LocalStore` at DIR holding N images: list
//!       20 keys of `listing/{customer}/`, then read the 20 records, 16 at a time (the
//!       handler of 0e1a06b). First page and the page after the middle image. The files
//!       are written once (without fsync, to seed fast) and kept for the next run.
//!
//! Ids are deterministic UUIDv7s (image i of a customer at a fixed time), so every
//! subcommand and the script agree on the cursors from N alone. Results are printed as
//! `RESULT name key=value ...` lines, which the script collects.

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::{StreamExt, TryStreamExt};
use imagelake_core::job::JobMessage;
use imagelake_core::lake::UploadRow;
use imagelake_core::meta::{MetadataStore, NewImage, SqlMetadata};
use imagelake_core::record::{self, ImageRecord, Status, VariantRecord, VariantState};
use imagelake_core::store::{LocalStore, ObjectStore};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

const VARIANTS: [(&str, &str, u32, u32, u64); 4] = [
    ("thumb", "webp", 120, 120, 4_000),
    ("small", "webp", 160, 120, 5_500),
    ("medium", "jpeg", 400, 300, 30_000),
    ("web", "webp", 2048, 1536, 350_000),
];
/// The listing's page size in the benchmarks (`GET /v1/images?limit=20`).
const PAGE: usize = 20;

// --- arguments ---------------------------------------------------------------------

struct Args(HashMap<String, String>);

impl Args {
    fn parse(rest: &[String]) -> Self {
        let mut m = HashMap::new();
        let mut it = rest.iter();
        while let Some(k) = it.next() {
            let Some(name) = k.strip_prefix("--") else { die(&format!("unexpected argument {k:?}")) };
            let v = it.next().unwrap_or_else(|| die(&format!("--{name} needs a value")));
            m.insert(name.to_string(), v.clone());
        }
        Self(m)
    }
    fn str(&self, k: &str) -> String {
        self.0.get(k).cloned().unwrap_or_else(|| die(&format!("--{k} is required")))
    }
    fn str_or(&self, k: &str, d: &str) -> String {
        self.0.get(k).cloned().unwrap_or_else(|| d.to_string())
    }
    fn num(&self, k: &str, d: Option<u64>) -> u64 {
        match self.0.get(k) {
            Some(v) => v.replace('_', "").parse().unwrap_or_else(|_| die(&format!("--{k}: not a number: {v}"))),
            None => d.unwrap_or_else(|| die(&format!("--{k} is required"))),
        }
    }
}

fn die(msg: &str) -> ! {
    eprintln!("meta_bench: {msg}");
    std::process::exit(2)
}

// --- the seeded images -------------------------------------------------------------

/// The seeded images span the year before this instant, oldest first.
fn end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// When image `i` of `n` was uploaded: spread evenly over the year before [`end`].
fn uploaded_at(i: u64, n: u64) -> DateTime<Utc> {
    let span_us: i64 = 365 * 86_400 * 1_000_000;
    end() - Duration::microseconds(span_us) + Duration::microseconds((span_us as i128 * i as i128 / n.max(1) as i128) as i64)
}

/// The id of image `i` of customer number `cust`: a UUIDv7 with the upload's millisecond,
/// the version and variant bits, and (customer, i) in the random bits, so ids are unique
/// and sort in upload order.
fn image_id(cust: u64, i: u64, n: u64) -> String {
    let ms = uploaded_at(i, n).timestamp_millis() as u64;
    let hi = (ms << 16) | 0x7000 | (i & 0xfff);
    let lo = 0x8000_0000_0000_0000 | ((cust & 0x3f_ffff) << 40) | (i & 0xff_ffff_ffff);
    uuid::Uuid::from_u64_pair(hi, lo).to_string()
}

/// The `next_cursor` the API gives for a page ending at `id`: its 32 hex digits.
fn cursor_of(id: &str) -> String {
    id.replace('-', "")
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A processed image as the processor leaves it (the record the old code kept as JSON).
fn processed_record(customer: &str, cust: u64, i: u64, n: u64, expires: DateTime<Utc>) -> ImageRecord {
    let id = image_id(cust, i, n);
    let up = uploaded_at(i, n);
    let done = up + Duration::seconds(3);
    let h = mix(cust << 40 ^ i);
    let variants = VARIANTS
        .iter()
        .map(|(name, format, w, hgt, b)| VariantRecord {
            name: name.to_string(),
            format: format.to_string(),
            width: *w,
            height: *hgt,
            bytes: b + h % (b / 2),
            url: record::variant_url(&id, name),
            created_at: done,
            expires_at: expires,
            state: VariantState::Ready,
        })
        .collect();
    ImageRecord {
        id,
        customer: customer.to_string(),
        status: Status::Processed,
        content_type: "image/jpeg".into(),
        format: "jpeg".into(),
        bytes: 1_500_000 + h % 3_000_000,
        width: Some(4032),
        height: Some(3024),
        sha256: format!("{:016x}{:016x}{:016x}{:016x}", h, mix(h), mix(h ^ 1), mix(h ^ 2)),
        uploaded_at: up,
        processed_at: Some(done),
        error: None,
        exif: None,
        requested_variants: VARIANTS.iter().map(|v| v.0.to_string()).collect(),
        variants,
        attempts: 1,
        callback_url: None,
    }
}

// --- timing ------------------------------------------------------------------------

/// Nearest-rank percentile of sorted milliseconds.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Prints one measurement, with the machine's load average over the last minute (other
/// processes on the same cores show in the tail, and in the median of what fsyncs).
fn report(name: &str, extra: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    let load = std::fs::read_to_string("/proc/loadavg").ok();
    let load = load.as_deref().and_then(|l| l.split_whitespace().next()).unwrap_or("?");
    println!(
        "RESULT {name} {extra}n={} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3} load={load}",
        ms.len(),
        pct(&ms, 50.0),
        pct(&ms, 90.0),
        pct(&ms, 99.0),
        ms.last().copied().unwrap_or(f64::NAN)
    );
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

async fn connect(url: &str) -> SqlMetadata {
    // The service's defaults: 16 connections, 5 s to connect.
    SqlMetadata::connect(url, 16, std::time::Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| die(&format!("cannot open {url}: {e}")))
}

// --- seed --------------------------------------------------------------------------

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("NULL".into(), |v| v.to_string())
}

/// Appends one `images` row and its four `variants` rows, as `images::create` and
/// `finish_processed` would write them.
fn push_rows(r: &ImageRecord, images: &mut String, variants: &mut String) {
    if !images.is_empty() {
        images.push(',');
    }
    images.push_str(&format!(
        "({},{},'processed',{},{},{},{},{},{},{},{},NULL,NULL,NULL,{},{},NULL)",
        q(&r.id),
        q(&r.customer),
        q(&r.content_type),
        q(&r.format),
        r.bytes,
        opt(r.width),
        opt(r.height),
        q(&r.sha256),
        r.uploaded_at.timestamp_micros(),
        opt(r.processed_at.map(|t| t.timestamp_micros())),
        q(&serde_json::to_string(&r.requested_variants).unwrap()),
        r.attempts,
    ));
    for (pos, v) in r.variants.iter().enumerate() {
        if !variants.is_empty() {
            variants.push(',');
        }
        variants.push_str(&format!(
            "({},{},{},{},{},{},{},{},{},'ready',{pos})",
            q(&r.id),
            q(&v.name),
            q(&r.customer),
            q(&v.format),
            v.width,
            v.height,
            v.bytes,
            v.created_at.timestamp_micros(),
            v.expires_at.timestamp_micros(),
        ));
    }
}

async fn seed(a: &Args) {
    let url = a.str("url");
    let customer = a.str_or("customer", "bench");
    let n = a.num("images", None);
    let other = a.num("other", Some(0));
    let others = a.num("others", Some(99)).max(1);
    let batch = a.num("batch", Some(2000)).max(1) as usize;
    let db = connect(&url).await;
    let expires = Utc::now() + Duration::days(7);
    // (customer, number, image count) for every customer seeded.
    let mut plan = vec![(customer.clone(), 0u64, n)];
    for k in 0..others.min(other.max(1)) {
        let count = other / others + u64::from(k < other % others);
        if count > 0 {
            plan.push((format!("other-{k:03}"), k + 1, count));
        }
    }
    let t0 = Instant::now();
    let (mut rows, mut done) = (0u64, 0u64);
    let total: u64 = plan.iter().map(|p| p.2).sum();
    for (name, cust, count) in &plan {
        let mut figures = (0u64, 0u64, 0u64, 0u64);
        let mut i = 0;
        while i < *count {
            let (mut images, mut variants) = (String::new(), String::new());
            let upto = (i + batch as u64).min(*count);
            for j in i..upto {
                let r = processed_record(name, *cust, j, *count, expires);
                figures.0 += r.bytes;
                figures.1 += 1;
                figures.2 += r.variants.iter().map(|v| v.bytes).sum::<u64>();
                figures.3 += r.variants.len() as u64;
                push_rows(&r, &mut images, &mut variants);
            }
            rows += db
                .execute_unchecked(format!(
                    "INSERT INTO images (id, customer, status, content_type, format, bytes, width, height, sha256, \
                     uploaded_at, processed_at, error_code, error_message, exif, requested_variants, attempts, \
                     callback_url) VALUES {images}"
                ))
                .await
                .unwrap_or_else(|e| die(&format!("insert images: {e}")));
            rows += db
                .execute_unchecked(format!(
                    "INSERT INTO variants (image_id, name, customer, format, width, height, bytes, created_at, \
                     expires_at, state, position) VALUES {variants}"
                ))
                .await
                .unwrap_or_else(|e| die(&format!("insert variants: {e}")));
            done += upto - i;
            i = upto;
            if done % 100_000 < batch as u64 {
                eprintln!("seed: {done}/{total} images, {:.0} rows/s", rows as f64 / t0.elapsed().as_secs_f64());
            }
        }
        db.execute_unchecked(format!(
            "INSERT INTO usage_counters (customer, originals_bytes, originals, variants_bytes, variants) \
             VALUES ({}, {}, {}, {}, {}) ON CONFLICT (customer) DO UPDATE SET \
             originals_bytes = usage_counters.originals_bytes + excluded.originals_bytes, \
             originals = usage_counters.originals + excluded.originals, \
             variants_bytes = usage_counters.variants_bytes + excluded.variants_bytes, \
             variants = usage_counters.variants + excluded.variants",
            q(name),
            figures.0,
            figures.1,
            figures.2,
            figures.3
        ))
        .await
        .unwrap_or_else(|e| die(&format!("usage counters: {e}")));
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "RESULT seed backend={} customer={customer} images={n} other_images={other} customers={} rows={rows} \
         seconds={secs:.1} rows_per_s={:.0}",
        db.backend(),
        plan.len(),
        rows as f64 / secs
    );
    println!("cursor_middle={}", cursor_of(&image_id(0, n / 2, n)));
}

// --- list --------------------------------------------------------------------------

async fn list(a: &Args) {
    let url = a.str("url");
    let customer = a.str_or("customer", "bench");
    let n = a.num("images", None);
    let runs = a.num("runs", Some(2000)) as usize;
    let db = connect(&url).await;
    let middle = image_id(0, n / 2, n);
    let pages: [(&str, Option<&str>); 2] = [("first", None), ("middle", Some(middle.as_str()))];
    // Check the pages are what the API would answer, and warm up.
    for (page, before) in pages {
        for _ in 0..20 {
            let got = db.list_images(&customer, before, PAGE + 1).await.unwrap_or_else(|e| die(&e.to_string()));
            if got.len() != PAGE + 1 || got.iter().any(|r| r.variants.len() != VARIANTS.len()) {
                die(&format!(
                    "{page} page: {} records, not {} with their variants: is the database seeded?",
                    got.len(),
                    PAGE + 1
                ));
            }
        }
    }
    let mut times = [Vec::with_capacity(runs), Vec::with_capacity(runs)];
    for _ in 0..runs {
        for (k, (_, before)) in pages.iter().enumerate() {
            let t = Instant::now();
            let got = db.list_images(&customer, *before, PAGE + 1).await.unwrap_or_else(|e| die(&e.to_string()));
            times[k].push(ms_since(t));
            assert_eq!(got.len(), PAGE + 1);
        }
    }
    for (k, (page, _)) in pages.iter().enumerate() {
        report("list", &format!("backend={} page={page} images={n} ", db.backend()), std::mem::take(&mut times[k]));
    }
}

// --- commit ------------------------------------------------------------------------

/// A just-uploaded image and its job, as `ingest/src/upload.rs` builds them.
fn upload(customer: &str, now: DateTime<Utc>) -> (ImageRecord, JobMessage) {
    let id = imagelake_core::ids::new_id();
    let sha256 = format!("{:064x}", mix(now.timestamp_micros() as u64));
    let rec = ImageRecord {
        id: id.clone(),
        customer: customer.into(),
        status: Status::Uploaded,
        content_type: "image/jpeg".into(),
        format: "jpeg".into(),
        bytes: 2_345_678,
        width: Some(4032),
        height: Some(3024),
        sha256: sha256.clone(),
        uploaded_at: now,
        processed_at: None,
        error: None,
        exif: None,
        requested_variants: VARIANTS.iter().map(|v| v.0.to_string()).collect(),
        variants: Vec::new(),
        attempts: 0,
        callback_url: None,
    };
    let job = JobMessage {
        job_id: imagelake_core::ids::new_id(),
        image_id: id.clone(),
        customer: customer.into(),
        variants: rec.requested_variants.clone(),
        enqueued_at: now,
        request_id: Some(imagelake_core::ids::new_compact_id()),
        callback_url: None,
        upload: UploadRow {
            event_id: UploadRow::event_id_of(&id),
            image_id: id,
            customer_id: customer.into(),
            uploaded_at: now,
            content_type: rec.content_type.clone(),
            format: rec.format.clone(),
            bytes: rec.bytes,
            width: rec.width,
            height: rec.height,
            sha256,
        },
    };
    (rec, job)
}

/// The previous version's `record::create` (0e1a06b): the record (pretty JSON), the
/// owner pointer, the listing key; each put fsyncs the file and its directory.
async fn old_create(store: &LocalStore, r: &ImageRecord) {
    let inverted = !uuid::Uuid::parse_str(&r.id).unwrap().as_u128();
    let body = serde_json::to_vec_pretty(r).unwrap();
    store.put(&format!("records/{}/{}.json", r.customer, r.id), body.into()).await.unwrap();
    store.put(&format!("ids/{}", r.id), r.customer.clone().into()).await.unwrap();
    store.put(&format!("listing/{}/{inverted:032x}", r.customer), bytes::Bytes::new()).await.unwrap();
}

/// One upload's database work, as ingest does it: (create_image, job_sent) in ms.
async fn db_commit(db: &SqlMetadata, customer: &str) -> (f64, f64) {
    let now = Utc::now();
    let (rec, job) = upload(customer, now);
    let body = serde_json::to_string(&job).unwrap();
    let new = NewImage {
        record: &rec,
        job_id: &job.job_id,
        job_body: &body,
        send_after: now + Duration::seconds(10), // [database] outbox_retry's default
        idempotency: None,
        post: None,
        in_flight: false,
    };
    let t = Instant::now();
    let created = db.create_image(new).await.unwrap_or_else(|e| die(&format!("create_image: {e}")));
    let t_create = ms_since(t);
    assert!(matches!(created, imagelake_core::meta::Created::New));
    // (ingest sends the job to the queue here: the same in both versions, not measured)
    let t = Instant::now();
    db.job_sent(&job.job_id).await.unwrap_or_else(|e| die(&format!("job_sent: {e}")));
    (t_create, ms_since(t))
}

/// The previous version's writes for one upload, in ms.
async fn old_commit(store: &LocalStore) -> f64 {
    let (rec, _) = upload("old-bench", Utc::now());
    let t = Instant::now();
    old_create(store, &rec).await;
    ms_since(t)
}

async fn commit(a: &Args) {
    let url = a.str("url");
    let n = a.num("n", Some(2000)) as usize;
    let customer = a.str_or("customer", "commit-bench");
    let dir = PathBuf::from(a.str("store"));
    let db = connect(&url).await;
    let store = LocalStore::open(&dir).unwrap_or_else(|e| die(&format!("store {}: {e}", dir.display())));
    let b = db.backend();
    let warmup = 50.min(n);
    // 1. The database alone: n uploads one after the other.
    let (mut create, mut sent, mut both) = (vec![], vec![], vec![]);
    for k in 0..warmup + n {
        let (c, s) = db_commit(&db, &customer).await;
        if k >= warmup {
            create.push(c);
            sent.push(s);
            both.push(c + s);
        }
    }
    report("commit", &format!("backend={b} part=create_image "), create);
    report("commit", &format!("backend={b} part=job_sent "), sent);
    report("commit", &format!("backend={b} part=db_total "), both);
    // 2. The anchor alone: the previous version's three fsynced puts.
    let mut old = vec![];
    for k in 0..warmup + n {
        let t = old_commit(&store).await;
        if k >= warmup {
            old.push(t);
        }
    }
    report("commit", &format!("backend={b} part=old_store_puts "), old);
    // 3. Both, alternating: a database commit after another process's (or our own) file
    //    fsyncs, as when an original is written to the local store just before.
    let (mut both, mut old) = (vec![], vec![]);
    for k in 0..warmup + n {
        let (c, s) = db_commit(&db, &customer).await;
        let t = old_commit(&store).await;
        if k >= warmup {
            both.push(c + s);
            old.push(t);
        }
    }
    report("commit", &format!("backend={b} part=db_total_alternating "), both);
    report("commit", &format!("backend={b} part=old_store_puts_alternating "), old);
}

// --- oldlist -----------------------------------------------------------------------

/// Writes the old layout for `n` images of `customer` under `root/objects/`, unless a
/// previous run did (marker file). Plain writes, no fsync: this is setup, not measured.
fn seed_old(root: &Path, customer: &str, n: u64) {
    let marker = root.join(format!("seeded-{customer}-{n}"));
    if marker.exists() {
        eprintln!("oldlist: {} already holds {n} images", root.display());
        return;
    }
    let objects = root.join("objects");
    let (listing, records) = (objects.join("listing").join(customer), objects.join("records").join(customer));
    for d in [&listing, &records] {
        if d.exists() {
            std::fs::remove_dir_all(d).unwrap();
        }
        std::fs::create_dir_all(d).unwrap();
    }
    let expires = Utc::now() + Duration::days(7);
    let t0 = Instant::now();
    for i in 0..n {
        let r = processed_record(customer, 0, i, n, expires);
        let inverted = !uuid::Uuid::parse_str(&r.id).unwrap().as_u128();
        std::fs::write(listing.join(format!("{inverted:032x}")), b"").unwrap();
        std::fs::write(records.join(format!("{}.json", r.id)), serde_json::to_vec_pretty(&r).unwrap()).unwrap();
        if (i + 1) % 100_000 == 0 {
            eprintln!("oldlist: wrote {}/{n} images ({:.0}/s)", i + 1, (i + 1) as f64 / t0.elapsed().as_secs_f64());
        }
    }
    std::fs::write(&marker, b"").unwrap();
    eprintln!("oldlist: seeded {n} images in {:.1}s", t0.elapsed().as_secs_f64());
}

/// The handler of 0e1a06b: one listing page, then the records, 16 reads at a time.
async fn old_page(store: &LocalStore, customer: &str, after: Option<&str>) -> usize {
    let prefix = format!("listing/{customer}/");
    let page = store.list(&prefix, after, PAGE).await.unwrap();
    let ids: Vec<String> = page
        .objects
        .iter()
        .map(|o| {
            let hex = o.key.rsplit('/').next().unwrap();
            uuid::Uuid::from_u128(!u128::from_str_radix(hex, 16).unwrap()).to_string()
        })
        .collect();
    let records: Vec<ImageRecord> = futures::stream::iter(ids)
        .map(|id| {
            let store = store.clone();
            let key = format!("records/{customer}/{id}.json");
            async move {
                let body = store.get(&key, None).await?.bytes().await?;
                Ok::<_, imagelake_core::store::StoreError>(serde_json::from_slice::<ImageRecord>(&body).unwrap())
            }
        })
        .buffered(16)
        .try_collect()
        .await
        .unwrap();
    records.len()
}

async fn oldlist(a: &Args) {
    let root = PathBuf::from(a.str("dir"));
    let customer = a.str_or("customer", "bench");
    let n = a.num("images", None);
    let runs = a.num("runs", Some(50)) as usize;
    let budget = std::time::Duration::from_secs(a.num("max-seconds", Some(600)));
    std::fs::create_dir_all(&root).unwrap();
    seed_old(&root, &customer, n);
    let store = LocalStore::open(&root).unwrap();
    let middle = image_id(0, n / 2, n);
    let middle_key = format!("listing/{customer}/{:032x}", !uuid::Uuid::parse_str(&middle).unwrap().as_u128());
    let pages: [(&str, Option<&str>); 2] = [("first", None), ("middle", Some(middle_key.as_str()))];
    for (page, after) in pages {
        // One warm-up each (the directory's entries come into the page cache).
        let got = old_page(&store, &customer, after).await;
        if got != PAGE {
            die(&format!("old {page} page: {got} records, not {PAGE}"));
        }
    }
    let t0 = Instant::now();
    let mut times = [vec![], vec![]];
    for _ in 0..runs {
        for (k, (_, after)) in pages.iter().enumerate() {
            let t = Instant::now();
            old_page(&store, &customer, *after).await;
            times[k].push(ms_since(t));
        }
        if t0.elapsed() > budget {
            eprintln!("oldlist: stopped after {} runs ({}s budget)", times[0].len(), budget.as_secs());
            break;
        }
    }
    for (k, (page, _)) in pages.iter().enumerate() {
        report("oldlist", &format!("backend=local-store page={page} images={n} "), std::mem::take(&mut times[k]));
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = Args::parse(args.get(1..).unwrap_or_default());
    match args.first().map(String::as_str) {
        Some("seed") => seed(&a).await,
        Some("list") => list(&a).await,
        Some("commit") => commit(&a).await,
        Some("oldlist") => oldlist(&a).await,
        _ => die("usage: meta_bench seed|list|commit|oldlist --help-in-source (see core/examples/meta_bench.rs)"),
    }
}
