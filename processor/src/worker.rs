//! The receive loop: up to `processor.concurrency` jobs at once, each holding a permit
//! (and, while it renders, its share of the memory budget, see `budget`);
//! on shutdown it stops receiving, lets the jobs in flight finish within the grace
//! period, and leaves any that cannot to the queue (they come back after the visibility
//! timeout: nothing is lost).

use imagelake_core::app::Context;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub type ProcessorHandle = JoinHandle<()>;

/// Starts the processor. The returned task ends once `shutdown` fired and the jobs in
/// flight finished (or `grace` passed).
pub fn run(ctx: Context, shutdown: CancellationToken, grace: Duration) -> ProcessorHandle {
    tokio::spawn(async move {
        let n = match ctx.config.processor.concurrency {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            n => n,
        };
        let permits = Arc::new(Semaphore::new(n));
        let budget = crate::budget::Budget::new(ctx.config.processor.memory_budget.0);
        crate::handle::sweep_leftovers(&ctx.config.data_dir.join("tmp"));
        let wait = ctx.config.queue.wait.0.min(Duration::from_secs(20));
        let mut backoff = Duration::from_millis(200);
        tracing::info!(concurrency = n, memory_budget = budget.total(), queue = ctx.queue.backend(), "processor started");
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = permits.clone().acquire_owned() => p.expect("never closed"),
            };
            let received = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = ctx.queue.receive(1, wait) => r,
            };
            match received {
                Ok(messages) => {
                    backoff = Duration::from_millis(200);
                    // One message per receive and per permit.
                    if let Some(m) = messages.into_iter().next() {
                        let (ctx, budget) = (ctx.clone(), budget.clone());
                        tokio::spawn(async move {
                            crate::handle::handle(&ctx, &budget, m).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "queue receive failed; backing off");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        tracing::info!("processor draining");
        match tokio::time::timeout(grace, permits.clone().acquire_many_owned(n as u32)).await {
            Ok(_) => tracing::info!("processor drained"),
            Err(_) => tracing::warn!("jobs still running after the grace period are left to the queue"),
        }
    })
}
