//! `expire`: deletes every processed variant whose `expires_at` has passed.
//!
//! **Finding what is due** never lists objects: the sweep reads the lake's
//! `variants/dt=DAY/` partitions (a variant's `dt` is the day it was made) from a
//! watermark (`lifecycle/state/expire.json`, the first day not yet wholly expired) up to
//! the day of `at - retention.processed`, and takes each row's image record as the truth
//! (a redelivered job may have re-made a variant later: the record's `expires_at` wins).
//! Nothing is deleted before the record's `expires_at` (`<= at`).
//!
//! **One chunk** (`Options::expire_chunk` keys): read the records, delete the variant
//! objects (`delete_many`, 1000 keys a call), write one `deletions` row per object
//! (reason `expired`, durable), then mark the variants `expired` in the records. An
//! interrupted sweep finds the same records still `ready` and redoes the chunk: deleting
//! a missing key is a no-op, and the `deletions` rows carry the same deterministic
//! `event_id` (`["deletion", image_id, "variant", name]`, the scheme ingest's delete uses),
//! which the views keep once, so nothing is lost and nothing is counted twice. The
//! watermark moves past a day only once every row of that day was due and handled.
//!
//! Residual race, documented: the owner deleting the image between the chunk's record
//! read and its record write makes the write re-create the record (marked `expired`,
//! original gone); reconcile then marks it failed with `original_missing`.

use crate::lakeread::{day_of_key, variant_rows};
use crate::state::{read_json, write_json};
use crate::{JobReport, Lease, LifecycleError, Options};
use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use imagelake_core::app::Context;
use imagelake_core::ids;
use imagelake_core::lake::{DeletionRow, Event};
use imagelake_core::record::{self, ImageRecord, VariantState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub const STATE_KEY: &str = "lifecycle/state/expire.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExpireState {
    /// Every variant made before this day has been expired.
    next_day: NaiveDate,
}

/// The `deletions` row of an expired variant. Same `event_id` scheme as ingest's delete.
pub fn deletion_event(rec: &ImageRecord, variant: &str, bytes: u64, at: DateTime<Utc>) -> Event {
    Event::Deletion(DeletionRow {
        event_id: ids::event_id(&["deletion", &rec.id, "variant", variant]),
        image_id: rec.id.clone(),
        customer_id: rec.customer.clone(),
        kind: "variant".into(),
        variant: Some(variant.to_string()),
        bytes,
        reason: "expired".into(),
        deleted_at: at,
    })
}

/// The number of whole days the bucket backstop rule waits: the retention rounded up,
/// plus one (S3 rounds expiry to the next midnight UTC), so it never fires before the sweep.
pub fn backstop_days(ctx: &Context) -> u32 {
    let secs = ctx.config.retention.processed.0.as_secs();
    (secs.div_ceil(86_400) + 1).min(u32::MAX as u64) as u32
}

pub async fn run(ctx: &Context, at: DateTime<Utc>, opts: &Options, lease: &Lease, report: &mut JobReport) -> Result<(), LifecycleError> {
    let store = ctx.store.as_ref();
    match store.install_expiry_rule("processed/", backstop_days(ctx)).await {
        Ok(true) => report.add("backstop_rule_installed", 1),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not install the bucket expiry rule (backstop); the sweep goes on");
            report.note(format!("backstop rule not installed: {e}"));
        }
    }
    let retention = chrono::Duration::from_std(ctx.config.retention.processed.0).unwrap_or(chrono::Duration::days(7));
    let last_day = (at - retention).date_naive();
    let first = match read_json::<ExpireState>(store, STATE_KEY).await? {
        Some(s) => s.next_day,
        None => match store.list("lake/variants/", None, 1).await?.objects.first().and_then(|m| day_of_key(&m.key)) {
            Some(d) => d,
            None => return Ok(()), // no variant was ever made
        },
    };
    let mut contiguous = true;
    let mut day = first;
    while day <= last_day {
        lease.check()?;
        let (rows, files) = variant_rows(store, day).await?;
        report.add("days_scanned", 1);
        report.add("lake_files_read", files as u64);
        report.add("lake_rows_read", rows.len() as u64);
        let all_due = rows.iter().all(|r| r.expires_at <= at);
        let images: BTreeSet<(String, String)> =
            rows.iter().filter(|r| r.expires_at <= at).map(|r| (r.customer_id.clone(), r.image_id.clone())).collect();
        expire_images(ctx, images.into_iter().collect(), at, opts, Some(lease), report).await?;
        let next = day.succ_opt().expect("dates do not run out");
        if all_due && contiguous {
            write_json(store, STATE_KEY, &ExpireState { next_day: next }).await?;
        } else {
            contiguous = false;
        }
        day = next;
    }
    Ok(())
}

/// Expires, in chunks, every `ready` variant past `at` of the given images (customer, id).
/// Also used by reconcile for variants it finds past expiry.
pub async fn expire_images(
    ctx: &Context,
    images: Vec<(String, String)>,
    at: DateTime<Utc>,
    opts: &Options,
    lease: Option<&Lease>,
    report: &mut JobReport,
) -> Result<(), LifecycleError> {
    // Three variants an image by default: chunks of about `expire_chunk` keys.
    let per_chunk = (opts.expire_chunk / 3).max(1);
    for chunk in images.chunks(per_chunk) {
        if let Some(l) = lease {
            l.check()?;
        }
        expire_chunk(ctx, chunk, at, opts, report).await?;
    }
    Ok(())
}

async fn expire_chunk(
    ctx: &Context,
    images: &[(String, String)],
    at: DateTime<Utc>,
    opts: &Options,
    report: &mut JobReport,
) -> Result<(), LifecycleError> {
    let store = ctx.store.clone();
    let records: Vec<ImageRecord> = futures::stream::iter(images.iter().cloned())
        .map(|(customer, id)| {
            let store = store.clone();
            async move { record::read(store.as_ref(), &customer, &id).await }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .try_filter_map(|r| async move { Ok(r) })
        .try_collect()
        .await?;
    report.add("records_read", images.len() as u64);
    let mut work: Vec<ImageRecord> = Vec::new();
    let mut keys = Vec::new();
    let mut events = Vec::new();
    for rec in records {
        let mut due = false;
        for v in rec.variants.iter().filter(|v| v.state == VariantState::Ready && v.expires_at <= at) {
            keys.push(v.object_key(&rec.customer, &rec.id));
            events.push(deletion_event(&rec, &v.name, v.bytes, at));
            due = true;
        }
        if due {
            work.push(rec);
        }
    }
    if work.is_empty() {
        return Ok(());
    }
    // 1. the objects
    let batches: Vec<Vec<String>> = keys.chunks(1000).map(|c| c.to_vec()).collect();
    let calls = batches.len() as u64;
    futures::stream::iter(batches)
        .map(|b| {
            let store = store.clone();
            async move { store.delete_many(&b).await }
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    report.add("delete_calls", calls);
    // 2. the facts, durably, before the records say it happened
    let freed: u64 = events.iter().map(|e| if let Event::Deletion(d) = e { d.bytes } else { 0 }).sum();
    let n = events.len() as u64;
    let flushed = ctx.lake.write_durable(events).await?;
    report.add("lake_files_written", flushed.files.len() as u64);
    // 3. the records
    let updated = work.len() as u64;
    futures::stream::iter(work)
        .map(|mut rec| {
            let store = store.clone();
            async move {
                for v in rec.variants.iter_mut().filter(|v| v.state == VariantState::Ready && v.expires_at <= at) {
                    v.state = VariantState::Expired;
                }
                record::write(store.as_ref(), &rec).await
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    ctx.usage.sub(freed);
    report.add("variants_expired", n);
    report.add("bytes_freed", freed);
    report.add("records_updated", updated);
    tracing::info!(variants = n, bytes = freed, records = updated, "variants expired");
    Ok(())
}
