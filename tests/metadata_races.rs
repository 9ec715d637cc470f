//! Races the metadata database settles, end to end through the real binary on every
//! backend: parallel retries with one `Idempotency-Key`, a delete while the image is being
//! processed, and one job delivered to two processors.

#[macro_use]
mod common;

use common::{image_bytes, Backend, Server, Setup};
use image::ImageFormat;
use std::time::{Duration, Instant};

/// 50 parallel uploads with one `Idempotency-Key`: one image, every answer names it, and
/// the 49 originals the losers stored are removed. (50 at once is over the default of 32
/// uploads per key, which this test is not about.)
async fn fifty_parallel_retries_make_one_image(backend: Backend) {
    let server = Setup::new(backend).toml("[ingest]\nmax_uploads_per_key = 64").start().await;
    let c = server.client();
    let body = image_bytes(64, 48, ImageFormat::Png);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (c, key, body) = (c.clone(), server.keys.acme.clone(), body.clone());
            tokio::spawn(async move {
                let res = c
                    .http
                    .post(c.url("/v1/images"))
                    .bearer_auth(&key)
                    .header("content-type", "image/png")
                    .header("idempotency-key", "retry-me")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 202);
                res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()
            })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(ids.len(), 1, "every answer names the same image: {ids:?}");
    let listed: serde_json::Value = c.get(&server.keys.acme, "/v1/images").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    let store = server.store().await;
    let originals = store.list("originals/acme/", None, 100).await.unwrap().objects;
    assert_eq!(originals.len(), 1, "the duplicates' originals are removed: {originals:?}");
    // The same key from another customer is another image.
    let res = c
        .http
        .post(c.url("/v1/images"))
        .bearer_auth(&server.keys.globex)
        .header("idempotency-key", "retry-me")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert!(!ids.contains(res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap()));
}

/// `DELETE` while the image is `processing` wins: the processor cannot write the record
/// back, and removes the variants it wrote. Nothing of the image is left anywhere.
async fn a_delete_during_processing_never_resurrects(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    let key = &server.keys.acme;
    // Large enough that decoding and resizing take a while on any machine.
    let big = image_bytes(6000, 4000, ImageFormat::Jpeg);
    let mut caught = None;
    for _ in 0..3 {
        let res = c.upload(key, big.clone(), "image/jpeg").await;
        assert_eq!(res.status(), 202);
        let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let start = Instant::now();
        loop {
            let rec: serde_json::Value = c.get(key, &format!("/v1/images/{id}")).send().await.unwrap().json().await.unwrap();
            match rec["status"].as_str().unwrap() {
                "processing" => break,
                "uploaded" if start.elapsed() < Duration::from_secs(60) => tokio::time::sleep(Duration::from_millis(5)).await,
                _ => break,
            }
        }
        let res = c.http.delete(c.url(&format!("/v1/images/{id}"))).bearer_auth(key).send().await.unwrap();
        assert_eq!(res.status(), 204);
        // Whether the delete came in the middle shows in the processor's log.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            let log = server.log();
            if log.contains(&id)
                && (log.contains("removing the variants this run wrote") || log.contains("image deleted; nothing"))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = server.log();
        let after_render = log.lines().any(|l| l.contains(&id) && l.contains("removing the variants this run wrote"));
        check_nothing_left(&server, &id).await;
        if after_render {
            caught = Some(id);
            break;
        }
    }
    assert!(caught.is_some(), "in three tries, no delete landed while the image was rendered");
    assert!(!server.log().contains("internal error"), "{}", server.log());
}

async fn check_nothing_left(server: &Server, id: &str) {
    let c = server.client();
    let key = &server.keys.acme;
    // Wait out the job's own clean-up (it acknowledges only after it).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.get(key, &format!("/v1/images/{id}")).send().await.unwrap().status(), 404, "the record stays deleted");
    for v in ["thumb", "small", "medium", "web"] {
        let status = c.get(key, &format!("/v1/images/{id}/variants/{v}")).send().await.unwrap().status();
        assert_eq!(status, 404, "variant {v} of a deleted image");
    }
    let listed: serde_json::Value = c.get(key, "/v1/images").send().await.unwrap().json().await.unwrap();
    assert!(!listed.to_string().contains(id), "{listed}");
    let store = server.store().await;
    for prefix in [format!("originals/acme/{id}"), format!("processed/acme/{id}/")] {
        let left = store.list(&prefix, None, 10).await.unwrap().objects;
        assert!(left.is_empty(), "{prefix} left behind: {left:?}");
    }
    let meta = server.meta().await;
    assert!(meta.image(id).await.unwrap().is_none());
    let counted: u64 = meta.usage().await.unwrap().iter().map(|(_, f)| f.bytes()).sum();
    assert_eq!(counted, 0, "nothing of a deleted image is counted");
}

on_every_backend!(fifty_parallel_retries_make_one_image, a_delete_during_processing_never_resurrects);
