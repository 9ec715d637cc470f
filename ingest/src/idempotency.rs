//! `Idempotency-Key`: the same key from the same customer within the TTL (24 h by
//! default) answers with the first answer and stores nothing new.
//!
//! The first answer is kept at `idempotency/{customer}/{sha256 of the key}.json`. Two
//! requests with the same key that race each other may both be accepted: the object
//! stores we target (Garage among them) ignore conditional writes, so a reservation
//! cannot be made atomic. Clients retry after an answer or a timeout, not in parallel.

use crate::error::IngestError;
use axum::http::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use imagelake_core::app::Context;
use imagelake_core::auth::hash_key;
use imagelake_core::record::ImageRecord;
use imagelake_core::store::StoreError;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Remembered {
    created_at: DateTime<Utc>,
    record: ImageRecord,
}

/// The request's `Idempotency-Key`, validated.
pub fn key(headers: &HeaderMap) -> Result<Option<String>, IngestError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let k = v
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| IngestError::BadRequest("invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters".into()))?;
    Ok(Some(k.to_string()))
}

fn object_key(customer: &str, key: &str) -> String {
    format!("idempotency/{customer}/{}.json", hash_key(key))
}

pub async fn lookup(ctx: &Context, customer: &str, key: &str) -> Result<Option<ImageRecord>, IngestError> {
    let got = match ctx.store.get(&object_key(customer, key), None).await {
        Ok(g) => g.bytes().await?,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Ok(r) = serde_json::from_slice::<Remembered>(&got) else { return Ok(None) };
    let ttl = chrono::Duration::from_std(ctx.config.ingest.idempotency_ttl.0).unwrap_or(chrono::Duration::hours(24));
    Ok((r.created_at + ttl > ctx.clock.now()).then_some(r.record))
}

pub async fn remember(ctx: &Context, customer: &str, key: &str, record: &ImageRecord) -> Result<(), StoreError> {
    let body = serde_json::to_vec(&Remembered { created_at: ctx.clock.now(), record: record.clone() }).expect("serializable");
    ctx.store.put(&object_key(customer, key), Bytes::from(body)).await?;
    Ok(())
}
