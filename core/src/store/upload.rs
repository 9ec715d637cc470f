//! Streaming a body of unknown length into the store, written once for every backend.
//!
//! Small bodies become one `put`. Once a body passes the threshold it becomes a multipart
//! upload whose parts are sent `concurrency` at a time while the next part is being read.
//! Memory is bounded by `(concurrency + 1) * part_size` whatever the body's size. Any
//! failure (the body stream, a part, the completion) aborts the upload, so nothing is
//! left behind.

use super::{ObjectMeta, PartTag, SharedStore, StoreError};
use bytes::{Bytes, BytesMut};
use futures::stream::{Stream, StreamExt};
use tokio::task::JoinSet;

/// Part sizing for [`upload_stream`].
#[derive(Debug, Clone, Copy)]
pub struct UploadOptions {
    /// Bodies larger than this go multipart.
    pub multipart_threshold: usize,
    /// Bytes per part (S3's minimum is 5 MiB, except for the last part).
    pub part_size: usize,
    /// Parts in flight at once.
    pub concurrency: usize,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self { multipart_threshold: 16 << 20, part_size: 16 << 20, concurrency: 4 }
    }
}

impl UploadOptions {
    pub fn from_config(c: &crate::config::StorageConfig) -> Self {
        let part_size = (c.part_size.0 as usize).max(5 << 20);
        Self { multipart_threshold: (c.multipart_threshold.0 as usize).max(1), part_size, concurrency: c.part_concurrency.max(1) }
    }
}

/// Streams `body` to `key`. The object exists, whole, if and only if this returns `Ok`.
pub async fn upload_stream<S, E>(store: &SharedStore, key: &str, body: S, opts: UploadOptions) -> Result<ObjectMeta, StoreError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    // Read up to the threshold: most uploads end here and take one PUT.
    while buf.len() <= opts.multipart_threshold {
        match body.next().await {
            Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
            Some(Err(e)) => return Err(StoreError::Body(e.to_string())),
            None => return store.put(key, buf.freeze()).await,
        }
    }
    let upload_id = store.create_multipart(key).await?;
    match send_parts(store, key, &upload_id, buf, &mut body, opts).await {
        Ok(parts) => match store.complete_multipart(key, &upload_id, parts).await {
            Ok(meta) => Ok(meta),
            Err(e) => {
                abort(store, key, &upload_id).await;
                Err(e)
            }
        },
        Err(e) => {
            abort(store, key, &upload_id).await;
            Err(e)
        }
    }
}

async fn abort(store: &SharedStore, key: &str, upload_id: &str) {
    if let Err(e) = store.abort_multipart(key, upload_id).await {
        // The abort-multipart lifecycle job removes what is left.
        tracing::warn!(key, upload_id, error = %e, "could not abort multipart upload");
    }
}

async fn send_parts<S, E>(
    store: &SharedStore,
    key: &str,
    upload_id: &str,
    mut buf: BytesMut,
    body: &mut std::pin::Pin<&mut S>,
    opts: UploadOptions,
) -> Result<Vec<PartTag>, StoreError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    // Parts run as tasks so that they progress while the next part is read from the body.
    let mut in_flight: JoinSet<Result<PartTag, StoreError>> = JoinSet::new();
    let result = async {
        let mut parts = Vec::new();
        let mut number = 0u32;
        let mut done = false;
        loop {
            while buf.len() >= opts.part_size || (done && !buf.is_empty()) {
                let take = buf.len().min(opts.part_size);
                let chunk = buf.split_to(take).freeze();
                number += 1;
                if number > 10_000 {
                    return Err(StoreError::Body("body needs more than 10 000 parts; raise storage.part_size".into()));
                }
                if in_flight.len() >= opts.concurrency {
                    parts.push(joined(in_flight.join_next().await.expect("non-empty"))?);
                }
                let (store, key, id) = (store.clone(), key.to_string(), upload_id.to_string());
                in_flight.spawn(async move { store.put_part(&key, &id, number, chunk).await });
            }
            if done {
                break;
            }
            match body.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(StoreError::Body(e.to_string())),
                None => done = true,
            }
        }
        while let Some(p) = in_flight.join_next().await {
            parts.push(joined(p)?);
        }
        Ok(parts)
    }
    .await;
    if result.is_err() {
        // No part may land after the abort.
        in_flight.shutdown().await;
    }
    result
}

fn joined(r: Result<Result<PartTag, StoreError>, tokio::task::JoinError>) -> Result<PartTag, StoreError> {
    r.map_err(|e| StoreError::Io(std::io::Error::other(e)))?
}
