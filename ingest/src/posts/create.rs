//! `POST /v1/posts`: a post from a new upload (multipart) or from an image already uploaded (JSON).

use crate::error::IngestError;
use crate::upload::{self, UploadParams};
use axum::extract::{Query, Request, State};
use axum::http::header;
use axum::response::Response;
use imagelake_core::app::Context;
use imagelake_core::auth::Principal;
use imagelake_core::ids;
use imagelake_core::post::{self, PostView};
#[allow(unused_imports)]
use imagelake_core::problem::Problem;
use serde::Deserialize;

/// A JSON body, at most (a caption is 2,200 characters).
const MAX_JSON_BYTES: usize = 64 * 1024;

/// A post of an image already uploaded.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPostJson {
    /// The image (yours, not deleted).
    pub image_id: String,
    /// Up to 2,200 characters; may be empty.
    #[serde(default)]
    pub caption: String,
    /// Who posts it (1 to 100 characters).
    pub author: Option<String>,
    /// An `https://` URL that gets `post.published` or `post.failed`, signed like the image webhooks.
    pub callback_url: Option<String>,
}

/// A post from an upload: the image in `file`, with text fields `caption` and `author`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct NewPostForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Up to 2,200 characters.
    caption: Option<String>,
    /// 1 to 100 characters.
    author: Option<String>,
    /// As the query parameter `variants`.
    variants: Option<String>,
    /// As the query parameter `callback_url`: gets `post.published` or `post.failed`.
    callback_url: Option<String>,
}

/// Creates a post. With a multipart body its image is uploaded like `POST /v1/images`
/// (same limits, checks, job and lake rows) and the post is committed with it; with JSON
/// it takes an image already uploaded. The post is `requested` until the image is
/// processed, then `published` (or `failed`, with the image's error code); an image that
/// already finished publishes (or fails) the post at once.
#[utoipa::path(
    post,
    path = "/v1/posts",
    tag = "posts",
    security(("bearer" = [])),
    params(UploadParams),
    request_body(
        description = "A multipart form (`file`, `caption`, `author`), or JSON naming an uploaded image",
        content((NewPostForm = "multipart/form-data"), (NewPostJson = "application/json")),
    ),
    responses(
        (status = 202, description = "Accepted: the post, `requested` until its image is processed", body = PostView,
            headers(("Location" = String, description = "`/v1/posts/{id}`"))),
        (status = 400, description = "A caption over 2,200 characters (`caption_too_long`), a bad author (`invalid_author`), a malformed body (`invalid_json`, `invalid_multipart`, `missing_file`), an unknown variant, a refused callback URL", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role cannot post (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "JSON: no such image for this key (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than `ingest.max_upload_bytes` (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not an image in an accepted format, or neither multipart nor JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The header declares more pixels than `[processor] max_pixels` (`image_too_large`); nothing is stored", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A backing service is unavailable; retry", body = Problem, content_type = "application/problem+json"),
        (status = 507, description = "Storage is at capacity (`insufficient_storage`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create(
    State(ctx): State<Context>,
    principal: Principal,
    Query(params): Query<UploadParams>,
    request: Request,
) -> Result<Response, IngestError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if content_type.starts_with("multipart/form-data") {
        return upload::accept(ctx, principal, params, request, true).await;
    }
    if !content_type.starts_with("application/json") {
        return Err(IngestError::NotAnImage(
            "send multipart/form-data (an image in `file`) or application/json (`image_id`)".into(),
        ));
    }
    if !principal.can_upload() {
        return Err(IngestError::Forbidden("this key's role cannot post"));
    }
    // The body limit is off on this route (uploads stream); a JSON body is read bounded.
    let bytes = axum::body::to_bytes(request.into_body(), MAX_JSON_BYTES)
        .await
        .map_err(|_| IngestError::TooLarge(MAX_JSON_BYTES as u64))?;
    let body: NewPostJson = serde_json::from_slice(&bytes).map_err(|e| IngestError::BadRequest("invalid_json", e.to_string()))?;
    let caption = post::check_caption(&body.caption)?;
    let author = body.author.as_deref().map(post::check_author).transpose()?;
    let callback_url = match body.callback_url.or(params.callback_url) {
        Some(url) => Some(upload::validate_callback(&ctx, url).await?),
        None => None,
    };
    if !ids::is_valid_id(&body.image_id) {
        return Err(IngestError::NotFound(body.image_id.chars().take(64).collect()));
    }
    let now = ctx.clock.now();
    let draft = super::new_post(&principal.customer, &body.image_id, caption, author, callback_url, now);
    match ctx.meta.create_post(&draft, now).await? {
        Some(post) => super::accepted(&ctx, post).await,
        None => Err(IngestError::NotFound(body.image_id)),
    }
}
