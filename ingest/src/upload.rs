//! `POST /v1/images`: stream the body to the store, commit the record with its job, send
//! the job.
//!
//! The answer is `202` only once the original is durably stored and the record is
//! committed in the metadata database together with its pending job (the outbox). The
//! job is sent to the queue after the commit; if that fails (a queue outage, a crash),
//! the outbox sweeper (`outbox.rs`) sends it later, so the upload is still accepted and
//! will be processed. Any failure before the commit removes the original, so a client
//! that did not get a `202` can retry without leaving anything behind.

use crate::error::IngestError;
use crate::inspect::{inspect, Inspection};
use crate::slots::{Slot, UploadSlots};
use crate::{body, idempotency, sniff};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use imagelake_core::app::Context;
use imagelake_core::auth::Principal;
use imagelake_core::ids;
use imagelake_core::job::JobMessage;
use imagelake_core::lake::UploadRow;
use imagelake_core::meta::{Created, NewImage};
use imagelake_core::post::Post;
#[allow(unused_imports)]
use imagelake_core::problem::Problem;
use imagelake_core::record::{self, ImageRecord, Status};
use imagelake_core::store::upload::{upload_stream, UploadOptions};
use imagelake_core::webhook;
use serde::Deserialize;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// Comma-separated preset names (e.g. `thumb,medium`); all configured presets when absent.
    pub variants: Option<String>,
    /// An `https://` URL that gets the final record POSTed, signed in `Imagelake-Signature`.
    /// Refused (400) if its host resolves to a private or loopback address.
    pub callback_url: Option<String>,
}

/// The image's bytes, as they are.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ImageBytes(#[allow(dead_code)] Vec<u8>);

/// A `multipart/form-data` upload: the image is the field `file`; the optional text
/// fields `variants` and `callback_url` mean what the query parameters mean (and win over
/// them); other fields are ignored. Text fields are at most 16 KiB, 16 of them.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    variants: Option<String>,
    callback_url: Option<String>,
}

/// Uploads an image. The answer is `202` once the original is durably stored and the
/// record is committed with its processing job (sent to the queue at once, or later if the
/// queue is down); anything short of that answers an error and leaves nothing behind.
#[utoipa::path(
    post,
    path = "/v1/images",
    tag = "images",
    security(("bearer" = [])),
    params(
        UploadParams,
        ("Idempotency-Key" = Option<String>, Header, nullable = false, description = "Retrying with the same key (1 to 255 characters) within 24 h answers the first answer"),
    ),
    request_body(
        description = "The image: raw bytes (any `image/*` or `application/octet-stream` type; the format is sniffed from the bytes), or a multipart form whose field `file` is the image",
        content(
            (ImageBytes = "image/*"),
            (ImageBytes = "application/octet-stream"),
            (UploadForm = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 202, description = "Accepted: stored and queued for processing", body = ImageRecord,
            headers(("Location" = String, description = "`/v1/images/{id}`"))),
        (status = 400, description = "An empty body (`empty_body`), an unknown variant (`unknown_variant`), a refused callback URL, a malformed multipart body (`invalid_multipart`, `missing_file`), a bad `Idempotency-Key`, a body cut short (`body_incomplete`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role cannot upload (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than `ingest.max_upload_bytes` (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not an image in an accepted format (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The header declares more pixels than `[processor] max_pixels` (`image_too_large`); nothing is stored", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The object store or the queue is unavailable; retry (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
        (status = 507, description = "Storage is at capacity (`insufficient_storage`)", body = Problem, content_type = "application/problem+json"),
    ),
)]

pub async fn create(
    State(ctx): State<Context>,
    principal: Principal,
    Query(params): Query<UploadParams>,
    request: Request,
) -> Result<Response, IngestError> {
    accept(ctx, principal, params, request, false).await
}

/// Takes an upload (`POST /v1/images`, or with `post` a multipart `POST /v1/posts`, whose
/// image becomes a post in the same transaction).
pub(crate) async fn accept(
    ctx: Context,
    principal: Principal,
    params: UploadParams,
    request: Request,
    post: bool,
) -> Result<Response, IngestError> {
    if !principal.can_upload() {
        return Err(IngestError::Forbidden("this key's role cannot upload images"));
    }
    let variants = requested_variants(&ctx, params.variants.as_deref())?;
    let headers = request.headers().clone();
    let limit = ctx.config.ingest.max_upload_bytes.0;
    if let Some(len) = content_length(&headers) {
        if len > limit {
            return Err(IngestError::TooLarge(limit));
        }
    }
    // The cheap refusals first: a full store answers 507 without a DNS lookup.
    crate::capacity::check(&ctx)?;
    let callback_url = match params.callback_url {
        Some(url) => Some(validate_callback(&ctx, url).await?),
        None => None,
    };
    // Posts take no Idempotency-Key: the key names an image, not a post.
    let idem = if post { None } else { idempotency::key(&headers)? };
    if let Some(key) = &idem {
        if let Some(first) = ctx.meta.idempotent_image(&principal.customer, key, ctx.clock.now()).await? {
            return Ok(accepted(&first));
        }
    }
    // A slot of the process's and the key's upload limits, held until the upload ends.
    let slots =
        request.extensions().get::<UploadSlots>().cloned().ok_or_else(|| IngestError::Internal("no upload slots".into()))?;
    let tag = imagelake_core::auth::key_tag(&headers).unwrap_or_default();
    let slot = slots.take(&ctx.config.ingest, tag)?;
    // The rest runs as its own task: if the client goes away, the handler's future is
    // dropped, but the task still sees the body fail and cleans up after itself.
    let job = Accept { ctx, customer: principal.customer, variants, callback_url, headers, limit, idem, post, _slot: slot };
    tokio::spawn(job.run(request)).await.map_err(|e| IngestError::Internal(format!("upload task: {e}")))?
}

struct Accept {
    ctx: Context,
    customer: String,
    variants: Vec<String>,
    callback_url: Option<String>,
    headers: HeaderMap,
    limit: u64,
    idem: Option<String>,
    post: bool,
    /// Given back when the upload ends, however it ends.
    _slot: Slot,
}

impl Accept {
    /// Registers the upload as in flight (so that reconcile never takes its original for
    /// an orphan), takes it, and drops the registration if it is not committed.
    async fn run(self, request: Request) -> Result<Response, IngestError> {
        let id = ids::new_id();
        let ctx = self.ctx.clone();
        ctx.meta.begin_upload(&id, &self.customer, ctx.clock.now()).await?;
        let result = self.take(id.clone(), request).await;
        if result.is_err() {
            if let Err(e) = ctx.meta.end_upload(&id).await {
                // Reconcile drops it once it is older than the longest upload.
                tracing::warn!(image_id = %id, error = %e, "could not drop a failed upload's in-flight row");
            }
        }
        result
    }

    async fn take(self, id: String, request: Request) -> Result<Response, IngestError> {
        let Accept { ctx, customer, variants, callback_url, headers, limit, idem, post, _slot } = self;
        let key = record::original_key(&customer, &id);
        let (inspection, fields) = store_body(&ctx, &key, &headers, request, limit).await?;
        let now = ctx.clock.now();
        let settled = async {
            // A multipart form may carry `variants` and `callback_url` as fields, checked
            // like the query's (which they override).
            let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
            let variants = match field("variants") {
                Some(v) => requested_variants(&ctx, Some(&v))?,
                None => variants,
            };
            let mut callback_url = match field("callback_url") {
                Some(url) => Some(validate_callback(&ctx, url).await?),
                None => callback_url,
            };
            // A post's webhooks are the post's (`post.published`, `post.failed`), not the image's.
            let post = post.then(|| crate::posts::draft(&fields, &customer, &id, callback_url.take(), now)).transpose()?;
            Ok::<_, IngestError>((variants, callback_url, post))
        };
        let (variants, callback_url, post) = match settled.await {
            Ok(s) => s,
            Err(e) => {
                // Refused after the body was stored: nothing was acknowledged, nothing stays.
                let _ = ctx.store.delete_many(std::slice::from_ref(&key)).await;
                return Err(e);
            }
        };
        let format = inspection.format.expect("a stored body was identified");
        let sha256 = inspection.sha256.clone().expect("a stored body was hashed");
        let request_id = headers.get("request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let facts = Facts { id: id.clone(), customer, variants, callback_url, request_id, now };
        let (rec, job) = new_image(facts, format, inspection.bytes, &inspection.head, sha256);
        let rec = match commit(&ctx, &rec, &job, idem.as_deref(), post.as_ref()).await {
            Ok(Created::New) => rec,
            Ok(Created::Duplicate(first)) => {
                // A parallel request with the same Idempotency-Key committed first.
                let _ = ctx.store.delete_many(std::slice::from_ref(&key)).await;
                return Ok(accepted(&first));
            }
            Err(e) => {
                // Not acknowledged: take back the original, so that nothing half-done stays.
                let _ = ctx.store.delete_many(std::slice::from_ref(&key)).await;
                return Err(e);
            }
        };
        announce(&ctx, &rec, &job).await;
        match post {
            Some(p) => crate::posts::accepted(&ctx, p).await,
            None => Ok(accepted(&rec)),
        }
    }
}

/// Who uploads what, with which options: an image's facts besides its bytes.
pub(crate) struct Facts {
    pub id: String,
    pub customer: String,
    pub variants: Vec<String>,
    pub callback_url: Option<String>,
    pub request_id: Option<String>,
    pub now: chrono::DateTime<chrono::Utc>,
}

/// The record of a stored original and its processing job. `sha256` is empty when the
/// bytes did not pass through this process whole (resumable and direct uploads): the
/// processor fills it in when it reads the original.
pub(crate) fn new_image(f: Facts, format: sniff::Format, bytes: u64, head: &[u8], sha256: String) -> (ImageRecord, JobMessage) {
    let (width, height) = sniff::dimensions(head).map_or((None, None), |(w, h)| (Some(w), Some(h)));
    let rec = ImageRecord {
        id: f.id.clone(),
        customer: f.customer.clone(),
        status: Status::Uploaded,
        content_type: format.content_type.into(),
        format: format.name.into(),
        bytes,
        width,
        height,
        sha256: sha256.clone(),
        uploaded_at: f.now,
        processed_at: None,
        error: None,
        exif: sniff::exif(head),
        requested_variants: f.variants.clone(),
        variants: Vec::new(),
        attempts: 0,
        callback_url: f.callback_url.clone(),
    };
    let job = JobMessage {
        job_id: ids::new_id(),
        image_id: f.id.clone(),
        customer: f.customer.clone(),
        variants: f.variants,
        enqueued_at: f.now,
        request_id: f.request_id,
        callback_url: f.callback_url,
        upload: UploadRow {
            event_id: UploadRow::event_id_of(&f.id),
            image_id: f.id,
            customer_id: f.customer,
            uploaded_at: f.now,
            content_type: format.content_type.into(),
            format: format.name.into(),
            bytes,
            width,
            height,
            sha256,
        },
    };
    (rec, job)
}

/// After the commit: counts the bytes, sends the job (the outbox sweeper sends it if this
/// fails).
pub(crate) async fn announce(ctx: &Context, rec: &ImageRecord, job: &JobMessage) {
    crate::capacity::added(ctx, rec.bytes);
    imagelake_core::metrics::upload_accepted(rec.bytes);
    match job_body(job) {
        Ok(body) => crate::outbox::send_now(ctx, &job.job_id, &body).await,
        Err(e) => tracing::error!(error = %e, "job message could not be serialized; the outbox sends it"),
    }
    tracing::info!(image_id = %rec.id, customer = %rec.customer, bytes = rec.bytes, format = %rec.format, "upload accepted");
}

pub(crate) fn accepted(rec: &ImageRecord) -> Response {
    let location = format!("/v1/images/{}", rec.id);
    (StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(rec)).into_response()
}

fn job_body(job: &JobMessage) -> Result<String, IngestError> {
    serde_json::to_string(job).map_err(|e| IngestError::Internal(e.to_string()))
}

/// One transaction: the record, its job in the outbox, its bytes counted, its key.
pub(crate) async fn commit(
    ctx: &Context,
    rec: &ImageRecord,
    job: &JobMessage,
    idem: Option<&str>,
    post: Option<&Post>,
) -> Result<Created, IngestError> {
    let now = ctx.clock.now();
    let ttl = chrono::Duration::from_std(ctx.config.ingest.idempotency_ttl.0).unwrap_or(chrono::Duration::hours(24));
    let retry = chrono::Duration::from_std(ctx.config.database.outbox_retry.0).unwrap_or(chrono::Duration::seconds(10));
    let body = job_body(job)?;
    let new = NewImage {
        record: rec,
        job_id: &job.job_id,
        job_body: &body,
        send_after: now + retry,
        idempotency: idem.map(|k| (k, now + ttl)),
        post,
        in_flight: true,
    };
    Ok(ctx.meta.create_image(new).await?)
}

/// Text fields of a multipart upload (`caption`, `author` ...), in order.
pub(crate) type FormFields = Vec<(String, String)>;
/// Bytes of one text field, and text fields, at most.
const MAX_FIELD_BYTES: usize = 16 * 1024;
const MAX_FIELDS: usize = 16;

/// Streams the raw body, or the multipart field `file`, to `key`; keeps the multipart
/// body's small text fields (before and after the file). The body passes the guards of
/// `body.rs` first: an idle timeout, and for multipart bodies the framing bounds.
async fn store_body(
    ctx: &Context,
    key: &str,
    headers: &HeaderMap,
    request: Request,
    limit: u64,
) -> Result<(Inspection, FormFields), IngestError> {
    let opts = UploadOptions::from_config(&ctx.config.storage);
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let is_multipart = content_type.starts_with("multipart/form-data");
    let verdict = body::Verdict::default();
    let (idle, total) = (ctx.config.ingest.body_idle_timeout.0, ctx.config.ingest.max_upload_time.0);
    let lingering = body::Lingering::new(request.into_body().into_data_stream());
    let raw = body::timed(lingering, idle, total, verdict.clone());
    let mut fields = FormFields::new();
    let (result, shared) = if is_multipart {
        let boundary = multer::parse_boundary(content_type)
            .map_err(|e| IngestError::BadRequest("invalid_multipart", format!("bad multipart Content-Type: {e}")))?;
        let guarded = body::multipart(raw, &boundary, limit, verdict.clone());
        let mut form = multer::Multipart::new(guarded, boundary);
        let mut stored = None;
        let read = read_form(ctx, key, &mut form, limit, opts, &mut stored, &mut fields).await;
        if let Err(e) = read {
            if matches!(stored, Some((Ok(_), _))) {
                // A bad field after the file: nothing was acknowledged, so nothing stays.
                let _ = ctx.store.delete_many(&[key.to_string()]).await;
            }
            return Err(verdict.lock().unwrap().take().unwrap_or(e));
        }
        stored.ok_or_else(|| IngestError::BadRequest("missing_file", "the multipart body has no field `file`".into()))?
    } else {
        let (stream, shared) = inspect(raw, limit, ctx.config.processor.max_pixels);
        (upload_stream(&ctx.store, key, stream, opts).await.map(|_| ()), shared)
    };
    let mut inspection = std::mem::take(&mut *shared.lock().unwrap());
    match result {
        Ok(_) => Ok((inspection, fields)),
        Err(e) => Err(inspection.failure.take().or_else(|| verdict.lock().unwrap().take()).unwrap_or_else(|| match e {
            // The multipart parser's error: a malformed body (or one cut off, which the
            // parser cannot tell apart).
            imagelake_core::store::StoreError::Body(m) if is_multipart => {
                IngestError::BadRequest("invalid_multipart", format!("the multipart body is malformed or incomplete: {m}"))
            }
            e => e.into(),
        })),
    }
}

type Stored = (Result<(), imagelake_core::store::StoreError>, crate::inspect::Shared);

/// Reads a multipart body: streams the first `file` field to `key` (into `stored`) and
/// keeps the small text fields.
async fn read_form(
    ctx: &Context,
    key: &str,
    form: &mut multer::Multipart<'_>,
    limit: u64,
    opts: UploadOptions,
    stored: &mut Option<Stored>,
    fields: &mut FormFields,
) -> Result<(), IngestError> {
    let bad = |e: multer::Error| IngestError::BadRequest("invalid_multipart", format!("malformed multipart body: {e}"));
    while let Some(mut field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" && stored.is_none() {
            let (stream, shared) = inspect(field, limit, ctx.config.processor.max_pixels);
            let result = upload_stream(&ctx.store, key, stream, opts).await.map(|_| ());
            let failed = result.is_err();
            *stored = Some((result, shared));
            if failed {
                return Ok(());
            }
            continue;
        }
        // A small text field, read in bounded chunks.
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            value.extend_from_slice(&chunk);
            if value.len() > MAX_FIELD_BYTES {
                return Err(IngestError::BadRequest(
                    "field_too_large",
                    format!("the field `{name}` is over {MAX_FIELD_BYTES} bytes"),
                ));
            }
        }
        if fields.len() >= MAX_FIELDS {
            return Err(IngestError::BadRequest("too_many_fields", format!("more than {MAX_FIELDS} multipart fields")));
        }
        let value = String::from_utf8(value)
            .map_err(|_| IngestError::BadRequest("invalid_multipart", format!("the field `{name}` is not UTF-8")))?;
        fields.push((name, value));
    }
    Ok(())
}

pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

pub(crate) fn requested_variants(ctx: &Context, asked: Option<&str>) -> Result<Vec<String>, IngestError> {
    let presets = &ctx.config.processor.variants;
    let Some(asked) = asked else {
        return Ok(presets.iter().map(|p| p.name.clone()).collect());
    };
    let mut out = Vec::new();
    for name in asked.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !presets.iter().any(|p| p.name == name) {
            let known: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
            return Err(IngestError::BadRequest(
                "unknown_variant",
                format!("unknown variant `{name}`; configured: {}", known.join(", ")),
            ));
        }
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// Refused now rather than failing silently later: a malformed URL, or one whose host
/// resolves to a private address (unless `[webhooks] allow_private`). The processor
/// checks again when it delivers, against the address it connects to.
pub(crate) async fn validate_callback(ctx: &Context, url: String) -> Result<String, IngestError> {
    if url.len() > 2048 {
        return Err(IngestError::BadRequest("invalid_callback_url", "callback_url is longer than 2048 bytes".into()));
    }
    match webhook::check(&url, ctx.config.webhooks.allow_private).await {
        Ok(_) => Ok(url),
        Err(refusal) => Err(IngestError::BadRequest(refusal.code(), refusal.to_string())),
    }
}
