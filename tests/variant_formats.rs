//! A preset in several formats (issue 16), through the real binary on the embedded default:
//! the record has an entry per format; `GET .../variants/{name}` picks the format by the
//! request's `Accept` (q-values, wildcards, exclusions, the preset's order of preference
//! for ties; `406` when none fits) and always answers `Vary: Accept`; `.../{name}.{ext}`
//! asks for one format; each format is its own object with its own ETag; and expiry
//! removes every format's object, answers `410` for each, and writes one `deletions` fact
//! per object.

mod common;

use common::{image_bytes, Client, Server, Setup};
use image::ImageFormat;
use imagelake_core::record;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every second an expire sweep; variants live 20 s, long enough for the downloads below.
const SETUP: &str = r#"
[retention]
processed = "20s"

[lifecycle]
expire = "*/1 * * * * *"

[processor]
variants = [
  { name = "modern", width = 200, height = 150, formats = ["webp", "jpeg", "png"], quality = 70 },
]
"#;

/// The formats of `modern`: (record format, extension, media type, image crate format).
const FORMATS: [(&str, &str, &str, ImageFormat); 3] = [
    ("webp", "webp", "image/webp", ImageFormat::WebP),
    ("jpeg", "jpg", "image/jpeg", ImageFormat::Jpeg),
    ("png", "png", "image/png", ImageFormat::Png),
];

fn media_type(format: &str) -> &'static str {
    FORMATS.iter().find(|f| f.0 == format).map(|f| f.2).unwrap()
}

async fn get(c: &Client, key: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = c.get(key, path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

fn varies_on_accept(res: &reqwest::Response) -> bool {
    res.headers().get_all("vary").iter().any(|v| v.to_str().unwrap().split(',').any(|t| t.trim().eq_ignore_ascii_case("accept")))
}

/// A request with no `Accept` field at all (reqwest always sends one): status and headers.
async fn without_accept(server: &Server, key: &str, path: &str) -> (u16, String) {
    let authority = server.url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let mut s = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    let head = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_in_three_formats_is_negotiated_downloaded_and_expired() {
    let server = Setup::new(common::Backend::Embedded).toml(SETUP).start().await;
    let c = server.client();
    let key = &server.keys.acme;
    let res = c.upload(key, image_bytes(400, 300, ImageFormat::Png), "image/png").await;
    assert_eq!(res.status(), 202);
    let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let rec = c.wait_done(key, &id, Duration::from_secs(60)).await;
    assert_eq!(rec["status"], "processed", "{rec}");

    // One entry per format, in the preset's order of preference, each with its own URL.
    let entries = rec["variants"].as_array().unwrap();
    let listed: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["format"].as_str().unwrap(), v["url"].as_str().unwrap()))
        .collect();
    let base = format!("/v1/images/{id}/variants");
    assert_eq!(
        listed,
        [
            ("modern", "webp", format!("{base}/modern.webp").as_str()),
            ("modern", "jpeg", format!("{base}/modern.jpg").as_str()),
            ("modern", "png", format!("{base}/modern.png").as_str()),
        ],
        "{rec}"
    );
    for v in entries {
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64(), v["state"].as_str()),
            (Some(200), Some(150), Some("ready")),
            "{v}"
        );
        assert_eq!(v["expires_at"], entries[0]["expires_at"], "made together, expire together");
    }
    let negotiated = record::variant_url(&id, "modern");

    // Each format by its explicit URL, whatever Accept says: its bytes and its ETag.
    let mut bodies = Vec::new();
    let mut etags = Vec::new();
    for (i, (format, ext, mime, kind)) in FORMATS.iter().enumerate() {
        let res = get(&c, key, &record::variant_format_url(&id, "modern", ext), &[("accept", "image/gif")]).await;
        assert_eq!(res.status(), 200, "{ext}");
        assert_eq!(header(&res, "content-type"), *mime);
        let etag = header(&res, "etag");
        let body = res.bytes().await.unwrap().to_vec();
        assert_eq!(body.len() as u64, entries[i]["bytes"].as_u64().unwrap(), "{format}");
        assert_eq!(image::guess_format(&body).unwrap(), *kind, "{format}");
        let img = image::load_from_memory(&body).unwrap();
        assert_eq!((img.width(), img.height()), (200, 150), "{format}");
        bodies.push(body);
        etags.push(etag);
    }
    assert!(etags[0] != etags[1] && etags[1] != etags[2] && etags[0] != etags[2], "{etags:?}");
    let jpeg = get(&c, key, &record::variant_format_url(&id, "modern", "jpeg"), &[]).await;
    assert_eq!((jpeg.status().as_u16(), header(&jpeg, "etag")), (200, etags[1].clone()), "`.jpeg` is `.jpg`");
    for (path, why) in [
        (record::variant_format_url(&id, "modern", "avif"), "a format the preset does not make"),
        (record::variant_format_url(&id, "modern", "gif"), "not a format"),
        (record::variant_format_url(&id, "modern", "PNG"), "extensions are lower case"),
        (record::variant_format_url(&id, "nosuch", "png"), "no such variant"),
        (format!("{base}/modern.png.png"), "a name has no dot"),
    ] {
        let res = get(&c, key, &path, &[]).await;
        assert_eq!(res.status(), 404, "{why}: {path}");
        assert_eq!(res.json::<serde_json::Value>().await.unwrap()["code"], "variant_not_found", "{why}");
    }

    // The command-line client: the preset's preferred format by default, one by --format.
    let (home, dl) = (imagelake_core::testing::temp_dir("formats-home"), imagelake_core::testing::temp_dir("formats-dl"));
    for (args, file, body) in [
        (&["--variant", "modern"][..], format!("{id}-modern.webp"), Some(&bodies[0])),
        (&["--variant", "modern", "--format", "png"][..], format!("{id}-modern.png"), Some(&bodies[2])),
        (&["--variant", "modern", "--format", "avif"][..], String::new(), None),
    ] {
        let r = common::cli::cli(&server, key, &home, &dl, &[&["download", id.as_str()][..], args].concat()).await;
        match body {
            Some(body) => {
                assert!(r.ok, "{args:?}: {r:?}");
                assert_eq!(r.stdout.trim(), file, "{r:?}");
                assert_eq!(&std::fs::read(dl.join(&file)).unwrap(), body, "{args:?}");
            }
            None => assert!(!r.ok && r.stderr.contains("variant_not_found"), "{args:?}: {r:?}"),
        }
    }

    // Negotiated: the format Accept weighs highest, the preset's order for ties.
    let (status, head) = without_accept(&server, key, &negotiated).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: image/webp") && head.contains("vary: accept"), "no Accept: the first format\n{head}");
    for (accept, format) in [
        ("*/*", "webp"),
        ("image/*", "webp"),
        ("image/png", "png"),
        ("IMAGE/PNG", "png"),
        ("image/png, image/jpeg", "jpeg"),
        ("image/png;q=0.9, image/jpeg;q=0.5, image/webp;q=0.1", "png"),
        ("image/webp;q=0.8, image/jpeg;q=0.8, image/png;q=0.7", "webp"),
        ("image/*;q=0.5, image/webp;q=0", "jpeg"),
        ("image/webp;q=0, */*;q=0.1", "jpeg"),
        ("image/webp;q=0, image/jpeg;q=0, image/*", "png"),
        ("text/html, image/png;q=0.8, */*;q=0.1", "png"),
        ("image/avif, image/png;q=0.3, garbage, image/jpeg;q=2", "png"),
        ("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", "webp"),
    ] {
        let res = get(&c, key, &negotiated, &[("accept", accept)]).await;
        assert_eq!(res.status(), 200, "{accept}");
        assert!(varies_on_accept(&res), "{accept}: {:?}", res.headers());
        assert_eq!(header(&res, "content-type"), media_type(format), "{accept}");
        let i = FORMATS.iter().position(|f| f.0 == format).unwrap();
        assert_eq!(header(&res, "etag"), etags[i], "{accept}");
        assert_eq!(res.bytes().await.unwrap().to_vec(), bodies[i], "{accept}");
    }
    for accept in ["image/gif", "image/webp;q=0, image/jpeg;q=0, image/png;q=0", "*/*;q=0", "application/json"] {
        let res = get(&c, key, &negotiated, &[("accept", accept)]).await;
        assert_eq!(res.status(), 406, "{accept}");
        assert!(varies_on_accept(&res), "{accept}");
        assert_eq!(header(&res, "content-type"), "application/problem+json");
        let p: serde_json::Value = res.json().await.unwrap();
        assert_eq!(p["code"], "not_acceptable", "{p}");
        assert!(p["detail"].as_str().unwrap().contains("image/webp, image/jpeg, image/png"), "the stored types: {p}");
    }
    let res = get(&c, key, &format!("{base}/nosuch"), &[]).await;
    assert_eq!((res.status().as_u16(), varies_on_accept(&res)), (404, true));
    let res = get(&c, key, &record::variant_url("0190a5a2-0000-7000-8000-000000000001", "modern"), &[]).await;
    assert_eq!((res.status().as_u16(), varies_on_accept(&res)), (404, true));

    // Validators and ranges, per format object.
    for (i, (format, ext, mime, _)) in FORMATS.iter().enumerate() {
        let res = get(&c, key, &negotiated, &[("accept", *mime), ("if-none-match", etags[i].as_str())]).await;
        assert_eq!(res.status(), 304, "{format}");
        assert!(varies_on_accept(&res), "{format}");
        assert_eq!(header(&res, "etag"), etags[i]);
        let res = get(&c, key, &record::variant_format_url(&id, "modern", ext), &[("if-none-match", etags[i].as_str())]).await;
        assert_eq!(res.status(), 304, "{format}");
        // The ETag of another format: that format's bytes are not what the client has.
        let other = FORMATS[(i + 1) % 3].2;
        let res = get(&c, key, &negotiated, &[("accept", other), ("if-none-match", etags[i].as_str())]).await;
        assert_eq!((res.status().as_u16(), header(&res, "content-type")), (200, other.to_string()), "{format}");
        let res = get(&c, key, &negotiated, &[("accept", *mime), ("range", "bytes=0-9")]).await;
        assert_eq!(res.status(), 206, "{format}");
        assert!(varies_on_accept(&res), "{format}");
        assert_eq!(header(&res, "content-range"), format!("bytes 0-9/{}", bodies[i].len()));
        assert_eq!(res.bytes().await.unwrap().to_vec(), bodies[i][..10].to_vec());
    }

    // Expiry: every format's object goes, each answers 410, negotiated or not.
    let store = server.store().await;
    let keys: Vec<String> = FORMATS.iter().map(|f| record::variant_key("acme", &id, "modern", f.1)).collect();
    let start = Instant::now();
    loop {
        let mut left = Vec::new();
        for k in &keys {
            if store.head(k).await.unwrap().is_some() {
                left.push(k.clone());
            }
        }
        if left.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "not expired: {left:?}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rec: serde_json::Value = get(&c, key, &format!("/v1/images/{id}"), &[]).await.json().await.unwrap();
    assert!(rec["variants"].as_array().unwrap().iter().all(|v| v["state"] == "expired"), "{rec}");
    for accept in ["*/*", "image/png", "image/gif"] {
        let res = get(&c, key, &negotiated, &[("accept", accept)]).await;
        assert_eq!(res.status(), 410, "{accept}");
        assert!(varies_on_accept(&res), "{accept}");
        assert_eq!(res.json::<serde_json::Value>().await.unwrap()["code"], "variant_expired");
    }
    for (_, ext, _, _) in FORMATS {
        let res = get(&c, key, &record::variant_format_url(&id, "modern", ext), &[]).await;
        assert_eq!(res.status(), 410, "{ext}");
    }
    let res = get(&c, key, &format!("/v1/images/{id}/original"), &[]).await;
    assert_eq!(res.status(), 200, "originals are not subject to variant retention");

    // Three `deletions` facts, one per object: three distinct event_ids, no duplicate.
    let summary = common::lake::check_lake(&common::lake::lake_dir(&server).await, &["--expect".into(), "deletions=3".into()]);
    assert_eq!(summary["deletions"]["duckdb"]["raw_rows"], 3, "{summary}");
    assert!(!server.log().contains("internal error"), "{}", server.log());
}
