//! The raw facts of one report's range that are not in memory, as views of the query's own
//! connection (DuckDB's temporary objects are per connection), created just before it:
//! - `edge_{t}`, for each aggregated input table `t`: the files of the aggregated days an
//!   edge of the range cuts (for the jobs, the day before each too: the attempts that
//!   finished after midnight, `reread(.., 1)` in sql/facts.sql), deduplicated with the
//!   days' list of the facts that have copies (`agg_copies`), not by counting every
//!   fact's copies. The macros of sql/facts.sql reread the cut hours (days) from these in
//!   place of their aggregate rows.
//! - `edge_job_ms_hour`: the hourly latency histograms (`agg_job_ms_hour`) of the same
//!   aggregated days as `edge_jobs`: a range cut inside a day reads that day's whole hours
//!   from them, and only its cut hours from the raw jobs (`job_ms_facts`).
//! - `range_usage`: the usage snapshots of the range's days (the usage table is not
//!   aggregated; the usage report's trend reads them).
//!
//! So a query binds the files of its edge days and range, never a view over the whole
//! lake: DuckDB's planning of a view costs in proportion to the files it lists, and a
//! lake of a year holds hundreds of them per table.

use crate::objects::{self, EMPTY_AGG_SCHEMA};
use chrono::{DateTime, NaiveDate, Utc};
use imagelake_core::lake::agg::{Agg, Listing, INPUTS};
use imagelake_core::lake::layout;
use imagelake_core::lake::views::{self, ViewStatement};
use imagelake_core::lake::Table;
use std::collections::{BTreeMap, BTreeSet};

/// The name of the usage snapshots of a query's range.
const RANGE_USAGE: &str = "range_usage";

/// A table's files by day, quoted, and the `views.sql` statement of its view.
#[derive(Debug, Default)]
struct TableFiles {
    view_sql: String,
    days: BTreeMap<NaiveDate, Vec<String>>,
}

/// The files a query's edge views may list, from one listing: those of the aggregated days
/// of each input table, and every usage file.
#[derive(Debug, Default)]
pub struct DayFiles {
    tables: Vec<(Table, TableFiles)>,
    /// The `agg_job_ms_hour` file of each aggregated day, quoted.
    job_ms_hour: BTreeMap<NaiveDate, String>,
}

/// The name of the hourly latency histograms of a query's edge days.
const EDGE_JOB_MS_HOUR: &str = "edge_job_ms_hour";

/// The days of `table` an edge of [from, to) makes a query reread: for an edge inside a
/// day, that day, and for the jobs the day before too (the macros reread the jobs of the
/// edge's day and the day before, `reread(.., 1)`: a job's attempts are in the day it was
/// enqueued). The other tables' facts of the day before are not read: a view over them
/// would still deduplicate them all.
pub fn edge_days(table: Table, from: DateTime<Utc>, to: DateTime<Utc>) -> BTreeSet<NaiveDate> {
    let mut out = BTreeSet::new();
    for t in [from, to] {
        let d = t.date_naive();
        if t.naive_utc() != d.and_hms_opt(0, 0, 0).expect("midnight exists") {
            if table == Table::Jobs {
                out.extend(d.pred_opt());
            }
            out.insert(d);
        }
    }
    out
}

/// The `(dt, event_id)` of `table`'s facts with copies in the aggregated days, from their
/// aggregates (`agg_copies`, sql/aggregates.sql): an edge view deduplicates these only,
/// instead of counting the copies of every fact of its days.
fn copies_sql(table: Table) -> String {
    format!("SELECT dt, event_id FROM {} WHERE fact_table = '{}'", Agg::Copies.name(), table.name())
}

/// Views in the main schema under the same names, over the empty stand-ins: what a query
/// without a range reads, and what the macros name when they are created (a connection's
/// temporary views come first in DuckDB's search path). The input tables' stand-ins are
/// the aggregation's (`aggregate::create_empty`); the usage snapshots' is made here.
pub fn placeholders_sql() -> String {
    let usage = views::empty_table_sql_named(Table::Usage, &format!("{EMPTY_AGG_SCHEMA}.{}", Table::Usage.name()));
    let views: String = INPUTS
        .iter()
        .map(|t| (format!("edge_{}", t.name()), t.name()))
        .chain([(RANGE_USAGE.to_string(), Table::Usage.name())])
        .map(|(name, t)| format!("CREATE VIEW {name} AS SELECT * FROM {EMPTY_AGG_SCHEMA}.{t};\n"))
        .collect();
    format!("{usage};\n{views}CREATE VIEW {EDGE_JOB_MS_HOUR} AS {};\n", empty_job_ms_hour())
}

/// The columns of `agg_job_ms_hour` and its `dt`, no rows.
fn empty_job_ms_hour() -> String {
    format!("SELECT *, NULL::DATE AS dt FROM {EMPTY_AGG_SCHEMA}.{}", Agg::JobMsHour.name())
}

impl DayFiles {
    /// From `listing`; `current` are the aggregated days.
    pub fn new(listing: &Listing, lake_root: &str, statements: &[ViewStatement], current: &BTreeMap<NaiveDate, String>) -> Self {
        let mut tables: Vec<(Table, TableFiles)> = INPUTS
            .iter()
            .chain([Table::Usage].iter())
            .map(|t| {
                let st = statements.iter().find(|s| s.table == Some(*t)).expect("views.sql has a view of every table");
                (*t, TableFiles { view_sql: st.sql.clone(), days: BTreeMap::new() })
            })
            .collect();
        for key in listing.keys() {
            let Some(p) = layout::parse(key) else { continue };
            let Some((t, files)) = tables.iter_mut().find(|(t, _)| t.name() == p.dir) else { continue };
            if *t == Table::Usage || current.contains_key(&p.day) {
                files.days.entry(p.day).or_default().push(objects::quote(lake_root, key));
            }
        }
        let job_ms_hour = current.iter().map(|(d, fp)| (*d, objects::quote(lake_root, &Agg::JobMsHour.key(*d, fp)))).collect();
        DayFiles { tables, job_ms_hour }
    }

    /// The statements that (re)create the views of a query over [from, to).
    pub fn sql(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
        let mut out = String::new();
        for (t, files) in &self.tables {
            let (name, listed): (String, Vec<String>) = if *t == Table::Usage {
                let days = files.days.iter().filter(|(d, _)| (from.date_naive()..=to.date_naive()).contains(*d));
                (RANGE_USAGE.into(), days.flat_map(|(_, f)| f.iter().cloned()).collect())
            } else {
                let days = edge_days(*t, from, to).into_iter().filter_map(|d| files.days.get(&d));
                (format!("edge_{}", t.name()), days.flatten().cloned().collect())
            };
            // The edge days are aggregated: their aggregates list the facts with copies.
            let copies = (*t != Table::Usage).then(|| copies_sql(*t));
            let sql =
                objects::view_over(&files.view_sql, *t, &name, &listed, true, copies.as_deref(), None).unwrap_or_else(|| {
                    format!("CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {EMPTY_AGG_SCHEMA}.{}", t.name())
                });
            out.push_str(&sql);
            out.push_str(";\n");
        }
        let hours: Vec<String> =
            edge_days(Table::Jobs, from, to).iter().filter_map(|d| self.job_ms_hour.get(d)).cloned().collect();
        let body =
            if hours.is_empty() { empty_job_ms_hour() } else { format!("SELECT * FROM {}", objects::read_parquet(&hours)) };
        out.push_str(&format!("CREATE OR REPLACE TEMP VIEW {EDGE_JOB_MS_HOUR} AS {body};\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use imagelake_core::lake::views;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn edges_are_the_cut_days_and_for_jobs_the_days_before() {
        assert!(edge_days(Table::Jobs, at(1, 0, 0), at(20, 0, 0)).is_empty());
        assert_eq!(edge_days(Table::Jobs, at(10, 9, 17), at(20, 0, 0)), [day(9), day(10)].into());
        assert_eq!(edge_days(Table::Jobs, at(10, 0, 0), at(20, 16, 43)), [day(19), day(20)].into());
        assert_eq!(edge_days(Table::Jobs, at(10, 9, 0), at(10, 16, 0)), [day(9), day(10)].into());
        assert_eq!(edge_days(Table::Uploads, at(10, 9, 17), at(20, 16, 43)), [day(10), day(20)].into());
        assert_eq!(edge_days(Table::Comments, at(10, 9, 0), at(10, 16, 0)), [day(10)].into());
        assert!(edge_days(Table::Variants, at(1, 0, 0), at(20, 0, 0)).is_empty());
    }

    #[test]
    fn a_query_lists_its_edge_days_and_its_range_usage_only() {
        let st = views::statements(views::VIEWS_SQL);
        let listing: Listing = (1..=30)
            .flat_map(|d| {
                let day = layout::day_str(day(d));
                [format!("uploads/dt={day}/u.parquet"), format!("jobs/dt={day}/j.parquet"), format!("usage/dt={day}/s.parquet")]
            })
            .map(|k| (k, 1))
            .collect();
        // Days 1 to 28 aggregated; 29 and 30 raw.
        let current: BTreeMap<NaiveDate, String> = (1..=28).map(|d| (day(d), "fp".to_string())).collect();
        let files = DayFiles::new(&listing, "/lake", &st, &current);
        let sql = files.sql(at(10, 9, 17), at(29, 16, 43));
        let view = |name: &str| sql.split(";\n").find(|s| s.contains(&format!("VIEW {name} AS"))).unwrap().to_string();
        let uploads = view("edge_uploads");
        assert!(uploads.starts_with("CREATE OR REPLACE TEMP VIEW edge_uploads AS"), "{uploads}");
        assert!(uploads.contains("dt=2026-11-10/u.parquet"), "{uploads}");
        assert!(uploads.contains("FROM agg_copies WHERE fact_table = 'uploads'") && !uploads.contains("GROUP BY"), "{uploads}");
        assert_eq!(uploads.matches(".parquet'").count(), 1, "day 29 is raw (recent_uploads), day 9 not read: {uploads}");
        let jobs = view("edge_jobs");
        for d in [9, 10, 28] {
            assert!(jobs.contains(&format!("dt=2026-11-{d:02}/j.parquet")), "day {d}: {jobs}");
        }
        assert_eq!(jobs.matches(".parquet'").count(), 3, "{jobs}");
        let hours = view("edge_job_ms_hour");
        for d in [9, 10, 28] {
            assert!(hours.contains(&format!("'/lake/agg_job_ms_hour/dt=2026-11-{d:02}/fp.parquet'")), "day {d}: {hours}");
        }
        assert_eq!(hours.matches(".parquet'").count(), 3, "the aggregated edge days of the jobs: {hours}");
        assert!(view("edge_variants").contains("agg_empty.variants"), "no files: the empty stand-in");
        let usage = view("range_usage");
        assert_eq!(usage.matches(".parquet'").count(), 20, "days 10 to 29: {usage}");
        assert!(usage.contains("QUALIFY"), "deduplicated as the usage view is");
        // Whole days cut nothing.
        let sql = files.sql(at(10, 0, 0), at(12, 0, 0));
        assert!(sql.contains("TEMP VIEW edge_uploads AS SELECT * FROM agg_empty.uploads"), "{sql}");
        assert!(sql.contains("TEMP VIEW edge_job_ms_hour AS SELECT *, NULL::DATE AS dt FROM agg_empty.agg_job_ms_hour"), "{sql}");
    }
}
