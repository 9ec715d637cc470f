//! The image record: an image's status and metadata, as the API shows it. Records live
//! in the metadata database (`crate::meta`); this module holds their types and the object
//! keys of an image's bytes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where an image is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Uploaded,
    Processing,
    Processed,
    Failed,
}

/// Whether a variant can still be downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VariantState {
    Ready,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VariantRecord {
    pub name: String,
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub url: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub state: VariantState,
}

/// Why processing failed, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordError {
    pub code: String,
    pub message: String,
}

/// What the EXIF block says, minus anything that locates a person (no GPS).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExifSummary {
    pub camera: Option<String>,
    pub taken_at: Option<String>,
    pub orientation: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImageRecord {
    pub id: String,
    pub customer: String,
    pub status: Status,
    pub content_type: String,
    pub format: String,
    pub bytes: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub sha256: String,
    pub uploaded_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordError>,
    pub exif: Option<ExifSummary>,
    /// The variants asked for at upload.
    pub requested_variants: Vec<String>,
    pub variants: Vec<VariantRecord>,
    /// Processing attempts so far.
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

pub fn original_key(customer: &str, id: &str) -> String {
    format!("originals/{customer}/{id}")
}

pub fn variant_key(customer: &str, id: &str, variant: &str, ext: &str) -> String {
    format!("processed/{customer}/{id}/{variant}.{ext}")
}

/// File extension of a variant format.
pub fn extension(format: &str) -> &str {
    match format {
        "jpeg" => "jpg",
        other => other,
    }
}

impl VariantRecord {
    pub fn object_key(&self, customer: &str, id: &str) -> String {
        variant_key(customer, id, &self.name, extension(&self.format))
    }
}

/// The URL a variant is downloaded from.
pub fn variant_url(id: &str, variant: &str) -> String {
    format!("/v1/images/{id}/variants/{variant}")
}
