//! `imagelake upload --direct`: the bytes go straight to the object store. The server
//! hands out presigned S3 multipart part URLs (`POST /v1/uploads/direct`); each part is
//! PUT from its slice of the file (streamed, a few at a time, plain HTTP without the API
//! key); the ETags go back to the server (`POST .../complete`), which checks the object
//! and records the image.

use crate::api::{Api, ApiError};
use crate::progress::{bytes_bar, note};
use crate::tus::{backoff, Source};
use crate::upload::CHUNK;
use anyhow::{anyhow, bail, Context as _};
use futures::{StreamExt as _, TryStreamExt as _};
use indicatif::ProgressBar;
use reqwest::header::{CONTENT_LENGTH, ETAG};
use reqwest::{Body, Method};
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

/// Parts in flight at once.
const PARALLEL: usize = 4;
/// Tries of one part PUT (a dropped connection or a 5xx is tried again).
const PART_TRIES: u32 = 5;

#[derive(Deserialize)]
struct Created {
    id: String,
    part_size: u64,
    parts: Vec<Part>,
    complete: String,
}

#[derive(Deserialize, Clone)]
struct Part {
    number: u32,
    url: String,
}

/// Uploads `src` through presigned part URLs; returns the image's id.
pub async fn upload(api: &Api, src: &Source<'_>) -> anyhow::Result<String> {
    let name = src.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut body = serde_json::json!({ "size": src.size, "filename": name, "content_type": src.content_type });
    if !src.variants.is_empty() {
        body["variants"] = src.variants.join(",").into();
    }
    let res = match api.send(api.request(Method::POST, "/v1/uploads/direct").json(&body)).await {
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(|a| a.status == 501) => {
            return Err(e.context("the server does not take direct uploads"));
        }
        r => r?,
    };
    let created: Created = res.json().await.context("the answer of POST /v1/uploads/direct is not the expected JSON")?;
    let expected = if src.size == 0 { 1 } else { src.size.div_ceil(created.part_size.max(1)) };
    if created.part_size == 0 || created.parts.len() as u64 != expected {
        bail!(
            "the server offered {} part(s) of {} bytes for a file of {} bytes",
            created.parts.len(),
            created.part_size,
            src.size
        );
    }

    let bar = bytes_bar(Some(src.size), &name);
    let puts = futures::stream::iter(created.parts.clone())
        .map(|part| put_part(api, src, created.part_size, part, bar.clone()))
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<(u32, String)>>()
        .await;
    bar.finish_and_clear();
    let mut etags = puts?;
    etags.sort_by_key(|(n, _)| *n);
    let parts: Vec<serde_json::Value> =
        etags.iter().map(|(number, etag)| serde_json::json!({ "number": number, "etag": etag })).collect();
    let res = api.send(api.request(Method::POST, &created.complete).json(&serde_json::json!({ "parts": parts }))).await?;
    let rec: serde_json::Value = res.json().await.context("the answer of the direct upload's completion is not JSON")?;
    let id = rec["id"].as_str().map(str::to_string).unwrap_or(created.id);
    note(&bar, &format!("sent {} part(s) of {} bytes straight to the object store", etags.len(), created.part_size));
    Ok(id)
}

/// PUTs one part from its slice of the file; returns its number and ETag.
async fn put_part(api: &Api, src: &Source<'_>, part_size: u64, part: Part, bar: ProgressBar) -> anyhow::Result<(u32, String)> {
    let start = u64::from(part.number.saturating_sub(1)) * part_size;
    let len = part_size.min(src.size.saturating_sub(start));
    let mut tries = 0;
    loop {
        tries += 1;
        let sent = Arc::new(AtomicU64::new(0));
        match put_once(api, src, &part, start, len, &bar, sent.clone()).await {
            Ok(etag) => return Ok((part.number, etag)),
            Err((e, retry)) => {
                bar.set_position(bar.position().saturating_sub(sent.load(Ordering::Relaxed)));
                if !retry || tries >= PART_TRIES {
                    return Err(e.context(format!("part {} (bytes {start}..{})", part.number, start + len)));
                }
                let wait = backoff(tries);
                note(&bar, &format!("part {}: {e:#}; retrying in {:.1} s", part.number, wait.as_secs_f64()));
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// One PUT; the error says whether to try again.
async fn put_once(
    api: &Api,
    src: &Source<'_>,
    part: &Part,
    start: u64,
    len: u64,
    bar: &ProgressBar,
    sent: Arc<AtomicU64>,
) -> Result<String, (anyhow::Error, bool)> {
    let fatal = |e: anyhow::Error| (e, false);
    let mut file =
        tokio::fs::File::open(src.path).await.with_context(|| format!("cannot open {}", src.path.display())).map_err(fatal)?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .with_context(|| format!("cannot read {}", src.path.display()))
        .map_err(fatal)?;
    let counter = bar.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), CHUNK).inspect_ok(move |chunk| {
        counter.inc(chunk.len() as u64);
        sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    });
    // A presigned URL carries its own signature: no API key (S3 would refuse two).
    let req = api.plain().put(&part.url).header(CONTENT_LENGTH, len).body(Body::wrap_stream(stream));
    let res = req.send().await.map_err(|e| (api.transport_error(e), true))?;
    let status = res.status();
    if !status.is_success() {
        let text = res.text().await.unwrap_or_default();
        let code = xml_field(&text, "Code").unwrap_or_else(|| "unknown".into());
        let message = xml_field(&text, "Message").unwrap_or_else(|| status.canonical_reason().unwrap_or("error").into());
        let e = anyhow!("the object store refused the part: {message} (code {code}, HTTP {})", status.as_u16());
        return Err((e, status.is_server_error() || status.as_u16() == 429));
    }
    let etag = res.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
    etag.ok_or_else(|| fatal(anyhow!("the object store answered part {} without an ETag", part.number)))
}

/// `<Name>text</Name>` from an S3 error document.
fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let from = xml.find(&open)? + open.len();
    let to = xml[from..].find(&format!("</{name}>"))? + from;
    Some(xml[from..to].trim().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn s3_error_fields() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";
        assert_eq!(super::xml_field(xml, "Code").as_deref(), Some("AccessDenied"));
        assert_eq!(super::xml_field(xml, "Message").as_deref(), Some("Request has expired"));
        assert_eq!(super::xml_field("nope", "Code"), None);
    }
}
