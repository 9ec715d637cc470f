//! `imagelake download ID [--variant NAME [--format EXT]] [-o FILE]`: streamed to a
//! temporary file beside the target, fsynced, and renamed into place only once every byte
//! arrived, so an interrupted download never leaves a truncated file under the final name.

use crate::api::Api;
use crate::progress::{bytes_bar, note};
use anyhow::{bail, Context as _};
use futures::StreamExt;
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// The path of the original, of a variant (the server picks its format, the preset's
/// preferred one, since the client sends no `Accept`), or of one format of a variant.
fn path(id: &str, variant: Option<&str>, format: Option<&str>) -> String {
    match (variant, format) {
        (Some(v), Some(ext)) => format!("/v1/images/{id}/variants/{v}.{ext}"),
        (Some(v), None) => format!("/v1/images/{id}/variants/{v}"),
        (None, _) => format!("/v1/images/{id}/original"),
    }
}

pub async fn run(
    api: &Api,
    id: &str,
    variant: Option<&str>,
    format: Option<&str>,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    let path = path(id, variant, format);
    let res = api.send(api.request(Method::GET, &path)).await?;
    let total = res.content_length();
    let ext = extension(res.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or(""));
    let to_stdout = output.as_deref() == Some(Path::new("-"));
    let target = match output {
        Some(p) => p,
        None => PathBuf::from(match variant {
            Some(v) => format!("{id}-{v}.{ext}"),
            None => format!("{id}.{ext}"),
        }),
    };
    let label =
        if to_stdout { id.to_string() } else { target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default() };
    let bar = bytes_bar(total, &label);
    let result = if to_stdout {
        copy_body(res, &mut tokio::io::stdout(), &bar, api).await.map(|_| ())
    } else {
        save(res, &target, &bar, api).await
    };
    bar.finish_and_clear();
    result?;
    if !to_stdout {
        note(&bar, &format!("saved {}", target.display()));
        println!("{}", target.display());
    }
    Ok(())
}

async fn save(res: reqwest::Response, target: &Path, bar: &indicatif::ProgressBar, api: &Api) -> anyhow::Result<()> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if target.is_dir() {
        bail!("{} is a directory: name the file to write", target.display());
    }
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "download".into());
    let tmp = dir.join(format!(".{name}.{}.part", std::process::id()));
    let mut file = tokio::fs::File::create(&tmp).await.with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = async {
        // Ctrl-C: stop, and remove the partial file below rather than leave it behind.
        tokio::select! {
            r = copy_body(res, &mut file, bar, api) => r?,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        };
        file.sync_all().await.context("cannot sync the downloaded file")?;
        drop(file);
        tokio::fs::rename(&tmp, target).await.with_context(|| format!("cannot rename the download to {}", target.display()))
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    written
}

/// Copies the body to `out`; fails if fewer bytes came than the server announced.
async fn copy_body<W: tokio::io::AsyncWrite + Unpin>(
    res: reqwest::Response,
    out: &mut W,
    bar: &indicatif::ProgressBar,
    api: &Api,
) -> anyhow::Result<u64> {
    let expected = res.content_length();
    let mut n = 0u64;
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| api.transport_error(e))?;
        out.write_all(&chunk).await.context("cannot write the download")?;
        n += chunk.len() as u64;
        bar.inc(chunk.len() as u64);
    }
    out.flush().await.context("cannot write the download")?;
    if let Some(e) = expected {
        if n != e {
            bail!("the download stopped after {n} of {e} bytes");
        }
    }
    Ok(n)
}

fn extension(content_type: &str) -> &'static str {
    match content_type.split(';').next().unwrap_or("").trim() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "image/tiff" => "tiff",
        "image/heic" | "image/heif" => "heic",
        "image/avif" => "avif",
        "image/bmp" => "bmp",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(path("i", None, None), "/v1/images/i/original");
        assert_eq!(path("i", Some("thumb"), None), "/v1/images/i/variants/thumb");
        assert_eq!(path("i", Some("thumb"), Some("avif")), "/v1/images/i/variants/thumb.avif");
    }
}
