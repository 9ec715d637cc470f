//! Checks that many tests share: a problem+json answer, and nothing left of an upload.

use super::Server;
use std::time::Duration;

/// Checks that `res` is problem+json with `status` and `code`, and a detail; returns it.
pub async fn problem(res: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(res.status().as_u16(), status, "expected {status} {code}");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let p: serde_json::Value = res.json().await.unwrap();
    assert_eq!(p["code"], code, "{p}");
    assert_eq!(p["status"], status);
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
    p
}

/// Checks that nothing of any upload of `customer` is stored.
pub async fn assert_nothing_stored(server: &Server, customer: &str) {
    // The upload task cleans up after the client is gone; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let store = server.store().await;
    for prefix in ["originals/", "processed/"] {
        let p = format!("{prefix}{customer}/");
        let page = store.list(&p, None, 10).await.unwrap();
        assert!(page.objects.is_empty(), "left behind under {p}: {:?}", page.objects);
    }
    let meta = server.meta().await;
    assert!(meta.list_images(customer, None, 10).await.unwrap().is_empty(), "a record left behind");
    assert!(meta.usage().await.unwrap().iter().all(|(c, f)| c != customer || f.bytes() == 0), "bytes counted");
    assert!(store.list_multipart("originals/").await.unwrap().is_empty(), "pending multipart upload left behind");
}
