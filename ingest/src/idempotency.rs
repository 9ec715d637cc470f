//! `Idempotency-Key`: the same key from the same customer within the TTL (24 h by
//! default) answers with the first request's image and stores nothing new.
//!
//! The key (hashed) is committed in the same transaction as the image it made, under a
//! unique `(customer, key)`: of two requests racing with one key, one commits the image
//! and the other finds the key taken, removes the original it stored, and answers with
//! the first one's image (`core::meta`). A key whose image was deleted is free again.

use crate::error::IngestError;
use axum::http::HeaderMap;
use imagelake_core::auth::hash_key;

/// The request's `Idempotency-Key`, validated, as stored: its SHA-256.
pub fn key(headers: &HeaderMap) -> Result<Option<String>, IngestError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let k = v.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 255).ok_or_else(|| {
        IngestError::BadRequest("invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters".into())
    })?;
    Ok(Some(hash_key(k)))
}
