//! Configuration: one TOML file, every key overridable by an environment variable.
//!
//! `IMAGELAKE_LISTEN` and `IMAGELAKE_DATA_DIR` override the top-level keys;
//! `IMAGELAKE_<SECTION>__<KEY>` overrides `[section] key`. A value from the environment
//! is read as a TOML value when it parses as one (`5`, `true`, `"x"`), else as a string.
//! No file and no variables gives the embedded default: `./data`, `127.0.0.1:8080`.

use crate::auth::Role;
use crate::units::{ByteSize, Dur};
use crate::CoreError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration. See `README.md` for an annotated example.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    /// A second listener that serves only `/metrics` (and `/healthz`), for deployments that
    /// keep the metrics off the public port. `/metrics` is then not served on `listen`.
    pub metrics_listen: Option<String>,
    pub data_dir: PathBuf,
    /// On SIGTERM, how long in-flight uploads and jobs may take to finish.
    pub shutdown_grace: Dur,
    /// On SIGTERM, how long `/readyz` answers 503 `draining` while requests are still
    /// served, before the listener closes: behind a load balancer, longer than its health
    /// checks take to mark the process down (interval × fall), so no request is refused.
    pub shutdown_delay: Dur,
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub queue: QueueConfig,
    pub database: DatabaseConfig,
    pub keys: Vec<KeyConfig>,
    pub ingest: IngestConfig,
    pub processor: ProcessorConfig,
    pub lake: LakeConfig,
    pub retention: RetentionConfig,
    pub capacity: CapacityConfig,
    pub reporting: ReportingConfig,
    pub lifecycle: LifecycleConfig,
    pub webhooks: WebhookConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            metrics_listen: None,
            data_dir: PathBuf::from("./data"),
            shutdown_grace: Dur(Duration::from_secs(30)),
            shutdown_delay: Dur(Duration::ZERO),
            http: HttpConfig::default(),
            storage: StorageConfig::default(),
            queue: QueueConfig::default(),
            database: DatabaseConfig::default(),
            keys: Vec::new(),
            ingest: IngestConfig::default(),
            processor: ProcessorConfig::default(),
            lake: LakeConfig::default(),
            retention: RetentionConfig::default(),
            capacity: CapacityConfig::default(),
            reporting: ReportingConfig::default(),
            lifecycle: LifecycleConfig::default(),
            webhooks: WebhookConfig::default(),
        }
    }
}

/// The metadata database (`core::meta`): the embedded SQLite file `data_dir/imagelake.db`
/// when `url` is absent, else `postgres://user:pass@host:port/db` (add `?sslmode=require`
/// or `verify-full` for TLS).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: Option<String>,
    /// Connections in the pool (PostgreSQL; SQLite caps it at 64).
    pub max_connections: u32,
    /// How long a request waits to connect or for a free connection before it answers 503.
    pub connect_timeout: Dur,
    /// How long a job committed with its image may wait in the outbox before a sweeper
    /// sends it (the upload itself sends it at once; this covers a crash or a queue outage).
    pub outbox_retry: Dur,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 16,
            connect_timeout: Dur(Duration::from_secs(5)),
            outbox_retry: Dur(Duration::from_secs(10)),
        }
    }
}

/// The `callback_url` webhooks (see `core::webhook`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// The HMAC-SHA256 signing key. Empty: one is generated on first use and kept in
    /// `data_dir/webhook_secret`; set it when processors run on several hosts.
    pub secret: String,
    /// Deliver to loopback, private and link-local addresses too (tests only: off, a
    /// callback URL cannot make the server call into its own network).
    pub allow_private: bool,
    /// Delivery attempts, with exponential backoff from 1 s between them.
    pub max_attempts: u32,
    /// Time limit of one attempt.
    pub timeout: Dur,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self { secret: String::new(), allow_private: false, max_attempts: 6, timeout: Dur(Duration::from_secs(10)) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded default: a directory or an embedded queue under `data_dir`.
    #[default]
    Local,
    S3,
    Sqs,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `local` (a directory under `data_dir`) or `s3`.
    pub backend: Backend,
    pub bucket: Option<String>,
    /// A custom endpoint (Garage, MinIO); unset for AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// A key prefix inside the bucket (`prod/`), so that deployments can share a bucket.
    pub prefix: Option<String>,
    pub force_path_style: bool,
    /// Garage and some other S3 servers reject the SDK's default streaming checksums.
    /// `true` sets `request_checksum_calculation = WhenRequired`.
    pub checksum_when_required: bool,
    /// Bodies above this size are sent as a multipart upload.
    pub multipart_threshold: ByteSize,
    /// Size of one multipart part (S3 needs at least 5 MiB).
    pub part_size: ByteSize,
    /// Parts uploaded at once for one object.
    pub part_concurrency: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Local,
            bucket: None,
            endpoint: None,
            region: None,
            prefix: None,
            force_path_style: false,
            checksum_when_required: true,
            multipart_threshold: ByteSize(16 << 20),
            part_size: ByteSize(16 << 20),
            part_concurrency: 4,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// `local` (embedded, durable, under `data_dir/queue`) or `sqs`.
    pub backend: Backend,
    pub queue_url: Option<String>,
    pub dead_letter_url: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// A message received this many times without being acknowledged goes to the
    /// dead-letter queue.
    pub max_receives: u32,
    pub visibility_timeout: Dur,
    /// Long-poll wait of one receive.
    pub wait: Dur,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Local,
            queue_url: None,
            dead_letter_url: None,
            endpoint: None,
            region: None,
            max_receives: 5,
            visibility_timeout: Dur(Duration::from_secs(300)),
            wait: Dur(Duration::from_secs(20)),
        }
    }
}

/// One API key: only the SHA-256 of the key is stored.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub sha256: String,
    pub customer: String,
    pub role: Role,
    /// An analyst key that reads every customer's statistics (default: its own only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_customers: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    pub max_upload_bytes: ByteSize,
    /// How long an `Idempotency-Key` answer is remembered.
    pub idempotency_ttl: Dur,
    /// An upload whose body sends no byte for this long is aborted (`408 body_timeout`)
    /// and cleaned up, so that stalled clients do not hold buffers and connections.
    pub body_idle_timeout: Dur,
    /// The longest an upload's body may take; a longer one is aborted (`408
    /// upload_too_slow`). Reconcile keeps an original whose upload started within this
    /// time (plus `orphan_age`), so `[lifecycle] multipart_age` must exceed it.
    pub max_upload_time: Dur,
    /// Uploads streaming at once in this process; more answer `503 busy` with `Retry-After`.
    pub max_concurrent_uploads: usize,
    /// Uploads streaming at once with one key; more answer `429 too_many_uploads`.
    pub max_uploads_per_key: usize,
    /// A resumable upload (tus, direct) that receives nothing for this long expires: the
    /// lifecycle removes its bytes and aborts its multipart upload (`Upload-Expires`).
    pub upload_expiry: Dur,
    /// Incomplete resumable uploads one customer may hold; more answer `429 too_many_uploads`.
    pub max_open_uploads: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: ByteSize(10 << 30),
            idempotency_ttl: Dur(Duration::from_secs(86_400)),
            body_idle_timeout: Dur(Duration::from_secs(60)),
            max_upload_time: Dur(Duration::from_secs(6 * 3600)),
            max_concurrent_uploads: 256,
            max_uploads_per_key: 32,
            upload_expiry: Dur(Duration::from_secs(86_400)),
            max_open_uploads: 1000,
        }
    }
}

/// Limits of the HTTP server every service runs (`core::serve`, `core::http`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// A connection that has not sent a whole request head in this time is closed (a
    /// client that opens connections and sends nothing, or one byte a minute).
    pub header_timeout: Dur,
    /// Open connections at most; past it, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Requests per second per API key on the API routes (not on `/healthz`, `/readyz`,
    /// `/metrics`); more answer `429 rate_limited` with `Retry-After`. 0 turns it off.
    pub rate_limit: u32,
    /// Requests a key may send at once above the rate before it is limited.
    pub rate_burst: u32,
    /// Web origins (`https://app.example.com`, or `"*"` for any) whose pages may call the
    /// API from a browser (CORS): tus clients such as Uppy and tus-js-client read the
    /// upload headers through it. Empty (the default): same-origin pages only.
    pub cors_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_timeout: Dur(Duration::from_secs(30)),
            max_connections: 4096,
            rate_limit: 1000,
            rate_burst: 2000,
            cors_origins: Vec::new(),
        }
    }
}

/// Encoding of a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Baseline JPEG (no alpha; transparent sources are flattened onto white).
    Jpeg,
    /// PNG, lossless; keeps alpha.
    Png,
    /// Lossy WebP at the preset's quality; keeps alpha. Animated sources stay animated.
    WebP,
    /// AVIF (AV1 in HEIF, libheif with libaom) at the preset's quality and speed; keeps
    /// alpha. Animated sources get their first frame.
    Avif,
}

impl OutputFormat {
    /// File extension without the dot: `jpg`, `png`, `webp`.
    pub fn extension(&self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpg",
            OutputFormat::Png => "png",
            OutputFormat::WebP => "webp",
            OutputFormat::Avif => "avif",
        }
    }

    /// The format whose [`OutputFormat::extension`] is `ext` (`jpeg` is taken for `jpg`).
    pub fn from_extension(ext: &str) -> Option<Self> {
        OutputFormat::ALL.into_iter().find(|f| f.extension() == ext || f.as_str() == ext)
    }

    /// Every format, in the order of this enum.
    pub const ALL: [OutputFormat; 4] = [OutputFormat::Jpeg, OutputFormat::Png, OutputFormat::WebP, OutputFormat::Avif];

    /// MIME type, for `Content-Type` headers.
    pub fn content_type(&self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Png => "image/png",
            OutputFormat::WebP => "image/webp",
            OutputFormat::Avif => "image/avif",
        }
    }

    /// Lower-case name, as in the configuration: `jpeg`, `png`, `webp`, `avif`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Png => "png",
            OutputFormat::WebP => "webp",
            OutputFormat::Avif => "avif",
        }
    }
}

impl std::fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a variant fills its `width` x `height` box. Neither mode ever upscales.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// The whole image, fitted inside the box (aspect ratio kept).
    #[default]
    Contain,
    /// The box filled, the image centred and the overflow cropped (aspect ratio kept).
    Cover,
}

/// One variant the processor can make.
///
/// In the configuration a preset names one `format`, or several `formats` in order of
/// preference (`formats = ["avif", "webp", "jpeg"]`). Each format is encoded from the same
/// resized pixels and stored as its own object; a download of the variant gets the first
/// stored format the request's `Accept` header allows.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(try_from = "PresetSpec")]
pub struct VariantPreset {
    /// Variant name, e.g. `thumb`; used in URLs and storage keys.
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// The encodings, in order of preference; never empty, no format twice.
    pub formats: Vec<OutputFormat>,
    pub fit: Fit,
    /// Encoder quality 1..=100 (JPEG, WebP and AVIF; ignored for PNG); clamped.
    pub quality: u8,
    /// AVIF encoder speed, 0 (slowest, smallest files) to 9 (fastest); libaom's `cpu-used`.
    pub speed: u8,
}

/// A preset as written in the configuration: `format` or `formats`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetSpec {
    name: String,
    width: u32,
    height: u32,
    #[serde(default)]
    format: Option<OutputFormat>,
    #[serde(default)]
    formats: Vec<OutputFormat>,
    #[serde(default)]
    fit: Fit,
    #[serde(default = "default_quality")]
    quality: u8,
    #[serde(default = "default_speed")]
    speed: u8,
}

impl TryFrom<PresetSpec> for VariantPreset {
    type Error = String;

    fn try_from(p: PresetSpec) -> Result<Self, String> {
        let formats = match (p.format, p.formats) {
            (Some(f), v) if v.is_empty() => vec![f],
            (None, v) if !v.is_empty() => v,
            (Some(_), _) => return Err(format!("preset {:?}: give `format` or `formats`, not both", p.name)),
            (None, _) => return Err(format!("preset {:?}: `format` (or a non-empty `formats`) is required", p.name)),
        };
        if let Some(dup) = formats.iter().enumerate().find(|(i, f)| formats[..*i].contains(f)) {
            return Err(format!("preset {:?}: format {} listed twice", p.name, dup.1));
        }
        if p.speed > 9 {
            return Err(format!("preset {:?}: speed must be 0-9, not {}", p.name, p.speed));
        }
        Ok(Self { name: p.name, width: p.width, height: p.height, formats, fit: p.fit, quality: p.quality, speed: p.speed })
    }
}

impl VariantPreset {
    /// A preset of one format, at the default AVIF speed.
    pub fn new(name: &str, width: u32, height: u32, format: OutputFormat, fit: Fit, quality: u8) -> Self {
        Self { name: name.into(), width, height, formats: vec![format], fit, quality, speed: default_speed() }
    }

    /// The preferred format: the first of [`VariantPreset::formats`].
    pub fn format(&self) -> OutputFormat {
        self.formats[0]
    }
}

fn default_speed() -> u8 {
    6
}

fn default_quality() -> u8 {
    80
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorConfig {
    /// Jobs processed at once; 0 means one per CPU.
    pub concurrency: usize,
    pub variants: Vec<VariantPreset>,
    /// Images whose header declares more pixels than this are refused at upload (and
    /// fail with `image_too_large` if they reach the processor). Default 2^32, which
    /// admits JPEG's 65535 x 65535: the decoders stream, so memory follows the largest
    /// preset, not the source.
    pub max_pixels: u64,
    /// Frames x pixels an animated GIF or WebP may have when a variant keeps every frame
    /// (a WebP one); more fail with `decode_limit` before any frame is decoded.
    pub max_animation_pixels: u64,
    /// Memory the jobs in flight may hold together. Each job reserves its estimated peak
    /// before it decodes and waits while the others hold the rest; a job whose estimate
    /// alone is over the budget fails at once with `decode_limit`.
    pub memory_budget: ByteSize,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        use {Fit::*, OutputFormat::*};
        Self {
            concurrency: 0,
            variants: vec![
                VariantPreset::new("thumb", 120, 120, WebP, Cover, 80),
                VariantPreset::new("small", 160, 120, WebP, Contain, 80),
                VariantPreset::new("medium", 400, 300, Jpeg, Contain, 80),
                VariantPreset::new("web", 2048, 2048, WebP, Contain, 80),
            ],
            max_pixels: 1 << 32,
            max_animation_pixels: 1 << 30,
            memory_budget: ByteSize(2 << 30),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LakeConfig {
    pub flush_rows: usize,
    pub flush_bytes: ByteSize,
    pub flush_age: Dur,
    /// Target size of a compacted file.
    pub compact_target: ByteSize,
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            flush_rows: 100_000,
            flush_bytes: ByteSize(64 << 20),
            flush_age: Dur(Duration::from_secs(60)),
            compact_target: ByteSize(256 << 20),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Processed variants are deleted this long after they were made.
    pub processed: Dur,
    /// Originals are kept until deleted by their owner when unset.
    pub originals: Option<Dur>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { processed: Dur(Duration::from_secs(7 * 86_400)), originals: None }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapacityConfig {
    pub bytes: ByteSize,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        Self { bytes: ByteSize(100_000_000_000_000) }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportingConfig {
    pub query_timeout: Dur,
    /// How stale a cached answer may be.
    pub cache_ttl: Dur,
    /// Read the closed days from the lake's daily aggregates (`lake/agg_*`, made by the
    /// lifecycle's `aggregate` job; sql/facts.sql); false: every report reads the raw facts.
    /// (`rollups`, its name before version 0.18, is still accepted.)
    #[serde(alias = "rollups")]
    pub aggregates: bool,
}

impl Default for ReportingConfig {
    fn default() -> Self {
        Self { query_timeout: Dur(Duration::from_secs(30)), cache_ttl: Dur(Duration::from_secs(2)), aggregates: true }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    pub expire: String,
    pub usage: String,
    pub compact: String,
    pub aggregate: String,
    pub abort_multipart: String,
    pub reconcile: String,
    /// A job's lease lasts this long without renewal (renewed every third of it).
    pub lease_ttl: Dur,
    /// Reconcile: the share of originals and records checked, 0 < x <= 1 (1 = complete).
    pub reconcile_sample: f64,
    /// Reconcile: an original without a record is deleted only once older than this.
    pub orphan_age: Dur,
    /// Abort-multipart: uploads initiated longer ago than this are aborted.
    pub multipart_age: Dur,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        // tokio-cron-scheduler's six-field form: sec min hour day month weekday.
        Self {
            expire: "0 0 * * * *".into(),
            usage: "0 */15 * * * *".into(),
            // Hourly: the current day's small files too (closed days merged whole).
            compact: "0 5 * * * *".into(),
            // Closed days whose facts changed since their aggregates were made.
            aggregate: "0 */10 * * * *".into(),
            abort_multipart: "0 17 * * * *".into(),
            reconcile: "0 0 4 * * *".into(),
            lease_ttl: Dur(Duration::from_secs(300)),
            reconcile_sample: 1.0,
            orphan_age: Dur(Duration::from_secs(3600)),
            multipart_age: Dur(Duration::from_secs(86_400)),
        }
    }
}

impl Config {
    /// Reads `path` (if any) and applies the `IMAGELAKE_*` variables of `env`.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, CoreError> {
        let mut doc: toml::Table = match path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| CoreError::Config(format!("cannot read {}: {e}", p.display())))?;
                text.parse().map_err(|e| CoreError::Config(format!("{}: {e}", p.display())))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            apply_env(&mut doc, &name, &value)?;
        }
        let config: Config = toml::Value::Table(doc).try_into().map_err(|e: toml::de::Error| CoreError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// What the types cannot say: variant presets have distinct, URL-safe names and
    /// non-empty boxes; the lifecycle's sample and lease times are coherent.
    fn validate(&self) -> Result<(), CoreError> {
        let bad = |m: String| Err(CoreError::Config(format!("[processor] variants: {m}")));
        let variants = &self.processor.variants;
        for (i, v) in variants.iter().enumerate() {
            let safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
            if v.name.is_empty() || v.name.len() > 64 || !v.name.chars().all(safe) {
                return bad(format!("name {:?}: use 1-64 letters, digits, '-' or '_'", v.name));
            }
            if variants[..i].iter().any(|o| o.name == v.name) {
                return bad(format!("name {:?} is used twice", v.name));
            }
            if v.width == 0 || v.height == 0 || v.width > 16_384 || v.height > 16_384 {
                return bad(format!("{:?}: width and height must be 1-16384, not {}x{}", v.name, v.width, v.height));
            }
        }
        let l = &self.lifecycle;
        if !(l.reconcile_sample > 0.0 && l.reconcile_sample <= 1.0) {
            return Err(CoreError::Config(format!("[lifecycle] reconcile_sample: {} is not in (0, 1]", l.reconcile_sample)));
        }
        if l.lease_ttl.0 < Duration::from_secs(3) {
            return Err(CoreError::Config("[lifecycle] lease_ttl must be at least 3s (it is renewed every third of it)".into()));
        }
        // Floors below which a setting is surely a mistake (a unit missed, a test value).
        let floors: [(&str, Duration, Duration); 8] = [
            ("[retention] processed", self.retention.processed.0, Duration::from_secs(1)),
            ("[lifecycle] orphan_age", l.orphan_age.0, Duration::from_secs(60)),
            ("[lifecycle] multipart_age", l.multipart_age.0, Duration::from_secs(60)),
            ("[queue] visibility_timeout", self.queue.visibility_timeout.0, Duration::from_secs(1)),
            ("[ingest] idempotency_ttl", self.ingest.idempotency_ttl.0, Duration::from_secs(1)),
            ("[ingest] body_idle_timeout", self.ingest.body_idle_timeout.0, Duration::from_secs(1)),
            ("[ingest] max_upload_time", self.ingest.max_upload_time.0, Duration::from_secs(1)),
            ("[http] header_timeout", self.http.header_timeout.0, Duration::from_secs(1)),
        ];
        let counts = [
            ("[ingest] max_concurrent_uploads", self.ingest.max_concurrent_uploads),
            ("[ingest] max_uploads_per_key", self.ingest.max_uploads_per_key),
            ("[http] max_connections", self.http.max_connections),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(CoreError::Config(format!("{name} must be at least 1")));
        }
        if l.multipart_age.0 <= self.ingest.max_upload_time.0 {
            return Err(CoreError::Config(format!(
                "[lifecycle] multipart_age ({}) must be longer than [ingest] max_upload_time ({}): pending uploads would be aborted",
                humantime::format_duration(l.multipart_age.0),
                humantime::format_duration(self.ingest.max_upload_time.0)
            )));
        }
        if let Some(bad) = self.http.cors_origins.iter().find(|o| !crate::http::valid_origin(o)) {
            return Err(CoreError::Config(format!(
                "[http] cors_origins: `{bad}` is not an origin (scheme://host[:port], no path) nor \"*\""
            )));
        }
        if self.http.rate_limit > 0 && self.http.rate_burst == 0 {
            return Err(CoreError::Config("[http] rate_burst must be at least 1 when rate_limit is set".into()));
        }
        for (name, value, floor) in floors {
            if value < floor {
                return Err(CoreError::Config(format!(
                    "{name} is {}; it must be at least {}",
                    humantime::format_duration(value),
                    humantime::format_duration(floor)
                )));
            }
        }
        for k in &self.keys {
            crate::auth::validate_customer(&k.customer)
                .map_err(|m| CoreError::Config(format!("[[keys]] customer {:?}: {m}", k.customer)))?;
        }
        Ok(())
    }

    /// [`Config::load`] with the process environment.
    pub fn from_env(path: Option<&Path>) -> Result<Self, CoreError> {
        Self::load(path, std::env::vars())
    }

    pub fn storage_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.data_dir.join("queue")
    }
}

/// The top-level keys an `IMAGELAKE_<KEY>` variable can set.
const TOP_LEVEL: &[&str] = &["listen", "metrics_listen", "data_dir", "shutdown_grace", "shutdown_delay"];

/// Variables that are not configuration keys even though they share the prefix.
const NOT_CONFIG: &[&str] = &["IMAGELAKE_URL", "IMAGELAKE_KEY", "IMAGELAKE_CONFIG", "IMAGELAKE_LOG"];

fn apply_env(doc: &mut toml::Table, name: &str, value: &str) -> Result<(), CoreError> {
    let Some(rest) = name.strip_prefix("IMAGELAKE_") else { return Ok(()) };
    if NOT_CONFIG.contains(&name) || rest.starts_with("TEST_") {
        return Ok(());
    }
    let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
    if path.len() == 1 && !TOP_LEVEL.contains(&path[0].as_str()) {
        // Other tools share the prefix (IMAGELAKE_CACHE for the scripts, say): a single
        // segment names configuration only if it is one of the top-level keys.
        return Ok(());
    }
    if path.iter().any(|p| p.is_empty()) || path.len() > 2 {
        return Err(CoreError::Config(format!("{name}: expected IMAGELAKE_KEY or IMAGELAKE_SECTION__KEY")));
    }
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let (table, key) = if path.len() == 2 {
        let section = doc.entry(path[0].clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(t) = section else {
            return Err(CoreError::Config(format!("{name}: `{}` is not a section", path[0])));
        };
        (t, &path[1])
    } else {
        (&mut *doc, &path[0])
    };
    table.insert(key.clone(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn zero_configuration_is_the_embedded_default() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.storage.backend, Backend::Local);
        assert_eq!(c.queue.max_receives, 5);
        assert_eq!(c.queue.visibility_timeout.0, Duration::from_secs(300));
        assert_eq!(c.capacity.bytes.0, 100_000_000_000_000);
        assert_eq!(c.ingest.max_upload_bytes.0, 10 << 30);
    }

    #[test]
    fn environment_overrides_file() {
        let dir = std::env::temp_dir().join(format!("imagelake-cfg-{}", crate::ids::new_compact_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:1\"\n[queue]\nmax_receives = 3\n[[keys]]\nsha256 = \"ab\"\ncustomer = \"acme\"\nrole = \"analyst\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            env(&[
                ("IMAGELAKE_LISTEN", "127.0.0.1:9999"),
                ("IMAGELAKE_DATA_DIR", "/tmp/x"),
                ("IMAGELAKE_QUEUE__VISIBILITY_TIMEOUT", "30s"),
                ("IMAGELAKE_STORAGE__BACKEND", "s3"),
                ("IMAGELAKE_STORAGE__BUCKET", "images"),
                ("IMAGELAKE_CAPACITY__BYTES", "500GB"),
                ("IMAGELAKE_URL", "http://ignored"),
                ("IMAGELAKE_CACHE", "/root/.cache/imagelake"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9999");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.queue.max_receives, 3);
        assert_eq!(c.queue.visibility_timeout.0, Duration::from_secs(30));
        assert_eq!(c.storage.backend, Backend::S3);
        assert_eq!(c.storage.bucket.as_deref(), Some("images"));
        assert_eq!(c.capacity.bytes.0, 500_000_000_000);
        assert_eq!(c.keys[0].role, Role::Analyst);
    }

    #[test]
    fn the_documented_example_is_the_default() {
        let path = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
            .join("../docs/config.example.toml");
        let documented = Config::load(Some(&path), env(&[])).unwrap();
        let json = |c: &Config| serde_json::to_value(c).unwrap();
        assert_eq!(json(&documented), json(&Config::default()), "docs/config.example.toml drifted from the code");
    }

    #[test]
    fn bad_presets_are_refused() {
        for bad in [
            r#"variants = [{ name = "a b", width = 1, height = 1, format = "jpeg" }]"#,
            r#"variants = [{ name = "a", width = 0, height = 1, format = "jpeg" }]"#,
            r#"variants = [{ name = "a", width = 1, height = 1, format = "gif" }]"#,
            r#"variants = [{ name = "a", width = 1, height = 1 }]"#,
            r#"variants = [{ name = "a", width = 1, height = 1, formats = [] }]"#,
            r#"variants = [{ name = "a", width = 1, height = 1, format = "jpeg", formats = ["png"] }]"#,
            r#"variants = [{ name = "a", width = 1, height = 1, formats = ["avif", "jpeg", "avif"] }]"#,
            r#"variants = [{ name = "a", width = 1, height = 1, format = "avif", speed = 10 }]"#,
            r#"variants = [{ name = "a", width = 1, height = 1, format = "jpeg", fit = "fill" }]"#,
            r#"variants = [{ name = "a", width = 1, height = 1, format = "jpeg" }, { name = "a", width = 2, height = 2, format = "png" }]"#,
        ] {
            let dir = crate::testing::temp_dir("config");
            let path = dir.join("c.toml");
            std::fs::write(&path, format!("[processor]\n{bad}\n")).unwrap();
            assert!(Config::load(Some(&path), env(&[])).is_err(), "{bad}");
        }
    }

    #[test]
    fn presets_take_one_format_or_several() {
        let dir = crate::testing::temp_dir("config");
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "[processor]\nvariants = [{ name = \"a\", width = 9, height = 9, format = \"png\" },\n\
             { name = \"b\", width = 9, height = 9, formats = [\"avif\", \"webp\", \"jpeg\"], quality = 60, speed = 8 }]\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), env(&[])).unwrap();
        let [a, b] = &c.processor.variants[..] else { panic!("two presets") };
        assert_eq!((a.formats.as_slice(), a.format(), a.speed), (&[OutputFormat::Png][..], OutputFormat::Png, 6));
        assert_eq!(b.formats, vec![OutputFormat::Avif, OutputFormat::WebP, OutputFormat::Jpeg]);
        assert_eq!((b.quality, b.speed), (60, 8));
        for f in OutputFormat::ALL {
            assert_eq!(OutputFormat::from_extension(f.extension()), Some(f));
        }
        assert_eq!(OutputFormat::from_extension("jpeg"), Some(OutputFormat::Jpeg));
        assert_eq!(OutputFormat::from_extension("gif"), None);
    }

    #[test]
    fn typos_are_errors_not_silence() {
        let e = Config::load(None, env(&[("IMAGELAKE_QUEUE__MAX_RECIEVES", "3")])).unwrap_err();
        assert!(e.to_string().contains("max_recieves"), "{e}");
        let e = Config::load(None, env(&[("IMAGELAKE_QUEUE__VISIBILITY_TIMEOUT", "soon")])).unwrap_err();
        assert!(e.to_string().contains("soon"), "{e}");
    }

    #[test]
    fn durations_need_units_and_floors_and_customers_are_checked() {
        let load = |text: &str| {
            let dir = crate::testing::temp_dir("config");
            let path = dir.join("c.toml");
            std::fs::write(&path, text).unwrap();
            Config::load(Some(&path), env(&[])).map_err(|e| e.to_string())
        };
        // Seven what? Refused, with the fix in the message.
        let e = load("[retention]\nprocessed = 7").unwrap_err();
        assert!(e.contains("needs a unit") && e.contains("\"7d\""), "{e}");
        let e = Config::load(None, env(&[("IMAGELAKE_RETENTION__PROCESSED", "7")])).unwrap_err().to_string();
        assert!(e.contains("needs a unit"), "{e}");
        assert_eq!(load("[retention]\nprocessed = \"7d\"").unwrap().retention.processed.0, Duration::from_secs(7 * 86_400));
        let e = load("[lifecycle]\norphan_age = \"5s\"").unwrap_err();
        assert!(e.contains("orphan_age is 5s; it must be at least 1m"), "{e}");
        let e = load("[retention]\nprocessed = \"500ms\"").unwrap_err();
        assert!(e.contains("[retention] processed"), "{e}");
        let key = "[[keys]]\nsha256 = \"00\"\nrole = \"uploader\"\ncustomer = ";
        let e = load(&format!("{key}\"../etc\"")).unwrap_err();
        assert!(e.contains("[[keys]] customer \"../etc\""), "{e}");
        assert!(load(&format!("{key}\"acme_2\"")).is_ok());
    }
}
