//! One job, start to finish.
//!
//! Order matters for at-least-once delivery: move the record to `processing`, render,
//! write the variants, write the job's facts to the lake (durably), finish the record,
//! and only then acknowledge the message. A crash anywhere before the acknowledgement
//! redelivers the job; the second run overwrites the same objects and writes the same
//! `event_id`s (upload and variant rows are keyed by image, job rows by job and attempt).
//!
//! Every record change is a conditional update in the metadata database: a record that
//! is already `processed` or `failed` is left alone (the message is acknowledged), and a
//! deleted image stays deleted. An image deleted while its job ran is cleaned up here:
//! the variants this run wrote are removed, and their `deletions` rows written.

use crate::budget::Budget;
use crate::error::JobError;
use crate::pipeline::{Limits, PipelineError, Prepared, Preset};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use imagelake_core::app::Context;
use imagelake_core::deletion::deletion_event;
use imagelake_core::job::JobMessage;
use imagelake_core::lake::{AttemptStatus, DeletionReason, Event, JobRow, VariantRow};
use imagelake_core::meta::Transition;
use imagelake_core::queue::Message;
use imagelake_core::record::{self, RecordError, Status, VariantRecord, VariantState};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tracing::Instrument;

pub async fn handle(ctx: &Context, budget: &Budget, m: Message) {
    let job: JobMessage = match serde_json::from_str(&m.body) {
        Ok(j) => j,
        Err(e) => {
            // Nothing can ever process it; keeping it would only clog the queue.
            tracing::error!(message_id = %m.id, error = %e, "unreadable job message dropped");
            let _ = ctx.queue.ack(&m.receipt).await;
            return;
        }
    };
    let span = tracing::info_span!("job", job_id = %job.job_id, image_id = %job.image_id, attempt = m.receive_count,
        request_id = job.request_id.as_deref().unwrap_or(""));
    // The whole job runs in its span, so that every line it logs carries its ids.
    run(ctx, budget, m, job).instrument(span).await
}

async fn run(ctx: &Context, budget: &Budget, m: Message, job: JobMessage) {
    let started = ctx.clock.now();
    let heartbeat = keep_invisible(ctx, &m.receipt);
    let result = process(ctx, budget, &job, m.receive_count, started).await;
    heartbeat.abort();
    let last_attempt = m.receive_count >= ctx.queue.max_receives();
    imagelake_core::metrics::job_finished(
        match &result {
            Ok(()) => "processed",
            Err(e) if !e.is_retryable() => "failed",
            Err(_) if last_attempt => "dead_lettered",
            Err(_) => "retried",
        },
        job.enqueued_at,
        started,
        ctx.clock.now(),
    );
    match result {
        Ok(()) => ack(ctx, &m).await,
        Err(e) if !e.is_retryable() => {
            tracing::warn!(job_id = %job.job_id, code = e.code(), error = %e, "job failed for good");
            if fail(ctx, &job, &e, m.receive_count, started, AttemptStatus::Failed, true).await {
                ack(ctx, &m).await;
            }
        }
        Err(e) if last_attempt => {
            // Left unacknowledged: the queue moves it to the dead-letter queue.
            tracing::error!(job_id = %job.job_id, code = e.code(), error = %e, "job dead-lettered");
            fail(ctx, &job, &e, m.receive_count, started, AttemptStatus::DeadLettered, true).await;
        }
        Err(e) => {
            let delay = backoff(m.receive_count, ctx.queue.visibility_timeout());
            tracing::warn!(job_id = %job.job_id, code = e.code(), error = %e, retry_in = ?delay, "job failed; will retry");
            fail(ctx, &job, &e, m.receive_count, started, AttemptStatus::Failed, false).await;
            let _ = ctx.queue.extend(&m.receipt, delay).await;
        }
    }
}

async fn ack(ctx: &Context, m: &Message) {
    if let Err(e) = ctx.queue.ack(&m.receipt).await {
        // The job will be redelivered and recognised as done.
        tracing::warn!(message_id = %m.id, error = %e, "ack failed");
    }
}

/// Retries wait 5 s, 10 s, 20 s ... up to the visibility timeout.
fn backoff(attempt: u32, cap: Duration) -> Duration {
    Duration::from_secs(5u64.saturating_mul(1 << attempt.saturating_sub(1).min(10))).min(cap)
}

/// Extends the message's visibility while the job runs, so a long job is not handed to
/// a second worker.
fn keep_invisible(ctx: &Context, receipt: &str) -> tokio::task::JoinHandle<()> {
    let (queue, receipt) = (ctx.queue.clone(), receipt.to_string());
    let vt = queue.visibility_timeout();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep((vt / 3).max(Duration::from_secs(1))).await;
            if let Err(e) = queue.extend(&receipt, vt).await {
                tracing::warn!(error = %e, "could not extend the job's visibility");
            }
        }
    })
}

fn presets_of<'a>(ctx: &'a Context, name: &str) -> Option<&'a Preset> {
    ctx.config.processor.variants.iter().find(|p| p.name == name)
}

fn presets(ctx: &Context, names: &[String]) -> Vec<Preset> {
    ctx.config.processor.variants.iter().filter(|p| names.iter().any(|n| n == &p.name)).cloned().collect()
}

async fn process(ctx: &Context, budget: &Budget, job: &JobMessage, attempt: u32, started: DateTime<Utc>) -> Result<(), JobError> {
    match ctx.meta.start_processing(&job.image_id, attempt).await? {
        Transition::Applied(_) => {}
        Transition::Refused(rec) => {
            tracing::info!(status = ?rec.status, "image already finished; acknowledging");
            return Ok(());
        }
        Transition::Gone => {
            tracing::info!("image deleted; nothing to process");
            return Ok(());
        }
    }

    let (original, digest) = download_original(ctx, job).await?;
    // Resumable and direct uploads reach the store in pieces; their SHA-256 is taken here.
    let mut upload_row = job.upload.clone();
    if let Some(d) = digest {
        ctx.meta.fill_sha256(&job.image_id, &d).await?;
        upload_row.sha256 = d;
    }
    let presets = presets(ctx, &job.variants);
    let limits = Limits {
        max_pixels: ctx.config.processor.max_pixels,
        max_alloc_bytes: budget.total(),
        max_animation_pixels: ctx.config.processor.max_animation_pixels,
    };
    // Header first, then the memory reservation, then the decode: a job that does not
    // fit waits here (its message kept invisible) instead of meeting the OOM killer.
    let input = Box::new(std::io::BufReader::with_capacity(256 << 10, original));
    let prepared = blocking(move || Prepared::new(input, &presets, &limits)).await?;
    let reservation = budget.reserve(prepared.memory()).await.map_err(|e| PipelineError::DecodeLimit(e.to_string()))?;
    tracing::debug!(memory = prepared.memory(), available = budget.available(), "memory reserved");
    let (source, rendered) = blocking(move || prepared.render()).await?;
    drop(reservation);

    // The first attempt's time, whichever attempt this is: a job redone after a crash
    // (perhaps the next day) writes the same variant facts into the same day.
    let made = ctx.meta.first_attempt_at(&job.image_id, started).await?.unwrap_or(started);
    let expires = made + chrono::Duration::from_std(ctx.config.retention.processed.0).unwrap_or(chrono::Duration::days(7));
    let mut variants = Vec::new();
    let mut events = vec![Event::Upload(upload_row)];
    for v in rendered {
        let several = presets_of(ctx, &v.name).is_some_and(|p| p.formats.len() > 1);
        let vr = VariantRecord {
            name: v.name.clone(),
            format: v.format.as_str().into(),
            width: v.width,
            height: v.height,
            bytes: v.bytes.len() as u64,
            // A preset of several formats: each entry's own URL; of one: the variant's.
            url: if several {
                record::variant_format_url(&job.image_id, &v.name, v.format.extension())
            } else {
                record::variant_url(&job.image_id, &v.name)
            },
            created_at: made,
            expires_at: expires,
            state: VariantState::Ready,
        };
        ctx.store.put(&vr.object_key(&job.customer, &job.image_id), v.bytes.into()).await?;
        events.push(Event::Variant(VariantRow {
            event_id: VariantRow::event_id_of(&job.image_id, &vr.name, &vr.format),
            image_id: job.image_id.clone(),
            customer_id: job.customer.clone(),
            variant: vr.name.clone(),
            format: vr.format.clone(),
            width: vr.width,
            height: vr.height,
            bytes: vr.bytes,
            created_at: made,
            expires_at: expires,
        }));
        variants.push(vr);
    }
    let output_bytes = variants.iter().map(|v| v.bytes).sum();
    let finished = ctx.clock.now();
    events.push(job_event(job, attempt, AttemptStatus::Succeeded, None, started, finished, output_bytes));
    ctx.lake.write_durable(events).await?;

    match ctx.meta.finish_processed(&job.image_id, finished, (source.width, source.height), &variants).await? {
        Transition::Applied(rec) => {
            ctx.usage.add(output_bytes);
            tracing::info!(ms = (finished - started).num_milliseconds(), "job done");
            if let Some(url) = &job.callback_url {
                crate::webhook::send(ctx, url, &rec);
            }
        }
        // Another delivery of this job finished it first, with these same objects.
        Transition::Refused(rec) if rec.status == Status::Processed => tracing::info!("image finished by another delivery"),
        Transition::Refused(_) | Transition::Gone => {
            tracing::info!("image deleted or failed while processing; removing the variants this run wrote");
            remove_written(ctx, job, &variants, finished).await?;
        }
    }
    Ok(())
}

/// Removes variants no record will ever list, and says so in the lake.
async fn remove_written(ctx: &Context, job: &JobMessage, variants: &[VariantRecord], at: DateTime<Utc>) -> Result<(), JobError> {
    let keys: Vec<String> = variants.iter().map(|v| v.object_key(&job.customer, &job.image_id)).collect();
    ctx.store.delete_many(&keys).await?;
    let events = variants
        .iter()
        .map(|v| deletion_event(&job.image_id, &job.customer, Some((&v.name, &v.format)), v.bytes, at, DeletionReason::Deleted))
        .collect();
    ctx.lake.write_durable(events).await?;
    Ok(())
}

/// Removes temporary originals left in `dir` by a crash of a version that named them
/// (`.tmp*`). This version's have no name and vanish with the process.
pub(crate) fn sweep_leftovers(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let removed = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count();
    if removed > 0 {
        tracing::info!(removed, dir = %dir.display(), "temporary originals left by a crash removed");
    }
}

/// Runs a pipeline step on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, PipelineError> + Send + 'static) -> Result<T, JobError> {
    Ok(tokio::task::spawn_blocking(f).await.map_err(|e| JobError::Internal(e.to_string()))??)
}

/// Streams the original into a temporary file under `data_dir/tmp`, and returns it with
/// its SHA-256 when the job does not carry it. Decoding reads from disk, so memory does
/// not grow with the upload's size. The file has no name (`O_TMPFILE`, or unlinked at
/// once where that is missing): the kernel frees it when it is closed, on every path
/// including a crash, so no leftover can pile up.
async fn download_original(ctx: &Context, job: &JobMessage) -> Result<(std::fs::File, Option<String>), JobError> {
    use sha2::Digest;
    let key = record::original_key(&job.customer, &job.image_id);
    let got = match ctx.store.get(&key, None).await {
        Ok(g) => g,
        Err(imagelake_core::store::StoreError::NotFound(_)) => return Err(JobError::OriginalMissing(job.image_id.clone())),
        Err(e) => return Err(e.into()),
    };
    let dir = ctx.config.data_dir.join("tmp");
    tokio::fs::create_dir_all(&dir).await.map_err(|e| JobError::Internal(e.to_string()))?;
    let tmp = tempfile::tempfile_in(&dir).map_err(|e| JobError::Internal(e.to_string()))?;
    let mut file = tokio::fs::File::from_std(tmp);
    let mut body = got.body;
    let mut hasher = job.upload.sha256.is_empty().then(sha2::Sha256::new);
    while let Some(chunk) = body.try_next().await? {
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        file.write_all(&chunk).await.map_err(|e| JobError::Internal(e.to_string()))?;
    }
    file.flush().await.map_err(|e| JobError::Internal(e.to_string()))?;
    let mut file = file.into_std().await;
    std::io::Seek::rewind(&mut file).map_err(|e| JobError::Internal(e.to_string()))?;
    Ok((file, hasher.map(|h| hex::encode(h.finalize()))))
}

fn job_event(
    job: &JobMessage,
    attempt: u32,
    status: AttemptStatus,
    error_code: Option<&str>,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
    output_bytes: u64,
) -> Event {
    Event::Job(JobRow {
        event_id: JobRow::event_id_of(&job.job_id, attempt),
        job_id: job.job_id.clone(),
        image_id: job.image_id.clone(),
        customer_id: job.customer.clone(),
        attempt,
        status,
        enqueued_at: job.enqueued_at,
        started_at: started,
        finished_at: finished,
        duration_ms: (finished - started).num_milliseconds(),
        error_code: error_code.map(str::to_string),
        output_bytes,
    })
}

/// Records a failed attempt: the lake gets the upload and the attempt; when `final_`,
/// the record says `failed` with the stable code. Returns whether the facts are durable.
async fn fail(
    ctx: &Context,
    job: &JobMessage,
    e: &JobError,
    attempt: u32,
    started: DateTime<Utc>,
    status: AttemptStatus,
    final_: bool,
) -> bool {
    let finished = ctx.clock.now();
    let events = vec![Event::Upload(job.upload.clone()), job_event(job, attempt, status, Some(e.code()), started, finished, 0)];
    if let Err(err) = ctx.lake.write_durable(events).await {
        tracing::warn!(error = %err, "failure facts not written; the job will come back");
        return false;
    }
    if !final_ {
        return true;
    }
    let error = RecordError { code: e.code().into(), message: e.to_string() };
    match ctx.meta.fail_image(&job.image_id, Some(attempt), finished, &error, false).await {
        Ok(Transition::Applied(rec)) => {
            if let Some(url) = &job.callback_url {
                crate::webhook::send(ctx, url, &rec);
            }
            true
        }
        Ok(_) => true, // deleted meanwhile, or finished by another delivery: nothing to mark
        Err(err) => {
            tracing::warn!(error = %err, "could not mark the record failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagelake_core::config::Config;
    use imagelake_core::ids;
    use imagelake_core::lake::{layout, UploadRow};
    use imagelake_core::record::ImageRecord;
    use imagelake_core::store::list_all;

    /// A job whose first attempt started before midnight and died after writing its facts
    /// is redone after midnight: the redone variants' facts carry the first attempt's time,
    /// so they land in the same day's partition and the lake counts them once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_redone_after_midnight_writes_into_the_first_attempts_day() {
        let config = Config { data_dir: imagelake_core::testing::temp_dir("redone-job"), ..Config::default() };
        let ctx = Context::connect(config).await.unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let (uploaded, first) = (day.and_hms_opt(23, 58, 0).unwrap().and_utc(), day.and_hms_opt(23, 59, 30).unwrap().and_utc());
        let redone = first + chrono::Duration::minutes(15);
        let mut png = Vec::new();
        image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([x as u8, y as u8, 90]))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let id = ids::new_id();
        let rec = ImageRecord {
            id: id.clone(),
            customer: "acme".into(),
            status: Status::Processing,
            content_type: "image/png".into(),
            format: "png".into(),
            bytes: png.len() as u64,
            width: Some(640),
            height: Some(480),
            sha256: "x".into(),
            uploaded_at: uploaded,
            processed_at: None,
            error: None,
            exif: None,
            requested_variants: vec!["thumb".into()],
            variants: vec![],
            attempts: 1,
            callback_url: None,
        };
        assert!(ctx.meta.import_image(&rec).await.unwrap());
        ctx.store.put(&record::original_key("acme", &id), png.clone().into()).await.unwrap();
        let job = JobMessage {
            job_id: ids::new_id(),
            image_id: id.clone(),
            customer: "acme".into(),
            variants: vec!["thumb".into()],
            enqueued_at: uploaded,
            request_id: None,
            callback_url: None,
            upload: UploadRow {
                event_id: UploadRow::event_id_of(&id),
                image_id: id.clone(),
                customer_id: "acme".into(),
                uploaded_at: uploaded,
                content_type: "image/png".into(),
                format: "png".into(),
                bytes: png.len() as u64,
                width: Some(640),
                height: Some(480),
                sha256: "x".into(),
            },
        };
        // The first attempt stamped its time, then died.
        assert_eq!(ctx.meta.first_attempt_at(&id, first).await.unwrap(), Some(first));
        // The redelivery, after midnight.
        process(&ctx, &Budget::new(1 << 30), &job, 2, redone).await.unwrap();
        let keys: Vec<String> =
            list_all(ctx.store.as_ref(), "lake/variants/").await.unwrap().into_iter().map(|m| m.key).collect();
        assert!(!keys.is_empty());
        for k in &keys {
            assert_eq!(layout::parse(k).unwrap().day, day, "{k}: the first attempt's day");
        }
        let done = ctx.meta.image(&id).await.unwrap().unwrap();
        assert_eq!(done.variants[0].created_at, first, "the record says the same");
        // The job's attempt lands in the day it was enqueued, too.
        let jobs: Vec<String> = list_all(ctx.store.as_ref(), "lake/jobs/").await.unwrap().into_iter().map(|m| m.key).collect();
        assert!(jobs.iter().all(|k| layout::parse(k).unwrap().day == day), "{jobs:?}");
    }
}
