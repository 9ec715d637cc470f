//! An object store that counts the requests made through it, for job reports and the
//! benchmark.

use async_trait::async_trait;
use bytes::Bytes;
use imagelake_core::store::{GetResult, ListPage, ObjectMeta, ObjectStore, PartTag, PendingUpload, Result, SharedStore};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct CountingStore {
    inner: SharedStore,
    requests: AtomicU64,
}

impl CountingStore {
    pub fn new(inner: SharedStore) -> Arc<Self> {
        Arc::new(Self { inner, requests: AtomicU64::new(0) })
    }
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    fn tick(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn put(&self, key: &str, body: Bytes) -> Result<ObjectMeta> {
        self.tick();
        self.inner.put(key, body).await
    }
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<GetResult> {
        self.tick();
        self.inner.get(key, range).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        self.tick();
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage> {
        self.tick();
        self.inner.list(prefix, after, limit).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.tick();
        self.inner.delete_many(keys).await
    }
    async fn create_multipart(&self, key: &str) -> Result<String> {
        self.tick();
        self.inner.create_multipart(key).await
    }
    async fn put_part(&self, key: &str, upload_id: &str, number: u32, body: Bytes) -> Result<PartTag> {
        self.tick();
        self.inner.put_part(key, upload_id, number, body).await
    }
    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<PartTag>) -> Result<ObjectMeta> {
        self.tick();
        self.inner.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        self.tick();
        self.inner.abort_multipart(key, upload_id).await
    }
    async fn list_multipart(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        self.tick();
        self.inner.list_multipart(prefix).await
    }
    async fn install_expiry_rule(&self, prefix: &str, days: u32) -> Result<bool> {
        self.tick();
        self.inner.install_expiry_rule(prefix, days).await
    }
}
