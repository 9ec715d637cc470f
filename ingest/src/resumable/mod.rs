//! Resumable uploads: tus 1.0 at `/v1/uploads` (`tus.rs`) and direct-to-S3 multipart at
//! `/v1/uploads/direct` (`direct.rs`). Their state is a row of the metadata database
//! ([`imagelake_core::resumable`]); this module holds what both share: finding the
//! caller's upload, its write lock, and turning a whole original into an image exactly as
//! `POST /v1/images` does.

pub(crate) mod direct;
mod headers;
mod lock;
mod patch;
pub(crate) mod tus;

use crate::error::IngestError;
use crate::sniff;
use crate::upload::{self, Facts};
use axum::routing::{post, MethodRouter};
use axum::Router;
use imagelake_core::app::Context;
use imagelake_core::auth::Principal;
use imagelake_core::meta::Created;
use imagelake_core::record::{self, ImageRecord};
use imagelake_core::resumable::ResumableUpload;
use imagelake_core::store::StoreError;

/// Bytes read from the start of a whole original to identify it.
const HEAD_BYTES: u64 = 256 * 1024;

/// The routes under `/v1/uploads`.
pub fn router() -> Router<Context> {
    let upload: MethodRouter<Context> = axum::routing::head(tus::head).patch(tus::patch).delete(tus::terminate);
    Router::new()
        .route("/v1/uploads", post(tus::create).options(tus::options))
        .route("/v1/uploads/{id}", upload.options(tus::options))
        .route("/v1/uploads/direct", post(direct::create))
        .route("/v1/uploads/direct/{id}/complete", post(direct::complete))
        .layer(axum::middleware::map_response(tus::stamp))
}

/// The caller's upload: another customer's, an unknown id and a malformed one are all
/// "not found".
async fn owned(ctx: &Context, who: &Principal, id: &str) -> Result<ResumableUpload, IngestError> {
    let not_found = || IngestError::NotFoundOf("upload", id.to_string());
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    match ctx.meta.resumable(id).await? {
        Some(u) if u.customer == who.customer => Ok(u),
        _ => Err(not_found()),
    }
}

/// An incomplete upload past its expiry is gone, even before the lifecycle removed it.
fn check_live(ctx: &Context, u: &ResumableUpload) -> Result<(), IngestError> {
    if u.completed_at.is_none() && u.expires_at < ctx.clock.now() {
        return Err(IngestError::Status(
            axum::http::StatusCode::GONE,
            "upload_expired",
            format!("upload {} expired at {}; start a new one", u.id, u.expires_at.to_rfc3339()),
        ));
    }
    Ok(())
}

fn expiry(ctx: &Context) -> chrono::Duration {
    chrono::Duration::from_std(ctx.config.ingest.upload_expiry.0).unwrap_or(chrono::Duration::days(1))
}

/// The image of an upload whose original is whole under its key: identified from its
/// first bytes, committed with its job like any upload, announced. A body that is no image
/// (415), or one whose header declares more than `[processor] max_pixels` (422), is
/// removed with the upload. Idempotent: a committed image is returned as it is.
async fn finish(ctx: &Context, u: &ResumableUpload, request_id: Option<String>) -> Result<ImageRecord, IngestError> {
    if let Some(rec) = ctx.meta.image(&u.id).await? {
        return Ok(rec);
    }
    let key = record::original_key(&u.customer, &u.id);
    let length = u.length.unwrap_or(u.offset);
    let head = match ctx.store.get(&key, Some(0..HEAD_BYTES.min(length.max(1)))).await {
        Ok(got) => got.bytes().await?,
        Err(StoreError::NotFound(_)) => return Err(IngestError::Internal(format!("upload {}: the original is missing", u.id))),
        Err(StoreError::InvalidRange { .. }) => bytes::Bytes::new(),
        Err(e) => return Err(e.into()),
    };
    let checked = match sniff::sniff(&head) {
        _ if length == 0 => Err(IngestError::EmptyBody),
        None => Err(IngestError::NotAnImage(sniff::refusal(&head))),
        Some(f) => sniff::too_many_pixels(&head, ctx.config.processor.max_pixels).map_or(Ok(f), Err),
    };
    let format = match checked {
        Ok(f) => f,
        Err(e) => {
            imagelake_core::resumable::remove(ctx, u).await;
            let _ = ctx.store.delete_many(std::slice::from_ref(&key)).await;
            let _ = ctx.meta.end_upload(&u.id).await;
            return Err(e);
        }
    };
    let now = ctx.clock.now();
    let facts = Facts {
        id: u.id.clone(),
        customer: u.customer.clone(),
        variants: u.variants.clone(),
        callback_url: u.callback_url.clone(),
        request_id,
        now,
    };
    let (rec, job) = upload::new_image(facts, format, length, &head, String::new());
    match upload::commit(ctx, &rec, &job, None, None).await? {
        Created::New => {}
        // Ids are not reused and this upload takes no Idempotency-Key.
        Created::Duplicate(first) => return Ok(*first),
    }
    if let Err(e) = ctx.meta.complete_resumable(&u.id, now, now + expiry(ctx)).await {
        // HEAD finds the image by its id all the same.
        tracing::warn!(upload = %u.id, error = %e, "could not mark a finished upload complete");
    }
    imagelake_core::resumable::remove_tails(ctx, u).await;
    upload::announce(ctx, &rec, &job).await;
    Ok(rec)
}
