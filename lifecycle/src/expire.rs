//! `expire`: deletes every processed variant whose `expires_at` has passed, and the
//! idempotency keys past their expiry.
//!
//! **Finding what is due** reads the database's due-variant index
//! (`MetadataStore::due_variants`: `ready` variants with `expires_at <= at`, soonest
//! first), never the bucket or the lake. Nothing is deleted before its `expires_at`.
//!
//! **One chunk** (`Options::expire_chunk` variants, each one stored format of a variant:
//! a preset with several formats has one row and one object per format): delete the
//! objects (`delete_many`, 1000 keys a call, a few calls at once), write one `deletions`
//! row per object (reason `expired`, durably), then mark those very rows `expired` in the
//! database, which un-counts their bytes in the same transaction. An interrupted sweep finds the same variants still
//! `ready` and redoes the chunk: deleting a missing key is a no-op, and the rows carry the
//! same deterministic `event_id` (`core::deletion::deletion_event`), which the lake's
//! views keep once. A delete of the image racing the sweep is harmless: marking a variant
//! whose rows are gone changes nothing.

use crate::{JobReport, Lease, LifecycleError, Options};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use imagelake_core::app::Context;
use imagelake_core::deletion::deletion_event;
use imagelake_core::lake::DeletionReason;
use imagelake_core::meta::DueVariant;
use imagelake_core::record;
use std::collections::HashSet;

/// Keys a `delete_many` call takes, and how many such calls run at once.
const DELETE_BATCH: usize = 1000;
const DELETE_CALLS_AT_ONCE: usize = 4;

/// The number of whole days the bucket backstop rule waits: the retention rounded up,
/// plus one (S3 rounds expiry to the next midnight UTC), so it never fires before the sweep.
pub fn backstop_days(ctx: &Context) -> u32 {
    let secs = ctx.config.retention.processed.0.as_secs();
    (secs.div_ceil(86_400) + 1).min(u32::MAX as u64) as u32
}

pub async fn run(
    ctx: &Context,
    at: DateTime<Utc>,
    opts: &Options,
    lease: &Lease,
    report: &mut JobReport,
) -> Result<(), LifecycleError> {
    match ctx.store.install_expiry_rule("processed/", backstop_days(ctx)).await {
        Ok(true) => report.add("backstop_rule_installed", 1),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not install the bucket expiry rule (backstop); the sweep goes on");
            report.note(format!("backstop rule not installed: {e}"));
        }
    }
    let chunk = opts.expire_chunk.max(1);
    // Keyed by object (image, name, format): a chunk may end between two formats of one
    // variant, and the next chunk then starts with the rest of them.
    let mut previous: HashSet<(String, String, String)> = HashSet::new();
    loop {
        lease.check()?;
        let due = ctx.meta.due_variants(at, chunk).await?;
        // Marked variants leave the index: seeing one again means the marking did not take.
        if due.iter().any(|v| previous.contains(&(v.image_id.clone(), v.name.clone(), v.format.clone()))) {
            report.note("variants stayed ready after being marked expired; stopped".into());
            tracing::error!("expire: variants stayed ready after being marked expired; stopping the sweep");
            break;
        }
        expire_variants(ctx, &due, at, report).await?;
        if due.len() < chunk {
            break;
        }
        previous = due.into_iter().map(|v| (v.image_id, v.name, v.format)).collect();
    }
    report.add("idempotency_keys_purged", ctx.meta.purge_idempotency(at).await?);
    Ok(())
}

/// Expires these variants (those due by `at`): objects, `deletions` rows, database. Also
/// used by reconcile for the overdue variants it finds.
pub async fn expire_variants(
    ctx: &Context,
    due: &[DueVariant],
    at: DateTime<Utc>,
    report: &mut JobReport,
) -> Result<(), LifecycleError> {
    let due: Vec<&DueVariant> = due.iter().filter(|v| v.expires_at <= at).collect();
    if due.is_empty() {
        return Ok(());
    }
    report.add("chunks", 1);
    // 1. the objects
    let keys: Vec<String> =
        due.iter().map(|v| record::variant_key(&v.customer, &v.image_id, &v.name, record::extension(&v.format))).collect();
    let batches: Vec<&[String]> = keys.chunks(DELETE_BATCH).collect();
    let calls = batches.len() as u64;
    futures::stream::iter(batches)
        .map(|b| ctx.store.delete_many(b))
        .buffer_unordered(DELETE_CALLS_AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    report.add("delete_calls", calls);
    // 2. the facts, durably, before the database says it happened. Each is stamped with
    // the variant's expiry time, not the run's: a chunk redone later (a crash between this
    // write and the database's, perhaps across midnight) writes the same fact into the same
    // day, where the views and the aggregates count it once.
    let events = due
        .iter()
        .map(|v| {
            deletion_event(&v.image_id, &v.customer, Some((&v.name, &v.format)), v.bytes, v.expires_at, DeletionReason::Expired)
        })
        .collect();
    let flushed = ctx.lake.write_durable(events).await?;
    report.add("lake_files_written", flushed.files.len() as u64);
    // 3. the database (and its byte counters): exactly the objects deleted above, format
    // by format
    let objects: Vec<(String, String, String)> =
        due.iter().map(|v| (v.image_id.clone(), v.name.clone(), v.format.clone())).collect();
    let freed = ctx.meta.mark_expired(&objects).await?;
    ctx.usage.sub(freed);
    report.add("variants_expired", due.len() as u64);
    report.add("bytes_freed", freed);
    tracing::info!(variants = due.len(), bytes = freed, "variants expired");
    Ok(())
}
