//! The reporting crate's errors, each with an HTTP status and a stable `code`.
//! Internal detail (DuckDB messages, paths) is logged, never sent to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imagelake_core::problem::Problem;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ReportingError {
    /// The caller's role may not read statistics (only `analyst` and `admin` may).
    /// 403 `forbidden`.
    #[error("statistics are for the analyst and admin roles")]
    Forbidden,
    /// The key reads one customer's statistics and asked for another's. 403 `forbidden`.
    #[error("{0}")]
    OtherCustomer(String),
    /// A query parameter is missing, malformed or out of range. 400 with the given code:
    /// `invalid_date`, `invalid_range`, `unknown_interval`, `unknown_format`,
    /// `invalid_customer`, `invalid_parameter`, `unknown_parameter`.
    #[error("{message}")]
    BadParameter { code: &'static str, message: String },
    /// The query ran longer than `reporting.query_timeout` and was interrupted.
    /// 503 `query_timeout`.
    #[error("the report took longer than {0:?} and was stopped; narrow the date range or retry later")]
    Timeout(Duration),
    /// The lake could not be read: the S3 mirror never synced, or the lake directory is
    /// unreadable. 503 `lake_unavailable`.
    #[error("the lake is unavailable: {0}")]
    LakeUnavailable(String),
    /// DuckDB could not be opened or the views could not be created (at start-up).
    /// 500 `reporting_setup`.
    #[error("reporting set-up failed: {0}")]
    Setup(String),
    /// DuckDB failed on a report query. 500 `query_failed`.
    #[error("report query failed: {0}")]
    Query(String),
    /// The answer could not be encoded in the requested format. 500 `encode_failed`.
    #[error("encoding the answer failed: {0}")]
    Encode(String),
}

impl ReportingError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ReportingError::BadParameter { code, message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ReportingError::Forbidden | ReportingError::OtherCustomer(_) => StatusCode::FORBIDDEN,
            ReportingError::BadParameter { .. } => StatusCode::BAD_REQUEST,
            ReportingError::Timeout(_) | ReportingError::LakeUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ReportingError::Setup(_) | ReportingError::Query(_) | ReportingError::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ReportingError::Forbidden | ReportingError::OtherCustomer(_) => "forbidden",
            ReportingError::BadParameter { code, .. } => code,
            ReportingError::Timeout(_) => "query_timeout",
            ReportingError::LakeUnavailable(_) => "lake_unavailable",
            ReportingError::Setup(_) => "reporting_setup",
            ReportingError::Query(_) => "query_failed",
            ReportingError::Encode(_) => "encode_failed",
        }
    }
}

impl IntoResponse for ReportingError {
    fn into_response(self) -> Response {
        let status = self.status();
        let problem = match &self {
            ReportingError::Forbidden
            | ReportingError::OtherCustomer(_)
            | ReportingError::BadParameter { .. }
            | ReportingError::Timeout(_) => Problem::new(status, self.code(), self.to_string()),
            ReportingError::LakeUnavailable(_) => {
                tracing::warn!(error = %self, "reporting: lake unavailable");
                Problem::new(status, self.code(), "the lake cannot be read right now; retry later")
            }
            _ => {
                tracing::error!(error = %self, code = self.code(), "reporting: internal error");
                Problem::new(status, self.code(), "internal error; see the server log")
            }
        };
        let problem = if status == StatusCode::SERVICE_UNAVAILABLE { problem.with_retry_after(5) } else { problem };
        problem.into_response()
    }
}
