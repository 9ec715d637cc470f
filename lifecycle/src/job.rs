//! The jobs, their schedules, and what one run reports.

use crate::LifecycleError;
use chrono::{DateTime, Utc};
use imagelake_core::config::LifecycleConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One scheduled job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobName {
    /// Deletes processed variants past `expires_at`, purges expired idempotency keys.
    Expire,
    /// Writes the byte counters to the lake (a `usage` snapshot), against capacity.
    Usage,
    /// Merges the lake's small files: closed days whole, the current day's writer files.
    Compact,
    /// Makes the daily aggregates of closed days whose facts changed.
    Aggregate,
    /// Aborts multipart uploads left incomplete for longer than `multipart_age`.
    AbortMultipart,
    /// Compares the database with the object store, and repairs what it can.
    Reconcile,
}

impl JobName {
    pub const ALL: [JobName; 6] =
        [JobName::Expire, JobName::Usage, JobName::Compact, JobName::Aggregate, JobName::AbortMultipart, JobName::Reconcile];

    pub fn as_str(self) -> &'static str {
        match self {
            JobName::Expire => "expire",
            JobName::Usage => "usage",
            JobName::Compact => "compact",
            JobName::Aggregate => "aggregate",
            JobName::AbortMultipart => "abort-multipart",
            JobName::Reconcile => "reconcile",
        }
    }

    /// The job's cron expression from `[lifecycle]`.
    pub fn schedule(self, c: &LifecycleConfig) -> &str {
        match self {
            JobName::Expire => &c.expire,
            JobName::Usage => &c.usage,
            JobName::Compact => &c.compact,
            JobName::Aggregate => &c.aggregate,
            JobName::AbortMultipart => &c.abort_multipart,
            JobName::Reconcile => &c.reconcile,
        }
    }
}

impl std::fmt::Display for JobName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobName {
    type Err = LifecycleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        JobName::ALL.into_iter().find(|j| j.as_str() == s).ok_or(LifecycleError::UnknownJob(s))
    }
}

/// What one run did: counts and bytes by name, and the store requests it made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    pub job: JobName,
    /// The time the job ran "as of" (the clock, or `--at`).
    pub at: DateTime<Utc>,
    pub duration_ms: u64,
    /// Object-store requests made through the job's store handle (a `delete_many` of up
    /// to 1000 keys is one request; lake files written count under `lake_files_written`).
    pub requests: u64,
    /// Named counts (`variants_expired`, `bytes_freed`, ...), in name order.
    pub counts: BTreeMap<String, u64>,
    /// Findings worth a human's eye (reconcile), at most a few dozen.
    pub notes: Vec<String>,
}

impl JobReport {
    pub fn new(job: JobName, at: DateTime<Utc>) -> Self {
        Self { job, at, duration_ms: 0, requests: 0, counts: BTreeMap::new(), notes: Vec::new() }
    }
    pub fn add(&mut self, name: &str, n: u64) {
        *self.counts.entry(name.to_string()).or_default() += n;
    }
    pub fn count(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }
    pub fn note(&mut self, s: String) {
        if self.notes.len() < 50 {
            self.notes.push(s);
        }
    }
}

impl std::fmt::Display for JobReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} as of {}: {} ms, {} store requests", self.job, self.at.to_rfc3339(), self.duration_ms, self.requests)?;
        for (k, v) in &self.counts {
            writeln!(f, "  {k:<28} {v}")?;
        }
        for n in &self.notes {
            writeln!(f, "  ! {n}")?;
        }
        Ok(())
    }
}

/// The jobs' tunables: [`Options::from_config`] (the `[lifecycle]` keys) is what the
/// scheduler and `run_job` use; tests set their own.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a lease lasts without renewal (renewed every third of it).
    pub lease_ttl: Duration,
    /// Expire: due variants taken from the database at once (their objects deleted in
    /// `delete_many` calls of 1000, then their `deletions` rows written durably, then
    /// the variants marked `expired`).
    pub expire_chunk: usize,
    /// Reconcile: the share of images whose variants are checked for overdue expiry,
    /// 0 < x <= 1 (1 = all).
    pub reconcile_sample: f64,
    /// Reconcile: an original without a record is deleted, a record without an original
    /// failed, and a delete left unfinished is completed, only once older than this
    /// (ingest writes the original before the record).
    pub orphan_age: Duration,
    /// Abort-multipart: uploads initiated longer ago than this are aborted.
    pub multipart_age: Duration,
}

impl Options {
    pub fn from_config(c: &LifecycleConfig) -> Self {
        Self {
            lease_ttl: c.lease_ttl.0,
            expire_chunk: 10_000,
            reconcile_sample: c.reconcile_sample,
            orphan_age: c.orphan_age.0,
            multipart_age: c.multipart_age.0,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::from_config(&LifecycleConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_round_trip() {
        for j in JobName::ALL {
            assert_eq!(j.as_str().parse::<JobName>().unwrap(), j);
        }
        assert_eq!("abort_multipart".parse::<JobName>().unwrap(), JobName::AbortMultipart);
        assert_eq!("nope".parse::<JobName>().unwrap_err().code(), "unknown_job");
    }
}
