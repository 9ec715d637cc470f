//! Appending a body to a multipart upload in whole parts, for resumable uploads.
//!
//! Unlike [`super::upload::upload_stream`], the body does not end the object: whole parts
//! are stored (`concurrency` at a time, while the next is read) and the bytes after the
//! last whole part are handed back, for the caller to keep until more follow. A body that
//! fails half-way still gives back what it delivered: the parts already stored and the
//! rest, so the caller can keep that prefix.

use super::upload::UploadOptions;
use super::{SharedStore, StoreError};
use crate::resumable::StoredPart;
use bytes::{Bytes, BytesMut};
use futures::stream::{Stream, StreamExt};
use tokio::task::JoinSet;

/// What an append stored.
#[derive(Debug, Default)]
pub struct Appended {
    /// New whole parts, in order.
    pub parts: Vec<StoredPart>,
    /// Bytes after the last whole part (the tail given in, and the body's rest).
    pub rest: BytesMut,
    /// Bytes read from the body.
    pub read: u64,
    /// Why the body ended early, when it did.
    pub body_error: Option<String>,
    /// The multipart upload was created by this append.
    pub created: bool,
}

/// Reads `body` after the `tail` bytes, storing every whole part of `opts.part_size` as
/// part `next_number`, `next_number + 1`, ... of `upload_id` (created on the first whole
/// part when `None`). An error of the store fails the whole append, after the parts in
/// flight ended; what it stored is then not referenced by anyone.
pub async fn append_parts<S, E>(
    store: &SharedStore,
    key: &str,
    upload_id: &mut Option<String>,
    next_number: u32,
    tail: BytesMut,
    body: S,
    opts: UploadOptions,
) -> Result<Appended, StoreError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut out = Appended { rest: tail, ..Appended::default() };
    let mut in_flight: JoinSet<Result<StoredPart, StoreError>> = JoinSet::new();
    let mut number = next_number;
    let result = async {
        loop {
            while out.rest.len() >= opts.part_size {
                let chunk = out.rest.split_to(opts.part_size).freeze();
                if number > 10_000 {
                    return Err(StoreError::Body("the upload needs more than 10 000 parts".into()));
                }
                if upload_id.is_none() {
                    *upload_id = Some(store.create_multipart(key).await?);
                    out.created = true;
                }
                if in_flight.len() >= opts.concurrency {
                    out.parts.push(joined(in_flight.join_next().await.expect("non-empty"))?);
                }
                let (store, key, id, n) = (store.clone(), key.to_string(), upload_id.clone().expect("created"), number);
                in_flight.spawn(async move {
                    let size = chunk.len() as u64;
                    let tag = store.put_part(&key, &id, n, chunk).await?;
                    Ok(StoredPart { number: tag.number, etag: tag.etag, size })
                });
                number += 1;
            }
            match body.next().await {
                Some(Ok(chunk)) => {
                    out.read += chunk.len() as u64;
                    out.rest.extend_from_slice(&chunk);
                }
                Some(Err(e)) => {
                    out.body_error = Some(e.to_string());
                    break;
                }
                None => break,
            }
        }
        while let Some(p) = in_flight.join_next().await {
            out.parts.push(joined(p)?);
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        // No part may land after the caller gave up on them.
        in_flight.shutdown().await;
        return Err(e);
    }
    out.parts.sort_by_key(|p| p.number);
    Ok(out)
}

fn joined(r: Result<Result<StoredPart, StoreError>, tokio::task::JoinError>) -> Result<StoredPart, StoreError> {
    r.map_err(|e| StoreError::Io(std::io::Error::other(e)))?
}
