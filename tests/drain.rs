//! SIGTERM with 20 uploads in flight: the server stops accepting, lets the uploads finish
//! within the grace period, exits 0; every upload either completed (202) or was refused
//! cleanly (no answer at all, or a 503 problem), nothing half-written is left, and every
//! accepted image is processed after a restart.

mod common;

use common::{image_bytes, Backend, Setup};
use futures::StreamExt;
use image::ImageFormat;
use std::time::Duration;

const N: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_uploads_in_flight() {
    let mut server = Setup::new(Backend::Embedded).env("IMAGELAKE_SHUTDOWN_GRACE", "30s").start().await;
    let c = server.client();
    let key = server.keys.acme.clone();
    let body = image_bytes(1600, 1200, ImageFormat::Png);
    // Each body trickles in over about 1.5 s, so all 20 are in flight at the signal.
    let uploads: Vec<_> = (0..N)
        .map(|_| {
            let (c, key, body) = (c.clone(), key.clone(), body.clone());
            tokio::spawn(async move {
                let chunks: Vec<Vec<u8>> = body.chunks(body.len() / 15 + 1).map(<[u8]>::to_vec).collect();
                let stream = futures::stream::iter(chunks).then(|chunk| async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, std::io::Error>(chunk)
                });
                let res = c
                    .http
                    .post(c.url("/v1/images"))
                    .bearer_auth(&key)
                    .header("content-type", "image/png")
                    .body(reqwest::Body::wrap_stream(stream))
                    .send()
                    .await;
                match res {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let json: serde_json::Value = r.json().await.unwrap_or_default();
                        Some((status, json))
                    }
                    Err(_) => None, // refused or cut before an answer: the client retries
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = tokio::task::spawn_blocking(move || {
        let s = server.terminate(Duration::from_secs(60));
        (server, s)
    })
    .await
    .unwrap();
    let (mut server, exit) = status;
    assert!(exit.success(), "exit after SIGTERM: {exit:?}\n{}", server.log());

    let mut accepted = Vec::new();
    for u in uploads {
        match u.await.unwrap() {
            Some((202, rec)) => accepted.push(rec["id"].as_str().unwrap().to_string()),
            Some((503, p)) => assert!(p["code"].is_string(), "a 503 is a problem: {p}"),
            Some((s, p)) => panic!("upload answered {s}: {p}"),
            None => {}
        }
    }
    eprintln!("{} of {N} uploads accepted during the drain", accepted.len());
    assert!(!accepted.is_empty(), "uploads in flight finish within the grace period");

    // Restart: every accepted image is processed; nothing else was stored.
    server.spawn(&[]).await;
    for id in &accepted {
        let done = c.wait_done(&key, id, Duration::from_secs(120)).await;
        assert_eq!(done["status"], "processed", "{done}");
    }
    let store = server.store().await;
    let originals = store.list("originals/acme/", None, 1000).await.unwrap().objects;
    assert_eq!(originals.len(), accepted.len(), "no original without an accepted upload: {originals:?}");
    assert!(server.terminate(Duration::from_secs(60)).success());
}
