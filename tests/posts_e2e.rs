//! Posts and comments end to end, through the real binary on every backend: a post made
//! from a real photograph is published when its image is processed; comments from two
//! authors; both listings paged with small limits while other requests add and delete,
//! with nothing skipped or repeated; a post whose image fails; tenant isolation and every
//! bad input.

#[macro_use]
mod common;

use common::{image_bytes, Backend, Client, Server};
use image::ImageFormat;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

/// A real photograph from the corpus (`scripts/corpus.sh`), or a generated JPEG when the
/// corpus is not there (a developer running one test by hand).
fn photograph() -> Vec<u8> {
    if let Ok(dir) = std::env::var("IMAGELAKE_TEST_CORPUS") {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jpg") && std::fs::metadata(p).unwrap().len() < 3_000_000)
            .collect();
        files.sort();
        if let Some(f) = files.first() {
            return std::fs::read(f).unwrap();
        }
    }
    image_bytes(1600, 1200, ImageFormat::Jpeg)
}

async fn post_multipart(c: &Client, key: &str, body: Vec<u8>, caption: &str, author: Option<&str>) -> reqwest::Response {
    let mut form =
        reqwest::multipart::Form::new().text("caption", caption.to_string()).part("file", reqwest::multipart::Part::bytes(body));
    if let Some(a) = author {
        form = form.text("author", a.to_string());
    }
    c.http.post(c.url("/v1/posts")).bearer_auth(key).multipart(form).send().await.unwrap()
}

async fn get_json(c: &Client, key: &str, path: &str) -> (u16, Value) {
    let res = c.get(key, path).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn wait_post(c: &Client, key: &str, id: &str, want: &str) -> Value {
    let start = Instant::now();
    loop {
        let (status, p) = get_json(c, key, &format!("/v1/posts/{id}")).await;
        assert_eq!(status, 200, "{p}");
        if p["status"] == want {
            return p;
        }
        assert!(p["status"] == "requested", "post {id} ended {p}, not {want}");
        assert!(start.elapsed() < Duration::from_secs(120), "post {id} still {p} after 2 minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn comment(c: &Client, key: &str, post: &str, author: &str, text: &str) -> reqwest::Response {
    c.http
        .post(c.url(&format!("/v1/posts/{post}/comments")))
        .bearer_auth(key)
        .json(&json!({"author": author, "text": text}))
        .send()
        .await
        .unwrap()
}

/// Uploads a small image, waits until it is processed, and posts it (JSON): published at once.
async fn quick_post(c: &Client, key: &str, caption: &str) -> String {
    let res = c.upload(key, image_bytes(64, 48, ImageFormat::Png), "image/png").await;
    assert_eq!(res.status(), 202);
    let image = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    c.wait_done(key, &image, Duration::from_secs(60)).await;
    let res = c
        .http
        .post(c.url("/v1/posts"))
        .bearer_auth(key)
        .json(&json!({"image_id": image, "caption": caption}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["status"], "published", "the image was processed before: {p}");
    p["id"].as_str().unwrap().to_string()
}

/// Follows `next_cursor` through `path` (which has its query), `limit` at a time, calling
/// `between` after each page.
async fn page_all<F, Fut>(c: &Client, key: &str, path: &str, mut between: F) -> Vec<Value>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let url = match &cursor {
            Some(cur) => format!("{path}&cursor={cur}"),
            None => path.to_string(),
        };
        let (status, page) = get_json(c, key, &url).await;
        assert_eq!(status, 200, "{url}: {page}");
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        between().await;
        match page["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => return out,
        }
    }
    panic!("{path}: more than 1000 pages");
}

async fn a_post_is_published_commented_and_paged(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    let key = &server.keys.acme;

    // A post from a real photograph: requested, then published with its variants.
    let res = post_multipart(&c, key, photograph(), "Sunset over the dunes", Some("ada")).await;
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let p: Value = res.json().await.unwrap();
    assert_eq!(location, format!("/v1/posts/{}", p["id"].as_str().unwrap()));
    assert!(p["status"] == "requested" || p["status"] == "published", "{p}");
    let id = p["id"].as_str().unwrap().to_string();
    let p = wait_post(&c, key, &id, "published").await;
    assert_eq!(p["caption"], "Sunset over the dunes");
    assert_eq!(p["author"], "ada");
    assert!(p["published_at"].is_string() && p["created_at"].is_string(), "{p}");
    let variants: Vec<&str> = p["variants"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(variants, ["thumb", "small", "medium", "web"], "{p}");
    let thumb = p["variants"][0]["url"].as_str().unwrap();
    assert_eq!(c.get(key, thumb).send().await.unwrap().status(), 200);
    let image = p["image_id"].as_str().unwrap();
    let (_, rec) = get_json(&c, key, &format!("/v1/images/{image}")).await;
    assert_eq!(rec["status"], "processed");

    // Two authors comment; the post shows the count and the newest two.
    for (author, text) in [("bob", "first!"), ("cy", "  lovely colours  "), ("bob", "agreed")] {
        let res = comment(&c, key, &id, author, text).await;
        assert_eq!(res.status(), 201);
        let cm: Value = res.json().await.unwrap();
        assert_eq!(cm["text"], text.trim());
        assert_eq!(cm["author"], author);
    }
    let (_, p) = get_json(&c, key, &format!("/v1/posts/{id}")).await;
    assert_eq!(p["comment_count"], 3, "{p}");
    let latest: Vec<&str> = p["latest_comments"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert_eq!(latest, ["agreed", "lovely colours"]);

    // Posts paged three at a time while others are added and deleted: every post that
    // exists throughout is seen exactly once, in order.
    let mut stable = vec![id.clone()];
    for i in 0..9 {
        stable.push(quick_post(&c, key, &format!("stable {i}")).await);
    }
    let mut doomed = Vec::new();
    for i in 0..4 {
        doomed.push(quick_post(&c, key, &format!("doomed {i}")).await);
    }
    let mut doomed_iter = doomed.clone().into_iter();
    let seen = page_all(&c, key, "/v1/posts?limit=3", || {
        let next = doomed_iter.next();
        let (c, key) = (c.clone(), key.clone());
        async move {
            if let Some(d) = next {
                let res = c.http.delete(c.url(&format!("/v1/posts/{d}"))).bearer_auth(&key).send().await.unwrap();
                assert_eq!(res.status(), 204);
            }
            quick_post(&c, &key, "added while paging").await;
        }
    })
    .await;
    let ids: Vec<&str> = seen.iter().map(|p| p["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a post repeated across pages: {ids:?}");
    for s in &stable {
        assert!(unique.contains(s.as_str()), "post {s} skipped: {ids:?}");
    }
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert!(seen.iter().all(|p| p["status"] == "published"));

    // By comment count: give the stable posts distinct counts, then page two at a time
    // while posts come and go.
    for (i, s) in stable.iter().enumerate().skip(1).take(4) {
        for k in 0..i {
            assert_eq!(comment(&c, key, s, "dee", &format!("c{k}")).await.status(), 201);
        }
    }
    let extra = quick_post(&c, key, "to delete").await;
    let mut once = Some(extra);
    let seen = page_all(&c, key, "/v1/posts?limit=2&order=comments", || {
        let (c, key, next) = (c.clone(), key.clone(), once.take());
        async move {
            if let Some(d) = next {
                assert_eq!(c.http.delete(c.url(&format!("/v1/posts/{d}"))).bearer_auth(&key).send().await.unwrap().status(), 204);
            }
            quick_post(&c, &key, "added by comments").await;
        }
    })
    .await;
    let keys: Vec<(u64, &str)> = seen.iter().map(|p| (p["comment_count"].as_u64().unwrap(), p["id"].as_str().unwrap())).collect();
    let unique: HashSet<&str> = keys.iter().map(|k| k.1).collect();
    assert_eq!(unique.len(), keys.len(), "repeated: {keys:?}");
    for s in &stable {
        assert!(unique.contains(s.as_str()), "post {s} skipped by order=comments");
    }
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "most comments first, ties newest first: {keys:?}");
    assert_eq!(keys[0].1, stable[4], "the post with four comments leads: {keys:?}");

    // Comments paged two at a time while others are added and deleted.
    let mut stable_comments = BTreeSet::new();
    for k in 0..7 {
        let cm: Value = comment(&c, key, &id, "eve", &format!("stable {k}")).await.json().await.unwrap();
        stable_comments.insert(cm["id"].as_str().unwrap().to_string());
    }
    let mut victims = Vec::new();
    for k in 0..3 {
        let cm: Value = comment(&c, key, &id, "eve", &format!("victim {k}")).await.json().await.unwrap();
        victims.push(cm["id"].as_str().unwrap().to_string());
    }
    let mut vi = victims.into_iter();
    let comments = page_all(&c, key, &format!("/v1/posts/{id}/comments?limit=2"), || {
        let (c, key, id, next) = (c.clone(), key.clone(), id.clone(), vi.next());
        async move {
            if let Some(v) = next {
                let res = c.http.delete(c.url(&format!("/v1/posts/{id}/comments/{v}"))).bearer_auth(&key).send().await.unwrap();
                assert_eq!(res.status(), 204);
            }
            assert_eq!(comment(&c, &key, &id, "fay", "added while paging").await.status(), 201);
        }
    })
    .await;
    let cids: Vec<&str> = comments.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(cids.iter().collect::<HashSet<_>>().len(), cids.len(), "a comment repeated: {cids:?}");
    for s in &stable_comments {
        assert!(cids.contains(&s.as_str()), "comment {s} skipped");
    }
    assert!(cids.windows(2).all(|w| w[0] > w[1]), "newest first");
    let (_, p) = get_json(&c, key, &format!("/v1/posts/{id}")).await;
    let (_, all) = get_json(&c, key, &format!("/v1/posts/{id}/comments?limit=100")).await;
    assert_eq!(
        p["comment_count"].as_u64().unwrap() as usize,
        all["items"].as_array().unwrap().len(),
        "the count follows adds and deletes"
    );

    // Deleting the post takes its comments and its image.
    assert_eq!(c.http.delete(c.url(&format!("/v1/posts/{id}"))).bearer_auth(key).send().await.unwrap().status(), 204);
    assert_eq!(c.get(key, &format!("/v1/posts/{id}")).send().await.unwrap().status(), 404);
    assert_eq!(c.get(key, &format!("/v1/images/{image}")).send().await.unwrap().status(), 404);
    assert_eq!(c.get(key, &format!("/v1/posts/{id}/comments")).send().await.unwrap().status(), 404);
    let store = server.store().await;
    assert!(store.list(&format!("originals/acme/{image}"), None, 10).await.unwrap().objects.is_empty());
    assert!(store.list(&format!("processed/acme/{image}/"), None, 10).await.unwrap().objects.is_empty());
    assert!(!server.log().contains("internal error"), "{}", server.log());
}

async fn a_post_whose_image_fails_is_never_listed(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    let key = &server.keys.acme;
    let mut truncated = image_bytes(640, 480, ImageFormat::Jpeg);
    truncated.truncate(700);
    let res = post_multipart(&c, key, truncated, "broken", None).await;
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let p = wait_post(&c, key, &id, "failed").await;
    assert_eq!(p["error"]["code"], "decode_failed", "{p}");
    assert!(p["published_at"].is_null() && p["variants"].as_array().unwrap().is_empty(), "{p}");
    let (_, list) = get_json(&c, key, "/v1/posts?limit=100").await;
    assert!(!list.to_string().contains(&id), "{list}");
    let (_, list) = get_json(&c, key, "/v1/posts?limit=100&order=comments").await;
    assert!(!list.to_string().contains(&id), "{list}");
    let res = comment(&c, key, &id, "bob", "hello?").await;
    assert_eq!(res.status(), 409);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "post_not_published");
}

async fn problem(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!(ct.starts_with("application/problem+json"), "{status} {ct} {body}");
    (status, body["code"].as_str().unwrap_or("").to_string())
}

async fn other_customers_and_bad_inputs_get_clear_answers(backend: Backend) {
    let server = Server::with(backend).await;
    let c = server.client();
    let (acme, globex) = (&server.keys.acme, &server.keys.globex);
    let id = quick_post(&c, acme, "mine").await;
    let cm: Value = comment(&c, acme, &id, "ada", "hi").await.json().await.unwrap();
    let cid = cm["id"].as_str().unwrap();
    let (_, p) = get_json(&c, acme, &format!("/v1/posts/{id}")).await;
    let image = p["image_id"].as_str().unwrap().to_string();

    // Another customer sees nothing of it, and cannot touch it.
    assert_eq!(problem(c.get(globex, &format!("/v1/posts/{id}")).send().await.unwrap()).await, (404, "not_found".into()));
    assert_eq!(
        problem(c.get(globex, &format!("/v1/posts/{id}/comments")).send().await.unwrap()).await,
        (404, "not_found".into())
    );
    assert_eq!(problem(comment(&c, globex, &id, "eve", "x").await).await, (404, "not_found".into()));
    let del = |key: &str, path: String| c.http.delete(c.url(&path)).bearer_auth(key).send();
    assert_eq!(problem(del(globex, format!("/v1/posts/{id}/comments/{cid}")).await.unwrap()).await, (404, "not_found".into()));
    assert_eq!(problem(del(globex, format!("/v1/posts/{id}")).await.unwrap()).await, (404, "not_found".into()));
    let (_, list) = get_json(&c, globex, "/v1/posts").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let res =
        c.http.post(c.url("/v1/posts")).bearer_auth(globex).json(&json!({"image_id": image, "caption": "stolen"})).send().await;
    assert_eq!(problem(res.unwrap()).await, (404, "not_found".into()));
    // The analyst reads statistics, and may not post or comment.
    assert_eq!(problem(comment(&c, &server.keys.analyst, &id, "a", "x").await).await.0, 403);

    // Bad input.
    let long_caption = "é".repeat(2201);
    let res = c.http.post(c.url("/v1/posts")).bearer_auth(acme).json(&json!({"image_id": image, "caption": long_caption})).send();
    assert_eq!(problem(res.await.unwrap()).await, (400, "caption_too_long".into()));
    let res = post_multipart(&c, acme, image_bytes(64, 48, ImageFormat::Png), &"x".repeat(2201), None).await;
    assert_eq!(problem(res).await, (400, "caption_too_long".into()));
    let listed: Value = c.get(acme, "/v1/images?limit=100").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "a refused post leaves no image: {listed}");
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            c.http.post(c.url(&format!("/v1/posts/{id}/comments"))).json(&json!({"author": "a", "text": "   "})),
            400,
            "empty_comment",
        ),
        (
            c.http.post(c.url(&format!("/v1/posts/{id}/comments"))).json(&json!({"author": "a", "text": "x".repeat(2001)})),
            400,
            "comment_too_long",
        ),
        (
            c.http.post(c.url(&format!("/v1/posts/{id}/comments"))).json(&json!({"author": "", "text": "x"})),
            400,
            "invalid_author",
        ),
        (c.http.post(c.url(&format!("/v1/posts/{id}/comments"))).json(&json!({"text": "x"})), 400, "invalid_json"),
        (
            c.http
                .post(c.url(&format!("/v1/posts/{id}/comments")))
                .header("content-type", "application/json")
                .body(vec![0xff, 0xfe, b'{']),
            400,
            "invalid_json",
        ),
        (
            c.http
                .post(c.url(&format!("/v1/posts/{id}/comments")))
                .header("content-type", "application/json")
                .body(vec![b' '; 70_000]),
            413,
            "payload_too_large",
        ),
        (
            c.http
                .post(c.url("/v1/posts/0190b5a0-0000-7000-8000-000000000000/comments"))
                .json(&json!({"author": "a", "text": "x"})),
            404,
            "not_found",
        ),
        (c.http.post(c.url("/v1/posts/not-an-id/comments")).json(&json!({"author": "a", "text": "x"})), 404, "not_found"),
        (c.http.get(c.url("/v1/posts/0190b5a0-0000-7000-8000-000000000000")), 404, "not_found"),
        (c.http.get(c.url("/v1/posts?cursor=bogus")), 400, "invalid_cursor"),
        (c.http.get(c.url("/v1/posts?order=comments&cursor=n0190b5a0000070008000000000000000")), 400, "invalid_cursor"),
        (c.http.get(c.url("/v1/posts?order=likes")), 400, "invalid_order"),
        (c.http.get(c.url("/v1/posts?limit=0")), 400, "invalid_limit"),
        (c.http.get(c.url("/v1/posts?limit=101")), 400, "invalid_limit"),
        (c.http.get(c.url(&format!("/v1/posts/{id}/comments?cursor=zz"))), 400, "invalid_cursor"),
        (c.http.delete(c.url(&format!("/v1/posts/{id}/comments/0190b5a0-0000-7000-8000-000000000000"))), 404, "not_found"),
        (
            c.http.post(c.url("/v1/posts")).json(&json!({"image_id": "0190b5a0-0000-7000-8000-000000000000", "caption": "x"})),
            404,
            "not_found",
        ),
        (c.http.post(c.url("/v1/posts")).json(&json!({"image_id": image, "caption": "x", "extra": 1})), 400, "invalid_json"),
        (c.http.post(c.url("/v1/posts")).header("content-type", "text/plain").body("hello"), 415, "unsupported_media_type"),
        (
            c.http.post(c.url("/v1/posts")).multipart(reqwest::multipart::Form::new().text("caption", "no file")),
            400,
            "missing_file",
        ),
    ];
    for (req, status, code) in cases {
        let req = req.bearer_auth(acme).build().unwrap();
        let what = format!("{} {}", req.method(), req.url());
        let got = problem(c.http.execute(req).await.unwrap()).await;
        assert_eq!(got, (status, code.to_string()), "{what}");
    }
    // A caption field too large for a form field, sent after the file: refused, nothing stored.
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(image_bytes(64, 48, ImageFormat::Png)))
        .text("caption", "x".repeat(20_000));
    let res = c.http.post(c.url("/v1/posts")).bearer_auth(acme).multipart(form).send().await.unwrap();
    assert_eq!(problem(res).await, (400, "field_too_large".into()));
    let listed: Value = c.get(acme, "/v1/images?limit=100").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    let store = server.store().await;
    assert_eq!(store.list("originals/acme/", None, 100).await.unwrap().objects.len(), 1, "refused posts leave no original");
    // An unknown variant in the form is refused like the query's, after the file: nothing stays.
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(image_bytes(64, 48, ImageFormat::Png)))
        .text("variants", "thumb,nope");
    let res = c.http.post(c.url("/v1/posts")).bearer_auth(acme).multipart(form).send().await.unwrap();
    assert_eq!(problem(res).await, (400, "unknown_variant".into()));
    assert_eq!(store.list("originals/acme/", None, 100).await.unwrap().objects.len(), 1, "refused posts leave no original");
    // The post and its comment are untouched by all of it.
    let (_, p) = get_json(&c, acme, &format!("/v1/posts/{id}")).await;
    assert_eq!(p["comment_count"], 1, "{p}");
    // Form fields choose the variants, as the query does.
    let form = reqwest::multipart::Form::new()
        .text("variants", "thumb")
        .text("caption", "only a thumbnail")
        .part("file", reqwest::multipart::Part::bytes(image_bytes(64, 48, ImageFormat::Png)));
    let res = c.http.post(c.url("/v1/posts")).bearer_auth(acme).multipart(form).send().await.unwrap();
    assert_eq!(res.status(), 202);
    let thumb_only = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let p = wait_post(&c, acme, &thumb_only, "published").await;
    let names: Vec<&str> = p["variants"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["thumb"], "{p}");
    assert!(!server.log().contains("internal error"), "{}", server.log());
}

on_every_backend!(
    a_post_is_published_commented_and_paged,
    a_post_whose_image_fails_is_never_listed,
    other_customers_and_bad_inputs_get_clear_answers
);
