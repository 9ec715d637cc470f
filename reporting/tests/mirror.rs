//! With the S3 backend (Garage, exported by `scripts/test`), reports read a local mirror
//! of the bucket's `lake/`: new files are fetched, files removed by compaction are removed,
//! and the numbers stay right through a compaction.

use axum::body::Body;
use axum::http::{header, Request};
use http_body_util::BodyExt;
use imagelake_core::app::Context;
use imagelake_core::ids;
use imagelake_core::lake::LakeWriter;
use imagelake_core::store::{S3Options, S3Store, SharedStore};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

mod support;
use support::{config, lake_events, ANALYST};

async fn summary(app: &axum::Router) -> Value {
    let req =
        Request::get("/v1/stats/summary").header(header::AUTHORIZATION, format!("Bearer {ANALYST}")).body(Body::empty()).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice::<Value>(&body).unwrap()[0].clone()
}

async fn keys(store: &SharedStore, prefix: &str) -> Vec<String> {
    store.list(prefix, None, 1000).await.unwrap().objects.into_iter().map(|o| o.key).collect()
}

fn mirrored(ctx: &Context, table: &str) -> usize {
    walk(&ctx.config.data_dir.join("lake-mirror").join(table))
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| if e.path().is_dir() { walk(&e.path()) } else { e.path().extension().is_some_and(|x| x == "parquet") as usize })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_lake_is_mirrored_through_compaction() {
    let mut ctx = Context::connect(config("mirror")).await.unwrap();
    let options = S3Options { prefix: format!("reporting-{}", ids::new_compact_id()), ..imagelake_core::testing::s3_options() };
    let store: SharedStore = Arc::new(S3Store::connect(options).await);
    ctx.store = store.clone();
    ctx.lake = LakeWriter::new(store.clone(), "mirror-test", ctx.config.lake.clone(), ctx.clock.clone());
    assert_eq!(ctx.store.backend(), "s3");

    // Empty bucket: zeros.
    let app = imagelake_reporting::router(ctx.clone()).await.unwrap().with_state(ctx.clone());
    assert_eq!(summary(&app).await["images"], 0);

    for batch in lake_events() {
        ctx.lake.write_durable(batch).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = summary(&app).await;
    assert_eq!(before["images"], 60, "{before}");
    assert_eq!(before["processed"], 48, "{before}");
    let upload_files = keys(&store, "lake/uploads/").await;
    assert!(upload_files.len() > 1);
    assert_eq!(mirrored(&ctx, "uploads"), upload_files.len());

    // Compaction: all upload files merged into one, written before the inputs are deleted.
    let mut batches = Vec::new();
    for k in &upload_files {
        let body = store.get(k, None).await.unwrap().bytes().await.unwrap();
        batches.extend(ParquetRecordBatchReaderBuilder::try_new(body).unwrap().build().unwrap().map(|b| b.unwrap()));
    }
    let mut merged = Vec::new();
    let mut w = ArrowWriter::try_new(&mut merged, batches[0].schema(), None).unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
    store.put("lake/uploads/dt=2026-11-01/compacted-0001.parquet", merged.into()).await.unwrap();
    store.delete_many(&upload_files).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = summary(&app).await;
    assert_eq!(after["images"], 60, "{after}");
    assert_eq!(after["bytes"], before["bytes"]);
    assert_eq!(mirrored(&ctx, "uploads"), 1, "inputs removed by compaction are removed from the mirror");
}
