//! Reading, listing and deleting posts.

use super::find;
use crate::cursor;
use crate::error::IngestError;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use imagelake_core::app::Context;
use imagelake_core::auth::Principal;
use imagelake_core::post::{PostOrder, PostView};
#[allow(unused_imports)]
use imagelake_core::problem::Problem;
use serde::{Deserialize, Serialize};

/// One page of published posts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PostPage {
    pub items: Vec<PostView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// 1 to 100 (default 20).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page (of the same `order`).
    pub cursor: Option<String>,
    /// `newest` (default) or `comments` (most commented first, ties newest first).
    pub order: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/posts/{id}",
    tag = "posts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The post id (a UUIDv7)")),
    responses(
        (status = 200, description = "The post, its image's variants, its comment count and latest two comments", body = PostView),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such post for this key (`not_found`); another customer's post is not found too", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The metadata database is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn show(
    State(ctx): State<Context>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<PostView>, IngestError> {
    let post = find(&ctx, &principal, &id).await?;
    let view = ctx.meta.post_views(vec![post]).await?.pop().ok_or(IngestError::NotFoundOf("post", id))?;
    Ok(Json(view))
}

/// Lists the caller's published posts. Keyset pagination: a cursor names the last post
/// of its page, so posts added or deleted meanwhile never make a page skip or repeat one.
#[utoipa::path(
    get,
    path = "/v1/posts",
    tag = "posts",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of published posts", body = PostPage),
        (status = 400, description = "A bad `limit` (`invalid_limit`), `cursor` (`invalid_cursor`) or `order` (`invalid_order`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The metadata database is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(ctx): State<Context>,
    principal: Principal,
    Query(p): Query<ListParams>,
) -> Result<Json<PostPage>, IngestError> {
    let limit = cursor::limit(p.limit, 20, 100)?;
    let order = order(p.order.as_deref())?;
    let after = p.cursor.as_deref().map(|c| cursor::parse_post_cursor(order, c)).transpose()?;
    // One more than asked tells whether there is a next page.
    let rows = ctx.meta.list_posts(&principal.customer, order, after.as_ref(), limit + 1).await?;
    let (posts, next_cursor) = cursor::page(rows, limit, |p| cursor::post_cursor(order, p.comment_count, &p.id));
    let items = ctx.meta.post_views(posts).await?;
    Ok(Json(PostPage { items, next_cursor }))
}

/// `order`: `newest` (the default) or `comments`.
fn order(asked: Option<&str>) -> Result<PostOrder, IngestError> {
    match asked {
        None | Some("newest") => Ok(PostOrder::Newest),
        Some("comments") => Ok(PostOrder::Comments),
        Some(_) => Err(IngestError::BadRequest("invalid_order", "order must be `newest` or `comments`".into())),
    }
}

#[utoipa::path(
    delete,
    path = "/v1/posts/{id}",
    tag = "posts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The post id (a UUIDv7)")),
    responses(
        (status = 204, description = "The post, its comments and its image (original, variants, record) are deleted"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role cannot delete (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such post for this key (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A backing service is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete(State(ctx): State<Context>, principal: Principal, Path(id): Path<String>) -> Result<StatusCode, IngestError> {
    if !principal.can_upload() {
        return Err(IngestError::Forbidden("this key's role cannot delete posts"));
    }
    let post = find(&ctx, &principal, &id).await?;
    let now = ctx.clock.now();
    // One transaction removes the post and its comments and makes the image a tombstone;
    // then the image goes as `DELETE /v1/images/{id}` does (reconcile finishes a delete
    // interrupted half-way).
    let Some(image) = ctx.meta.delete_post(&post.id, now).await? else { return Err(IngestError::NotFoundOf("post", id)) };
    imagelake_core::deletion::remove_image(&ctx, &image, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Exactly `newest` (or nothing) and `comments` are orders; anything else is
        /// `invalid_order`, whatever its case or spacing.
        #[test]
        fn orders(asked in proptest::option::of(prop_oneof![any::<String>(), "(?i) ?(newest|comments) ?"])) {
            match (asked.as_deref(), order(asked.as_deref())) {
                (None | Some("newest"), r) => prop_assert_eq!(r.unwrap(), PostOrder::Newest),
                (Some("comments"), r) => prop_assert_eq!(r.unwrap(), PostOrder::Comments),
                (Some(_), r) => prop_assert_eq!(r.unwrap_err().code(), "invalid_order"),
            }
        }
    }
}
