//! The core crate's error type. Every variant maps to a stable code, so that the
//! services can turn it into a problem+json answer or a `failed` record without guessing.

use crate::queue::QueueError;
use crate::store::StoreError;

/// Errors raised by core services outside the store and queue backends.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The configuration file or an `IMAGELAKE_*` variable is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The metadata database failed.
    #[error(transparent)]
    Meta(#[from] crate::meta::MetaError),
    /// A local file could not be read or written.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl CoreError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::Config(_) => "invalid_config",
            CoreError::Store(e) => e.code(),
            CoreError::Queue(e) => e.code(),
            CoreError::Meta(e) => e.code(),
            CoreError::Io(_) => "io_error",
        }
    }
}
