//! The metadata database: the operational source of truth.
//!
//! Image records and their variants, the per-customer listing, idempotency keys, API
//! keys, the lifecycle's leases, the due-variant index, per-customer byte counters and
//! the job outbox. The object store keeps only bytes (originals, variants) and the lake.
//!
//! One trait, [`MetadataStore`], so that services never see SQL; one implementation,
//! [`SqlMetadata`], over sqlx, which speaks to SQLite (the embedded default, one file
//! under `data_dir`, WAL, `synchronous = FULL`) and to PostgreSQL (deployments, a pool,
//! TLS through `sslmode` in the URL). Both run the same portable SQL and the same
//! migrations (`core/migrations/`); the conformance suite (`core/tests/meta_conformance.rs`)
//! runs against both.
//!
//! Every status change is a conditional update: a transition applies only from the states
//! it is allowed from, and says whether it applied. That is what makes a delete during
//! processing win, and two deliveries of one job leave one consistent record.

pub mod import;
mod sql;

pub use sql::SqlMetadata;

use crate::auth::{Principal, Role};
use crate::lake::Event;
use crate::post::{Comment, CommentOutcome, NewComment, Post, PostCursor, PostOrder, PostView};
use crate::record::{ImageRecord, RecordError, VariantRecord};
use crate::resumable::ResumableUpload;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub type SharedMeta = Arc<dyn MetadataStore>;

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The database cannot be reached, or did not answer in time: retry later (503).
    #[error("metadata database unavailable: {0}")]
    Unavailable(String),
    /// The schema could not be brought to this version.
    #[error("metadata database migration failed: {0}")]
    Migration(String),
    /// A row the code wrote cannot be read back as what it should be.
    #[error("metadata database holds an unreadable row: {0}")]
    Corrupt(String),
    /// Anything else the database refused.
    #[error("metadata database error: {0}")]
    Internal(String),
}

impl MetaError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            MetaError::Unavailable(_) => "database_unavailable",
            MetaError::Migration(_) => "database_migration",
            MetaError::Corrupt(_) => "database_corrupt",
            MetaError::Internal(_) => "database_error",
        }
    }
}

/// A new image, committed in one transaction with its pending job and its idempotency key.
pub struct NewImage<'a> {
    pub record: &'a ImageRecord,
    /// The job message, kept in the outbox until it is sent.
    pub job_id: &'a str,
    pub job_body: &'a str,
    /// When a sweeper may send the job if the request did not (a crash, a queue outage).
    pub send_after: DateTime<Utc>,
    /// The hashed `Idempotency-Key` and when it expires.
    pub idempotency: Option<(&'a str, DateTime<Utc>)>,
    /// A post of this image (`requested`), created with it.
    pub post: Option<&'a Post>,
    /// The upload registered itself with [`MetadataStore::begin_upload`]: its row is
    /// consumed, and the commit refused (`Unavailable`) if reconcile took it.
    pub in_flight: bool,
}

/// A change of a post or a comment waiting for the lake (and its webhook, if any).
#[derive(Debug, Clone, PartialEq)]
pub struct PostEvent {
    /// The lake row's `event_id`.
    pub id: String,
    pub lake: Event,
    /// The lake row is written; only the webhook is left.
    pub lake_written: bool,
    /// `(callback_url, event name, body)` of the webhook to deliver.
    pub webhook: Option<(String, String, String)>,
    /// Claims so far (this one included).
    pub attempts: u32,
}

/// What [`MetadataStore::create_image`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// Committed, with its job in the outbox.
    New,
    /// The idempotency key already named this image: nothing was committed.
    Duplicate(Box<ImageRecord>),
}

/// The answer of a conditional status change.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Applied; the record as it is now.
    Applied(ImageRecord),
    /// Not applied: the image is in a state the change may not leave (processed, failed).
    Refused(ImageRecord),
    /// Not applied: the image is deleted, or being deleted, or never existed.
    Gone,
}

/// A variant past its expiry, as the expire sweep needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueVariant {
    pub image_id: String,
    pub customer: String,
    pub name: String,
    pub format: String,
    pub bytes: u64,
    pub expires_at: DateTime<Utc>,
}

/// Bytes and objects stored for one customer (or everyone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Figures {
    pub originals_bytes: u64,
    pub originals: u64,
    pub variants_bytes: u64,
    pub variants: u64,
}

impl Figures {
    pub fn bytes(&self) -> u64 {
        self.originals_bytes + self.variants_bytes
    }
    pub fn objects(&self) -> u64 {
        self.originals + self.variants
    }
}

/// A job waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingJob {
    pub job_id: String,
    pub image_id: String,
    pub body: String,
    pub next_attempt_at: DateTime<Utc>,
    pub attempts: u32,
}

/// An API key as stored: its SHA-256, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// A short public id (the first 16 hex digits of the hash), for `keys list|revoke`.
    pub id: String,
    pub sha256: String,
    pub customer: String,
    pub role: Role,
    /// Where it came from: `config`, `file` (an imported `keys.toml`) or `cli`.
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Reads every customer's statistics (an analyst key made so; admins always do).
    pub all_customers: bool,
}

impl ApiKey {
    /// The same key, for every customer's statistics or not.
    pub fn for_all_customers(mut self, all: bool) -> Self {
        self.all_customers = all;
        self
    }

    pub fn new(sha256: &str, customer: &str, role: Role, source: &str, at: DateTime<Utc>) -> Self {
        let sha256 = sha256.to_ascii_lowercase();
        Self {
            id: sha256.chars().take(16).collect(),
            sha256,
            customer: customer.into(),
            role,
            source: source.into(),
            created_at: at,
            revoked_at: None,
            all_customers: false,
        }
    }
}

/// The metadata operations the services use. Times come from the caller's clock.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// One round trip, for `/readyz`.
    async fn ping(&self) -> Result<(), MetaError>;

    // --- images ---------------------------------------------------------------------
    /// Commits a new image (status `uploaded`), its job in the outbox, its byte counters
    /// and its idempotency key, all or nothing.
    async fn create_image(&self, new: NewImage<'_>) -> Result<Created, MetaError>;
    /// Registers an upload before the first byte of its original is stored (see
    /// `migrations/0005_uploads_in_flight.sql`); again, it restarts the row's clock.
    async fn begin_upload(&self, image_id: &str, customer: &str, at: DateTime<Utc>) -> Result<(), MetaError>;
    /// Drops an upload's row when it failed (its original removed) without a commit.
    async fn end_upload(&self, image_id: &str) -> Result<(), MetaError>;
    /// Whether reconcile may delete the original of `image_id`: no record names it, and no
    /// upload of it started after `stale_before` is in flight (an older one's row is
    /// taken, so that its commit is refused).
    async fn claim_orphan(&self, image_id: &str, stale_before: DateTime<Utc>) -> Result<bool, MetaError>;
    /// Drops the rows of uploads started before `stale_before` (their process died);
    /// returns how many.
    async fn sweep_uploads(&self, stale_before: DateTime<Utc>) -> Result<u64, MetaError>;
    /// The image of `id` (any customer; callers check ownership). Deleted ones are `None`.
    async fn image(&self, id: &str) -> Result<Option<ImageRecord>, MetaError>;
    /// Sets the image's SHA-256 if it has none yet (resumable uploads: the processor
    /// hashes the original).
    async fn fill_sha256(&self, id: &str, sha256: &str) -> Result<(), MetaError>;
    /// A customer's images, newest first, strictly older than `before` (an image id).
    async fn list_images(&self, customer: &str, before: Option<&str>, limit: usize) -> Result<Vec<ImageRecord>, MetaError>;
    /// The image an unexpired idempotency key names, if it still exists.
    async fn idempotent_image(
        &self,
        customer: &str,
        key_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ImageRecord>, MetaError>;
    /// `uploaded | processing` -> `processing`, counting the attempt.
    async fn start_processing(&self, id: &str, attempt: u32) -> Result<Transition, MetaError>;
    /// The time of the image's first processing attempt: `now` the first time it is asked,
    /// the same time at every later attempt. `None` for an unknown image.
    async fn first_attempt_at(&self, id: &str, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, MetaError>;
    /// `uploaded | processing` -> `processed` with its variants (and their bytes counted);
    /// its `requested` posts become `published` in the same transaction.
    async fn finish_processed(
        &self,
        id: &str,
        at: DateTime<Utc>,
        size: (u32, u32),
        variants: &[VariantRecord],
    ) -> Result<Transition, MetaError>;
    /// -> `failed` with a stable code; from `uploaded | processing` only unless `any_state`
    /// (reconcile marks a processed image whose original is gone). Its `requested` posts
    /// become `failed` with the same code, in the same transaction.
    async fn fail_image(
        &self,
        id: &str,
        attempt: Option<u32>,
        at: DateTime<Utc>,
        error: &RecordError,
        any_state: bool,
    ) -> Result<Transition, MetaError>;
    /// Makes the image a tombstone (hidden at once, processing can no longer finish it),
    /// deletes its posts and their comments, and returns it as it was, so the caller can
    /// remove its objects. A tombstone
    /// already there is returned again, so an interrupted delete can be finished.
    async fn begin_delete(&self, id: &str, at: DateTime<Utc>) -> Result<Option<ImageRecord>, MetaError>;
    /// Removes the image's rows and un-counts its bytes (after its objects are gone).
    async fn purge_image(&self, id: &str) -> Result<(), MetaError>;
    /// Tombstones older than `before`: deletes that did not finish.
    async fn stale_tombstones(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<ImageRecord>, MetaError>;
    /// Writes a record as it is if its id is new (`db import`, tests). Whether it was new.
    async fn import_image(&self, rec: &ImageRecord) -> Result<bool, MetaError>;
    /// A customer's images (not deleted) with ids after `after`, oldest first: the same
    /// order as the object store lists `originals/{customer}/` (reconcile merges the two).
    async fn scan_images(&self, customer: &str, after: Option<&str>, limit: usize) -> Result<Vec<ImageRecord>, MetaError>;

    // --- posts and comments ---------------------------------------------------------
    /// Creates `post` (status `requested`) for an image its customer already has; it is
    /// `published` or `failed` at once when the image has finished. `None` when the
    /// customer has no such image.
    async fn create_post(&self, post: &Post, at: DateTime<Utc>) -> Result<Option<Post>, MetaError>;
    /// The post of `id` (any customer; callers check ownership).
    async fn post(&self, id: &str) -> Result<Option<Post>, MetaError>;
    /// Posts with their image's variants and latest comments, in the same order.
    async fn post_views(&self, posts: Vec<Post>) -> Result<Vec<PostView>, MetaError>;
    /// A customer's published posts in `order`, strictly after `after`.
    async fn list_posts(
        &self,
        customer: &str,
        order: PostOrder,
        after: Option<&PostCursor>,
        limit: usize,
    ) -> Result<Vec<Post>, MetaError>;
    /// Stores comments in one transaction (a batch from many requests); one outcome each.
    async fn add_comments(&self, comments: &[NewComment]) -> Result<Vec<CommentOutcome>, MetaError>;
    /// A post's comments, newest first, strictly older than `before` (a comment id).
    async fn list_comments(&self, post_id: &str, before: Option<&str>, limit: usize) -> Result<Vec<Comment>, MetaError>;
    /// Deletes a comment of a post; the comment as it was, if there was one.
    async fn delete_comment(&self, post_id: &str, comment_id: &str, at: DateTime<Utc>) -> Result<Option<Comment>, MetaError>;
    /// Deletes a post with its comments (and every other post of its image) and makes its
    /// image a tombstone, in one transaction. Returns the image as it was, for the caller
    /// to remove its objects and purge it ([`MetadataStore::begin_delete`]'s contract).
    async fn delete_post(&self, id: &str, at: DateTime<Utc>) -> Result<Option<ImageRecord>, MetaError>;
    /// Claims up to `limit` due post events until `until`: another relay skips them.
    async fn claim_post_events(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PostEvent>, MetaError>;
    /// The lake rows of these events are written: events without a webhook are done; the
    /// others are left alone until `webhook_until` while their webhook is delivered.
    async fn post_events_written(&self, ids: &[String], webhook_until: DateTime<Utc>) -> Result<(), MetaError>;
    /// The webhook of this event is delivered (or given up): the event is done.
    async fn post_event_done(&self, id: &str) -> Result<(), MetaError>;
    /// Post events waiting for the relay.
    async fn post_events_len(&self) -> Result<u64, MetaError>;

    // --- expiry ---------------------------------------------------------------------
    /// `ready` variants with `expires_at <= at`, soonest first.
    async fn due_variants(&self, at: DateTime<Utc>, limit: usize) -> Result<Vec<DueVariant>, MetaError>;
    /// Marks these variants `expired` (those still `ready`) and un-counts their bytes.
    /// Each is `(image_id, name, format)`: one stored object, so a variant made in several
    /// formats is marked format by format, as its objects are deleted. Returns the bytes
    /// freed.
    async fn mark_expired(&self, variants: &[(String, String, String)]) -> Result<u64, MetaError>;

    // --- usage ----------------------------------------------------------------------
    /// The byte counters, per customer.
    async fn usage(&self) -> Result<Vec<(String, Figures)>, MetaError>;
    /// Replaces a customer's counters with measured figures (reconcile's correction).
    async fn set_usage(&self, customer: &str, figures: Figures) -> Result<(), MetaError>;

    // --- outbox ---------------------------------------------------------------------
    /// Jobs whose `next_attempt_at <= now`, oldest first.
    async fn due_jobs(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<PendingJob>, MetaError>;
    /// Takes a due job for one sender: moves its `next_attempt_at` to `retry_at` if no one
    /// else did since it was read. Whether this caller got it.
    async fn claim_job(&self, job: &PendingJob, retry_at: DateTime<Utc>) -> Result<bool, MetaError>;
    /// The job reached the queue: remove it from the outbox.
    async fn job_sent(&self, job_id: &str) -> Result<(), MetaError>;
    /// Jobs waiting to be sent.
    async fn outbox_len(&self) -> Result<u64, MetaError>;

    // --- idempotency keys -----------------------------------------------------------
    /// Removes keys expired by `now`; how many.
    async fn purge_idempotency(&self, now: DateTime<Utc>) -> Result<u64, MetaError>;

    // --- API keys -------------------------------------------------------------------
    /// Stores a key unless its hash is already there (a revoked key stays revoked).
    /// Whether it was new.
    async fn add_key(&self, key: &ApiKey) -> Result<bool, MetaError>;
    /// The caller of an unrevoked key hash.
    async fn resolve_key(&self, sha256: &str) -> Result<Option<Principal>, MetaError>;
    async fn list_keys(&self) -> Result<Vec<ApiKey>, MetaError>;
    /// Revokes the key whose id (or full hash) is `id`. Whether one was revoked.
    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, MetaError>;

    // --- leases ---------------------------------------------------------------------
    /// Takes `name` for `owner` with `token` until `until`, if it is free or expired at
    /// `now`. `Err`-free `Some(owner, until)` of the current holder when it is not free.
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        token: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<(String, DateTime<Utc>)>, MetaError>;
    /// Extends a held lease; false when it is no longer ours.
    async fn renew_lease(&self, name: &str, token: &str, until: DateTime<Utc>) -> Result<bool, MetaError>;
    async fn release_lease(&self, name: &str, token: &str) -> Result<(), MetaError>;

    // --- small state documents --------------------------------------------------------
    /// Stores a JSON document under `name` (the lifecycle's last runs).
    async fn save_state(&self, name: &str, doc: &str, at: DateTime<Utc>) -> Result<(), MetaError>;
    async fn load_state(&self, name: &str) -> Result<Option<String>, MetaError>;

    // --- resumable uploads (tus, direct) -----------------------------------------------
    async fn create_resumable(&self, upload: &ResumableUpload) -> Result<(), MetaError>;
    async fn resumable(&self, id: &str) -> Result<Option<ResumableUpload>, MetaError>;
    /// Takes (or renews) the upload's write lock until `until`; false when another holds
    /// it (a lock past its time is free). Writers of one upload run one at a time.
    async fn lock_resumable(&self, id: &str, token: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool, MetaError>;
    async fn unlock_resumable(&self, id: &str, token: &str) -> Result<(), MetaError>;
    /// Moves the upload to `upload`'s offset, parts and tail, if it still stands at
    /// `from`, is not complete, and `token` holds its lock.
    async fn advance_resumable(&self, upload: &ResumableUpload, from: u64, token: &str) -> Result<bool, MetaError>;
    /// Its image is committed; the row stays (for `HEAD`) until `expires`.
    async fn complete_resumable(&self, id: &str, at: DateTime<Utc>, expires: DateTime<Utc>) -> Result<(), MetaError>;
    async fn delete_resumable(&self, id: &str) -> Result<bool, MetaError>;
    /// Uploads past their expiry and not being written to, oldest first.
    async fn expired_resumables(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<ResumableUpload>, MetaError>;
    /// The store's multipart upload ids that incomplete resumable uploads still use.
    async fn live_multiparts(&self) -> Result<Vec<String>, MetaError>;
    /// The customer's incomplete resumable uploads.
    async fn open_resumables(&self, customer: &str) -> Result<u64, MetaError>;
}

/// Opens the database the configuration names: `[database] url`, or the embedded SQLite
/// file `data_dir/imagelake.db`. Runs the migrations.
pub async fn from_config(config: &crate::config::Config) -> Result<SharedMeta, MetaError> {
    let db = &config.database;
    let url = match &db.url {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", config.data_dir.join("imagelake.db").display()),
    };
    Ok(Arc::new(SqlMetadata::connect(&url, db.max_connections, db.connect_timeout.0).await?))
}

/// Microseconds since the epoch, as stored.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}
