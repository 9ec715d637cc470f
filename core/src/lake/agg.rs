//! The lake's daily aggregates: which tables there are, which facts they are made from,
//! and whether a day's aggregates are current.
//!
//! For each day `D`, `lake/agg_{name}/dt=D/{fingerprint}.parquet` holds that aggregate of
//! the facts in the `dt=D` partitions of [`INPUTS`] (`sql/aggregates.sql` says what each
//! holds). The fingerprint is a digest of the day's input files (their keys and sizes), so
//! the files themselves record what they cover, and staleness is exact: when a file of the
//! day comes or goes (a late fact, a compaction), the day's fingerprint changes, its
//! aggregates no longer match, and readers take the day's raw facts until the lifecycle
//! aggregates it again. (The Parquet files also carry the list of inputs in their
//! key-value metadata, `imagelake.inputs`.) A day is *current* when every aggregate has a
//! file named by the day's fingerprint. The SQL is in the fingerprint too: an upgrade that
//! changes it makes every day again.

use super::layout::{self, Parsed};
use super::Table;
use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The fact tables the aggregates are made from.
pub const INPUTS: [Table; 6] = [Table::Uploads, Table::Jobs, Table::Variants, Table::Deletions, Table::Posts, Table::Comments];

/// The aggregate tables, in the order `sql/aggregates.sql` makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Agg {
    Uploads,
    Unattempted,
    LateOutcomes,
    Jobs,
    JobMs,
    JobMsHour,
    Attempts,
    AttemptMs,
    AttemptMsAll,
    Variants,
    Deletions,
    Posts,
    Comments,
    PostComments,
    PostState,
    Copies,
}

impl Agg {
    pub const ALL: [Agg; 16] = [
        Agg::Uploads,
        Agg::Unattempted,
        Agg::LateOutcomes,
        Agg::Jobs,
        Agg::JobMs,
        Agg::JobMsHour,
        Agg::Attempts,
        Agg::AttemptMs,
        Agg::AttemptMsAll,
        Agg::Variants,
        Agg::Deletions,
        Agg::Posts,
        Agg::Comments,
        Agg::PostComments,
        Agg::PostState,
        Agg::Copies,
    ];

    /// The table's name in SQL and its directory in the lake.
    pub fn name(self) -> &'static str {
        match self {
            Agg::Uploads => "agg_uploads",
            Agg::Unattempted => "agg_unattempted",
            Agg::LateOutcomes => "agg_late_outcomes",
            Agg::Jobs => "agg_jobs",
            Agg::JobMs => "agg_job_ms",
            Agg::JobMsHour => "agg_job_ms_hour",
            Agg::Attempts => "agg_attempts",
            Agg::AttemptMs => "agg_attempt_ms",
            Agg::AttemptMsAll => "agg_attempt_ms_all",
            Agg::Variants => "agg_variants",
            Agg::Deletions => "agg_deletions",
            Agg::Posts => "agg_posts",
            Agg::Comments => "agg_comments",
            Agg::PostComments => "agg_post_comments",
            Agg::PostState => "agg_post_state",
            Agg::Copies => "agg_copies",
        }
    }

    /// Whether the reporting service keeps the table in memory (reporting/src/memory.rs).
    /// `agg_job_ms_hour` it reads from the files of a range's edge days only
    /// (reporting/src/edges.rs): it is five times the rows of `agg_job_ms`, and a query needs
    /// at most four days of it.
    pub fn in_memory(self) -> bool {
        self != Agg::JobMsHour
    }

    pub fn from_name(name: &str) -> Option<Agg> {
        Agg::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The key of the day's file with this fingerprint.
    pub fn key(self, day: NaiveDate, fingerprint: &str) -> String {
        layout::file_key(self.name(), day, &format!("{fingerprint}.parquet"))
    }
}

/// A listing of the lake: keys relative to `lake/` (`{dir}/dt=.../{file}.parquet`) and sizes.
pub type Listing = BTreeMap<String, u64>;

/// The digest of a day's input files (relative keys and sizes, in key order) and of the
/// SQL that makes the aggregates (a new version of `sql/aggregates.sql` or `sql/views.sql`
/// makes every day again): 16 hex digits.
pub fn fingerprint<'a>(inputs: impl IntoIterator<Item = (&'a str, u64)>) -> String {
    let mut h = Sha256::new();
    h.update(super::views::AGGREGATES_SQL.as_bytes());
    h.update(super::views::VIEWS_SQL.as_bytes());
    for (key, size) in inputs {
        h.update(key.as_bytes());
        h.update(b"\t");
        h.update(size.to_string().as_bytes());
        h.update(b"\n");
    }
    hex::encode(&h.finalize()[..8])
}

/// One day of the lake, as far as the aggregates are concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Day {
    /// The day's input files (relative keys) and sizes, in key order.
    pub inputs: Vec<(String, u64)>,
    /// Their fingerprint.
    pub fingerprint: String,
    /// Every aggregate has the day's file for this fingerprint.
    pub current: bool,
    /// The aggregate files of the day (relative keys), current or not.
    pub agg_files: Vec<String>,
}

/// The aggregate files (relative keys) of `day` for `fingerprint`, one per table.
pub fn files(day: NaiveDate, fingerprint: &str) -> Vec<String> {
    Agg::ALL.iter().map(|a| layout::relative(&a.key(day, fingerprint)).to_string()).collect()
}

/// Every day that has input facts, from a listing of the lake.
pub fn days(listing: &Listing) -> BTreeMap<NaiveDate, Day> {
    let mut out: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    for (key, size) in listing {
        let Some(Parsed { dir, day, .. }) = layout::parse(key) else { continue };
        if INPUTS.iter().any(|t| t.name() == dir) {
            out.entry(day).or_default().inputs.push((key.clone(), *size));
        } else if Agg::from_name(dir).is_some() {
            out.entry(day).or_default().agg_files.push(key.clone());
        }
    }
    out.retain(|_, d| !d.inputs.is_empty());
    for (day, d) in &mut out {
        d.inputs.sort();
        d.fingerprint = fingerprint(d.inputs.iter().map(|(k, s)| (k.as_str(), *s)));
        d.current = files(*day, &d.fingerprint).iter().all(|w| d.agg_files.contains(w));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_current_until_its_inputs_change() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let mut l: Listing = [
            ("uploads/dt=2026-11-28/a.parquet".to_string(), 10),
            ("jobs/dt=2026-11-28/b.parquet".to_string(), 20),
            ("downloads/dt=2026-11-28/c.parquet".to_string(), 5),
        ]
        .into();
        let day = &days(&l)[&d];
        assert!(!day.current);
        assert_eq!(day.inputs.len(), 2, "downloads are not aggregated");
        let fp = day.fingerprint.clone();
        for a in Agg::ALL {
            l.insert(layout::relative(&a.key(d, &fp)).to_string(), 1);
        }
        let day = &days(&l)[&d];
        assert!(day.current);
        assert!(files(d, &fp).iter().all(|f| day.agg_files.contains(f)));
        // A late file, a compaction's changed size: the day is stale.
        let mut late = l.clone();
        late.insert("comments/dt=2026-11-28/z.parquet".into(), 3);
        assert!(!days(&late)[&d].current);
        let mut resized = l.clone();
        resized.insert("uploads/dt=2026-11-28/a.parquet".into(), 11);
        assert!(!days(&resized)[&d].current);
        // One aggregate missing (a write in progress): stale too.
        let mut partial = l.clone();
        partial.remove(layout::relative(&Agg::PostState.key(d, &fp)));
        assert!(!days(&partial)[&d].current);
        // Aggregates of a day without facts are ignored.
        let mut orphan = l.clone();
        orphan.insert("agg_jobs/dt=2026-01-01/x.parquet".into(), 1);
        assert!(!days(&orphan).contains_key(&NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()));
    }
}
