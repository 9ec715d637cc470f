//! Comments: the high-write path.
//!
//! Each `POST /v1/posts/{id}/comments` hands its comment to the process's
//! [`CommentWriter`], whose one task commits everything that is waiting in one
//! transaction (group commit) and then answers each request: one fsync serves a whole
//! batch, and a `201` still means the comment is durable. The queue is bounded; a request
//! that cannot join it within [`ENQUEUE_WAIT`] answers `503` with `Retry-After`.

use super::find;
use crate::cursor;
use crate::error::IngestError;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use imagelake_core::app::Context;
use imagelake_core::auth::Principal;
use imagelake_core::ids;
use imagelake_core::meta::{MetaError, SharedMeta};
use imagelake_core::post::{self, Comment, CommentOutcome, NewComment, PostStatus};
#[allow(unused_imports)]
use imagelake_core::problem::Problem;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Comments waiting for their transaction, at most.
const QUEUE: usize = 4096;
/// Comments in one transaction, at most.
const BATCH: usize = 512;
/// How long a request may wait for room in the queue.
const ENQUEUE_WAIT: Duration = Duration::from_secs(5);

type Waiting = (NewComment, oneshot::Sender<Result<CommentOutcome, MetaError>>);

/// The process's comment writer (one per router), started on first use.
#[derive(Clone, Default)]
pub struct CommentWriter {
    tx: Arc<OnceLock<mpsc::Sender<Waiting>>>,
}

impl CommentWriter {
    fn sender(&self, meta: &SharedMeta) -> mpsc::Sender<Waiting> {
        self.tx
            .get_or_init(|| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(write_batches(meta.clone(), rx));
                tx
            })
            .clone()
    }

    /// Stores `comment` with whatever else is waiting; returns once it is committed.
    async fn add(&self, meta: &SharedMeta, comment: NewComment) -> Result<CommentOutcome, IngestError> {
        let (done, answer) = oneshot::channel();
        let sender = self.sender(meta);
        match tokio::time::timeout(ENQUEUE_WAIT, sender.send((comment, done))).await {
            Ok(Ok(())) => {}
            _ => return Err(IngestError::Busy("too many comments are waiting to be written; retry")),
        }
        match answer.await {
            Ok(r) => Ok(r?),
            Err(_) => Err(IngestError::Internal("the comment writer stopped".into())),
        }
    }
}

/// Commits what is waiting, batch after batch, until every sender is gone.
async fn write_batches(meta: SharedMeta, mut rx: mpsc::Receiver<Waiting>) {
    let mut batch: Vec<Waiting> = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let comments: Vec<NewComment> = batch.iter().map(|(c, _)| c.clone()).collect();
        match meta.add_comments(&comments).await {
            Ok(outcomes) => {
                for ((_, done), outcome) in batch.drain(..).zip(outcomes) {
                    let _ = done.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::warn!(comments = batch.len(), error = %e, "comment batch not written");
                for (_, done) in batch.drain(..) {
                    let _ = done.send(Err(MetaError::Unavailable(e.to_string())));
                }
            }
        }
    }
}

/// A new comment.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCommentJson {
    /// 1 to 100 characters.
    pub author: String,
    /// 1 to 2,000 characters of UTF-8 after trimming.
    pub text: String,
}

/// One page of comments, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CommentPage {
    pub items: Vec<Comment>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommentParams {
    /// 1 to 100 (default 20).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Comments on a published post. `201` once the comment is durable.
#[utoipa::path(
    post,
    path = "/v1/posts/{id}/comments",
    tag = "posts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The post id (a UUIDv7)")),
    request_body(content = NewCommentJson, content_type = "application/json"),
    responses(
        (status = 201, description = "The comment, stored", body = Comment,
            headers(("Location" = String, description = "`/v1/posts/{id}/comments/{comment_id}`"))),
        (status = 400, description = "An empty (`empty_comment`) or over-long (`comment_too_long`) text, a bad author (`invalid_author`), a malformed body (`invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role cannot comment (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such post for this key (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The post is not published (`post_not_published`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A body over 64 KiB (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many comments waiting (`busy`, with `Retry-After`), or the database is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn add(
    State(ctx): State<Context>,
    Extension(writer): Extension<CommentWriter>,
    principal: Principal,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, IngestError> {
    if !principal.can_upload() {
        return Err(IngestError::Forbidden("this key's role cannot comment"));
    }
    let body: NewCommentJson =
        serde_json::from_slice(&body).map_err(|e| IngestError::BadRequest("invalid_json", e.to_string()))?;
    let author = post::check_author(&body.author)?;
    let text = post::check_comment(&body.text)?;
    let post = find(&ctx, &principal, &id).await?;
    if post.status != PostStatus::Published {
        return Err(not_published(&post.id));
    }
    let comment = NewComment {
        id: ids::new_id(),
        post_id: post.id.clone(),
        customer: post.customer,
        author,
        text,
        created_at: ctx.clock.now(),
    };
    match writer.add(&ctx.meta, comment).await? {
        CommentOutcome::Added(c) => {
            let location = format!("/v1/posts/{}/comments/{}", c.post_id, c.id);
            Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(c)).into_response())
        }
        CommentOutcome::NoPost => Err(IngestError::NotFoundOf("post", post.id)),
        CommentOutcome::NotPublished => Err(not_published(&post.id)),
    }
}

fn not_published(id: &str) -> IngestError {
    IngestError::Conflict("post_not_published", format!("post `{id}` is not published; only published posts take comments"))
}

#[utoipa::path(
    get,
    path = "/v1/posts/{id}/comments",
    tag = "posts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The post id (a UUIDv7)"), CommentParams),
    responses(
        (status = 200, description = "A page of the post's comments, newest first", body = CommentPage),
        (status = 400, description = "A bad `limit` (`invalid_limit`) or `cursor` (`invalid_cursor`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such post for this key (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The metadata database is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(ctx): State<Context>,
    principal: Principal,
    Path(id): Path<String>,
    Query(p): Query<CommentParams>,
) -> Result<Json<CommentPage>, IngestError> {
    let limit = cursor::limit(p.limit, 20, 100)?;
    let before = p.cursor.as_deref().map(cursor::parse_id_cursor).transpose()?;
    let post = find(&ctx, &principal, &id).await?;
    // One more than asked tells whether there is a next page.
    let rows = ctx.meta.list_comments(&post.id, before.as_deref(), limit + 1).await?;
    let (items, next_cursor) = cursor::page(rows, limit, |c| cursor::id_cursor(&c.id));
    Ok(Json(CommentPage { items, next_cursor }))
}

#[utoipa::path(
    delete,
    path = "/v1/posts/{id}/comments/{comment_id}",
    tag = "posts",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The post id (a UUIDv7)"),
        ("comment_id" = String, Path, description = "The comment id (a UUIDv7)"),
    ),
    responses(
        (status = 204, description = "The comment is deleted"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role cannot delete (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such post, or no such comment on it, for this key (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The metadata database is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete(
    State(ctx): State<Context>,
    principal: Principal,
    Path((id, comment_id)): Path<(String, String)>,
) -> Result<StatusCode, IngestError> {
    if !principal.can_upload() {
        return Err(IngestError::Forbidden("this key's role cannot delete comments"));
    }
    let post = find(&ctx, &principal, &id).await?;
    if !ids::is_valid_id(&comment_id) {
        return Err(IngestError::NotFoundOf("comment", comment_id.chars().take(64).collect()));
    }
    match ctx.meta.delete_comment(&post.id, &comment_id, ctx.clock.now()).await? {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(IngestError::NotFoundOf("comment", comment_id)),
    }
}
