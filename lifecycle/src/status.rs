//! The last run of each job, kept as `lifecycle/status/{job}.json` in the store, so that
//! `imagelake lifecycle status` shows it whichever process ran the job.

use crate::state::{read_json, write_json};
use crate::{JobName, JobReport};
use chrono::{DateTime, Utc};
use imagelake_core::app::Context;
use serde::{Deserialize, Serialize};

pub fn status_key(job: JobName) -> String {
    format!("lifecycle/status/{}.json", job.as_str())
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    pub owner: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `ok` or `failed`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub report: JobReport,
}

/// One line of `imagelake lifecycle status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub job: JobName,
    pub schedule: String,
    pub last_run: Option<LastRun>,
    /// Set when the status object could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_error: Option<String>,
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<16} {:<18}", self.job.as_str(), self.schedule)?;
        match (&self.last_run, &self.read_error) {
            (_, Some(e)) => write!(f, " status unreadable: {e}"),
            (None, None) => write!(f, " never ran"),
            (Some(r), None) => {
                write!(f, " last {} {} ({} ms, by {})", r.finished_at.to_rfc3339(), r.outcome, r.report.duration_ms, r.owner)?;
                if let Some(code) = &r.error_code {
                    write!(f, " [{code}] {}", r.error.as_deref().unwrap_or(""))?;
                }
                Ok(())
            }
        }
    }
}

pub async fn save(ctx: &Context, job: JobName, run: &LastRun) {
    if let Err(e) = write_json(ctx.store.as_ref(), &status_key(job), run).await {
        tracing::warn!(job = %job, error = %e, "could not save the job's status");
    }
}

/// Every job, its schedule, and its last run.
pub async fn status(ctx: &Context) -> Vec<JobStatus> {
    let mut out = Vec::new();
    for job in JobName::ALL {
        let schedule = job.schedule(&ctx.config.lifecycle).to_string();
        let (last_run, read_error) = match read_json::<LastRun>(ctx.store.as_ref(), &status_key(job)).await {
            Ok(r) => (r, None),
            Err(e) => (None, Some(e.to_string())),
        };
        out.push(JobStatus { job, schedule, last_run, read_error });
    }
    out
}
