//! `reconcile`: compares the records with the object store and repairs what it can.
//!
//! `originals/{c}/{id}` and `records/{c}/{id}.json` list in the same order (ids have one
//! length), so one merge of the two listings, page by page, finds both kinds of orphan
//! at one LIST request per 1000 images, however many images there are:
//! - an original without a record, older than `orphan_age` (ingest writes the original
//!   first): a failed upload's leftover; deleted (`originals_orphaned`);
//! - a record without an original, older than `orphan_age`: marked `failed` with code
//!   `original_missing` (`records_original_missing`);
//! - for a share `reconcile_sample` of the images that have both (1.0 = all; reading a
//!   record is one GET), a `ready` variant past its expiry is expired exactly like the
//!   expire sweep does (`variants_expired` ...), so nothing outlives its retention because
//!   a lake file was lost or written late.
//!
//! The lake side of usage is the `usage` job's; counts of what was found are in the
//! report and the persisted status (`lifecycle/status/reconcile.json`).

use crate::expire::expire_images;
use crate::{JobReport, LifecycleError, Options};
use chrono::{DateTime, Utc};
use imagelake_core::app::Context;
use imagelake_core::record::{self, RecordError, Status, VariantState};
use imagelake_core::store::{ObjectMeta, ObjectStore};
use std::collections::VecDeque;

/// A listing read one page at a time.
struct Cursor<'a> {
    store: &'a dyn ObjectStore,
    prefix: &'static str,
    buf: VecDeque<ObjectMeta>,
    after: Option<String>,
    done: bool,
}

impl<'a> Cursor<'a> {
    fn new(store: &'a dyn ObjectStore, prefix: &'static str) -> Self {
        Self { store, prefix, buf: VecDeque::new(), after: None, done: false }
    }
    /// The next entry's `{customer}/{id}`, which sorts like the listing itself does.
    async fn peek(&mut self) -> Result<Option<String>, LifecycleError> {
        while self.buf.is_empty() && !self.done {
            let page = self.store.list(self.prefix, self.after.as_deref(), 1000).await?;
            self.buf.extend(page.objects);
            match page.next {
                Some(n) => self.after = Some(n),
                None => self.done = true,
            }
        }
        Ok(self.buf.front().and_then(|m| self.ident(&m.key)))
    }
    fn pop(&mut self) -> Option<ObjectMeta> {
        self.buf.pop_front()
    }
    fn ident(&self, key: &str) -> Option<String> {
        Some(key.get(self.prefix.len()..)?.trim_end_matches(".json").to_string())
    }
}

/// Whether (customer, id) falls in the sample: a stable hash, so reruns check the same share.
fn sampled(id: &str, share: f64) -> bool {
    if share >= 1.0 {
        return true;
    }
    let h = imagelake_core::ids::event_id(&["sample", id]);
    let x = u32::from_str_radix(&h[..8], 16).unwrap_or(0) as f64 / u32::MAX as f64;
    x < share
}

pub async fn run(ctx: &Context, at: DateTime<Utc>, opts: &Options, report: &mut JobReport) -> Result<(), LifecycleError> {
    let store = ctx.store.as_ref();
    let old = at - chrono::Duration::from_std(opts.orphan_age).unwrap_or(chrono::Duration::hours(1));
    let mut originals = Cursor::new(store, "originals/");
    let mut records = Cursor::new(store, "records/");
    let mut due: Vec<(String, String)> = Vec::new();
    loop {
        let (o, r) = (originals.peek().await?, records.peek().await?);
        match (o, r) {
            (None, None) => break,
            (Some(o), r) if r.as_ref().is_none_or(|r| o < *r) => {
                let m = originals.pop().expect("peeked");
                report.add("originals_seen", 1);
                if m.last_modified < old {
                    tracing::warn!(key = %m.key, bytes = m.size, "original without a record; deleting it");
                    report.note(format!("orphan original deleted: {} ({} bytes)", m.key, m.size));
                    store.delete_many(std::slice::from_ref(&m.key)).await?;
                    ctx.usage.sub(m.size);
                    report.add("originals_orphaned", 1);
                    report.add("orphan_bytes_freed", m.size);
                }
            }
            (o, Some(r)) if o.as_ref().is_none_or(|o| r < *o) => {
                records.pop();
                report.add("records_seen", 1);
                let Some((customer, id)) = r.split_once('/') else { continue };
                let Some(mut rec) = record::read(store, customer, id).await? else { continue };
                let already = rec.status == Status::Failed && rec.error.as_ref().is_some_and(|e| e.code == "original_missing");
                if rec.uploaded_at < old && !already {
                    tracing::warn!(image_id = %rec.id, customer = %rec.customer, "record without an original; marking it failed");
                    report.note(format!("record without original: {}/{}", rec.customer, rec.id));
                    rec.status = Status::Failed;
                    rec.error = Some(RecordError {
                        code: "original_missing".into(),
                        message: "reconcile found no original for this record".into(),
                    });
                    record::write(store, &rec).await?;
                    report.add("records_original_missing", 1);
                }
            }
            (Some(_), Some(r)) => {
                originals.pop();
                records.pop();
                report.add("originals_seen", 1);
                report.add("records_seen", 1);
                let Some((customer, id)) = r.split_once('/') else { continue };
                if sampled(id, opts.reconcile_sample) {
                    report.add("records_checked", 1);
                    if let Some(rec) = record::read(store, customer, id).await? {
                        if rec.variants.iter().any(|v| v.state == VariantState::Ready && v.expires_at <= at) {
                            report.add("records_with_overdue_variants", 1);
                            due.push((customer.to_string(), id.to_string()));
                        }
                    }
                }
            }
            _ => unreachable!("one side is smaller or they are equal"),
        }
    }
    if !due.is_empty() {
        tracing::warn!(images = due.len(), "variants past expiry still present; expiring them");
        expire_images(ctx, due, at, opts, None, report).await?;
    }
    Ok(())
}
