//! The named reports: one SQL file each in `sql/reports/` (embedded at build time), and
//! the parameters each binds, in order.

use crate::params::{Interval, Params, TypeGrouping};
use duckdb::types::{TimeUnit, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Summary,
    Customers,
    Types,
    Volume,
    Processing,
    Usage,
    Engagement,
}

/// What a report binds besides the request's parameters.
pub struct Figures {
    pub capacity_bytes: u64,
    /// The serving process's live usage gauge.
    pub gauge_used_bytes: u64,
}

impl Report {
    pub const ALL: [Report; 7] = [
        Report::Summary,
        Report::Customers,
        Report::Types,
        Report::Volume,
        Report::Processing,
        Report::Usage,
        Report::Engagement,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Report::Summary => "summary",
            Report::Customers => "customers",
            Report::Types => "types",
            Report::Volume => "volume",
            Report::Processing => "processing",
            Report::Usage => "usage",
            Report::Engagement => "engagement",
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            Report::Summary => include_str!("../../sql/reports/summary.sql"),
            Report::Customers => include_str!("../../sql/reports/customers.sql"),
            Report::Types => include_str!("../../sql/reports/types.sql"),
            Report::Volume => include_str!("../../sql/reports/volume.sql"),
            Report::Processing => include_str!("../../sql/reports/processing.sql"),
            Report::Usage => include_str!("../../sql/reports/usage.sql"),
            Report::Engagement => include_str!("../../sql/reports/engagement.sql"),
        }
    }

    /// Query parameters this report takes beyond `from`, `to`, `customer` and `format`.
    pub fn extra_parameters(self) -> &'static [&'static str] {
        match self {
            Report::Types => &["by"],
            Report::Volume => &["interval"],
            Report::Engagement => &["limit"],
            _ => &[],
        }
    }

    /// The positional parameters `$1..` of the report's SQL.
    pub fn bind(self, p: &Params, f: &Figures) -> Vec<Value> {
        let ts = |t: chrono::DateTime<chrono::Utc>| Value::Timestamp(TimeUnit::Microsecond, t.timestamp_micros());
        let mut v = vec![ts(p.from), ts(p.to), p.customer.clone().map(Value::Text).unwrap_or(Value::Null)];
        let big = |n: u64| Value::BigInt(n.min(i64::MAX as u64) as i64);
        match self {
            Report::Summary => {
                v.push(big(f.capacity_bytes));
                v.push(big(f.gauge_used_bytes));
            }
            Report::Types => v.push(Value::Text(
                match p.by {
                    TypeGrouping::Format => "format",
                    TypeGrouping::ContentType => "content_type",
                }
                .into(),
            )),
            Report::Volume => v.push(Value::Text(
                match p.interval {
                    Interval::Hour => "hour",
                    Interval::Day => "day",
                    Interval::Week => "week",
                    Interval::Month => "month",
                }
                .into(),
            )),
            Report::Usage => v.push(big(f.capacity_bytes)),
            Report::Engagement => v.push(big(p.limit)),
            Report::Customers | Report::Processing => {}
        }
        v
    }
}
