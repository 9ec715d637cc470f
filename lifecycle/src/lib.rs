//! imagelake-lifecycle: the scheduled jobs that keep storage within retention and
//! capacity, the metadata database and the bucket in agreement, and the lake tidy.
//!
//! | job | default schedule (`[lifecycle]`, six-field cron, UTC) | what it does |
//! |---|---|---|
//! | `expire` | hourly | deletes variants past `expires_at`, found from the database's due-variant index; purges expired idempotency keys ([`expire`]) |
//! | `usage` | every 15 min | writes the database's byte counters to the lake as `usage` rows, warns at 80/90/100 % of capacity ([`usage`]) |
//! | `compact` | hourly, :05 | merges small lake files: closed days into one generation, the current day's writer files into one more ([`compact`]) |
//! | `aggregate` | every 10 min | makes the daily aggregates (`lake/agg_*`) of closed days whose facts changed ([`aggregate`]) |
//! | `abort-multipart` | hourly | removes expired resumable uploads, aborts multipart uploads older than `multipart_age` ([`multipart`]) |
//! | `reconcile` | daily 04:00 | database against bucket: unfinished deletes, orphan originals, missing originals, overdue variants, byte-counter drift ([`reconcile`]) |
//!
//! Each run holds the job's lease, a row in the metadata database ([`lease`]), so a job
//! never runs twice at once, even with several lifecycle processes on one database; a
//! runner that finds the lease held skips that run ([`LifecycleError::Busy`]). Each run's
//! outcome and report are saved in the database too ([`status`](mod@status)). The time a job acts
//! "as of" comes from the injectable clock (`Context.clock`) or an explicit `at`, so tests
//! run days in ms; the cron schedule itself fires on the real clock.

pub mod aggregate;
pub mod compact;
mod counting;
mod error;
pub mod expire;
mod job;
pub mod lease;
pub mod multipart;
pub mod reconcile;
pub mod status;
pub mod usage;

/// The time type of the API (`at`), re-exported for callers that parse `--at`.
pub use chrono;
pub use counting::CountingStore;
pub use error::LifecycleError;
pub use job::{JobName, JobReport, Options};
pub use lease::Lease;
pub use status::{status, JobStatus, LastRun};
pub use usage::Usage;

use chrono::{DateTime, Utc};
use imagelake_core::app::Context;
use std::time::Instant;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

/// Runs one job now (as of `at`, default the clock's now) with the configured [`Options`]:
/// `imagelake lifecycle run JOB [--at RFC3339]`.
///
/// An `at` in the future makes the job act as if that time had come (expire then deletes
/// what will be due by then): it is an operator's deliberate override and is logged.
pub async fn run_job(ctx: &Context, job: JobName, at: Option<DateTime<Utc>>) -> Result<JobReport, LifecycleError> {
    run_job_with(ctx, job, at, &Options::from_config(&ctx.config.lifecycle)).await
}

/// [`run_job`] with explicit tunables.
pub async fn run_job_with(
    ctx: &Context,
    job: JobName,
    at: Option<DateTime<Utc>>,
    opts: &Options,
) -> Result<JobReport, LifecycleError> {
    let now = ctx.clock.now();
    let at = at.unwrap_or(now);
    if at > now {
        tracing::warn!(job = %job, at = %at, now = %now, "running a lifecycle job as of a future time");
    }
    let owner = format!("{}/pid{}", ctx.lake.writer_id(), std::process::id());
    let lease = lease::acquire(ctx.meta.clone(), ctx.clock.clone(), job, &owner, opts.lease_ttl).await?;
    let counting = CountingStore::new(ctx.store.clone());
    let mut jctx = ctx.clone();
    jctx.store = counting.clone();
    let started = Instant::now();
    let started_at = Utc::now();
    let mut report = JobReport::new(job, at);
    tracing::info!(job = %job, at = %at, "lifecycle job started");
    let result = match job {
        JobName::Expire => expire::run(&jctx, at, opts, &lease, &mut report).await,
        JobName::Usage => usage::run(&jctx, at, &mut report).await.map(|_| ()),
        JobName::Compact => compact::run(&jctx, at, &mut report).await,
        JobName::Aggregate => aggregate::run(&jctx, at, &mut report).await,
        JobName::AbortMultipart => multipart::run(&jctx, at, opts, &mut report).await,
        JobName::Reconcile => reconcile::run(&jctx, at, opts, &lease, &mut report).await,
    };
    report.duration_ms = started.elapsed().as_millis() as u64;
    report.requests = counting.requests();
    lease.release().await;
    let last = LastRun {
        owner,
        started_at,
        finished_at: Utc::now(),
        outcome: if result.is_ok() { "ok" } else { "failed" }.into(),
        error_code: result.as_ref().err().map(|e| e.code().to_string()),
        error: result.as_ref().err().map(|e| e.to_string()),
        report: report.clone(),
    };
    status::save(ctx, job, &last).await;
    imagelake_core::metrics::lifecycle_run(job.as_str(), if result.is_ok() { "ok" } else { "failed" }, started.elapsed());
    match &result {
        Ok(()) => {
            tracing::info!(job = %job, ms = report.duration_ms, requests = report.requests, counts = ?report.counts, "lifecycle job done")
        }
        Err(e) => tracing::warn!(job = %job, code = e.code(), error = %e, "lifecycle job failed"),
    }
    result.map(|()| report)
}

/// Checks every `[lifecycle]` schedule; call it at start-up to fail fast on a typo.
pub fn validate_schedules(ctx: &Context) -> Result<(), LifecycleError> {
    for job in JobName::ALL {
        let expr = job.schedule(&ctx.config.lifecycle);
        Job::new_async(expr, |_, _| Box::pin(async {})).map_err(|e| LifecycleError::Schedule {
            job: job.as_str(),
            expr: expr.to_string(),
            reason: format!("{e:?}"),
        })?;
    }
    Ok(())
}

/// Runs the scheduler until `shutdown` fires. A run already in progress at shutdown is
/// left to finish or be dropped with the process: every job is safe to interrupt.
pub fn spawn(ctx: Context, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut sched = match start_scheduler(&ctx).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(code = e.code(), error = %e, "lifecycle scheduler not started");
                return;
            }
        };
        shutdown.cancelled().await;
        if let Err(e) = sched.shutdown().await {
            tracing::warn!(error = ?e, "lifecycle scheduler shutdown");
        }
        tracing::info!("lifecycle scheduler stopped");
    })
}

async fn start_scheduler(ctx: &Context) -> Result<JobScheduler, LifecycleError> {
    let sched = JobScheduler::new().await.map_err(|e| LifecycleError::Scheduler(format!("{e:?}")))?;
    for job in JobName::ALL {
        let expr = job.schedule(&ctx.config.lifecycle).to_string();
        let c = ctx.clone();
        let j = Job::new_async(expr.as_str(), move |_id, _lock| {
            let c = c.clone();
            Box::pin(async move {
                // The scheduler needs a `Send` future, and rustc cannot prove `run_job`'s
                // future `Send` for every lifetime (a known limitation with `&dyn` borrows
                // held across awaits). The job runs on a blocking thread of the same runtime.
                let rt = tokio::runtime::Handle::current();
                let result = tokio::task::spawn_blocking(move || rt.block_on(run_job(&c, job, None)))
                    .await
                    .unwrap_or_else(|e| Err(LifecycleError::Scheduler(format!("job task: {e}"))));
                match result {
                    Ok(_) => {}
                    Err(LifecycleError::Busy { owner, .. }) => {
                        imagelake_core::metrics::lifecycle_run(job.as_str(), "busy", std::time::Duration::ZERO);
                        tracing::info!(job = %job, %owner, "lifecycle job already running elsewhere; skipped")
                    }
                    Err(_) => {} // logged and saved by run_job
                }
            })
        })
        .map_err(|e| LifecycleError::Schedule { job: job.as_str(), expr: expr.clone(), reason: format!("{e:?}") })?;
        sched.add(j).await.map_err(|e| LifecycleError::Scheduler(format!("{e:?}")))?;
        tracing::info!(job = %job, schedule = %expr, "lifecycle job scheduled");
    }
    sched.start().await.map_err(|e| LifecycleError::Scheduler(format!("{e:?}")))?;
    Ok(sched)
}
