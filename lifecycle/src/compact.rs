//! `compact`: merges the lake's small files, through `imagelake_core::lake::compact`,
//! which writes the merged files before it deletes their inputs: every file of the closed
//! days (before the day of `at`), and the writers' files of the current day (the
//! processor writes a few per image), so that the day's raw facts stay cheap to read.

use crate::{JobReport, LifecycleError};
use chrono::{DateTime, Utc};
use imagelake_core::app::Context;
use imagelake_core::lake::compact::compact_days;

pub async fn run(ctx: &Context, at: DateTime<Utc>, report: &mut JobReport) -> Result<(), LifecycleError> {
    let reports =
        compact_days(&ctx.store, at.date_naive(), true, &[], ctx.config.lake.compact_target.0, ctx.lake.writer_id()).await?;
    for r in reports {
        report.add("partitions_seen", 1);
        if r.skipped {
            continue;
        }
        report.add("partitions_compacted", 1);
        report.add("input_files", r.inputs as u64);
        report.add("input_bytes", r.input_bytes);
        report.add("output_files", r.outputs.len() as u64);
        report.add("output_bytes", r.output_bytes);
        report.add("duplicates_dropped", r.duplicates_dropped);
    }
    Ok(())
}
