//! Images of any size, processed in bounded memory (issue 13), through the real binary on
//! the embedded default and on Garage + the SQS server, with the default configuration:
//!
//! - a 1 GP JPEG, a 300 MP PNG (plain and Adam7-interlaced), a 300 MP tiled TIFF and a
//!   16383x16383 WebP are uploaded as streams (never read into the test's memory), each
//!   must end `processed`, and every default variant is downloaded and compared with
//!   libvips's rendering of the same preset (`vips thumbnail`, in `DIR/ref`): its size
//!   exactly, its pixels by the mean absolute difference per channel;
//! - 16 copies of a 1.5 MB PNG that inflates to 1.5 GB (15800x15800, 16-bit RGB, zeros)
//!   at once: the server keeps answering meanwhile, and each copy ends `processed` (in
//!   black) or `failed` with `decode_limit`, without being delivered again and again;
//! - at the end of each run, the server's peak resident memory (VmHWM) is under 768 MiB,
//!   and it is the same process, alive;
//! - the queue's visibility timeout is 2 s, shorter than these renders (2 to 4 s each on
//!   one core, more with two at once): each image is processed in one attempt, because
//!   the job's visibility is extended while it renders (or waits for memory).
//!
//! The fixtures are made by `scripts/huge-fixtures.sh` (about 90 s the first time,
//! 95 MB) into `$IMAGELAKE_TEST_HUGE_DIR`, by default
//! `${IMAGELAKE_CACHE:-$HOME/.cache/imagelake}/huge-fixtures`, and kept there for the next
//! runs. The tests of this file run one at a time: they measure memory and time.

mod common;

use common::{image_bytes, Backend, Client, Server, Setup};
use image::ImageFormat;
use imagelake_core::config::{Fit, ProcessorConfig, VariantPreset};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The largest mean absolute difference, on 0..=255 in each channel, between a variant and
/// libvips's rendering of its preset. WebP at quality 80 alone accounts for about 2.4 in the
/// blue channel of the 120x120 variants; the resampling for about 0.3.
const MAX_MEAN_DIFF: f64 = 3.0;
/// The server's peak resident memory over a whole run.
const MAX_PEAK_RSS: u64 = 768 << 20;
/// How long one image may take from its upload to a final status.
const PROCESSING: Duration = Duration::from_secs(20 * 60);
const BOMBS: usize = 16;
/// Processing attempts a bomb may take: one, and one redelivery at most.
const BOMB_MAX_ATTEMPTS: u64 = 2;

/// File, width, height.
const FIXTURES: [(&str, u32, u32); 5] = [
    ("giga.jpg", 40_000, 25_000),
    ("big.png", 20_000, 15_000),
    ("big-interlaced.png", 20_000, 15_000),
    ("big-tiled.tif", 20_000, 15_000),
    ("max.webp", 16_383, 16_383),
];

/// One test of this file at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn huge_images_become_every_variant_in_bounded_memory() {
        super::huge_images(super::Backend::Embedded).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sixteen_png_bombs_at_once_leave_the_server_serving() {
        super::png_bombs().await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_render_killed_midway_leaves_no_temporary_file() {
        super::killed_render().await
    }
}

mod garage_and_sqs {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn huge_images_become_every_variant_in_bounded_memory() {
        super::huge_images(super::Backend::Servers).await
    }
}

/// The fixture directory, made (or checked, in a fraction of a second) once per process.
fn fixtures() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = match std::env::var_os("IMAGELAKE_TEST_HUGE_DIR") {
            Some(d) => PathBuf::from(d),
            None => {
                let cache = std::env::var_os("IMAGELAKE_CACHE").map(PathBuf::from).unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME, or IMAGELAKE_TEST_HUGE_DIR")).join(".cache/imagelake")
                });
                cache.join("huge-fixtures")
            }
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/huge-fixtures.sh");
        let t = Instant::now();
        // Its log (per-file timings when it makes them) goes to the test's stderr.
        let status = Command::new(&script)
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
        assert!(status.success(), "{} {}: {status}", script.display(), dir.display());
        println!("fixtures: {} ready after {:.1?}", dir.display(), t.elapsed());
        dir
    })
    .clone()
}

async fn fixtures_ready() -> PathBuf {
    tokio::task::spawn_blocking(fixtures).await.expect("scripts/huge-fixtures.sh")
}

/// `POST /v1/images` with the file as a stream of 1 MiB chunks and its `Content-Length`.
async fn upload_file(c: &Client, key: &str, path: &Path) -> reqwest::Response {
    let file = tokio::fs::File::open(path).await.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let len = file.metadata().await.unwrap().len();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
    c.http
        .post(c.url("/v1/images"))
        .bearer_auth(key)
        .header(reqwest::header::CONTENT_LENGTH, len)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload of {}: {e}", path.display()))
}

/// The size the spec gives a preset's variant of a `w` x `h` image: `contain` fits inside
/// the box keeping the aspect ratio, rounded to the nearest pixel; `cover` fills the box
/// (centred crop); neither upscales.
fn fitted(p: &VariantPreset, (w, h): (u32, u32)) -> (u32, u32) {
    match p.fit {
        Fit::Cover => (p.width.min(w), p.height.min(h)),
        Fit::Contain => {
            let (sw, sh) = (f64::from(w), f64::from(h));
            let s = (f64::from(p.width) / sw).min(f64::from(p.height) / sh).min(1.0);
            ((sw * s).round().max(1.0) as u32, (sh * s).round().max(1.0) as u32)
        }
    }
}

/// The mean absolute difference of two images of one size, per channel.
fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> [f64; 3] {
    assert_eq!(a.dimensions(), b.dimensions());
    let mut sum = [0u64; 3];
    for (p, q) in a.pixels().zip(b.pixels()) {
        for (s, (x, y)) in sum.iter_mut().zip(p.0.iter().zip(q.0)) {
            *s += u64::from(x.abs_diff(y));
        }
    }
    let n = u64::from(a.width()) * u64::from(a.height());
    sum.map(|s| s as f64 / n as f64)
}

/// `/proc/PID/status`'s `key` (a size in kB), in bytes.
fn proc_status_bytes(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_else(|e| panic!("server {pid}: {e}"));
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status:\n{s}"));
    kb * 1024
}

/// Whether the process runs (is neither gone nor a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("State:") && !l.contains("zombie") && !l.contains("dead")))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Seconds from the record's upload to its final status (the server's clock).
fn seconds_to_final(rec: &serde_json::Value) -> Option<f64> {
    let at = |k: &str| rec[k].as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    Some((at("processed_at")? - at("uploaded_at")?).num_milliseconds() as f64 / 1000.0)
}

/// Asserts the server is the process it was, alive, and under [`MAX_PEAK_RSS`]; prints it.
fn check_server_memory(server: &Server, pid: u32, what: &str) {
    assert_eq!(server.pid(), pid, "{what}: the server is another process");
    assert!(alive(pid), "{what}: the server (pid {pid}) is gone:\n{}", server.log());
    let (hwm, rss) = (proc_status_bytes(pid, "VmHWM:"), proc_status_bytes(pid, "VmRSS:"));
    println!(
        "{what}: server pid {pid} VmHWM {:.0} MiB (VmRSS now {:.0} MiB), limit {:.0} MiB",
        mib(hwm),
        mib(rss),
        mib(MAX_PEAK_RSS)
    );
    assert!(hwm < MAX_PEAK_RSS, "{what}: the server's VmHWM is {:.0} MiB, over {:.0} MiB", mib(hwm), mib(MAX_PEAK_RSS));
}

async fn huge_images(backend: Backend) {
    let _one_at_a_time = SERIAL.lock().await;
    let dir = fixtures_ready().await;
    let started = Instant::now();
    let server = Setup::new(backend).env("IMAGELAKE_QUEUE__VISIBILITY_TIMEOUT", "2s").start().await;
    let pid = server.pid();
    let c = server.client();
    let key = &server.keys.acme;
    let presets = ProcessorConfig::default().variants;
    let what = format!("{backend:?}");
    // Each problem is noted and the run goes on, so that one run reports every measure.
    let mut problems: Vec<String> = Vec::new();

    let mut uploaded = Vec::new();
    for (file, w, h) in FIXTURES {
        let path = dir.join(file);
        let bytes = std::fs::metadata(&path).unwrap().len();
        let t = Instant::now();
        let res = upload_file(&c, key, &path).await;
        let status = res.status();
        let rec: serde_json::Value = res.json().await.unwrap_or_default();
        let took = t.elapsed();
        println!("{what} {file}: {:.1} MB uploaded in {took:.1?}: {status}", bytes as f64 / 1e6);
        if status != 202 {
            problems.push(format!("{file}: upload answered {status}: {rec}"));
            continue;
        }
        // Known at upload when the header is in the first 256 KiB (a TIFF's IFD may come
        // after its pixels, as libtiff writes it: then the processor reads it).
        let size = (rec["width"].as_u64(), rec["height"].as_u64());
        if size != (None, None) {
            assert_eq!(size, (Some(w.into()), Some(h.into())), "{file}: {rec}");
        } else {
            println!("{what} {file}: size not known at upload");
        }
        uploaded.push((file, w, h, rec["id"].as_str().unwrap().to_string()));
    }

    let mut table = Vec::new();
    for (file, w, h, id) in uploaded {
        let done = c.wait_done(key, &id, PROCESSING).await;
        let secs = seconds_to_final(&done).unwrap_or(f64::NAN);
        println!(
            "{what} {file}: {} {secs:.1} s after its upload ({:.0} MP/s), attempts {}",
            done["status"],
            f64::from(w) * f64::from(h) / 1e6 / secs,
            done["attempts"]
        );
        if done["status"] != "processed" {
            problems.push(format!("{file}: {} {}", done["status"], done["error"]));
            continue;
        }
        if done["attempts"] != 1 {
            problems.push(format!("{file}: {} attempts: redelivered while it rendered", done["attempts"]));
        }
        let size = (done["width"].as_u64(), done["height"].as_u64());
        if size != (Some(w.into()), Some(h.into())) {
            problems.push(format!("{file}: the record says {size:?}, the image is {w}x{h}"));
        }
        let stem = file.rsplit_once('.').unwrap().0;
        let variants = done["variants"].as_array().unwrap();
        for p in &presets {
            let expected = fitted(p, (w, h));
            let Some(v) = variants.iter().find(|v| v["name"] == p.name.as_str()) else {
                problems.push(format!("{file} {}: no such variant in {done}", p.name));
                continue;
            };
            let format = serde_json::to_value(p.format()).unwrap();
            assert_eq!(v["format"], format, "{file} {}: {v}", p.name);
            let advertised = (v["width"].as_u64().unwrap() as u32, v["height"].as_u64().unwrap() as u32);
            let res = c.get(key, &format!("/v1/images/{id}/variants/{}", p.name)).send().await.unwrap();
            assert_eq!(res.status(), 200, "{file} {}", p.name);
            let body = res.bytes().await.unwrap();
            let got = image::load_from_memory(&body).unwrap_or_else(|e| panic!("{file} {}: {e}", p.name)).to_rgb8();
            let reference_path = dir.join("ref").join(format!("{stem}.{}.png", p.name));
            let reference =
                image::open(&reference_path).unwrap_or_else(|e| panic!("{}: {e}", reference_path.display())).to_rgb8();
            assert_eq!(reference.dimensions(), expected, "{}: libvips's size is not the spec's", reference_path.display());
            if advertised != expected || got.dimensions() != expected {
                problems.push(format!(
                    "{file} {}: {}x{} advertised, {}x{} decoded, {}x{} expected",
                    p.name,
                    advertised.0,
                    advertised.1,
                    got.width(),
                    got.height(),
                    expected.0,
                    expected.1
                ));
                continue;
            }
            let diff = mean_abs_diff(&got, &reference);
            let worst = diff.iter().copied().fold(0.0, f64::max);
            table.push(format!(
                "{what} {file:<19} {:<6} {:>4}x{:<4} {:>6} B  mean |diff| R {:.2} G {:.2} B {:.2}",
                p.name,
                expected.0,
                expected.1,
                body.len(),
                diff[0],
                diff[1],
                diff[2]
            ));
            if worst >= MAX_MEAN_DIFF {
                problems.push(format!(
                    "{file} {}: mean absolute difference from libvips {diff:.2?} (R, G, B), bound {MAX_MEAN_DIFF}",
                    p.name
                ));
            }
        }
    }
    for line in &table {
        println!("{line}");
    }
    check_server_memory(&server, pid, &what);
    println!("{what}: whole run {:.1?}", started.elapsed());
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

async fn png_bombs() {
    let _one_at_a_time = SERIAL.lock().await;
    let dir = fixtures_ready().await;
    let started = Instant::now();
    let server = Server::with(Backend::Embedded).await;
    let pid = server.pid();
    let c = server.client();
    let key = server.keys.acme.clone();
    let bomb = dir.join("bomb.png");
    let presets = ProcessorConfig::default().variants;

    let uploads: Vec<_> = (0..BOMBS)
        .map(|_| {
            let (c, key, bomb) = (c.clone(), key.clone(), bomb.clone());
            tokio::spawn(async move {
                let res = upload_file(&c, &key, &bomb).await;
                let status = res.status();
                let rec: serde_json::Value = res.json().await.unwrap_or_default();
                assert_eq!(status, 202, "{rec}");
                assert_eq!((rec["width"].as_u64(), rec["height"].as_u64()), (Some(15_800), Some(15_800)), "{rec}");
                rec["id"].as_str().unwrap().to_string()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for u in uploads {
        ids.push(u.await.unwrap());
    }
    println!("bombs: {BOMBS} uploaded in {:.1?}", started.elapsed());

    // While they are processed: /healthz, a small upload every 2 s, and each bomb's record.
    let mut worst_health = Duration::ZERO;
    let mut worst_upload = Duration::ZERO;
    let mut small = Vec::new();
    let mut attempts = vec![0u64; BOMBS];
    let mut finals: Vec<Option<serde_json::Value>> = vec![None; BOMBS];
    let mut last_small: Option<Instant> = None;
    while finals.iter().any(Option::is_none) {
        assert!(started.elapsed() < PROCESSING, "bombs still not final after {PROCESSING:?}: {attempts:?}");
        let t = Instant::now();
        let res = c.http.get(c.url("/healthz")).timeout(Duration::from_secs(30)).send().await;
        assert!(res.as_ref().is_ok_and(|r| r.status() == 200), "/healthz while the bombs are processed: {res:?}");
        worst_health = worst_health.max(t.elapsed());
        if last_small.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
            last_small = Some(Instant::now());
            let t = Instant::now();
            let res = c.upload(&key, image_bytes(64, 48, ImageFormat::Png), "image/png").await;
            assert_eq!(res.status(), 202, "a small upload while the bombs are processed");
            worst_upload = worst_upload.max(t.elapsed());
            small.push(res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string());
        }
        for (i, id) in ids.iter().enumerate() {
            if finals[i].is_some() {
                continue;
            }
            let rec: serde_json::Value = c.get(&key, &format!("/v1/images/{id}")).send().await.unwrap().json().await.unwrap();
            attempts[i] = attempts[i].max(rec["attempts"].as_u64().unwrap_or(0));
            assert!(attempts[i] <= BOMB_MAX_ATTEMPTS, "bomb {id} delivered {} times: {rec}", attempts[i]);
            if rec["status"] == "processed" || rec["status"] == "failed" {
                finals[i] = Some(rec);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "bombs: all final after {:.1?}; meanwhile /healthz took {worst_health:.1?} and a small upload {worst_upload:.1?} at worst",
        started.elapsed()
    );
    assert!(worst_health < Duration::from_secs(2), "/healthz took {worst_health:?} while the bombs were processed");
    assert!(worst_upload < Duration::from_secs(10), "a small upload took {worst_upload:?} while the bombs were processed");

    let (mut processed, mut failed) = (0, 0);
    for rec in finals.into_iter().flatten() {
        let secs = seconds_to_final(&rec).unwrap_or(f64::NAN);
        let code = rec["error"]["code"].as_str().map(|c| format!(" ({c})")).unwrap_or_default();
        println!("bomb {}: {}{code} {secs:.1} s after its upload, attempts {}", rec["id"], rec["status"], rec["attempts"]);
        if rec["status"] == "failed" {
            assert_eq!(rec["error"]["code"], "decode_limit", "a bomb fails only for its memory: {rec}");
            failed += 1;
            continue;
        }
        let variants = rec["variants"].as_array().unwrap();
        for p in &presets {
            let v = variants.iter().find(|v| v["name"] == p.name.as_str()).unwrap_or_else(|| panic!("no {}: {rec}", p.name));
            let (w, h) = fitted(p, (15_800, 15_800));
            assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(w.into()), Some(h.into())), "{}: {rec}", p.name);
        }
        if processed == 0 {
            // Zeros stay black.
            let thumb = c.get(&key, &format!("/v1/images/{}/variants/thumb", rec["id"].as_str().unwrap())).send().await.unwrap();
            let img = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap().to_rgb8();
            let brightest = img.pixels().flat_map(|p| p.0).max().unwrap();
            assert!(brightest <= 2, "a black image's thumb has a pixel of {brightest}");
        }
        processed += 1;
    }
    println!("bombs: {processed} processed, {failed} failed (decode_limit)");
    for id in &small {
        let done = c.wait_done(&key, id, PROCESSING).await;
        assert_eq!(done["status"], "processed", "a small image uploaded during the bombs: {done}");
    }
    check_server_memory(&server, pid, "bombs");
    println!("bombs: whole run {:.1?}", started.elapsed());
}

/// The processor's copy of the original has no name (`O_TMPFILE`): while a render runs,
/// `data_dir/tmp` lists nothing and the process holds a deleted file there; after a
/// SIGKILL nothing is left. A file named by an older version is swept at start-up. The
/// job comes back after the visibility timeout and the image is processed.
async fn killed_render() {
    let _one_at_a_time = SERIAL.lock().await;
    let dir = fixtures_ready().await;
    let mut server = Setup::new(Backend::Embedded).env("IMAGELAKE_QUEUE__VISIBILITY_TIMEOUT", "2s").start().await;
    let (c, key) = (server.client(), server.keys.acme.clone());
    let tmp = server.data_dir.join("tmp");
    let named = |tmp: &Path| -> Vec<String> {
        std::fs::read_dir(tmp)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    let res = upload_file(&c, &key, &dir.join("big-tiled.tif")).await;
    assert_eq!(res.status(), 202);
    let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    // Wait until the render holds its copy of the original (a deleted file under tmp/).
    let pid = server.pid();
    let started = Instant::now();
    let holds_copy = || {
        std::fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.starts_with(&tmp) && t.to_string_lossy().ends_with("(deleted)"))
        })
    };
    while !holds_copy() {
        assert!(started.elapsed() < Duration::from_secs(60), "the render never opened its copy");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(named(&tmp), Vec::<String>::new(), "a named temporary file during the render");
    server.kill9();
    assert_eq!(named(&tmp), Vec::<String>::new(), "left behind by the killed render");
    // What an older version, which named its copies, would have left.
    std::fs::write(tmp.join(".tmpA1b2C3"), b"an original").unwrap();
    server.restart().await;
    let done = c.wait_done(&key, &id, PROCESSING).await;
    assert_eq!(done["status"], "processed", "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(named(&tmp), Vec::<String>::new(), "the older version's leftover is swept");
}
