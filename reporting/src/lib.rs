//! imagelake-reporting: the statistics API, DuckDB in-process over the lake.
//!
//! `GET /v1/stats/{summary,customers,types,volume,processing,usage}` for the `analyst` and
//! `admin` roles. Each report is a SQL file in `sql/reports/` run over the views of
//! `sql/views.sql`, with `from`, `to` and `customer` (and `interval`, `by`) bound as
//! prepared-statement parameters, answered as JSON, CSV, an Arrow IPC stream or Parquet.
//! See `sql/reports/*.sql` for what each column means.

mod dashboard;
mod engine;
mod error;
mod lake;
mod output;
mod params;
mod reports;
mod views;

pub use engine::{Answer, Engine};
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
        let engine = Engine::open(source, r.cache_ttl.0, r.query_timeout.0).await?;
        Ok(Arc::new(Self { engine, ctx }))
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Runs a report on a current view of the lake.
    pub async fn run(&self, report: Report, params: &Params) -> Result<Answer, ReportingError> {
        self.engine.refresh(false).await?;
        let figures = reports::Figures {
            capacity_bytes: self.ctx.config.capacity.bytes.0,
            gauge_used_bytes: self.ctx.usage.used(),
        };
        let sql = std::borrow::Cow::Borrowed(report.sql());
        match self.engine.query(sql.clone(), report.bind(params, &figures)).await {
            // A file removed by compaction between the listing and the read: list again, once.
            Err(ReportingError::Query(m)) if is_vanished_file(&m) => {
                self.engine.refresh(true).await?;
                self.engine.query(sql, report.bind(params, &figures)).await
            }
            other => other,
        }
    }
}

fn is_vanished_file(message: &str) -> bool {
    ["No such file", "No files found", "Cannot open file", "could not be opened"].iter().any(|m| message.contains(m))
}

/// The statistics routes. Its own state travels in an `Extension`, so the router's state
/// stays the shared [`Context`].
pub async fn router(ctx: Context) -> Result<Router<Context>, ReportingError> {
    let reporting = Reporting::open(ctx).await?;
    Ok(Router::new()
        .route("/v1/stats/summary", get(summary))
        .route("/v1/stats/customers", get(customers))
        .route("/v1/stats/types", get(types))
        .route("/v1/stats/volume", get(volume))
        .route("/v1/stats/processing", get(processing))
        .route("/v1/stats/usage", get(usage))
        .layer(Extension(reporting))
        .merge(dashboard::routes()))
}

macro_rules! handler {
    ($name:ident, $report:expr) => {
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

handler!(summary, Report::Summary);
handler!(customers, Report::Customers);
handler!(types, Report::Types);
handler!(volume, Report::Volume);
handler!(processing, Report::Processing);
handler!(usage, Report::Usage);

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
    let params = Params::parse(&query, report.extra_parameters())?;
    let format = params.format.unwrap_or_else(|| {
        Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or(""))
    });
    let started = std::time::Instant::now();
    let answer = reporting.run(report, &params).await?;
    let body = tokio::task::spawn_blocking(move || output::encode(&answer, format))
        .await
        .map_err(|e| ReportingError::Encode(e.to_string()))??;
    tracing::debug!(report = report.name(), ms = started.elapsed().as_millis() as u64, "report answered");
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if format != Format::Json {
        let disposition = format!("inline; filename=\"{}.{}\"", report.name(), format.extension());
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(res)
}
