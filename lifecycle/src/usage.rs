//! `usage`: what is stored, in total and per customer, against `capacity.bytes`.
//!
//! Measured from the object store's own listing of `originals/` and `processed/` (the
//! bytes that are actually paid for; a listing page carries 1000 objects' sizes, so this
//! costs one request per 1000 objects). The result re-bases the gauge the capacity gate
//! reads (ingest adds accepted bytes at once, the processor adds variant bytes, deletes
//! and expiry subtract), writes one `usage` row per customer plus the total
//! (`customer_id` null), and logs a warning when usage crosses 80, 90 or 100 %.

use crate::state::{read_json, write_json};
use crate::{JobReport, LifecycleError};
use chrono::{DateTime, Utc};
use imagelake_core::app::Context;
use imagelake_core::ids;
use imagelake_core::lake::{Event, UsageRow};
use imagelake_core::store::ObjectStore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

/// Bytes and objects of one customer (or of everyone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub originals_bytes: u64,
    pub originals: u64,
    pub variants_bytes: u64,
    pub variants: u64,
}

impl Figures {
    pub fn bytes(&self) -> u64 {
        self.originals_bytes + self.variants_bytes
    }
    pub fn objects(&self) -> u64 {
        self.originals + self.variants
    }
}

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub taken_at: DateTime<Utc>,
    pub capacity_bytes: u64,
    pub total: Figures,
    pub customers: BTreeMap<String, Figures>,
}

impl Usage {
    pub fn percent(&self) -> f64 {
        if self.capacity_bytes == 0 { 100.0 } else { self.total.bytes() as f64 * 100.0 / self.capacity_bytes as f64 }
    }

    /// The lake rows of this snapshot: the total first, then one per customer.
    pub fn rows(&self) -> Vec<UsageRow> {
        let at = self.taken_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let row = |customer: Option<&str>, f: &Figures| UsageRow {
            event_id: ids::event_id(&["usage", &at, customer.unwrap_or("")]),
            taken_at: self.taken_at,
            customer_id: customer.map(str::to_string),
            originals_bytes: f.originals_bytes,
            variants_bytes: f.variants_bytes,
            objects: f.objects(),
            capacity_bytes: self.capacity_bytes,
        };
        let mut rows = vec![row(None, &self.total)];
        rows.extend(self.customers.iter().map(|(c, f)| row(Some(c), f)));
        rows
    }
}

/// The thresholds that log a warning when crossed upwards.
pub const THRESHOLDS: [u8; 3] = [80, 90, 100];

static LEVEL: AtomicU8 = AtomicU8::new(0);
static LAST: Mutex<Option<Usage>> = Mutex::new(None);

/// The highest threshold (0, 80, 90 or 100) the last measurement reached: a gauge to export.
pub fn capacity_level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

/// The last measurement of this process, for metrics.
pub fn last_usage() -> Option<Usage> {
    LAST.lock().unwrap().clone()
}

fn level_of(percent: f64) -> u8 {
    THRESHOLDS.iter().rev().copied().find(|t| percent >= *t as f64).unwrap_or(0)
}

fn note_level(u: &Usage) {
    let pct = u.percent();
    let level = level_of(pct);
    let before = LEVEL.swap(level, Ordering::Relaxed);
    if level > before {
        tracing::warn!(percent = format!("{pct:.1}"), threshold = level, used = u.total.bytes(), capacity = u.capacity_bytes,
            "storage usage crossed {level} % of capacity{}", if level >= 100 { "; uploads are refused with 507" } else { "" });
    } else if level < before {
        tracing::info!(percent = format!("{pct:.1}"), threshold = level, "storage usage fell below {before} % of capacity");
    }
    *LAST.lock().unwrap() = Some(u.clone());
}

/// Lists `originals/` and `processed/` and adds up sizes per customer.
pub async fn measure(store: &dyn ObjectStore, at: DateTime<Utc>, capacity_bytes: u64) -> Result<Usage, LifecycleError> {
    let mut u = Usage { taken_at: at, capacity_bytes, total: Figures::default(), customers: BTreeMap::new() };
    for (prefix, original) in [("originals/", true), ("processed/", false)] {
        let mut after: Option<String> = None;
        loop {
            let page = store.list(prefix, after.as_deref(), 1000).await?;
            for m in &page.objects {
                let Some(customer) = m.key[prefix.len()..].split('/').next() else { continue };
                for f in [&mut u.total, u.customers.entry(customer.to_string()).or_default()] {
                    if original {
                        f.originals += 1;
                        f.originals_bytes += m.size;
                    } else {
                        f.variants += 1;
                        f.variants_bytes += m.size;
                    }
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    Ok(u)
}

/// Measures usage now, re-bases the capacity gate on it and updates the threshold
/// gauge. Call it at start-up, before ingest accepts uploads.
pub async fn measure_usage(ctx: &Context) -> Result<Usage, LifecycleError> {
    let u = measure(ctx.store.as_ref(), ctx.clock.now(), ctx.usage.capacity()).await?;
    ctx.usage.rebase(u.total.bytes());
    note_level(&u);
    Ok(u)
}

/// Where the usage job publishes its latest measurement for ingest processes.
pub const SNAPSHOT_KEY: &str = "lifecycle/usage-latest.json";

#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    /// When the listing started: objects written after it may or may not be counted.
    taken_at: DateTime<Utc>,
    used_bytes: u64,
}

/// Re-bases the capacity gate on the usage job's latest published measurement (plus what
/// this process added since), without listing the bucket. With none published yet (a new
/// deployment), measures once by listing. Ingest calls this at start-up and every minute.
pub async fn follow_usage(ctx: &Context) -> Result<(), LifecycleError> {
    match read_json::<Snapshot>(ctx.store.as_ref(), SNAPSHOT_KEY).await? {
        Some(s) => {
            ctx.usage.rebase_at(s.used_bytes, s.taken_at.into());
            Ok(())
        }
        None => {
            let started = std::time::SystemTime::now().into();
            let u = measure_usage(ctx).await?;
            publish(ctx, started, &u).await
        }
    }
}

/// `started`: the real time the measurement's listing began.
async fn publish(ctx: &Context, started: DateTime<Utc>, u: &Usage) -> Result<(), LifecycleError> {
    write_json(ctx.store.as_ref(), SNAPSHOT_KEY, &Snapshot { taken_at: started, used_bytes: u.total.bytes() }).await
}

pub async fn run(ctx: &Context, at: DateTime<Utc>, report: &mut JobReport) -> Result<Usage, LifecycleError> {
    // Real time (not the job's `at`): it orders against this process's own changes.
    let started: DateTime<Utc> = std::time::SystemTime::now().into();
    let u = measure(ctx.store.as_ref(), at, ctx.usage.capacity()).await?;
    ctx.usage.rebase_at(u.total.bytes(), started.into());
    note_level(&u);
    publish(ctx, started, &u).await?;
    let rows: Vec<Event> = u.rows().into_iter().map(Event::Usage).collect();
    report.add("rows_written", rows.len() as u64);
    let flushed = ctx.lake.write_durable(rows).await?;
    report.add("lake_files_written", flushed.files.len() as u64);
    report.add("used_bytes", u.total.bytes());
    report.add("originals_bytes", u.total.originals_bytes);
    report.add("variants_bytes", u.total.variants_bytes);
    report.add("objects", u.total.objects());
    report.add("capacity_bytes", u.capacity_bytes);
    report.add("customers", u.customers.len() as u64);
    report.add("percent_used_x100", (u.percent() * 100.0).round() as u64);
    Ok(u)
}
