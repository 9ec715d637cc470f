//! Object keys are built from ids and customer names that arrive over HTTP, and on the
//! local backend they become paths: a key must never name anything outside the store.

use super::StoreError;

/// Checks that `key` is a relative, `/`-separated key without empty, `.` or `..`
/// segments, NUL, backslashes or control characters, at most 1024 bytes (the S3 limit).
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason| Err(StoreError::InvalidKey { key: key.chars().take(200).collect(), reason });
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return bad("absolute");
    }
    if key.chars().any(|c| c == '\0' || c == '\\' || c.is_control()) {
        return bad("contains NUL, a backslash or a control character");
    }
    if key.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return bad("has an empty, `.` or `..` segment");
    }
    Ok(())
}

/// A listing prefix may end with `/` or be empty, but is otherwise held to the same rules.
pub fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return if prefix.is_empty() { Ok(()) } else { validate_key(prefix) };
    }
    validate_key(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a\0b", "a\\..\\b", "x/..", "a/\nb"] {
            assert!(validate_key(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "originals/acme/0190-x", "lake/uploads/dt=2026-01-01/w-1.parquet", "a/b.c/d..e"] {
            validate_key(good).unwrap();
        }
        assert!(validate_key(&"a".repeat(1025)).is_err());
        validate_prefix("").unwrap();
        validate_prefix("lake/").unwrap();
        assert!(validate_prefix("../").is_err());
    }
}
