//! `imagelake upload FILE... [--variants a,b] [--wait]`: each file is streamed from disk
//! (a tokio reader in 256 KiB chunks, counted by the progress bar) as the raw body of
//! `POST /v1/images`, with its length declared so the server can refuse it up front.
//! Files above `--resumable-above` go up resumably instead ([`crate::tus`]), and with
//! `--direct` straight to the object store ([`crate::direct`]).

use crate::api::{Api, ApiError};
use crate::images::{print_variants, wait_done};
use crate::progress::{bytes_bar, note};
use anyhow::{bail, Context as _};
use futures::TryStreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Body, Method};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

pub(crate) const CHUNK: usize = 256 * 1024;

/// How the bytes go up.
#[derive(Clone, Copy, Debug)]
pub enum How {
    /// One `POST /v1/images`, or tus above `resumable_above` bytes (0: always tus).
    Auto { resumable_above: u64, tus: crate::tus::Options },
    /// Presigned S3 multipart.
    Direct,
}

pub async fn run(
    api: &Api,
    files: &[std::path::PathBuf],
    variants: &[String],
    how: How,
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let variants: Vec<&str> = variants.iter().map(|v| v.trim()).filter(|v| !v.is_empty()).collect();
    let mut uploaded = Vec::new();
    let mut refused = Vec::new();
    for file in files {
        match upload_one(api, file, &variants, how).await {
            Ok(id) => {
                if !wait {
                    println!("{id}");
                }
                uploaded.push((id, file));
            }
            // One file refused does not stop the others; the exit status still says so.
            Err(e) if files.len() > 1 => {
                eprintln!("error: upload of {} {}: {e:#}", file.display(), outcome(&e));
                refused.push(format!("{}: {e:#}", file.display()));
            }
            Err(e) => {
                let outcome = outcome(&e);
                return Err(e.context(format!("upload of {} {outcome}", file.display())));
            }
        }
    }
    let refused_error = || anyhow::anyhow!("{} of {} upload(s) failed: {}", refused.len(), files.len(), refused.join("; "));
    if !wait {
        return if refused.is_empty() { Ok(()) } else { Err(refused_error()) };
    }
    // Every file is uploaded before the first wait: the server processes them meanwhile.
    let mut failed = Vec::new();
    for (id, file) in &uploaded {
        let rec = wait_done(api, id, timeout).await?;
        let status = rec["status"].as_str().unwrap_or("?");
        println!("{id} {status} {}", file.display());
        if status == "failed" {
            let code = rec["error"]["code"].as_str().unwrap_or("unknown");
            let message = rec["error"]["message"].as_str().unwrap_or("processing failed");
            println!("  error: {message} (code {code})");
            failed.push(format!("{id} ({}): {message} (code {code})", file.display()));
        } else {
            print_variants(api, &rec, "  ");
        }
    }
    if !refused.is_empty() {
        return Err(refused_error());
    }
    if !failed.is_empty() {
        bail!("processing failed for {} of {} image(s): {}", failed.len(), uploaded.len(), failed.join("; "));
    }
    Ok(())
}

/// "refused" when the server said no (a 4xx), else "failed".
fn outcome(e: &anyhow::Error) -> &'static str {
    match e.downcast_ref::<ApiError>() {
        Some(a) if (400..500).contains(&a.status) => "refused",
        _ => "failed",
    }
}

async fn upload_one(api: &Api, path: &Path, variants: &[&str], how: How) -> anyhow::Result<String> {
    let meta = tokio::fs::metadata(path).await.with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let size = meta.len();
    let content_type = content_type(path)?;
    let src = crate::tus::Source { path, size, content_type, variants };
    let id = match how {
        How::Direct => Some(crate::direct::upload(api, &src).await?),
        How::Auto { resumable_above, tus } if resumable_above == 0 || size > resumable_above => {
            Some(crate::tus::upload(api, &src, tus).await?)
        }
        How::Auto { .. } => None,
    };
    if let Some(id) = id {
        eprintln!("uploaded {} ({size} bytes, {content_type}) as {id}", path.display());
        return Ok(id);
    }
    let file = tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?;
    let label = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bar = bytes_bar(Some(size), &label);
    let counter = bar.clone();
    let stream =
        tokio_util::io::ReaderStream::with_capacity(file, CHUNK).inspect_ok(move |chunk| counter.inc(chunk.len() as u64));
    let mut req = api
        .request(Method::POST, "/v1/images")
        .header(CONTENT_TYPE, content_type)
        .header(CONTENT_LENGTH, size)
        .body(Body::wrap_stream(stream));
    if !variants.is_empty() {
        req = req.query(&[("variants", variants.join(","))]);
    }
    let result = api.send(req).await;
    bar.finish_and_clear();
    let res = result?;
    let rec: serde_json::Value = res.json().await.context("the upload's answer is not JSON")?;
    let id = rec["id"].as_str().context("the upload's answer has no id")?.to_string();
    note(&bar, &format!("uploaded {} ({size} bytes, {content_type}) as {id}", path.display()));
    Ok(id)
}

/// The media type from the file's first bytes, else from its extension.
pub(crate) fn content_type(path: &Path) -> anyhow::Result<&'static str> {
    let mut head = [0u8; 32];
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    if let Some(t) = sniff(&head[..n]) {
        return Ok(t);
    }
    Ok(mime_guess::from_path(path).first_raw().unwrap_or("application/octet-stream"))
}

fn sniff(b: &[u8]) -> Option<&'static str> {
    let t = match b {
        [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => "image/png",
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => "image/gif",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "image/webp",
        [b'I', b'I', 0x2A, 0x00, ..] | [b'M', b'M', 0x00, 0x2A, ..] => "image/tiff",
        [_, _, _, _, b'f', b't', b'y', b'p', brand @ ..] if brand.len() >= 4 => match &brand[..4] {
            b"avif" | b"avis" => "image/avif",
            b"heic" | b"heix" | b"heim" | b"heis" | b"mif1" | b"msf1" => "image/heic",
            _ => return None,
        },
        [b'B', b'M', ..] => "image/bmp",
        _ => return None,
    };
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::sniff;

    #[test]
    fn sniffs_the_common_formats() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic"), Some("image/heic"));
        assert_eq!(sniff(b"hello world"), None);
    }
}
