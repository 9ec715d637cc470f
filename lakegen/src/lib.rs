//! `imagelake lake generate`: a realistic synthetic lake, written through the same
//! encoder as the services' files, for benchmarks, dashboards and analysts' practice. A
//! crate of its own: no service needs it, and `core` stays what the services share.
//!
//! What it models: customers with Zipf-like activity (a few big ones, a long tail), a
//! format mix (JPEG-heavy), log-normal upload sizes, a diurnal upload curve, about 3% of
//! first attempts failing (mostly retried and then succeeding, some dead-lettered after
//! five attempts, some failing for good on a corrupt or oversized image), three variants
//! per processed image that expire after 7 days, user deletions, downloads in the days
//! after an upload, and a usage snapshot per customer (and in total) every midnight.
//! About 30% of images become posts (created a few seconds after the upload, `published`
//! when the image is processed or `failed` with its error, `deleted` with the image); a
//! published post gets comments in a heavy-tailed (Pareto, Zipf-like) number, most of them
//! in its first day, and about 3% of comments are deleted again.
//!
//! Everything about image `i` is a pure function of `(seed, i)`, so the same options give
//! the same lake (and the same file names: a rerun overwrites rather than duplicates).
//!
//! Memory is bounded: images are generated day by day, rows are buffered per
//! (table, day) and written as a file when a buffer holds `file_rows` rows, when the total
//! buffered passes `4 * file_rows` (the largest buffer goes), or when the day is closed.
//! Generation and Parquet encoding run on two threads; the async side only stores files.

use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use imagelake_core::lake::{
    encode, layout, AttemptStatus, CommentEventKind, CommentRow, DeletionKind, DeletionReason, DeletionRow, DownloadRow, Event,
    JobRow, LakeError, PostEventKind, PostRow, Table, UploadRow, UsageRow, VariantRow,
};
use imagelake_core::post::{MAX_CAPTION_CHARS, MAX_COMMENT_CHARS};
use imagelake_core::store::SharedStore;
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Uploads to generate (one row each in `uploads`).
    pub images: u64,
    pub customers: u32,
    /// Days of history, ending with the day of `end`.
    pub days: u32,
    pub seed: u64,
    /// The end of the history: no event is later.
    pub end: DateTime<Utc>,
    /// Rows per written file (large files, like a compacted lake).
    pub file_rows: usize,
    /// The tables to write (empty: all). The history is the same; the other tables' rows
    /// are generated and dropped.
    pub only: Vec<Table>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self { images: 100_000, customers: 200, days: 30, seed: 42, end: Utc::now(), file_rows: 1_000_000, only: Vec::new() }
    }
}

#[derive(Debug, Clone, Default)]
pub struct GenerateReport {
    pub rows: BTreeMap<Table, u64>,
    pub files: u64,
    pub bytes: u64,
    pub seconds: f64,
}

impl GenerateReport {
    pub fn total_rows(&self) -> u64 {
        self.rows.values().sum()
    }

    /// One line for the command line.
    pub fn summary(&self) -> String {
        let per: Vec<String> = self.rows.iter().map(|(t, n)| format!("{}={n}", t.name())).collect();
        format!(
            "{} rows ({}) in {} files, {} bytes, {:.1} s ({:.0} rows/s)",
            self.total_rows(),
            per.join(" "),
            self.files,
            self.bytes,
            self.seconds,
            self.total_rows() as f64 / self.seconds.max(1e-9)
        )
    }
}

/// Capacity of the synthetic platform, in the usage snapshots.
const CAPACITY: u64 = 500 * (1 << 40);
const MAX_ATTEMPTS: u32 = 5;

/// SplitMix64: a fast counter-based generator; `mix(seed, i)` is image `i`'s randomness.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64, i: u64) -> Self {
        Rng(mix(seed ^ mix(stream.wrapping_mul(0x1000_0000_01B3) ^ mix(i))))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// Uniform in [0, 1).
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.f() < p
    }
    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = self.f().max(1e-12);
        let v = self.f();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }
    /// Exponential with the given mean.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f()).max(1e-12).ln()
    }
    fn hex(&mut self, out: &mut String, words: usize) {
        use std::fmt::Write;
        for _ in 0..words {
            let _ = write!(out, "{:016x}", self.next());
        }
    }
}

/// (format, content type, share of uploads).
const FORMATS: [(&str, &str, f64); 6] = [
    ("jpeg", "image/jpeg", 0.58),
    ("png", "image/png", 0.20),
    ("webp", "image/webp", 0.12),
    ("heic", "image/heic", 0.05),
    ("gif", "image/gif", 0.03),
    ("tiff", "image/tiff", 0.02),
];
const SIZES: [(u32, u32); 8] =
    [(4032, 3024), (3024, 4032), (1920, 1080), (1080, 1920), (1280, 720), (800, 600), (6000, 4000), (1080, 1080)];
/// (variant, format, max width, max height, bytes per megapixel of output).
const VARIANTS: [(&str, &str, u32, u32, f64); 3] =
    [("thumb", "jpeg", 400, 300, 180_000.0), ("medium", "jpeg", 1600, 1200, 160_000.0), ("webp", "webp", 1600, 1200, 95_000.0)];
/// Share of images that become posts.
const POST_SHARE: f64 = 0.3;
/// Authors of posts and comments: `user-0` .. `user-{AUTHORS - 1}`.
const AUTHORS: u64 = 5_000;
const RETRYABLE: [&str; 3] = ["store_unavailable", "internal", "queue_unavailable"];
const FINAL: [&str; 3] = ["decode_failed", "unsupported_format", "image_too_large"];

fn fit(w: u32, h: u32, mw: u32, mh: u32) -> (u32, u32) {
    let s = (mw as f64 / w as f64).min(mh as f64 / h as f64).min(1.0);
    (((w as f64 * s).round() as u32).max(1), ((h as f64 * s).round() as u32).max(1))
}

fn micros(t: DateTime<Utc>, us: f64) -> DateTime<Utc> {
    t + Duration::microseconds(us as i64)
}

fn uuid_v7(t: DateTime<Utc>, rng: &mut Rng) -> String {
    let r = rng.next().to_le_bytes();
    let r2 = rng.next().to_le_bytes();
    let mut rand = [0u8; 10];
    rand[..8].copy_from_slice(&r);
    rand[8..].copy_from_slice(&r2[..2]);
    uuid::Builder::from_unix_timestamp_millis(t.timestamp_millis().max(0) as u64, &rand).into_uuid().to_string()
}

/// Per-customer byte and object deltas per day, for the usage snapshots.
#[derive(Clone, Copy, Default)]
struct Delta {
    originals: i64,
    variants: i64,
    objects: i64,
}

struct Gen {
    opts: GenerateOptions,
    start_day: NaiveDate,
    customers: Vec<String>,
    /// Cumulative Zipf weights.
    cdf: Vec<f64>,
    /// deltas[day index][customer]; days past the range are dropped.
    deltas: Vec<Vec<Delta>>,
    totals: Vec<Delta>,
    buffers: BTreeMap<(Table, NaiveDate), Vec<Event>>,
    buffered: usize,
    seq: u64,
    stopped: bool,
}

type Sink = std::sync::mpsc::SyncSender<(String, Table, Vec<Event>)>;

impl Gen {
    fn new(opts: GenerateOptions) -> Self {
        let customers = opts.customers.max(1) as usize;
        let mut acc = 0.0;
        let cdf = (0..customers)
            .map(|k| {
                acc += 1.0 / ((k + 1) as f64).powf(1.1);
                acc
            })
            .collect();
        let end_day = opts.end.date_naive();
        let days = opts.days.max(1);
        Self {
            start_day: end_day - Duration::days(days as i64 - 1),
            customers: (0..customers).map(|k| format!("cust-{k:05}")).collect(),
            cdf,
            deltas: vec![vec![Delta::default(); customers]; days as usize],
            totals: vec![Delta::default(); customers],
            buffers: BTreeMap::new(),
            buffered: 0,
            seq: 0,
            stopped: false,
            opts,
        }
    }

    fn customer(&self, rng: &mut Rng) -> usize {
        let u = rng.f() * self.cdf.last().copied().unwrap_or(1.0);
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }

    fn track(&mut self, t: DateTime<Utc>, customer: usize, d: Delta) {
        let idx = (t.date_naive() - self.start_day).num_days();
        if let Some(day) = usize::try_from(idx).ok().and_then(|i| self.deltas.get_mut(i)) {
            let c = &mut day[customer];
            c.originals += d.originals;
            c.variants += d.variants;
            c.objects += d.objects;
        }
    }

    fn push(&mut self, e: Event, sink: &Sink) {
        let t = e.time();
        if t > self.opts.end || !(self.opts.only.is_empty() || self.opts.only.contains(&e.table())) {
            return;
        }
        let key = (e.table(), t.date_naive());
        let buf = self.buffers.entry(key).or_default();
        buf.push(e);
        self.buffered += 1;
        if buf.len() >= self.opts.file_rows {
            self.flush_one(key, sink);
        } else if self.buffered >= 4 * self.opts.file_rows {
            let largest = self.buffers.iter().max_by_key(|(_, v)| v.len()).map(|(k, _)| *k).expect("non-empty");
            self.flush_one(largest, sink);
        }
    }

    fn flush_one(&mut self, key: (Table, NaiveDate), sink: &Sink) {
        let Some(events) = self.buffers.remove(&key) else { return };
        if events.is_empty() {
            return;
        }
        self.buffered -= events.len();
        let name = layout::file_key(key.0.name(), key.1, &format!("generate-s{}-{:06}.parquet", self.opts.seed, self.seq));
        self.seq += 1;
        if sink.send((name, key.0, events)).is_err() {
            // The consumer gave up (a store error): stop generating.
            self.stopped = true;
        }
    }

    /// Writes out every partition of a day up to `day` (no later image adds to them).
    fn close_through(&mut self, day: NaiveDate, sink: &Sink) {
        let keys: Vec<_> = self.buffers.keys().filter(|(_, d)| *d <= day).copied().collect();
        for k in keys {
            self.flush_one(k, sink);
        }
    }

    /// The usage snapshot at midnight after day index `di` (everything up to then is known).
    fn snapshot(&mut self, di: usize, sink: &Sink) {
        let taken_at = Utc.from_utc_datetime(&(self.start_day + Duration::days(di as i64 + 1)).and_hms_opt(0, 0, 0).unwrap());
        for (c, d) in self.deltas[di].iter().enumerate() {
            let t = &mut self.totals[c];
            t.originals += d.originals;
            t.variants += d.variants;
            t.objects += d.objects;
        }
        let stamp = taken_at.to_rfc3339();
        let mut all = Delta::default();
        let mut rows = Vec::new();
        for (c, t) in self.totals.iter().enumerate() {
            all.originals += t.originals;
            all.variants += t.variants;
            all.objects += t.objects;
            if t.objects > 0 {
                rows.push(UsageRow {
                    event_id: UsageRow::event_id_of(&stamp, Some(&self.customers[c])),
                    taken_at,
                    customer_id: Some(self.customers[c].clone()),
                    originals_bytes: t.originals.max(0) as u64,
                    variants_bytes: t.variants.max(0) as u64,
                    objects: t.objects.max(0) as u64,
                    capacity_bytes: CAPACITY,
                });
            }
        }
        rows.push(UsageRow {
            event_id: UsageRow::event_id_of(&stamp, None),
            taken_at,
            customer_id: None,
            originals_bytes: all.originals.max(0) as u64,
            variants_bytes: all.variants.max(0) as u64,
            objects: all.objects.max(0) as u64,
            capacity_bytes: CAPACITY,
        });
        for r in rows {
            self.push(Event::Usage(r), sink);
        }
    }

    fn image(&mut self, i: u64, day: NaiveDate, sink: &Sink) {
        let o_end = self.opts.end;
        let mut rng = Rng::new(self.opts.seed, 1, i);
        let c = self.customer(&mut rng);
        let customer = self.customers[c].clone();
        // Diurnal curve: busier in the (UTC) afternoon.
        let hour_f = {
            let x = rng.f();
            let h = 24.0 * x + 3.0 * (std::f64::consts::TAU * x).sin();
            h.clamp(0.0, 23.999)
        };
        let midnight = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap());
        // The last day ends at `end`: its uploads fit before then.
        let span_us = ((o_end - midnight).num_microseconds().unwrap_or(0) as f64).clamp(0.0, 86_400e6);
        let uploaded_at = micros(midnight, hour_f / 24.0 * span_us);
        let pick = rng.f();
        let mut acc = 0.0;
        let (format, content_type) = FORMATS
            .iter()
            .find(|(_, _, p)| {
                acc += p;
                pick < acc
            })
            .map(|(f, ct, _)| (*f, *ct))
            .unwrap_or(("jpeg", "image/jpeg"));
        let (w, h) = SIZES[rng.below(SIZES.len() as u64) as usize];
        let dims_known = !rng.chance(0.02);
        let bytes = (rng.lognormal(1_500_000.0, 0.9) as u64).clamp(2_000, 200_000_000);
        let image_id = uuid_v7(uploaded_at, &mut rng);
        let mut sha256 = String::with_capacity(64);
        rng.hex(&mut sha256, 4);
        self.track(uploaded_at, c, Delta { originals: bytes as i64, variants: 0, objects: 1 });
        self.push(
            Event::Upload(UploadRow {
                event_id: UploadRow::event_id_of(&image_id),
                image_id: image_id.clone(),
                customer_id: customer.clone(),
                uploaded_at,
                content_type: content_type.into(),
                format: format.into(),
                bytes,
                width: dims_known.then_some(w),
                height: dims_known.then_some(h),
                sha256,
            }),
            sink,
        );

        // Processing attempts.
        let job_id = uuid_v7(uploaded_at, &mut rng);
        let enqueued_at = micros(uploaded_at, rng.exp(4_000.0));
        let mut started = micros(enqueued_at, rng.exp(250_000.0));
        let mut succeeded_at = None;
        // When and why the image failed for good (the post's `failed`).
        let mut failed_for_good: Option<(DateTime<Utc>, &str)> = None;
        let mut output_bytes = 0u64;
        let mut variant_rows = Vec::new();
        // A "poison" job fails every attempt until it is dead-lettered.
        let mut poison = false;
        for attempt in 1..=MAX_ATTEMPTS {
            let duration_us = rng.lognormal(120_000.0 * (bytes as f64 / 1.5e6).sqrt(), 0.5);
            let finished = micros(started, duration_us);
            let fails = if attempt == 1 {
                let f = rng.chance(0.03);
                poison = f && rng.chance(0.1);
                f
            } else {
                poison || rng.chance(0.3)
            };
            let (status, error) = if fails {
                if !poison && rng.chance(0.2) {
                    (AttemptStatus::Failed, Some((FINAL[rng.below(3) as usize], true)))
                } else if attempt == MAX_ATTEMPTS {
                    (AttemptStatus::DeadLettered, Some((RETRYABLE[rng.below(3) as usize], true)))
                } else {
                    (AttemptStatus::Failed, Some((RETRYABLE[rng.below(3) as usize], false)))
                }
            } else {
                (AttemptStatus::Succeeded, None)
            };
            if status == AttemptStatus::Succeeded {
                let made = finished;
                for (name, vformat, mw, mh, per_mp) in VARIANTS {
                    let (vw, vh) = fit(w, h, mw, mh);
                    let vbytes = ((vw as f64 * vh as f64 / 1e6) * per_mp * rng.lognormal(1.0, 0.25)) as u64 + 500;
                    output_bytes += vbytes;
                    variant_rows.push(VariantRow {
                        event_id: VariantRow::event_id_of(&image_id, name, vformat),
                        image_id: image_id.clone(),
                        customer_id: customer.clone(),
                        variant: name.into(),
                        format: vformat.into(),
                        width: vw,
                        height: vh,
                        bytes: vbytes,
                        created_at: made,
                        expires_at: made + Duration::days(7),
                    });
                }
                succeeded_at = Some(made);
            }
            self.push(
                Event::Job(JobRow {
                    event_id: JobRow::event_id_of(&job_id, attempt),
                    job_id: job_id.clone(),
                    image_id: image_id.clone(),
                    customer_id: customer.clone(),
                    attempt,
                    status,
                    enqueued_at,
                    started_at: started,
                    finished_at: finished,
                    duration_ms: ((finished - started).num_microseconds().unwrap_or(0) / 1000),
                    error_code: error.map(|(e, _)| e.to_string()),
                    output_bytes: if status == AttemptStatus::Succeeded { output_bytes } else { 0 },
                }),
                sink,
            );
            match error {
                None => break,
                Some((code, true)) => {
                    failed_for_good = Some((finished, code));
                    break;
                }
                // Redelivered after the visibility timeout (30 s) plus jitter.
                Some((_, false)) => started = micros(finished, 30e6 + rng.exp(2e6)),
            }
        }

        // A user deletes about 1% of images, at some point in the following 30 days.
        let deleted_at = rng.chance(0.01).then(|| micros(uploaded_at, rng.f() * 30.0 * 86_400e6)).filter(|t| *t <= o_end);

        // Variants, their expiry (the lifecycle job runs hourly) or deletion with the original.
        for v in variant_rows {
            let expired_at = micros(v.expires_at, rng.f() * 3_600e6);
            self.track(v.created_at, c, Delta { originals: 0, variants: v.bytes as i64, objects: 1 });
            let (gone_at, reason) = match deleted_at {
                Some(d) if d < expired_at => (d, DeletionReason::Deleted),
                _ => (expired_at, DeletionReason::Expired),
            };
            let deletion = (gone_at <= o_end).then(|| DeletionRow {
                event_id: DeletionRow::event_id_of(&image_id, DeletionKind::Variant, Some((&v.variant, &v.format))),
                image_id: image_id.clone(),
                customer_id: customer.clone(),
                kind: DeletionKind::Variant,
                variant: Some(v.variant.clone()),
                bytes: v.bytes,
                reason,
                deleted_at: gone_at,
            });
            self.push(Event::Variant(v), sink);
            if let Some(d) = deletion {
                self.track(d.deleted_at, c, Delta { originals: 0, variants: -(d.bytes as i64), objects: -1 });
                self.push(Event::Deletion(d), sink);
            }
        }
        if let Some(d) = deleted_at {
            self.track(d, c, Delta { originals: -(bytes as i64), variants: 0, objects: -1 });
            self.push(
                Event::Deletion(DeletionRow {
                    event_id: DeletionRow::event_id_of(&image_id, DeletionKind::Original, None),
                    image_id: image_id.clone(),
                    customer_id: customer.clone(),
                    kind: DeletionKind::Original,
                    variant: None,
                    bytes,
                    reason: DeletionReason::Deleted,
                    deleted_at: d,
                }),
                sink,
            );
        }

        self.post(i, c, &image_id, uploaded_at, succeeded_at, failed_for_good, deleted_at, sink);

        // Downloads: most in the first days, variants (while they exist) more than originals.
        if let Some(done) = succeeded_at {
            let n = (rng.exp(1.5)).round() as u32;
            for k in 0..n {
                let served_at = micros(done, rng.exp(1.5 * 86_400e6));
                if served_at > o_end || deleted_at.is_some_and(|d| served_at >= d) {
                    continue;
                }
                let r = rng.f();
                let (variant, vbytes) = if served_at < done + Duration::days(7) && r < 0.8 {
                    let (name, _, mw, mh, per_mp) = VARIANTS[if r < 0.5 {
                        0
                    } else if r < 0.7 {
                        1
                    } else {
                        2
                    }];
                    let (vw, vh) = fit(w, h, mw, mh);
                    (Some(name), ((vw as f64 * vh as f64 / 1e6) * per_mp) as u64 + 500)
                } else {
                    (None, bytes)
                };
                self.push(
                    Event::Download(DownloadRow {
                        event_id: DownloadRow::event_id_of(&image_id, variant, &k.to_string()),
                        image_id: image_id.clone(),
                        customer_id: customer.clone(),
                        variant: variant.map(str::to_string),
                        bytes: vbytes,
                        served_at,
                    }),
                    sink,
                );
            }
        }
    }

    /// Image `i` as a post (or not), with its comments. Its own random stream, so the other
    /// tables are the same as without posts.
    #[allow(clippy::too_many_arguments)]
    fn post(
        &mut self,
        i: u64,
        c: usize,
        image_id: &str,
        uploaded_at: DateTime<Utc>,
        processed_at: Option<DateTime<Utc>>,
        failed: Option<(DateTime<Utc>, &str)>,
        deleted_at: Option<DateTime<Utc>>,
        sink: &Sink,
    ) {
        let mut rng = Rng::new(self.opts.seed, 2, i);
        if !rng.chance(POST_SHARE) {
            return;
        }
        let customer = self.customers[c].clone();
        let created_at = micros(uploaded_at, rng.exp(3e6));
        let post_id = uuid_v7(created_at, &mut rng);
        let author = (!rng.chance(0.1)).then(|| format!("user-{}", rng.below(AUTHORS)));
        let caption_chars = (rng.lognormal(80.0, 1.0) as u32).min(MAX_CAPTION_CHARS as u32);
        let row = |event: PostEventKind, at: DateTime<Utc>, error_code: Option<&str>| {
            Event::Post(PostRow {
                event_id: PostRow::event_id_of(&post_id, event),
                post_id: post_id.clone(),
                customer_id: customer.clone(),
                image_id: image_id.to_string(),
                author: author.clone(),
                event,
                error_code: error_code.map(str::to_string),
                caption_chars,
                at,
            })
        };
        // The post goes with its image.
        let alive = |t: DateTime<Utc>| deleted_at.is_none_or(|d| t < d);
        if !alive(created_at) {
            return;
        }
        let mut events = vec![row(PostEventKind::Created, created_at, None)];
        let published_at = processed_at.map(|p| p.max(created_at)).filter(|t| alive(*t));
        if let Some(p) = published_at {
            events.push(row(PostEventKind::Published, p, None));
        } else if let Some((t, code)) = failed.filter(|(t, _)| alive(*t)) {
            events.push(row(PostEventKind::Failed, t.max(created_at), Some(code)));
        }
        if let Some(d) = deleted_at {
            events.push(row(PostEventKind::Deleted, d, None));
        }
        for e in events {
            self.push(e, sink);
        }
        let Some(published_at) = published_at else { return };
        // Pareto (alpha 1.3): most posts get a few comments, a few get hundreds.
        let n = (((1.0 - rng.f()).max(1e-9).powf(-1.0 / 1.3) - 1.0) * 1.5).min(2_000.0) as u64;
        for _ in 0..n {
            let mean = rng.lognormal(0.5, 1.0) * 86_400e6;
            let at = micros(published_at, rng.exp(mean));
            let comment_id = uuid_v7(at, &mut rng);
            let author = format!("user-{}", rng.below(AUTHORS));
            let chars = (rng.lognormal(60.0, 0.9) as u32).clamp(1, MAX_COMMENT_CHARS as u32);
            let removed = rng.chance(0.03).then(|| micros(at, rng.exp(7_200e6)));
            if !alive(at) {
                continue;
            }
            let comment = |event: CommentEventKind, at: DateTime<Utc>| {
                Event::Comment(CommentRow {
                    event_id: CommentRow::event_id_of(&comment_id, event),
                    comment_id: comment_id.clone(),
                    post_id: post_id.clone(),
                    customer_id: customer.clone(),
                    author: author.clone(),
                    event,
                    chars,
                    at,
                })
            };
            self.push(comment(CommentEventKind::Created, at), sink);
            if let Some(r) = removed.filter(|r| alive(*r)) {
                self.push(comment(CommentEventKind::Deleted, r), sink);
            }
        }
    }

    /// Runs the whole generation, sending files to `sink`.
    fn run(mut self, sink: Sink) {
        let days = self.opts.days.max(1) as u64;
        let n = self.opts.images;
        for di in 0..days {
            let day = self.start_day + Duration::days(di as i64);
            // Images of day `di`: an even share, so the total is exact.
            let (from, to) = (n * di / days, n * (di + 1) / days);
            for i in from..to {
                if self.stopped {
                    return;
                }
                self.image(i, day, &sink);
            }
            self.close_through(day, &sink);
            self.snapshot(di as usize, &sink);
        }
        let keys: Vec<_> = self.buffers.keys().copied().collect();
        for k in keys {
            self.flush_one(k, &sink);
        }
    }
}

/// Generates a synthetic lake into `store` (see the module documentation).
pub async fn generate(store: &SharedStore, opts: GenerateOptions) -> Result<GenerateReport, LakeError> {
    let started = Instant::now();
    let file_rows = opts.file_rows.max(1);
    let opts = GenerateOptions { file_rows, ..opts };
    let (event_tx, event_rx) = std::sync::mpsc::sync_channel::<(String, Table, Vec<Event>)>(2);
    let (file_tx, mut file_rx) = tokio::sync::mpsc::channel::<Result<(String, Table, u64, Bytes), LakeError>>(2);
    let generator = std::thread::spawn(move || Gen::new(opts).run(event_tx));
    let encoder = std::thread::spawn(move || {
        for (key, table, events) in event_rx {
            let rows = events.len() as u64;
            let r = encode(table, &events).map(|b| (key, table, rows, b));
            drop(events);
            let failed = r.is_err();
            if file_tx.blocking_send(r).is_err() || failed {
                break;
            }
        }
    });
    let mut report = GenerateReport::default();
    let mut first_error = None;
    while let Some(r) = file_rx.recv().await {
        match r {
            Ok((key, table, rows, body)) => {
                let size = body.len() as u64;
                if let Err(e) = store.put(&key, body).await {
                    first_error = Some(e.into());
                    break;
                }
                *report.rows.entry(table).or_default() += rows;
                report.files += 1;
                report.bytes += size;
            }
            Err(e) => {
                first_error = Some(e);
                break;
            }
        }
    }
    // Stop the pipeline (a closed channel ends both threads) and wait for it.
    drop(file_rx);
    let _ = tokio::task::spawn_blocking(move || {
        let _ = encoder.join();
        let _ = generator.join();
    })
    .await;
    if let Some(e) = first_error {
        return Err(e);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
