//! Storing one `PATCH` body of a tus upload: the tail kept so far and the body become
//! whole parts of the multipart upload plus a new tail; then the row moves on. The bytes
//! are durable before the row says so; a crash in between leaves objects that no row
//! names (new parts are overwritten by the next `PATCH`, stray tails go with the upload).

use super::headers::Checksum;
use super::lock::Held;
use crate::body;
use crate::error::IngestError;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use imagelake_core::app::Context;
use imagelake_core::record;
use imagelake_core::resumable::{tail_key, ResumableUpload};
use imagelake_core::store::append::append_parts;
use imagelake_core::store::upload::UploadOptions;
use imagelake_core::store::StoreError;
use std::sync::{Arc, Mutex};

/// Appends `body` at the upload's offset; returns the upload as it now stands.
pub async fn append(
    ctx: &Context,
    mut u: ResumableUpload,
    held: &Held,
    body: body::Lingering,
    checksum: Option<Checksum>,
) -> Result<ResumableUpload, IngestError> {
    let from = u.offset;
    let room = match u.length {
        Some(len) => len - u.offset,
        None => ctx.config.ingest.max_upload_bytes.0.saturating_sub(u.offset),
    };
    let key = record::original_key(&u.customer, &u.id);
    let tail = read_tail(ctx, &u).await?;
    // The body's guards, as for `POST /v1/images`: idle and total time, and the room left.
    let verdict = body::Verdict::default();
    let (idle, total) = (ctx.config.ingest.body_idle_timeout.0, ctx.config.ingest.max_upload_time.0);
    let raw = body::timed(body, idle, total, verdict.clone());
    let over = Arc::new(Mutex::new(false));
    let sum = Arc::new(Mutex::new(checksum));
    let guarded = {
        let (over, sum) = (over.clone(), sum.clone());
        let mut seen = 0u64;
        raw.map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len() as u64;
            if seen > room {
                *over.lock().unwrap() = true;
                return Err(format!("the body is longer than the {room} bytes left"));
            }
            if let Some(c) = sum.lock().unwrap().as_mut() {
                c.update(&chunk);
            }
            Ok::<Bytes, String>(chunk)
        })
    };
    let opts = UploadOptions { part_size: u.part_size as usize, ..UploadOptions::from_config(&ctx.config.storage) };
    let mut upload_id = u.multipart_id.clone();
    let next = u.parts.last().map_or(1, |p| p.number + 1);
    let appended = append_parts(&ctx.store, &key, &mut upload_id, next, tail, guarded, opts).await?;
    let refusal = if *over.lock().unwrap() {
        Some(IngestError::TooLarge(u.length.unwrap_or(ctx.config.ingest.max_upload_bytes.0)))
    } else {
        let checked = sum.lock().unwrap().take();
        match checked {
            // A chunk with a checksum is kept whole or not at all.
            Some(_) if appended.body_error.is_some() => Some(IngestError::Truncated("the chunk ended early".into())),
            Some(c) => (!c.matches()).then(|| {
                IngestError::Status(
                    super::headers::status(460),
                    "checksum_mismatch",
                    "the chunk does not match its Upload-Checksum; it was dropped".into(),
                )
            }),
            None => None,
        }
    };
    if let Some(e) = refusal {
        // Nothing of this body is kept: parts stored under new numbers are replaced by
        // the next PATCH, and a multipart upload made for them is dropped.
        if appended.created {
            if let Some(id) = &upload_id {
                let _ = ctx.store.abort_multipart(&key, id).await;
            }
        }
        return Err(e);
    }
    let body_error = appended.body_error.clone();
    u.offset = from + appended.read;
    u.parts.extend(appended.parts);
    u.multipart_id = upload_id;
    let old_tail = u.tail_key.take();
    if !appended.rest.is_empty() {
        let k = tail_key(&u.customer, &u.id, u.offset);
        ctx.store.put(&k, appended.rest.freeze()).await?;
        u.tail_key = Some(k);
    }
    u.expires_at = ctx.clock.now() + super::expiry(ctx);
    if !ctx.meta.advance_resumable(&u, from, &held.token).await? {
        return Err(IngestError::Status(
            axum::http::StatusCode::CONFLICT,
            "offset_mismatch",
            format!("upload {} moved on while this chunk was stored; HEAD it for its offset", u.id),
        ));
    }
    if let Some(old) = old_tail.filter(|k| Some(k) != u.tail_key.as_ref()) {
        let _ = ctx.store.delete_many(&[old]).await;
    }
    if let Some(e) = body_error {
        // What arrived is kept; the client resumes from HEAD's offset.
        tracing::info!(upload = %u.id, offset = u.offset, error = %e, "a PATCH body ended early; its prefix is kept");
        let why = verdict.lock().unwrap().take();
        return Err(why.unwrap_or(IngestError::Truncated(e)));
    }
    Ok(u)
}

/// The bytes of the upload's tail, to lead the next part.
async fn read_tail(ctx: &Context, u: &ResumableUpload) -> Result<BytesMut, IngestError> {
    let want = u.tail_bytes();
    let Some(key) = u.tail_key.as_deref().filter(|_| want > 0) else { return Ok(BytesMut::new()) };
    let got = ctx.store.get(key, Some(0..want)).await.map_err(|e| match e {
        StoreError::NotFound(_) => IngestError::Internal(format!("upload {}: its tail {key} is missing", u.id)),
        e => e.into(),
    })?;
    let bytes = got.bytes().await?;
    if bytes.len() as u64 != want {
        return Err(IngestError::Internal(format!("upload {}: its tail holds {} bytes, not {want}", u.id, bytes.len())));
    }
    Ok(BytesMut::from(&bytes[..]))
}

/// Makes the original whole from the parts and the tail: the tail becomes the last part
/// (or, with no parts, the object itself). Already whole (a retried completion): nothing.
pub async fn assemble(ctx: &Context, u: &ResumableUpload) -> Result<(), IngestError> {
    let key = record::original_key(&u.customer, &u.id);
    let length = u.length.unwrap_or(u.offset);
    if let Some(meta) = ctx.store.head(&key).await? {
        if meta.size == length {
            return Ok(());
        }
    }
    let tail = read_tail(ctx, u).await?.freeze();
    match &u.multipart_id {
        None => {
            ctx.store.put(&key, tail).await?;
        }
        Some(id) => {
            let mut parts: Vec<imagelake_core::store::PartTag> =
                u.parts.iter().map(|p| imagelake_core::store::PartTag { number: p.number, etag: p.etag.clone() }).collect();
            if !tail.is_empty() {
                let number = u.parts.last().map_or(1, |p| p.number + 1);
                parts.push(ctx.store.put_part(&key, id, number, tail).await?);
            }
            ctx.store.complete_multipart(&key, id, parts).await?;
        }
    }
    Ok(())
}
