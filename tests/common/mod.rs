//! Test harness: the real `imagelake` binary on a generated configuration, on the
//! embedded default or against Garage and the SQS server (exported by `scripts/test`).

#![allow(dead_code)]

pub mod checks;
pub mod cli;
pub mod deploy;
pub mod lake;
pub mod proxy;

/// `on_every_backend!(case_a, case_b)`: each `async fn case(backend: Backend)` of the file
/// becomes three tests: `embedded::case` (local directory, embedded queue, SQLite),
/// `garage_and_sqs::case` (Garage, the SQS server, SQLite) and `garage_sqs_postgres::case`
/// (Garage, the SQS server, PostgreSQL).
#[allow(unused_macros)]
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::Backend::Embedded).await } )*
        }
        mod garage_and_sqs {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::Backend::Servers).await } )*
        }
        mod garage_sqs_postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::Backend::ServersPostgres).await } )*
        }
    };
}

use imagelake_core::auth::{generate_key, hash_key};
use imagelake_core::queue::SqsQueue;
use imagelake_core::store::{LocalStore, S3Options, S3Store, SharedStore};
use imagelake_core::{ids, testing};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Local directory, embedded queue, SQLite.
    Embedded,
    /// Garage, the SQS server, SQLite.
    Servers,
    /// Garage, the SQS server, PostgreSQL.
    ServersPostgres,
}

impl Backend {
    /// Whether objects and jobs go to Garage and the SQS server.
    pub fn servers(self) -> bool {
        self != Backend::Embedded
    }
}

pub struct Keys {
    pub acme: String,
    pub globex: String,
    /// An analyst of every customer (`all_customers = true`).
    pub analyst: String,
    /// An analyst of `acme` only.
    pub acme_analyst: String,
    pub admin: String,
}

pub struct Server {
    pub url: String,
    pub keys: Keys,
    pub data_dir: PathBuf,
    pub config_file: PathBuf,
    pub backend: Backend,
    /// The metadata database this server uses.
    pub database_url: String,
    /// The S3 key prefix this server writes under (Servers only).
    pub prefix: String,
    child: Option<Child>,
    pub stdout_lines: Arc<std::sync::Mutex<Vec<String>>>,
    /// The environment the server started with (the setup's, and Garage's credentials):
    /// [`Server::restart`] and the test's own `imagelake` commands use it.
    pub env: Vec<(String, String)>,
}

/// Builds the configuration text of a server.
pub struct Setup {
    pub backend: Backend,
    pub extra: String,
    pub env: Vec<(String, String)>,
}

impl Setup {
    pub fn new(backend: Backend) -> Self {
        Self { backend, extra: String::new(), env: Vec::new() }
    }
    /// Adds TOML (top-level keys must come before any section: use env for those).
    pub fn toml(mut self, text: &str) -> Self {
        self.extra.push_str(text);
        self.extra.push('\n');
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    pub async fn start(self) -> Server {
        Server::start(self).await
    }
}

fn key_entry(key: &str, customer: &str, role: &str) -> String {
    format!("[[keys]]\nsha256 = \"{}\"\ncustomer = \"{customer}\"\nrole = \"{role}\"\n", hash_key(key))
}

impl Server {
    pub async fn embedded() -> Server {
        Setup::new(Backend::Embedded).start().await
    }

    pub async fn with(backend: Backend) -> Server {
        Setup::new(backend).start().await
    }

    async fn start(setup: Setup) -> Server {
        let data_dir = testing::temp_dir("server");
        let keys = Keys {
            acme: generate_key(),
            globex: generate_key(),
            analyst: generate_key(),
            acme_analyst: generate_key(),
            admin: generate_key(),
        };
        let mut text = String::from("listen = \"127.0.0.1:0\"\n");
        text.push_str(&format!("data_dir = {:?}\n", data_dir.display().to_string()));
        let prefix = format!("run-{}", ids::new_compact_id());
        let mut env: Vec<(String, String)> = setup.env.clone();
        let database_url = match setup.backend {
            Backend::ServersPostgres => testing::postgres_database().await,
            _ => format!("sqlite://{}", data_dir.join("imagelake.db").display()),
        };
        if setup.backend.servers() {
            let s3 = testing::s3_options();
            let vt = 30;
            let q =
                SqsQueue::create(testing::sqs_options(Duration::from_secs(vt), 5), &format!("jobs-{}", ids::new_compact_id()))
                    .await
                    .expect("create SQS queues");
            text.push_str(&format!(
                "[storage]\nbackend = \"s3\"\nbucket = {:?}\nendpoint = {:?}\nregion = {:?}\nforce_path_style = true\nprefix = {:?}\n",
                s3.bucket,
                s3.endpoint.clone().unwrap(),
                s3.region.clone().unwrap(),
                prefix
            ));
            text.push_str(&format!(
                "[queue]\nbackend = \"sqs\"\nqueue_url = {:?}\ndead_letter_url = {:?}\nendpoint = {:?}\nregion = {:?}\nvisibility_timeout = \"{vt}s\"\nwait = \"1s\"\n",
                q.queue_url(),
                q.dead_letter_url(),
                std::env::var("IMAGELAKE_TEST_SQS_ENDPOINT").unwrap(),
                std::env::var("IMAGELAKE_TEST_SQS_REGION").unwrap(),
            ));
            let (id, secret) = s3.credentials.unwrap();
            env.push(("AWS_ACCESS_KEY_ID".into(), id));
            env.push(("AWS_SECRET_ACCESS_KEY".into(), secret));
        } else {
            text.push_str("[queue]\nwait = \"1s\"\n");
        }
        if setup.backend == Backend::ServersPostgres {
            text.push_str(&format!("[database]\nurl = {database_url:?}\n"));
        }
        text.push_str(&setup.extra);
        text.push_str(&key_entry(&keys.acme, "acme", "uploader"));
        text.push_str(&key_entry(&keys.globex, "globex", "uploader"));
        text.push_str(&key_entry(&keys.analyst, "acme", "analyst"));
        text.push_str("all_customers = true\n");
        text.push_str(&key_entry(&keys.acme_analyst, "acme", "analyst"));
        text.push_str(&key_entry(&keys.admin, "ops", "admin"));
        let config_file = data_dir.join("imagelake.toml");
        std::fs::write(&config_file, text).unwrap();
        let mut server = Server {
            url: String::new(),
            keys,
            data_dir,
            config_file,
            backend: setup.backend,
            database_url,
            prefix,
            child: None,
            stdout_lines: Default::default(),
            env: env.clone(),
        };
        server.spawn(&env).await;
        server
    }

    /// Starts the process again with the environment it first started with.
    pub async fn restart(&mut self) {
        let env = self.env.clone();
        self.spawn(&env).await;
    }

    /// Starts (or restarts) the process on the same configuration and data.
    pub async fn spawn(&mut self, env: &[(String, String)]) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_imagelake"));
        cmd.args(["serve", "--config"]).arg(&self.config_file).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.env_remove("IMAGELAKE_CONFIG").env("IMAGELAKE_LOG", "info,aws=warn");
        if !self.url.is_empty() {
            // Keep the port across restarts: clients and tests hold the URL.
            cmd.env("IMAGELAKE_LISTEN", self.url.trim_start_matches("http://"));
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn imagelake");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = self.data_dir.join("server.log");
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(f, "{line}");
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = self.stdout_lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("imagelake listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "server did not start; log:\n{}",
                std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
            )
        });
        self.url = url;
        self.child = Some(child);
        let client = reqwest::Client::new();
        let start = Instant::now();
        while client.get(format!("{}/healthz", self.url)).send().await.is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "healthz never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe_kill(c.id(), "TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < within, "server did not exit within {within:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// The object store this server writes to, for checking what is (not) there.
    pub async fn store(&self) -> SharedStore {
        match self.backend {
            Backend::Embedded => Arc::new(LocalStore::open(self.data_dir.join("store")).unwrap()),
            Backend::Servers | Backend::ServersPostgres => {
                let o = S3Options { prefix: self.prefix.clone(), ..testing::s3_options() };
                Arc::new(S3Store::connect(o).await)
            }
        }
    }

    /// The metadata database this server uses, for checking what is (not) recorded.
    pub async fn meta(&self) -> imagelake_core::meta::SharedMeta {
        let db = imagelake_core::meta::SqlMetadata::connect(&self.database_url, 4, Duration::from_secs(10)).await.unwrap();
        Arc::new(db)
    }

    pub fn client(&self) -> Client {
        Client { base: self.url.clone(), http: reqwest::Client::new() }
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A thin HTTP client for the API.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(key)
    }

    pub async fn upload(&self, key: &str, body: Vec<u8>, content_type: &str) -> reqwest::Response {
        self.http
            .post(self.url("/v1/images"))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Polls the record until `status` is not `uploaded`/`processing`.
    pub async fn wait_done(&self, key: &str, id: &str, within: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let r: serde_json::Value = self.get(key, &format!("/v1/images/{id}")).send().await.unwrap().json().await.unwrap();
            let status = r["status"].as_str().unwrap_or_default().to_string();
            if status == "processed" || status == "failed" {
                return r;
            }
            assert!(start.elapsed() < within, "image {id} still {status} after {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A real JPEG/PNG/... of a smooth gradient with some detail, `w` x `h`.
pub fn image_bytes(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, ((x ^ y) & 0xff) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// The SHA-256 of a file, read in 1 MiB pieces (the files are hundreds of MiB).
pub fn sha256_file(path: &std::path::Path) -> String {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

// --- In-process platform for the lifecycle tests ----------------------------------------
// Ingest (on a loopback port) and the processor run inside the test process on a
// `Context` whose clock is a `ManualClock`, so that a test can move seven days ahead and
// call the lifecycle jobs through their library API.

pub struct InProcess {
    pub ctx: imagelake_core::app::Context,
    pub clock: imagelake_core::clock::ManualClock,
    pub client: Client,
    /// An uploader key of customer `acme`.
    pub key: String,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl InProcess {
    /// `capacity`: `capacity.bytes`; the store is Garage (own prefix) for `Backend::Servers`,
    /// the queue is always the embedded one.
    pub async fn start(backend: Backend, capacity: Option<u64>) -> InProcess {
        use imagelake_core::app::Context;
        use imagelake_core::clock::{ManualClock, SharedClock};
        use imagelake_core::config::{Config, KeyConfig};
        use imagelake_core::lake::LakeWriter;
        use imagelake_core::usage::UsageGauge;
        let mut config = Config { data_dir: testing::temp_dir("lifecycle"), ..Config::default() };
        config.queue.wait = imagelake_core::units::Dur(Duration::from_millis(200));
        config.processor.concurrency = 2;
        if let Some(c) = capacity {
            config.capacity.bytes = imagelake_core::units::ByteSize(c);
        }
        let key = generate_key();
        config.keys.push(KeyConfig {
            sha256: hash_key(&key),
            customer: "acme".into(),
            role: imagelake_core::auth::Role::Uploader,
            all_customers: false,
        });
        let mut ctx = Context::connect(config).await.expect("connect");
        // Whole seconds: expiry times compare exactly with `made + 7 days ± 1 s`.
        let now = chrono_now_secs();
        let clock = ManualClock::new(now);
        let shared: SharedClock = Arc::new(clock.clone());
        ctx.clock = shared.clone();
        if backend.servers() {
            let o = S3Options { prefix: format!("lifecycle-{}", ids::new_compact_id()), ..testing::s3_options() };
            ctx.store = Arc::new(S3Store::connect(o).await);
        }
        ctx.lake = LakeWriter::new(ctx.store.clone(), "lifecycle-test", ctx.config.lake.clone(), shared);
        ctx.usage = Arc::new(UsageGauge::new(ctx.config.capacity.bytes.0));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = imagelake_ingest::router().with_state(ctx.clone());
        let token = shutdown.clone();
        let mut tasks = vec![tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(async move { token.cancelled().await }).await;
        })];
        tasks.push(imagelake_processor::run(ctx.clone(), shutdown.child_token(), Duration::from_secs(5)));
        InProcess { ctx, clock, client: Client { base: url, http: reqwest::Client::new() }, key, shutdown, tasks }
    }

    /// Uploads `body` as acme and waits until it is processed; returns the record.
    pub async fn upload_processed(&self, body: Vec<u8>) -> serde_json::Value {
        let res = self.client.upload(&self.key, body, "image/jpeg").await;
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap_or_default());
        let rec: serde_json::Value = res.json().await.unwrap();
        let done = self.client.wait_done(&self.key, rec["id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(done["status"], "processed", "{done}");
        done
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

/// Now, truncated to the second.
pub fn chrono_now_secs() -> chrono::DateTime<chrono::Utc> {
    let n = chrono::Utc::now().timestamp();
    chrono::DateTime::from_timestamp(n, 0).unwrap()
}
