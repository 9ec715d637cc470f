//! Upload slots: at most `ingest.max_concurrent_uploads` uploads stream at once in this
//! process (more answer `503 busy`), and at most `ingest.max_uploads_per_key` with one key
//! (more answer `429 too_many_uploads`), both with `Retry-After`. A slot is taken before
//! the first byte of the body is read and given back when the upload ends, however it
//! ends. The per-key counts live only while uploads run, so they are bounded by the
//! global limit.

use crate::error::IngestError;
use imagelake_core::config::IngestConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slots of one process; an axum `Extension` on the upload routes.
#[derive(Clone, Default)]
pub struct UploadSlots(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// Sized from the configuration on first use (the router is built without it).
    global: OnceLock<Arc<Semaphore>>,
    per_key: Mutex<HashMap<[u8; 16], usize>>,
}

/// A taken slot; dropping it gives it back.
pub struct Slot {
    slots: UploadSlots,
    key: [u8; 16],
    _global: OwnedSemaphorePermit,
}

impl UploadSlots {
    /// Takes a slot for an upload with key `key`, or says why not.
    pub fn take(&self, config: &IngestConfig, key: [u8; 16]) -> Result<Slot, IngestError> {
        let global = self.0.global.get_or_init(|| Arc::new(Semaphore::new(config.max_concurrent_uploads)));
        // The key's own limit first: over it, the answer (429) is about this client.
        let mut per_key = self.0.per_key.lock().unwrap();
        let n = per_key.entry(key).or_insert(0);
        if *n >= config.max_uploads_per_key {
            imagelake_core::metrics::refused("too_many_uploads");
            return Err(IngestError::TooMany(format!(
                "this key already has {} uploads in progress (the limit); retry when one ends",
                config.max_uploads_per_key
            )));
        }
        let Ok(permit) = global.clone().try_acquire_owned() else {
            if *n == 0 {
                per_key.remove(&key);
            }
            imagelake_core::metrics::refused("busy_uploads");
            return Err(IngestError::Busy("too many uploads in progress on this server; retry shortly"));
        };
        *n += 1;
        Ok(Slot { slots: self.clone(), key, _global: permit })
    }

    /// Uploads streaming now with `key`.
    #[cfg(test)]
    fn running(&self, key: [u8; 16]) -> usize {
        self.0.per_key.lock().unwrap().get(&key).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_key = self.slots.0.per_key.lock().unwrap();
        if let Some(n) = per_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                per_key.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_key_and_in_all() {
        let config = IngestConfig { max_concurrent_uploads: 3, max_uploads_per_key: 2, ..IngestConfig::default() };
        let slots = UploadSlots::default();
        let (a, b) = ([1; 16], [2; 16]);
        let a1 = slots.take(&config, a).unwrap();
        let _a2 = slots.take(&config, a).unwrap();
        assert_eq!(slots.take(&config, a).err().map(|e| e.code()), Some("too_many_uploads"));
        let _b1 = slots.take(&config, b).unwrap();
        assert_eq!(slots.take(&config, b).err().map(|e| e.code()), Some("busy"));
        drop(a1);
        assert_eq!(slots.running(a), 1);
        let _b2 = slots.take(&config, b).unwrap();
        assert_eq!(slots.running(b), 2);
    }
}
