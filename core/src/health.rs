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

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Checks the object store and the queue, each within two seconds, and names the ones
/// that fail.
async fn readyz(State(ctx): State<Context>) -> Result<Json<serde_json::Value>, Problem> {
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
        Ok(Json(serde_json::json!({ "status": "ready", "store": ctx.store.backend(), "queue": ctx.queue.backend() })))
    } else {
        Err(Problem::unavailable("not_ready", failing.join("; ")))
    }
}
