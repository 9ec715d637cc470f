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
use imagelake_core::post::{self, Invalid, Post, PostCursor, PostOrder, PostStatus};

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

/// `limit`: 1 to 100, 20 by default.
pub(crate) fn limit(asked: Option<usize>) -> Result<usize, IngestError> {
    let limit = asked.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(IngestError::BadRequest("invalid_limit", "limit must be between 1 and 100".into()));
    }
    Ok(limit)
}

fn bad_cursor() -> IngestError {
    IngestError::BadRequest("invalid_cursor", "cursor is not one this API returned for this listing".into())
}

/// An id as a cursor: 32 hex digits.
pub(crate) fn id_cursor(id: &str) -> String {
    uuid::Uuid::try_parse(id).map(|u| u.simple().to_string()).unwrap_or_default()
}

pub(crate) fn parse_id_cursor(c: &str) -> Result<String, IngestError> {
    if c.len() != 32 {
        return Err(bad_cursor());
    }
    uuid::Uuid::try_parse(c).map(|u| u.hyphenated().to_string()).map_err(|_| bad_cursor())
}

/// A post listing's cursor: `n{id}` (newest first) or `c{count}.{id}` (most comments).
pub(crate) fn post_cursor(order: PostOrder, p: &Post) -> String {
    match order {
        PostOrder::Newest => format!("n{}", id_cursor(&p.id)),
        PostOrder::Comments => format!("c{}.{}", p.comment_count, id_cursor(&p.id)),
    }
}

pub(crate) fn parse_post_cursor(order: PostOrder, c: &str) -> Result<PostCursor, IngestError> {
    match (order, c.split_at_checked(1)) {
        (PostOrder::Newest, Some(("n", id))) => Ok(PostCursor { comment_count: 0, id: parse_id_cursor(id)? }),
        (PostOrder::Comments, Some(("c", rest))) => {
            let (count, id) = rest.split_once('.').ok_or_else(bad_cursor)?;
            let comment_count = count.parse::<u64>().map_err(|_| bad_cursor())?;
            if comment_count > i64::MAX as u64 {
                return Err(bad_cursor());
            }
            Ok(PostCursor { comment_count, id: parse_id_cursor(id)? })
        }
        _ => Err(bad_cursor()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_strangers() {
        let mut p = new_post("acme", &ids::new_id(), String::new(), None, None, Utc::now());
        p.comment_count = 7;
        for order in [PostOrder::Newest, PostOrder::Comments] {
            let c = parse_post_cursor(order, &post_cursor(order, &p)).unwrap();
            assert_eq!(c.id, p.id);
        }
        assert_eq!(parse_post_cursor(PostOrder::Comments, &post_cursor(PostOrder::Comments, &p)).unwrap().comment_count, 7);
        for bad in ["", "n", "x123", "c7", "c-1.00000000000000000000000000000000", "c99999999999999999999.0", "né"] {
            assert!(parse_post_cursor(PostOrder::Comments, bad).is_err(), "{bad}");
            assert!(parse_post_cursor(PostOrder::Newest, bad).is_err(), "{bad}");
        }
        // A cursor of one order is refused by the other.
        assert!(parse_post_cursor(PostOrder::Newest, &post_cursor(PostOrder::Comments, &p)).is_err());
    }
}
