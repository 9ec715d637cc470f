//! kill -9 while 50 uploads are being processed: the server comes back and finishes the
//! batch; every accepted image reaches `processed` with exactly one object per variant,
//! every accepted upload is in `uploads` exactly once and every processed image has its
//! succeeded job, through the deduplicating views (the raw files may hold a fact twice:
//! a job redelivered after the crash writes its facts again).

mod common;

use common::lake::{check_lake, lake_dir};
use common::{image_bytes, Backend, Setup};
use image::ImageFormat;
use imagelake_core::testing;
use std::time::{Duration, Instant};

const N: usize = 50;

async fn kill9_mid_batch_loses_and_doubles_nothing(backend: Backend) {
    // A short visibility timeout, so the jobs the dead process held come back quickly.
    let env = [("IMAGELAKE_QUEUE__VISIBILITY_TIMEOUT".to_string(), "4s".to_string())];
    // 50 uploads at once with one key: over the default of 32 per key, which this test is
    // not about.
    let mut server = Setup::new(backend).env(&env[0].0, &env[0].1).toml("[ingest]\nmax_uploads_per_key = 64").start().await;
    let c = server.client();
    let key = server.keys.acme.clone();
    // The images are made first, then uploaded all at once: the batch is queued before
    // much of it can be processed.
    let bodies: Vec<(Vec<u8>, &str)> = (0..N)
        .map(|i| match i % 3 {
            0 => (image_bytes(2400 + i as u32, 1800, ImageFormat::Jpeg), "image/jpeg"),
            1 => (image_bytes(1600, 1200 + i as u32, ImageFormat::Png), "image/png"),
            _ => (image_bytes(1200 + i as u32, 900, ImageFormat::WebP), "image/webp"),
        })
        .collect();
    let uploads = bodies.into_iter().map(|(body, ct)| {
        let (c, key) = (c.clone(), key.clone());
        async move {
            let res = c.upload(&key, body, ct).await;
            assert_eq!(res.status(), 202);
            let rec: serde_json::Value = res.json().await.unwrap();
            rec["id"].as_str().unwrap().to_string()
        }
    });
    let ids: Vec<String> = futures::future::join_all(uploads).await;

    // Kill as soon as one image of the batch is processed (the rest is queued or in progress).
    let start = Instant::now();
    'wait: loop {
        for id in &ids {
            let r: serde_json::Value = c.get(&key, &format!("/v1/images/{id}")).send().await.unwrap().json().await.unwrap();
            if r["status"] == "processed" {
                break 'wait;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(120), "nothing processed in 2 minutes:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    let processed_at_kill = server.log().matches("job done").count();
    eprintln!("killed with {processed_at_kill}/{N} jobs done");
    assert!(processed_at_kill < N, "the kill must come in the middle of the batch");

    // Restart on the same configuration (and, for Garage, the same credentials).
    let mut restart_env = env.to_vec();
    if backend.servers() {
        let (id, secret) = testing::s3_options().credentials.unwrap();
        restart_env.push(("AWS_ACCESS_KEY_ID".into(), id));
        restart_env.push(("AWS_SECRET_ACCESS_KEY".into(), secret));
    }
    server.spawn(&restart_env).await;
    let store = server.store().await;
    for id in &ids {
        let done = c.wait_done(&key, id, Duration::from_secs(240)).await;
        assert_eq!(done["status"], "processed", "{done}");
        // No duplicate variants: one entry per preset in the record, one object each.
        let names: Vec<&str> = done["variants"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["thumb", "small", "medium", "web"], "{done}");
        let objects = store.list(&format!("processed/acme/{id}/"), None, 100).await.unwrap().objects;
        assert_eq!(objects.len(), 4, "{id}: {objects:?}");
    }
    assert!(server.terminate(Duration::from_secs(30)).success(), "{}", server.log());

    let lake = lake_dir(&server).await;
    let ids_file = lake.parent().unwrap().join("accepted-ids.txt");
    std::fs::write(&ids_file, ids.iter().map(|id| format!("{id}\n")).collect::<String>()).unwrap();
    // Without --exact: the raw files may repeat a fact; the views must not.
    let summary = check_lake(
        &lake,
        &[
            format!("--expect=uploads={N}"),
            format!("--expect=variants={}", 4 * N),
            format!("--uploads-ids={}", ids_file.display()),
            format!("--succeeded-ids={}", ids_file.display()),
        ],
    );
    eprintln!("{summary}");
    assert_eq!(summary["uploads"]["duckdb"]["view_rows"], N);
    assert_eq!(summary["uploads_checked"], N);
    assert_eq!(summary["jobs_checked"], N);
}

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill9_mid_batch_loses_and_doubles_nothing() {
        super::kill9_mid_batch_loses_and_doubles_nothing(super::Backend::Embedded).await
    }
}

mod garage_and_sqs {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill9_mid_batch_loses_and_doubles_nothing() {
        super::kill9_mid_batch_loses_and_doubles_nothing(super::Backend::Servers).await
    }
}
