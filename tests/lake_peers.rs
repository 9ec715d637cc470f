//! The lake the real binary writes, read by the Python peers (`tests/peers/check_lake.py`):
//! DuckDB, pyarrow.dataset and polars, with hive partitioning. On the embedded default and
//! against Garage and the SQS server (the lake objects are downloaded first).

mod common;

use common::lake::{check_lake, lake_dir};
use common::{image_bytes, Backend, Server};
use image::ImageFormat;
use std::time::Duration;

async fn python_peers_read_the_lake(backend: Backend) {
    let mut server = Server::with(backend).await;
    let c = server.client();
    let images = [
        (image_bytes(640, 480, ImageFormat::Jpeg), "image/jpeg"),
        (image_bytes(500, 400, ImageFormat::Png), "image/png"),
        (image_bytes(320, 240, ImageFormat::WebP), "image/webp"),
        (image_bytes(200, 150, ImageFormat::Gif), "image/gif"),
        (image_bytes(800, 600, ImageFormat::Jpeg), "image/jpeg"),
    ];
    let mut ids = Vec::new();
    for (i, (body, ct)) in images.iter().enumerate() {
        let key = if i % 2 == 0 { &server.keys.acme } else { &server.keys.globex };
        let res = c.upload(key, body.clone(), ct).await;
        assert_eq!(res.status(), 202);
        let rec: serde_json::Value = res.json().await.unwrap();
        ids.push((key.clone(), rec["id"].as_str().unwrap().to_string()));
    }
    for (key, id) in &ids {
        let done = c.wait_done(key, id, Duration::from_secs(120)).await;
        assert_eq!(done["status"], "processed", "{done}");
    }
    // SIGTERM flushes whatever is buffered.
    assert!(server.terminate(Duration::from_secs(30)).success(), "{}", server.log());

    let lake = lake_dir(&server).await;
    let n = ids.len();
    let ids_file = lake.parent().unwrap().join("accepted-ids.txt");
    std::fs::write(&ids_file, ids.iter().map(|(_, id)| format!("{id}\n")).collect::<String>()).unwrap();
    let summary = check_lake(
        &lake,
        &[
            format!("--expect=uploads={n}"),
            format!("--expect=jobs={n}"),
            format!("--expect=variants={}", 4 * n),
            "--exact".into(),
            format!("--uploads-ids={}", ids_file.display()),
            format!("--succeeded-ids={}", ids_file.display()),
        ],
    );
    assert_eq!(summary["uploads"]["polars"]["raw_rows"], n);
    assert_eq!(summary["jobs_succeeded_twice"], 0);
}

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn python_peers_read_the_lake() {
        super::python_peers_read_the_lake(super::Backend::Embedded).await
    }
}

mod garage_and_sqs {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn python_peers_read_the_lake() {
        super::python_peers_read_the_lake(super::Backend::Servers).await
    }
}
