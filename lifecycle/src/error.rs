//! The lifecycle crate's one error type. Every variant is documented and maps to a stable
//! code, which the persisted job status (`imagelake lifecycle status`) and the command
//! line show.

use chrono::{DateTime, Utc};
use imagelake_core::lake::LakeError;
use imagelake_core::meta::MetaError;
use imagelake_core::store::StoreError;
use imagelake_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The object store failed or could not be reached; the job can simply run again
    /// (every job is idempotent). Code: the store's own (`store_unavailable`, ...).
    #[error("object store: {0}")]
    Store(#[from] StoreError),
    /// The metadata database failed or could not be reached; the job can run again.
    /// Code: the database's own (`database_unavailable`, ...).
    #[error("metadata database: {0}")]
    Meta(#[from] MetaError),
    /// Another core operation failed (finishing a delete). Code: core's own.
    #[error("{0}")]
    Core(CoreError),
    /// Writing facts to the lake failed; nothing after that step was done, so a rerun
    /// resumes. Code `lake_unavailable`.
    #[error("lake: {0}")]
    Lake(#[from] LakeError),
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
}

impl From<CoreError> for LifecycleError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Store(s) => LifecycleError::Store(s),
            CoreError::Meta(m) => LifecycleError::Meta(m),
            other => LifecycleError::Core(other),
        }
    }
}

impl LifecycleError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            LifecycleError::Store(e) => e.code(),
            LifecycleError::Meta(e) => e.code(),
            LifecycleError::Core(e) => e.code(),
            LifecycleError::Lake(_) => "lake_unavailable",
            LifecycleError::Busy { .. } => "job_busy",
            LifecycleError::LeaseLost(_) => "lease_lost",
            LifecycleError::Schedule { .. } => "invalid_schedule",
            LifecycleError::Scheduler(_) => "scheduler_failed",
            LifecycleError::UnknownJob(_) => "unknown_job",
        }
    }
}
