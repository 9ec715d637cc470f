//! `reconcile`: compares the database with the object store and repairs what it can.
//!
//! 1. Deletes left unfinished (a tombstone older than `orphan_age`: the deleting process
//!    died between its steps) are completed with `core::deletion::remove_image`
//!    (`deletes_finished`).
//! 2. Per customer (those with byte counters), one merge of the listing of
//!    `originals/{customer}/` with the customer's images (`MetadataStore::scan_images`),
//!    both in ascending id order, finds at one LIST request and one query per 1000 images:
//!    - an original without a record, older than `orphan_age` (ingest writes the original
//!      before the record): a crashed upload's leftover, deleted (`originals_orphaned`).
//!      Before each delete the database is asked again, in one transaction that also
//!      takes the upload's in-flight row if it is older than `ingest.max_upload_time` plus
//!      `orphan_age` (`MetadataStore::claim_orphan`). An upload still in flight keeps its
//!      original (`originals_in_flight`), however old its `LastModified` (on S3, when a
//!      multipart upload *started*); and an upload whose row was taken cannot commit, so
//!      no original a client was told is stored is ever deleted;
//!    - a record without an original, uploaded before `at - orphan_age`: marked `failed`
//!      with code `original_missing` (`records_original_missing`), after a HEAD confirms;
//!    - for a share `reconcile_sample` of the images (1.0 = all), `ready` variants past
//!      their expiry are expired exactly as the expire sweep does (`variants_expired` ...);
//!    - at the end, the in-flight rows of uploads older than that bound (their process
//!      died) are dropped (`uploads_abandoned`).
//! 3. The sizes listed under `originals/{customer}/` (originals that have a record) and
//!    `processed/{customer}/` are compared with the customer's byte counters; a difference
//!    is reported (`usage_drift_bytes`) and the counters are set to what is stored, but
//!    only when they did not change while the bucket was listed (uploads, deletes or
//!    expiries in flight: `usage_drift_skipped`, checked again at the next run).

use crate::expire::expire_variants;
use crate::{JobReport, Lease, LifecycleError, Options};
use chrono::{DateTime, Utc};
use imagelake_core::app::Context;
use imagelake_core::deletion::remove_image;
use imagelake_core::meta::{DueVariant, Figures, Transition};
use imagelake_core::record::{self, ImageRecord, RecordError, Status, VariantState};
use imagelake_core::store::ObjectMeta;
use std::collections::VecDeque;

/// Objects listed, images scanned and tombstones taken at once.
const PAGE: usize = 1000;

pub async fn run(
    ctx: &Context,
    at: DateTime<Utc>,
    opts: &Options,
    lease: &Lease,
    report: &mut JobReport,
) -> Result<(), LifecycleError> {
    let old = at - chrono::Duration::from_std(opts.orphan_age).unwrap_or(chrono::Duration::hours(1));
    finish_deletes(ctx, at, old, lease, report).await?;
    let customers: Vec<String> = ctx.meta.usage().await?.into_iter().map(|(c, _)| c).collect();
    report.add("customers", customers.len() as u64);
    for customer in &customers {
        lease.check()?;
        let overdue = check_customer(ctx, customer, at, old, opts, report).await?;
        if !overdue.is_empty() {
            tracing::warn!(customer = %customer, variants = overdue.len(), "variants past expiry still present; expiring them");
        }
        for chunk in overdue.chunks(opts.expire_chunk.max(1)) {
            lease.check()?;
            expire_variants(ctx, chunk, at, report).await?;
        }
    }
    let abandoned = ctx.meta.sweep_uploads(upload_bound(ctx, at, opts)).await?;
    report.add("uploads_abandoned", abandoned);
    if report.count("usage_corrected") > 0 {
        ctx.refresh_usage().await?;
    }
    Ok(())
}

/// Uploads started before this are no longer in flight: `max_upload_time` aborts them,
/// and `orphan_age` is the margin for their commit and for clocks that differ.
fn upload_bound(ctx: &Context, at: DateTime<Utc>, opts: &Options) -> DateTime<Utc> {
    let longest = ctx.config.ingest.max_upload_time.0 + opts.orphan_age;
    at - chrono::Duration::from_std(longest).unwrap_or(chrono::Duration::days(1))
}

/// Completes the deletes whose tombstone is older than `old`.
async fn finish_deletes(
    ctx: &Context,
    at: DateTime<Utc>,
    old: DateTime<Utc>,
    lease: &Lease,
    report: &mut JobReport,
) -> Result<(), LifecycleError> {
    loop {
        lease.check()?;
        let stale = ctx.meta.stale_tombstones(old, PAGE).await?;
        for rec in &stale {
            tracing::warn!(image_id = %rec.id, customer = %rec.customer, "finishing an interrupted delete");
            remove_image(ctx, rec, at).await?;
            report.add("deletes_finished", 1);
        }
        if stale.len() < PAGE {
            return Ok(());
        }
    }
}

/// Steps 2 and 3 for one customer; returns the overdue variants found.
async fn check_customer(
    ctx: &Context,
    customer: &str,
    at: DateTime<Utc>,
    old: DateTime<Utc>,
    opts: &Options,
    report: &mut JobReport,
) -> Result<Vec<DueVariant>, LifecycleError> {
    let before = counters(ctx, customer).await?;
    let mut stored = Figures::default();
    let mut overdue = Vec::new();
    let mut originals = Listing::new(format!("originals/{customer}/"));
    let id_at = originals.prefix.len();
    let mut images = Images::new(customer);
    loop {
        // The part of the key after the prefix: the image id.
        let o = originals.peek(ctx).await?.map(|m| m.key.get(id_at..).unwrap_or_default().to_string());
        let r = images.peek(ctx).await?.map(|rec| rec.id.clone());
        match (o, r) {
            (None, None) => break,
            (Some(o), r) if r.as_ref().is_none_or(|r| o < *r) => {
                let m = originals.pop().expect("peeked");
                report.add("originals_seen", 1);
                // Younger ones are uploads in flight: neither deleted nor counted.
                if m.last_modified < old {
                    orphan_original(ctx, &o, &m, upload_bound(ctx, at, opts), report).await?;
                }
            }
            (o, Some(r)) if o.as_ref().is_none_or(|o| r < *o) => {
                let rec = images.pop().expect("peeked");
                report.add("records_seen", 1);
                if rec.uploaded_at < old {
                    original_missing(ctx, &rec, at, report).await?;
                }
            }
            (Some(_), Some(_)) => {
                let (m, rec) = (originals.pop().expect("peeked"), images.pop().expect("peeked"));
                report.add("originals_seen", 1);
                report.add("records_seen", 1);
                stored.originals += 1;
                stored.originals_bytes += m.size;
                if sampled(&rec.id, opts.reconcile_sample) {
                    report.add("records_checked", 1);
                    let due = overdue_variants(&rec, at);
                    if !due.is_empty() {
                        report.add("records_with_overdue_variants", 1);
                        overdue.extend(due);
                    }
                }
            }
            _ => unreachable!("one side is smaller or they are equal"),
        }
    }
    let mut variants = Listing::new(format!("processed/{customer}/"));
    while let Some(m) = variants.pop_next(ctx).await? {
        stored.variants += 1;
        stored.variants_bytes += m.size;
    }
    let after = counters(ctx, customer).await?;
    if before != after {
        report.add("usage_drift_skipped", 1);
        report.note(format!("usage of {customer} changed while the bucket was listed; counters checked again next run"));
    } else if stored != after {
        report.add("usage_drift_bytes", stored.bytes().abs_diff(after.bytes()));
        report.add("usage_corrected", 1);
        report.note(format!(
            "usage counters of {customer} corrected: counted {} bytes in {} objects, stored {} bytes in {} objects",
            after.bytes(),
            after.objects(),
            stored.bytes(),
            stored.objects()
        ));
        tracing::warn!(customer = %customer, counted = after.bytes(), stored = stored.bytes(), "usage counters corrected");
        ctx.meta.set_usage(customer, stored).await?;
    }
    Ok(overdue)
}

/// An old original the merge found without a record: deleted once the database confirms
/// that no record names it and no upload of it is in flight (see the module).
async fn orphan_original(
    ctx: &Context,
    id: &str,
    m: &ObjectMeta,
    uploads_since: DateTime<Utc>,
    report: &mut JobReport,
) -> Result<(), LifecycleError> {
    if !ctx.meta.claim_orphan(id, uploads_since).await? {
        report.add("originals_in_flight", 1);
        report.note(format!("{} has a record the merge did not pair it with, or its upload is in flight; kept", m.key));
        return Ok(());
    }
    tracing::warn!(key = %m.key, bytes = m.size, "original without a record; deleting it");
    report.note(format!("orphan original deleted: {} ({} bytes)", m.key, m.size));
    ctx.store.delete_many(std::slice::from_ref(&m.key)).await?;
    report.add("originals_orphaned", 1);
    report.add("orphan_bytes_freed", m.size);
    Ok(())
}

/// An old record the merge found without an original: failed once a HEAD confirms.
async fn original_missing(
    ctx: &Context,
    rec: &ImageRecord,
    at: DateTime<Utc>,
    report: &mut JobReport,
) -> Result<(), LifecycleError> {
    let already = rec.status == Status::Failed && rec.error.as_ref().is_some_and(|e| e.code == "original_missing");
    if already || ctx.store.head(&record::original_key(&rec.customer, &rec.id)).await?.is_some() {
        return Ok(());
    }
    let error = RecordError { code: "original_missing".into(), message: "reconcile found no original for this image".into() };
    if let Transition::Applied(_) = ctx.meta.fail_image(&rec.id, None, at, &error, true).await? {
        tracing::warn!(image_id = %rec.id, customer = %rec.customer, "record without an original; marked failed");
        report.note(format!("record without original: {}/{}", rec.customer, rec.id));
        report.add("records_original_missing", 1);
    }
    Ok(())
}

fn overdue_variants(rec: &ImageRecord, at: DateTime<Utc>) -> Vec<DueVariant> {
    rec.variants
        .iter()
        .filter(|v| v.state == VariantState::Ready && v.expires_at <= at)
        .map(|v| DueVariant {
            image_id: rec.id.clone(),
            customer: rec.customer.clone(),
            name: v.name.clone(),
            format: v.format.clone(),
            bytes: v.bytes,
            expires_at: v.expires_at,
        })
        .collect()
}

/// A customer's byte counters (zero when it has none).
async fn counters(ctx: &Context, customer: &str) -> Result<Figures, LifecycleError> {
    Ok(ctx.meta.usage().await?.into_iter().find(|(c, _)| c == customer).map(|(_, f)| f).unwrap_or_default())
}

/// Whether an image falls in the sample: a stable hash, so reruns check the same share.
fn sampled(id: &str, share: f64) -> bool {
    if share >= 1.0 {
        return true;
    }
    let h = imagelake_core::ids::event_id(&["sample", id]);
    let x = u32::from_str_radix(&h[..8], 16).unwrap_or(0) as f64 / u32::MAX as f64;
    x < share
}

/// A listing read one page at a time.
struct Listing {
    prefix: String,
    buf: VecDeque<ObjectMeta>,
    after: Option<String>,
    done: bool,
}

impl Listing {
    fn new(prefix: String) -> Self {
        Self { prefix, buf: VecDeque::new(), after: None, done: false }
    }
    async fn peek(&mut self, ctx: &Context) -> Result<Option<&ObjectMeta>, LifecycleError> {
        while self.buf.is_empty() && !self.done {
            let page = ctx.store.list(&self.prefix, self.after.as_deref(), PAGE).await?;
            self.buf.extend(page.objects);
            self.done = page.next.is_none();
            self.after = page.next;
        }
        Ok(self.buf.front())
    }
    fn pop(&mut self) -> Option<ObjectMeta> {
        self.buf.pop_front()
    }
    async fn pop_next(&mut self, ctx: &Context) -> Result<Option<ObjectMeta>, LifecycleError> {
        self.peek(ctx).await?;
        Ok(self.pop())
    }
}

/// A customer's images, oldest first, read one page at a time.
struct Images<'c> {
    customer: &'c str,
    buf: VecDeque<ImageRecord>,
    /// The last id read: where the next page starts.
    last: Option<String>,
    done: bool,
}

impl<'c> Images<'c> {
    fn new(customer: &'c str) -> Self {
        Self { customer, buf: VecDeque::new(), last: None, done: false }
    }
    async fn peek(&mut self, ctx: &Context) -> Result<Option<&ImageRecord>, LifecycleError> {
        if self.buf.is_empty() && !self.done {
            let page = ctx.meta.scan_images(self.customer, self.last.as_deref(), PAGE).await?;
            self.done = page.len() < PAGE;
            self.last = page.last().map(|r| r.id.clone());
            self.buf.extend(page);
        }
        Ok(self.buf.front())
    }
    fn pop(&mut self) -> Option<ImageRecord> {
        self.buf.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_stable_and_about_the_share() {
        let ids: Vec<String> = (0..2000).map(|_| imagelake_core::ids::new_id()).collect();
        let n = ids.iter().filter(|id| sampled(id, 0.25)).count();
        assert!((350..650).contains(&n), "{n} of 2000 sampled at 25 %");
        assert!(ids.iter().all(|id| sampled(id, 1.0)));
        assert!(ids.iter().all(|id| sampled(id, 0.25) == sampled(id, 0.25)));
    }
}
