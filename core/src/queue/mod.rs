//! The job queue: one trait with SQS semantics, an embedded durable queue and SQS behind it.
//!
//! Semantics shared by both: a received message is invisible for the visibility timeout
//! and comes back if it is not acknowledged in time; each receive counts; a message
//! received more than `max_receives` times moves to the dead-letter queue instead of
//! being delivered again. Delivery is at least once.

mod local;
mod sqs;

pub use local::LocalQueue;
pub use sqs::{SqsOptions, SqsQueue};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// Errors of the queue backends.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The receipt does not name a message this caller still holds: the message was
    /// acknowledged, or its visibility timeout passed and it was received again.
    #[error("receipt is no longer valid: {0}")]
    StaleReceipt(String),
    /// The message body is too large for the queue (256 KiB).
    #[error("message of {0} bytes is over the 256 KiB limit")]
    TooLarge(usize),
    /// The queue cannot be reached or failed; worth retrying.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The embedded queue's store failed.
    #[error("queue storage error: {0}")]
    Storage(String),
}

impl QueueError {
    pub fn code(&self) -> &'static str {
        match self {
            QueueError::StaleReceipt(_) => "stale_receipt",
            QueueError::TooLarge(_) => "message_too_large",
            QueueError::Unavailable(_) => "queue_unavailable",
            QueueError::Storage(_) => "queue_storage",
        }
    }
}

pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// SQS's limit, applied by both backends so that they behave alike.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    /// Names this delivery: acknowledging or extending needs it.
    pub receipt: String,
    pub body: String,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
    pub sent_at: DateTime<Utc>,
}

/// Approximate counts, as SQS reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
    pub dead: u64,
}

#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// `local` or `sqs`, for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Enqueues a message durably and returns its id.
    async fn send(&self, body: &str) -> Result<String>;

    /// Waits up to `wait` for at most `max` (≤ 10) visible messages.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Message>>;

    /// Keeps a message invisible for `timeout` from now (a long job's heartbeat).
    async fn extend(&self, receipt: &str, timeout: Duration) -> Result<()>;

    /// Deletes a message for good. Acknowledging a message already deleted is not an error.
    async fn ack(&self, receipt: &str) -> Result<()>;

    async fn depth(&self) -> Result<QueueDepth>;

    /// Looks at up to `max` messages of the dead-letter queue without removing them.
    async fn peek_dead(&self, max: usize) -> Result<Vec<Message>>;

    /// The visibility timeout a receive applies.
    fn visibility_timeout(&self) -> Duration;

    /// Receive count after which a message is dead-lettered.
    fn max_receives(&self) -> u32;
}

pub type SharedQueue = Arc<dyn JobQueue>;

/// Builds the queue the configuration asks for.
pub async fn from_config(cfg: &crate::config::Config) -> std::result::Result<SharedQueue, crate::CoreError> {
    use crate::config::Backend;
    let q = &cfg.queue;
    match q.backend {
        Backend::Local => Ok(Arc::new(LocalQueue::open(cfg.queue_dir(), q.visibility_timeout.0, q.max_receives)?)),
        Backend::Sqs => Ok(Arc::new(SqsQueue::connect(SqsOptions::from_config(q)?).await?)),
        Backend::S3 => Err(crate::CoreError::Config("queue.backend must be `local` or `sqs`".into())),
    }
}
