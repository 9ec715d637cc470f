//! `imagelake post create|list|show|comment|comments|delete`: posts (an image with a
//! caption, published once the image is processed) and their comments.
//!
//! `post create FILE` streams the file from disk as the `file` field of a
//! `multipart/form-data` body (text fields first), whose parts all have known lengths, so
//! the request declares its `Content-Length` like `upload` and the file never sits in
//! memory; `post create --image ID` posts an image already uploaded, as JSON.

use crate::api::Api;
use crate::images::{pages, plain_table, print_variants, right_align, s, table_lines, wait_for};
use crate::progress::{bytes_bar, note};
use crate::upload::{content_type, CHUNK};
use crate::PostOrder;
use anyhow::{bail, Context as _};
use futures::TryStreamExt;
use reqwest::multipart::{Form, Part};
use reqwest::{Body, Method};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// The server's largest page of posts or comments.
const MAX_PAGE: usize = 100;
/// How often a comment refused with 503 (the server's write queue is full) is tried again.
const COMMENT_RETRIES: u32 = 3;

/// Where the post's image comes from.
pub enum Source<'a> {
    File(&'a Path),
    Image(&'a str),
}

pub struct NewPost<'a> {
    pub source: Source<'a>,
    pub caption: &'a str,
    pub author: Option<&'a str>,
    pub variants: &'a [String],
    pub callback_url: Option<&'a str>,
}

/// A post or comment id as one path segment: ids are UUIDs, so anything else (a `/`,
/// `..`) is refused here rather than sent to another URL.
fn checked<'a>(what: &str, id: &'a str) -> anyhow::Result<&'a str> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("`{id}` is not a {what} id");
    }
    Ok(id)
}

pub async fn create(api: &Api, post: NewPost<'_>, wait: bool, timeout: Duration) -> anyhow::Result<()> {
    let created = match post.source {
        Source::File(path) => {
            create_from_file(api, path, &post).await.with_context(|| format!("post of {} failed", path.display()))?
        }
        Source::Image(image) => {
            let mut body = json!({ "image_id": checked("image", image)?, "caption": post.caption });
            if let Some(a) = post.author {
                body["author"] = json!(a);
            }
            if let Some(u) = post.callback_url {
                body["callback_url"] = json!(u);
            }
            let res = api.send(api.request(Method::POST, "/v1/posts").json(&body)).await?;
            res.json::<Value>().await.context("the answer of POST /v1/posts is not JSON")?
        }
    };
    let id = created["id"].as_str().context("the answer of POST /v1/posts has no id")?.to_string();
    eprintln!("created post {id} (image {}, {})", s(&created["image_id"]), s(&created["status"]));
    if !wait {
        println!("{id}");
        return Ok(());
    }
    let hint = format!("check later with `imagelake post show {id}`");
    let done = wait_for(api, &format!("/v1/posts/{id}"), &["published", "failed"], timeout, &format!("post {id}"), &hint).await?;
    let status = s(&done["status"]);
    println!("{id} {status}");
    if status == "failed" {
        let (message, code) = error_of(&done);
        println!("  error: {message} (code {code})");
        bail!("post {id} failed: {message} (code {code})");
    }
    print_variants(api, &done, "  ");
    Ok(())
}

fn error_of(post: &Value) -> (String, String) {
    let message = post["error"]["message"].as_str().unwrap_or("processing failed");
    let code = post["error"]["code"].as_str().unwrap_or("unknown");
    (one_line(message), one_line(code))
}

async fn create_from_file(api: &Api, path: &Path, post: &NewPost<'_>) -> anyhow::Result<Value> {
    let meta = tokio::fs::metadata(path).await.with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let size = meta.len();
    let media_type = content_type(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    let mut fields = vec![("caption", post.caption.to_string())];
    if let Some(a) = post.author {
        fields.push(("author", a.to_string()));
    }
    // The upload's options: as query parameters (as `POST /v1/images` takes them, which
    // the server checks before it reads the body) and as form fields too.
    let mut options = Vec::new();
    let variants: Vec<&str> = post.variants.iter().map(|v| v.trim()).filter(|v| !v.is_empty()).collect();
    if !variants.is_empty() {
        options.push(("variants", variants.join(",")));
    }
    if let Some(u) = post.callback_url {
        options.push(("callback_url", u.to_string()));
    }
    fields.extend(options.iter().cloned());
    let file = tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?;
    let bar = bytes_bar(Some(size), &name);
    let counter = bar.clone();
    let stream =
        tokio_util::io::ReaderStream::with_capacity(file, CHUNK).inspect_ok(move |chunk| counter.inc(chunk.len() as u64));
    let part = Part::stream_with_length(Body::wrap_stream(stream), size).file_name(name).mime_str(media_type)?;
    let mut form = Form::new();
    for (k, v) in fields {
        form = form.text(k, v);
    }
    let req = api.request(Method::POST, "/v1/posts").query(&options).multipart(form.part("file", part));
    let result = api.send(req).await;
    bar.finish_and_clear();
    let res = result?;
    let created: Value = res.json().await.context("the answer of POST /v1/posts is not JSON")?;
    note(&bar, &format!("uploaded {} ({size} bytes, {media_type})", path.display()));
    Ok(created)
}

/// Text from the server for one table cell or line: control characters (a newline, an
/// escape sequence someone put in a comment) become spaces.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// At most `max` characters of `text`, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

fn text_of(v: &Value) -> String {
    one_line(&s(v))
}

pub async fn list(api: &Api, order: PostOrder, limit: usize, page_size: usize, json: bool) -> anyhow::Result<()> {
    if limit == 0 {
        bail!("--limit must be at least 1");
    }
    let order = match order {
        PostOrder::Newest => "newest",
        PostOrder::Comments => "comments",
    };
    let (items, more) = pages(api, "/v1/posts", &[("order", order.to_string())], limit, page_size.clamp(1, MAX_PAGE)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    let mut t = plain_table(&["ID", "COMMENTS", "AUTHOR", "PUBLISHED", "VARIANTS", "CAPTION"]);
    for p in &items {
        let variants =
            p["variants"].as_array().map(|v| v.iter().map(|v| s(&v["name"])).collect::<Vec<_>>().join(",")).unwrap_or_default();
        t.add_row(vec![
            s(&p["id"]),
            s(&p["comment_count"]),
            text_of(&p["author"]),
            s(&p["published_at"]),
            if variants.is_empty() { "-".into() } else { variants },
            clip(&text_of(&p["caption"]), 60),
        ]);
    }
    right_align(&mut t, &[1]);
    for line in table_lines(&t) {
        println!("{line}");
    }
    if more {
        eprintln!("(more posts: raise --limit to see them)");
    }
    Ok(())
}

pub async fn show(api: &Api, id: &str, json: bool) -> anyhow::Result<()> {
    let post = api.get_json(&format!("/v1/posts/{}", checked("post", id)?), &[]).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&post)?);
        return Ok(());
    }
    let mut fields = vec![
        ("id", s(&post["id"])),
        ("status", s(&post["status"])),
        ("author", text_of(&post["author"])),
        ("image_id", s(&post["image_id"])),
        ("created_at", s(&post["created_at"])),
        ("published_at", s(&post["published_at"])),
        ("comments", s(&post["comment_count"])),
        ("url", api.url(post["url"].as_str().unwrap_or(""))),
    ];
    if post["error"].is_object() {
        let (message, code) = error_of(&post);
        fields.push(("error", format!("{message} (code {code})")));
    }
    for (k, v) in fields {
        println!("{:<13} {v}", format!("{k}:"));
    }
    // The caption as written, its lines indented under the first.
    let caption = post["caption"].as_str().unwrap_or_default();
    let mut lines = caption.lines().map(one_line);
    println!("{:<13} {}", "caption:", lines.next().unwrap_or_default());
    for line in lines {
        println!("{:<13} {line}", "");
    }
    println!("latest comments:");
    print_comments(post["latest_comments"].as_array().map(Vec::as_slice).unwrap_or_default(), "  ");
    println!("variants:");
    print_variants(api, &post, "  ");
    Ok(())
}

fn print_comments(comments: &[Value], indent: &str) {
    if comments.is_empty() {
        println!("{indent}(no comments)");
        return;
    }
    let mut t = plain_table(&["ID", "AUTHOR", "CREATED", "TEXT"]);
    for c in comments {
        t.add_row(vec![s(&c["id"]), text_of(&c["author"]), s(&c["created_at"]), text_of(&c["text"])]);
    }
    for line in table_lines(&t) {
        println!("{indent}{line}");
    }
}

pub async fn comment(api: &Api, id: &str, author: &str, text: &str, json: bool) -> anyhow::Result<()> {
    let text = if text == "-" {
        let mut t = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::stdin(), &mut t)
            .await
            .context("cannot read the comment from stdin")?;
        t
    } else {
        text.to_string()
    };
    let path = format!("/v1/posts/{}/comments", checked("post", id)?);
    let body = json!({ "author": author, "text": text });
    let mut attempt = 0;
    let res = loop {
        let req = api.request(Method::POST, &path).json(&body).timeout(Duration::from_secs(60));
        match api.send(req).await {
            // 503: the comment was not stored (a full queue, a failed batch): try again.
            Err(e) if attempt < COMMENT_RETRIES && e.downcast_ref::<crate::ApiError>().is_some_and(|a| a.status == 503) => {
                attempt += 1;
                eprintln!("{e}; retrying ({attempt} of {COMMENT_RETRIES})");
                tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
            }
            other => break other?,
        }
    };
    let c: Value = res.json().await.with_context(|| format!("the answer of POST {path} is not JSON"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        println!("{}", c["id"].as_str().context("the comment has no id")?);
    }
    Ok(())
}

pub async fn comments(api: &Api, id: &str, limit: usize, page_size: usize, json: bool) -> anyhow::Result<()> {
    if limit == 0 {
        bail!("--limit must be at least 1");
    }
    let path = format!("/v1/posts/{}/comments", checked("post", id)?);
    let (items, more) = pages(api, &path, &[], limit, page_size.clamp(1, MAX_PAGE)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    let mut t = plain_table(&["ID", "AUTHOR", "CREATED", "TEXT"]);
    for c in &items {
        t.add_row(vec![s(&c["id"]), text_of(&c["author"]), s(&c["created_at"]), text_of(&c["text"])]);
    }
    for line in table_lines(&t) {
        println!("{line}");
    }
    if more {
        eprintln!("(more comments: raise --limit to see them)");
    }
    Ok(())
}

pub async fn delete(api: &Api, id: &str, comment: Option<&str>) -> anyhow::Result<()> {
    let id = checked("post", id)?;
    let (path, done) = match comment {
        Some(c) => {
            let c = checked("comment", c)?;
            (format!("/v1/posts/{id}/comments/{c}"), format!("deleted comment {c} of post {id}"))
        }
        None => (format!("/v1/posts/{id}"), format!("deleted post {id}, its comments and its image")),
    };
    api.send(api.request(Method::DELETE, &path).timeout(Duration::from_secs(120))).await?;
    eprintln!("{done}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_form_declares_its_length() {
        let stream = futures::stream::iter([Ok::<_, std::io::Error>(vec![0u8; 1000])]);
        let part = Part::stream_with_length(Body::wrap_stream(stream), 1000).file_name("a.jpg").mime_str("image/jpeg").unwrap();
        let form = Form::new().text("caption", "hi").part("file", part);
        let req = reqwest::Client::new().post("http://127.0.0.1:9/v1/posts").multipart(form).build().unwrap();
        let length: u64 = req.headers()[reqwest::header::CONTENT_LENGTH].to_str().unwrap().parse().unwrap();
        assert!(length > 1000, "{length}");
    }

    #[test]
    fn server_text_is_one_line_and_ids_one_segment() {
        assert_eq!(one_line("a\nb\u{1b}[31mc"), "a b [31mc");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
        assert!(checked("post", "0190c0de-0000-7000-8000-000000000000").is_ok());
        assert!(checked("post", "../images/x").is_err());
        assert!(checked("post", "").is_err());
    }
}
