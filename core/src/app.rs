//! What every service is handed: the configuration and the backends it names.

use crate::auth::{KeyStore, SharedKeys};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::lake::LakeWriter;
use crate::meta::SharedMeta;
use crate::queue::SharedQueue;
use crate::store::SharedStore;
use crate::usage::UsageGauge;
use crate::CoreError;
use axum::extract::FromRef;
use std::sync::Arc;

/// The shared state of a process: configuration, object store, queue, metadata database,
/// keys and clock.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub store: SharedStore,
    pub queue: SharedQueue,
    pub meta: SharedMeta,
    pub keys: SharedKeys,
    pub clock: SharedClock,
    pub lake: Arc<LakeWriter>,
    pub usage: Arc<UsageGauge>,
}

impl Context {
    /// Connects the backends the configuration names.
    pub async fn connect(config: Config) -> Result<Self, CoreError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let store = crate::store::from_config(&config).await?;
        let queue = crate::queue::from_config(&config).await?;
        let meta = crate::meta::from_config(&config).await?;
        let clock: SharedClock = Arc::new(SystemClock);
        KeyStore::import(&meta, &config.keys, &config.data_dir, clock.now()).await?;
        let keys = Arc::new(KeyStore::new(meta.clone()));
        let writer_id = format!("{}-{}", hostname(), &crate::ids::new_compact_id()[20..]);
        let lake = LakeWriter::new(store.clone(), &writer_id, config.lake.clone(), clock.clone());
        let usage = Arc::new(UsageGauge::new(config.capacity.bytes.0));
        let ctx = Self { config: Arc::new(config), store, queue, meta, keys, clock, lake, usage };
        ctx.refresh_usage().await?;
        Ok(ctx)
    }

    /// Sets the capacity gate's figure from the database's byte counters, which every
    /// process updates in the same transactions as the records.
    pub async fn refresh_usage(&self) -> Result<(), CoreError> {
        let total: u64 = self.meta.usage().await?.iter().map(|(_, f)| f.bytes()).sum();
        self.usage.rebase(total);
        Ok(())
    }
}

impl FromRef<Context> for SharedKeys {
    fn from_ref(c: &Context) -> SharedKeys {
        c.keys.clone()
    }
}

/// The host's name, for lake file names (which writer wrote what).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "imagelake".into())
}
