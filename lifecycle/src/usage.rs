//! `usage`: what is stored, in total and per customer, against `capacity.bytes`.
//!
//! Read from the database's byte counters (`MetadataStore::usage`), which every process
//! updates in the same transactions as the records (reconcile checks them against the
//! bucket). The job writes one `usage` row per customer plus the total (`customer_id`
//! null) to the lake, re-bases this process's capacity gate, and logs a warning when
//! usage crosses 80, 90 or 100 % of capacity. Ingest processes read the counters
//! themselves (`Context::refresh_usage`).

use crate::{JobReport, LifecycleError};
use chrono::{DateTime, Utc};
use imagelake_core::app::Context;
use imagelake_core::lake::{Event, UsageRow};
pub use imagelake_core::meta::Figures;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};

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
        if self.capacity_bytes == 0 {
            100.0
        } else {
            self.total.bytes() as f64 * 100.0 / self.capacity_bytes as f64
        }
    }

    /// The lake rows of this snapshot: the total first, then one per customer.
    pub fn rows(&self) -> Vec<UsageRow> {
        let at = self.taken_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let row = |customer: Option<&str>, f: &Figures| UsageRow {
            event_id: UsageRow::event_id_of(&at, customer),
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

/// The highest threshold (0, 80, 90 or 100) the last measurement of this process reached.
static LEVEL: AtomicU8 = AtomicU8::new(0);

fn level_of(percent: f64) -> u8 {
    THRESHOLDS.iter().rev().copied().find(|t| percent >= *t as f64).unwrap_or(0)
}

fn note_level(u: &Usage) {
    let pct = u.percent();
    let level = level_of(pct);
    let before = LEVEL.swap(level, Ordering::Relaxed);
    if level > before {
        tracing::warn!(
            percent = format!("{pct:.1}"),
            threshold = level,
            used = u.total.bytes(),
            capacity = u.capacity_bytes,
            "storage usage crossed {level} % of capacity{}",
            if level >= 100 { "; uploads are refused with 507" } else { "" }
        );
    } else if level < before {
        tracing::info!(percent = format!("{pct:.1}"), threshold = level, "storage usage fell below {before} % of capacity");
    }
}

/// The database's byte counters as of `at`, per customer and in total.
pub async fn measure(ctx: &Context, at: DateTime<Utc>) -> Result<Usage, LifecycleError> {
    let customers: BTreeMap<String, Figures> = ctx.meta.usage().await?.into_iter().collect();
    let mut total = Figures::default();
    for f in customers.values() {
        total.originals_bytes += f.originals_bytes;
        total.originals += f.originals;
        total.variants_bytes += f.variants_bytes;
        total.variants += f.variants;
    }
    Ok(Usage { taken_at: at, capacity_bytes: ctx.usage.capacity(), total, customers })
}

pub async fn run(ctx: &Context, at: DateTime<Utc>, report: &mut JobReport) -> Result<Usage, LifecycleError> {
    let u = measure(ctx, at).await?;
    ctx.usage.rebase(u.total.bytes());
    note_level(&u);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(level_of(79.9), 0);
        assert_eq!(level_of(80.0), 80);
        assert_eq!(level_of(95.0), 90);
        assert_eq!(level_of(130.0), 100);
    }

    #[test]
    fn rows_are_the_total_then_each_customer() {
        let f = Figures { originals_bytes: 10, originals: 1, variants_bytes: 5, variants: 2 };
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let u = Usage { taken_at: at, capacity_bytes: 100, total: f, customers: [("acme".to_string(), f)].into() };
        let rows = u.rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].customer_id, None);
        assert_eq!(rows[1].customer_id.as_deref(), Some("acme"));
        assert_eq!((rows[1].objects, rows[1].originals_bytes, rows[1].variants_bytes), (3, 10, 5));
        assert_ne!(rows[0].event_id, rows[1].event_id);
        assert_eq!(rows[0].event_id, u.rows()[0].event_id, "deterministic");
        assert!((u.percent() - 15.0).abs() < 1e-9);
    }
}
