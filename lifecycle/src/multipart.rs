//! `abort-multipart`: aborts multipart uploads left incomplete (a client that went away
//! mid-upload leaves its parts billed but invisible) once older than `multipart_age`.

use crate::{JobReport, LifecycleError, Options};
use chrono::{DateTime, Utc};
use imagelake_core::app::Context;
use imagelake_core::store::StoreError;

pub async fn run(ctx: &Context, at: DateTime<Utc>, opts: &Options, report: &mut JobReport) -> Result<(), LifecycleError> {
    let age = chrono::Duration::from_std(opts.multipart_age).unwrap_or(chrono::Duration::days(1));
    let pending = ctx.store.list_multipart("").await?;
    report.add("pending", pending.len() as u64);
    for p in pending.into_iter().filter(|p| p.initiated < at - age) {
        match ctx.store.abort_multipart(&p.key, &p.upload_id).await {
            Ok(()) | Err(StoreError::NoSuchUpload(_)) => {
                tracing::info!(key = %p.key, initiated = %p.initiated, "stale multipart upload aborted");
                report.add("aborted", 1);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
