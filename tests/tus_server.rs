//! The tus server against the real binary, on every backend: durable offsets across a
//! `kill -9`, completion into an image (byte-identical, hashed by the processor, made
//! once), creation with upload and deferred length, concurrent writers, and the expiry
//! of abandoned uploads by the lifecycle (bytes removed, multipart aborted, a lake fact).
//! The real clients (tuspy, tus-js-client) are in `tus_clients.rs`.

#[macro_use]
mod common;

use base64::Engine as _;
use common::{image_bytes, sha256_hex, Backend, Server, Setup};
use reqwest::{Response, StatusCode};
use sha2::Digest;
use std::time::Duration;

const MIB: usize = 1 << 20;

/// A JPEG followed by noise: a valid image (decoders stop at its end) of `size` bytes
/// that does not compress, so its parts are what the test says.
fn big_image(size: usize) -> Vec<u8> {
    let mut body = image_bytes(640, 480, image::ImageFormat::Jpeg);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while body.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.extend_from_slice(&x.to_le_bytes());
    }
    body.truncate(size);
    body
}

/// 5 MiB parts, S3's least: a few MiB exercise parts, tails and the last short part.
fn env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![("IMAGELAKE_STORAGE__PART_SIZE".to_string(), "5MiB".to_string())];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

async fn setup(backend: Backend, extra: &[(&str, &str)]) -> Server {
    let mut setup = Setup::new(backend);
    for (k, v) in env(extra) {
        setup = setup.env(&k, &v);
    }
    setup.start().await
}

struct Tus {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Tus {
    fn new(server: &Server, key: &str) -> Tus {
        Tus { http: reqwest::Client::new(), base: server.url.clone(), key: key.to_string() }
    }

    async fn create(&self, length: usize, metadata: &str) -> String {
        let res = self
            .http
            .post(format!("{}/v1/uploads", self.base))
            .bearer_auth(&self.key)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", length.to_string())
            .header("upload-metadata", metadata)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
        assert_eq!(res.headers()["tus-resumable"], "1.0.0");
        assert!(res.headers().contains_key("upload-expires"));
        let location = res.headers()["location"].to_str().unwrap().to_string();
        format!("{}{location}", self.base)
    }

    async fn patch(&self, url: &str, offset: usize, chunk: &[u8], checksum: bool) -> Response {
        let mut req = self
            .http
            .patch(url)
            .bearer_auth(&self.key)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(chunk.to_vec());
        if checksum {
            let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(chunk));
            req = req.header("upload-checksum", format!("sha256 {digest}"));
        }
        req.send().await.unwrap()
    }

    async fn head(&self, url: &str) -> Response {
        self.http.head(url).bearer_auth(&self.key).header("tus-resumable", "1.0.0").send().await.unwrap()
    }
}

fn offset_of(res: &Response) -> usize {
    res.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
}

async fn original_sha(server: &Server, key: &str, id: &str) -> String {
    let res = server.client().get(key, &format!("/v1/images/{id}/original")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    sha256_hex(&res.bytes().await.unwrap())
}

/// Acknowledged chunks survive `kill -9`; the client resumes from HEAD's offset; the
/// image is the file, byte for byte, hashed by the processor; repeating the last PATCH
/// makes no second image.
async fn resumes_after_kill9(backend: Backend) {
    let mut server = setup(backend, &[]).await;
    let key = server.keys.acme.clone();
    let body = big_image(13 * MIB + 12_345);
    let tus = Tus::new(&server, &key);
    let b64 = base64::engine::general_purpose::STANDARD;
    let url = tus.create(body.len(), &format!("filename {},variants {}", b64.encode("photo.jpg"), b64.encode("thumb"))).await;
    // 3 MiB (a tail only), then 4 MiB (one whole part and a 2 MiB tail).
    for (from, to) in [(0, 3 * MIB), (3 * MIB, 7 * MIB)] {
        let res = tus.patch(&url, from, &body[from..to], true).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "{}", res.text().await.unwrap());
        assert_eq!(offset_of(&res), to);
        assert!(!res.headers().contains_key("imagelake-image"));
    }
    server.kill9();
    server.restart().await;
    let tus = Tus::new(&server, &key);
    let head = tus.head(&url).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(offset_of(&head), 7 * MIB, "the acknowledged offset survives kill -9");
    assert_eq!(head.headers()["upload-length"].to_str().unwrap(), body.len().to_string());
    assert_eq!(head.headers()["cache-control"], "no-store");
    let mut at = offset_of(&head);
    let mut image = None;
    while at < body.len() {
        let to = (at + 5 * MIB / 2).min(body.len());
        let res = tus.patch(&url, at, &body[at..to], true).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "{}", res.text().await.unwrap());
        at = offset_of(&res);
        assert_eq!(at, to);
        image = res.headers().get("imagelake-image").map(|v| v.to_str().unwrap().to_string());
    }
    let image = image.expect("the last PATCH names the image");
    let id = image.trim_start_matches("/v1/images/").to_string();
    let rec = server.client().wait_done(&key, &id, Duration::from_secs(60)).await;
    assert_eq!(rec["status"], "processed", "{rec}");
    assert_eq!(rec["bytes"], body.len() as u64);
    assert_eq!(rec["requested_variants"], serde_json::json!(["thumb"]));
    assert_eq!(rec["sha256"], sha256_hex(&body), "the processor fills in the SHA-256");
    assert_eq!(original_sha(&server, &key, &id).await, sha256_hex(&body));
    // The last PATCH again, and HEAD: the same image, no second one.
    let again = tus.patch(&url, body.len(), &[], false).await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT, "{}", again.text().await.unwrap());
    assert_eq!(again.headers()["imagelake-image"].to_str().unwrap(), image);
    assert_eq!(tus.head(&url).await.headers()["imagelake-image"].to_str().unwrap(), image);
    let list: serde_json::Value = server.client().get(&key, "/v1/images").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    // Nothing of the upload is left besides the original.
    let store = server.store().await;
    let left = imagelake_core::store::list_all(store.as_ref(), "uploads/").await.unwrap();
    assert!(left.is_empty(), "tails left behind: {left:?}");
}

/// A body with the creation; a length given late; two writers at once.
async fn creation_with_upload_deferred_length_and_two_writers(backend: Backend) {
    let server = setup(backend, &[]).await;
    let key = server.keys.acme.clone();
    let http = reqwest::Client::new();
    // creation-with-upload: the whole image in the POST.
    let small = image_bytes(320, 240, image::ImageFormat::Png);
    let res = http
        .post(server.client().url("/v1/uploads"))
        .bearer_auth(&key)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", small.len().to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(small.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(offset_of(&res), small.len());
    let image = res.headers()["imagelake-image"].to_str().unwrap().trim_start_matches("/v1/images/").to_string();
    assert_eq!(server.client().wait_done(&key, &image, Duration::from_secs(60)).await["status"], "processed");

    // creation-defer-length: the length comes with the last PATCH.
    let body = big_image(6 * MIB);
    let res = http
        .post(server.client().url("/v1/uploads"))
        .bearer_auth(&key)
        .header("tus-resumable", "1.0.0")
        .header("upload-defer-length", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let url = server.client().url(res.headers()["location"].to_str().unwrap());
    let tus = Tus::new(&server, &key);
    assert_eq!(tus.head(&url).await.headers()["upload-defer-length"], "1");
    // Two writers at the same offset: one stores its chunk, the other learns the offset moved.
    let (a, b) = tokio::join!(tus.patch(&url, 0, &body[..4 * MIB], false), tus.patch(&url, 0, &body[..4 * MIB], false));
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [204, 409], "one writer wins, the other gets 409");
    assert_eq!(offset_of(&tus.head(&url).await), 4 * MIB);
    let res = http
        .patch(&url)
        .bearer_auth(&key)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", (4 * MIB).to_string())
        .header("upload-length", body.len().to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(body[4 * MIB..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT, "{}", res.text().await.unwrap());
    let id = res.headers()["imagelake-image"].to_str().unwrap().trim_start_matches("/v1/images/").to_string();
    assert_eq!(server.client().wait_done(&key, &id, Duration::from_secs(60)).await["status"], "processed");
    assert_eq!(original_sha(&server, &key, &id).await, sha256_hex(&body));
}

/// An upload left half-way expires: 410 at once, then the lifecycle removes its bytes,
/// aborts its multipart upload and records it in the lake.
async fn abandoned_upload_expires(backend: Backend) {
    let expiry = [("IMAGELAKE_INGEST__UPLOAD_EXPIRY", "3s")];
    let mut server = setup(backend, &expiry).await;
    let key = server.keys.acme.clone();
    let body = big_image(8 * MIB);
    let tus = Tus::new(&server, &key);
    let url = tus.create(body.len(), "").await;
    let res = tus.patch(&url, 0, &body[..6 * MIB], false).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let store = server.store().await;
    assert_eq!(imagelake_core::store::list_all(store.as_ref(), "uploads/").await.unwrap().len(), 1, "one tail");
    let id = url.rsplit('/').next().unwrap().to_string();
    let original = imagelake_core::record::original_key("acme", &id);
    let pending = store.list_multipart("").await.unwrap();
    assert!(pending.iter().any(|p| p.key == original), "one part in a multipart upload: {pending:?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let res = tus.patch(&url, 6 * MIB, &body[6 * MIB..], false).await;
    common::checks::problem(res, 410, "upload_expired").await;

    // The embedded queue takes one process at a time: the server stops for the job.
    server.terminate(Duration::from_secs(30));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imagelake"))
        .args(["lifecycle", "run", "abort-multipart", "--config"])
        .arg(&server.config_file)
        .env_remove("IMAGELAKE_CONFIG")
        .envs(server.env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("abandoned_uploads"), "{report}");
    server.restart().await;
    let tus = Tus::new(&server, &key);
    assert_eq!(tus.head(&url).await.status(), StatusCode::NOT_FOUND);
    assert!(imagelake_core::store::list_all(store.as_ref(), "uploads/").await.unwrap().is_empty());
    assert!(!store.list_multipart("").await.unwrap().iter().any(|p| p.key == original), "the multipart upload is aborted");
    assert!(store.head(&original).await.unwrap().is_none());
    let lake = common::lake::lake_dir(&server).await;
    let query = format!(
        "import duckdb,sys; print(duckdb.sql(\"SELECT count(*), sum(bytes) FROM read_parquet('{}/deletions/*/*.parquet', \
         hive_partitioning=true) WHERE kind='upload' AND reason='abandoned' AND image_id='{id}'\").fetchall())",
        lake.display()
    );
    let out = std::process::Command::new(common::lake::python()).args(["-c", &query]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.trim(), format!("[(1, {})]", 6 * MIB), "the lake records the abandoned upload");
}

on_every_backend!(resumes_after_kill9, creation_with_upload_deferred_length_and_two_writers, abandoned_upload_expires);

/// A page of a configured origin may drive tus from a browser: the preflight admits tus's
/// headers, and the answers let it read `Location`, `Upload-Offset` and the image's path.
/// Another origin gets no CORS headers, and neither does any origin by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_of_configured_origins_read_the_upload_headers() {
    let app = "https://app.example.com";
    let server = setup(Backend::Embedded, &[("IMAGELAKE_HTTP__CORS_ORIGINS", &format!("[\"{app}\"]"))]).await;
    let http = reqwest::Client::new();
    let preflight = |origin: &str| {
        http.request(reqwest::Method::OPTIONS, format!("{}/v1/uploads", server.url))
            .header("origin", origin)
            .header("access-control-request-method", "PATCH")
            .header("access-control-request-headers", "authorization,tus-resumable,upload-offset,upload-checksum,content-type")
    };
    let res = preflight(app).send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], app);
    let allowed = h["access-control-allow-headers"].to_str().unwrap().to_string();
    for name in ["authorization", "tus-resumable", "upload-offset", "upload-checksum", "upload-metadata", "upload-length"] {
        assert!(allowed.contains(name), "{name} is not allowed: {allowed}");
    }
    assert!(h["access-control-allow-methods"].to_str().unwrap().contains("PATCH"));
    assert!(!h.contains_key("access-control-allow-credentials"), "keys travel in Authorization, not cookies");

    // The upload itself, as the page's fetch sends it.
    let tus = Tus::new(&server, &server.keys.admin);
    let body = image_bytes(64, 48, image::ImageFormat::Png);
    let res = http
        .post(format!("{}/v1/uploads", server.url))
        .bearer_auth(&server.keys.admin)
        .header("origin", app)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", body.len().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["access-control-allow-origin"], app);
    let exposed = res.headers()["access-control-expose-headers"].to_str().unwrap().to_string();
    for name in ["location", "upload-offset", "upload-expires", "imagelake-image", "tus-resumable", "request-id"] {
        assert!(exposed.contains(name), "{name} is not exposed: {exposed}");
    }
    let url = format!("{}{}", server.url, res.headers()["location"].to_str().unwrap());
    let res = tus.patch(&url, 0, &body, true).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(res.headers().contains_key("imagelake-image"));

    // A refusal carries CORS too, so the page can read its problem+json.
    let res = http.post(format!("{}/v1/uploads", server.url)).header("origin", app).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["access-control-allow-origin"], app);

    // Another origin is not admitted.
    let res = preflight("https://evil.example").send().await.unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));

    // And nobody is, by default.
    let plain = Server::embedded().await;
    let res = http
        .request(reqwest::Method::OPTIONS, format!("{}/v1/uploads", plain.url))
        .header("origin", app)
        .header("access-control-request-method", "PATCH")
        .send()
        .await
        .unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));
}
