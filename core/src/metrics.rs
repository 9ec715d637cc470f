//! Prometheus metrics: the process-wide recorder, `GET /metrics`, and the HTTP middleware
//! that counts and times every request by route template.
//!
//! Call sites record with the `metrics` facade (`metrics::counter!(...)`, re-exported
//! here as [`counter!`], [`histogram!`], [`gauge!`]), one line each; nothing is recorded
//! until [`install`] has set the recorder, so library tests pay nothing.
//!
//! `metrics` + `metrics-exporter-prometheus` (metrics-rs, maintained, used by many tokio
//! services) rather than `prometheus-client`: the facade's macros need no registry handle
//! threaded through every service, so instrumenting a call site is one line, and the
//! exporter is used without its HTTP listener (the API's own router serves `/metrics`).
//!
//! The families (all prefixed `imagelake_`):
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `http_requests_total` | counter | `method`, `route` (template, never the raw path), `status` |
//! | `http_request_duration_seconds` | histogram | `method`, `route`, `status` |
//! | `upload_bytes_total`, `uploads_total` | counter | |
//! | `jobs_total` | counter | `outcome`: processed, failed, retried, dead_lettered |
//! | `job_queue_wait_seconds` | histogram | enqueue to the start of the attempt |
//! | `job_processing_seconds` | histogram | `outcome` |
//! | `lake_flushes_total` | counter | `table`, `result` (ok, error) |
//! | `lake_rows_total`, `lake_bytes_total` | counter | `table` |
//! | `lifecycle_runs_total` | counter | `job`, `outcome` (ok, failed, busy) |
//! | `lifecycle_run_seconds` | histogram | `job` |
//! | `usage_bytes`, `capacity_bytes`, `usage_ratio` | gauge | (set at each scrape) |
//! | `queue_messages` | gauge | `state`: visible, in_flight, dead (set at each scrape) |
//! | `outbox_jobs` | gauge | jobs committed with their image but not yet sent to the queue (set at each scrape) |

use crate::app::Context;
use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{header, HeaderValue, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use ::metrics::{counter, gauge, histogram};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds: 1 ms to 10 min.
const SECONDS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// Installs the process-wide Prometheus recorder (once; later calls return the same
/// handle) and starts its upkeep thread.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
            .expect("non-empty buckets");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(e) = ::metrics::set_global_recorder(recorder) {
            tracing::warn!(error = %e, "a metrics recorder was already installed");
        }
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            })
            .expect("spawn the metrics upkeep thread");
        describe();
        handle
    })
}

fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("imagelake_http_requests_total", "HTTP requests answered, by route template and status");
    describe_histogram!("imagelake_http_request_duration_seconds", Unit::Seconds, "Time to the response head");
    describe_counter!("imagelake_uploads_total", "Uploads accepted (202)");
    describe_counter!(
        "imagelake_refused_total",
        "Requests refused by a limit: rate_limited, too_many_uploads, busy_uploads, body_timeout, multipart"
    );
    describe_counter!("imagelake_upload_bytes_total", Unit::Bytes, "Bytes of accepted uploads");
    describe_counter!("imagelake_jobs_total", "Job attempts by outcome: processed, failed, retried, dead_lettered");
    describe_histogram!("imagelake_job_queue_wait_seconds", Unit::Seconds, "From enqueue to the start of an attempt");
    describe_histogram!("imagelake_job_processing_seconds", Unit::Seconds, "One attempt, start to finish");
    describe_counter!("imagelake_lake_flushes_total", "Parquet files written (ok) or failed (error), by table");
    describe_counter!("imagelake_lake_rows_total", "Rows written to the lake, by table");
    describe_counter!("imagelake_lake_bytes_total", Unit::Bytes, "Parquet bytes written to the lake, by table");
    describe_counter!("imagelake_lifecycle_runs_total", "Lifecycle job runs by job and outcome");
    describe_histogram!("imagelake_lifecycle_run_seconds", Unit::Seconds, "Lifecycle job duration");
    describe_gauge!("imagelake_usage_bytes", Unit::Bytes, "Stored bytes, as the capacity gate counts them");
    describe_gauge!("imagelake_capacity_bytes", Unit::Bytes, "The configured capacity");
    describe_gauge!("imagelake_usage_ratio", "usage_bytes / capacity_bytes");
    describe_gauge!("imagelake_outbox_jobs", "Jobs committed with their image and not yet sent to the queue");
    describe_gauge!("imagelake_queue_messages", "Job queue messages: visible (waiting), in_flight, dead (dead-lettered)");
    describe_gauge!("imagelake_post_events", "Changes of posts and comments waiting for the relay (lake rows, webhooks)");
}

/// `GET /metrics`.
pub fn router() -> Router<Context> {
    Router::new().route("/metrics", get(scrape))
}

/// Prometheus text exposition format 0.0.4.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format",
        body = String, content_type = "text/plain"))
)]
pub async fn scrape(State(ctx): State<Context>) -> Response {
    let handle = install();
    let used = ctx.usage.used();
    let capacity = ctx.usage.capacity();
    gauge!("imagelake_usage_bytes").set(used as f64);
    gauge!("imagelake_capacity_bytes").set(capacity as f64);
    gauge!("imagelake_usage_ratio").set(if capacity == 0 { 1.0 } else { used as f64 / capacity as f64 });
    // The backlog gauges are counted at most once a second, however often `/metrics`
    // (which needs no key) is asked: counting the embedded queue reads its index.
    static COUNTED_AT_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now_ms = Utc::now().timestamp_millis();
    let last = COUNTED_AT_MS.load(std::sync::atomic::Ordering::Relaxed);
    let due = now_ms - last >= 1000
        && COUNTED_AT_MS
            .compare_exchange(last, now_ms, std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed)
            .is_ok();
    if due {
        count_backlogs(&ctx).await;
    }
    let mut res = handle.render().into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    res
}

/// Counts and times a request under its route template (`/v1/images/{id}`), never its
/// raw path: unmatched requests are all `route="unmatched"`.
pub async fn track(req: Request<Body>, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    // Clients choose methods freely (extension methods too): keep the label set bounded.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    let res = next.run(req).await;
    let route = route.unwrap_or_else(|| "unmatched".into());
    let labels = [("method", method), ("route", route), ("status", res.status().as_u16().to_string())];
    counter!("imagelake_http_requests_total", &labels).increment(1);
    histogram!("imagelake_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    res
}

/// An accepted upload.
/// A request refused by a per-key rate limit.
pub fn rate_limited() {
    refused("rate_limited");
}

/// A request refused, or a body cut off, by one of the limits against hostile clients.
pub fn refused(limit: &'static str) {
    counter!("imagelake_refused_total", "limit" => limit).increment(1);
}

pub fn upload_accepted(bytes: u64) {
    counter!("imagelake_uploads_total").increment(1);
    counter!("imagelake_upload_bytes_total").increment(bytes);
}

/// One job attempt ended with `outcome` (processed, failed, retried, dead_lettered).
pub fn job_finished(outcome: &'static str, enqueued_at: DateTime<Utc>, started: DateTime<Utc>, finished: DateTime<Utc>) {
    let secs = |d: chrono::Duration| d.to_std().unwrap_or_default().as_secs_f64();
    counter!("imagelake_jobs_total", "outcome" => outcome).increment(1);
    histogram!("imagelake_job_queue_wait_seconds").record(secs(started - enqueued_at));
    histogram!("imagelake_job_processing_seconds", "outcome" => outcome).record(secs(finished - started));
}

/// One lake file written (or not) for `table`.
pub fn lake_file(table: &'static str, rows: usize, bytes: u64, ok: bool) {
    counter!("imagelake_lake_flushes_total", "table" => table, "result" => if ok { "ok" } else { "error" }).increment(1);
    if ok {
        counter!("imagelake_lake_rows_total", "table" => table).increment(rows as u64);
        counter!("imagelake_lake_bytes_total", "table" => table).increment(bytes);
    }
}

/// One lifecycle run of `job` ended with `outcome` (ok, failed, busy).
pub fn lifecycle_run(job: &'static str, outcome: &'static str, took: Duration) {
    counter!("imagelake_lifecycle_runs_total", "job" => job, "outcome" => outcome).increment(1);
    histogram!("imagelake_lifecycle_run_seconds", "job" => job).record(took.as_secs_f64());
}

/// The queue's and the outboxes' backlogs, as gauges.
async fn count_backlogs(ctx: &Context) {
    let limit = Duration::from_secs(1);
    if let Ok(Ok(depth)) = tokio::time::timeout(limit, ctx.queue.depth()).await {
        gauge!("imagelake_queue_messages", "state" => "visible").set(depth.visible as f64);
        gauge!("imagelake_queue_messages", "state" => "in_flight").set(depth.in_flight as f64);
        gauge!("imagelake_queue_messages", "state" => "dead").set(depth.dead as f64);
    }
    if let Ok(Ok(n)) = tokio::time::timeout(limit, ctx.meta.outbox_len()).await {
        gauge!("imagelake_outbox_jobs").set(n as f64);
    }
    if let Ok(Ok(n)) = tokio::time::timeout(limit, ctx.meta.post_events_len()).await {
        gauge!("imagelake_post_events").set(n as f64);
    }
}
