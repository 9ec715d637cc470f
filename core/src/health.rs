//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer, and it is
//! not shutting down).

use crate::app::Context;
use crate::problem::Problem;
use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set on SIGTERM: `/readyz` answers 503 `draining` from then on, while the listener still
/// serves for `shutdown_delay`, so that a load balancer stops sending before it closes.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// Marks this process as shutting down: `/readyz` answers 503 `draining` from then on.
pub fn start_draining() {
    DRAINING.store(true, Ordering::SeqCst);
}

pub fn router() -> Router<Context> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).layer(Extension(Checked::default()))
}

/// How long one readiness check answers every `/readyz`: a flood of them (the route needs
/// no key) costs one check a second, never one per request.
const FRESH: Duration = Duration::from_secs(1);

/// What failed and what is degraded.
type Outcome = (Vec<String>, Vec<String>);

/// The last readiness check of this router and when it ran, shared by its requests.
#[derive(Clone, Default)]
pub struct Checked(Arc<tokio::sync::Mutex<Option<(Instant, Outcome)>>>);

/// `/healthz`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// `/readyz`'s answer when every dependency answers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Ready {
    /// `ready`, or `degraded` when the queue does not answer: uploads are still accepted
    /// (their jobs wait in the database's outbox), processing waits.
    pub status: &'static str,
    /// The object store backend (`local`, `s3`).
    pub store: &'static str,
    /// The queue backend (`embedded`, `sqs`).
    pub queue: &'static str,
    /// The metadata database (`sqlite`, `postgres`).
    pub database: &'static str,
    /// What does not answer but does not stop this process from serving (the queue).
    pub degraded: Vec<String>,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Checks the object store, the metadata database and the queue, each within two
/// seconds, and names the ones that fail. The store and the database are needed to answer
/// requests (503 without them); the queue is not (uploads commit their jobs to the
/// database's outbox), so without it the answer is 200 `degraded`: a load balancer keeps
/// sending uploads.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The object store and the database answer (`degraded` names a queue that does not)", body = Ready),
        (status = 503, description = "A dependency does not answer (`not_ready`; the detail names it), or the process is shutting down (`draining`)",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(ctx): State<Context>, Extension(checked): Extension<Checked>) -> Result<Json<Ready>, Problem> {
    if DRAINING.load(Ordering::SeqCst) {
        return Err(Problem::unavailable("draining", "this process is shutting down; send requests to another one"));
    }
    // One check at a time; the others wait for it and take its answer.
    let mut last = checked.0.lock().await;
    let (failing, degraded) = match last.as_ref() {
        Some((at, outcome)) if at.elapsed() < FRESH => outcome.clone(),
        _ => {
            let outcome = check(&ctx).await;
            *last = Some((Instant::now(), outcome.clone()));
            outcome
        }
    };
    drop(last);
    if failing.is_empty() {
        let status = if degraded.is_empty() { "ready" } else { "degraded" };
        Ok(Json(Ready { status, store: ctx.store.backend(), queue: ctx.queue.backend(), database: ctx.meta.backend(), degraded }))
    } else {
        Err(Problem::unavailable("not_ready", failing.join("; ")))
    }
}

/// One round trip to each dependency, 2 s at most each. The store is asked for one
/// object's metadata (an absent one answers just as well): constant work, whatever the
/// store holds.
async fn check(ctx: &Context) -> Outcome {
    let limit = Duration::from_secs(2);
    let (store, queue, database) = tokio::join!(
        tokio::time::timeout(limit, ctx.store.head("readyz-probe")),
        tokio::time::timeout(limit, ctx.queue.depth()),
        tokio::time::timeout(limit, ctx.meta.ping()),
    );
    let mut failing = Vec::new();
    match store {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => failing.push(format!("object store ({}): {e}", ctx.store.backend())),
        Err(_) => failing.push(format!("object store ({}): no answer within 2 s", ctx.store.backend())),
    }
    let mut degraded = Vec::new();
    match queue {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => degraded.push(format!("queue ({}): {e}", ctx.queue.backend())),
        Err(_) => degraded.push(format!("queue ({}): no answer within 2 s", ctx.queue.backend())),
    }
    match database {
        Ok(Ok(())) => {}
        Ok(Err(e)) => failing.push(format!("database ({}): {e}", ctx.meta.backend())),
        Err(_) => failing.push(format!("database ({}): no answer within 2 s", ctx.meta.backend())),
    }
    (failing, degraded)
}
