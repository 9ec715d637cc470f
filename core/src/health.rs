//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer).

use crate::app::Context;
use crate::problem::Problem;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use std::time::Duration;

pub fn router() -> Router<Context> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// `/healthz`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// `/readyz`'s answer when every dependency answers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Ready {
    /// Always `ready`.
    pub status: &'static str,
    /// The object store backend (`local`, `s3`).
    pub store: &'static str,
    /// The queue backend (`embedded`, `sqs`).
    pub queue: &'static str,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Checks the object store and the queue, each within two seconds, and names the ones
/// that fail.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The object store and the queue answer", body = Ready),
        (status = 503, description = "A dependency does not answer (`not_ready`); the detail names it",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(ctx): State<Context>) -> Result<Json<Ready>, Problem> {
    let limit = Duration::from_secs(2);
    let store = tokio::time::timeout(limit, ctx.store.list("records/", None, 1)).await;
    let queue = tokio::time::timeout(limit, ctx.queue.depth()).await;
    let mut failing = Vec::new();
    match store {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => failing.push(format!("object store ({}): {e}", ctx.store.backend())),
        Err(_) => failing.push(format!("object store ({}): no answer within 2 s", ctx.store.backend())),
    }
    match queue {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => failing.push(format!("queue ({}): {e}", ctx.queue.backend())),
        Err(_) => failing.push(format!("queue ({}): no answer within 2 s", ctx.queue.backend())),
    }
    if failing.is_empty() {
        Ok(Json(Ready { status: "ready", store: ctx.store.backend(), queue: ctx.queue.backend() }))
    } else {
        Err(Problem::unavailable("not_ready", failing.join("; ")))
    }
}
