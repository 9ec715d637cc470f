//! Garage, then the SQS server, gone in the middle of a run: uploads answer 503
//! problem+json with `Retry-After` (never 500), `/readyz` names the failing dependency, and
//! when it comes back everything recovers on its own: uploads are accepted again and every
//! accepted image, including those queued before the outage, is processed; nothing
//! half-written is left. Its own test binary: it stops the shared Garage, which no other
//! test may see; the two tests here take turns.

mod common;

use common::{image_bytes, proxy::Relay, Backend, Server, Setup};
use image::ImageFormat;
use std::time::{Duration, Instant};

fn servers_ctl(var: &str) {
    let cmd = std::env::var(var).unwrap_or_else(|_| panic!("{var}: run through scripts/test"));
    let out = std::process::Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
}

/// One outage at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_object_store_goes_away_and_comes_back() {
    let _turn = SERIAL.lock().await;
    let server = Server::with(Backend::Servers).await;
    let c = server.client();
    let key = server.keys.acme.clone();
    let accepted = accept_three(&server).await;

    servers_ctl("IMAGELAKE_TEST_S3_STOP_CMD");
    let outage = async {
        upload_refused(&server, "store_unavailable").await;
        let res = c.get(&key, &format!("/v1/images/{}", accepted[0])).send().await.unwrap();
        assert_eq!(res.status(), 503, "a read during the outage");
        readyz_names(&server, "store").await;
    };
    // Whatever happens above, Garage comes back for the tests that follow.
    let checked = tokio::time::timeout(Duration::from_secs(120), outage).await;
    servers_ctl("IMAGELAKE_TEST_S3_START_CMD");
    checked.expect("answers during the outage came within 2 minutes");

    recovers(&server, accepted).await;
}

/// The SQS server is reached through a relay that the test takes down (open connections
/// cut, new ones refused) and brings back on the same port: to the service, the server
/// stopped and restarted. (moto, the SQS server here, keeps its queues in memory only, so
/// restarting the process itself would lose every queued job on its side.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queue_goes_away_and_comes_back() {
    let _turn = SERIAL.lock().await;
    let sqs = std::env::var("IMAGELAKE_TEST_SQS_ENDPOINT").expect("run through scripts/test");
    let relay = Relay::start(sqs.trim_start_matches("http://").trim_end_matches('/')).await;
    let server = Setup::new(Backend::Servers).env("IMAGELAKE_QUEUE__ENDPOINT", &relay.url()).start().await;
    let c = server.client();
    let key = server.keys.acme.clone();
    let accepted = accept_three(&server).await;

    relay.down();
    let outage = async {
        for _ in 0..2 {
            upload_refused(&server, "queue_unavailable").await;
        }
        // Reads need only the store.
        let res = c.get(&key, &format!("/v1/images/{}", accepted[0])).send().await.unwrap();
        assert_eq!(res.status(), 200, "a read while the queue is gone");
        readyz_names(&server, "queue").await;
    };
    let checked = tokio::time::timeout(Duration::from_secs(120), outage).await;
    relay.up().await;
    checked.expect("answers while the queue was gone came within 2 minutes");

    recovers(&server, accepted).await;
}

/// After the dependency came back, on its own: uploads are accepted again within a minute,
/// every accepted image (before, during and after the outage) is processed, and the
/// refused uploads left nothing: one original and one record per accepted image.
async fn recovers(server: &Server, mut accepted: Vec<String>) {
    let c = server.client();
    let key = &server.keys.acme;
    let start = Instant::now();
    loop {
        let res = upload(server).await;
        if res.status() == 202 {
            accepted.push(res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string());
            break;
        }
        assert_eq!(res.status(), 503);
        assert!(start.elapsed() < Duration::from_secs(60), "uploads still refused a minute after the dependency returned");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for id in &accepted {
        let done = c.wait_done(key, id, Duration::from_secs(180)).await;
        assert_eq!(done["status"], "processed", "{done}");
    }
    let store = server.store().await;
    let originals = store.list("originals/acme/", None, 1000).await.unwrap().objects;
    assert_eq!(originals.len(), accepted.len(), "nothing half-written: {originals:?}");
    let listed: serde_json::Value = c.get(key, "/v1/images?limit=100").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), accepted.len(), "{listed}");
    assert!(!server.log().contains("internal error"), "{}", server.log());
}

async fn upload(server: &Server) -> reqwest::Response {
    server.client().upload(&server.keys.acme, image_bytes(800, 600, ImageFormat::Jpeg), "image/jpeg").await
}

/// Three uploads before the outage, all accepted: their ids.
async fn accept_three(server: &Server) -> Vec<String> {
    let mut accepted = Vec::new();
    for _ in 0..3 {
        let res = upload(server).await;
        assert_eq!(res.status(), 202);
        accepted.push(res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    }
    accepted
}

/// An upload during the outage: 503 problem+json with `Retry-After` and `code`.
async fn upload_refused(server: &Server, code: &str) {
    let res = upload(server).await;
    assert_eq!(res.status(), 503, "upload during the outage");
    assert!(res.headers().contains_key("retry-after"), "{:?}", res.headers());
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let p: serde_json::Value = res.json().await.unwrap();
    assert_eq!(p["code"], code, "{p}");
}

/// `/readyz` answers 503 and names the failing dependency.
async fn readyz_names(server: &Server, dependency: &str) {
    let c = server.client();
    let res = c.http.get(c.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body = res.text().await.unwrap();
    assert!(body.contains(dependency), "readyz names the failing dependency: {body}");
}
