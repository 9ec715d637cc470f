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

/// The URL a variant is downloaded from: in the stored format the request's `Accept`
/// header prefers (the preset's order of preference breaks ties).
pub fn variant_url(id: &str, variant: &str) -> String {
    format!("/v1/images/{id}/variants/{variant}")
}

/// The URL of one stored format of a variant, whatever the request's `Accept` says:
/// `ext` is a format's extension (`jpg`, `png`, `webp`, `avif`; `jpeg` is taken too).
pub fn variant_format_url(id: &str, variant: &str, ext: &str) -> String {
    format!("/v1/images/{id}/variants/{variant}.{ext}")
}

/// The `url` of one entry of a record: a variant stored in one format has the variant's
/// URL; one stored in several (an entry each) has the URL of each entry's format.
pub fn entry_url(id: &str, name: &str, format: &str, formats_of_variant: usize) -> String {
    if formats_of_variant > 1 {
        variant_format_url(id, name, extension(format))
    } else {
        variant_url(id, name)
    }
}

impl ImageRecord {
    /// Sets each variant entry's `url` ([`entry_url`]).
    pub fn fill_variant_urls(&mut self) {
        let urls: Vec<String> = self
            .variants
            .iter()
            .map(|v| {
                let formats = self.variants.iter().filter(|w| w.name == v.name).count();
                entry_url(&self.id, &v.name, &v.format, formats)
            })
            .collect();
        for (v, url) in self.variants.iter_mut().zip(urls) {
            v.url = url;
        }
    }
}

/// The last segment of a variant's URL, as [`variant_url`] and [`variant_format_url`]
/// make it: the variant's name, and the extension that asks for one format if there is
/// one. Variant names have no dot, so the first dot starts the extension.
pub fn variant_segment(segment: &str) -> (&str, Option<&str>) {
    match segment.split_once('.') {
        Some((name, ext)) => (name, Some(ext)),
        None => (segment, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_urls_name_a_variant_and_maybe_a_format() {
        let id = "0190a5a2-0000-7000-8000-000000000001";
        assert_eq!(variant_url(id, "thumb"), format!("/v1/images/{id}/variants/thumb"));
        assert_eq!(variant_format_url(id, "thumb", "webp"), format!("/v1/images/{id}/variants/thumb.webp"));
        for (url, want) in [
            (variant_url(id, "thumb"), ("thumb", None)),
            (variant_format_url(id, "thumb", "webp"), ("thumb", Some("webp"))),
            (variant_format_url(id, "web_2x", "jpg"), ("web_2x", Some("jpg"))),
        ] {
            let segment = url.rsplit('/').next().unwrap();
            assert_eq!(variant_segment(segment), want, "{url}");
        }
        assert_eq!(variant_segment("a.b.png"), ("a", Some("b.png")), "a dot is never part of a name");
        assert_eq!(variant_segment("thumb."), ("thumb", Some("")));
        assert_eq!(entry_url(id, "thumb", "jpeg", 1), variant_url(id, "thumb"), "one format: the variant's URL");
        assert_eq!(entry_url(id, "thumb", "jpeg", 3), variant_format_url(id, "thumb", "jpg"), "several: each its own");
    }
}
