//! The object store: one trait, a local directory and S3 behind it.
//!
//! The trait holds the primitives both backends share (put, ranged streaming get, head,
//! paginated list, batch delete, multipart). Streaming a body of unknown length into the
//! store, with concurrent parts and abort on failure, is written once on top of them in
//! [`upload`].

pub mod append;
mod key;
mod local;
mod s3;
pub mod upload;

pub use key::validate_key;
pub use local::LocalStore;
pub use s3::{S3Options, S3Store};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use std::ops::Range;
use std::sync::Arc;

/// Errors of the object-store backends.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key is not a valid object key (empty, `..`, absolute, NUL, too long).
    #[error("invalid object key `{key}`: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// No object under this key.
    #[error("object not found: {0}")]
    NotFound(String),
    /// The requested range lies outside the object.
    #[error("range {start}..{end} is not satisfiable for an object of {size} bytes")]
    InvalidRange { start: u64, end: u64, size: u64 },
    /// The multipart upload does not exist (completed, aborted, or never created).
    #[error("no such multipart upload: {0}")]
    NoSuchUpload(String),
    /// The backend cannot be reached or answered with an error; worth retrying.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// A body stream given to the store failed (for example, the client went away).
    #[error("body stream failed: {0}")]
    Body(String),
    /// A local file operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The store refused what it was given (a multipart completion naming parts it does
    /// not have, or parts too small): not worth retrying as it is.
    #[error("object store refused the request: {0}")]
    Rejected(String),
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::InvalidKey { .. } => "invalid_key",
            StoreError::NotFound(_) => "not_found",
            StoreError::InvalidRange { .. } => "range_not_satisfiable",
            StoreError::NoSuchUpload(_) => "no_such_upload",
            StoreError::Unavailable(_) => "store_unavailable",
            StoreError::Body(_) => "body_failed",
            StoreError::Io(_) => "store_io",
            StoreError::Rejected(_) => "store_rejected",
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What the store knows of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// An opaque version tag, quoted as in HTTP (`"..."`).
    pub etag: String,
    pub last_modified: DateTime<Utc>,
}

/// A body streamed out of the store.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// An object's metadata and (part of) its bytes.
pub struct GetResult {
    pub meta: ObjectMeta,
    /// The byte range of the object this stream carries.
    pub range: Range<u64>,
    pub body: ByteStream,
}

impl GetResult {
    /// Collects the body; for small objects (records, lake files) only.
    pub async fn bytes(self) -> Result<Bytes> {
        use futures::TryStreamExt;
        let chunks: Vec<Bytes> = self.body.try_collect().await?;
        Ok(chunks.concat().into())
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    /// Pass back as `after` to get the next page; `None` when this is the last.
    pub next: Option<String>,
}

/// A part of a multipart upload, as returned by [`ObjectStore::put_part`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartTag {
    pub number: u32,
    pub etag: String,
}

/// A multipart upload that was started and neither completed nor aborted.
#[derive(Debug, Clone)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: DateTime<Utc>,
}

/// The object store. Keys are `/`-separated and validated by [`validate_key`].
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// A name for logs and metrics (`local`, `s3`).
    fn backend(&self) -> &'static str;

    /// Stores `body` under `key` atomically: readers see the old object or the whole new one.
    async fn put(&self, key: &str, body: Bytes) -> Result<ObjectMeta>;

    /// Streams an object, or the byte range `range` of it (end exclusive, clamped to the size).
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<GetResult>;

    /// Metadata, or `None` when there is no such object.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>>;

    /// Objects whose key starts with `prefix`, in key order, after the key `after`.
    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage>;

    /// Deletes up to 1000 keys; missing keys are not an error.
    async fn delete_many(&self, keys: &[String]) -> Result<()>;

    async fn create_multipart(&self, key: &str) -> Result<String>;
    async fn put_part(&self, key: &str, upload_id: &str, number: u32, body: Bytes) -> Result<PartTag>;
    /// Makes the object visible, atomically, from the parts in order.
    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<PartTag>) -> Result<ObjectMeta>;
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()>;
    /// Multipart uploads under `prefix` not yet completed or aborted.
    async fn list_multipart(&self, prefix: &str) -> Result<Vec<PendingUpload>>;

    /// A URL with which anyone may `PUT` part `number` of a multipart upload, for
    /// `expires_in`; `None` when the backend has no such URLs (the local directory).
    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>> {
        let _ = (key, upload_id, number, expires_in);
        Ok(None)
    }

    /// Installs (or replaces) a rule in the backend itself that deletes the objects under
    /// `prefix` `days` days after they were written: a backstop to the lifecycle sweep,
    /// which stays the one that records deletions. Returns whether the backend has such
    /// rules; the default (the local directory) has none and does nothing.
    async fn install_expiry_rule(&self, prefix: &str, days: u32) -> Result<bool> {
        let _ = (prefix, days);
        Ok(false)
    }
}

pub type SharedStore = Arc<dyn ObjectStore>;

/// Lists every object under `prefix`, page by page.
pub async fn list_all(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<ObjectMeta>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(prefix, after.as_deref(), 1000).await?;
        out.extend(page.objects);
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

/// Builds the store the configuration asks for.
pub async fn from_config(cfg: &crate::config::Config) -> std::result::Result<SharedStore, crate::CoreError> {
    use crate::config::Backend;
    match cfg.storage.backend {
        Backend::Local => Ok(Arc::new(LocalStore::open(cfg.storage_dir())?)),
        Backend::S3 => Ok(Arc::new(S3Store::connect(S3Options::from_config(&cfg.storage)?).await)),
        Backend::Sqs => Err(crate::CoreError::Config("storage.backend must be `local` or `s3`".into())),
    }
}
