//! Identifiers. Image, job and file ids are UUIDv7: time-sortable, so that listings by
//! id are listings by time, and lake file names sort in write order.

use uuid::Uuid;

/// A new time-sortable id in its canonical hyphenated form.
pub fn new_id() -> String {
    Uuid::now_v7().to_string()
}

/// A new time-sortable id without hyphens, for object names.
pub fn new_compact_id() -> String {
    Uuid::now_v7().simple().to_string()
}

/// Whether `s` is a canonical id as produced by [`new_id`]. Ids arrive in URLs, so they
/// are checked before they are used to build object keys.
pub fn is_valid_id(s: &str) -> bool {
    s.len() == 36 && Uuid::parse_str(s).is_ok()
}

/// A deterministic id derived from what happened (for lake `event_id`s): the same inputs
/// always give the same id, so a redelivered job writes the same events.
pub fn event_id(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_time() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id();
        assert!(a < b);
        assert!(is_valid_id(&a));
        assert!(!is_valid_id("../../etc/passwd"));
    }

    #[test]
    fn event_ids_are_deterministic_and_unambiguous() {
        assert_eq!(event_id(&["job", "1"]), event_id(&["job", "1"]));
        assert_ne!(event_id(&["ab", "c"]), event_id(&["a", "bc"]));
    }
}
