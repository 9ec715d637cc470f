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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// A key is taken, as its SHA-256, exactly when it is 1 to 255 printable ASCII
        /// characters (tab and space count); anything else is `invalid_idempotency_key`.
        #[test]
        fn keys(v in prop_oneof![proptest::collection::vec(0x20..0x7Fu8, 0..300), proptest::collection::vec(any::<u8>(), 0..300)]) {
            let Ok(value) = HeaderValue::from_bytes(&v) else { return Ok(()) };
            let mut headers = HeaderMap::new();
            headers.insert("idempotency-key", value);
            let printable = v.iter().all(|&b| (0x20..0x7F).contains(&b) || b == b'\t');
            match key(&headers) {
                Ok(k) => {
                    prop_assert!(printable && (1..=255).contains(&v.len()), "{v:?}");
                    prop_assert_eq!(k, Some(hash_key(std::str::from_utf8(&v).unwrap())));
                }
                Err(e) => {
                    prop_assert!(!printable || v.is_empty() || v.len() > 255, "{v:?}");
                    prop_assert_eq!(e.code(), "invalid_idempotency_key");
                }
            }
        }
    }

    #[test]
    fn no_key_is_no_key() {
        assert_eq!(key(&HeaderMap::new()).unwrap(), None);
    }
}
