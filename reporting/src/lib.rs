//! imagelake-reporting: the statistics API, DuckDB in-process over the lake.
//!
//! `GET /v1/stats/{summary,customers,types,volume,processing,usage,engagement}` for the
//! `analyst` and `admin` roles. Each report is a SQL file in `sql/reports/` run over the views
//! of `sql/views.sql`, with `from`, `to` and `customer` (and `interval`, `by`, `limit`) bound as
//! prepared-statement parameters, answered as JSON, CSV, an Arrow IPC stream or Parquet.
//! See `sql/reports/*.sql` for what each column means.

mod dashboard;
mod edges;
mod engine;
mod error;
mod held;
mod lake;
mod memory;
mod objects;
mod output;
mod params;
mod reports;

pub use engine::{Answer, Engine, Range};
pub use error::ReportingError;
pub use params::{Format, Interval, Params};
pub use reports::Report;

use axum::extract::Query;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use imagelake_core::app::Context;
use imagelake_core::auth::Principal;
use std::collections::HashMap;
use std::sync::Arc;

/// The reporting service: the DuckDB engine and the figures reports bind.
pub struct Reporting {
    engine: Arc<Engine>,
    ctx: Context,
}

impl Reporting {
    /// Opens DuckDB over the lake of `ctx` (syncing the S3 mirror first, if any).
    pub async fn open(ctx: Context) -> Result<Arc<Self>, ReportingError> {
        let source = lake::Source::from_context(&ctx);
        let r = &ctx.config.reporting;
        let engine = Engine::open(source, r.cache_ttl.0, r.query_timeout.0, r.aggregates).await?;
        Ok(Arc::new(Self { engine, ctx }))
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Runs a report on a current view of the lake.
    pub async fn run(&self, report: Report, params: &Params) -> Result<Answer, ReportingError> {
        self.engine.refresh(false).await?;
        let figures =
            reports::Figures { capacity_bytes: self.ctx.config.capacity.bytes.0, gauge_used_bytes: self.ctx.usage.used() };
        let sql = std::borrow::Cow::Borrowed(report.sql());
        let range = Some((params.from, params.to));
        match self.engine.query(sql.clone(), report.bind(params, &figures), range).await {
            // A file removed by compaction between the listing and the read: list again, once.
            Err(ReportingError::Query(m)) if is_vanished_file(&m) => {
                self.engine.refresh(true).await?;
                self.engine.query(sql, report.bind(params, &figures), range).await
            }
            other => other,
        }
    }
}

/// DuckDB's errors for a listed file that is gone.
pub(crate) fn is_vanished_file(message: &str) -> bool {
    ["No such file", "No files found", "Cannot open file", "could not be opened"].iter().any(|m| message.contains(m))
}

/// The statistics routes. Its own state travels in an `Extension`, so the router's state
/// stays the shared [`Context`].
pub async fn router(ctx: Context) -> Result<Router<Context>, ReportingError> {
    Ok(routes(Reporting::open(ctx).await?))
}

/// The statistics routes over an open [`Reporting`].
pub fn routes(reporting: Arc<Reporting>) -> Router<Context> {
    Router::new()
        .route("/v1/stats/summary", get(summary))
        .route("/v1/stats/customers", get(customers))
        .route("/v1/stats/types", get(types))
        .route("/v1/stats/volume", get(volume))
        .route("/v1/stats/processing", get(processing))
        .route("/v1/stats/usage", get(usage))
        .route("/v1/stats/engagement", get(engagement))
        .layer(Extension(reporting))
        .merge(dashboard::routes())
}

/// The query parameters every report takes. Any other parameter is refused
/// (`unknown_parameter`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ReportQuery {
    /// Start, inclusive: an RFC 3339 time (`2026-11-23T10:00:00Z`) or a date (`2026-11-23`, the start of that UTC day).
    from: Option<String>,
    /// End, exclusive: an RFC 3339 time, or a date (the end of that UTC day, so the day is included).
    to: Option<String>,
    /// One customer only: 1 to 64 of `[A-Za-z0-9_-]`.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    customer: Option<String>,
    /// The answer's encoding; wins over `Accept` (default JSON).
    #[param(inline)]
    format: Option<FormatName>,
}

/// The query parameters of the types report.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct TypesQuery {
    /// Group by the sniffed format (default) or the declared content type.
    #[param(inline)]
    by: Option<TypeGroupingName>,
}

/// The query parameters of the volume report.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct VolumeQuery {
    /// The time bucket (default `day`).
    #[param(inline)]
    interval: Option<IntervalName>,
}

/// The query parameters of the engagement report.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct EngagementQuery {
    /// At most this many posts (default 10).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
enum FormatName {
    Json,
    Csv,
    Arrow,
    Parquet,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
enum TypeGroupingName {
    Format,
    ContentType,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
enum IntervalName {
    Hour,
    Day,
    Week,
    Month,
}

/// A report's rows as JSON: one object per row, columns as keys (see `sql/reports/`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ReportRows(Vec<HashMap<String, serde_json::Value>>);

/// Bytes of an Arrow IPC stream or a Parquet file.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct ReportBytes(Vec<u8>);

/// The OpenAPI part of the statistics routes (and the dashboard's static files).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        summary,
        customers,
        types,
        volume,
        processing,
        usage,
        engagement,
        dashboard_page,
        dashboard_page_slash,
        dashboard_js,
        dashboard_css
    ),
    components(schemas(ReportRows, ReportBytes))
)]
struct ReportingApi;

pub fn openapi() -> utoipa::openapi::OpenApi {
    <ReportingApi as utoipa::OpenApi>::openapi()
}

macro_rules! handler {
    ($name:ident, $report:expr, $path:tt, ($($params:ident),*), $what:tt) => {
        #[doc = $what]
        #[utoipa::path(
            get,
            path = $path,
            tag = "stats",
            security(("bearer" = [])),
            params(ReportQuery $(, $params)*),
            responses(
                (status = 200, description = "The report, as JSON (default), CSV, an Arrow IPC stream or Parquet (`format=` or `Accept`)",
                    content(
                        (ReportRows = "application/json"),
                        (String = "text/csv"),
                        (ReportBytes = "application/vnd.apache.arrow.stream"),
                        (ReportBytes = "application/vnd.apache.parquet"),
                    )),
                (status = 400, description = "A bad parameter: `invalid_date`, `invalid_range`, `unknown_interval`, `unknown_format`, `invalid_customer`, `invalid_parameter`, `unknown_parameter`",
                    body = imagelake_core::problem::Problem, content_type = "application/problem+json"),
                (status = 401, description = "No key, or an unknown one (`unauthorized`)",
                    body = imagelake_core::problem::Problem, content_type = "application/problem+json"),
                (status = 403, description = "Statistics are for analyst and admin keys (`forbidden`)",
                    body = imagelake_core::problem::Problem, content_type = "application/problem+json"),
                (status = 503, description = "The query timed out (`query_timeout`) or the lake cannot be read (`lake_unavailable`); retry",
                    body = imagelake_core::problem::Problem, content_type = "application/problem+json"),
            ),
        )]
        async fn $name(
            principal: Principal,
            Extension(r): Extension<Arc<Reporting>>,
            query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
            headers: HeaderMap,
        ) -> Response {
            answer($report, principal, r, query, headers).await.unwrap_or_else(IntoResponse::into_response)
        }
    };
}

handler!(summary, Report::Summary, "/v1/stats/summary", (), "Totals: images, bytes, variants, jobs, usage against capacity.");
handler!(
    customers,
    Report::Customers,
    "/v1/stats/customers",
    (),
    "Per customer: uploads, bytes, outcomes, processing time, bytes stored, posts and comments."
);
handler!(types, Report::Types, "/v1/stats/types", (TypesQuery), "Per image format (or content type): images and bytes.");
handler!(
    volume,
    Report::Volume,
    "/v1/stats/volume",
    (VolumeQuery),
    "Uploads, bytes, outcomes, expiries, posts and comments per time bucket."
);
handler!(processing, Report::Processing, "/v1/stats/processing", (), "Processing latency and outcomes of the jobs.");
handler!(usage, Report::Usage, "/v1/stats/usage", (), "Usage snapshots against capacity, and the days until full.");
handler!(
    engagement,
    Report::Engagement,
    "/v1/stats/engagement",
    (EngagementQuery),
    "The most-commented posts of the range: comments made, comments deleted, author, published_at."
);

async fn answer(
    report: Report,
    principal: Principal,
    reporting: Arc<Reporting>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ReportingError> {
    if !principal.can_read_stats() {
        return Err(ReportingError::Forbidden);
    }
    let Query(query) = query.map_err(|e| ReportingError::bad("invalid_parameter", e.body_text()))?;
    let mut params = Params::parse(&query, report.extra_parameters())?;
    // An analyst key reads its own customer's statistics unless it was made for all.
    params.customer = principal.stats_scope(params.customer).map_err(ReportingError::OtherCustomer)?;
    let format = params
        .format
        .unwrap_or_else(|| Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("")));
    let started = std::time::Instant::now();
    let answer = reporting.run(report, &params).await?;
    let aggregated_days = answer.aggregated_days;
    let body = tokio::task::spawn_blocking(move || output::encode(&answer, format))
        .await
        .map_err(|e| ReportingError::Encode(e.to_string()))??;
    tracing::debug!(report = report.name(), ms = started.elapsed().as_millis() as u64, "report answered");
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // How many days the answer could read from the lake's daily aggregates (sql/facts.sql).
    h.insert("lake-aggregated-days", HeaderValue::from(aggregated_days));
    if format != Format::Json {
        let disposition = format!("inline; filename=\"{}.{}\"", report.name(), format.extension());
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(res)
}

// The dashboard's static files (served by `dashboard.rs`), documented here so that every
// route of the router is in the OpenAPI document.

/// The dashboard page.
#[utoipa::path(get, path = "/dashboard", tag = "stats",
    responses((status = 200, description = "The dashboard's HTML page (it asks for an analyst key)", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn dashboard_page() {}

/// The dashboard page.
#[utoipa::path(get, path = "/dashboard/", tag = "stats",
    responses((status = 200, description = "The dashboard's HTML page", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn dashboard_page_slash() {}

/// The dashboard's script.
#[utoipa::path(get, path = "/dashboard/app.js", tag = "stats",
    responses((status = 200, description = "The dashboard's script", body = String, content_type = "text/javascript")))]
#[allow(dead_code)]
fn dashboard_js() {}

/// The dashboard's style sheet.
#[utoipa::path(get, path = "/dashboard/app.css", tag = "stats",
    responses((status = 200, description = "The dashboard's style sheet", body = String, content_type = "text/css")))]
#[allow(dead_code)]
fn dashboard_css() {}
