//! Reading, listing and deleting image records.

use crate::cursor;
use crate::error::IngestError;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use imagelake_core::app::Context;
use imagelake_core::auth::{Principal, Role};
use imagelake_core::ids;
#[allow(unused_imports)]
use imagelake_core::problem::Problem;
use imagelake_core::record::{ImageRecord, VariantState};
use serde::{Deserialize, Serialize};

/// The record as a client sees it: a variant past its expiry reads `expired` even
/// before the lifecycle sweep has deleted it.
pub fn view(rec: &ImageRecord, now: DateTime<Utc>) -> ImageRecord {
    let mut r = rec.clone();
    for v in &mut r.variants {
        if v.expires_at <= now {
            v.state = VariantState::Expired;
        }
    }
    r
}

/// The record of `id` if `principal` may see it; anything else is "not found".
pub async fn find(ctx: &Context, principal: &Principal, id: &str) -> Result<ImageRecord, IngestError> {
    if !ids::is_valid_id(id) {
        return Err(IngestError::NotFound(id.chars().take(64).collect()));
    }
    match ctx.meta.image(id).await? {
        Some(r) if principal.owns(&r.customer) => Ok(r),
        _ => Err(IngestError::NotFound(id.into())),
    }
}

#[utoipa::path(
    get,
    path = "/v1/images/{id}",
    tag = "images",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The image id (a UUIDv7)")),
    responses(
        (status = 200, description = "The image's record; a variant past its expiry reads `expired`", body = ImageRecord),
        (status = 400, description = "A malformed path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such image for this key (`not_found`); another customer's image is not found too", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The object store or the metadata database is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn show(
    State(ctx): State<Context>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<ImageRecord>, IngestError> {
    let rec = find(&ctx, &principal, &id).await?;
    Ok(Json(view(&rec, ctx.clock.now())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Records per page, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
    /// Admins may list another customer's images.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub customer: Option<String>,
}

/// One page of a customer's images, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListPage {
    pub items: Vec<ImageRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/images",
    tag = "images",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of records, newest first", body = ListPage),
        (status = 400, description = "A bad `limit` (`invalid_limit`), `cursor` (`invalid_cursor`) or `customer` (`invalid_customer`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only admins may list another customer's images (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The object store or the metadata database is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(ctx): State<Context>,
    principal: Principal,
    Query(p): Query<ListParams>,
) -> Result<Json<ListPage>, IngestError> {
    let limit = cursor::limit(p.limit, 50, 1000)?;
    let customer = match p.customer {
        Some(c) if principal.role == Role::Admin => c,
        Some(c) if c != principal.customer => {
            return Err(IngestError::Forbidden("only admins may list another customer's images"))
        }
        _ => principal.customer.clone(),
    };
    imagelake_core::auth::validate_customer(&customer).map_err(|m| IngestError::BadRequest("invalid_customer", m))?;
    let before = p.cursor.as_deref().map(cursor::parse_id_cursor).transpose()?;
    // One more than asked tells whether there is a next page.
    let rows = ctx.meta.list_images(&customer, before.as_deref(), limit + 1).await?;
    let (items, next_cursor) = cursor::page(rows, limit, |r| cursor::id_cursor(&r.id));
    let now = ctx.clock.now();
    let items = items.iter().map(|r| view(r, now)).collect();
    Ok(Json(ListPage { items, next_cursor }))
}

#[utoipa::path(
    delete,
    path = "/v1/images/{id}",
    tag = "images",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The image id (a UUIDv7)")),
    responses(
        (status = 204, description = "The original, its variants and its record are deleted"),
        (status = 400, description = "A malformed path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role cannot delete (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such image for this key (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The object store or the metadata database is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete(State(ctx): State<Context>, principal: Principal, Path(id): Path<String>) -> Result<StatusCode, IngestError> {
    if !principal.can_upload() {
        return Err(IngestError::Forbidden("this key's role cannot delete images"));
    }
    let rec = find(&ctx, &principal, &id).await?;
    let now = ctx.clock.now();
    // The tombstone first: hidden at once, and processing can no longer finish the image
    // (the processor removes what it wrote). Then the objects, then the rows: a failure
    // half-way leaves a tombstone that the lifecycle's reconcile finishes.
    let Some(rec) = ctx.meta.begin_delete(&rec.id, now).await? else { return Err(IngestError::NotFound(id)) };
    imagelake_core::deletion::remove_image(&ctx, &rec, now).await?;
    Ok(StatusCode::NO_CONTENT)
}
