//! The lifecycle crate's one error type. Every variant is documented and maps to a stable
//! code, which the persisted job status (`lifecycle/status/{job}.json`) and the command
//! line show.

use chrono::{DateTime, Utc};
use imagelake_core::lake::LakeError;
use imagelake_core::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The object store failed or could not be reached; the job can simply run again
    /// (every job is idempotent). Code: the store's own (`store_unavailable`, ...).
    #[error("object store: {0}")]
    Store(#[from] StoreError),
    /// Writing facts to the lake failed; nothing after that step was done, so a rerun
    /// resumes. Code `lake_unavailable`.
    #[error("lake: {0}")]
    Lake(#[from] LakeError),
    /// A lake file could not be read as Parquet of the expected schema. Code `lake_unreadable`.
    #[error("lake file {0}: {1}")]
    LakeRead(String, String),
    /// Another runner (in this process or another) holds the job's lease: the job is
    /// already running. Code `job_busy`.
    #[error("job {job} is already running (lease held by {owner} until {until})")]
    Busy { job: &'static str, owner: String, until: DateTime<Utc> },
    /// The lease was taken over while the job ran (it could not be renewed in time); the
    /// job stopped at the next batch boundary. Code `lease_lost`.
    #[error("the lease of job {0} was lost while it ran; stopped")]
    LeaseLost(&'static str),
    /// A schedule is not a six-field cron expression (`sec min hour day month weekday`).
    /// Code `invalid_schedule`.
    #[error("invalid schedule for {job}: `{expr}`: {reason}")]
    Schedule { job: &'static str, expr: String, reason: String },
    /// The cron scheduler could not be started. Code `scheduler_failed`.
    #[error("scheduler: {0}")]
    Scheduler(String),
    /// The name is not one of the jobs. Code `unknown_job`.
    #[error("unknown job `{0}`: one of expire, usage, compact, abort-multipart, reconcile")]
    UnknownJob(String),
    /// A lifecycle state or status object exists but cannot be decoded. Code `corrupt_state`.
    #[error("state object {0} is corrupt: {1}")]
    CorruptState(String, String),
}

impl LifecycleError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            LifecycleError::Store(e) => e.code(),
            LifecycleError::Lake(_) => "lake_unavailable",
            LifecycleError::LakeRead(..) => "lake_unreadable",
            LifecycleError::Busy { .. } => "job_busy",
            LifecycleError::LeaseLost(_) => "lease_lost",
            LifecycleError::Schedule { .. } => "invalid_schedule",
            LifecycleError::Scheduler(_) => "scheduler_failed",
            LifecycleError::UnknownJob(_) => "unknown_job",
            LifecycleError::CorruptState(..) => "corrupt_state",
        }
    }
}
