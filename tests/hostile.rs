//! Hostile clients: each test sends what a hostile or broken client sends, checks that the
//! server answers the documented 4xx (or closes the connection), and that meanwhile a
//! normal client is served at normal speed, with the server's memory flat.

#[macro_use]
mod common;

use common::checks::{assert_nothing_stored, problem};
use common::{image_bytes, Backend, Server, Setup};
use image::ImageFormat;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server's resident memory, in MB.
fn rss_mb(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let kb: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB").trim().parse().unwrap();
    kb / 1024
}

/// A normal upload and read, timed.
async fn normal_client(server: &Server) -> Duration {
    let c = server.client();
    let start = Instant::now();
    let res = c.upload(&server.keys.globex, image_bytes(64, 48, ImageFormat::Png), "image/png").await;
    assert_eq!(res.status(), 202, "a normal upload during the hostile load");
    let res = c.get(&server.keys.globex, "/v1/images?limit=5").send().await.unwrap();
    assert_eq!(res.status(), 200);
    start.elapsed()
}

/// Opens a raw connection and sends `head` (a request head, perhaps unfinished).
async fn raw(server: &Server, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(server.url.trim_start_matches("http://")).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// Reads what the server sends until it closes the connection (or `within` passes).
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(end.into(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// `POST /v1/images` with `body` as `content_type`, as acme.
async fn post(server: &Server, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::Result<reqwest::Response> {
    let c = server.client();
    c.http.post(c.url("/v1/images")).bearer_auth(&server.keys.acme).header("content-type", content_type).body(body).send().await
}

/// A body of `first`, then `n` chunks of `fill`, streamed.
fn streamed(first: &[u8], n: usize, fill: Vec<u8>) -> reqwest::Body {
    let first = bytes::Bytes::copy_from_slice(first);
    let rest = std::iter::repeat_n(bytes::Bytes::from(fill), n);
    reqwest::Body::wrap_stream(futures::stream::iter(std::iter::once(first).chain(rest).map(Ok::<_, std::io::Error>)))
}

fn upload_head(key: &str, content_type: &str, length: u64) -> String {
    format!(
        "POST /v1/images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Multipart bodies that would make a parser buffer without end: 300 MB with no boundary,
/// and a part whose headers never end. Each is refused within the first 64 KiB, while the
/// client is still sending, and the server's memory does not grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_without_framing_is_cut_early() {
    let server = Server::embedded().await;
    let before = rss_mb(&server);
    let bodies: [(&str, &[u8]); 2] =
        [("no boundary", b"junk"), ("endless headers", b"--XB\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Pad: ")];
    for (what, start) in bodies {
        let sent = Instant::now();
        let res = post(&server, "multipart/form-data; boundary=XB", streamed(start, 300, vec![b'a'; 1 << 20])).await;
        match res {
            Ok(res) => {
                let p = problem(res, 400, "invalid_multipart").await;
                println!("{what}: {} in {:?}", p["detail"], sent.elapsed());
            }
            // The server answered and closed while the client was still sending.
            Err(e) => println!("{what}: connection closed by the server after {:?} ({e})", sent.elapsed()),
        }
        assert!(sent.elapsed() < Duration::from_secs(10), "{what}: the refusal took {:?}", sent.elapsed());
        assert!(normal_client(&server).await < Duration::from_secs(2));
    }
    let after = rss_mb(&server);
    assert!(after < before + 64, "{before} MB before, {after} MB after the framing-less bodies");
    // More parts than a form has: refused, not buffered.
    let mut form = String::new();
    for i in 0..40 {
        form.push_str(&format!("--XB\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv\r\n"));
    }
    form.push_str("--XB--\r\n");
    let res = post(&server, "multipart/form-data; boundary=XB", form).await.unwrap();
    problem(res, 400, "too_many_fields").await;
    assert_nothing_stored(&server, "acme").await;
}

/// The whole multipart stream is bounded by the upload limit plus 1 MiB for its fields:
/// a form whose file is within the limit but which pads past it with a field the parser
/// would skip is refused as too large.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_multipart_stream_is_bounded() {
    let server = Setup::new(Backend::Embedded).toml("[ingest]\nmax_upload_bytes = \"1MiB\"").start().await;
    let img = image_bytes(40, 40, ImageFormat::Png);
    let mut body = b"--XB\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n".to_vec();
    body.extend_from_slice(&img);
    // A second `file` part is not the upload; it would be read as a text field, but the
    // stream is cut first.
    body.extend_from_slice(b"\r\n--XB\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n");
    body.extend(std::iter::repeat_n(b'x', 3 << 20));
    body.extend_from_slice(b"\r\n--XB--\r\n");
    match post(&server, "multipart/form-data; boundary=XB", body).await {
        Ok(res) => assert!([400, 413].contains(&res.status().as_u16()), "{}", res.status()),
        Err(e) => println!("closed while sending: {e}"),
    }
    assert_nothing_stored(&server, "acme").await;
}

/// A connection that never finishes its request head is closed after `header_timeout`;
/// 200 of them do not slow a normal client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_request_heads_are_closed() {
    let server = Setup::new(Backend::Embedded).toml("[http]\nheader_timeout = \"1s\"").start().await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(raw(&server, "POST /v1/images HTTP/1.1\r\nHost: x\r\nX-Slow: ").await);
    }
    assert!(normal_client(&server).await < Duration::from_secs(2));
    for s in &mut idle {
        let closed = read_until_closed(s, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "a connection with half a request head was still open after 5 s");
    }
}

/// An upload whose body stops arriving is aborted after `body_idle_timeout` with `408
/// body_timeout`, and leaves nothing behind (no object, no pending multipart upload).
async fn stalled_bodies_time_out(backend: Backend) {
    let server = Setup::new(backend).toml("[ingest]\nbody_idle_timeout = \"2s\"").start().await;
    let img = image_bytes(400, 300, ImageFormat::Png);
    // Part of a real image, then silence; raw and multipart.
    let mut raw_upload = raw(&server, &upload_head(&server.keys.acme, "image/png", 50 << 20)).await;
    raw_upload.write_all(&img[..img.len() / 2]).await.unwrap();
    let mut form = raw(&server, &upload_head(&server.keys.acme, "multipart/form-data; boundary=XB", 50 << 20)).await;
    form.write_all(b"--XB\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n").await.unwrap();
    form.write_all(&img[..img.len() / 2]).await.unwrap();
    assert!(normal_client(&server).await < Duration::from_secs(2));
    for s in [&mut raw_upload, &mut form] {
        let answer = read_until_closed(s, Duration::from_secs(10)).await.expect("the stalled upload was not ended");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("body_timeout"), "{answer}");
    }
    assert_nothing_stored(&server, "acme").await;
}

/// Uploads streaming at once are limited per key (429) and in all (503), with
/// `Retry-After`; a slot is given back when its upload ends, however it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_are_limited() {
    let server = Setup::new(Backend::Embedded)
        .toml("[ingest]\nmax_uploads_per_key = 2\nmax_concurrent_uploads = 3\nbody_idle_timeout = \"2s\"")
        .start()
        .await;
    let c = server.client();
    let img = image_bytes(40, 40, ImageFormat::Png);
    let mut stalled = Vec::new();
    for key in [&server.keys.acme, &server.keys.acme, &server.keys.globex] {
        let mut s = raw(&server, &upload_head(key, "image/png", 1 << 20)).await;
        s.write_all(&img[..100]).await.unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = c.upload(&server.keys.acme, img.clone(), "image/png").await;
    assert!(res.headers().contains_key("retry-after"));
    problem(res, 429, "too_many_uploads").await;
    let res = c.upload(&server.keys.globex, img.clone(), "image/png").await;
    assert!(res.headers().contains_key("retry-after"));
    problem(res, 503, "busy").await;
    // Reads are not uploads: still served.
    assert_eq!(c.get(&server.keys.acme, "/v1/images").send().await.unwrap().status(), 200);
    // The stalled uploads time out and give their slots back.
    for s in &mut stalled {
        read_until_closed(s, Duration::from_secs(10)).await.expect("stalled upload ended");
    }
    assert_eq!(c.upload(&server.keys.acme, img.clone(), "image/png").await.status(), 202);
    assert_eq!(c.upload(&server.keys.globex, img, "image/png").await.status(), 202);
}

/// Requests per key per second are limited (429 `rate_limited`, `Retry-After`); another
/// key is not affected, and the probes never are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_rate_limited_per_key() {
    let server = Setup::new(Backend::Embedded).toml("[http]\nrate_limit = 5\nrate_burst = 10").start().await;
    let c = server.client();
    let mut limited = None;
    let mut ok = 0;
    for _ in 0..40 {
        let res = c.get(&server.keys.acme, "/v1/images").send().await.unwrap();
        match res.status().as_u16() {
            200 => ok += 1,
            429 => limited = Some(res),
            s => panic!("unexpected {s}"),
        }
    }
    assert!((10..20).contains(&ok), "{ok} of 40 quick requests passed a burst of 10 at 5/s");
    let res = limited.expect("some requests were limited");
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    problem(res, 429, "rate_limited").await;
    assert_eq!(c.get(&server.keys.globex, "/v1/images").send().await.unwrap().status(), 200);
    for _ in 0..50 {
        assert_eq!(c.http.get(c.url("/readyz")).send().await.unwrap().status(), 200);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(c.get(&server.keys.acme, "/v1/images").send().await.unwrap().status(), 200, "the key recovers");
    let metrics = c.http.get(c.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("imagelake_refused_total{limit=\"rate_limited\"}"), "{metrics}");
}

/// `metrics_listen` serves `/metrics` on its own port, and the public one no longer does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_have_their_own_listener() {
    let server = Setup::new(Backend::Embedded).env("IMAGELAKE_METRICS_LISTEN", "127.0.0.1:0").start().await;
    let c = server.client();
    let line = server.stdout_lines.lock().unwrap().iter().find_map(|l| l.trim().strip_prefix("metrics: ").map(str::to_string));
    let metrics_url = line.expect("the metrics listener's address is printed");
    let res = c.http.get(&metrics_url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("imagelake_http_requests_total"));
    problem(c.http.get(c.url("/metrics")).send().await.unwrap(), 404, "not_found").await;
    assert_eq!(c.http.get(c.url("/readyz")).send().await.unwrap().status(), 200);
}

/// A body refused at its first bytes (not an image) while the client is still writing
/// it: the server reads on and throws away the rest (a "lingering close", bounded), so a
/// client that writes the whole body before it reads gets the 415, not a broken pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_body_still_gets_its_answer() {
    let server = Server::embedded().await;
    for i in 0..10 {
        let res = post(&server, "application/pdf", streamed(b"%PDF-1.7", 64, vec![b'%'; 128 << 10]))
            .await
            .unwrap_or_else(|e| panic!("request {i}: the client saw {e} instead of the 415"));
        problem(res, 415, "unsupported_media_type").await;
    }
    assert_nothing_stored(&server, "acme").await;
}

on_every_backend!(stalled_bodies_time_out);
