//! The processing job message: what ingest enqueues and the processor consumes.
//!
//! It carries the upload's facts, so that the `uploads` row is durable as soon as the
//! message is: the processor writes it to the lake before it acknowledges the message.

use crate::lake::UploadRow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobMessage {
    pub job_id: String,
    pub image_id: String,
    pub customer: String,
    /// Variant presets to make (names from `[processor] variants`).
    pub variants: Vec<String>,
    pub enqueued_at: DateTime<Utc>,
    /// The request that created the job, for tracing across services.
    pub request_id: Option<String>,
    pub callback_url: Option<String>,
    pub upload: UploadRow,
}
