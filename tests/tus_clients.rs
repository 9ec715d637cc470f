//! Resumable uploads (issue 14) with real clients: tuspy (the tus project's Python client,
//! `tests/peers/tus_upload.py`) and tus-js-client under Node (`tests/peers/tus-js/upload.js`)
//! upload a corpus photograph in small chunks, are killed (SIGKILL) mid-way and resume from
//! their URL storage; tus-js-client terminates an upload and sends a non-ASCII filename.
//! Then the protocol's bad inputs with plain reqwest, an expired upload, another customer's
//! upload URL, and direct-to-S3 uploads (presigned part URLs) on Garage.
//!
//! `scripts/test` installs both clients (`scripts/install.sh`) and exports
//! `IMAGELAKE_TEST_PYTHON`, `IMAGELAKE_TEST_NODE_PATH` and `IMAGELAKE_TEST_CORPUS`.

#[macro_use]
mod common;

use base64::Engine as _;
use common::checks::problem;
use common::{Backend, Server, Setup};
use imagelake_core::record::original_key;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

on_every_backend!(
    tuspy_resumes_after_kill,
    tus_js_resumes_after_kill,
    tus_js_terminates,
    tus_js_non_ascii_filename,
    protocol_errors,
    refusal_keeps_the_connection_usable,
    another_customers_upload,
    expired_upload,
    direct_upload,
);

// --- the photograph, the clients ----------------------------------------------------------

/// A corpus JPEG of 1 to 4 MB (`scripts/corpus.sh`): tens of chunks at 64 KiB.
fn photo() -> PathBuf {
    corpus_jpeg(1_000_000, 4_000_000)
}

fn corpus_jpeg(min: u64, max: u64) -> PathBuf {
    let dir = std::env::var("IMAGELAKE_TEST_CORPUS")
        .expect("IMAGELAKE_TEST_CORPUS: run through scripts/test, or point it at the output of scripts/corpus.sh");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .filter(|p| (min..=max).contains(&p.metadata().unwrap().len()))
        .collect();
    files.sort();
    files.into_iter().next().unwrap_or_else(|| panic!("no JPEG of {min}..{max} bytes in {dir}"))
}

fn root() -> String {
    // At run time: a shared target dir may hold a binary built in another clone.
    std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")
}

/// tus-js-client's node_modules (`scripts/install.sh`).
fn node_path() -> String {
    std::env::var("IMAGELAKE_TEST_NODE_PATH").unwrap_or_else(|_| {
        format!("{}/.cache/imagelake/tus-js/node_modules", std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    Tuspy,
    TusJs,
}

struct Run {
    file: PathBuf,
    store: PathBuf,
    chunk: usize,
    /// Wait before each chunk (so that the test can kill the client mid-way).
    pause: Duration,
    filename: Option<String>,
    terminate_after: Option<usize>,
}

impl Run {
    fn new(file: &Path, store: &Path) -> Run {
        Run {
            file: file.into(),
            store: store.into(),
            chunk: 64 * 1024,
            pause: Duration::ZERO,
            filename: None,
            terminate_after: None,
        }
    }
}

/// A client process and the JSON events it prints (one a line).
struct Client {
    child: Child,
    events: mpsc::UnboundedReceiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
    stderr: PathBuf,
}

impl Client {
    fn start(peer: Peer, server: &Server, key: &str, run: &Run) -> Client {
        let endpoint = format!("{}/v1/uploads", server.url);
        let stderr = run.store.with_extension(format!("{}.stderr", imagelake_core::ids::new_compact_id()));
        let mut cmd = match peer {
            Peer::Tuspy => {
                let mut c = Command::new(common::lake::python());
                c.arg(format!("{}/tests/peers/tus_upload.py", root()));
                c.args([&endpoint, key]).arg(&run.file).arg("--store").arg(&run.store);
                c.args(["--chunk", &run.chunk.to_string(), "--pause", &run.pause.as_secs_f64().to_string()]);
                if let Some(n) = &run.filename {
                    c.args(["--filename", n]);
                }
                assert!(run.terminate_after.is_none(), "the tuspy driver does not terminate");
                c
            }
            Peer::TusJs => {
                let mut c = Command::new("node");
                c.env("NODE_PATH", node_path());
                c.arg(format!("{}/tests/peers/tus-js/upload.js", root()));
                c.args([&endpoint, key]).arg(&run.file).arg("--store").arg(&run.store);
                c.args(["--chunk", &run.chunk.to_string(), "--pause-ms", &run.pause.as_millis().to_string()]);
                if let Some(n) = &run.filename {
                    c.args(["--filename", n]);
                }
                if let Some(n) = run.terminate_after {
                    c.args(["--terminate-after", &n.to_string()]);
                }
                c
            }
        };
        cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(&stderr).unwrap());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start the {peer:?} client (scripts/install.sh): {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({ "event": "text", "line": line }));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Client { child, events, seen: Vec::new(), stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The next event named `name` (earlier ones are kept in `seen`).
    async fn next(&mut self, name: &str, within: Duration) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(v)) => {
                    self.seen.push(v.clone());
                    if v["event"] == name {
                        return v;
                    }
                }
                Ok(None) => panic!(
                    "the client exited before '{name}' ({:?}); events {:?}; stderr:\n{}",
                    self.child.wait(),
                    self.seen,
                    self.stderr()
                ),
                Err(_) => panic!("no '{name}' within {within:?}; events {:?}; stderr:\n{}", self.seen, self.stderr()),
            }
        }
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// Waits for the exit; panics unless it succeeded. Returns every event.
    async fn finish(mut self, within: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(v)) => self.seen.push(v),
                Ok(None) => break,
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("client still running after {within:?}; events {:?}; stderr:\n{}", self.seen, self.stderr())
                }
            }
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "client failed ({status}); events {:?}; stderr:\n{}", self.seen, self.stderr());
        self.seen
    }
}

fn event<'a>(events: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    events.iter().find(|e| e["event"] == name).unwrap_or_else(|| panic!("no '{name}' event in {events:?}"))
}

// --- tus requests ---------------------------------------------------------------------------

const OCTETS: &str = "application/offset+octet-stream";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// `Upload-Metadata`'s value for `key`, decoded.
fn metadata_value(header: &str, key: &str) -> Option<String> {
    header.split(',').find_map(|pair| {
        let mut it = pair.trim().splitn(2, ' ');
        (it.next() == Some(key)).then(|| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(it.next().unwrap_or("")).unwrap();
            String::from_utf8(bytes).unwrap()
        })
    })
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {} {:?}", res.status(), res.headers()))
        .to_str()
        .unwrap()
        .to_string()
}

fn offset_of(res: &reqwest::Response) -> u64 {
    header(res, "upload-offset").parse().unwrap()
}

/// The image id an upload URL stands for (the upload id is the image id).
fn id_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

struct Tus {
    c: common::Client,
}

impl Tus {
    fn new(server: &Server) -> Tus {
        Tus { c: server.client() }
    }

    /// POST /v1/uploads; the absolute upload URL.
    async fn create(&self, key: &str, length: u64, metadata: &str) -> String {
        let mut req = self
            .c
            .http
            .post(self.c.url("/v1/uploads"))
            .bearer_auth(key)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", length.to_string());
        if !metadata.is_empty() {
            req = req.header("upload-metadata", metadata);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap_or_default());
        assert_eq!(offset_of(&res), 0);
        assert!(res.headers().contains_key("upload-expires"));
        let location = header(&res, "location");
        assert!(location.starts_with("/v1/uploads/"), "{location}");
        self.c.url(&location)
    }

    fn patch(&self, key: &str, url: &str, offset: u64, body: &[u8]) -> reqwest::RequestBuilder {
        self.c
            .http
            .patch(url)
            .bearer_auth(key)
            .header("tus-resumable", "1.0.0")
            .header("content-type", OCTETS)
            .header("upload-offset", offset.to_string())
            .body(body.to_vec())
    }

    async fn head(&self, key: &str, url: &str) -> reqwest::Response {
        self.c.http.head(url).bearer_auth(key).header("tus-resumable", "1.0.0").send().await.unwrap()
    }

    async fn offset(&self, key: &str, url: &str) -> u64 {
        let res = self.head(key, url).await;
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "cache-control"), "no-store");
        offset_of(&res)
    }

    /// The customer's image ids (GET /v1/images).
    async fn images(&self, key: &str) -> Vec<String> {
        let res = self.c.get(key, "/v1/images?limit=100").send().await.unwrap();
        assert_eq!(res.status(), 200);
        let page: serde_json::Value = res.json().await.unwrap();
        page["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    }

    /// Waits for `processed`; checks that the original is byte-identical to `file`.
    async fn processed_and_identical(&self, key: &str, id: &str, file: &[u8]) -> serde_json::Value {
        let rec = self.c.wait_done(key, id, Duration::from_secs(180)).await;
        assert_eq!(rec["status"], "processed", "{rec}");
        assert_eq!(rec["bytes"], file.len() as u64, "{rec}");
        assert_eq!(rec["sha256"], common::sha256_hex(file), "{rec}");
        let res = self.c.get(key, &format!("/v1/images/{id}/original")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body = res.bytes().await.unwrap();
        assert!(body.as_ref() == file, "the original differs from the file ({} vs {} bytes)", body.len(), file.len());
        rec
    }
}

// --- real clients ---------------------------------------------------------------------------

/// The client uploads the photograph in 64 KiB chunks, is killed after a few, and a second
/// run resumes from its URL storage at the offset the server kept.
async fn resumes_after_kill(peer: Peer, backend: Backend) {
    let server = Server::with(backend).await;
    let key = server.keys.acme.clone();
    let tus = Tus::new(&server);
    let file = photo();
    let bytes = std::fs::read(&file).unwrap();
    let dir = imagelake_core::testing::temp_dir("tus-peer");
    let store = dir.join("urls.json");

    let mut run = Run::new(&file, &store);
    run.pause = Duration::from_millis(150);
    let mut first = Client::start(peer, &server, &key, &run);
    let url = match peer {
        Peer::Tuspy => first.next("start", Duration::from_secs(30)).await,
        Peer::TusJs => first.next("url", Duration::from_secs(30)).await,
    }["url"]
        .as_str()
        .unwrap()
        .to_string();
    let mut acked = 0;
    for _ in 0..3 {
        acked = first.next("chunk", Duration::from_secs(30)).await["offset"].as_u64().unwrap();
    }
    first.kill9();
    assert!(acked > 0 && acked < bytes.len() as u64);
    // What the server kept: at least every acknowledged chunk (a PATCH cut mid-way may add
    // a prefix of its chunk), and not the whole file.
    let kept = tus.offset(&key, &url).await;
    assert!(kept >= acked && kept < bytes.len() as u64, "HEAD offset {kept}, {acked} acknowledged");
    assert!(tus.images(&key).await.is_empty(), "an image before the upload completed");

    let second = Client::start(peer, &server, &key, &Run::new(&file, &store));
    let events = second.finish(Duration::from_secs(120)).await;
    let start = event(&events, "start");
    assert_eq!(start["resumed"], true, "{events:?}");
    let resumed_at = match peer {
        Peer::Tuspy => {
            assert_eq!(start["url"], url.as_str());
            start["offset"].as_u64().unwrap()
        }
        Peer::TusJs => {
            assert_eq!(event(&events, "url")["url"], url.as_str());
            let head = event(&events, "head");
            assert_eq!(head["status"], 200);
            head["offset"].as_u64().unwrap()
        }
    };
    assert_eq!(resumed_at, kept, "the client resumed at another offset than HEAD's");
    assert!(resumed_at > 0);
    // The first chunk of the second run ends past the resume point, never at a restart.
    let first_chunk = events.iter().find(|e| e["event"] == "chunk").expect("a chunk in the second run");
    assert!(first_chunk["offset"].as_u64().unwrap() > resumed_at, "{events:?}");
    let done = event(&events, "done");
    assert_eq!(done["url"], url.as_str());
    let id = id_of(&url);
    assert_eq!(done["image"], format!("/v1/images/{id}"), "the final PATCH's Imagelake-Image");
    tus.processed_and_identical(&key, &id, &bytes).await;
    assert_eq!(tus.images(&key).await, vec![id.clone()], "one upload, one image");
    let head = tus.head(&key, &url).await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "imagelake-image"), format!("/v1/images/{id}"));
    assert_eq!(offset_of(&head), bytes.len() as u64);
    let _ = std::fs::remove_dir_all(dir);
}

async fn tuspy_resumes_after_kill(backend: Backend) {
    resumes_after_kill(Peer::Tuspy, backend).await;
}

async fn tus_js_resumes_after_kill(backend: Backend) {
    resumes_after_kill(Peer::TusJs, backend).await;
}

/// tus-js-client's `abort(true)` terminates the upload (DELETE): then it is gone.
async fn tus_js_terminates(backend: Backend) {
    let server = Server::with(backend).await;
    let key = server.keys.acme.clone();
    let tus = Tus::new(&server);
    let file = photo();
    let dir = imagelake_core::testing::temp_dir("tus-peer");
    let mut run = Run::new(&file, &dir.join("urls.json"));
    run.terminate_after = Some(3);
    let events = Client::start(Peer::TusJs, &server, &key, &run).finish(Duration::from_secs(60)).await;
    let url = event(&events, "terminated")["url"].as_str().unwrap().to_string();
    assert!(events.iter().all(|e| e["event"] != "done"), "{events:?}");
    assert_eq!(tus.head(&key, &url).await.status(), 404);
    problem(tus.patch(&key, &url, 3 * 64 * 1024, b"more").send().await.unwrap(), 404, "not_found").await;
    assert!(tus.images(&key).await.is_empty(), "a terminated upload became an image");
    common::checks::assert_nothing_stored(&server, "acme").await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A filename outside ASCII, sent by tus-js-client (UTF-8, base64) in Upload-Metadata,
/// comes back unchanged from HEAD (and on the record, if it shows one).
async fn tus_js_non_ascii_filename(backend: Backend) {
    let server = Server::with(backend).await;
    let key = server.keys.acme.clone();
    let tus = Tus::new(&server);
    let file = photo();
    let bytes = std::fs::read(&file).unwrap();
    let dir = imagelake_core::testing::temp_dir("tus-peer");
    let name = "Zürich 東京 🌄.jpg";
    let mut run = Run::new(&file, &dir.join("urls.json"));
    run.chunk = 1024 * 1024;
    run.filename = Some(name.into());
    let events = Client::start(Peer::TusJs, &server, &key, &run).finish(Duration::from_secs(60)).await;
    let done = event(&events, "done");
    let url = done["url"].as_str().unwrap();
    let id = id_of(url);
    let head = tus.head(&key, url).await;
    assert_eq!(head.status(), 200);
    let metadata = header(&head, "upload-metadata");
    assert_eq!(metadata_value(&metadata, "filename").as_deref(), Some(name), "{metadata}");
    assert_eq!(metadata_value(&metadata, "filetype").as_deref(), Some("image/jpeg"), "{metadata}");
    let rec = tus.processed_and_identical(&key, &id, &bytes).await;
    if let Some(f) = rec.get("filename") {
        assert_eq!(f, name, "{rec}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

// --- in a browser, from another origin --------------------------------------------------------

/// A real PNG of `w` x `h` noisy pixels: it hardly compresses, so it is about `3 w h` bytes.
fn noisy_png(w: u32, h: u32) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let img = image::RgbImage::from_fn(w, h, |px, py| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = x.to_le_bytes();
        image::Rgb([(px * 255 / w) as u8 ^ n[0], (py * 255 / h) as u8 ^ n[1], n[2]])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Runs `cmd` to its end, or SIGTERM (then SIGKILL) after `within`; stdout and stderr.
fn run_for(mut cmd: Command, within: Duration, dir: &Path) -> (std::process::ExitStatus, String, String) {
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    cmd.stdout(std::fs::File::create(&out).unwrap()).stderr(std::fs::File::create(&err).unwrap());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            // SIGTERM first: the script then quits the browser.
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {within:?}; stderr:\n{}", std::fs::read_to_string(&err).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status, std::fs::read_to_string(out).unwrap(), std::fs::read_to_string(err).unwrap())
}

/// tus-js-client's browser bundle in a real headless Chromium (`tests/peers/tus_browser.py`),
/// on a page of another origin, uploads a PNG in 64 KiB chunks to a server whose
/// `cors_origins` lists that origin: the page reads `Location`, every `Upload-Offset` and
/// the final `Imagelake-Image` (exposed headers), and the original is byte-identical. A
/// server that lists another origin (`localhost` instead of `127.0.0.1`, same port) is
/// refused by the browser at the preflight: tus-js-client's onError, nothing created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_in_a_browser_from_another_origin() {
    let bundle = PathBuf::from(node_path()).join("tus-js-client/dist/tus.min.js");
    assert!(bundle.is_file(), "{} is missing: run scripts/install.sh", bundle.display());
    // The page's origin: a free port now, the script's page server on it in a moment.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let origin = format!("http://127.0.0.1:{port}");
    let listing = |o: &str| format!("[\"{o}\"]");
    let (server, refusing) = tokio::join!(
        Setup::new(Backend::Embedded).env("IMAGELAKE_HTTP__CORS_ORIGINS", &listing(&origin)).start(),
        Setup::new(Backend::Embedded).env("IMAGELAKE_HTTP__CORS_ORIGINS", &listing(&format!("http://localhost:{port}"))).start(),
    );
    assert!(!server.url.starts_with(&origin), "the page must be of another origin than {}", server.url);
    let (key, other_key) = (server.keys.acme.clone(), refusing.keys.acme.clone());

    let dir = imagelake_core::testing::temp_dir("tus-browser");
    let bytes = noisy_png(400, 300);
    let chunk = 64 * 1024;
    assert!(bytes.len() > 4 * chunk, "{} bytes: too few chunks", bytes.len());
    let file = dir.join("upload.png");
    std::fs::write(&file, &bytes).unwrap();

    let mut cmd = Command::new(common::lake::python());
    cmd.arg(format!("{}/tests/peers/tus_browser.py", root()));
    cmd.args(["--port", &port.to_string(), "--chunk", &chunk.to_string()]).arg("--bundle").arg(&bundle).arg("--file").arg(&file);
    cmd.args(["--upload", &format!("{}/v1/uploads", server.url), &key]);
    cmd.args(["--upload", &format!("{}/v1/uploads", refusing.url), &other_key]);
    let run_dir = dir.clone();
    let (status, stdout, stderr) =
        tokio::task::spawn_blocking(move || run_for(cmd, Duration::from_secs(180), &run_dir)).await.unwrap();
    assert!(status.success(), "tus_browser.py failed ({status}):\n{stdout}\n{stderr}");
    let results: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let [allowed, refused] = &results[..] else { panic!("one result per upload expected:\n{stdout}\n{stderr}") };

    // Listed: the upload went through, chunk by chunk, and the page read tus's headers.
    assert_eq!(allowed["ok"], true, "the browser upload failed: {allowed:#}\nserver log:\n{}", server.log());
    assert_eq!(allowed["origin"], origin.as_str());
    assert_eq!(allowed["size"], bytes.len());
    let url = allowed["url"].as_str().unwrap();
    let id = id_of(url);
    let responses = allowed["responses"].as_array().unwrap();
    let (create, patches) = responses.split_first().unwrap();
    assert_eq!(create["method"], "POST", "{allowed:#}");
    assert_eq!(create["status"], 201, "{allowed:#}");
    assert_eq!(create["location"], format!("/v1/uploads/{id}"), "Location, read by the page: {allowed:#}");
    assert_eq!(url, format!("{}/v1/uploads/{id}", server.url));
    let want: Vec<String> = (1..=bytes.len().div_ceil(chunk)).map(|i| (i * chunk).min(bytes.len()).to_string()).collect();
    let offsets: Vec<&str> = patches.iter().map(|r| r["offset"].as_str().unwrap_or("(unreadable)")).collect();
    assert_eq!(offsets, want, "Upload-Offset after each PATCH, read by the page: {allowed:#}");
    assert!(patches.iter().all(|r| r["method"] == "PATCH" && r["status"] == 204), "{allowed:#}");
    let (last, before) = patches.split_last().unwrap();
    assert_eq!(last["image"], format!("/v1/images/{id}"), "the final PATCH's Imagelake-Image: {allowed:#}");
    assert!(before.iter().all(|r| r["image"].is_null()), "an image before the last chunk: {allowed:#}");
    let console = allowed["console"].as_array().unwrap();
    assert!(console.iter().all(|m| !m.as_str().unwrap().contains("CORS")), "{console:#?}");
    Tus::new(&server).processed_and_identical(&key, &id, &bytes).await;

    // Not listed: the preflight is refused, tus-js-client reports it, and nothing was made.
    assert_eq!(refused["ok"], false, "the browser uploaded to a server that does not list {origin}: {refused:#}");
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("failed to create upload"), "{refused:#}");
    assert_eq!(refused["responses"], serde_json::json!([]), "the page read an answer: {refused:#}");
    let console = refused["console"].as_array().unwrap();
    assert!(console.iter().any(|m| m.as_str().unwrap().contains("blocked by CORS policy")), "not CORS: {refused:#}");
    assert!(Tus::new(&refusing).images(&other_key).await.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

// --- the protocol's errors, with reqwest -----------------------------------------------------

async fn protocol_errors(backend: Backend) {
    let server = Server::with(backend).await;
    let key = server.keys.acme.clone();
    let tus = Tus::new(&server);
    let c = &tus.c;
    let bytes = std::fs::read(photo()).unwrap();
    let len = bytes.len() as u64;

    let res = c.http.request(reqwest::Method::OPTIONS, c.url("/v1/uploads")).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(header(&res, "tus-resumable"), "1.0.0");
    assert!(header(&res, "tus-version").split(',').any(|v| v.trim() == "1.0.0"));
    let ext = header(&res, "tus-extension");
    for e in ["creation", "creation-with-upload", "creation-defer-length", "termination", "expiration", "checksum"] {
        assert!(ext.split(',').any(|x| x.trim() == e), "{e} missing from {ext}");
    }
    assert!(header(&res, "tus-checksum-algorithm").split(',').any(|a| a.trim() == "sha256"));
    let max: u64 = header(&res, "tus-max-size").parse().unwrap();

    // Creation: no Tus-Resumable, a length over the maximum.
    let res = c.http.post(c.url("/v1/uploads")).bearer_auth(&key).header("upload-length", "10").send().await.unwrap();
    assert!(res.headers().contains_key("tus-version"));
    problem(res, 412, "tus_version").await;
    let res = c
        .http
        .post(c.url("/v1/uploads"))
        .bearer_auth(&key)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", (max + 1).to_string())
        .send()
        .await
        .unwrap();
    problem(res, 413, "payload_too_large").await;

    let url = tus.create(&key, len, &format!("filename {}", b64(b"bad.jpg"))).await;
    let res = tus.patch(&key, &url, 0, &bytes[..1000]).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(offset_of(&res), 1000);
    assert!(res.headers().contains_key("upload-expires"));

    // A wrong offset: 409, nothing stored.
    let res = tus.patch(&key, &url, 0, &bytes[..1000]).send().await.unwrap();
    problem(res, 409, "offset_mismatch").await;
    let res = tus.patch(&key, &url, 2000, &bytes[2000..3000]).send().await.unwrap();
    problem(res, 409, "offset_mismatch").await;
    assert_eq!(tus.offset(&key, &url).await, 1000);

    // A checksum that does not match the chunk: 460, the chunk dropped.
    let chunk = &bytes[1000..2000];
    let wrong = b64(&sha2::Sha256::digest(&bytes[1001..2001]));
    let res = tus.patch(&key, &url, 1000, chunk).header("upload-checksum", format!("sha256 {wrong}")).send().await.unwrap();
    problem(res, 460, "checksum_mismatch").await;
    assert_eq!(tus.offset(&key, &url).await, 1000, "a chunk with a wrong checksum was kept");
    let res = tus.patch(&key, &url, 1000, chunk).header("upload-checksum", format!("md5 {wrong}")).send().await.unwrap();
    problem(res, 400, "bad_checksum_algorithm").await;
    assert_eq!(tus.offset(&key, &url).await, 1000);
    let right = b64(&sha2::Sha256::digest(chunk));
    let res = tus.patch(&key, &url, 1000, chunk).header("upload-checksum", format!("sha256 {right}")).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(offset_of(&res), 2000);

    // Past Upload-Length: 413. (On a connection of its own: the server answers before it
    // reads the body, see `refusal_keeps_the_connection_usable`.)
    let mut past = bytes[2000..].to_vec();
    past.push(0);
    let one_off = Tus { c: common::Client { base: c.base.clone(), http: reqwest::Client::new() } };
    problem(one_off.patch(&key, &url, 2000, &past).send().await.unwrap(), 413, "payload_too_large").await;
    assert_eq!(tus.offset(&key, &url).await, 2000, "a PATCH past Upload-Length stored some of it");

    // No Tus-Resumable, another version, a wrong Content-Type (each header sent once:
    // reqwest's `header` adds, it does not replace).
    let chunk = &bytes[2000..3000];
    for (version, content_type, status, code) in [
        (None, OCTETS, 412, "tus_version"),
        (Some("0.2.2"), OCTETS, 412, "tus_version"),
        (Some("1.0.0"), "image/jpeg", 415, "content_type"),
        (Some("1.0.0"), "application/octet-stream", 415, "content_type"),
    ] {
        let mut req = c.http.patch(&url).bearer_auth(&key).header("content-type", content_type).header("upload-offset", "2000");
        if let Some(v) = version {
            req = req.header("tus-resumable", v);
        }
        let res = req.body(chunk.to_vec()).send().await.unwrap();
        if status == 412 {
            assert_eq!(header(&res, "tus-version"), "1.0.0");
        }
        problem(res, status, code).await;
    }
    assert_eq!(tus.offset(&key, &url).await, 2000);

    // Nothing of it is an image; the upload is still there, and DELETE ends it.
    assert!(tus.images(&key).await.is_empty(), "a partial upload became an image");
    let res = c.http.delete(&url).bearer_auth(&key).header("tus-resumable", "1.0.0").send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(tus.head(&key, &url).await.status(), 404);
    problem(tus.patch(&key, &url, 2000, &bytes[2000..3000]).send().await.unwrap(), 404, "not_found").await;
    common::checks::assert_nothing_stored(&server, "acme").await;

    // An upload that completes with a body that is not an image: 415, gone.
    let junk = b"not an image at all, only text".repeat(100);
    let url = tus.create(&key, junk.len() as u64, "").await;
    let res = tus.patch(&key, &url, 0, &junk).send().await.unwrap();
    problem(res, 415, "unsupported_media_type").await;
    assert_eq!(tus.head(&key, &url).await.status(), 404);
    assert!(tus.images(&key).await.is_empty());

    // Repeating the final PATCH of a good upload makes no second image.
    let url = tus.create(&key, len, "").await;
    let res = tus.patch(&key, &url, 0, &bytes).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let id = id_of(&url);
    assert_eq!(header(&res, "imagelake-image"), format!("/v1/images/{id}"));
    let res = tus.patch(&key, &url, len, b"").send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(header(&res, "imagelake-image"), format!("/v1/images/{id}"));
    tus.processed_and_identical(&key, &id, &bytes).await;
    assert_eq!(tus.images(&key).await, vec![id]);
}

/// A PATCH refused before its body is read (413 past Upload-Length, 409 at a wrong
/// offset) must not break the client's next request on the same keep-alive connection:
/// the server either reads the rest of the body or says `Connection: close`.
async fn refusal_keeps_the_connection_usable(backend: Backend) {
    let server = Server::with(backend).await;
    let key = server.keys.acme.clone();
    let tus = Tus::new(&server);
    let url = tus.create(&key, 100_000, "").await;
    let body = vec![7u8; 2 * 1024 * 1024];
    for round in 0..10 {
        let (offset, status) = if round % 2 == 0 { (0, 413) } else { (5, 409) };
        let res = tus.patch(&key, &url, offset, &body).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status);
        let closes = res.headers().get("connection").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let _ = res.bytes().await;
        match tus.c.http.head(&url).bearer_auth(&key).header("tus-resumable", "1.0.0").send().await {
            Ok(head) => assert_eq!(head.status(), 200),
            Err(e) => panic!(
                "round {round}: the request after a {status} failed on the reused connection ({e:?}); \
                 the {status} answer {} Connection: close",
                if closes { "had" } else { "did not have" }
            ),
        }
    }
}

/// Another customer's upload URL is not found, whatever the method; the upload is untouched.
async fn another_customers_upload(backend: Backend) {
    let server = Server::with(backend).await;
    let (acme, globex) = (server.keys.acme.clone(), server.keys.globex.clone());
    let tus = Tus::new(&server);
    let bytes = std::fs::read(photo()).unwrap();
    let url = tus.create(&acme, bytes.len() as u64, "").await;
    assert_eq!(tus.patch(&acme, &url, 0, &bytes[..5000]).send().await.unwrap().status(), 204);

    assert_eq!(tus.head(&globex, &url).await.status(), 404);
    problem(tus.patch(&globex, &url, 5000, &bytes[5000..]).send().await.unwrap(), 404, "not_found").await;
    let res = tus.c.http.delete(&url).bearer_auth(&globex).header("tus-resumable", "1.0.0").send().await.unwrap();
    problem(res, 404, "not_found").await;
    assert_eq!(tus.offset(&acme, &url).await, 5000);
    assert!(tus.images(&globex).await.is_empty());

    let res = tus.patch(&acme, &url, 5000, &bytes[5000..]).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let id = id_of(&url);
    tus.processed_and_identical(&acme, &id, &bytes).await;
    assert_eq!(tus.c.get(&globex, &format!("/v1/images/{id}")).send().await.unwrap().status(), 404);
}

/// An upload left alone past `[ingest] upload_expiry` is gone, and never becomes an image.
async fn expired_upload(backend: Backend) {
    let server = Setup::new(backend).toml("[ingest]\nupload_expiry = \"2s\"").start().await;
    let key = server.keys.acme.clone();
    let tus = Tus::new(&server);
    let bytes = std::fs::read(photo()).unwrap();
    let url = tus.create(&key, bytes.len() as u64, "").await;
    let res = tus.patch(&key, &url, 0, &bytes[..4096]).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let expires = header(&res, "upload-expires");
    assert!(expires.ends_with(" GMT"), "not an RFC 7231 date: {expires}");
    tokio::time::sleep(Duration::from_millis(3500)).await;

    let status = tus.head(&key, &url).await.status().as_u16();
    assert!(status == 404 || status == 410, "HEAD of an expired upload: {status}");
    let res = tus.patch(&key, &url, 4096, &bytes[4096..]).send().await.unwrap();
    let code = if res.status() == 410 { "upload_expired" } else { "not_found" };
    problem(res, if code == "upload_expired" { 410 } else { 404 }, code).await;
    assert!(tus.images(&key).await.is_empty(), "an expired upload became an image");
}

// --- direct to S3 ---------------------------------------------------------------------------

/// `POST /v1/uploads/direct`, plain PUTs of the parts to their presigned URLs, complete.
/// Returns the completion's answer and the upload id.
async fn direct(server: &Server, key: &str, body: &[u8], content_type: &str, declared: u64) -> (reqwest::Response, String) {
    let c = server.client();
    let res = c
        .http
        .post(c.url("/v1/uploads/direct"))
        .bearer_auth(key)
        .json(&serde_json::json!({ "size": declared, "filename": "direct.jpg", "content_type": content_type }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap_or_default());
    let plan: serde_json::Value = res.json().await.unwrap();
    let id = plan["id"].as_str().unwrap().to_string();
    let part_size = plan["part_size"].as_u64().unwrap() as usize;
    let parts = plan["parts"].as_array().unwrap();
    assert_eq!(parts.len(), (declared as usize).div_ceil(part_size), "{plan}");
    assert!(plan["expires_at"].as_str().is_some(), "{plan}");
    let plain = reqwest::Client::new();
    let mut done = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(part["number"], i + 1);
        let slice = &body[(i * part_size).min(body.len())..((i + 1) * part_size).min(body.len())];
        let res = plain.put(part["url"].as_str().unwrap()).body(slice.to_vec()).send().await.unwrap();
        assert_eq!(res.status(), 200, "PUT part {}: {}", i + 1, res.text().await.unwrap_or_default());
        done.push(serde_json::json!({ "number": i + 1, "etag": header(&res, "etag") }));
    }
    let complete = plan["complete"].as_str().unwrap();
    assert_eq!(complete, format!("/v1/uploads/direct/{id}/complete"));
    let res = c.http.post(c.url(complete)).bearer_auth(key).json(&serde_json::json!({ "parts": done })).send().await.unwrap();
    (res, id)
}

async fn direct_upload(backend: Backend) {
    let server = Server::with(backend).await;
    let key = server.keys.acme.clone();
    let tus = Tus::new(&server);
    let c = &tus.c;
    if backend == Backend::Embedded {
        let res = c.http.post(c.url("/v1/uploads/direct")).bearer_auth(&key).json(&serde_json::json!({ "size": 1000 })).send();
        problem(res.await.unwrap(), 501, "not_implemented").await;
        return;
    }
    // The largest corpus photograph: more than one part if the part size allows.
    let file = corpus_jpeg(10_000_000, 40_000_000);
    let bytes = std::fs::read(&file).unwrap();
    let (res, id) = direct(&server, &key, &bytes, "image/jpeg", bytes.len() as u64).await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap_or_default());
    assert_eq!(header(&res, "location"), format!("/v1/images/{id}"));
    let rec: serde_json::Value = res.json().await.unwrap();
    assert_eq!(rec["id"], id.as_str());
    tus.processed_and_identical(&key, &id, &bytes).await;

    // Random bytes declared as a JPEG: 415 on complete, and the object is gone.
    let globex = server.keys.globex.clone();
    let mut noise = vec![0u8; 3 * 1024 * 1024 + 17];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in &mut noise {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let (res, id) = direct(&server, &globex, &noise, "image/jpeg", noise.len() as u64).await;
    problem(res, 415, "unsupported_media_type").await;
    let store = server.store().await;
    assert!(store.head(&original_key("globex", &id)).await.unwrap().is_none(), "the non-image is still stored");
    assert!(tus.images(&globex).await.is_empty());
    common::checks::assert_nothing_stored(&server, "globex").await;

    // Fewer bytes than declared: 400 size_mismatch.
    let (res, _) = direct(&server, &globex, &bytes[..bytes.len() - 100], "image/jpeg", bytes.len() as u64).await;
    problem(res, 400, "size_mismatch").await;
    assert!(tus.images(&globex).await.is_empty());
}
