//! Posts and comments benchmarks (run by `scripts/bench-posts.sh`):
//!
//!   posts_bench seed --url URL --posts N --comments M --posts-out FILE [--customer bench]
//!                    [--batch 2000] [--parallel P]
//!       Bulk-loads one customer: N processed images (two `ready` variants each) with the
//!       usage counters, N published posts of them, and M comments, skewed (post weights
//!       1/(rank+10): the top post gets about 0.9 % of all comments, the median post one
//!       or two), every `comment_count` equal to its comments. Ids are UUIDv7s over the
//!       year before now, in creation order; comments are inserted in id (time) order.
//!       Multi-row INSERTs of B rows (each its own commit) through
//!       `SqlMetadata::execute_unchecked` on the real schema (`connect` migrates). The two
//!       indexes whose inserts would be random (`posts_by_comments`, `comments_by_post`)
//!       are dropped first and created again at the end with the statements of
//!       `core/migrations/0003_posts.sql`. Writes every post's `id count` to FILE, and
//!       prints the cursors of the middle of both listings.
//!   posts_bench list --url URL --newest-cursor C --comments-cursor C [--runs R]
//!       The handler's database work for `GET /v1/posts?limit=20` (`list_posts` with 21,
//!       then `post_views` of 20), without HTTP: both orders, first and middle page.
//!   posts_bench paths --base http://HOST:PORT --key KEY --order newest|comments --pages P
//!                     [--cursor C]
//!       Walks P pages of `GET /v1/posts?limit=20&order=...` from the first page (or after
//!       C), following `next_cursor`, checks each page (20 posts, their two variants, the
//!       latest min(count, 2) comments, the order), and prints the paths, one a line.
//!   posts_bench load --base http://HOST:PORT --key KEY --name NAME --seconds S
//!                    (--paths FILE | --comment-posts FILE [--acked FILE])
//!                    [--rate R | --rate 0 --concurrency C] [--label TEXT] [--timeline FILE]
//!       Open-loop load at exactly R requests/s: request i is due at start + i/R and its
//!       latency is measured from that due time, whether or not a connection was free (no
//!       coordinated omission; connections are opened as needed). With `--rate 0`, C
//!       connections send back to back for S seconds (a throughput run). GETs cycle
//!       through the paths of FILE; comments go to posts of FILE (`id count` lines) picked
//!       with weight count+1, and each 201's comment id is written to the acked file.
//!       The timeline file gets, per second, the requests due, their median and worst.
//!   posts_bench verify --url URL --acked FILE [--customer bench]
//!       Every acknowledged comment is in the `comments` table, on its post; no id twice;
//!       the customer's comment counts add up to its comments.
//!
//! Results are `RESULT name key=value ...` lines, which the script collects.

use chrono::{Duration as CDuration, Utc};
use futures::StreamExt;
use imagelake_core::meta::{MetadataStore, SqlMetadata};
use imagelake_core::post::{PostCursor, PostOrder};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The schema's posts migration: the deferred indexes are created from its statements.
const MIGRATION: &str = include_str!("../migrations/0003_posts.sql");
/// Indexes whose inserts would land at random places during the bulk load.
const DEFERRED: [&str; 2] = ["posts_by_comments", "comments_by_post"];
const YEAR_MS: i64 = 365 * 86_400 * 1000;
/// The listing's page size in the benchmarks.
const PAGE: usize = 20;
const WORDS: [&str; 32] = [
    "light",
    "morning",
    "city",
    "river",
    "coffee",
    "friends",
    "summer",
    "window",
    "street",
    "quiet",
    "golden",
    "hour",
    "mountain",
    "trail",
    "market",
    "colour",
    "night",
    "rain",
    "garden",
    "sea",
    "bridge",
    "old",
    "new",
    "favourite",
    "love",
    "this",
    "so",
    "good",
    "wow",
    "amazing",
    "view",
    "again",
];

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
    fn opt(&self, k: &str) -> Option<String> {
        self.0.get(k).cloned()
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
    fn float(&self, k: &str, d: f64) -> f64 {
        self.0.get(k).map_or(d, |v| v.parse().unwrap_or_else(|_| die(&format!("--{k}: not a number: {v}"))))
    }
}

fn die(msg: &str) -> ! {
    eprintln!("posts_bench: {msg}");
    std::process::exit(2)
}

// --- the seeded data ---------------------------------------------------------------

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform number in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// A UUIDv7 of millisecond `ms` whose other bits are `tag` and `k`: unique per (tag, k),
/// and in (ms, tag, k) order.
fn uuid7(ms: i64, tag: u64, k: u64) -> String {
    let hi = ((ms as u64) << 16) | 0x7000 | (tag & 0xfff);
    let lo = 0x8000_0000_0000_0000 | (k & 0x3fff_ffff_ffff_ffff);
    uuid::Uuid::from_u64_pair(hi, lo).to_string()
}

/// The seeded posts: post `i` of `n` is created at an even step over the year before
/// `end_ms`, its image uploaded five seconds earlier.
struct Plan {
    n: u64,
    end_ms: i64,
    customer: String,
}

impl Plan {
    fn post_ms(&self, i: u64) -> i64 {
        self.end_ms - YEAR_MS + (YEAR_MS as i128 * i as i128 / self.n.max(1) as i128) as i64
    }
    fn post_id(&self, i: u64) -> String {
        uuid7(self.post_ms(i), 2, i)
    }
    fn image_id(&self, i: u64) -> String {
        uuid7(self.post_ms(i) - 5000, 1, i)
    }
}

/// Comments per post: weight 1/(rank + 10) with a pseudo-random rank, so a few posts get
/// thousands and most get one or two; randomized rounding, then the total fixed to `m`.
fn comment_counts(n: u64, m: u64) -> Vec<u32> {
    let w: Vec<f64> = (0..n).map(|i| 1.0 / ((mix(i ^ 0xc0ffee) % n.max(1)) as f64 + 10.0)).collect();
    let total: f64 = w.iter().sum();
    let mut c: Vec<u32> =
        w.iter().enumerate().map(|(i, w)| (m as f64 * w / total + unit(mix(i as u64 ^ 0xfeed))).floor() as u32).collect();
    let mut diff = m as i64 - c.iter().map(|&x| x as i64).sum::<i64>();
    let mut i = 0usize;
    while diff != 0 && n > 0 {
        if diff > 0 {
            c[i] += 1;
            diff -= 1;
        } else if c[i] > 0 {
            c[i] -= 1;
            diff += 1;
        }
        i = (i + 1) % c.len();
    }
    c
}

fn words(h: u64, min: u64, max: u64) -> String {
    let k = min + h % (max - min + 1);
    (0..k).map(|j| WORDS[(mix(h ^ j) % WORDS.len() as u64) as usize]).collect::<Vec<_>>().join(" ")
}

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn comma(buf: &mut String) {
    if !buf.is_empty() {
        buf.push(',');
    }
}

/// The INSERT statements of images `lo..hi` and their variants and posts.
fn post_statements(plan: &Plan, counts: &[u32], lo: u64, hi: u64, expires_us: i64) -> Vec<String> {
    let (mut images, mut variants, mut posts) = (String::new(), String::new(), String::new());
    let c = q(&plan.customer);
    for i in lo..hi {
        let h = mix(i ^ 0x1234_5678);
        let (image, post) = (plan.image_id(i), plan.post_id(i));
        let up_us = (plan.post_ms(i) - 5000) * 1000;
        let done_us = up_us + 3_000_000;
        comma(&mut images);
        images.push_str(&format!(
            "('{image}',{c},'processed','image/jpeg','jpeg',{},4032,3024,'{:016x}{:016x}{:016x}{:016x}',{up_us},{done_us},\
             NULL,NULL,NULL,'[\"thumb\",\"web\"]',1,NULL)",
            1_500_000 + h % 3_000_000,
            h,
            mix(h),
            mix(h ^ 1),
            mix(h ^ 2)
        ));
        for (pos, (name, format, w, hg, b)) in
            [("thumb", "webp", 120, 120, 4_000u64), ("web", "webp", 2048, 1536, 350_000)].into_iter().enumerate()
        {
            comma(&mut variants);
            variants.push_str(&format!(
                "('{image}','{name}',{c},'{format}',{w},{hg},{},{done_us},{expires_us},'ready',{pos})",
                b + h % (b / 2)
            ));
        }
        comma(&mut posts);
        posts.push_str(&format!(
            "('{post}',{c},'{image}',{},'user{}','published',NULL,NULL,NULL,{},{},{})",
            q(&words(h, 3, 16)),
            h % 50_000,
            plan.post_ms(i) * 1000,
            done_us + 5_000_000,
            counts[i as usize]
        ));
    }
    vec![
        format!(
            "INSERT INTO images (id, customer, status, content_type, format, bytes, width, height, sha256, uploaded_at, \
             processed_at, error_code, error_message, exif, requested_variants, attempts, callback_url) VALUES {images}"
        ),
        format!(
            "INSERT INTO variants (image_id, name, customer, format, width, height, bytes, created_at, expires_at, state, \
             position) VALUES {variants}"
        ),
        format!(
            "INSERT INTO posts (id, customer, image_id, caption, author, status, error_code, error_message, callback_url, \
             created_at, published_at, comment_count) VALUES {posts}"
        ),
    ]
}

/// Every comment as `(ms since base) << 28 | post`, sorted: creation order.
fn comment_times(plan: &Plan, counts: &[u32], base_ms: i64) -> Vec<u64> {
    let mut v = Vec::with_capacity(counts.iter().map(|&c| c as usize).sum());
    for (i, &c) in counts.iter().enumerate() {
        let from = plan.post_ms(i as u64) + 1000;
        let span = (plan.end_ms - from).max(1) as f64;
        for j in 0..c as u64 {
            // Most comments come soon after the post: u² over the time since.
            let u = unit(mix(((i as u64) << 24) ^ j ^ 0xabcdef));
            let ms = from + (span * u * u) as i64;
            v.push((((ms - base_ms) as u64) << 28) | i as u64);
        }
    }
    v.sort_unstable();
    v
}

async fn seed(a: &Args) {
    let url = a.str("url");
    let customer = a.str_or("customer", "bench");
    let n = a.num("posts", None);
    let m = a.num("comments", None);
    let out = a.str("posts-out");
    let batch = a.num("batch", Some(2000)).max(1);
    let parallel = a.num("parallel", Some(if url.starts_with("sqlite") { 1 } else { 2 })).max(1) as usize;
    if n >= 1 << 28 {
        die("at most 2^28 posts");
    }
    let db = connect(&url).await;
    let end_ms = Utc::now().timestamp_millis() - 60_000;
    let plan = Plan { n, end_ms, customer: customer.clone() };
    let t0 = Instant::now();
    let counts = comment_counts(n, m);
    let counts_kept = counts.clone();
    let base_ms = plan.end_ms - YEAR_MS - 10_000;
    let times = comment_times(&plan, &counts, base_ms);
    let t_gen = t0.elapsed().as_secs_f64();
    eprintln!("seed: {n} posts, {} comments planned in {t_gen:.1}s", times.len());
    for name in DEFERRED {
        db.execute_unchecked(format!("DROP INDEX IF EXISTS {name}")).await.unwrap_or_else(|e| die(&e.to_string()));
    }
    // SQL is made on a thread of its own while the database inserts.
    let (tx, rx) = tokio::sync::mpsc::channel::<(u64, String)>(8);
    let customer_q = q(&customer);
    let cq = customer_q.clone();
    let producer = std::thread::spawn(move || {
        let expires_us = (Utc::now() + CDuration::days(30)).timestamp_micros();
        let mut i = 0;
        while i < n {
            let hi = (i + batch).min(n);
            for s in post_statements(&plan, &counts, i, hi, expires_us) {
                let rows = if s.starts_with("INSERT INTO variants") { 2 * (hi - i) } else { hi - i };
                if tx.blocking_send((rows, s)).is_err() {
                    return;
                }
            }
            i = hi;
        }
        let mut values = String::new();
        let mut rows = 0;
        for (k, t) in times.iter().enumerate() {
            let (ms, post) = (base_ms + (t >> 28) as i64, t & ((1 << 28) - 1));
            let h = mix(k as u64 ^ 0x5eed);
            comma(&mut values);
            values.push_str(&format!(
                "('{}','{}',{cq},'user{}',{},{})",
                uuid7(ms, 3, k as u64),
                plan.post_id(post),
                h % 200_000,
                q(&words(h, 2, 20)),
                ms * 1000 + (h % 1000) as i64
            ));
            rows += 1;
            if rows == batch || k + 1 == times.len() {
                let s = format!("INSERT INTO comments (id, post_id, customer, author, body, created_at) VALUES {values}");
                if tx.blocking_send((rows, s)).is_err() {
                    return;
                }
                values.clear();
                rows = 0;
            }
        }
    });
    let statements = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|s| (s, rx)) });
    let mut inserted = 0u64;
    let mut results = Box::pin(
        statements
            .map(|(rows, sql)| {
                let db = &db;
                async move {
                    db.execute_unchecked(sql).await.unwrap_or_else(|e| die(&format!("insert: {e}")));
                    rows
                }
            })
            .buffer_unordered(parallel),
    );
    let total = 4 * n + m;
    let mut next_report = 1_000_000;
    while let Some(rows) = results.next().await {
        inserted += rows;
        if inserted >= next_report {
            eprintln!("seed: {inserted}/{total} rows, {:.0} rows/s", inserted as f64 / t0.elapsed().as_secs_f64());
            next_report += 1_000_000;
        }
    }
    drop(results);
    producer.join().unwrap();
    let t_rows = t0.elapsed().as_secs_f64();
    for name in DEFERRED {
        let ddl = MIGRATION
            .lines()
            .find(|l| l.starts_with(&format!("CREATE INDEX {name} ")))
            .unwrap_or_else(|| die(&format!("no CREATE INDEX {name} in 0003_posts.sql")));
        let t = Instant::now();
        db.execute_unchecked(ddl.trim_end_matches(';').to_string()).await.unwrap_or_else(|e| die(&e.to_string()));
        eprintln!("seed: {name} created in {:.1}s", t.elapsed().as_secs_f64());
    }
    // The usage counters, as the uploads and the processor would have left them.
    db.execute_unchecked(format!(
        "INSERT INTO usage_counters (customer, originals_bytes, originals, variants_bytes, variants) \
         SELECT customer, SUM(bytes), COUNT(*), 0, 0 FROM images WHERE customer = {customer_q} GROUP BY customer \
         ON CONFLICT (customer) DO UPDATE SET originals_bytes = excluded.originals_bytes, originals = excluded.originals"
    ))
    .await
    .unwrap_or_else(|e| die(&format!("usage counters: {e}")));
    db.execute_unchecked(format!(
        "UPDATE usage_counters SET variants_bytes = (SELECT COALESCE(SUM(bytes), 0) FROM variants WHERE customer = {customer_q}), \
         variants = (SELECT COUNT(*) FROM variants WHERE customer = {customer_q}) WHERE customer = {customer_q}"
    ))
    .await
    .unwrap_or_else(|e| die(&format!("usage counters: {e}")));
    if url.starts_with("sqlite") {
        // Everything into the database file, so that a copy of the file alone is the database.
        db.execute_unchecked("PRAGMA wal_checkpoint(TRUNCATE)".into()).await.unwrap_or_else(|e| die(&e.to_string()));
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "RESULT seed backend={} customer={customer} posts={n} comments={m} rows={inserted} rows_seconds={t_rows:.1} \
         indexes_seconds={:.1} seconds={secs:.1} rows_per_s={:.0}",
        db.backend(),
        secs - t_rows,
        inserted as f64 / secs
    );
    // The posts file, and the cursors after the middle post of each listing.
    let plan = Plan { n, end_ms, customer };
    let counts = counts_kept;
    let mut f = std::io::BufWriter::new(std::fs::File::create(&out).unwrap_or_else(|e| die(&format!("{out}: {e}"))));
    for (i, c) in counts.iter().enumerate() {
        writeln!(f, "{} {c}", plan.post_id(i as u64)).unwrap();
    }
    f.flush().unwrap();
    let mut by_comments: Vec<u64> = (0..n).collect();
    by_comments.sort_unstable_by(|x, y| (counts[*y as usize], y).cmp(&(counts[*x as usize], x)));
    let hex = |i: u64| plan.post_id(i).replace('-', "");
    if n > 0 {
        let top = by_comments[0];
        let mid = by_comments[(n / 2) as usize];
        println!("cursor_newest_middle=n{}", hex(n / 2));
        println!("cursor_comments_middle=c{}.{}", counts[mid as usize], hex(mid));
        println!("top_post={} top_comments={}", plan.post_id(top), counts[top as usize]);
    }
}

async fn connect(url: &str) -> SqlMetadata {
    SqlMetadata::connect(url, 16, Duration::from_secs(5)).await.unwrap_or_else(|e| die(&format!("cannot open {url}: {e}")))
}

// --- timing ------------------------------------------------------------------------

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "n={} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2}",
        ms.len(),
        pct(&ms, 50.0),
        pct(&ms, 90.0),
        pct(&ms, 99.0),
        pct(&ms, 99.9),
        ms.last().copied().unwrap_or(f64::NAN)
    )
}

// --- list (the database's part of a page) ------------------------------------------

fn parse_cursor(c: &str) -> PostCursor {
    let hex_id = |h: &str| uuid::Uuid::try_parse(h).unwrap_or_else(|_| die(&format!("bad cursor {c}"))).hyphenated().to_string();
    if let Some(id) = c.strip_prefix('n') {
        PostCursor { comment_count: 0, id: hex_id(id) }
    } else if let Some((count, id)) = c.strip_prefix('c').and_then(|r| r.split_once('.')) {
        PostCursor { comment_count: count.parse().unwrap_or_else(|_| die(&format!("bad cursor {c}"))), id: hex_id(id) }
    } else {
        die(&format!("bad cursor {c}"))
    }
}

async fn list(a: &Args) {
    let db = connect(&a.str("url")).await;
    let customer = a.str_or("customer", "bench");
    let runs = a.num("runs", Some(500)) as usize;
    let (newest, comments) = (parse_cursor(&a.str("newest-cursor")), parse_cursor(&a.str("comments-cursor")));
    let pages = [
        ("newest", PostOrder::Newest, None, "first"),
        ("newest", PostOrder::Newest, Some(&newest), "middle"),
        ("comments", PostOrder::Comments, None, "first"),
        ("comments", PostOrder::Comments, Some(&comments), "middle"),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); pages.len()];
    for r in 0..runs + 20 {
        for (k, (_, order, after, _)) in pages.iter().enumerate() {
            let t = Instant::now();
            let mut posts = db.list_posts(&customer, *order, *after, PAGE + 1).await.unwrap_or_else(|e| die(&e.to_string()));
            posts.truncate(PAGE);
            let views = db.post_views(posts).await.unwrap_or_else(|e| die(&e.to_string()));
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if views.len() != PAGE {
                die(&format!("{} page: {} posts: is the database seeded?", pages[k].3, views.len()));
            }
            if r >= 20 {
                times[k].push(ms);
            }
        }
    }
    for (k, (order, _, _, page)) in pages.iter().enumerate() {
        println!(
            "RESULT list backend={} order={order} page={page} {} load={}",
            db.backend(),
            summary(std::mem::take(&mut times[k])),
            load_avg()
        );
    }
}

// --- a small HTTP/1.1 client -------------------------------------------------------

struct Conn(BufReader<TcpStream>);

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

/// Sends one request on a kept-alive connection; (status, body, keep the connection).
async fn roundtrip(conn: &mut Conn, req: &[u8]) -> std::io::Result<(u16, Vec<u8>, bool)> {
    let s = &mut conn.0;
    s.get_mut().write_all(req).await?;
    let mut line = String::new();
    if s.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line.split_whitespace().nth(1).and_then(|x| x.parse().ok()).ok_or_else(|| bad("status line"))?;
    let (mut len, mut chunked, mut keep) = (None, false, true);
    loop {
        line.clear();
        if s.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                "connection" => keep = !v.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            s.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).map_err(|_| bad("chunk size"))?;
            if size == 0 {
                line.clear();
                s.read_line(&mut line).await?;
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            s.read_exact(&mut body[start..]).await?;
            line.clear();
            s.read_line(&mut line).await?;
        }
    } else if let Some(n) = len {
        body.resize(n, 0);
        s.read_exact(&mut body).await?;
    } else {
        s.read_to_end(&mut body).await?;
        keep = false;
    }
    Ok((status, body, keep))
}

#[derive(Clone)]
struct Client {
    addr: String,
    key: String,
    idle: Arc<Mutex<Vec<Conn>>>,
}

impl Client {
    fn new(base: &str, key: String) -> Self {
        let addr = base.trim_start_matches("http://").trim_end_matches('/').to_string();
        Self { addr, key, idle: Arc::new(Mutex::new(Vec::new())) }
    }

    fn get(&self, path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n", self.addr, self.key).into_bytes()
    }

    fn post_json(&self, path: &str, body: &str) -> Vec<u8> {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            self.key,
            body.len()
        )
        .into_bytes()
    }

    /// One request on an idle connection, or a new one.
    async fn send(&self, req: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let idle = self.idle.lock().unwrap().pop();
        let mut conn = match idle {
            Some(c) => c,
            None => {
                let s = TcpStream::connect(&self.addr).await?;
                s.set_nodelay(true)?;
                Conn(BufReader::new(s))
            }
        };
        let (status, body, keep) = roundtrip(&mut conn, req).await?;
        if keep {
            self.idle.lock().unwrap().push(conn);
        }
        Ok((status, body))
    }
}

// --- paths -------------------------------------------------------------------------

async fn paths(a: &Args) {
    let client = Client::new(&a.str("base"), a.str("key"));
    let order = a.str("order");
    let pages = a.num("pages", Some(1));
    let mut cursor = a.opt("cursor");
    let mut last: Option<(u64, String)> = None;
    for k in 0..pages {
        let mut path = format!("/v1/posts?limit={PAGE}&order={order}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = client.send(&client.get(&path)).await.unwrap_or_else(|e| die(&format!("GET {path}: {e}")));
        if status != 200 {
            die(&format!("GET {path}: {status} {}", String::from_utf8_lossy(&body)));
        }
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| die(&format!("GET {path}: {e}")));
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() != PAGE {
            die(&format!("GET {path}: {} posts, not {PAGE}", items.len()));
        }
        for p in &items {
            let count = p["comment_count"].as_u64().unwrap_or_else(|| die("no comment_count"));
            let latest = p["latest_comments"].as_array().map_or(0, Vec::len) as u64;
            let variants = p["variants"].as_array().map_or(0, Vec::len);
            if latest != count.min(2) || variants != 2 {
                die(&format!("GET {path}: post {} has {count} comments, {latest} latest, {variants} variants", p["id"]));
            }
            let key = (count, p["id"].as_str().unwrap_or_default().to_string());
            if let Some(prev) = &last {
                let in_order = if order == "comments" { key < *prev } else { key.1 < prev.1 };
                if !in_order {
                    die(&format!("GET {path}: post {} out of order", key.1));
                }
            }
            last = Some(key);
        }
        if k == 0 {
            eprintln!("paths: {path}: first post {} comments", items[0]["comment_count"]);
        }
        println!("{path}");
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
}

// --- load --------------------------------------------------------------------------

enum Work {
    Paths(Vec<String>),
    /// Post ids and the cumulative weights (count + 1) to pick them.
    Comments(Vec<String>, Vec<u64>),
}

impl Work {
    fn request(&self, client: &Client, i: u64) -> Vec<u8> {
        match self {
            Work::Paths(p) => client.get(&p[(i % p.len() as u64) as usize]),
            Work::Comments(ids, cum) => {
                let h = mix(i ^ 0xc033e47);
                let x = h % cum[cum.len() - 1];
                let k = cum.partition_point(|&c| c <= x);
                let body = format!(r#"{{"author":"bench{}","text":"{} #{i}"}}"#, h % 10_000, words(h, 2, 12));
                client.post_json(&format!("/v1/posts/{}/comments", ids[k]), &body)
            }
        }
    }
}

struct Sample {
    /// When it was due (open loop) or sent (closed loop), ms since the start.
    due_ms: f64,
    latency_ms: f64,
    /// 0: no answer (connection error).
    status: u16,
    comment: Option<String>,
}

async fn one(client: &Client, req: &[u8], want_id: bool) -> (u16, Option<String>) {
    match client.send(req).await {
        Ok((status, body)) => {
            let id = (want_id && status == 201)
                .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
                .flatten()
                .and_then(|v| Some(format!("{} {}", v["post_id"].as_str()?, v["id"].as_str()?)));
            (status, id)
        }
        Err(_) => (0, None),
    }
}

async fn load(a: &Args) {
    let client = Client::new(&a.str("base"), a.str("key"));
    let name = a.str("name");
    let label = a.str_or("label", "");
    let secs = a.float("seconds", 30.0);
    let rate = a.float("rate", 100.0);
    let concurrency = a.num("concurrency", Some(64)).max(1);
    let work = if let Some(f) = a.opt("paths") {
        let p: Vec<String> = std::fs::read_to_string(&f)
            .unwrap_or_else(|e| die(&format!("{f}: {e}")))
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if p.is_empty() {
            die(&format!("{f}: no paths"));
        }
        Work::Paths(p)
    } else {
        let f = a.str("comment-posts");
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| die(&format!("{f}: {e}")));
        let (mut ids, mut cum, mut sum) = (Vec::new(), Vec::new(), 0u64);
        for l in text.lines() {
            let Some((id, c)) = l.split_once(' ') else { continue };
            sum += c.parse::<u64>().unwrap_or(0) + 1;
            ids.push(id.to_string());
            cum.push(sum);
        }
        if ids.is_empty() {
            die(&format!("{f}: no posts"));
        }
        Work::Comments(ids, cum)
    };
    let want_id = matches!(work, Work::Comments(..));
    let work = Arc::new(work);
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::new(Mutex::new(Vec::new()));
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let deadline = start + Duration::from_secs_f64(secs);
    if rate > 0.0 {
        // Open loop: request i is due at start + i/rate, whatever happened before.
        let total = (rate * secs).round() as u64;
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due).await;
            let (client, work, samples) = (client.clone(), work.clone(), samples.clone());
            tasks.push(tokio::spawn(async move {
                let req = work.request(&client, i);
                let (status, comment) = one(&client, &req, want_id).await;
                let s = Sample {
                    due_ms: (due - start).as_secs_f64() * 1000.0,
                    latency_ms: due.elapsed().as_secs_f64() * 1000.0,
                    status,
                    comment,
                };
                samples.lock().unwrap().push(s);
            }));
        }
        let wait = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(tasks)).await;
        if wait.is_err() {
            eprintln!("load: some requests had no answer 60 s after the last was due");
        }
    } else {
        // Closed loop: `concurrency` connections, each sending its next request when the
        // previous one is answered.
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = Vec::new();
        tokio::time::sleep_until(start).await;
        for _ in 0..concurrency {
            let (client, work, samples, counter) = (client.clone(), work.clone(), samples.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while tokio::time::Instant::now() < deadline {
                    let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let req = work.request(&client, i);
                    let sent = tokio::time::Instant::now();
                    let (status, comment) = one(&client, &req, want_id).await;
                    mine.push(Sample {
                        due_ms: (sent - start).as_secs_f64() * 1000.0,
                        latency_ms: sent.elapsed().as_secs_f64() * 1000.0,
                        status,
                        comment,
                    });
                }
                samples.lock().unwrap().extend(mine);
            }));
        }
        futures::future::join_all(tasks).await;
    }
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let sent = samples.len();
    let ok: Vec<&Sample> = samples.iter().filter(|s| (200..300).contains(&s.status)).collect();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for s in &samples {
        *statuses.entry(s.status).or_default() += 1;
    }
    let mut codes: Vec<String> = statuses.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    codes.sort();
    // Achieved: answered-ok requests over the time from the start to the last answer.
    let end_ms = samples.iter().map(|s| s.due_ms + s.latency_ms).fold(0.0, f64::max).max(1.0);
    let all: Vec<f64> = samples.iter().map(|s| s.latency_ms).collect();
    let ok_ms: Vec<f64> = ok.iter().map(|s| s.latency_ms).collect();
    if let Some(f) = a.opt("acked") {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&f).unwrap_or_else(|e| die(&format!("{f}: {e}"))));
        for s in &ok {
            if let Some(c) = &s.comment {
                writeln!(w, "{c}").unwrap();
            }
        }
        w.flush().unwrap();
    }
    if let Some(f) = a.opt("timeline") {
        // Per second of due time: requests, the median and the worst latency.
        let mut per: Vec<Vec<f64>> = Vec::new();
        for s in &samples {
            let k = (s.due_ms / 1000.0) as usize;
            if per.len() <= k {
                per.resize(k + 1, Vec::new());
            }
            per[k].push(s.latency_ms);
        }
        let mut w = std::io::BufWriter::new(std::fs::File::create(&f).unwrap_or_else(|e| die(&format!("{f}: {e}"))));
        for (k, mut v) in per.into_iter().enumerate() {
            v.sort_by(f64::total_cmp);
            writeln!(w, "{k} n={} p50_ms={:.1} max_ms={:.1}", v.len(), pct(&v, 50.0), v.last().copied().unwrap_or(0.0)).unwrap();
        }
        w.flush().unwrap();
    }
    let mode = if rate > 0.0 { format!("target_rps={rate}") } else { format!("target_rps=max concurrency={concurrency}") };
    println!(
        "RESULT load name={name} {label}{mode} seconds={secs} sent={sent} ok={} failed={} statuses={} achieved_rps={:.1} \
         {} all_p99_ms={:.2} load={}",
        ok.len(),
        sent - ok.len(),
        codes.join(","),
        ok.len() as f64 / (end_ms / 1000.0),
        summary(ok_ms),
        {
            let mut all = all;
            all.sort_by(f64::total_cmp);
            pct(&all, 99.0)
        },
        load_avg()
    );
}

// --- verify ------------------------------------------------------------------------

enum Db {
    Lite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Db {
    async fn open(url: &str) -> Self {
        let r = if url.starts_with("sqlite") {
            sqlx::SqlitePool::connect(url).await.map(Db::Lite)
        } else {
            sqlx::PgPool::connect(url).await.map(Db::Pg)
        };
        r.unwrap_or_else(|e| die(&format!("{url}: {e}")))
    }
    async fn pairs(&self, sql: String) -> Vec<(String, String)> {
        let r = match self {
            Db::Lite(p) => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(p).await,
            Db::Pg(p) => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(p).await,
        };
        r.unwrap_or_else(|e| die(&e.to_string()))
    }
    async fn number(&self, sql: String) -> i64 {
        let r: Result<(i64,), _> = match self {
            Db::Lite(p) => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(p).await,
            Db::Pg(p) => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(p).await,
        };
        r.unwrap_or_else(|e| die(&e.to_string())).0
    }
}

async fn verify(a: &Args) {
    let url = a.str("url");
    let f = a.str("acked");
    let customer = q(&a.str_or("customer", "bench"));
    let db = Db::open(&url).await;
    let t = Instant::now();
    let mut acked: Vec<(String, String)> = Vec::new();
    for l in std::fs::read_to_string(&f).unwrap_or_else(|e| die(&format!("{f}: {e}"))).lines() {
        let Some((post, id)) = l.split_once(' ') else { continue };
        if uuid::Uuid::try_parse(post).is_err() || uuid::Uuid::try_parse(id).is_err() {
            die(&format!("{f}: not ids: {l}"));
        }
        acked.push((post.to_string(), id.to_string()));
    }
    let distinct: HashSet<&str> = acked.iter().map(|(_, id)| id.as_str()).collect();
    let duplicates = acked.len() - distinct.len();
    let (mut found, mut wrong_post) = (0usize, 0usize);
    for chunk in acked.chunks(500) {
        let list = chunk.iter().map(|(_, id)| format!("'{id}'")).collect::<Vec<_>>().join(",");
        let rows: HashMap<String, String> =
            db.pairs(format!("SELECT id, post_id FROM comments WHERE id IN ({list})")).await.into_iter().collect();
        for (post, id) in chunk {
            match rows.get(id) {
                Some(p) if p == post => found += 1,
                Some(_) => wrong_post += 1,
                None => {}
            }
        }
    }
    let counted =
        db.number(format!("SELECT COALESCE(CAST(SUM(comment_count) AS BIGINT), 0) FROM posts WHERE customer = {customer}")).await;
    let comments = db.number(format!("SELECT COUNT(*) FROM comments WHERE customer = {customer}")).await;
    println!(
        "RESULT verify acked={} found={found} missing={} wrong_post={wrong_post} duplicate_acks={duplicates} \
         sum_comment_count={counted} comments={comments} count_mismatch={} seconds={:.1}",
        acked.len(),
        acked.len() - found - wrong_post,
        counted - comments,
        t.elapsed().as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = Args::parse(args.get(1..).unwrap_or_default());
    let cmd = args.first().map(String::as_str).unwrap_or("");
    // The load generator keeps to one thread: the server under test needs the other core.
    let rt = if cmd == "load" {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    }
    .unwrap();
    rt.block_on(async {
        match cmd {
            "seed" => seed(&a).await,
            "list" => list(&a).await,
            "paths" => paths(&a).await,
            "load" => load(&a).await,
            "verify" => verify(&a).await,
            _ => die("usage: posts_bench seed|list|paths|load|verify ... (see core/examples/posts_bench.rs)"),
        }
    });
}
