//! Webhooks through the real binary: a receiver in this test process answers 503 twice,
//! then 200; the server retries with backoff, signs every attempt, and carries one
//! delivery id through the retries. Failed images are announced too. (The SSRF refusals
//! are in `bad_inputs.rs`: they need the default configuration.)

mod common;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{image_bytes, Backend, Setup};
use image::ImageFormat;
use imagelake_core::webhook;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
struct Hit {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
}

/// Records every POST; answers 503 to the first `fail_first` of each path.
async fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<(String, Hit)>>>) {
    let hits: Arc<Mutex<Vec<(String, Hit)>>> = Default::default();
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/hook/{name}",
        post(move |axum::extract::Path(name): axum::extract::Path<String>, headers: HeaderMap, body: Bytes| {
            let h = h.clone();
            async move {
                let mut hits = h.lock().unwrap();
                let seen = hits.iter().filter(|(n, _)| *n == name).count();
                hits.push((name, Hit { at: Instant::now(), headers, body }));
                if seen < fail_first {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hits)
}

async fn wait_for_hits(hits: &Arc<Mutex<Vec<(String, Hit)>>>, name: &str, n: usize) -> Vec<Hit> {
    let start = Instant::now();
    loop {
        let got: Vec<Hit> = hits.lock().unwrap().iter().filter(|(k, _)| k == name).map(|(_, h)| h.clone()).collect();
        if got.len() >= n {
            return got;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{name}: {} of {n} webhook attempts arrived", got.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_are_retried_until_delivered() {
    const SECRET: &str = "test-webhook-secret";
    let (hook, hits) = receiver(2).await;
    let server = Setup::new(Backend::Embedded)
        .env("IMAGELAKE_WEBHOOKS__ALLOW_PRIVATE", "true")
        .env("IMAGELAKE_WEBHOOKS__SECRET", SECRET)
        .start()
        .await;
    let c = server.client();
    let key = &server.keys.acme;
    let post = |body: Vec<u8>, name: &str| {
        c.http.post(c.url(&format!("/v1/images?callback_url={hook}/hook/{name}"))).bearer_auth(key).body(body).send()
    };
    let res = post(image_bytes(640, 480, ImageFormat::Png), "good").await.unwrap();
    assert_eq!(res.status(), 202);
    let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let mut bad = image_bytes(640, 480, ImageFormat::Jpeg);
    bad.truncate(700);
    let res = post(bad, "bad").await.unwrap();
    let bad_id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();

    // Two 503s, then delivered: three attempts, about 1 s and 2 s apart.
    let attempts = wait_for_hits(&hits, "good", 3).await;
    let gaps: Vec<f64> = attempts.windows(2).map(|w| (w[1].at - w[0].at).as_secs_f64()).collect();
    assert!(gaps[0] >= 0.9 && gaps[1] >= 1.8, "backoff grows: {gaps:?}");
    let delivery = attempts[0].headers["imagelake-delivery"].clone();
    let now = chrono_now();
    for a in &attempts {
        assert_eq!(a.headers["imagelake-delivery"], delivery, "one delivery id across retries");
        assert_eq!(a.headers["imagelake-event"], "image.processed");
        assert_eq!(a.headers["content-type"], "application/json");
        let sig = a.headers["imagelake-signature"].to_str().unwrap();
        assert!(webhook::verify(SECRET.as_bytes(), sig, &a.body, now, 300), "signature {sig} does not verify");
        assert!(!webhook::verify(b"another secret", sig, &a.body, now, 300));
    }
    let rec: serde_json::Value = serde_json::from_slice(&attempts[2].body).unwrap();
    assert_eq!((rec["id"].as_str(), rec["status"].as_str()), (Some(id.as_str()), Some("processed")));
    assert_eq!(rec["variants"].as_array().unwrap().len(), 4);
    // Delivered: no fourth attempt.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(wait_for_hits(&hits, "good", 3).await.len(), 3);

    let failed = wait_for_hits(&hits, "bad", 3).await;
    assert_eq!(failed[2].headers["imagelake-event"], "image.failed");
    let rec: serde_json::Value = serde_json::from_slice(&failed[2].body).unwrap();
    assert_eq!((rec["id"].as_str(), rec["status"].as_str()), (Some(bad_id.as_str()), Some("failed")));
    assert_eq!(rec["error"]["code"], "decode_failed");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
