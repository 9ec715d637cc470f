//! The query parameters of the reports, validated before anything reaches DuckDB. Values
//! are bound as prepared-statement parameters; none is ever spliced into SQL.

use crate::error::ReportingError;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use std::collections::HashMap;

/// The answer's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Arrow,
    Parquet,
}

impl Format {
    pub fn parse(s: &str) -> Result<Self, ReportingError> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "arrow" => Ok(Format::Arrow),
            "parquet" => Ok(Format::Parquet),
            _ => Err(ReportingError::bad("unknown_format", format!("unknown format `{s}`: use json, csv, arrow or parquet"))),
        }
    }

    /// From an `Accept` header: the first supported type listed wins; JSON otherwise.
    pub fn from_accept(accept: &str) -> Self {
        for part in accept.split(',') {
            let mime = part.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            match mime.as_str() {
                "text/csv" => return Format::Csv,
                "application/vnd.apache.arrow.stream" => return Format::Arrow,
                "application/vnd.apache.parquet" | "application/x-parquet" => return Format::Parquet,
                "application/json" => return Format::Json,
                _ => {}
            }
        }
        Format::Json
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Arrow => "arrows",
            Format::Parquet => "parquet",
        }
    }
}

/// Time buckets of the volume report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
    Week,
    Month,
}

impl Interval {
    pub fn parse(s: &str) -> Result<Self, ReportingError> {
        match s {
            "hour" => Ok(Interval::Hour),
            "day" => Ok(Interval::Day),
            "week" => Ok(Interval::Week),
            "month" => Ok(Interval::Month),
            _ => Err(ReportingError::bad(
                "unknown_interval",
                format!("unknown interval `{}`: use hour, day, week or month", truncate(s)),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }
}

/// What the types report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeGrouping {
    Format,
    ContentType,
}

/// The validated parameters of one request.
#[derive(Debug, Clone)]
pub struct Params {
    /// Inclusive.
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
    pub customer: Option<String>,
    pub interval: Interval,
    pub by: TypeGrouping,
    /// `format=` if given (it wins over `Accept`).
    pub format: Option<Format>,
    /// Rows of a ranking (the engagement report), 1 to 1000.
    pub limit: u64,
}

/// The default and the largest `limit` of a ranking.
pub const DEFAULT_LIMIT: u64 = 10;
pub const MAX_LIMIT: u64 = 1000;

/// The earliest and latest instants a report covers when `from` or `to` is not given.
pub fn default_from() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap()
}
pub fn default_to() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(3000, 1, 1, 0, 0, 0).unwrap()
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// `2026-11-23T10:00:00Z` (any RFC 3339 offset) or `2026-11-23`. A date as `from` is the
/// start of that UTC day; as `to` it is the end of that day (the day is included).
fn parse_time(name: &str, s: &str, is_end: bool) -> Result<DateTime<Utc>, ReportingError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let d = if is_end { d.succ_opt().unwrap_or(d) } else { d };
        return Ok(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap()));
    }
    Err(ReportingError::bad(
        "invalid_date",
        format!("`{name}` must be an RFC 3339 time (2026-11-23T10:00:00Z) or a date (2026-11-23), not `{}`", truncate(s)),
    ))
}

impl Params {
    /// Validates the query string of a report that accepts `allowed` beyond the common
    /// `from`, `to`, `customer` and `format`.
    pub fn parse(query: &HashMap<String, String>, allowed: &[&str]) -> Result<Self, ReportingError> {
        for k in query.keys() {
            if !["from", "to", "customer", "format"].contains(&k.as_str()) && !allowed.contains(&k.as_str()) {
                let mut known = vec!["from", "to", "customer", "format"];
                known.extend_from_slice(allowed);
                return Err(ReportingError::bad(
                    "unknown_parameter",
                    format!("unknown parameter `{}`; this report takes {}", truncate(k), known.join(", ")),
                ));
            }
        }
        let from = match query.get("from").filter(|s| !s.is_empty()) {
            Some(s) => parse_time("from", s, false)?,
            None => default_from(),
        };
        let to = match query.get("to").filter(|s| !s.is_empty()) {
            Some(s) => parse_time("to", s, true)?,
            None => default_to(),
        };
        // `to` is exclusive (a date means the end of that day), so an empty range is as
        // wrong as a reversed one.
        if from >= to {
            return Err(ReportingError::bad(
                "invalid_range",
                format!("`from` ({}) is after `to` ({}), or equal to it: `to` is exclusive", from.to_rfc3339(), to.to_rfc3339()),
            ));
        }
        let customer = match query.get("customer").filter(|s| !s.is_empty()) {
            Some(c) => {
                imagelake_core::auth::validate_customer(c).map_err(|_| {
                    ReportingError::bad(
                        "invalid_customer",
                        format!("`customer` must be 1 to 64 of [A-Za-z0-9_-], not `{}`", truncate(c)),
                    )
                })?;
                Some(c.clone())
            }
            None => None,
        };
        let interval = match query.get("interval") {
            Some(s) => Interval::parse(s)?,
            None => Interval::Day,
        };
        let by = match query.get("by").map(String::as_str) {
            None | Some("format") => TypeGrouping::Format,
            Some("content_type") => TypeGrouping::ContentType,
            Some(other) => {
                return Err(ReportingError::bad(
                    "invalid_parameter",
                    format!("`by` must be format or content_type, not `{}`", truncate(other)),
                ))
            }
        };
        let format = query.get("format").map(|f| Format::parse(f)).transpose()?;
        let limit = match query.get("limit") {
            None => DEFAULT_LIMIT,
            Some(s) => s.parse::<u64>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                ReportingError::bad(
                    "invalid_parameter",
                    format!("`limit` must be a whole number from 1 to {MAX_LIMIT}, not `{}`", truncate(s)),
                )
            })?,
        };
        Ok(Params { from, to, customer, interval, by, format, limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn dates_and_times() {
        let p = Params::parse(&q(&[("from", "2026-11-01"), ("to", "2026-11-02")]), &[]).unwrap();
        assert_eq!(p.from.to_rfc3339(), "2026-11-01T00:00:00+00:00");
        assert_eq!(p.to.to_rfc3339(), "2026-11-03T00:00:00+00:00");
        let p = Params::parse(&q(&[("from", "2026-11-01T10:00:00+02:00")]), &[]).unwrap();
        assert_eq!(p.from.to_rfc3339(), "2026-11-01T08:00:00+00:00");
    }

    #[test]
    fn bad_parameters_have_stable_codes() {
        let code = |pairs: &[(&str, &str)], allowed: &[&str]| Params::parse(&q(pairs), allowed).unwrap_err().code();
        assert_eq!(code(&[("from", "2026-11-02"), ("to", "2026-11-01")], &[]), "invalid_range");
        assert_eq!(code(&[("from", "yesterday")], &[]), "invalid_date");
        assert_eq!(code(&[("interval", "fortnight")], &["interval"]), "unknown_interval");
        assert_eq!(code(&[("format", "xml")], &[]), "unknown_format");
        assert_eq!(code(&[("customer", "x' OR 1=1 --")], &[]), "invalid_customer");
        assert_eq!(code(&[("interval", "day")], &[]), "unknown_parameter");
        assert_eq!(code(&[("by", "colour")], &["by"]), "invalid_parameter");
        for bad in ["0", "1001", "-1", "ten", ""] {
            assert_eq!(code(&[("limit", bad)], &["limit"]), "invalid_parameter", "{bad}");
        }
        assert_eq!(code(&[("limit", "5")], &[]), "unknown_parameter");
        assert_eq!(Params::parse(&q(&[("limit", "1000")]), &["limit"]).unwrap().limit, 1000);
        assert_eq!(Params::parse(&q(&[]), &["limit"]).unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn accept_header() {
        assert_eq!(Format::from_accept("text/csv"), Format::Csv);
        assert_eq!(Format::from_accept("application/vnd.apache.arrow.stream"), Format::Arrow);
        assert_eq!(Format::from_accept("application/vnd.apache.parquet;q=0.9, */*"), Format::Parquet);
        assert_eq!(Format::from_accept("*/*"), Format::Json);
    }
}
