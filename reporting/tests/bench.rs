//! The reporting benchmark's service side (run by scripts/bench-reporting.sh, ignored in
//! normal test runs): every report through the router, on a lake under
//! `$IMAGELAKE_BENCH_DATA_DIR/store/objects/lake` (aggregated beforehand by `imagelake lake
//! aggregate`), with the full JSON encoding. Prints the cold start (open, then the first
//! request), then one JSON line per report and range: median, p95 and all run times in
//! milliseconds.

use axum::body::Body;
use axum::http::{header, Request};
use http_body_util::BodyExt;
use imagelake_core::app::Context;
use imagelake_core::auth::{hash_key, Role};
use imagelake_core::config::{Config, KeyConfig};
use imagelake_core::lake::{Event, UploadRow};
use std::time::Instant;
use tower::ServiceExt;

/// As the `imagelake` binary (src/main.rs): jemalloc for the process, DuckDB included.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by scripts/bench-reporting.sh"]
async fn bench_reports() {
    let data_dir = std::env::var("IMAGELAKE_BENCH_DATA_DIR").expect("IMAGELAKE_BENCH_DATA_DIR");
    let runs: usize = std::env::var("IMAGELAKE_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut cfg = Config { data_dir: data_dir.into(), ..Config::default() };
    // The benchmark measures the query, however long it takes: no 503 at the production
    // default of 30 s.
    cfg.reporting.query_timeout.0 = std::time::Duration::from_secs(3600);
    cfg.keys =
        vec![KeyConfig { sha256: hash_key("ilk_bench"), customer: "bench".into(), role: Role::Analyst, all_customers: true }];
    let ctx = Context::connect(cfg).await.unwrap();
    // A range whose edges cut hours, over 60 days ending yesterday (IMAGELAKE_BENCH_RANGE
    // overrides: `FROM,TO`).
    let range = std::env::var("IMAGELAKE_BENCH_RANGE").unwrap_or_else(|_| {
        let to = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
        format!("{}T09:17:00Z,{}T16:43:00Z", to - chrono::Duration::days(60), to)
    });
    let (from, to) = range.split_once(',').expect("FROM,TO");
    // The cold start: the service opens (lists the lake, makes its views) and answers its
    // first request; nothing is built.
    let started = Instant::now();
    let reporting = imagelake_reporting::Reporting::open(ctx.clone()).await.unwrap();
    let open_ms = started.elapsed().as_secs_f64() * 1000.0;
    let app = imagelake_reporting::routes(reporting).with_state(ctx.clone());
    let (first_ms, days, _) = request(&app, "/v1/stats/customers").await;
    println!("{{\"startup_ms\": {open_ms:.1}, \"first_customers_ms\": {first_ms:.1}, \"aggregated_days\": {days}}}");
    // A lake of today's facts alone (scripts/bench-reporting-durable.sh) has none.
    if std::env::var_os("IMAGELAKE_BENCH_RAW_ONLY").is_none() {
        assert!(days > 0, "no aggregated day: run `imagelake lake aggregate` first");
    }
    let label = std::env::var("IMAGELAKE_BENCH_RANGE_LABEL").unwrap_or_else(|_| "edges".into());
    for (label, query) in [("all", String::new()), (label.as_str(), format!("?from={from}&to={to}"))] {
        for report in ["summary", "customers", "types", "volume", "processing", "usage", "engagement"] {
            let mut times = Vec::new();
            let mut rows = 0;
            for _ in 0..runs {
                let (ms, _, n) = request(&app, &format!("/v1/stats/{report}{query}")).await;
                times.push(ms);
                rows = n;
            }
            print_line(report, label, &times, rows);
        }
    }
    // IMAGELAKE_BENCH_NEW_FILE=1: a report while writers add files: one new file of one
    // upload fact (through the writer's `write_durable`), then, once the listing is stale,
    // today's `summary`, which pays the refresh that takes the file in. It adds facts to the
    // lake (customer `bench-new-file`).
    if std::env::var_os("IMAGELAKE_BENCH_NEW_FILE").is_some() {
        let today = chrono::Utc::now().date_naive();
        let query = format!("/v1/stats/summary?from={today}T00:00:00Z&to={}T00:00:00Z", today + chrono::Duration::days(1));
        let mut times = Vec::new();
        for _ in 0..runs {
            let id = imagelake_core::ids::new_id();
            let fact = UploadRow {
                event_id: UploadRow::event_id_of(&id),
                image_id: id,
                customer_id: "bench-new-file".into(),
                uploaded_at: chrono::Utc::now(),
                content_type: "image/png".into(),
                format: "png".into(),
                bytes: 1_000,
                width: Some(1),
                height: Some(1),
                sha256: "0".repeat(64),
            };
            ctx.lake.write_durable(vec![Event::Upload(fact)]).await.unwrap();
            tokio::time::sleep(ctx.config.reporting.cache_ttl.0 + std::time::Duration::from_millis(100)).await;
            times.push(request(&app, &query).await.0);
        }
        print_line("summary", "today, after a new file", &times, 1);
    }
}

/// One report's line: median, p95 (nearest rank) and every run, in ms.
fn print_line(report: &str, label: &str, times: &[f64], rows: usize) {
    let runs = times.len();
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = if runs % 2 == 1 { sorted[runs / 2] } else { (sorted[runs / 2 - 1] + sorted[runs / 2]) / 2.0 };
    let p95 = sorted[((runs * 95).div_ceil(100)).clamp(1, runs) - 1];
    let list: Vec<String> = times.iter().map(|t| format!("{t:.1}")).collect();
    println!(
        "{{\"report\": \"{report}\", \"range\": \"{label}\", \"median_ms\": {median:.1}, \"p95_ms\": {p95:.1}, \"runs_ms\": [{}], \"rows\": {rows}}}",
        list.join(", ")
    );
}

/// One request through the router: its time in ms, the aggregated days it could read, and
/// the rows of its answer.
async fn request(app: &axum::Router, uri: &str) -> (f64, u64, usize) {
    let req = Request::get(uri).header(header::AUTHORIZATION, "Bearer ilk_bench").body(Body::empty()).unwrap();
    let t = Instant::now();
    let res = app.clone().oneshot(req).await.unwrap();
    let days: u64 = res.headers().get("lake-aggregated-days").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 200, "{uri}: {}", String::from_utf8_lossy(&body));
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    (ms, days, serde_json::from_slice::<serde_json::Value>(&body).unwrap().as_array().unwrap().len())
}
