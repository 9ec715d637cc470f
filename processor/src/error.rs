//! Why a job failed. Each variant says whether a retry could help: a corrupt image stays
//! corrupt, an unreachable store may come back.

use crate::pipeline::PipelineError;
use imagelake_core::lake::LakeError;
use imagelake_core::queue::QueueError;
use imagelake_core::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The image cannot be processed (corrupt, unsupported, too large): permanent.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The object store failed: retried through the queue.
    #[error("object store: {0}")]
    Store(#[from] StoreError),
    /// The lake write failed: retried through the queue.
    #[error("lake: {0}")]
    Lake(#[from] LakeError),
    /// The queue failed: retried.
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    /// The metadata database failed (retried through the queue).
    #[error("metadata database: {0}")]
    Meta(#[from] imagelake_core::meta::MetaError),
    /// The original is gone (the image was deleted before it was processed): permanent.
    #[error("the original of image {0} no longer exists")]
    OriginalMissing(String),
    /// A worker task failed unexpectedly: retried.
    #[error("internal: {0}")]
    Internal(String),
}

impl JobError {
    /// The stable code in the record's `error.code` and the `jobs.error_code` column.
    pub fn code(&self) -> &'static str {
        match self {
            JobError::Pipeline(e) => e.code(),
            JobError::Store(_) => "store_unavailable",
            JobError::Lake(_) => "lake_unavailable",
            JobError::Queue(_) => "queue_unavailable",
            JobError::Meta(e) => e.code(),
            JobError::OriginalMissing(_) => "original_missing",
            JobError::Internal(_) => "internal",
        }
    }

    /// Whether processing again could succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, JobError::Pipeline(_) | JobError::OriginalMissing(_))
    }
}
