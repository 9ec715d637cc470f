//! Upload, process, download, list and delete, end to end through the real binary: on
//! the embedded default, against Garage and the SQS server with SQLite, and with PostgreSQL.

#[macro_use]
mod common;

use common::{image_bytes, sha256_hex, Backend, Server, Setup};
use image::ImageFormat;
use imagelake_core::record;
use std::time::Duration;

const PROCESSING: Duration = Duration::from_secs(60);

async fn upload_process_download(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    let key = &server.keys.acme;
    let jpeg = image_bytes(1200, 900, ImageFormat::Jpeg);

    // Declared as PNG: the format is sniffed from the bytes, not trusted.
    let res = c.upload(key, jpeg.clone(), "image/png").await;
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let rec: serde_json::Value = res.json().await.unwrap();
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/v1/images/{id}"));
    assert_eq!(rec["status"], "uploaded");
    assert_eq!(rec["format"], "jpeg");
    assert_eq!(rec["content_type"], "image/jpeg");
    assert_eq!(rec["bytes"], jpeg.len() as u64);
    assert_eq!(rec["sha256"], sha256_hex(&jpeg));
    assert_eq!((rec["width"].as_u64(), rec["height"].as_u64()), (Some(1200), Some(900)));
    assert_eq!(rec["customer"], "acme");

    let done = c.wait_done(key, &id, PROCESSING).await;
    assert_eq!(done["status"], "processed", "{done}");
    assert!(done["processed_at"].is_string());
    // The job's log lines carry its ids from its span ("job done" names neither itself).
    let start = std::time::Instant::now();
    let line = loop {
        if let Some(l) = server.log().lines().find(|l| l.contains("job done") && l.contains(&id)) {
            break l.to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no `job done` line names image {id}:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(line.contains("job_id=") && line.contains("request_id="), "{line}");
    let variants = done["variants"].as_array().unwrap();
    let names: Vec<&str> = variants.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["thumb", "small", "medium", "web"]);
    let size = |v: &serde_json::Value| {
        (v["format"].as_str().unwrap().to_string(), v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap())
    };
    let sizes: Vec<_> = variants.iter().map(size).collect();
    let expected = [("webp", 120, 120), ("webp", 160, 120), ("jpeg", 400, 300), ("webp", 1200, 900)];
    assert_eq!(sizes, expected.map(|(f, w, h)| (f.to_string(), w, h)), "the default presets; web is not upscaled");
    let thumb = &variants[0];
    assert_eq!(thumb["state"], "ready");
    assert_eq!(thumb["url"], format!("/v1/images/{id}/variants/thumb"));
    let made = thumb["expires_at"].as_str().unwrap();
    assert!(made > done["processed_at"].as_str().unwrap().get(..10).unwrap(), "expires after it was made");

    // The original comes back byte for byte, with validators and ranges.
    let res = c.get(key, &format!("/v1/images/{id}/original")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], jpeg.len().to_string().as_str());
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(res.bytes().await.unwrap().to_vec(), jpeg);
    let res = c.get(key, &format!("/v1/images/{id}/original")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(res.status(), 304);
    let res = c.get(key, &format!("/v1/images/{id}/original")).header("range", "bytes=100-199").send().await.unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], format!("bytes 100-199/{}", jpeg.len()).as_str());
    assert_eq!(res.bytes().await.unwrap().to_vec(), jpeg[100..200].to_vec());
    let res = c
        .get(key, &format!("/v1/images/{id}/original"))
        .header("range", format!("bytes={}-", jpeg.len() + 5))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 416);

    // Variants are real images of the advertised format and size.
    for v in variants {
        let name = v["name"].as_str().unwrap();
        let res = c.get(key, &format!("/v1/images/{id}/variants/{name}")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let (format, mime) =
            if v["format"] == "jpeg" { (ImageFormat::Jpeg, "image/jpeg") } else { (ImageFormat::WebP, "image/webp") };
        assert_eq!(res.headers()["content-type"], mime, "{name}");
        let body = res.bytes().await.unwrap();
        assert_eq!(body.len() as u64, v["bytes"].as_u64().unwrap());
        assert_eq!(image::guess_format(&body).unwrap(), format, "{name}");
        let decoded = image::load_from_memory(&body).unwrap();
        assert_eq!(
            (u64::from(decoded.width()), u64::from(decoded.height())),
            (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap())
        );
    }
    let res = c.get(key, &format!("/v1/images/{id}/variants/huge")).send().await.unwrap();
    assert_eq!(res.status(), 404);

    // Another customer sees nothing; an admin sees everything.
    let res = c.get(&server.keys.globex, &format!("/v1/images/{id}")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = c.get(&server.keys.globex, &format!("/v1/images/{id}/original")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = c.get(&server.keys.admin, &format!("/v1/images/{id}")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // Delete removes the original, the variants and the record.
    let res = c.http.delete(c.url(&format!("/v1/images/{id}"))).bearer_auth(key).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(c.get(key, &format!("/v1/images/{id}")).send().await.unwrap().status(), 404);
    let store = server.store().await;
    for prefix in [format!("originals/acme/{id}"), format!("processed/acme/{id}/")] {
        let left = store.list(&prefix, None, 10).await.unwrap();
        assert!(left.objects.is_empty(), "{prefix} left behind: {:?}", left.objects);
    }
}

async fn multipart_form_and_listing(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    let key = &server.keys.acme;
    let mut ids = Vec::new();
    for i in 0..5u32 {
        let png = image_bytes(64 + i, 48, ImageFormat::Png);
        let form = reqwest::multipart::Form::new()
            .text("note", "ignored")
            .part("file", reqwest::multipart::Part::bytes(png).file_name("x.png").mime_str("image/png").unwrap());
        let res = c.http.post(c.url("/v1/images?variants=thumb")).bearer_auth(key).multipart(form).send().await.unwrap();
        assert_eq!(res.status(), 202);
        let rec: serde_json::Value = res.json().await.unwrap();
        assert_eq!(rec["format"], "png");
        assert_eq!(rec["requested_variants"], serde_json::json!(["thumb"]));
        ids.push(rec["id"].as_str().unwrap().to_string());
    }
    // Another customer's uploads never show in acme's listing.
    assert_eq!(c.upload(&server.keys.globex, image_bytes(10, 10, ImageFormat::Gif), "image/gif").await.status(), 202);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cur) => format!("/v1/images?limit=2&cursor={cur}"),
            None => "/v1/images?limit=2".to_string(),
        };
        let page: serde_json::Value = c.get(key, &path).send().await.unwrap().json().await.unwrap();
        seen.extend(page["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once, across pages");
    let done = c.wait_done(key, &ids[0], PROCESSING).await;
    assert_eq!(done["variants"].as_array().unwrap().len(), 1, "only the requested variant");
}

async fn idempotent_uploads(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    let key = &server.keys.acme;
    let body = image_bytes(80, 60, ImageFormat::Jpeg);
    let send =
        || c.http.post(c.url("/v1/images")).bearer_auth(key).header("idempotency-key", "order-42").body(body.clone()).send();
    let first: serde_json::Value = send().await.unwrap().json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.status(), 202);
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    let page: serde_json::Value = c.get(key, "/v1/images").send().await.unwrap().json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "stored once");
    // The same key from another customer is another request.
    let other: serde_json::Value = c
        .http
        .post(c.url("/v1/images"))
        .bearer_auth(&server.keys.globex)
        .header("idempotency-key", "order-42")
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(other["id"], first["id"]);
}

async fn decode_failed_fails_with_a_stable_code(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    let mut bytes = image_bytes(640, 480, ImageFormat::Jpeg);
    bytes.truncate(600); // a JPEG header, then nothing
    let res = c.upload(&server.keys.acme, bytes, "image/jpeg").await;
    assert_eq!(res.status(), 202, "the bytes look like a JPEG: accepted, then failed by the processor");
    let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let done = c.wait_done(&server.keys.acme, &id, PROCESSING).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "decode_failed", "{done}");
    assert!(done["error"]["message"].as_str().unwrap().len() > 5);
}

async fn expired_variants_are_gone(backend: Backend) {
    let server = Setup::new(backend).toml("[retention]\nprocessed = \"2s\"").start().await;
    let c = server.client();
    let res = c.upload(&server.keys.acme, image_bytes(300, 200, ImageFormat::Png), "image/png").await;
    let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let done = c.wait_done(&server.keys.acme, &id, PROCESSING).await;
    assert_eq!(done["status"], "processed");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let res = c.get(&server.keys.acme, &format!("/v1/images/{id}/variants/thumb")).send().await.unwrap();
    assert_eq!(res.status(), 410);
    let p: serde_json::Value = res.json().await.unwrap();
    assert_eq!(p["code"], "variant_expired");
    let rec: serde_json::Value =
        c.get(&server.keys.acme, &format!("/v1/images/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(rec["variants"][0]["state"], "expired");
    // The original is not subject to variant retention.
    assert_eq!(c.get(&server.keys.acme, &format!("/v1/images/{id}/original")).send().await.unwrap().status(), 200);
}

/// A delete removes the objects before the record. A download that reads the record in
/// between finds no object: that is a 404 for the original and a 410 for a variant, never
/// a 500 (schemathesis found this race with two workers).
async fn objects_gone_under_a_live_record(backend: Backend) {
    let server = Setup::new(backend).start().await;
    let c = server.client();
    let res = c.upload(&server.keys.acme, image_bytes(300, 200, ImageFormat::Png), "image/png").await;
    let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let done = c.wait_done(&server.keys.acme, &id, PROCESSING).await;
    assert_eq!(done["status"], "processed");
    let thumb = done["variants"].as_array().unwrap().iter().find(|v| v["name"] == "thumb").unwrap().clone();
    let ext = record::extension(thumb["format"].as_str().unwrap());
    let keys = [record::original_key("acme", &id), record::variant_key("acme", &id, "thumb", ext)];
    server.store().await.delete_many(&keys).await.unwrap();
    // Only the store changed: the record still lists the original and a ready variant.
    let res = c.get(&server.keys.acme, &format!("/v1/images/{id}/original")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["code"], "not_found");
    let res = c.get(&server.keys.acme, &format!("/v1/images/{id}/variants/thumb")).send().await.unwrap();
    assert_eq!(res.status(), 410);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["code"], "variant_expired");
    // The delete that was under way can still finish.
    let res = c.http.delete(c.url(&format!("/v1/images/{id}"))).bearer_auth(&server.keys.acme).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert!(!server.log().contains("internal error"), "{}", server.log());
}

on_every_backend!(
    objects_gone_under_a_live_record,
    upload_process_download,
    multipart_form_and_listing,
    idempotent_uploads,
    decode_failed_fails_with_a_stable_code,
    expired_variants_are_gone,
);
