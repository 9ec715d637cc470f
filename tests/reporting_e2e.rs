//! The statistics API through the real binary: images uploaded and processed by the
//! running server show up in every report, equal to an independent polars computation
//! over the lake files the server wrote (on the embedded default, and on Garage, where
//! the reporting service reads a local mirror of the bucket's lake). Posts and comments made
//! through the API reach the customers, volume and engagement reports the same way.

mod common;

use common::{image_bytes, Backend, Server};
use image::ImageFormat;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PROCESSING: Duration = Duration::from_secs(60);

fn python() -> PathBuf {
    std::env::var_os("IMAGELAKE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/imagelake/venv/bin/python"))
}

fn independent(lake: &Path, report: &str) -> serde_json::Value {
    let script = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("tests/peers/reports_check.py");
    let out = std::process::Command::new(python()).arg(script).arg(lake).arg(report).output().expect("run python");
    assert!(out.status.success(), "reports_check.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A copy of the lake as the object store holds it, read through the store's API.
async fn lake_copy(server: &Server) -> PathBuf {
    let store = server.store().await;
    let dir = imagelake_core::testing::temp_dir("lake-copy");
    let mut after: Option<String> = None;
    loop {
        let page = store.list("lake/", after.as_deref(), 1000).await.unwrap();
        for o in &page.objects {
            let body = store.get(&o.key, None).await.unwrap().bytes().await.unwrap();
            let path = dir.join(o.key.trim_start_matches("lake/"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    dir
}

fn same(report: &str, api: &serde_json::Value, expected: &serde_json::Value) {
    let (a, e) = (api.as_array().unwrap(), expected.as_array().unwrap());
    assert_eq!(a.len(), e.len(), "{report}\napi: {api}\nexpected: {expected}");
    for (ra, re) in a.iter().zip(e) {
        for (k, ve) in re.as_object().unwrap() {
            let va = &ra[k];
            let ok = match (va.as_f64(), ve.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0),
                _ => va == ve,
            };
            assert!(ok, "{report} `{k}`: api {va} != independent {ve}\n{ra}\n{re}");
        }
    }
}

async fn reports_follow_the_lake(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    let mut ids = Vec::new();
    for (key, w, fmt) in [
        (&server.keys.acme, 640, ImageFormat::Jpeg),
        (&server.keys.acme, 320, ImageFormat::Png),
        (&server.keys.globex, 800, ImageFormat::Jpeg),
    ] {
        let res = c.upload(key, image_bytes(w, w * 3 / 4, fmt), "application/octet-stream").await;
        assert_eq!(res.status(), 202);
        ids.push((key.clone(), res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()));
    }
    let mut corrupt = image_bytes(640, 480, ImageFormat::Jpeg);
    corrupt.truncate(600);
    let res = c.upload(&server.keys.globex, corrupt, "image/jpeg").await;
    ids.push((server.keys.globex.clone(), res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()));
    for (key, id) in &ids {
        c.wait_done(key, id, PROCESSING).await;
    }

    // The facts are durable in the lake once the records say so; the next query sees them.
    let started = Instant::now();
    let summary = loop {
        let res = c.get(&server.keys.analyst, "/v1/stats/summary").send().await.unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        let s: serde_json::Value = res.json().await.unwrap();
        if s[0]["images"] == 4 && s[0]["processed"] == 3 && s[0]["failed"] == 1 {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the reports never saw the uploads: {s}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(summary[0]["capacity_bytes"], 100_000_000_000_000u64);

    // Posts of the two processed acme images; comments on them, one deleted again.
    let mut posts = Vec::new();
    for (n, (_, image)) in ids.iter().take(2).enumerate() {
        let body = serde_json::json!({"image_id": image, "caption": format!("post {n}"), "author": "ana"});
        let res = c.http.post(c.url("/v1/posts")).bearer_auth(&server.keys.acme).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
        posts.push(res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    }
    let mut comment_ids = Vec::new();
    for (post, n) in [(&posts[0], 3), (&posts[1], 1)] {
        for k in 0..n {
            let res = c
                .http
                .post(c.url(&format!("/v1/posts/{post}/comments")))
                .bearer_auth(&server.keys.acme)
                .json(&serde_json::json!({"author": format!("reader-{k}"), "text": "nice"}))
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success(), "{}", res.text().await.unwrap());
            comment_ids.push((post.clone(), res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()));
        }
    }
    let (post, comment) = &comment_ids[0];
    let res = c
        .http
        .delete(c.url(&format!("/v1/posts/{post}/comments/{comment}")))
        .bearer_auth(&server.keys.acme)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    // The relay writes the events to the lake shortly after.
    let started = Instant::now();
    loop {
        let res = c.get(&server.keys.analyst, "/v1/stats/engagement").send().await.unwrap();
        assert_eq!(res.status(), 200);
        let e: serde_json::Value = res.json().await.unwrap();
        let rows = e.as_array().unwrap();
        if rows.len() == 2 && rows[0]["comments"] == 3 && rows[0]["comments_deleted"] == 1 && rows[1]["comments"] == 1 {
            assert_eq!(rows[0]["post_id"], posts[0].as_str());
            assert_eq!(rows[0]["author"], "ana");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the engagement report never saw the comments: {e}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let lake = lake_copy(&server).await;
    let customers: serde_json::Value =
        c.get(&server.keys.admin, "/v1/stats/customers").send().await.unwrap().json().await.unwrap();
    let acme = customers.as_array().unwrap().iter().find(|r| r["customer_id"] == "acme").unwrap();
    assert_eq!((acme["posts"].as_u64(), acme["comments"].as_u64()), (Some(2), Some(4)), "{acme}");
    for report in ["summary", "customers", "types", "volume", "processing", "usage", "engagement"] {
        let res = c.get(&server.keys.analyst, &format!("/v1/stats/{report}")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let api: serde_json::Value = res.json().await.unwrap();
        same(report, &api, &independent(&lake, report));
    }
    let customers: serde_json::Value =
        c.get(&server.keys.admin, "/v1/stats/customers").send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = customers.as_array().unwrap().iter().map(|r| r["customer_id"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme", "globex"]);

    // Roles, a bad parameter, and another encoding through the real server.
    let res = c.get(&server.keys.acme, "/v1/stats/summary").send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = c.http.get(c.url("/v1/stats/summary")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = c.get(&server.keys.analyst, "/v1/stats/volume?interval=fortnight").send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["code"], "unknown_interval");
    let res = c.get(&server.keys.analyst, "/v1/stats/types").header("accept", "text/csv").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = res.text().await.unwrap();
    assert!(text.starts_with("type,images,bytes,"), "{text}");
    assert_eq!(text.lines().count(), 3, "jpeg and png: {text}");
}

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reports_follow_the_lake() {
        super::reports_follow_the_lake(super::Backend::Embedded).await
    }
}

mod garage_and_sqs {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reports_follow_the_lake() {
        super::reports_follow_the_lake(super::Backend::Servers).await
    }
}
