//! The image record: the operational source of truth for an image's status and metadata,
//! one JSON object per image (`records/{customer}/{image_id}.json`). S3 is strongly
//! consistent per key, so a read after a write sees it.
//!
//! Two small index objects sit beside each record: `listing/{customer}/{inverted id}`
//! lists a customer's images newest first (object stores list in ascending key order
//! only), and `ids/{image_id}` names the owner, so that an admin can open any image by id.

use crate::store::{ObjectStore, StoreError};
use bytes::Bytes;
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

pub fn record_key(customer: &str, id: &str) -> String {
    format!("records/{customer}/{id}.json")
}

pub fn owner_key(id: &str) -> String {
    format!("ids/{id}")
}

/// Listing keys sort newest first: the id's 128 bits, inverted.
pub fn listing_key(customer: &str, id: &str) -> String {
    let inverted = uuid::Uuid::parse_str(id).map(|u| !u.as_u128()).unwrap_or(0);
    format!("listing/{customer}/{inverted:032x}")
}

/// The image id a listing key stands for.
pub fn id_from_listing_key(key: &str) -> Option<String> {
    let hex = key.rsplit('/').next()?;
    let inverted = u128::from_str_radix(hex, 16).ok()?;
    Some(uuid::Uuid::from_u128(!inverted).to_string())
}

pub async fn read(store: &dyn ObjectStore, customer: &str, id: &str) -> Result<Option<ImageRecord>, StoreError> {
    match store.get(&record_key(customer, id), None).await {
        Ok(got) => {
            let bytes = got.bytes().await?;
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
        }
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn write(store: &dyn ObjectStore, r: &ImageRecord) -> Result<(), StoreError> {
    let body = serde_json::to_vec_pretty(r).expect("records serialize");
    store.put(&record_key(&r.customer, &r.id), Bytes::from(body)).await?;
    Ok(())
}

/// Writes the record and its two index objects: the image becomes visible to its owner.
pub async fn create(store: &dyn ObjectStore, r: &ImageRecord) -> Result<(), StoreError> {
    write(store, r).await?;
    store.put(&owner_key(&r.id), Bytes::from(r.customer.clone())).await?;
    store.put(&listing_key(&r.customer, &r.id), Bytes::new()).await?;
    Ok(())
}

/// The owner of an image id, from its `ids/` pointer.
pub async fn owner(store: &dyn ObjectStore, id: &str) -> Result<Option<String>, StoreError> {
    match store.get(&owner_key(id), None).await {
        Ok(got) => Ok(Some(String::from_utf8_lossy(&got.bytes().await?).into_owned())),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the record and its indexes (the objects are the caller's business).
pub async fn remove(store: &dyn ObjectStore, customer: &str, id: &str) -> Result<(), StoreError> {
    store
        .delete_many(&[listing_key(customer, id), record_key(customer, id), owner_key(id)])
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_keys_sort_newest_first_and_round_trip() {
        let a = crate::ids::new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = crate::ids::new_id();
        assert!(listing_key("c", &b) < listing_key("c", &a));
        assert_eq!(id_from_listing_key(&listing_key("c", &a)).unwrap(), a);
    }
}
