//! The post-event relay: carries changes of posts and comments from the metadata database
//! to the lake and to the posts' webhooks.
//!
//! Each change commits an event row (`post_events`) in its own transaction, so nothing
//! is lost between the change and its fact. The relay claims due rows for
//! `LAKE_LEASE` (30 s) (two relays never take the same row), writes their lake rows in one
//! durable write per batch (a comment burst becomes a few files, not one per comment),
//! and then delivers the webhooks of `post.published` and `post.failed`. A process that
//! dies after the write but before the row is removed leaves it to be written again with
//! the same `event_id`, which the lake's views count once; a webhook is re-sent with the
//! same `Imagelake-Delivery` id (the event id) once every attempt of the first delivery
//! would be over (`webhook_lease`), so a receiver can drop the copy. A transition happens once in the database, so it has one event and one
//! delivery id however often its job is redelivered.

use imagelake_core::app::Context;
use imagelake_core::lake::Event;
use imagelake_core::meta::MetaError;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Events per pass at most.
const BATCH: usize = 1000;
/// How long a claimed event is left alone before another relay may take it again.
const LAKE_LEASE: Duration = Duration::from_secs(30);
/// Pause after a pass that did not fill a batch. It bounds the lake files a steady
/// stream of comments makes (about one per table per second per relay) and the delay of a
/// post's fact and webhook (about a second).
const IDLE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Lake(#[from] imagelake_core::lake::LakeError),
}

/// One pass: how many events it carried.
pub async fn pass(ctx: &Context) -> Result<usize, RelayError> {
    let now = ctx.clock.now();
    let lease = |d: Duration| now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(30));
    let events = ctx.meta.claim_post_events(now, lease(LAKE_LEASE), BATCH).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let rows: Vec<Event> = events.iter().filter(|e| !e.lake_written).map(|e| e.lake.clone()).collect();
    if !rows.is_empty() {
        ctx.lake.write_durable(rows).await?;
    }
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    ctx.meta.post_events_written(&ids, lease(webhook_lease(&ctx.config.webhooks))).await?;
    for e in &events {
        if let Some((url, event, body)) = e.webhook.clone() {
            let (ctx, id) = (ctx.clone(), e.id.clone());
            tokio::spawn(async move {
                let delivered = crate::webhook::deliver(&ctx, &url, &event, body.as_bytes(), &id).await;
                tracing::info!(url, event, delivery = %id, delivered, "post webhook finished");
                // Delivered or given up: either way this event is done.
                if let Err(e) = ctx.meta.post_event_done(&id).await {
                    tracing::warn!(error = %e, delivery = %id, "post webhook done, but its event stays; it may be sent again");
                }
            });
        }
    }
    Ok(events.len())
}

/// How long an event whose webhook is being delivered is left alone: the longest one
/// delivery can take (every attempt timing out, with the backoff between them), plus a
/// half a minute (the destination check resolves the host first).
fn webhook_lease(cfg: &imagelake_core::config::WebhookConfig) -> Duration {
    let attempts = cfg.max_attempts.max(1);
    let waits: u64 = (1..attempts).map(|a| (1u64 << (a - 1).min(8)).min(300)).sum();
    cfg.timeout.0 * attempts + Duration::from_secs(waits + 30)
}

/// Runs passes until `shutdown`: at once while a backlog fills whole batches, every
/// second otherwise.
pub fn run(ctx: Context, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = IDLE;
        loop {
            let wait = match pass(&ctx).await {
                Ok(n) if n >= BATCH => Duration::ZERO,
                Ok(_) => IDLE,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "post event relay failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    backoff
                }
            };
            if wait == IDLE {
                backoff = IDLE;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    })
}
