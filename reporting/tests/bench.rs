//! The reporting benchmark's service side (run by scripts/bench-reporting.sh, ignored in
//! normal test runs): every report through the router, on a lake under
//! `$IMAGELAKE_BENCH_DATA_DIR/store/objects/lake`, with the full JSON encoding, once the
//! rollups are built. Prints the start-up and rollup build times, then one JSON line per
//! report: median and all run times in milliseconds.

use axum::body::Body;
use axum::http::{header, Request};
use http_body_util::BodyExt;
use imagelake_core::app::Context;
use imagelake_core::auth::{hash_key, Role};
use imagelake_core::config::{Config, KeyConfig};
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
    let started = Instant::now();
    let reporting = imagelake_reporting::Reporting::open(ctx.clone()).await.unwrap();
    println!("{{\"startup_ms\": {:.1}}}", started.elapsed().as_secs_f64() * 1000.0);
    // The rollups are built in the background; reports run on them once they are published.
    // (Until then every report reads the views alone.)
    let started = Instant::now();
    let watermark = loop {
        if let Some(w) = reporting.engine().rollup_watermark() {
            break w.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        }
        assert!(started.elapsed().as_secs() < 3600, "no rollups after an hour");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let app = imagelake_reporting::routes(reporting).with_state(ctx);
    println!("{{\"rollups_ms\": {:.1}, \"watermark\": \"{watermark}\"}}", started.elapsed().as_secs_f64() * 1000.0);
    for report in ["summary", "customers", "types", "volume", "processing", "usage", "engagement"] {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..runs {
            let req = Request::get(format!("/v1/stats/{report}"))
                .header(header::AUTHORIZATION, "Bearer ilk_bench")
                .body(Body::empty())
                .unwrap();
            let t = Instant::now();
            let res = app.clone().oneshot(req).await.unwrap();
            assert!(res.headers().contains_key("rollup-watermark"), "{report} ran without the rollups");
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(status, 200, "{report}: {}", String::from_utf8_lossy(&body));
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            rows = serde_json::from_slice::<serde_json::Value>(&body).unwrap().as_array().unwrap().len();
        }
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let median = if runs % 2 == 1 { sorted[runs / 2] } else { (sorted[runs / 2 - 1] + sorted[runs / 2]) / 2.0 };
        let list: Vec<String> = times.iter().map(|t| format!("{t:.1}")).collect();
        println!(
            "{{\"report\": \"{report}\", \"median_ms\": {median:.1}, \"runs_ms\": [{}], \"rows\": {rows}}}",
            list.join(", ")
        );
    }
}
