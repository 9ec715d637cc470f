//! `imagelake post create|list|show|comment|comments|delete`, run as the real binary
//! against a real server, and checked against the API's own answers.
//!
//! The photograph is the smallest JPEG of the corpus (`IMAGELAKE_TEST_CORPUS`, exported
//! by `scripts/test`), or a generated one when the corpus is not there.

mod common;

use common::cli::{cli, write_file, Run};
use common::{image_bytes, Server};
use imagelake_core::testing::temp_dir;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A real photograph: the corpus's smallest JPEG (1600x1203), else a generated JPEG.
fn photograph(work: &Path) -> PathBuf {
    if let Ok(dir) = std::env::var("IMAGELAKE_TEST_CORPUS") {
        let smallest = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("jpg")))
            .min_by_key(|p| (std::fs::metadata(p).unwrap().len(), p.clone()));
        if let Some(p) = smallest {
            return p;
        }
    }
    eprintln!("IMAGELAKE_TEST_CORPUS unset or without JPEGs: a generated photograph instead");
    write_file(work, "photo.jpg", &image_bytes(1600, 1200, image::ImageFormat::Jpeg))
}

/// The first whitespace-separated cell of each line after the header.
fn first_column(r: &Run) -> Vec<String> {
    r.stdout.lines().skip(1).map(|l| l.split_whitespace().next().unwrap_or_default().to_string()).collect()
}

/// The value of `name:` in `post show`'s output.
fn field(r: &Run, name: &str) -> String {
    r.stdout.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_string())).unwrap_or_default()
}

async fn get(server: &Server, key: &str, path: &str) -> (u16, Value) {
    let res = server.client().get(key, path).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Polls the post until it is no longer `requested`.
async fn wait_post(server: &Server, key: &str, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let (status, post) = get(server, key, &format!("/v1/posts/{id}")).await;
        assert_eq!(status, 200, "{post}");
        if post["status"] != "requested" {
            return post;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "post {id} still requested: {post}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn names(post: &Value) -> Vec<String> {
    let mut n: Vec<String> =
        post["variants"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap().to_string()).collect();
    n.sort();
    n
}

#[tokio::test]
async fn posts_and_comments_through_the_command_line() {
    let server = Server::embedded().await;
    let key = server.keys.acme.clone();
    let globex = server.keys.globex.clone();
    let home = temp_dir("client-home");
    let work = temp_dir("client-posts");
    let photo = photograph(&work);
    let photo_arg = photo.to_str().unwrap();

    // create FILE --wait: streamed as multipart; waits until published, then the variants.
    let r = cli(
        &server,
        &key,
        &home,
        &work,
        &[
            "post",
            "create",
            photo_arg,
            "--caption",
            "Fresh flowers\non the table",
            "--author",
            "Ann",
            "--variants",
            "thumb,medium",
            "--wait",
        ],
    )
    .await;
    assert!(r.ok, "{r:?}");
    let first: Vec<&str> = r.stdout.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(first[1], "published", "{r:?}");
    let p1 = first[0].to_string();
    let (status, post1) = get(&server, &key, &format!("/v1/posts/{p1}")).await;
    assert_eq!(status, 200);
    assert_eq!(post1["status"], "published");
    assert_eq!(post1["caption"], "Fresh flowers\non the table");
    assert_eq!(post1["author"], "Ann");
    assert_eq!(names(&post1), ["medium", "thumb"], "the variants asked for: {post1}");
    let image1 = post1["image_id"].as_str().unwrap().to_string();
    let (_, rec) = get(&server, &key, &format!("/v1/images/{image1}")).await;
    assert_eq!(rec["bytes"], std::fs::metadata(&photo).unwrap().len(), "the file arrived whole: {rec}");
    assert_eq!(rec["sha256"], common::sha256_hex(&std::fs::read(&photo).unwrap()));
    for v in post1["variants"].as_array().unwrap() {
        let url = format!("{}{}", server.url, v["url"].as_str().unwrap());
        assert!(r.stdout.lines().any(|l| l.trim_end().ends_with(&url)), "no line for {url}: {r:?}");
    }

    // create --image: an image uploaded before; the post id alone on stdout.
    let png = write_file(&work, "drawing.png", &image_bytes(300, 200, image::ImageFormat::Png));
    let r = cli(&server, &key, &home, &work, &["upload", png.to_str().unwrap(), "--wait"]).await;
    assert!(r.ok, "{r:?}");
    let image2 = r.stdout.split_whitespace().next().unwrap().to_string();
    let r = cli(&server, &key, &home, &work, &["post", "create", "--image", &image2, "--caption", "A drawing"]).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
    let p2 = r.stdout.trim().to_string();
    let post2 = wait_post(&server, &key, &p2).await;
    assert_eq!(post2["status"], "published", "the image was processed already: {post2}");
    assert_eq!(post2["image_id"], image2.as_str());
    assert!(post2["author"].is_null());

    // create FILE without --wait: the id alone; published a little later.
    let small = write_file(&work, "small.jpg", &image_bytes(640, 480, image::ImageFormat::Jpeg));
    let r = cli(&server, &key, &home, &work, &["post", "create", small.to_str().unwrap(), "--caption", "Third"]).await;
    assert!(r.ok, "{r:?}");
    let p3 = r.stdout.trim().to_string();
    assert_eq!(wait_post(&server, &key, &p3).await["status"], "published");

    // comment: the comment's id; two on the first post, one on the second.
    let mut comments = Vec::new();
    for (post, author, text) in [(&p1, "Bob", "Lovely light"), (&p2, "Cy", "Nice lines"), (&p1, "Dee", "Where is this?")] {
        let r = cli(&server, &key, &home, &work, &["post", "comment", post, "--author", author, text]).await;
        assert!(r.ok, "{r:?}");
        assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
        comments.push(r.stdout.trim().to_string());
    }
    let (c1, c3) = (comments[0].clone(), comments[2].clone());
    let (_, page) = get(&server, &key, &format!("/v1/posts/{p1}/comments")).await;
    let ids: Vec<&str> = page["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [c3.as_str(), c1.as_str()], "newest first: {page}");
    let r = cli(&server, &key, &home, &work, &["post", "comment", &p3, "--author", "Eve", "First!", "--json"]).await;
    assert!(r.ok, "{r:?}");
    let c4: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (c4["post_id"].as_str(), c4["author"].as_str(), c4["text"].as_str()),
        (Some(p3.as_str()), Some("Eve"), Some("First!"))
    );

    // show: readable fields, the latest comments, the variants' URLs; --json as the server's.
    let r = cli(&server, &key, &home, &work, &["post", "show", &p1]).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(field(&r, "id"), p1);
    assert_eq!(field(&r, "status"), "published");
    assert_eq!(field(&r, "author"), "Ann");
    assert_eq!(field(&r, "image_id"), image1);
    assert_eq!(field(&r, "comments"), "2");
    assert_eq!(field(&r, "caption"), "Fresh flowers", "the caption's first line: {r:?}");
    assert!(r.stdout.lines().any(|l| l.trim() == "on the table"), "and its second, indented: {r:?}");
    for (c, text) in [(&c1, "Lovely light"), (&c3, "Where is this?")] {
        let line = r.stdout.lines().find(|l| l.split_whitespace().next() == Some(c.as_str()));
        assert!(line.is_some_and(|l| l.trim_end().ends_with(text)), "comment {c}: {r:?}");
    }
    assert!(
        r.stdout.lines().any(|l| l.trim_end().ends_with(&format!("{}/v1/images/{image1}/variants/thumb", server.url))),
        "{r:?}"
    );
    let r = cli(&server, &key, &home, &work, &["post", "show", &p1, "--json"]).await;
    assert!(r.ok, "{r:?}");
    let shown: Value = serde_json::from_str(&r.stdout).unwrap();
    let (_, post1) = get(&server, &key, &format!("/v1/posts/{p1}")).await;
    assert_eq!(shown, post1);
    assert_eq!(shown["comment_count"], 2);

    // list: newest first, and most commented first, following cursors one post a page.
    let r = cli(&server, &key, &home, &work, &["post", "list", "--limit", "10", "--page-size", "1"]).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(first_column(&r), [p3.as_str(), p2.as_str(), p1.as_str()], "{r:?}");
    assert!(!r.stderr.contains("more posts"), "{r:?}");
    let r = cli(&server, &key, &home, &work, &["post", "list", "--order", "comments", "--page-size", "1"]).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(first_column(&r), [p1.as_str(), p3.as_str(), p2.as_str()], "2 comments, then 1 (newest first), then 1: {r:?}");
    let row = r.stdout.lines().nth(1).unwrap();
    assert_eq!(row.split_whitespace().nth(1), Some("2"), "{row}");
    assert!(row.ends_with("Fresh flowers on the table"), "the caption on one line: {row}");
    let r = cli(&server, &key, &home, &work, &["post", "list", "--limit", "2", "--page-size", "1"]).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(first_column(&r), [p3.as_str(), p2.as_str()], "{r:?}");
    assert!(r.stderr.contains("more posts"), "{r:?}");
    let r = cli(&server, &key, &home, &work, &["post", "list", "--json"]).await;
    assert!(r.ok, "{r:?}");
    let listed: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(listed.iter().map(|p| p["id"].as_str().unwrap()).collect::<Vec<_>>(), [p3.as_str(), p2.as_str(), p1.as_str()]);

    // comments: newest first across pages; --json.
    let r = cli(&server, &key, &home, &work, &["post", "comments", &p1, "--page-size", "1"]).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(first_column(&r), [c3.as_str(), c1.as_str()], "{r:?}");
    assert!(r.stdout.lines().nth(1).unwrap().trim_end().ends_with("Where is this?"), "{r:?}");
    let r = cli(&server, &key, &home, &work, &["post", "comments", &p1, "--json"]).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(serde_json::from_str::<Value>(&r.stdout).unwrap(), page["items"]);

    // Bad input: the server's detail and code, exit 1, nothing on stdout.
    let r = cli(&server, &key, &home, &work, &["post", "comment", &p1, "--author", "Bob", "   "]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.is_empty() && r.stderr.contains("empty_comment") && r.stderr.contains("400"), "{r:?}");
    let long = "x".repeat(2201);
    let r = cli(&server, &key, &home, &work, &["post", "create", "--image", &image2, "--caption", &long]).await;
    assert!(!r.ok && r.stdout.is_empty() && r.stderr.contains("caption_too_long"), "{r:?}");
    let r = cli(&server, &key, &home, &work, &["post", "show", "../images/x"]).await;
    assert!(!r.ok && r.stderr.contains("not a post id"), "refused before any request: {r:?}");
    let r = cli(&server, &key, &home, &work, &["post", "create", "--caption", "nothing"]).await;
    assert_eq!(r.code, Some(2), "a usage error: {r:?}");

    // Another customer's post is not found, whatever the command; and it is left alone.
    for args in [
        vec!["post", "show", p1.as_str()],
        vec!["post", "comments", p1.as_str()],
        vec!["post", "comment", p1.as_str(), "--author", "Mallory", "mine now"],
        vec!["post", "delete", p1.as_str()],
        vec!["post", "delete", p1.as_str(), "--comment", c1.as_str()],
    ] {
        let r = cli(&server, &globex, &home, &work, &args).await;
        assert!(!r.ok && r.stderr.contains("not_found") && r.stderr.contains("404"), "{args:?}: {r:?}");
    }
    let r = cli(&server, &globex, &home, &work, &["post", "list"]).await;
    assert!(r.ok && first_column(&r).is_empty(), "globex has no post: {r:?}");
    let r = cli(&server, &globex, &home, &work, &["post", "create", "--image", &image1, "--caption", "stolen"]).await;
    assert!(!r.ok && r.stderr.contains("not_found"), "acme's image: {r:?}");
    assert_eq!(get(&server, &key, &format!("/v1/posts/{p1}")).await.1["comment_count"], 2);

    // delete --comment: that comment only.
    let r = cli(&server, &key, &home, &work, &["post", "delete", &p1, "--comment", &c1]).await;
    assert!(r.ok && r.stdout.is_empty(), "{r:?}");
    let r = cli(&server, &key, &home, &work, &["post", "comments", &p1]).await;
    assert_eq!(first_column(&r), [c3.as_str()], "{r:?}");
    assert_eq!(get(&server, &key, &format!("/v1/posts/{p1}")).await.1["comment_count"], 1);

    // delete: the post, its comments and its image.
    let r = cli(&server, &key, &home, &work, &["post", "delete", &p2]).await;
    assert!(r.ok && r.stdout.is_empty(), "{r:?}");
    let r = cli(&server, &key, &home, &work, &["post", "show", &p2]).await;
    assert!(!r.ok && r.stderr.contains("not_found"), "{r:?}");
    assert_eq!(get(&server, &key, &format!("/v1/images/{image2}")).await.0, 404);
    let r = cli(&server, &key, &home, &work, &["post", "list"]).await;
    assert_eq!(first_column(&r), [p3.as_str(), p1.as_str()], "{r:?}");

    // --help names both deletes.
    let r = cli(&server, &key, &home, &work, &["post", "delete", "--help"]).await;
    assert!(r.ok && r.stdout.contains("--comment") && r.stdout.contains("its image"), "{r:?}");
}

#[tokio::test]
async fn a_post_whose_image_fails_exits_non_zero_and_takes_no_comment() {
    let server = Server::embedded().await;
    let key = server.keys.acme.clone();
    let home = temp_dir("client-home");
    let work = temp_dir("client-posts");
    // A JPEG signature and then zeros: accepted, and its processing fails.
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0];
    bytes.resize(4096, 0);
    let broken = write_file(&work, "broken.jpg", &bytes);
    let r = cli(&server, &key, &home, &work, &["post", "create", broken.to_str().unwrap(), "--caption", "oops", "--wait"]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    let first: Vec<&str> = r.stdout.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(first.get(1), Some(&"failed"), "{r:?}");
    let id = first[0];
    let (_, post) = get(&server, &key, &format!("/v1/posts/{id}")).await;
    assert_eq!(post["status"], "failed");
    let code = post["error"]["code"].as_str().unwrap();
    assert!(r.stdout.contains(&format!("(code {code})")) && r.stderr.contains(code), "{r:?}");

    let r = cli(&server, &key, &home, &work, &["post", "show", id]).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(field(&r, "status"), "failed");
    assert!(field(&r, "error").contains(code), "{r:?}");
    let r = cli(&server, &key, &home, &work, &["post", "comment", id, "--author", "Bob", "hello"]).await;
    assert!(!r.ok && r.stderr.contains("post_not_published"), "{r:?}");
    let r = cli(&server, &key, &home, &work, &["post", "list"]).await;
    assert!(r.ok && first_column(&r).is_empty(), "a failed post is not listed: {r:?}");
}
