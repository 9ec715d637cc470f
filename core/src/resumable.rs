//! Resumable uploads: tus 1.0 (`/v1/uploads`) and direct-to-S3 multipart
//! (`/v1/uploads/direct`). This is their state as the metadata database keeps it
//! (`migrations/0006_resumable_uploads.sql`) and the object keys of their bytes.
//!
//! The bytes received so far are whole parts of the store's multipart upload of the
//! image's original, and a *tail*: the bytes after the last whole part, in an object of
//! its own until enough follow to make a part (as tusd's S3 store does). The upload's id
//! is the id its image will have.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How the client sends the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Through the API, in `PATCH` requests (tus).
    Tus,
    /// To the bucket, with presigned part URLs.
    Direct,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tus => "tus",
            Kind::Direct => "direct",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "tus" => Some(Kind::Tus),
            "direct" => Some(Kind::Direct),
            _ => None,
        }
    }
}

/// A whole part stored in the multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPart {
    pub number: u32,
    pub etag: String,
    pub size: u64,
}

/// One resumable upload.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumableUpload {
    pub id: String,
    pub customer: String,
    pub kind: Kind,
    /// `None` while the client defers it (tus `creation-defer-length`).
    pub length: Option<u64>,
    /// Bytes durably stored: the parts and the tail.
    pub offset: u64,
    /// tus: the `Upload-Metadata` header as the client sent it. Direct: the file name.
    pub metadata: String,
    pub variants: Vec<String>,
    pub callback_url: Option<String>,
    /// The store's multipart upload, once the first part is stored (direct: at once).
    pub multipart_id: Option<String>,
    /// Bytes per part (every part but the last).
    pub part_size: u64,
    pub parts: Vec<StoredPart>,
    /// The object holding the bytes after the last part (`offset - parts`), if any.
    pub tail_key: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the lifecycle removes it if it is not complete; moved on by each `PATCH`.
    pub expires_at: DateTime<Utc>,
    /// When its image was committed.
    pub completed_at: Option<DateTime<Utc>>,
}

impl ResumableUpload {
    /// Bytes in whole parts.
    pub fn in_parts(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }

    /// Bytes in the tail object.
    pub fn tail_bytes(&self) -> u64 {
        self.offset - self.in_parts()
    }

    /// Every byte is stored.
    pub fn is_full(&self) -> bool {
        self.length == Some(self.offset)
    }

    /// The objects this upload keeps besides its parts: its tails, under one prefix.
    pub fn prefix(&self) -> String {
        upload_prefix(&self.customer, &self.id)
    }
}

/// Where an upload's tails live.
pub fn upload_prefix(customer: &str, id: &str) -> String {
    format!("uploads/{customer}/{id}/")
}

/// The tail object that holds the bytes up to `end`. Each stored offset has its own key,
/// so the tail the database names is never overwritten before the database moves on.
pub fn tail_key(customer: &str, id: &str, end: u64) -> String {
    format!("{}tail-{end:020}", upload_prefix(customer, id))
}

/// Removes everything an incomplete upload stored (its multipart upload, its tails) and
/// its row. Failures are logged: the abort-multipart job and the next sweep catch them.
pub async fn remove(ctx: &crate::app::Context, u: &ResumableUpload) {
    use crate::store::StoreError;
    if let Some(id) = &u.multipart_id {
        match ctx.store.abort_multipart(&crate::record::original_key(&u.customer, &u.id), id).await {
            Ok(()) | Err(StoreError::NoSuchUpload(_)) => {}
            Err(e) => tracing::warn!(upload = %u.id, error = %e, "could not abort an upload's multipart upload"),
        }
    }
    remove_tails(ctx, u).await;
    if let Err(e) = ctx.meta.delete_resumable(&u.id).await {
        tracing::warn!(upload = %u.id, error = %e, "could not delete an upload's row; it expires again");
    }
}

/// Removes an upload's tail objects.
pub async fn remove_tails(ctx: &crate::app::Context, u: &ResumableUpload) {
    match crate::store::list_all(ctx.store.as_ref(), &u.prefix()).await {
        Ok(objects) => {
            let keys: Vec<String> = objects.into_iter().map(|o| o.key).collect();
            for chunk in keys.chunks(1000) {
                if let Err(e) = ctx.store.delete_many(chunk).await {
                    tracing::warn!(upload = %u.id, error = %e, "could not remove an upload's tail");
                }
            }
        }
        Err(e) => tracing::warn!(upload = %u.id, error = %e, "could not list an upload's tails"),
    }
}
