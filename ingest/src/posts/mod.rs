//! Posts and comments: `/v1/posts`.
//!
//! A post is an image with a caption. `POST /v1/posts` makes one from an upload
//! (multipart: `file`, `caption`, `author`) or from an image already uploaded (JSON). It
//! is `requested` until its image is processed; the transaction that finishes the image
//! publishes it (or fails it), so a post is never `published` without its variants.
//! Comments go through [`comments::CommentWriter`], which commits concurrent comments in
//! one transaction (group commit) and answers each only once it is durable.

pub(crate) mod comments;
pub(crate) mod create;
pub(crate) mod read;

use crate::error::IngestError;
use crate::upload::FormFields;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use imagelake_core::app::Context;
use imagelake_core::auth::Principal;
use imagelake_core::ids;
use imagelake_core::post::{self, Invalid, Post, PostStatus};

/// The routes under `/v1/posts`.
pub fn router() -> Router<Context> {
    Router::new()
        // Uploads stream, limited by `ingest.max_upload_bytes`; JSON is read bounded.
        .route("/v1/posts", post(create::create).layer(DefaultBodyLimit::disable()).get(read::list))
        .route("/v1/posts/{id}", get(read::show).delete(read::delete))
        .route("/v1/posts/{id}/comments", post(comments::add).layer(DefaultBodyLimit::max(64 * 1024)).get(comments::list))
        .route("/v1/posts/{id}/comments/{comment_id}", delete(comments::delete))
        .layer(Extension(comments::CommentWriter::default()))
}

impl From<Invalid> for IngestError {
    fn from(e: Invalid) -> Self {
        IngestError::BadRequest(e.code, e.message)
    }
}

/// A new post of image `image_id` from a multipart upload's text fields.
pub(crate) fn draft(
    fields: &FormFields,
    customer: &str,
    image_id: &str,
    callback_url: Option<String>,
    now: DateTime<Utc>,
) -> Result<Post, IngestError> {
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let caption = post::check_caption(field("caption").unwrap_or_default())?;
    let author = field("author").map(post::check_author).transpose()?;
    Ok(new_post(customer, image_id, caption, author, callback_url, now))
}

pub(crate) fn new_post(
    customer: &str,
    image_id: &str,
    caption: String,
    author: Option<String>,
    callback_url: Option<String>,
    now: DateTime<Utc>,
) -> Post {
    Post {
        id: ids::new_id(),
        customer: customer.into(),
        image_id: image_id.into(),
        caption,
        author,
        status: PostStatus::Requested,
        error: None,
        callback_url,
        created_at: now,
        published_at: None,
        comment_count: 0,
    }
}

/// `202 Accepted` with the post as it is now.
pub(crate) async fn accepted(ctx: &Context, post: Post) -> Result<Response, IngestError> {
    let location = post::post_url(&post.id);
    let view = ctx.meta.post_views(vec![post]).await?.pop().ok_or_else(|| IngestError::Internal("post view".into()))?;
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(view)).into_response())
}

/// The post of `id` if `principal` may see it; anything else is "not found".
pub(crate) async fn find(ctx: &Context, principal: &Principal, id: &str) -> Result<Post, IngestError> {
    let not_found = || IngestError::NotFoundOf("post", id.chars().take(64).collect());
    if !ids::is_valid_id(id) {
        return Err(not_found());
    }
    match ctx.meta.post(id).await? {
        Some(p) if principal.owns(&p.customer) => Ok(p),
        _ => Err(not_found()),
    }
}
