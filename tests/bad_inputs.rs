//! Every bad input gets a clear 4xx problem+json with a stable code, and leaves nothing
//! behind: no object, no record, no job, no pending multipart upload.

#[macro_use]
mod common;

use common::checks::{assert_nothing_stored, problem};
use common::{image_bytes, Backend, Server, Setup};
use image::ImageFormat;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn auth_and_roles(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    let img = image_bytes(20, 20, ImageFormat::Png);
    let res = c.http.post(c.url("/v1/images")).body(img.clone()).send().await.unwrap();
    problem(res, 401, "unauthorized").await;
    let res = c.upload("ilk_not_a_key", img.clone(), "image/png").await;
    problem(res, 401, "unauthorized").await;
    let res = c.http.post(c.url("/v1/images")).header("authorization", "Basic YTpi").body(img.clone()).send().await.unwrap();
    problem(res, 401, "unauthorized").await;
    let res = c.upload(&server.keys.analyst, img.clone(), "image/png").await;
    problem(res, 403, "forbidden").await;
    let res = c.get(&server.keys.acme, "/v1/images/not-an-id").send().await.unwrap();
    problem(res, 404, "not_found").await;
    let res = c.get(&server.keys.acme, "/v1/images/../../etc/passwd").send().await.unwrap();
    assert!(res.status().is_client_error());
    let res = c.get(&server.keys.acme, &format!("/v1/images/{}", imagelake_core::ids::new_id())).send().await.unwrap();
    problem(res, 404, "not_found").await;
    let res = c.get(&server.keys.acme, "/v1/nothing-here").send().await.unwrap();
    problem(res, 404, "not_found").await;
    let res = c.http.put(c.url("/v1/images")).bearer_auth(&server.keys.acme).send().await.unwrap();
    problem(res, 405, "method_not_allowed").await;
    assert_nothing_stored(&server, "ops").await;
}

async fn bodies_that_are_not_images(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    let key = &server.keys.acme;
    problem(c.upload(key, Vec::new(), "image/jpeg").await, 400, "empty_body").await;
    let p =
        problem(c.upload(key, b"hello, I am text pretending".to_vec(), "image/jpeg").await, 415, "unsupported_media_type").await;
    assert!(p["detail"].as_str().unwrap().contains("JPEG, PNG, WebP, GIF, TIFF, BMP, HEIC and AVIF"));
    problem(c.upload(key, b"GIF".to_vec(), "image/gif").await, 415, "unsupported_media_type").await;
    // An ISO BMFF file that is no HEIF (an MP4 video): its brands say so.
    let mut mp4 = vec![0, 0, 0, 0x18];
    mp4.extend_from_slice(b"ftypisom\0\0\x02\0isommp41");
    mp4.extend(vec![0u8; 100]);
    let p = problem(c.upload(key, mp4, "image/avif").await, 415, "unsupported_media_type").await;
    assert!(p["detail"].as_str().unwrap().contains("MP4"), "{p}");
    let form = reqwest::multipart::Form::new().text("other", "x");
    let res = c.http.post(c.url("/v1/images")).bearer_auth(key).multipart(form).send().await.unwrap();
    problem(res, 400, "missing_file").await;
    // A multipart body cut off before its closing boundary, and one with no boundary.
    let png = image_bytes(50, 50, ImageFormat::Png);
    let mut cut =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n".to_vec();
    cut.extend_from_slice(&png);
    let res = c
        .http
        .post(c.url("/v1/images"))
        .bearer_auth(key)
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(cut)
        .send()
        .await
        .unwrap();
    problem(res, 400, "invalid_multipart").await;
    let res = c
        .http
        .post(c.url("/v1/images"))
        .bearer_auth(key)
        .header("content-type", "multipart/form-data")
        .body(png.clone())
        .send()
        .await
        .unwrap();
    problem(res, 400, "invalid_multipart").await;
    assert_nothing_stored(&server, "acme").await;
}

async fn bad_parameters(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    let key = &server.keys.acme;
    let img = image_bytes(20, 20, ImageFormat::Png);
    let post = |q: &str| c.http.post(c.url(&format!("/v1/images{q}"))).bearer_auth(key).body(img.clone()).send();
    problem(post("?variants=thumb,gigantic").await.unwrap(), 400, "unknown_variant").await;
    problem(post("?callback_url=ftp://x").await.unwrap(), 400, "invalid_callback_url").await;
    // SSRF: the server never calls into its own network on a user's say-so.
    problem(post("?callback_url=http://127.0.0.1:9/hook").await.unwrap(), 400, "callback_url_refused").await;
    problem(post("?callback_url=http://localhost/hook").await.unwrap(), 400, "callback_url_refused").await;
    problem(post("?callback_url=http://169.254.169.254/latest/meta-data").await.unwrap(), 400, "callback_url_refused").await;
    let res =
        c.http.post(c.url("/v1/images")).bearer_auth(key).header("idempotency-key", "").body(img.clone()).send().await.unwrap();
    problem(res, 400, "invalid_idempotency_key").await;
    problem(c.get(key, "/v1/images?limit=0").send().await.unwrap(), 400, "invalid_limit").await;
    problem(c.get(key, "/v1/images?limit=abc").send().await.unwrap(), 400, "bad_request").await;
    problem(c.get(key, "/v1/images?cursor=zzz").send().await.unwrap(), 400, "invalid_cursor").await;
    problem(c.get(key, "/v1/images?customer=globex").send().await.unwrap(), 403, "forbidden").await;
    assert_nothing_stored(&server, "acme").await;
}

async fn oversized_bodies(backend: Backend) {
    let server = Setup::new(backend)
        .toml("[ingest]\nmax_upload_bytes = \"12MiB\"")
        .env("IMAGELAKE_STORAGE__MULTIPART_THRESHOLD", "5MiB")
        .env("IMAGELAKE_STORAGE__PART_SIZE", "5MiB")
        .start()
        .await;
    let c = server.client();
    let key = &server.keys.acme;
    // Declared too large: refused before a byte is read.
    let res = c
        .http
        .post(c.url("/v1/images"))
        .bearer_auth(key)
        .header("content-length", (13u64 << 20).to_string())
        .body(reqwest::Body::from(vec![0u8; 10]))
        .send()
        .await;
    if let Ok(res) = res {
        problem(res, 413, "payload_too_large").await;
    }
    // Chunked, with no length: cut off when it crosses the limit, multipart aborted.
    let mut head = image_bytes(64, 64, ImageFormat::Jpeg);
    head.truncate(200);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        std::iter::once(Ok(head)).chain((0..20).map(|_| Ok(vec![7u8; 1 << 20]))).collect();
    let res = c
        .http
        .post(c.url("/v1/images"))
        .bearer_auth(key)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    // The server answers 413 and closes while the client is still sending. Whether the
    // client reads that answer or first sees its own write fail (broken pipe, reset)
    // is a race of the two sockets (HTTP's early-response problem), not the server's
    // choice: both are accepted, and either way nothing may be stored.
    match res {
        Ok(res) => {
            problem(res, 413, "payload_too_large").await;
        }
        Err(e) => assert!(e.is_request() || e.is_body(), "not a refused body: {e:?}"),
    }
    assert_nothing_stored(&server, "acme").await;
    let res = c.upload(key, image_bytes(32, 32, ImageFormat::Png), "image/png").await;
    assert_eq!(res.status(), 202, "the server keeps serving");
}

async fn truncated_body(backend: Backend) {
    let server = Setup::new(backend)
        .env("IMAGELAKE_STORAGE__MULTIPART_THRESHOLD", "5MiB")
        .env("IMAGELAKE_STORAGE__PART_SIZE", "5MiB")
        .start()
        .await;
    let addr = server.url.trim_start_matches("http://").to_string();
    for sent in [4_000usize, 11 << 20] {
        // Promise 20 MiB, send part of it, hang up.
        let mut body = image_bytes(64, 64, ImageFormat::Jpeg);
        body.resize(sent, 9);
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /v1/images HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            server.keys.acme,
            20u64 << 20
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(s);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_nothing_stored(&server, "acme").await;
    // And the queue got no job: a fresh upload is the only thing processed.
    let c = server.client();
    let page: serde_json::Value = c.get(&server.keys.acme, "/v1/images").send().await.unwrap().json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    raw.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    raw.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "server still healthy: {out}");
}

/// Bytes that pass the upload's sniffing but not the processor: each ends as a `failed`
/// record with a stable code, and the server goes on processing good images.
async fn images_the_processor_refuses(backend: Backend) {
    // JPEG's largest, 65535 x 65535, is under the default `max_pixels` (2^32): a lower
    // limit, for the header ingest cannot see.
    let server = Setup::new(backend).env("IMAGELAKE_PROCESSOR__MAX_PIXELS", "1000000000").start().await;
    let c = server.client();
    let key = &server.keys.acme;
    let mut truncated = image_bytes(800, 600, ImageFormat::Jpeg);
    truncated.truncate(truncated.len() / 2);
    let cases = [
        (truncated, "image/jpeg", "decode_failed"),
        // Its size is read past the first 256 KiB, which ingest inspects: the processor
        // refuses it from the whole file's header.
        (jpeg_claiming_late(60_000, 60_000), "image/jpeg", "image_too_large"),
        // A wrong Content-Type: the bytes decide, this GIF is processed as a GIF.
        (image_bytes(90, 60, ImageFormat::Gif), "image/jpeg", "processed"),
        // HEIF brands and nothing behind them: libheif refuses it.
        ([&b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"[..], &[0u8; 200][..]].concat(), "image/heic", "decode_failed"),
        ([&b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf"[..], &[0xAB; 200][..]].concat(), "image/avif", "decode_failed"),
    ];
    for (body, content_type, outcome) in cases {
        let res = c.upload(key, body, content_type).await;
        assert_eq!(res.status(), 202, "{outcome}");
        let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let done = c.wait_done(key, &id, Duration::from_secs(60)).await;
        if outcome == "processed" {
            assert_eq!((done["status"].as_str(), done["format"].as_str()), (Some("processed"), Some("gif")), "{done}");
        } else {
            assert_eq!(done["status"], "failed", "{done}");
            assert_eq!(done["error"]["code"], outcome, "{done}");
            assert!(done["variants"].as_array().is_none_or(|v| v.is_empty()), "{done}");
        }
    }
    let store = server.store().await;
    assert!(store.list("processed/acme/", None, 100).await.unwrap().objects.len() == 4, "only the GIF's 4 variants");
}

/// A render whose estimated memory is over the whole `[processor] memory_budget` fails at
/// once with `decode_limit`, on its first attempt: it never waits forever, never meets
/// the OOM killer, and is not redelivered.
async fn renders_over_the_memory_budget_fail_at_once(backend: Backend) {
    let server = Setup::new(backend).env("IMAGELAKE_PROCESSOR__MEMORY_BUDGET", "20MiB").start().await;
    let c = server.client();
    let key = &server.keys.acme;
    let res = c.upload(key, image_bytes(3000, 2000, ImageFormat::Jpeg), "image/jpeg").await;
    assert_eq!(res.status(), 202);
    let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let done = c.wait_done(key, &id, Duration::from_secs(60)).await;
    assert_eq!((done["status"].as_str(), done["error"]["code"].as_str()), (Some("failed"), Some("decode_limit")), "{done}");
    assert!(done["error"]["message"].as_str().unwrap().contains("memory budget"), "{done}");
    assert_eq!(done["attempts"], 1, "{done}");
}

/// Over `[processor] max_pixels`, declared in the header: refused at upload with 422,
/// whichever way it comes (a plain body, a multipart form, the last PATCH of a tus upload),
/// and nothing is stored. At the limit exactly, an image is taken.
async fn images_over_max_pixels_are_refused_before_they_are_stored(backend: Backend) {
    let server = Setup::new(backend).env("IMAGELAKE_PROCESSOR__MAX_PIXELS", "10000").start().await;
    let c = server.client();
    let key = &server.keys.acme;
    let big = image_bytes(101, 100, ImageFormat::Png);
    let p = problem(c.upload(key, big.clone(), "image/png").await, 422, "image_too_large").await;
    assert!(p["detail"].as_str().unwrap().contains("101x100"), "{p}");
    problem(c.upload(key, png_claiming(100_000, 100_000), "image/png").await, 422, "image_too_large").await;
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(image_bytes(100, 101, ImageFormat::Jpeg)).file_name("big.jpg"));
    let res = c.http.post(c.url("/v1/images")).bearer_auth(key).multipart(form).send().await.unwrap();
    problem(res, 422, "image_too_large").await;
    // tus: the upload is refused when it is whole, and removed.
    let tus = |r: reqwest::RequestBuilder| r.bearer_auth(key).header("tus-resumable", "1.0.0");
    let res = tus(c.http.post(c.url("/v1/uploads"))).header("upload-length", big.len().to_string()).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let url = c.url(res.headers()["location"].to_str().unwrap());
    let res = tus(c.http.patch(&url))
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(big)
        .send()
        .await
        .unwrap();
    problem(res, 422, "image_too_large").await;
    assert_eq!(tus(c.http.head(&url)).send().await.unwrap().status(), 404, "the refused upload is removed");
    assert_nothing_stored(&server, "acme").await;
    // At the limit: taken and processed.
    let res = c.upload(key, image_bytes(100, 100, ImageFormat::Png), "image/png").await;
    assert_eq!(res.status(), 202);
    let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(c.wait_done(key, &id, Duration::from_secs(60)).await["status"], "processed");
}

/// A baseline JPEG whose SOF0 claims `w` x `h`, after 320 KiB of APP15 padding: its size
/// is not within the first 256 KiB.
fn jpeg_claiming_late(w: u16, h: u16) -> Vec<u8> {
    let jpeg = image_bytes(64, 64, ImageFormat::Jpeg);
    let sof = jpeg.windows(2).position(|m| m == [0xFF, 0xC0]).expect("a baseline JPEG has SOF0");
    let mut patched = jpeg.clone();
    patched[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    patched[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    let mut out = patched[..2].to_vec();
    for _ in 0..5 {
        out.extend_from_slice(&[0xFF, 0xEF, 0xFF, 0xFF]);
        out.extend(std::iter::repeat_n(0u8, 0xFFFF - 2));
    }
    out.extend_from_slice(&patched[2..]);
    out
}

/// A PNG whose header claims `w` x `h` pixels, with one tiny IDAT: a decompression bomb's
/// shape, refused from the header before anything is allocated.
/// An analyst key reads its own customer's statistics only; one made for every customer
/// (and an admin) reads all. Another customer's, asked for by name, is 403.
async fn analyst_keys_are_scoped_to_their_customer(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    for (key, ct) in [(&server.keys.acme, "image/png"), (&server.keys.globex, "image/png")] {
        let res = c.upload(key, image_bytes(64, 48, ImageFormat::Png), ct).await;
        assert_eq!(res.status(), 202);
        let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        c.wait_done(key, &id, Duration::from_secs(60)).await;
    }
    let customers = |key: String| {
        let c = c.clone();
        async move {
            let start = std::time::Instant::now();
            loop {
                let rows: serde_json::Value = c.get(&key, "/v1/stats/customers").send().await.unwrap().json().await.unwrap();
                let mut names: Vec<String> =
                    rows.as_array().unwrap().iter().map(|r| r["customer_id"].as_str().unwrap().to_string()).collect();
                names.sort();
                if names.len() >= 2 || start.elapsed() > Duration::from_secs(60) {
                    return names;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    assert_eq!(customers(server.keys.analyst.clone()).await, ["acme", "globex"], "an analyst of every customer");
    assert_eq!(customers(server.keys.admin.clone()).await, ["acme", "globex"], "an admin");
    let scoped: serde_json::Value =
        c.get(&server.keys.acme_analyst, "/v1/stats/customers").send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = scoped.as_array().unwrap().iter().map(|r| r["customer_id"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme"], "a scoped analyst sees its own customer only: {scoped}");
    let own = c.get(&server.keys.acme_analyst, "/v1/stats/summary?customer=acme").send().await.unwrap();
    assert_eq!(own.status(), 200);
    for path in
        ["/v1/stats/summary?customer=globex", "/v1/stats/customers?customer=globex", "/v1/stats/engagement?customer=globex"]
    {
        problem(c.get(&server.keys.acme_analyst, path).send().await.unwrap(), 403, "forbidden").await;
    }
}

/// A flood of `/readyz` and `/metrics` (neither needs a key) while a client uploads: each
/// check is shared for a second, so the flood costs a few checks, and the client's upload
/// and reads answer as usual.
async fn readiness_and_metrics_floods_do_not_stall_clients(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    let flood: Vec<_> = (0..32)
        .map(|i| {
            let (http, url) = (c.http.clone(), c.url(if i % 4 == 0 { "/metrics" } else { "/readyz" }));
            tokio::spawn(async move {
                let mut ok = 0;
                for _ in 0..100 {
                    if http.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let key = &server.keys.acme;
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let res = c.upload(key, image_bytes(64, 48, ImageFormat::Png), "image/png").await;
        assert_eq!(res.status(), 202);
        let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        assert_eq!(c.get(key, &format!("/v1/images/{id}")).send().await.unwrap().status(), 200);
        worst = worst.max(t.elapsed());
    }
    let mut answered = 0;
    for f in flood {
        answered += f.await.unwrap();
    }
    assert_eq!(answered, 3200, "every flood request is answered 200");
    assert!(worst < Duration::from_secs(2), "an upload and a read took {worst:?} during the flood");
    let checks = server.log().matches("readyz-probe").count();
    assert_eq!(checks, 0, "the probe is not an error in the log");
}

/// A client's `Request-Id` is echoed and carried into the job when it is a short plain
/// token; anything else (250 KB, which would not fit in a queue message, or control
/// characters) is replaced by a generated id, and the upload goes through.
async fn request_ids_are_kept_only_when_usable(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    let key = &server.keys.acme;
    let send = |rid: String| {
        c.http
            .post(c.url("/v1/images"))
            .bearer_auth(key)
            .header("content-type", "image/png")
            .header("request-id", rid)
            .body(image_bytes(64, 48, ImageFormat::Png))
            .send()
    };
    let res = send("trace-1234:abc".into()).await.unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["request-id"], "trace-1234:abc");
    for bad in ["x".repeat(250_000), "x".repeat(129), "has space".into(), "tab\there".into()] {
        let res = send(bad.clone()).await.unwrap();
        assert_eq!(res.status(), 202, "request id of {} bytes", bad.len());
        let rid = res.headers()["request-id"].to_str().unwrap().to_string();
        assert!(uuid::Uuid::try_parse(&rid).is_ok(), "a generated id replaces it: {rid}");
        let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let done = c.wait_done(key, &id, Duration::from_secs(60)).await;
        assert_eq!(done["status"], "processed", "{done}");
    }
    assert!(!server.log().contains(&"x".repeat(129)), "the long id reached the log");
}

fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]);
    chunk(&mut out, b"IEND", &[]);
    out
}

on_every_backend!(
    analyst_keys_are_scoped_to_their_customer,
    readiness_and_metrics_floods_do_not_stall_clients,
    request_ids_are_kept_only_when_usable,
    auth_and_roles,
    bodies_that_are_not_images,
    bad_parameters,
    oversized_bodies,
    truncated_body,
    images_the_processor_refuses,
    renders_over_the_memory_budget_fail_at_once,
    images_over_max_pixels_are_refused_before_they_are_stored
);
