//! A range cut inside a day: the jobs' latency histograms of its edge days come from the
//! hourly ones (`agg_job_ms_hour`), and only the jobs with an attempt in a cut hour are
//! reread raw (sql/facts.sql, `raw_outcomes` and `job_ms_facts`).

use super::*;
use imagelake_core::lake::AttemptStatus;

/// One attempt of job `id` (image `id`, customer edgeco).
fn attempt(id: &str, n: u32, status: AttemptStatus, enqueued: DateTime<Utc>, finished: DateTime<Utc>, ms: i64) -> Event {
    Event::Job(JobRow {
        event_id: format!("{id}-{n}"),
        job_id: id.into(),
        image_id: id.into(),
        customer_id: "edgeco".into(),
        attempt: n,
        status,
        enqueued_at: enqueued,
        started_at: finished - ChronoDuration::milliseconds(ms),
        finished_at: finished,
        duration_ms: ms,
        error_code: (status != AttemptStatus::Succeeded).then(|| "decode_failed".into()),
        output_bytes: 4_000,
    })
}

fn upload(id: &str, at: DateTime<Utc>) -> Event {
    Event::Upload(UploadRow {
        event_id: format!("up-{id}"),
        image_id: id.into(),
        customer_id: "edgeco".into(),
        uploaded_at: at,
        content_type: "image/png".into(),
        format: "png".into(),
        bytes: 5_000,
        width: Some(10),
        height: Some(10),
        sha256: format!("sha-{id}"),
    })
}

/// edgeco's jobs on the 5th (no other facts):
/// - `late`: enqueued at 23:55 on the 4th, succeeded at 09:20 (9 s): in the 4th's files,
///   in the cut hour 09:00;
/// - `retried`: failed at 09:30 (the cut hour), succeeded at 11:10 (5 s): read with its
///   whole hour, not from the raw facts of the cut one;
/// - `steady-*`: ten jobs from 12:00 to 20:00, 20 to 29 s, in whole hours of a cut day.
///
/// The percentiles of a range cut inside the 5th come from those hours' histograms, the
/// counts from the hours' aggregates and the cut hour's raw jobs: checked exactly for the
/// cut hour alone, and against the independent computation over ranges cut on the hour,
/// inside hours, and across the two days.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_cut_inside_a_day_reads_its_hours() {
    let (ctx, lake) = lake_with_data("edge-hours").await;
    let at = support::at;
    let mut events = vec![
        upload("late", at(4, 23, 54)),
        attempt("late", 1, AttemptStatus::Succeeded, at(4, 23, 55), at(5, 9, 20), 9_000),
        upload("retried", at(5, 8, 59)),
        attempt("retried", 1, AttemptStatus::Failed, at(5, 9, 0), at(5, 9, 30), 700),
        attempt("retried", 2, AttemptStatus::Succeeded, at(5, 9, 0), at(5, 11, 10), 5_000),
    ];
    for i in 0..10u32 {
        let id = format!("steady-{i}");
        events.push(upload(&id, at(5, 12 + (i * 8) / 10, 1)));
        let finished = at(5, 12 + (i * 8) / 10, 30);
        events.push(attempt(
            &id,
            1,
            AttemptStatus::Succeeded,
            finished - ChronoDuration::minutes(20),
            finished,
            20_000 + i as i64 * 1_000,
        ));
    }
    ctx.lake.write_durable(events).await.unwrap();
    aggregate(&ctx).await;
    let app = app(&ctx).await;
    assert!(aggregated_days(&app).await >= 9);

    // The cut hour alone: `late` from the 4th's raw jobs; `retried` ended in another hour.
    let hour =
        get(&app, Some(ANALYST), "/v1/stats/customers?from=2026-11-05T09:17:00Z&to=2026-11-05T09:43:00Z&customer=edgeco", None)
            .await;
    let c = &hour.json()[0];
    assert_eq!((c["processed"].as_u64(), c["failed"].as_u64()), (Some(1), Some(0)), "{c}");
    assert_eq!(c["p50_processing_ms"].as_f64(), Some(9_000.0), "exact: raw, {c}");
    // Whole hours of a cut day: the hourly histograms (values within 1 %).
    let hours =
        get(&app, Some(ANALYST), "/v1/stats/customers?from=2026-11-05T10:00:00Z&to=2026-11-05T21:00:00Z&customer=edgeco", None)
            .await;
    let c = &hours.json()[0];
    assert_eq!(c["processed"].as_u64(), Some(11), "retried and the ten steady: {c}");
    let p50 = c["p50_processing_ms"].as_f64().unwrap();
    assert!((p50 - 24_000.0).abs() <= 0.0101 * 24_000.0, "the hourly histograms' median: {c}");
    // A value of the histograms (24 000 ms rounded to 2 %), not the raw jobs' exact one:
    // the whole hours of a cut day are not reread.
    assert_ne!(p50, 24_000.0, "{c}");

    let capacity = ctx.config.capacity.bytes.0;
    let ranges: [&[(&str, &str)]; 4] = [
        &[("from", "2026-11-05T10:00:00Z"), ("to", "2026-11-05T21:00:00Z")],
        &[("from", "2026-11-05T09:17:00Z"), ("to", "2026-11-05T16:43:00Z")],
        &[("from", "2026-11-04T09:17:00Z"), ("to", "2026-11-05T09:43:00Z")],
        &[("from", "2026-11-03T00:00:00Z"), ("to", "2026-11-05T11:00:00Z")],
    ];
    for report in ["summary", "customers", "types", "volume"] {
        for range in ranges {
            matches_independent(&app, &lake, capacity, report, range, Expect::Rollups).await;
        }
    }
}
