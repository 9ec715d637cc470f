//! Garage, then the SQS server, gone in the middle of a run.
//!
//! - Garage gone: uploads answer 503 problem+json with `Retry-After` (never 500), records
//!   still read (they are in the database), `/readyz` names the store, and when it comes
//!   back everything recovers on its own.
//! - The queue gone: uploads are still accepted (202): the original is stored and the
//!   record committed with its job in the outbox; the jobs are sent when the queue
//!   returns, even if the server was killed with `kill -9` meanwhile.
//!
//! In every case every accepted image is processed and nothing half-written is left. Its
//! own test binary: it stops the shared Garage, which no other test may see; the tests
//! here take turns.

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
        assert_eq!(res.status(), 200, "records are in the database: they read during the outage");
        let res = c.get(&key, &format!("/v1/images/{}/original", accepted[0])).send().await.unwrap();
        assert_eq!(res.status(), 503, "bytes do not");
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
    let relay = sqs_relay().await;
    let server = Setup::new(Backend::Servers).env("IMAGELAKE_QUEUE__ENDPOINT", &relay.url()).start().await;
    let c = server.client();
    let key = server.keys.acme.clone();
    let mut accepted = accept_three(&server).await;

    relay.down();
    let outage = async {
        let during = accept_n(&server, 20).await;
        let res = c.get(&key, &format!("/v1/images/{}", during[0])).send().await.unwrap();
        assert_eq!(res.status(), 200, "a read while the queue is gone");
        readyz_degraded(&server, "queue").await;
        during
    };
    let checked = tokio::time::timeout(Duration::from_secs(120), outage).await;
    relay.up().await;
    accepted.extend(checked.expect("answers while the queue was gone came within 2 minutes"));

    recovers(&server, accepted).await;
}

/// The queue is down while 20 uploads are accepted, then the server is killed (`kill -9`)
/// before it could send their jobs: they exist only as committed outbox rows. After the
/// queue and the server are back, every one is processed. On PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_committed_but_never_sent_survive_kill_9() {
    let _turn = SERIAL.lock().await;
    let relay = sqs_relay().await;
    let mut server = Setup::new(Backend::ServersPostgres).env("IMAGELAKE_QUEUE__ENDPOINT", &relay.url()).start().await;
    relay.down();
    let accepted =
        tokio::time::timeout(Duration::from_secs(120), accept_n(&server, 20)).await.expect("accepted within 2 minutes");
    let meta = server.meta().await;
    assert_eq!(meta.outbox_len().await.unwrap(), 20, "every job waits in the outbox");
    server.kill9();
    relay.up().await;
    let (id, secret) = imagelake_core::testing::s3_options().credentials.unwrap();
    let env = [
        ("IMAGELAKE_QUEUE__ENDPOINT".to_string(), relay.url()),
        ("AWS_ACCESS_KEY_ID".to_string(), id),
        ("AWS_SECRET_ACCESS_KEY".to_string(), secret),
    ];
    server.spawn(&env).await;
    recovers(&server, accepted).await;
    assert_eq!(meta.outbox_len().await.unwrap(), 0, "all sent");
}

async fn sqs_relay() -> Relay {
    let sqs = std::env::var("IMAGELAKE_TEST_SQS_ENDPOINT").expect("run through scripts/test");
    Relay::start(sqs.trim_start_matches("http://").trim_end_matches('/')).await
}

/// `n` uploads, all accepted: their ids.
async fn accept_n(server: &Server, n: usize) -> Vec<String> {
    let mut accepted = Vec::new();
    for _ in 0..n {
        let res = upload(server).await;
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap_or_default());
        accepted.push(res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    }
    accepted
}

/// `/readyz` still answers 200 (the service accepts uploads) and names what is degraded.
async fn readyz_degraded(server: &Server, dependency: &str) {
    let c = server.client();
    // A check is shared for a second: the first answers may predate the outage.
    let start = Instant::now();
    loop {
        let res = c.http.get(c.url("/readyz")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        if body["status"] == "degraded" || start.elapsed() > Duration::from_secs(5) {
            assert_eq!(body["status"], "degraded", "{body}");
            assert!(body["degraded"].to_string().contains(dependency), "readyz names the failing dependency: {body}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    accept_n(server, 3).await
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
    // A check is shared for a second: the first answers may predate the outage.
    let start = Instant::now();
    loop {
        let res = c.http.get(c.url("/readyz")).send().await.unwrap();
        if res.status() == 503 || start.elapsed() > Duration::from_secs(5) {
            assert_eq!(res.status(), 503);
            let body = res.text().await.unwrap();
            assert!(body.contains(dependency), "readyz names the failing dependency: {body}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
