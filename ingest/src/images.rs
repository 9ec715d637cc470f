//! Reading, listing and deleting image records.

use crate::error::IngestError;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use imagelake_core::app::Context;
use imagelake_core::auth::{Principal, Role};
use imagelake_core::lake::{DeletionRow, Event};
use imagelake_core::record::{self, ImageRecord, VariantState};
use imagelake_core::ids;
#[allow(unused_imports)]
use imagelake_core::problem::Problem;
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
    let owner = if principal.role == Role::Admin {
        record::owner(ctx.store.as_ref(), id).await?
    } else {
        Some(principal.customer.clone())
    };
    let Some(owner) = owner else { return Err(IngestError::NotFound(id.into())) };
    match record::read(ctx.store.as_ref(), &owner, id).await? {
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
        (status = 503, description = "The object store is unavailable; retry", body = Problem, content_type = "application/problem+json"),
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
        (status = 503, description = "The object store is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(ctx): State<Context>,
    principal: Principal,
    Query(p): Query<ListParams>,
) -> Result<Json<ListPage>, IngestError> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(IngestError::BadRequest("invalid_limit", "limit must be between 1 and 1000".into()));
    }
    let customer = match p.customer {
        Some(c) if principal.role == Role::Admin => c,
        Some(c) if c != principal.customer => return Err(IngestError::Forbidden("only admins may list another customer's images")),
        _ => principal.customer.clone(),
    };
    imagelake_core::auth::validate_customer(&customer).map_err(|m| IngestError::BadRequest("invalid_customer", m))?;
    let prefix = format!("listing/{customer}/");
    let after = match &p.cursor {
        Some(c) if c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit()) => Some(format!("{prefix}{c}")),
        Some(_) => return Err(IngestError::BadRequest("invalid_cursor", "cursor is not one this API returned".into())),
        None => None,
    };
    let page = ctx.store.list(&prefix, after.as_deref(), limit).await?;
    let now = ctx.clock.now();
    let ids: Vec<String> = page.objects.iter().filter_map(|o| record::id_from_listing_key(&o.key)).collect();
    let store = ctx.store.clone();
    let items: Vec<ImageRecord> = futures::stream::iter(ids)
        .map(|id| {
            let (store, customer) = (store.clone(), customer.clone());
            async move { record::read(store.as_ref(), &customer, &id).await }
        })
        .buffered(16)
        .try_filter_map(|r| async move { Ok(r) })
        .map_ok(|r| view(&r, now))
        .try_collect()
        .await?;
    let next_cursor = page.next.and_then(|k| k.rsplit('/').next().map(str::to_string));
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
        (status = 503, description = "The object store is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete(
    State(ctx): State<Context>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, IngestError> {
    if !principal.can_upload() {
        return Err(IngestError::Forbidden("this key's role cannot delete images"));
    }
    let rec = find(&ctx, &principal, &id).await?;
    let now = ctx.clock.now();
    let mut keys = vec![record::original_key(&rec.customer, &rec.id)];
    let mut events = vec![deletion(&rec, "original", None, rec.bytes, now)];
    for v in rec.variants.iter().filter(|v| v.state == VariantState::Ready) {
        keys.push(v.object_key(&rec.customer, &rec.id));
        events.push(deletion(&rec, "variant", Some(&v.name), v.bytes, now));
    }
    // Objects first, record last: a failure half-way leaves a record to retry the delete with.
    ctx.store.delete_many(&keys).await?;
    record::remove(ctx.store.as_ref(), &rec.customer, &rec.id).await?;
    let freed: u64 = events.iter().map(|e| if let Event::Deletion(d) = e { d.bytes } else { 0 }).sum();
    ctx.usage.sub(freed);
    if let Err(e) = ctx.lake.append(events).await {
        tracing::warn!(error = %e, image_id = %rec.id, "deletion events not written to the lake");
    }
    Ok(StatusCode::NO_CONTENT)
}

fn deletion(rec: &ImageRecord, kind: &str, variant: Option<&str>, bytes: u64, at: DateTime<Utc>) -> Event {
    Event::Deletion(DeletionRow {
        event_id: ids::event_id(&["deletion", &rec.id, kind, variant.unwrap_or("")]),
        image_id: rec.id.clone(),
        customer_id: rec.customer.clone(),
        kind: kind.into(),
        variant: variant.map(str::to_string),
        bytes,
        reason: "deleted".into(),
        deleted_at: at,
    })
}
