//! `aggregate`: makes the daily aggregates of the closed days whose facts changed since
//! their aggregates were made (or that have none), through
//! `imagelake_core::lake::aggregate`. The work is proportional to those days' facts.

use crate::{JobReport, LifecycleError};
use chrono::{DateTime, Utc};
use imagelake_core::app::Context;
use imagelake_core::lake::aggregate::aggregate_closed_days;

pub async fn run(ctx: &Context, at: DateTime<Utc>, report: &mut JobReport) -> Result<(), LifecycleError> {
    let scratch = ctx.config.data_dir.join("tmp");
    let r = aggregate_closed_days(&ctx.store, at, &scratch).await?;
    report.add("days", r.days as u64);
    report.add("days_current", r.current as u64);
    report.add("days_aggregated", r.built.len() as u64);
    report.add("input_files", r.input_files);
    report.add("input_bytes", r.input_bytes);
    report.add("rows_in", r.rows_in);
    report.add("output_bytes", r.output_bytes);
    report.add("stale_files_removed", r.removed);
    for day in r.built.iter().take(20) {
        report.note(format!("aggregated {day}"));
    }
    Ok(())
}
