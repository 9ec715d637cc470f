//! Resumable uploads through the CLI (`imagelake upload --resumable-above 0`), on the
//! embedded backend and on Garage + SQS:
//! - a 256 MiB PNG through a relay that cuts the connection at 20 random points: the
//!   client's own retries resume after most cuts; the client is killed once and the same
//!   command run again resumes from the server's offset;
//! - kill -9 of the server between chunks: the client's retries resume on the restarted
//!   server; then the server and the client are both killed, and a new run resumes.
//!
//! - `--direct`: on Garage the parts go to their presigned URLs; the embedded backend's
//!   501 is printed as the server's message.
//!
//! Each checks the original downloaded from the server byte for byte (SHA-256 of the file
//! and of the streamed download), that there was one upload (one POST) and that no byte of
//! the file went up more than twice (the relay reads every request it forwards).

mod common;

use common::cli::{client, run};
use common::proxy::{Relay, Request};
use common::{sha256_file, Backend, Server};
use imagelake_core::testing::temp_dir;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_256_mib_upload_cut_at_20_points_resumes_to_the_same_bytes() {
        super::cut_at_20_points(super::Backend::Embedded).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_of_the_server_between_chunks_then_the_cli_resumes() {
        super::server_killed_between_chunks(super::Backend::Embedded).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upload_direct() {
        super::upload_direct(super::Backend::Embedded).await
    }
}

mod garage_and_sqs {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_256_mib_upload_cut_at_20_points_resumes_to_the_same_bytes() {
        super::cut_at_20_points(super::Backend::Servers).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_of_the_server_between_chunks_then_the_cli_resumes() {
        super::server_killed_between_chunks(super::Backend::Servers).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upload_direct() {
        super::upload_direct(super::Backend::Servers).await
    }
}

/// The PNG writer's output is an image the `image` crate decodes, pixel for pixel: the
/// stored deflate blocks span rows, and the IDAT chunks span blocks.
#[test]
fn the_noise_png_is_a_real_png() {
    let dir = temp_dir("noise-png");
    let path = dir.join("small.png");
    let size = write_noise_png(&path, 300, 700, &mut Rng(7)); // 1.68 MB: 26 stored blocks in 2 IDATs
    assert!(size > 300 * 700 * 8);
    let img = image::open(&path).expect("decodes").into_rgba16();
    assert_eq!(img.dimensions(), (300, 700));
    let mut rng = Rng(7);
    let first = rng.next().to_le_bytes();
    assert_eq!(img.get_pixel(0, 0).0, [0, 1, 2, 3].map(|c| u16::from_be_bytes([first[2 * c], first[2 * c + 1]])));
    let _ = std::fs::remove_dir_all(&dir);
}

/// xorshift64*: the test's randomness (its seed is printed).
struct Rng(u64);

impl Rng {
    fn seeded() -> (Rng, u64) {
        let seed = std::env::var("IMAGELAKE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
        (Rng(seed), seed)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn crc32(mut crc: u32, bytes: &[u8]) -> u32 {
    crc = !crc;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A real PNG of `w` x `h` 16-bit RGBA pixels of noise (8 bytes a pixel, incompressible),
/// written row by row: the image data is zlib with stored (uncompressed) deflate blocks,
/// so the file is about `w * h * 8` bytes and never in memory. Returns its size.
fn write_noise_png(path: &Path, w: u32, h: u32, rng: &mut Rng) -> u64 {
    let mut out = std::io::BufWriter::with_capacity(4 << 20, std::fs::File::create(path).unwrap());
    let chunk = |out: &mut std::io::BufWriter<std::fs::File>, kind: &[u8; 4], data: &[u8]| {
        out.write_all(&(data.len() as u32).to_be_bytes()).unwrap();
        out.write_all(kind).unwrap();
        out.write_all(data).unwrap();
        out.write_all(&crc32(crc32(0, kind), data).to_be_bytes()).unwrap();
    };
    out.write_all(b"\x89PNG\r\n\x1a\n").unwrap();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[16, 6, 0, 0, 0]); // 16-bit RGBA, deflate, adaptive filters, no interlace
    chunk(&mut out, b"IHDR", &ihdr);

    // The raw scanlines (filter byte 0, then the row), produced as the blocks need them.
    let row_len = 1 + w as usize * 8;
    let total = row_len as u64 * u64::from(h);
    let mut row = vec![0u8; row_len];
    let mut row_pos = row_len; // consumed: make the first row
    let (mut adler_a, mut adler_b) = (1u32, 0u32);
    let mut idat = vec![0x78, 0x01]; // zlib header: deflate, 32 KiB window, no dictionary
    let mut left = total;
    while left > 0 {
        let n = left.min(65_535) as usize;
        left -= n as u64;
        idat.push(u8::from(left == 0)); // BFINAL on the last block, BTYPE 00 (stored)
        idat.extend_from_slice(&(n as u16).to_le_bytes());
        idat.extend_from_slice(&(!(n as u16)).to_le_bytes());
        let mut need = n;
        while need > 0 {
            if row_pos == row_len {
                row[0] = 0;
                for px in row[1..].chunks_exact_mut(8) {
                    px.copy_from_slice(&rng.next().to_le_bytes());
                }
                row_pos = 0;
            }
            let k = need.min(row_len - row_pos);
            let part = &row[row_pos..row_pos + k];
            for b in part {
                adler_a = (adler_a + u32::from(*b)) % 65_521;
                adler_b = (adler_b + adler_a) % 65_521;
            }
            idat.extend_from_slice(part);
            row_pos += k;
            need -= k;
        }
        if idat.len() >= 1 << 20 {
            chunk(&mut out, b"IDAT", &idat);
            idat.clear();
        }
    }
    idat.extend_from_slice(&((adler_b << 16) | adler_a).to_be_bytes());
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out.into_inner().unwrap().sync_all().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// The SHA-256 and length of the image's original, streamed from the server.
async fn sha256_of_original(server: &Server, key: &str, id: &str) -> (String, u64) {
    use futures::StreamExt;
    use sha2::Digest;
    let res = server.client().get(key, &format!("/v1/images/{id}/original")).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET original of {id}");
    let mut h = sha2::Sha256::new();
    let mut n = 0u64;
    let mut body = res.bytes_stream();
    while let Some(b) = body.next().await {
        let b = b.unwrap();
        n += b.len() as u64;
        h.update(&b);
    }
    (hex::encode(h.finalize()), n)
}

/// The resume state files the client keeps under `home`.
fn state_files(home: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(home.join(".local/state/imagelake/uploads")) {
        Ok(d) => d.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// `imagelake upload FILE --chunk-size 8MiB --resumable-above 0 --variants thumb` against `url`.
fn upload_command(home: &Path, file: &Path, url: &str, key: &str) -> tokio::process::Command {
    let mut c = client(home);
    c.args(["upload", file.to_str().unwrap(), "--chunk-size", "8MiB", "--resumable-above", "0", "--variants", "thumb"]);
    c.args(["--url", url, "--key", key]);
    c
}

/// Checks the relay's log of one upload of `size` bytes: one create, PATCH bodies only, and
/// no byte of the file sent more than twice. Returns the most any byte was sent.
fn check_sent_at_most_twice(requests: &[Request], size: u64) -> u32 {
    let creates = requests.iter().filter(|r| r.method == "POST").count();
    assert_eq!(creates, 1, "one upload, never started over: {requests:#?}");
    // +1 where a sent range starts, -1 where it ends: the running sum is how often each byte went.
    let mut edges: Vec<(u64, i32)> = Vec::new();
    let mut body_total = 0;
    for r in requests.iter().filter(|r| r.method == "PATCH") {
        let from = r.upload_offset.expect("every PATCH has an Upload-Offset");
        assert!(from + r.content_length <= size, "a PATCH past the end: {r:?}");
        body_total += r.body_sent;
        if r.body_sent > 0 {
            edges.push((from, 1));
            edges.push((from + r.body_sent, -1));
        }
    }
    edges.sort();
    let (mut depth, mut most, mut covered, mut since) = (0i32, 0i32, 0u64, 0u64);
    for (at, d) in edges {
        if depth > 0 {
            covered += at - since;
        }
        depth += d;
        most = most.max(depth);
        since = at;
    }
    assert_eq!(covered, size, "every byte went up");
    assert!(body_total <= 2 * size, "{body_total} bytes of PATCH bodies for a file of {size}");
    assert!(most <= 2, "a byte of the file went up {most} times: {requests:#?}");
    most as u32
}

/// Checks the image the CLI printed: its record, and its original byte for byte.
async fn check_uploaded(server: &Server, key: &str, id: &str, size: u64, sha: &str) {
    // The processor fills in the SHA-256 as it reads the original.
    let rec = server.client().wait_done(key, id, Duration::from_secs(300)).await;
    assert_eq!(rec["bytes"], size, "{rec}");
    assert_eq!(rec["sha256"], sha, "{rec}");
    assert_eq!(rec["content_type"], "image/png", "{rec}");
    let (got, n) = sha256_of_original(server, key, id).await;
    assert_eq!(n, size);
    assert_eq!(got, sha, "the original downloaded is the file uploaded");
}

async fn cut_at_20_points(backend: Backend) {
    let (mut rng, seed) = Rng::seeded();
    eprintln!("seed {seed} (IMAGELAKE_TEST_SEED={seed} repeats this run)");
    let server = Server::with(backend).await;
    let key = server.keys.acme.clone();
    let relay = Relay::start_tapped(server.url.trim_start_matches("http://")).await;
    let tap = relay.tap();
    let home = temp_dir("tus-home");
    let work = temp_dir("tus-cut");
    let file = work.join("noise.png");
    let size = write_noise_png(&file, 4096, 8192, &mut rng); // 256 MiB and 30 KiB of framing
    let sha = sha256_file(&file);

    // 20 cut points in the upstream stream, at least a chunk and a bit apart (so that no
    // cut falls in the resending of what the one before cut off), with a wider gap after
    // the 12th, where the client is killed.
    const CUTS: usize = 20;
    const KILL_AFTER: usize = 12;
    let gap = 9 * MIB;
    let wide = 24 * MIB;
    let slack = size - 8 * MIB - gap * (CUTS as u64 - 1) - (wide - gap);
    let mut shares: Vec<u64> = (0..CUTS).map(|_| rng.below(slack)).collect();
    shares.sort_unstable();
    let mut cuts = Vec::new();
    for (i, share) in shares.iter().enumerate() {
        let fixed = 4 * MIB + gap * i as u64 + if i >= KILL_AFTER { wide - gap } else { 0 };
        cuts.push(fixed + share);
    }
    eprintln!("file of {size} bytes, cut at {cuts:?}");
    tap.cut_at(cuts.clone());

    // The first run: its own retries resume after each cut; it is killed 10 MiB past the
    // 12th, in the middle of a chunk.
    let mut c = upload_command(&home, &file, &relay.url(), &key);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    let mut first = c.spawn().unwrap();
    let kill_at = cuts[KILL_AFTER - 1] + 10 * MIB;
    let start = Instant::now();
    while tap.upstream_bytes.load(Ordering::SeqCst) < kill_at {
        if let Some(status) = first.try_wait().unwrap() {
            let out = first.wait_with_output().await.unwrap();
            panic!("the first run ended ({status}) before the kill:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        assert!(start.elapsed() < Duration::from_secs(300), "the first run reached byte {kill_at} in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.start_kill().unwrap();
    let out = first.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(tap.cuts_done.load(Ordering::SeqCst), KILL_AFTER as u64, "{stderr}");
    // A retry per cut, and another when the next PATCH came before the server had stored
    // what the cut one brought (409 offset_mismatch, or 423 while it held the lock).
    let retries = stderr.matches("retrying in").count();
    assert!(retries >= KILL_AFTER, "a retry per cut:\n{stderr}");
    eprintln!("first run: {retries} retries for {KILL_AFTER} cuts");
    assert_eq!(state_files(&home).len(), 1, "the killed run left its resume state");

    // The same command again: resumes (and gets through the remaining cuts on its own).
    let r = run(upload_command(&home, &file, &relay.url(), &key)).await;
    assert!(r.ok, "{r:?}");
    assert!(r.stderr.contains("resuming the upload"), "{r:?}");
    assert_eq!(tap.cuts_done.load(Ordering::SeqCst), CUTS as u64, "every cut happened: {r:?}");
    let id = r.stdout.trim().to_string();
    assert!(state_files(&home).is_empty(), "the resume state is gone once complete");
    assert!(!tap.unparsed.load(Ordering::SeqCst), "the relay understood every request");
    let requests = tap.requests();
    assert!(requests.iter().filter(|r| r.method == "PATCH").all(|r| r.path.ends_with(&id)), "the upload's id is the image's");
    let most = check_sent_at_most_twice(&requests, size);
    let patches = requests.iter().filter(|r| r.method == "PATCH").count();
    let body: u64 = requests.iter().map(|r| r.body_sent).sum();
    eprintln!(
        "{patches} PATCHes, {body} body bytes for {size} ({:.3}x), no byte more than {most} times, {} upstream bytes",
        body as f64 / size as f64,
        tap.upstream_bytes.load(Ordering::SeqCst)
    );
    check_uploaded(&server, &key, &id, size, &sha).await;
    let _ = std::fs::remove_dir_all(&work);
}

async fn server_killed_between_chunks(backend: Backend) {
    let (mut rng, _) = Rng::seeded();
    let mut server = Server::with(backend).await;
    let key = server.keys.acme.clone();
    let relay = Relay::start_tapped(server.url.trim_start_matches("http://")).await;
    let tap = relay.tap();
    let home = temp_dir("tus-home");
    let work = temp_dir("tus-kill");
    let file = work.join("noise.png");
    let size = write_noise_png(&file, 4096, 1536, &mut rng); // 48 MiB: six chunks
    let sha = sha256_file(&file);
    let head_offset = {
        let (http, base, key) = (reqwest::Client::new(), server.url.clone(), key.clone());
        move |path: String| {
            let req = http.head(format!("{base}{path}")).bearer_auth(&key).header("Tus-Resumable", "1.0.0");
            async move {
                let res = req.send().await.unwrap();
                assert_eq!(res.status(), 200, "HEAD {path}");
                res.headers()["upload-offset"].to_str().unwrap().parse::<u64>().unwrap()
            }
        }
    };

    // The third chunk is held before it goes up: two are acknowledged.
    tap.hold_patch_from(Some(16 * MIB));
    let mut c = upload_command(&home, &file, &relay.url(), &key);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    let mut cli = c.spawn().unwrap();
    tokio::time::timeout(Duration::from_secs(120), tap.held()).await.expect("the third chunk within 2 minutes");
    let path = tap.requests().iter().rev().find(|r| r.method == "PATCH").unwrap().path.clone();
    assert_eq!(head_offset(path.clone()).await, 16 * MIB);
    // kill -9 between chunks; the held PATCH meets a dead server; the client retries
    // (connection refused) until the server is back, and goes on from its offset.
    server.kill9();
    tap.hold_patch_from(Some(32 * MIB));
    tap.release();
    server.restart().await;
    tokio::time::timeout(Duration::from_secs(180), tap.held()).await.expect("the fifth chunk within 3 minutes");
    assert_eq!(head_offset(path.clone()).await, 32 * MIB, "the restarted server kept the first chunks");

    // Now both die: the server (kill -9, between chunks again) and the client.
    server.kill9();
    cli.start_kill().unwrap();
    let out = cli.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("retrying in"), "the first run retried while the server was down:\n{stderr}");
    tap.release();
    server.restart().await;
    assert_eq!(head_offset(path.clone()).await, 32 * MIB, "an acknowledged offset survives kill -9");
    let seen = tap.requests().len();

    // The same command again: HEAD, then the rest from 32 MiB.
    let r = run(upload_command(&home, &file, &relay.url(), &key)).await;
    assert!(r.ok, "{r:?}");
    assert!(r.stderr.contains("resuming the upload"), "{r:?}");
    let id = r.stdout.trim().to_string();
    assert!(path.ends_with(&id), "the upload's id is the image's: {path} {id}");
    let rerun = tap.requests()[seen..].to_vec();
    assert_eq!(rerun.first().map(|r| r.method.as_str()), Some("HEAD"), "{rerun:#?}");
    let first_patch = rerun.iter().find(|r| r.method == "PATCH").expect("a PATCH");
    assert_eq!(first_patch.upload_offset, Some(32 * MIB), "{rerun:#?}");
    assert!(state_files(&home).is_empty(), "the resume state is gone once complete");
    check_sent_at_most_twice(&tap.requests(), size);
    check_uploaded(&server, &key, &id, size, &sha).await;
    let _ = std::fs::remove_dir_all(&work);
}

/// `upload --direct`: on S3 the parts go straight to the bucket and the image is the file;
/// on the local store the server's 501 is printed, one line with its code.
async fn upload_direct(backend: Backend) {
    let (mut rng, _) = Rng::seeded();
    let server = Server::with(backend).await;
    let key = server.keys.acme.clone();
    let home = temp_dir("tus-home");
    let work = temp_dir("tus-direct");
    let file = work.join("noise.png");
    let size = write_noise_png(&file, 2048, 2600, &mut rng); // 40.6 MiB: 3 parts of 16 MiB
    let sha = sha256_file(&file);
    let mut c = client(&home);
    c.args(["upload", file.to_str().unwrap(), "--direct", "--variants", "thumb", "--url", &server.url, "--key", &key]);
    let r = run(c).await;
    if !backend.servers() {
        assert_eq!(r.code, Some(1), "{r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
        assert!(r.stderr.contains("does not take direct uploads") && r.stderr.contains("code not_implemented"), "{r:?}");
        assert!(r.stderr.contains("S3"), "the server's message: {r:?}");
        return;
    }
    assert!(r.ok, "{r:?}");
    let id = r.stdout.trim().to_string();
    check_uploaded(&server, &key, &id, size, &sha).await;
    assert!(state_files(&home).is_empty());
    let _ = std::fs::remove_dir_all(&work);
}
