//! The metadata lake: every fact the platform learns, as Parquet on the object store,
//! under `lake/{table}/dt=YYYY-MM-DD/{writer_id}-{sortable_id}.parquet` (`layout.rs`), and
//! daily aggregates of them under `lake/agg_*/` (`agg.rs`, `aggregate.rs`).
//!
//! The row types below are the one definition of each table's columns; `sql/README.md`
//! documents them for analysts. `event_id` is derived from what happened, so a fact
//! written twice (a redelivered job) has the same id, and the views keep one row per id.

pub mod agg;
#[cfg(test)]
mod agg_bi_tests;
pub mod aggregate;
pub mod compact;
mod event_id;
pub mod layout;
pub mod schema;
pub mod views;
mod vocab;
mod writer;

pub use vocab::{AttemptStatus, CommentEventKind, DeletionKind, DeletionReason, PostEventKind};
pub use writer::{encode, writer_properties, FlushReport, LakeError, LakeWriter};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The lake's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Uploads,
    Jobs,
    Variants,
    Deletions,
    Downloads,
    Usage,
    Posts,
    Comments,
}

impl Table {
    pub const ALL: [Table; 8] = [
        Table::Uploads,
        Table::Jobs,
        Table::Variants,
        Table::Deletions,
        Table::Downloads,
        Table::Usage,
        Table::Posts,
        Table::Comments,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Uploads => "uploads",
            Table::Jobs => "jobs",
            Table::Variants => "variants",
            Table::Deletions => "deletions",
            Table::Downloads => "downloads",
            Table::Usage => "usage",
            Table::Posts => "posts",
            Table::Comments => "comments",
        }
    }
}

/// One accepted upload (written by the processor from the job message, which carries it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadRow {
    pub event_id: String,
    pub image_id: String,
    pub customer_id: String,
    pub uploaded_at: DateTime<Utc>,
    pub content_type: String,
    pub format: String,
    pub bytes: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub sha256: String,
}

/// One finished processing attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRow {
    pub event_id: String,
    pub job_id: String,
    pub image_id: String,
    pub customer_id: String,
    pub attempt: u32,
    pub status: AttemptStatus,
    pub enqueued_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub error_code: Option<String>,
    pub output_bytes: u64,
}

/// One variant written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantRow {
    pub event_id: String,
    pub image_id: String,
    pub customer_id: String,
    pub variant: String,
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// One object removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletionRow {
    pub event_id: String,
    pub image_id: String,
    pub customer_id: String,
    pub kind: DeletionKind,
    pub variant: Option<String>,
    pub bytes: u64,
    pub reason: DeletionReason,
    pub deleted_at: DateTime<Utc>,
}

/// One object served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownloadRow {
    pub event_id: String,
    pub image_id: String,
    pub customer_id: String,
    /// `None` for the original.
    pub variant: Option<String>,
    pub bytes: u64,
    pub served_at: DateTime<Utc>,
}

/// One usage snapshot, per customer or in total (`customer_id = None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// Derived from `taken_at` and `customer_id`, like every other table's.
    pub event_id: String,
    pub taken_at: DateTime<Utc>,
    pub customer_id: Option<String>,
    pub originals_bytes: u64,
    pub variants_bytes: u64,
    pub objects: u64,
    pub capacity_bytes: u64,
}

/// One change of a post: `created`, `published`, `failed` or `deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostRow {
    /// Derived from the post and the event: each transition happens once.
    pub event_id: String,
    pub post_id: String,
    pub customer_id: String,
    pub image_id: String,
    pub author: Option<String>,
    pub event: PostEventKind,
    /// The image's error code, for `failed`.
    pub error_code: Option<String>,
    /// Characters of the caption.
    pub caption_chars: u32,
    pub at: DateTime<Utc>,
}

/// One change of a comment: `created` or `deleted`. The text stays in the database; the
/// lake keeps its length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentRow {
    pub event_id: String,
    pub comment_id: String,
    pub post_id: String,
    pub customer_id: String,
    pub author: String,
    pub event: CommentEventKind,
    pub chars: u32,
    pub at: DateTime<Utc>,
}

/// A fact for the lake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    Upload(UploadRow),
    Job(JobRow),
    Variant(VariantRow),
    Deletion(DeletionRow),
    Download(DownloadRow),
    Usage(UsageRow),
    Post(PostRow),
    Comment(CommentRow),
}

impl Event {
    pub fn table(&self) -> Table {
        match self {
            Event::Upload(_) => Table::Uploads,
            Event::Job(_) => Table::Jobs,
            Event::Variant(_) => Table::Variants,
            Event::Deletion(_) => Table::Deletions,
            Event::Download(_) => Table::Downloads,
            Event::Usage(_) => Table::Usage,
            Event::Post(_) => Table::Posts,
            Event::Comment(_) => Table::Comments,
        }
    }

    /// The UTC time that decides the row's `dt` partition.
    pub fn time(&self) -> DateTime<Utc> {
        match self {
            Event::Upload(r) => r.uploaded_at,
            // The enqueue time: every attempt of a job lands in one partition, whenever it
            // finished, so a job's outcome is decided within one day (the aggregates) and a
            // redelivered attempt's copies are in one place.
            Event::Job(r) => r.enqueued_at,
            Event::Variant(r) => r.created_at,
            Event::Deletion(r) => r.deleted_at,
            Event::Download(r) => r.served_at,
            Event::Usage(r) => r.taken_at,
            Event::Post(r) => r.at,
            Event::Comment(r) => r.at,
        }
    }
}
