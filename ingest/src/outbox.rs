//! The sending side of the job outbox.
//!
//! An upload commits its job with its record (`core::meta`), then sends it at once
//! ([`send_now`]) and removes it from the outbox. A job left there (the queue was down,
//! the process died between the commit and the send) is sent by the sweeper
//! ([`run_sweeper`]) once its `next_attempt_at` has passed (`[database] outbox_retry`
//! after the commit). A sender claims a job by moving that time forward in one
//! conditional update, so two sweepers do not send it together; a send that happens
//! twice anyway (a crash after the send, before the removal) is a redelivery, which the
//! processor handles like any other.

use crate::error::IngestError;
use imagelake_core::app::Context;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Jobs sent per sweep at most.
const BATCH: usize = 100;

/// Sends a just-committed job; on failure it stays in the outbox for the sweeper.
pub async fn send_now(ctx: &Context, job_id: &str, body: &str) {
    match ctx.queue.send(body).await {
        Ok(_message_id) => {
            if let Err(e) = ctx.meta.job_sent(job_id).await {
                // Sent but still listed: the sweeper sends it again, a harmless redelivery.
                tracing::warn!(job_id, error = %e, "job sent, but not removed from the outbox");
            }
        }
        Err(e) => tracing::warn!(job_id, error = %e, "queue unavailable; the job waits in the outbox"),
    }
}

/// One pass: sends every job whose time has come. Returns how many were sent.
pub async fn sweep(ctx: &Context) -> Result<usize, IngestError> {
    let now = ctx.clock.now();
    let retry = chrono::Duration::from_std(ctx.config.database.outbox_retry.0).unwrap_or(chrono::Duration::seconds(10));
    let mut sent = 0;
    for job in ctx.meta.due_jobs(now, BATCH).await? {
        if !ctx.meta.claim_job(&job, now + retry).await? {
            continue; // another sender has it
        }
        if let Err(e) = ctx.queue.send(&job.body).await {
            tracing::warn!(job_id = %job.job_id, error = %e, "queue still unavailable; outbox jobs wait");
            break;
        }
        ctx.meta.job_sent(&job.job_id).await?;
        sent += 1;
    }
    if sent > 0 {
        tracing::info!(jobs = sent, "outbox: sent jobs that had waited");
    }
    Ok(sent)
}

/// Sweeps every second (or `outbox_retry`, if shorter) until `shutdown`.
pub fn run_sweeper(ctx: Context, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = ctx.config.database.outbox_retry.0.clamp(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = sweep(&ctx).await {
                tracing::warn!(code = e.code(), error = %e, "outbox sweep failed; retrying");
            }
        }
    })
}
