//! The last run of each job, kept in the metadata database (`job_state`, as JSON under
//! `lifecycle/status/{job}`), so that `imagelake lifecycle status` shows it whichever
//! process ran the job.

use crate::{JobName, JobReport};
use chrono::{DateTime, Utc};
use imagelake_core::app::Context;
use serde::{Deserialize, Serialize};

/// The name of a job's last-run document.
pub fn state_name(job: JobName) -> String {
    format!("lifecycle/status/{}", job.as_str())
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
    /// Set when the last-run document could not be read.
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
    let doc = serde_json::to_string(run).expect("a run serializes");
    if let Err(e) = ctx.meta.save_state(&state_name(job), &doc, run.finished_at).await {
        tracing::warn!(job = %job, error = %e, "could not save the job's status");
    }
}

async fn load(ctx: &Context, job: JobName) -> Result<Option<LastRun>, String> {
    match ctx.meta.load_state(&state_name(job)).await {
        Ok(Some(doc)) => serde_json::from_str(&doc).map(Some).map_err(|e| format!("corrupt: {e}")),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Every job, its schedule, and its last run.
pub async fn status(ctx: &Context) -> Vec<JobStatus> {
    let mut out = Vec::new();
    for job in JobName::ALL {
        let schedule = job.schedule(&ctx.config.lifecycle).to_string();
        let (last_run, read_error) = match load(ctx, job).await {
            Ok(r) => (r, None),
            Err(e) => (None, Some(e)),
        };
        out.push(JobStatus { job, schedule, last_run, read_error });
    }
    out
}
