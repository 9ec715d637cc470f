//! The statistics API in-process (the router on a real `Context` over a temp data_dir):
//! every report checked against an independent polars computation over the same lake
//! files (tests/peers/reports_check.py), roles, bad parameters, the empty lake, the four
//! encodings, freshness, the query timeout and concurrency.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use imagelake_core::app::Context;
use imagelake_core::lake::Event;
use imagelake_core::units::Dur;
use imagelake_reporting::{Report, Reporting, ReportingError};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tower::ServiceExt;

#[path = "stats/edges.rs"]
mod edges;
#[path = "stats/engagement.rs"]
mod engagement;
#[path = "stats/held.rs"]
mod held;
mod support;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use imagelake_core::lake::agg::Agg;
use imagelake_core::lake::{JobRow, UploadRow};
use support::{config, lake_events, ADMIN, ANALYST, UPLOADER};

async fn app(ctx: &Context) -> Router {
    imagelake_reporting::router(ctx.clone()).await.expect("reporting router").with_state(ctx.clone())
}

struct Got {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

async fn get(app: &Router, key: Option<&str>, uri: &str, accept: Option<&str>) -> Got {
    let mut req = Request::get(uri);
    if let Some(k) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let res = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let content_type = res.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Got { status, content_type, body }
}

fn python() -> PathBuf {
    std::env::var_os("IMAGELAKE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/imagelake/venv/bin/python"))
}

/// The report as computed by polars over the lake files.
fn independent(lake: &Path, report: &str, args: &[(&str, &str)], capacity: u64) -> Value {
    let script = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("../tests/peers/reports_check.py");
    let mut cmd = Command::new(python());
    cmd.arg(script).arg(lake).arg(report).arg("--capacity").arg(capacity.to_string());
    for (k, v) in args {
        cmd.arg(format!("--{k}")).arg(v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e} (set IMAGELAKE_TEST_PYTHON)", python().display()));
    assert!(out.status.success(), "reports_check.py failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn close(a: f64, b: f64, relative: f64) -> bool {
    (a - b).abs() <= relative * a.abs().max(b.abs()).max(1.0)
}

/// How the answers may differ from the independent computation: `Exact` (floats to 1e-6
/// relative), or `Rollups`: percentiles (`p95_processing_ms`) to 1 % of (1 + the value),
/// the rounding of the rollups' histograms (sql/rollups.sql).
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Exact,
    Rollups,
}

fn is_percentile(key: &str) -> bool {
    key.starts_with('p') && key.ends_with("_ms") && key[1..3].chars().all(|c| c.is_ascii_digit())
}

/// Every field the independent computation gives is in the API's row, equal (as `path` allows).
fn assert_same_as(report: &str, api: &Value, expected: &Value, path: Expect) {
    let (a, e) = (api.as_array().unwrap(), expected.as_array().unwrap());
    assert_eq!(a.len(), e.len(), "{report}: row count\napi: {api}\nexpected: {expected}");
    for (i, (ra, re)) in a.iter().zip(e).enumerate() {
        for (k, ve) in re.as_object().unwrap() {
            let va = ra.get(k).unwrap_or_else(|| panic!("{report} row {i}: no `{k}` in {ra}"));
            let same = match (va, ve) {
                (Value::Number(x), Value::Number(y)) => {
                    let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                    if path == Expect::Rollups && is_percentile(k) {
                        (x - y).abs() <= 0.0101 * (1.0 + x.abs().max(y.abs()))
                    } else {
                        close(x, y, 1e-6)
                    }
                }
                _ => va == ve,
            };
            assert!(same, "{report} row {i} `{k}`: api {va} != independent {ve}\napi row: {ra}\nexpected row: {re}");
        }
    }
}

async fn lake_with_data(tag: &str) -> (Context, PathBuf) {
    let ctx = Context::connect(config(tag)).await.unwrap();
    for batch in lake_events() {
        ctx.lake.write_durable(batch).await.unwrap();
    }
    let lake = ctx.config.storage_dir().join("objects/lake");
    (ctx, lake)
}

/// The days the answers read from the lake's aggregates (`Lake-Aggregated-Days`), once the
/// service has seen the lake as it is now.
async fn aggregated_days(app: &Router) -> u64 {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let res = app.clone().oneshot(stats_request("/v1/stats/types")).await.unwrap();
    let days = res.headers().get("lake-aggregated-days").expect("the header").to_str().unwrap().parse().unwrap();
    days
}

/// Runs the lifecycle's aggregation (as of now: every day of the test lake is closed).
async fn aggregate(ctx: &Context) -> imagelake_core::lake::aggregate::AggregateReport {
    let scratch = ctx.config.data_dir.join("tmp");
    imagelake_core::lake::aggregate::aggregate_closed_days(&ctx.store, Utc::now(), &scratch).await.unwrap()
}

fn stats_request(uri: &str) -> Request<Body> {
    Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {ANALYST}")).body(Body::empty()).unwrap()
}

/// With the rollups off (every report reads the views) and on (the facts, all days old,
/// come from the rollups).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_matches_an_independent_computation() {
    let mut cfg = config("reports-views");
    cfg.reporting.aggregates = false;
    let ctx = Context::connect(cfg).await.unwrap();
    for batch in lake_events() {
        ctx.lake.write_durable(batch).await.unwrap();
    }
    let lake = ctx.config.storage_dir().join("objects/lake");
    let views_only = app(&ctx).await;
    // Aggregates exist, but this service is told to read the raw facts alone.
    aggregate(&ctx).await;
    assert_eq!(aggregated_days(&views_only).await, 0);
    every_report(&ctx, &views_only, &lake, Expect::Exact).await;

    let (ctx, lake) = lake_with_data("reports").await;
    let app = app(&ctx).await;
    assert_eq!(aggregated_days(&app).await, 0, "nothing aggregated yet: every day raw");
    let r = aggregate(&ctx).await;
    assert!(r.built.len() >= 10 && r.current == 0, "{r:?}");
    assert_eq!(aggregated_days(&app).await, r.built.len() as u64);
    every_report(&ctx, &app, &lake, Expect::Rollups).await;
    // A second run finds every day current and does nothing.
    let again = aggregate(&ctx).await;
    assert!(again.built.is_empty() && again.current == r.built.len(), "{again:?}");
}

async fn every_report(ctx: &Context, app: &Router, lake: &Path, path: Expect) {
    let (app, lake) = (app.clone(), lake.to_path_buf());
    let capacity = ctx.config.capacity.bytes.0;
    let range = [("from", "2026-11-03T00:00:00Z"), ("to", "2026-11-07T00:00:00Z")];
    let mut cases: Vec<(&str, Vec<(&str, &str)>)> = Vec::new();
    for report in ["summary", "customers", "types", "volume", "processing", "usage", "engagement"] {
        cases.push((report, vec![]));
        cases.push((report, range.to_vec()));
        cases.push((report, vec![("customer", "acme")]));
        cases.push((report, vec![("customer", "globex"), range[0], range[1]]));
    }
    for interval in ["hour", "week", "month"] {
        cases.push(("volume", vec![("interval", interval)]));
    }
    cases.push(("types", vec![("by", "content_type")]));
    cases.push(("customers", vec![("customer", "nobody")]));
    for limit in ["1", "2", "1000"] {
        cases.push(("engagement", vec![("limit", limit)]));
    }
    cases.push(("engagement", vec![("from", "2026-11-04T00:00:00Z"), ("to", "2026-11-05T00:00:00Z"), ("limit", "3")]));
    for (report, args) in cases {
        matches_independent(&app, &lake, capacity, report, &args, path).await;
    }
    // Ranges whose edges cut an hour (a day): the cut buckets come from the raw facts.
    let odd = [("from", "2026-11-03T00:30:00Z"), ("to", "2026-11-07T00:00:00Z")];
    let odder = [("from", "2026-11-02T09:17:00Z"), ("to", "2026-11-08T16:43:00Z")];
    let within = [("from", "2026-11-04T09:17:00Z"), ("to", "2026-11-04T09:43:00Z")];
    for report in ["summary", "customers", "types", "volume", "processing", "engagement"] {
        for range in [&odd, &odder, &within] {
            matches_independent(&app, &lake, capacity, report, range.as_slice(), path).await;
        }
    }
    // Dates as dates: `to` is the whole day.
    let got = get(&app, Some(ADMIN), "/v1/stats/summary?from=2026-11-03&to=2026-11-06", None).await;
    assert_same_as("dates", &got.json(), &independent(&lake, "summary", &range, capacity), path);

    // Sanity of the data itself, so that a wrong generator cannot make both sides agree on nothing.
    let s = &get(&app, Some(ADMIN), "/v1/stats/summary", None).await.json()[0];
    assert_eq!(s["images"], 60);
    assert_eq!(s["processed"], 48, "{s}"); // 42 first-time + 6 after a retry; redeliveries counted once
    assert_eq!(s["failed"], 6);
    assert_eq!(s["gauge_used_bytes"], ctx.usage.used());
    assert_eq!(s["capacity_bytes"], capacity);
    let p = get(&app, Some(ADMIN), "/v1/stats/processing", None).await.json();
    let retries: u64 = p.as_array().unwrap().iter().map(|d| d["retries"].as_u64().unwrap()).sum();
    assert_eq!(retries, 12);
    let u = get(&app, Some(ADMIN), "/v1/stats/usage", None).await.json();
    assert_eq!(u[0]["customer_id"], Value::Null);
    assert_eq!(u[0]["trend_source"], "snapshots");
    assert!(u[0]["days_until_full"].as_f64().unwrap() > 0.0);
    let acme = u.as_array().unwrap().iter().find(|r| r["customer_id"] == "acme").unwrap();
    assert_eq!(acme["trend_source"], "uploads", "one acme snapshot is not a trend");
    // Posts (support::post_events): 20 posts of which 16 published (i % 3 == 0 and i % 10 <= 7).
    let c = get(&app, Some(ADMIN), "/v1/stats/customers", None).await.json();
    let sum = |rows: &Value, k: &str| rows.as_array().unwrap().iter().map(|r| r[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum(&c, "posts"), 16, "{c}");
    let v = get(&app, Some(ADMIN), "/v1/stats/volume", None).await.json();
    assert_eq!(sum(&v, "posts"), 16);
    assert_eq!(sum(&v, "comments"), sum(&c, "comments"));
    assert!(sum(&c, "comments") > 50, "{c}");
    // The most-commented: posts 3 and 36 have ten comments each (ties by post id); post 0
    // was deleted with its image, post 27 (two comments) on its own: never listed.
    let e = get(&app, Some(ADMIN), "/v1/stats/engagement?limit=1000", None).await.json();
    let rows = e.as_array().unwrap();
    assert_eq!((rows[0]["post_id"].as_str(), rows[0]["comments"].as_u64()), (Some("post-003"), Some(10)), "{e}");
    assert_eq!((rows[1]["post_id"].as_str(), rows[1]["comments"].as_u64()), (Some("post-036"), Some(10)), "{e}");
    assert!(rows.iter().all(|r| r["post_id"] != "post-000" && r["post_id"] != "post-027"), "{e}");
    assert!(rows.iter().any(|r| r["comments_deleted"].as_u64() > Some(0)), "{e}");
    let six = rows.iter().find(|r| r["post_id"] == "post-006").expect("post 6 is listed");
    assert_eq!((six["author"].clone(), six["comments"].as_u64()), (Value::Null, Some(9)), "a post without an author");
    let one = get(&app, Some(ADMIN), "/v1/stats/engagement?limit=1", None).await.json();
    assert_eq!(one.as_array().unwrap().len(), 1);
}

fn job(id: &str, image: &str, customer: &str, attempt: u32, enqueued: DateTime<Utc>, finished: DateTime<Utc>) -> Event {
    Event::Job(JobRow {
        event_id: format!("{id}-{attempt}"),
        job_id: id.into(),
        image_id: image.into(),
        customer_id: customer.into(),
        attempt,
        status: imagelake_core::lake::AttemptStatus::Succeeded,
        enqueued_at: enqueued,
        started_at: finished - ChronoDuration::milliseconds(640),
        finished_at: finished,
        duration_ms: 640,
        error_code: None,
        output_bytes: 4_000,
    })
}

/// Every report with no parameters, and one customer's, against the independent computation.
async fn defaults_match(app: &Router, lake: &Path, capacity: u64, path: Expect) {
    for report in ["summary", "customers", "types", "volume", "processing", "usage", "engagement"] {
        for args in [vec![], vec![("customer", "acme")]] {
            matches_independent(app, lake, capacity, report, &args, path).await;
        }
    }
}

/// `report` with `args`, as JSON, against the independent computation.
async fn matches_independent(app: &Router, lake: &Path, capacity: u64, report: &str, args: &[(&str, &str)], path: Expect) {
    let query: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let uri = format!("/v1/stats/{report}?{}", query.join("&"));
    let got = get(app, Some(ANALYST), &uri, None).await;
    assert_eq!(got.status, 200, "{uri}: {}", String::from_utf8_lossy(&got.body));
    assert_eq!(got.content_type, "application/json");
    assert_same_as(&uri, &got.json(), &independent(lake, report, args, capacity), path);
}

/// Facts of today add to the aggregates' facts; a late attempt of an old job (enqueued on
/// an aggregated day) makes that day raw, the answers stay right, and the next aggregation
/// makes that one day again, and only it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_meet_recent_and_late_facts() {
    let (ctx, lake) = lake_with_data("aggregates-late").await;
    let app = app(&ctx).await;
    let capacity = ctx.config.capacity.bytes.0;
    let days = aggregate(&ctx).await.built.len() as u64;
    assert_eq!(aggregated_days(&app).await, days);
    let now = Utc::now();
    ctx.lake
        .write_durable(vec![
            Event::Upload(UploadRow {
                event_id: "up-today".into(),
                image_id: "img-today".into(),
                customer_id: "acme".into(),
                uploaded_at: now - ChronoDuration::seconds(30),
                content_type: "image/png".into(),
                format: "png".into(),
                bytes: 123_456,
                width: Some(640),
                height: Some(480),
                sha256: "sha-today".into(),
            }),
            job("job-today", "img-today", "acme", 1, now - ChronoDuration::seconds(29), now - ChronoDuration::seconds(20)),
        ])
        .await
        .unwrap();
    // Past the test configuration's cache_ttl (50 ms): the next request lists the lake.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let s = get(&app, Some(ANALYST), "/v1/stats/summary", None).await;
    assert_eq!(s.json()[0]["images"], 61, "today's upload is counted beside the aggregated ones");
    defaults_match(&app, &lake, capacity, Expect::Rollups).await;
    assert_eq!(aggregated_days(&app).await, days, "today's facts leave the closed days aggregated");

    // img-009 was never attempted (support::lake_events); its job, enqueued on the 9th,
    // finishes only now: its attempt lands in the 9th's partition.
    let enqueued = support::at(9, 9, 0);
    ctx.lake
        .write_durable(vec![job("job-late", "img-009", "globex", 1, enqueued, now - ChronoDuration::seconds(5))])
        .await
        .unwrap();
    // Past the test configuration's cache_ttl (50 ms): the next request lists the lake.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let s = get(&app, Some(ANALYST), "/v1/stats/summary", None).await;
    assert_eq!(s.json()[0]["processed"], 50, "the late job and today's are counted");
    assert_eq!(aggregated_days(&app).await, days - 1, "the 9th is read raw");
    defaults_match(&app, &lake, capacity, Expect::Rollups).await;
    let r = aggregate(&ctx).await;
    assert_eq!(r.built, vec![chrono::NaiveDate::from_ymd_opt(2026, 11, 9).unwrap()], "only the changed day: {r:?}");
    assert_eq!(r.removed, Agg::ALL.len() as u64, "the 9th's old aggregate files go");
    assert_eq!(aggregated_days(&app).await, days);
    defaults_match(&app, &lake, capacity, Expect::Rollups).await;
}

/// A range edge rereads its aggregated day's raw facts, deduplicated with the copies that
/// day's aggregates list (`agg_copies`): an upload and a job written twice (the job's second
/// copy an hour later, as a duplicate delivery would write it) are counted once, in the
/// hour of their earliest copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_hour_counts_a_fact_written_twice_once() {
    let (ctx, lake) = lake_with_data("edge-copies").await;
    let upload = Event::Upload(UploadRow {
        event_id: "up-edge".into(),
        image_id: "img-edge".into(),
        customer_id: "acme".into(),
        uploaded_at: support::at(4, 9, 25),
        content_type: "image/png".into(),
        format: "png".into(),
        bytes: 77_000,
        width: Some(10),
        height: Some(10),
        sha256: "sha-edge".into(),
    });
    let enqueued = support::at(4, 9, 25) + ChronoDuration::seconds(1);
    // The first file keeps the earliest copy: the independent computation keeps the
    // first file's, the views the earliest.
    for finished in [support::at(4, 9, 26), support::at(4, 10, 10)] {
        ctx.lake.write_durable(vec![upload.clone(), job("job-edge", "img-edge", "acme", 1, enqueued, finished)]).await.unwrap();
    }
    aggregate(&ctx).await;
    let app = app(&ctx).await;
    assert!(aggregated_days(&app).await >= 9);
    let within = [("from", "2026-11-04T09:17:00Z"), ("to", "2026-11-04T09:43:00Z")];
    let summary = get(&app, Some(ANALYST), "/v1/stats/summary?from=2026-11-04T09:17:00Z&to=2026-11-04T09:43:00Z", None).await;
    let s = &summary.json()[0];
    // img-057 (support::lake_events, 09:39, a retry that succeeds) and img-edge.
    assert_eq!((s["images"].as_u64(), s["processed"].as_u64()), (Some(2), Some(2)), "{s}");
    let later = [("from", "2026-11-04T10:05:00Z"), ("to", "2026-11-04T10:30:00Z")];
    let across = [("from", "2026-11-03T09:17:00Z"), ("to", "2026-11-04T10:30:00Z")];
    let capacity = ctx.config.capacity.bytes.0;
    for report in ["summary", "customers", "types", "volume", "processing", "engagement"] {
        for range in [&within, &later, &across] {
            matches_independent(&app, &lake, capacity, report, range.as_slice(), Expect::Rollups).await;
        }
    }
}

/// A resumable upload that expired incomplete writes a `deletions` row (reason
/// `abandoned`) of the bytes it had received; they were never an upload's, so the bytes
/// stored do not drop, read raw or from the aggregates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_upload_leaves_the_bytes_stored_as_they_were() {
    let (ctx, lake) = lake_with_data("abandoned").await;
    let app = app(&ctx).await;
    let stored = |app: Router| async move {
        let s = get(&app, Some(ANALYST), "/v1/stats/summary", None).await.json()[0]["used_bytes"].as_i64().unwrap();
        let c =
            get(&app, Some(ANALYST), "/v1/stats/customers?customer=acme", None).await.json()[0]["bytes_stored"].as_i64().unwrap();
        let u = get(&app, Some(ANALYST), "/v1/stats/usage?customer=acme", None).await.json()[1]["used_bytes"].as_i64().unwrap();
        (s, c, u)
    };
    let before = stored(app.clone()).await;
    assert!(before.1 > 0 && before.1 == before.2, "{before:?}");
    let abandoned = |at| imagelake_core::deletion::abandoned_upload_event("upl-gone", "acme", 5_000_000, at);
    ctx.lake.write_durable(vec![abandoned(support::at(5, 10, 0))]).await.unwrap();
    ctx.lake.write_durable(vec![abandoned(Utc::now())]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stored(app.clone()).await, before, "raw");
    aggregate(&ctx).await;
    assert!(aggregated_days(&app).await >= 9);
    assert_eq!(stored(app.clone()).await, before, "aggregated");
    defaults_match(&app, &lake, ctx.config.capacity.bytes.0, Expect::Rollups).await;
}

/// A job delivered again while its first delivery ran has two succeeded attempts: one job
/// processed, in `volume` as in `summary`, read raw or from the aggregates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_succeeded_twice_is_processed_once() {
    let (ctx, lake) = lake_with_data("succeeded-twice").await;
    let enqueued = support::at(4, 11, 0);
    let attempts = [(1, support::at(4, 11, 1)), (2, support::at(4, 11, 5))];
    let events = attempts.iter().map(|(n, done)| job("job-twice", "img-twice", "acme", *n, enqueued, *done)).collect();
    ctx.lake.write_durable(events).await.unwrap();
    // Started after the write: its first listing has the job (a service started earlier
    // would list again only past its cache_ttl).
    let app = app(&ctx).await;
    let capacity = ctx.config.capacity.bytes.0;
    for pass in ["raw", "aggregated"] {
        if pass == "aggregated" {
            aggregate(&ctx).await;
            assert!(aggregated_days(&app).await >= 9);
        }
        let processed = get(&app, Some(ANALYST), "/v1/stats/summary", None).await.json()[0]["processed"].as_u64().unwrap();
        assert_eq!(processed, 49, "{pass}: 48 in support::lake_events, and this one");
        let v = get(&app, Some(ANALYST), "/v1/stats/volume", None).await.json();
        let per_day: u64 = v.as_array().unwrap().iter().map(|r| r["processed"].as_u64().unwrap()).sum();
        assert_eq!(per_day, processed, "{pass}: {v}");
        for interval in ["hour", "day"] {
            matches_independent(&app, &lake, capacity, "volume", &[("interval", interval)], Expect::Rollups).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_bad_parameters() {
    let (ctx, _lake) = lake_with_data("roles").await;
    let app = app(&ctx).await;
    let no_key = get(&app, None, "/v1/stats/summary", None).await;
    assert_eq!(no_key.status, 401);
    assert_eq!(no_key.content_type, "application/problem+json");
    let wrong_key = get(&app, Some("ilk_nope"), "/v1/stats/summary", None).await;
    assert_eq!(wrong_key.status, 401);
    for report in Report::ALL {
        let uri = format!("/v1/stats/{}", report.name());
        let got = get(&app, Some(UPLOADER), &uri, None).await;
        assert_eq!(got.status, 403, "{uri}");
        assert_eq!(got.content_type, "application/problem+json");
        assert_eq!(got.json()["code"], "forbidden");
        assert_eq!(get(&app, Some(ANALYST), &uri, None).await.status, 200, "{uri}");
        assert_eq!(get(&app, Some(ADMIN), &uri, None).await.status, 200, "{uri}");
    }
    let cases = [
        ("/v1/stats/summary?from=2026-11-05&to=2026-11-01", "invalid_range", "after"),
        ("/v1/stats/customers?from=yesterday", "invalid_date", "RFC 3339"),
        ("/v1/stats/customers?to=2026-13-45", "invalid_date", "`to`"),
        ("/v1/stats/volume?interval=fortnight", "unknown_interval", "hour, day, week or month"),
        ("/v1/stats/volume?interval=day%27%3B%20DROP%20VIEW%20uploads%3B--", "unknown_interval", "interval"),
        ("/v1/stats/types?format=xml", "unknown_format", "json, csv, arrow or parquet"),
        ("/v1/stats/types?by=colour", "invalid_parameter", "format or content_type"),
        ("/v1/stats/summary?interval=day", "unknown_parameter", "interval"),
        ("/v1/stats/customers?customer=x%27%20OR%201%3D1%20--", "invalid_customer", "customer"),
        ("/v1/stats/engagement?limit=0", "invalid_parameter", "1 to 1000"),
        ("/v1/stats/engagement?limit=1%3B%20DROP%20VIEW%20posts", "invalid_parameter", "limit"),
        ("/v1/stats/customers?limit=5", "unknown_parameter", "limit"),
    ];
    for (uri, code, words) in cases {
        let got = get(&app, Some(ANALYST), uri, None).await;
        assert_eq!(got.status, 400, "{uri}: {}", String::from_utf8_lossy(&got.body));
        assert_eq!(got.content_type, "application/problem+json", "{uri}");
        let p = got.json();
        assert_eq!(p["code"], code, "{uri}: {p}");
        assert!(p["detail"].as_str().unwrap().contains(words), "{uri}: {p}");
    }
    // The lake is intact after the attempts, and a customer that does not exist gets nothing.
    let all = get(&app, Some(ANALYST), "/v1/stats/customers", None).await.json();
    assert_eq!(all.as_array().unwrap().len(), 3);
    let none = get(&app, Some(ANALYST), "/v1/stats/customers?customer=x_OR_1", None).await.json();
    assert_eq!(none, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_lake_answers_zeros_then_sees_the_first_facts() {
    let ctx = Context::connect(config("empty")).await.unwrap();
    let app = app(&ctx).await;
    let s = get(&app, Some(ANALYST), "/v1/stats/summary", None).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    let s = &s.json()[0];
    for k in ["images", "bytes", "processed", "failed", "expired", "expired_bytes", "used_bytes"] {
        assert_eq!(s[k], 0, "{k}: {s}");
    }
    assert_eq!(s["failure_rate"], Value::Null);
    for report in ["customers", "types", "volume", "processing", "engagement"] {
        let got = get(&app, Some(ANALYST), &format!("/v1/stats/{report}"), None).await;
        assert_eq!(got.status, 200, "{report}: {}", String::from_utf8_lossy(&got.body));
        assert_eq!(got.json(), serde_json::json!([]), "{report}");
        for accept in ["text/csv", "application/vnd.apache.arrow.stream", "application/vnd.apache.parquet"] {
            let got = get(&app, Some(ANALYST), &format!("/v1/stats/{report}"), Some(accept)).await;
            assert_eq!(got.status, 200, "{report} {accept}");
            assert_eq!(decode(&got.body, accept).0, 0, "{report} {accept}");
        }
    }
    let u = get(&app, Some(ANALYST), "/v1/stats/usage", None).await.json();
    assert_eq!(u.as_array().unwrap().len(), 1);
    assert_eq!(u[0]["used_bytes"], 0);
    assert_eq!(u[0]["days_until_full"], Value::Null);

    // A fact flushed to the lake is in the next answer (after `cache_ttl`).
    let mut events = lake_events().remove(0);
    events.truncate(3);
    let uploads = events.iter().filter(|e| matches!(e, Event::Upload(_))).count();
    ctx.lake.write_durable(events).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let s = get(&app, Some(ANALYST), "/v1/stats/summary", None).await.json();
    assert_eq!(s[0]["images"], uploads as u64, "{s}");
}

/// Rows of a CSV, Arrow IPC stream or Parquet body, and its column names.
fn decode(body: &[u8], accept: &str) -> (usize, Vec<String>) {
    use arrow::record_batch::RecordBatch;
    let batches: Vec<RecordBatch> = match accept {
        "text/csv" => {
            let text = std::str::from_utf8(body).unwrap();
            let mut lines = text.lines();
            let header: Vec<String> = lines.next().unwrap_or("").split(',').map(str::to_string).collect();
            return (lines.count(), header);
        }
        "application/vnd.apache.arrow.stream" => {
            let r = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body.to_vec()), None).unwrap();
            let names = r.schema().fields().iter().map(|f| f.name().clone()).collect();
            let n = r.map(|b| b.unwrap().num_rows()).sum();
            return (n, names);
        }
        _ => parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(body.to_vec()))
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect(),
    };
    let names = batches.first().map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect()).unwrap_or_default();
    (batches.iter().map(|b| b.num_rows()).sum(), names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_arrow_and_parquet_carry_the_same_rows() {
    let (ctx, _lake) = lake_with_data("formats").await;
    let app = app(&ctx).await;
    for report in Report::ALL {
        let uri = format!("/v1/stats/{}", report.name());
        let json = get(&app, Some(ANALYST), &uri, None).await.json();
        let rows = json.as_array().unwrap().len();
        let columns: Vec<String> = json[0].as_object().unwrap().keys().cloned().collect();
        for (accept, query) in [
            ("text/csv", "format=csv"),
            ("application/vnd.apache.arrow.stream", "format=arrow"),
            ("application/vnd.apache.parquet", "format=parquet"),
        ] {
            for got in [
                get(&app, Some(ANALYST), &uri, Some(accept)).await,
                get(&app, Some(ANALYST), &format!("{uri}?{query}"), Some("application/json")).await,
            ] {
                assert_eq!(got.status, 200, "{uri} {accept}");
                assert!(got.content_type.starts_with(accept), "{uri}: {} for {accept}", got.content_type);
                let (n, mut names) = decode(&got.body, accept);
                assert_eq!(n, rows, "{uri} {accept}");
                names.sort();
                let mut expected = columns.clone();
                expected.sort();
                assert_eq!(names, expected, "{uri} {accept}");
            }
        }
    }
    // CSV values are the JSON values.
    let csv = get(&app, Some(ANALYST), "/v1/stats/summary?format=csv", None).await;
    let text = String::from_utf8(csv.body).unwrap();
    let json = get(&app, Some(ANALYST), "/v1/stats/summary", None).await.json();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let values: Vec<&str> = lines.next().unwrap().split(',').collect();
    let images = header.iter().position(|h| *h == "images").unwrap();
    assert_eq!(values[images], json[0]["images"].to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_query_times_out_with_503_and_does_not_block_others() {
    let mut cfg = config("timeout");
    cfg.reporting.query_timeout = Dur(Duration::from_millis(1_500));
    let ctx = Context::connect(cfg).await.unwrap();
    for batch in lake_events() {
        ctx.lake.write_durable(batch).await.unwrap();
    }
    let reporting = Reporting::open(ctx.clone()).await.unwrap();
    let engine = reporting.engine().clone();
    // Far more work than 1.5 s on any machine.
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let r = engine.query("SELECT sum(a.range * b.range) FROM range(100000000) a, range(1000) b".into(), vec![], None).await;
        (r, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile, reports answer on other connections of the same database.
    let params = imagelake_reporting::Params::parse(&Default::default(), &[]).unwrap();
    let answer = reporting.run(Report::Summary, &params).await.unwrap();
    assert_eq!(answer.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    assert!(!slow.is_finished(), "the report waited for the slow query instead of running beside it");
    let (result, took) = slow.await.unwrap();
    let err = result.err().expect("the slow query must time out");
    assert!(matches!(err, ReportingError::Timeout(_)), "{err:?}");
    assert!(took < Duration::from_secs(3), "interrupted after {took:?}");
    let res = axum::response::IntoResponse::into_response(err);
    assert_eq!(res.status(), 503);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let p: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(p["code"], "query_timeout");
    assert!(p["detail"].as_str().unwrap().contains("longer than"), "{p}");
    // The engine still answers.
    let ok = reporting.engine().query("SELECT 42 AS answer".into(), vec![], None).await.unwrap();
    assert_eq!(ok.batches[0].num_rows(), 1);
}
