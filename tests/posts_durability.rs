//! kill -9 while posts are being processed: after the restart every post is published
//! exactly once. Its status moved once in the database (with its image, in one
//! transaction), the lake has one `published` fact per post (the raw files may repeat it
//! with the same `event_id`), and its webhook carries one delivery id, however often the
//! job or the event was redone.

mod common;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::lake::{lake_dir, python};
use common::{image_bytes, Backend, Setup};
use image::ImageFormat;
use imagelake_core::testing;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const N: usize = 12;

type Hits = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn receiver() -> (String, Hits) {
    let hits: Hits = Default::default();
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let h = h.clone();
            async move {
                h.lock().unwrap().push((headers, body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hits)
}

async fn kill9_while_processing_publishes_each_post_once(backend: Backend) {
    let (hook, hits) = receiver().await;
    let env: Vec<(String, String)> = [
        ("IMAGELAKE_QUEUE__VISIBILITY_TIMEOUT", "4s"),
        ("IMAGELAKE_WEBHOOKS__ALLOW_PRIVATE", "true"),
        ("IMAGELAKE_WEBHOOKS__SECRET", "posts-durability"),
        ("IMAGELAKE_WEBHOOKS__MAX_ATTEMPTS", "2"),
        ("IMAGELAKE_WEBHOOKS__TIMEOUT", "2s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut setup = Setup::new(backend);
    for (k, v) in &env {
        setup = setup.env(k, v);
    }
    let mut server = setup.start().await;
    let c = server.client();
    let key = server.keys.acme.clone();
    let bodies: Vec<Vec<u8>> = (0..N).map(|i| image_bytes(2400 + i as u32, 1800, ImageFormat::Jpeg)).collect();
    let posts = bodies.into_iter().enumerate().map(|(i, body)| {
        let (c, key, hook) = (c.clone(), key.clone(), hook.clone());
        async move {
            let form = reqwest::multipart::Form::new()
                .text("caption", format!("post {i}"))
                .part("file", reqwest::multipart::Part::bytes(body));
            let res = c
                .http
                .post(c.url(&format!("/v1/posts?callback_url={hook}")))
                .bearer_auth(&key)
                .multipart(form)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 202);
            res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        }
    });
    let ids: Vec<String> = futures::future::join_all(posts).await;

    // Kill as soon as one post is published: the others are queued or being processed.
    let start = Instant::now();
    'wait: loop {
        for id in &ids {
            let p: serde_json::Value = c.get(&key, &format!("/v1/posts/{id}")).send().await.unwrap().json().await.unwrap();
            if p["status"] == "published" {
                break 'wait;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(120), "nothing published in 2 minutes:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    let done_at_kill = server.log().matches("job done").count();
    eprintln!("killed with {done_at_kill}/{N} jobs done");
    assert!(done_at_kill < N, "the kill must come in the middle of the batch");

    let mut restart_env = env.clone();
    if backend.servers() {
        let (id, secret) = testing::s3_options().credentials.unwrap();
        restart_env.push(("AWS_ACCESS_KEY_ID".into(), id));
        restart_env.push(("AWS_SECRET_ACCESS_KEY".into(), secret));
    }
    server.spawn(&restart_env).await;
    let mut published_at = BTreeMap::new();
    for id in &ids {
        let start = Instant::now();
        let p = loop {
            let p: serde_json::Value = c.get(&key, &format!("/v1/posts/{id}")).send().await.unwrap().json().await.unwrap();
            if p["status"] != "requested" {
                break p;
            }
            assert!(start.elapsed() < Duration::from_secs(240), "{id} still requested:\n{}", server.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(p["status"], "published", "{p}");
        assert_eq!(p["variants"].as_array().unwrap().len(), 4, "{p}");
        published_at.insert(id.clone(), p["published_at"].clone());
    }
    let listed: serde_json::Value = c.get(&key, "/v1/posts?limit=100").send().await.unwrap().json().await.unwrap();
    let listed: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), N, "every post listed once: {listed:?}");

    // One webhook delivery per post: wait for them all (an event whose delivery the kill
    // interrupted is sent again, with the same delivery id, once its lease is over).
    let start = Instant::now();
    let by_post = loop {
        let mut by_post: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (headers, body) in hits.lock().unwrap().iter() {
            assert_eq!(headers["imagelake-event"], "post.published");
            let p: serde_json::Value = serde_json::from_slice(body).unwrap();
            let delivery = headers["imagelake-delivery"].to_str().unwrap().to_string();
            by_post.entry(p["id"].as_str().unwrap().to_string()).or_default().insert(delivery);
        }
        if by_post.len() == N || start.elapsed() > Duration::from_secs(90) {
            break by_post;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(by_post.len(), N, "every post's webhook arrived: {by_post:?}");
    for (id, deliveries) in &by_post {
        assert_eq!(deliveries.len(), 1, "post {id}: one transition, one delivery id: {deliveries:?}");
    }
    assert!(server.terminate(Duration::from_secs(30)).success(), "{}", server.log());

    // The lake: one `published` fact per post (by event_id), whatever the raw files hold.
    let lake = lake_dir(&server).await;
    let script = format!(
        "import duckdb, json\n\
         rows = duckdb.sql(\"select post_id, count(distinct event_id), count(*) from read_parquet('{}/posts/*/*.parquet', \
         hive_partitioning=true, union_by_name=true) where event = 'published' group by post_id\").fetchall()\n\
         print(json.dumps(rows))",
        lake.display()
    );
    let out = std::process::Command::new(python()).arg("-c").arg(&script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<(String, u64, u64)> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), N, "{rows:?}");
    for (post, distinct, raw) in &rows {
        assert!(published_at.contains_key(post), "{post}");
        assert_eq!(*distinct, 1, "post {post}: one published fact ({raw} raw rows)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_kill9_while_processing_publishes_each_post_once() {
    kill9_while_processing_publishes_each_post_once(Backend::Embedded).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill9_while_processing_publishes_each_post_once() {
    kill9_while_processing_publishes_each_post_once(Backend::ServersPostgres).await
}
