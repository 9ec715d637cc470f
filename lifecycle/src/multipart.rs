//! `abort-multipart`: removes stale uploads.
//!
//! 1. Resumable uploads (tus, direct) past their expiry: their multipart upload is
//!    aborted, their tails deleted, their row removed, and a `deletions` row (kind
//!    `upload`, reason `abandoned`, the bytes received) records each one.
//! 2. Multipart uploads left incomplete (a client that went away mid-upload leaves its
//!    parts billed but invisible) once older than `multipart_age`, unless a resumable
//!    upload still uses them.

use crate::{JobReport, LifecycleError, Options};
use chrono::{DateTime, Utc};
use imagelake_core::app::Context;
use imagelake_core::store::StoreError;
use std::collections::HashSet;

/// Expired uploads handled per batch.
const BATCH: usize = 500;

pub async fn run(ctx: &Context, at: DateTime<Utc>, opts: &Options, report: &mut JobReport) -> Result<(), LifecycleError> {
    abandoned(ctx, at, report).await?;
    let age = chrono::Duration::from_std(opts.multipart_age).unwrap_or(chrono::Duration::days(1));
    let pending = ctx.store.list_multipart("").await?;
    report.add("pending", pending.len() as u64);
    let live: HashSet<String> = ctx.meta.live_multiparts().await?.into_iter().collect();
    for p in pending.into_iter().filter(|p| p.initiated < at - age && !live.contains(&p.upload_id)) {
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

/// Removes resumable uploads past their expiry; the lake learns of the incomplete ones.
async fn abandoned(ctx: &Context, at: DateTime<Utc>, report: &mut JobReport) -> Result<(), LifecycleError> {
    // Bounded: rows that cannot be removed now are tried again at the next run.
    for _ in 0..100 {
        let batch = ctx.meta.expired_resumables(at, BATCH).await?;
        let n = batch.len();
        let mut facts = Vec::new();
        for u in &batch {
            let finished = u.completed_at.is_some() || ctx.meta.image(&u.id).await?.is_some();
            if finished {
                // Only the row is left: its image lives on.
                ctx.meta.delete_resumable(&u.id).await?;
                report.add("finished_uploads_dropped", 1);
                continue;
            }
            facts.push(imagelake_core::deletion::abandoned_upload_event(&u.id, &u.customer, u.offset, at));
            tracing::info!(upload = %u.id, customer = %u.customer, bytes = u.offset, "abandoned upload removed");
        }
        // The facts first: an upload removed but not recorded would be a fact lost.
        if !facts.is_empty() {
            ctx.lake.write_durable(facts).await?;
        }
        for u in batch.iter().filter(|u| u.completed_at.is_none()) {
            if ctx.meta.image(&u.id).await?.is_none() {
                imagelake_core::resumable::remove(ctx, u).await;
                report.add("abandoned_uploads", 1);
            }
        }
        if n < BATCH {
            break;
        }
    }
    Ok(())
}
