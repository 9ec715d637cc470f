//! Direct uploads (S3 backend only): the client sends the parts of a multipart upload
//! straight to the bucket with presigned URLs, then asks for the image. The bytes never
//! pass through this process; on completion it checks the object's size and its first
//! bytes, as it would a streamed upload's.

use super::lock::Held;
use crate::error::IngestError;
use crate::upload;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use imagelake_core::app::Context;
use imagelake_core::auth::Principal;
use imagelake_core::problem::Problem;
use imagelake_core::record::{self, ImageRecord};
use imagelake_core::resumable::{Kind, ResumableUpload};
use imagelake_core::store::{PartTag, StoreError};
use serde::{Deserialize, Serialize};

/// S3's limits: at most 10 000 parts, each at most 5 GiB.
const MAX_PARTS: u64 = 10_000;
const MAX_PART: u64 = 5 << 30;

/// A direct upload to be: its size, and what `POST /v1/images` takes as query parameters.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDirect {
    size: u64,
    filename: Option<String>,
    content_type: Option<String>,
    variants: Option<String>,
    callback_url: Option<String>,
}

/// Where to `PUT` one part.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartUrl {
    number: u32,
    url: String,
}

/// A direct upload: `PUT` each part to its URL, then `POST` the ETags to `complete`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DirectUpload {
    id: String,
    part_size: u64,
    parts: Vec<PartUrl>,
    expires_at: chrono::DateTime<chrono::Utc>,
    complete: String,
}

/// The parts sent, in order.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Completion {
    parts: Vec<SentPart>,
}

/// A part and the ETag its `PUT` answered.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SentPart {
    number: u32,
    etag: String,
}

fn bad_json(e: axum::extract::rejection::JsonRejection) -> IngestError {
    IngestError::BadRequest("invalid_json", e.body_text())
}

/// The part size for `size` bytes: the configured one, or larger when `size` needs more
/// than 10 000 parts of it (rounded up to whole MiB).
fn part_size(configured: u64, size: u64) -> u64 {
    let least = size.div_ceil(MAX_PARTS);
    configured.max(least.div_ceil(1 << 20) << 20).min(MAX_PART)
}

/// `POST /v1/uploads/direct`: a multipart upload in the bucket and a presigned URL per part.
#[utoipa::path(
    post,
    path = "/v1/uploads/direct",
    tag = "uploads",
    security(("bearer" = [])),
    request_body(content = NewDirect, description = "The declared size, and optionally `filename`, `content_type`, `variants`, `callback_url`"),
    responses(
        (status = 201, description = "The upload's id, its part size (within S3's 5 MiB to 5 GiB and 10,000 parts) and a presigned URL per part", body = DirectUpload),
        (status = 400, description = "A malformed body (`invalid_json`), a size of 0 (`empty_body`), a field too long, an unknown variant, a refused callback URL", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role cannot upload (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than `ingest.max_upload_bytes` (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many incomplete uploads (`ingest.max_open_uploads`)", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "The store is not S3 (`not_implemented`): use `/v1/uploads` or `POST /v1/images`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The object store or the metadata database is unavailable; retry", body = Problem, content_type = "application/problem+json"),
        (status = 507, description = "Storage is at capacity (`insufficient_storage`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create(
    State(ctx): State<Context>,
    who: Principal,
    body: Result<Json<NewDirect>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, IngestError> {
    if ctx.store.backend() != "s3" {
        return Err(IngestError::Status(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            "direct uploads need the S3 backend ([storage] backend = \"s3\"); use tus at /v1/uploads or POST /v1/images".into(),
        ));
    }
    let Json(req) = body.map_err(bad_json)?;
    if !who.can_upload() {
        return Err(IngestError::Forbidden("this key's role cannot upload images"));
    }
    let max = ctx.config.ingest.max_upload_bytes.0;
    if req.size > max {
        return Err(IngestError::TooLarge(max));
    }
    if req.size == 0 {
        return Err(IngestError::EmptyBody);
    }
    if req.filename.as_ref().is_some_and(|f| f.len() > 1024) || req.content_type.as_ref().is_some_and(|c| c.len() > 255) {
        return Err(IngestError::BadRequest("invalid_field", "filename or content_type is too long".into()));
    }
    crate::capacity::check(&ctx)?;
    let variants = upload::requested_variants(&ctx, req.variants.as_deref())?;
    let callback_url = match req.callback_url {
        Some(url) => Some(upload::validate_callback(&ctx, url).await?),
        None => None,
    };
    if ctx.meta.open_resumables(&who.customer).await? >= ctx.config.ingest.max_open_uploads {
        return Err(IngestError::TooMany("this customer has too many incomplete uploads; finish or drop some".into()));
    }
    let configured = imagelake_core::store::upload::UploadOptions::from_config(&ctx.config.storage).part_size as u64;
    let part_size = part_size(configured, req.size);
    let id = imagelake_core::ids::new_id();
    let key = record::original_key(&who.customer, &id);
    let multipart = ctx.store.create_multipart(&key).await?;
    let now = ctx.clock.now();
    let u = ResumableUpload {
        id: id.clone(),
        customer: who.customer.clone(),
        kind: Kind::Direct,
        length: Some(req.size),
        offset: 0,
        metadata: req.filename.unwrap_or_default(),
        variants,
        callback_url,
        multipart_id: Some(multipart.clone()),
        part_size,
        parts: Vec::new(),
        tail_key: None,
        created_at: now,
        expires_at: now + super::expiry(&ctx),
        completed_at: None,
    };
    if let Err(e) = ctx.meta.create_resumable(&u).await {
        let _ = ctx.store.abort_multipart(&key, &multipart).await;
        return Err(e.into());
    }
    let count = req.size.div_ceil(part_size) as u32;
    let mut parts = Vec::with_capacity(count as usize);
    for number in 1..=count {
        let url = ctx.store.presign_part(&key, &multipart, number, ctx.config.ingest.upload_expiry.0).await?;
        let url = url.ok_or_else(|| IngestError::Internal("the store made no presigned URL".into()))?;
        parts.push(PartUrl { number, url });
    }
    let out =
        DirectUpload { complete: format!("/v1/uploads/direct/{id}/complete"), id, part_size, parts, expires_at: u.expires_at };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `POST /v1/uploads/direct/{id}/complete`: the parts sent become the original, checked,
/// and then an image.
#[utoipa::path(
    post,
    path = "/v1/uploads/direct/{id}/complete",
    tag = "uploads",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The direct upload's id")),
    request_body(content = Completion, description = "Every part, numbered from 1, with the ETag its `PUT` answered"),
    responses(
        (status = 202, description = "Accepted: the parts are the original, and the image is queued (repeating the call answers the same)", body = ImageRecord,
            headers(("Location" = String, description = "`/v1/images/{id}`"))),
        (status = 400, description = "A malformed body (`invalid_json`), parts missing or out of order (`invalid_parts`), parts that do not hold the declared size (`size_mismatch`, the upload is dropped), an ETag S3 refuses", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such direct upload for this key (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The upload expired (`upload_expired`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The object is no image in an accepted format (`unsupported_media_type`); it is deleted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The header declares more pixels than `[processor] max_pixels` (`image_too_large`); the object is deleted", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "Another request completes this upload (`upload_locked`); retry", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The object store or the metadata database is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn complete(
    State(ctx): State<Context>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<Completion>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, IngestError> {
    let u = super::owned(&ctx, &who, &id).await?;
    if u.kind != Kind::Direct {
        return Err(IngestError::NotFoundOf("direct upload", id));
    }
    let Json(done) = body.map_err(bad_json)?;
    let _held = Held::take(&ctx, &u.id).await?;
    let u = ctx.meta.resumable(&u.id).await?.ok_or_else(|| IngestError::NotFoundOf("upload", id.clone()))?;
    let request_id = headers.get("request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    if u.completed_at.is_some() || ctx.meta.image(&u.id).await?.is_some() {
        let rec = super::finish(&ctx, &u, request_id).await?;
        return Ok(upload::accepted(&rec));
    }
    super::check_live(&ctx, &u)?;
    let length = u.length.unwrap_or(0);
    let expected = length.div_ceil(u.part_size) as usize;
    let numbered = done.parts.iter().enumerate().all(|(i, p)| p.number as usize == i + 1);
    if done.parts.len() != expected || !numbered {
        return Err(IngestError::BadRequest(
            "invalid_parts",
            format!("send the {expected} parts numbered 1 to {expected}, in order, each with the ETag its PUT answered"),
        ));
    }
    let key = record::original_key(&u.customer, &u.id);
    ctx.meta.begin_upload(&u.id, &u.customer, ctx.clock.now()).await?;
    let parts = done.parts.into_iter().map(|p| PartTag { number: p.number, etag: p.etag }).collect();
    let multipart = u.multipart_id.clone().unwrap_or_default();
    match ctx.store.complete_multipart(&key, &multipart, parts).await {
        Ok(meta) if meta.size == length => {}
        Ok(meta) => {
            imagelake_core::resumable::remove(&ctx, &u).await;
            let _ = ctx.store.delete_many(std::slice::from_ref(&key)).await;
            let _ = ctx.meta.end_upload(&u.id).await;
            return Err(IngestError::BadRequest(
                "size_mismatch",
                format!("the parts hold {} bytes, not the {length} declared; the upload was dropped", meta.size),
            ));
        }
        // Completed by an earlier request that did not get to the image.
        Err(StoreError::NoSuchUpload(_)) if ctx.store.head(&key).await?.is_some_and(|m| m.size == length) => {}
        Err(e) => return Err(e.into()),
    }
    let rec = super::finish(&ctx, &u, request_id).await?;
    Ok(upload::accepted(&rec))
}

#[cfg(test)]
mod tests {
    #[test]
    fn part_size_fits_s3_limits() {
        let mib = 1u64 << 20;
        assert_eq!(super::part_size(16 * mib, 100 * mib), 16 * mib);
        let huge = 5u64 << 40;
        let p = super::part_size(16 * mib, huge);
        assert!(huge.div_ceil(p) <= 10_000 && p.is_multiple_of(mib));
    }
}
