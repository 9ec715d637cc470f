//! The tus 1.0 protocol (<https://tus.io/protocols/resumable-upload>) at `/v1/uploads`,
//! with the extensions creation, creation-with-upload, creation-defer-length,
//! termination, expiration and checksum.

use super::headers::{self, Checksum, IMAGE_HEADER, TUS_VERSION};
use super::lock::Held;
use super::patch;
use crate::error::IngestError;
use crate::slots::UploadSlots;
use crate::upload;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use imagelake_core::app::Context;
use imagelake_core::auth::Principal;
use imagelake_core::ids;
use imagelake_core::problem::Problem;
use imagelake_core::resumable::{Kind, ResumableUpload};

/// Every answer of these routes says which protocol version it speaks.
pub async fn stamp(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    if res.status() == StatusCode::PRECONDITION_FAILED {
        res.headers_mut().insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    }
    res
}

/// `OPTIONS`: what this server supports (no key needed, as for a CORS preflight).
#[utoipa::path(
    options,
    path = "/v1/uploads",
    tag = "uploads",
    responses(
        (status = 204, description = "What this server supports; no key needed",
            headers(
                ("Tus-Version" = String, description = "`1.0.0`"),
                ("Tus-Extension" = String, description = "creation, creation-with-upload, creation-defer-length, termination, expiration, checksum"),
                ("Tus-Max-Size" = u64, description = "`ingest.max_upload_bytes`"),
                ("Tus-Checksum-Algorithm" = String, description = "`sha1,sha256`"),
            )),
    ),
)]
pub async fn options(State(ctx): State<Context>) -> Response {
    let max = ctx.config.ingest.max_upload_bytes.0.to_string();
    (
        StatusCode::NO_CONTENT,
        [
            ("tus-version", TUS_VERSION.to_string()),
            ("tus-extension", headers::EXTENSIONS.to_string()),
            ("tus-max-size", max),
            ("tus-checksum-algorithm", headers::CHECKSUMS.to_string()),
        ],
    )
        .into_response()
}

/// `POST /v1/uploads`: a new upload, with its first bytes if the request has a body.
#[utoipa::path(
    post,
    path = "/v1/uploads",
    tag = "uploads",
    security(("bearer" = [])),
    params(
        ("Tus-Resumable" = String, Header, description = "`1.0.0`, the protocol version (412 otherwise)"),
        ("Upload-Length" = Option<u64>, Header, description = "The upload's size in bytes; or send `Upload-Defer-Length: 1`"),
        ("Upload-Defer-Length" = Option<String>, Header, description = "`1`: the size is sent with a later `PATCH`"),
        ("Upload-Metadata" = Option<String>, Header, description = "Comma-separated `key base64(value)` pairs: `filename`, `filetype`, `variants` and `callback_url` (as on `POST /v1/images`)"),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1` or `sha256` and the base64 digest of this request's body"),
    ),
    request_body(description = "Optional: the upload's first bytes (creation-with-upload)", content((upload::ImageBytes = "application/offset+octet-stream"))),
    responses(
        (status = 201, description = "Created; resume with `HEAD` and `PATCH` on `Location`",
            headers(
                ("Location" = String, description = "`/v1/uploads/{id}`"),
                ("Upload-Offset" = u64, description = "Bytes stored so far"),
                ("Upload-Expires" = String, description = "When an unfinished upload is removed (HTTP date)"),
                ("Imagelake-Image" = String, description = "`/v1/images/{id}`, once the whole image arrived"),
            )),
        (status = 400, description = "A bad header (`invalid_header`, `invalid_metadata`, `bad_checksum`), an empty upload (`empty_body`), an unknown variant, a refused callback URL, a body cut short", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role cannot upload (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body arrived too slowly", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`Upload-Offset` is not 0 (`offset_mismatch`)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`Tus-Resumable` missing or not `1.0.0` (`tus_version`); the answer carries `Tus-Version`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than `ingest.max_upload_bytes` or than `Upload-Length` (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body that is not `application/offset+octet-stream`, or a whole upload that is no image (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The whole upload declares more pixels than `[processor] max_pixels` (`image_too_large`); it is removed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many incomplete uploads (`ingest.max_open_uploads`) or uploads at once for this key", body = Problem, content_type = "application/problem+json"),
        (status = 460, description = "The body does not match `Upload-Checksum` (`checksum_mismatch`); nothing of it is kept", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The object store or the metadata database is unavailable, or too many uploads are in progress; retry", body = Problem, content_type = "application/problem+json"),
        (status = 507, description = "Storage is at capacity (`insufficient_storage`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create(State(ctx): State<Context>, who: Principal, request: Request) -> Result<Response, IngestError> {
    // Whatever the answer, the body is read on (bounded) so the client gets it.
    let (parts, body) = request.into_parts();
    let body = crate::body::Lingering::new(body.into_data_stream());
    let h = parts.headers;
    headers::check_version(&h)?;
    if !who.can_upload() {
        return Err(IngestError::Forbidden("this key's role cannot upload images"));
    }
    let length = headers::upload_length(&h)?;
    let deferred = headers::deferred(&h)?;
    if length.is_none() != deferred {
        return Err(IngestError::BadRequest(
            "invalid_header",
            "send exactly one of Upload-Length and Upload-Defer-Length: 1".into(),
        ));
    }
    if length == Some(0) {
        return Err(IngestError::EmptyBody);
    }
    let max = ctx.config.ingest.max_upload_bytes.0;
    if length.is_some_and(|l| l > max) {
        return Err(IngestError::TooLarge(max));
    }
    crate::capacity::check(&ctx)?;
    let raw = h.get("upload-metadata").map(|v| v.to_str().map(str::to_string));
    let raw = raw.transpose().map_err(|_| IngestError::BadRequest("invalid_metadata", "Upload-Metadata is not ASCII".into()))?;
    let meta = headers::metadata(raw.as_deref().unwrap_or(""))?;
    let variants = upload::requested_variants(&ctx, meta.variants.as_deref())?;
    let callback_url = match meta.callback_url {
        Some(url) => Some(upload::validate_callback(&ctx, url).await?),
        None => None,
    };
    if ctx.meta.open_resumables(&who.customer).await? >= ctx.config.ingest.max_open_uploads {
        return Err(IngestError::TooMany(format!(
            "this customer has {} incomplete uploads, the most allowed; finish or terminate some",
            ctx.config.ingest.max_open_uploads
        )));
    }
    let now = ctx.clock.now();
    let u = ResumableUpload {
        id: ids::new_id(),
        customer: who.customer.clone(),
        kind: Kind::Tus,
        length,
        offset: 0,
        metadata: raw.unwrap_or_default(),
        variants,
        callback_url,
        multipart_id: None,
        part_size: imagelake_core::store::upload::UploadOptions::from_config(&ctx.config.storage).part_size as u64,
        parts: Vec::new(),
        tail_key: None,
        created_at: now,
        expires_at: now + super::expiry(&ctx),
        completed_at: None,
    };
    ctx.meta.create_resumable(&u).await?;
    let location = format!("/v1/uploads/{}", u.id);
    let has_body = headers::content_length(&h)?.unwrap_or(0) > 0 || h.contains_key(header::TRANSFER_ENCODING);
    let (u, image) = if has_body {
        headers::check_body_type(&h)?;
        write(&ctx, u, &h, &parts.extensions, body).await?
    } else {
        (u, None)
    };
    let mut res = (StatusCode::CREATED, [(header::LOCATION, location)]).into_response();
    describe(res.headers_mut(), &u, image.as_deref());
    Ok(res)
}

/// `HEAD /v1/uploads/{id}`: where the upload stands.
#[utoipa::path(
    head,
    path = "/v1/uploads/{id}",
    tag = "uploads",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The upload's id"),
        ("Tus-Resumable" = String, Header, description = "`1.0.0`, the protocol version (412 otherwise)"),
    ),
    responses(
        (status = 200, description = "Where the upload stands",
            headers(
                ("Upload-Offset" = u64, description = "Bytes stored so far: resume from here"),
                ("Upload-Length" = u64, description = "The size, unless deferred"),
                ("Upload-Defer-Length" = String, description = "`1` while the size is not known"),
                ("Upload-Metadata" = String, description = "As sent on creation"),
                ("Upload-Expires" = String, description = "When an unfinished upload is removed (HTTP date)"),
                ("Imagelake-Image" = String, description = "`/v1/images/{id}`, once the whole image arrived"),
                ("Cache-Control" = String, description = "`no-store`"),
            )),
        (status = 400, description = "A whole upload of no bytes"),
        (status = 401, description = "No key, or an unknown one"),
        (status = 404, description = "No such upload for this key"),
        (status = 410, description = "The upload expired (`upload_expired`)"),
        (status = 412, description = "`Tus-Resumable` missing or not `1.0.0`"),
        (status = 415, description = "The whole upload is no image; it is removed"),
        (status = 422, description = "The whole upload declares too many pixels; it is removed"),
        (status = 423, description = "Another request holds the upload (`upload_locked`)"),
        (status = 503, description = "A backing service is unavailable; retry"),
    ),
)]
pub async fn head(
    State(ctx): State<Context>,
    who: Principal,
    Path(id): Path<String>,
    h: HeaderMap,
) -> Result<Response, IngestError> {
    headers::check_version(&h)?;
    let mut u = super::owned(&ctx, &who, &id).await?;
    super::check_live(&ctx, &u)?;
    let mut image = done_image(&ctx, &u).await?;
    if u.is_full() && image.is_none() {
        // Every byte arrived but the image was not made (the last PATCH failed after its
        // bytes were stored): clients take a full offset for done, so it is made now.
        let held = Held::take(&ctx, &u.id).await?;
        u = ctx.meta.resumable(&u.id).await?.ok_or_else(|| IngestError::NotFoundOf("upload", id.clone()))?;
        let request_id = h.get("request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        image = Some(complete(&ctx, &u, held, request_id).await?);
    }
    let mut res = StatusCode::OK.into_response();
    let out = res.headers_mut();
    describe(out, &u, image.as_deref());
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match u.length {
        Some(_) => {}
        None => {
            out.insert("upload-defer-length", HeaderValue::from_static("1"));
        }
    }
    if let Ok(v) = HeaderValue::from_str(&u.metadata) {
        if !u.metadata.is_empty() {
            out.insert("upload-metadata", v);
        }
    }
    Ok(res)
}

/// `PATCH /v1/uploads/{id}`: bytes at the upload's offset.
#[utoipa::path(
    patch,
    path = "/v1/uploads/{id}",
    tag = "uploads",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The upload's id"),
        ("Tus-Resumable" = String, Header, description = "`1.0.0`, the protocol version (412 otherwise)"),
        ("Upload-Offset" = u64, Header, description = "Where these bytes start: the offset `HEAD` answered"),
        ("Upload-Length" = Option<u64>, Header, description = "The size, for an upload created with `Upload-Defer-Length: 1`"),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1` or `sha256` and the base64 digest of this request's body"),
    ),
    request_body(description = "The bytes at `Upload-Offset`", content((upload::ImageBytes = "application/offset+octet-stream"))),
    responses(
        (status = 204, description = "Stored",
            headers(
                ("Upload-Offset" = u64, description = "Bytes stored so far"),
                ("Upload-Expires" = String, description = "When an unfinished upload is removed (HTTP date)"),
                ("Imagelake-Image" = String, description = "`/v1/images/{id}`, once the whole image arrived"),
            )),
        (status = 400, description = "A bad header (`invalid_header`, `bad_checksum`), a body cut short, an empty whole upload", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such upload for this key (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body arrived too slowly", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`Upload-Offset` is not where the upload stands (`offset_mismatch`)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The upload expired (`upload_expired`)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`Tus-Resumable` missing or not `1.0.0` (`tus_version`); the answer carries `Tus-Version`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Past `Upload-Length` or `ingest.max_upload_bytes` (`payload_too_large`); nothing of the body is kept", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body that is not `application/offset+octet-stream`, or a whole upload that is no image (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The whole upload declares more pixels than `[processor] max_pixels` (`image_too_large`); it is removed", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "Another request writes this upload (`upload_locked`); retry", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many uploads at once for this key", body = Problem, content_type = "application/problem+json"),
        (status = 460, description = "The body does not match `Upload-Checksum` (`checksum_mismatch`); nothing of it is kept", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The object store or the metadata database is unavailable, or too many uploads are in progress; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn patch(
    State(ctx): State<Context>,
    who: Principal,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, IngestError> {
    let (parts, body) = request.into_parts();
    let body = crate::body::Lingering::new(body.into_data_stream());
    let h = parts.headers;
    headers::check_version(&h)?;
    headers::check_body_type(&h)?;
    let offset = headers::upload_offset(&h)?;
    let u = super::owned(&ctx, &who, &id).await?;
    super::check_live(&ctx, &u)?;
    check_offset(&u, offset)?;
    let (u, image) = write(&ctx, u, &h, &parts.extensions, body).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    describe(res.headers_mut(), &u, image.as_deref());
    Ok(res)
}

/// `DELETE /v1/uploads/{id}`: the upload and what it stored are removed (its image, once
/// made, stays).
#[utoipa::path(
    delete,
    path = "/v1/uploads/{id}",
    tag = "uploads",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The upload's id"),
        ("Tus-Resumable" = String, Header, description = "`1.0.0`, the protocol version (412 otherwise)"),
    ),
    responses(
        (status = 204, description = "The upload and its stored bytes are removed (an image it made stays)"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such upload for this key (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`Tus-Resumable` missing or not `1.0.0` (`tus_version`); the answer carries `Tus-Version`", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "Another request writes this upload (`upload_locked`); retry", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The object store or the metadata database is unavailable, or too many uploads are in progress; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn terminate(
    State(ctx): State<Context>,
    who: Principal,
    Path(id): Path<String>,
    h: HeaderMap,
) -> Result<Response, IngestError> {
    headers::check_version(&h)?;
    let u = super::owned(&ctx, &who, &id).await?;
    let _held = Held::take(&ctx, &u.id).await?;
    match ctx.meta.resumable(&u.id).await? {
        Some(u) if u.completed_at.is_none() && ctx.meta.image(&u.id).await?.is_none() => {
            imagelake_core::resumable::remove(&ctx, &u).await
        }
        Some(u) => {
            ctx.meta.delete_resumable(&u.id).await?;
        }
        None => {}
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn check_offset(u: &ResumableUpload, offset: u64) -> Result<(), IngestError> {
    if offset != u.offset {
        return Err(IngestError::Status(
            StatusCode::CONFLICT,
            "offset_mismatch",
            format!("Upload-Offset is {offset}, but the upload stands at {}", u.offset),
        ));
    }
    Ok(())
}

/// Stores the request's body at the upload's offset under its lock, and finishes the
/// upload when it is whole. Returns the upload and its image's path, once made.
async fn write(
    ctx: &Context,
    u: ResumableUpload,
    h: &HeaderMap,
    extensions: &axum::http::Extensions,
    body: crate::body::Lingering,
) -> Result<(ResumableUpload, Option<String>), IngestError> {
    let checksum = Checksum::parse(h)?;
    let slots = extensions.get::<UploadSlots>().cloned().ok_or_else(|| IngestError::Internal("no upload slots".into()))?;
    let _slot = slots.take(&ctx.config.ingest, imagelake_core::auth::key_tag(h).unwrap_or_default())?;
    let held = Held::take(ctx, &u.id).await?;
    // Under the lock, the row as it is now: another request may have moved it.
    let mut u = ctx.meta.resumable(&u.id).await?.ok_or_else(|| IngestError::NotFoundOf("upload", u.id.clone()))?;
    super::check_live(ctx, &u)?;
    if let Some(offset) = h.get("upload-offset").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()) {
        check_offset(&u, offset)?;
    }
    if let Some(len) = headers::upload_length(h)? {
        match u.length {
            Some(have) if have != len => {
                return Err(IngestError::BadRequest("invalid_header", format!("Upload-Length is {have} already")))
            }
            _ if len < u.offset => {
                return Err(IngestError::BadRequest("invalid_header", "Upload-Length is below the offset".into()))
            }
            _ if len > ctx.config.ingest.max_upload_bytes.0 => {
                return Err(IngestError::TooLarge(ctx.config.ingest.max_upload_bytes.0))
            }
            _ => u.length = Some(len),
        }
    }
    let sent = headers::content_length(h)?;
    if let (Some(len), Some(sent)) = (u.length, sent) {
        if u.offset + sent > len {
            return Err(IngestError::TooLarge(len));
        }
    }
    let request_id = h.get("request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let done = u.completed_at.is_some() || ctx.meta.image(&u.id).await?.is_some();
    if !done && (sent != Some(0) || !u.is_full()) {
        u = patch::append(ctx, u, &held, body, checksum).await?;
    }
    if !u.is_full() {
        return Ok((u, None));
    }
    let image = complete(ctx, &u, held, request_id).await?;
    Ok((u, Some(image)))
}

/// Makes the image of a full upload: the original assembled, then committed (each step
/// finds itself done when it is repeated). Returns the image's path.
async fn complete(ctx: &Context, u: &ResumableUpload, held: Held, request_id: Option<String>) -> Result<String, IngestError> {
    if u.completed_at.is_none() && ctx.meta.image(&u.id).await?.is_none() {
        ctx.meta.begin_upload(&u.id, &u.customer, ctx.clock.now()).await?;
        patch::assemble(ctx, u).await?;
    }
    let rec = super::finish(ctx, u, request_id).await?;
    drop(held);
    Ok(format!("/v1/images/{}", rec.id))
}

/// The image's path, once the upload made one.
async fn done_image(ctx: &Context, u: &ResumableUpload) -> Result<Option<String>, IngestError> {
    let made = u.completed_at.is_some() || (u.is_full() && ctx.meta.image(&u.id).await?.is_some());
    Ok(made.then(|| format!("/v1/images/{}", u.id)))
}

fn describe(out: &mut HeaderMap, u: &ResumableUpload, image: Option<&str>) {
    out.insert("upload-offset", HeaderValue::from(u.offset));
    if let Some(len) = u.length {
        out.insert("upload-length", HeaderValue::from(len));
    }
    if u.completed_at.is_none() && image.is_none() {
        out.insert("upload-expires", headers::http_date(u.expires_at));
    }
    if let Some(path) = image.and_then(|p| HeaderValue::from_str(p).ok()) {
        out.insert(IMAGE_HEADER, path);
    }
}
