//! Resumable uploads: a small tus 1.0 client (`POST /v1/uploads`, `PATCH` chunks, `HEAD`
//! to resume), for `imagelake upload` of files above `--resumable-above`.
//!
//! Each chunk is one PATCH whose body is streamed from the file (never a whole chunk in
//! memory). The upload's URL is kept in a small JSON file under the client's state
//! directory (`$XDG_STATE_HOME/imagelake/uploads/`, else `~/.local/state/imagelake/uploads/`),
//! keyed by the server's URL, the file's absolute path, its size and its mtime: running
//! the same command again after Ctrl-C, a dropped connection or a server restart asks the
//! server where it stands (`HEAD` → `Upload-Offset`) and sends the rest only. Within one run
//! a dropped connection, a 5xx, a 409 `offset_mismatch`, a 423 `upload_locked` or a 429 is
//! retried the same way, with backoff, up to `--retries` times in a row without progress
//! (an offset further than any the server told of before).

use crate::api::{Api, ApiError};
use crate::progress::{bytes_bar, note};
use crate::upload::CHUNK;
use anyhow::{anyhow, Context as _};
use futures::TryStreamExt;
use indicatif::ProgressBar;
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Body, Method, Url};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

const TUS_VERSION: &str = "1.0.0";
const OFFSET_OCTETS: &str = "application/offset+octet-stream";
/// Requests without a large body (create, HEAD) that take longer than this are stuck.
const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// `--chunk-size` and `--retries`.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub chunk_size: u64,
    pub retries: u32,
}

/// What the upload is of: the file as it is now, and how it is to be processed.
pub struct Source<'a> {
    pub path: &'a Path,
    pub size: u64,
    pub content_type: &'a str,
    pub variants: &'a [&'a str],
}

/// Uploads `src` resumably; returns the image's id once the server has committed it.
pub async fn upload(api: &Api, src: &Source<'_>, opts: Options) -> anyhow::Result<String> {
    let label = src.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bar = bytes_bar(Some(src.size), &label);
    let mut session = Session::open(api, src, opts, bar.clone())?;
    let result = tokio::select! {
        r = session.run() => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!(
            "interrupted at {} of {} bytes: run the same command again to resume",
            bar.position(),
            src.size
        )),
    };
    bar.finish_and_clear();
    result
}

/// The resume state of one upload, as a JSON file.
#[derive(Serialize, Deserialize, Debug)]
struct Saved {
    server: String,
    path: String,
    size: u64,
    mtime: String,
    variants: String,
    upload_url: String,
}

impl Saved {
    fn same_upload(&self, o: &Saved) -> bool {
        (&self.server, &self.path, self.size, &self.mtime, &self.variants) == (&o.server, &o.path, o.size, &o.mtime, &o.variants)
    }
}

/// Why a step failed, and so what comes next.
enum Failure {
    /// A dropped connection, a 5xx, a 409, a 423 or a 429: ask the server where it stands,
    /// then go on.
    Retry(anyhow::Error),
    /// 404/410: the server no longer has the upload; start a new one.
    Gone(anyhow::Error),
    /// Anything else: give up.
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast_ref::<ApiError>().map(|a| a.status) {
            None => Failure::Retry(e), // the transport: no answer, or a cut answer
            // 409: the offset moved (a cut PATCH's prefix was stored meanwhile); 423: a cut
            // PATCH still holds the upload's lock; 429: the rate limit.
            Some(s) if s >= 500 || s == 409 || s == 423 || s == 429 => Failure::Retry(e),
            Some(404 | 410) => Failure::Gone(e),
            Some(_) => Failure::Fatal(e),
        }
    }
}

/// What the server said about the upload.
struct Position {
    offset: u64,
    /// `Imagelake-Image`'s id once the upload is complete and committed.
    image: Option<String>,
}

struct Session<'a> {
    api: &'a Api,
    src: &'a Source<'a>,
    opts: Options,
    bar: ProgressBar,
    /// The state file, and what it holds (without `upload_url`, until there is one).
    state_file: Option<PathBuf>,
    saved: Saved,
    /// The upload being sent to, if any.
    url: Option<Url>,
}

impl<'a> Session<'a> {
    fn open(api: &'a Api, src: &'a Source<'a>, opts: Options, bar: ProgressBar) -> anyhow::Result<Self> {
        let abs = std::path::absolute(src.path).with_context(|| format!("cannot resolve {}", src.path.display()))?;
        let meta = std::fs::metadata(&abs).with_context(|| format!("cannot read {}", abs.display()))?;
        let mtime = match meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()) {
            Some(d) => format!("{}.{:09}", d.as_secs(), d.subsec_nanos()),
            None => String::new(),
        };
        let saved = Saved {
            server: api.base.clone(),
            path: abs.to_string_lossy().into_owned(),
            size: src.size,
            mtime,
            variants: src.variants.join(","),
            upload_url: String::new(),
        };
        let key = format!("{}\n{}\n{}\n{}\n{}", saved.server, saved.path, saved.size, saved.mtime, saved.variants);
        let state_file = state_dir().map(|d| d.join(format!("{:016x}.json", fnv1a(key.as_bytes()))));
        let mut url = None;
        if let Some(file) = &state_file {
            if let Ok(text) = std::fs::read_to_string(file) {
                // Another upload's (a hash collision) or unreadable: overwritten on create.
                if let Ok(s) = serde_json::from_str::<Saved>(&text) {
                    if s.same_upload(&saved) {
                        url = Url::parse(&s.upload_url).ok();
                    }
                }
            }
        }
        Ok(Session { api, src, opts, bar, state_file, saved, url })
    }

    async fn run(&mut self) -> anyhow::Result<String> {
        // Where the server stands: None until a create, a HEAD or a PATCH has told us.
        let mut offset: Option<u64> = None;
        // Failures in a row since the furthest offset the server has told of.
        let mut failures = 0u32;
        let mut furthest: Option<u64> = None;
        let resumed = self.url.is_some();
        if resumed {
            note(&self.bar, &format!("resuming the upload of {}", self.src.path.display()));
        }
        loop {
            let step = match (&self.url, offset) {
                (None, _) => self.create().await,
                (Some(_), None) => self.head().await,
                (Some(_), Some(o)) => self.patch(o).await,
            };
            match step {
                Ok(pos) => {
                    if let Some(id) = pos.image {
                        self.forget();
                        return Ok(id);
                    }
                    if pos.offset > self.src.size {
                        // Not this file's upload (or a confused server): start afresh.
                        note(&self.bar, "the server's offset is past the end of the file: starting a new upload");
                        self.forget();
                        self.url = None;
                        offset = None;
                        furthest = None;
                        failures += 1;
                    } else {
                        if furthest.is_none_or(|f| pos.offset > f) {
                            furthest = Some(pos.offset);
                            failures = 0; // progress
                        }
                        self.bar.set_position(pos.offset);
                        offset = Some(pos.offset);
                    }
                }
                Err(Failure::Fatal(e)) => {
                    if let Some(a) = e.downcast_ref::<ApiError>() {
                        // The server refused the upload itself: there is nothing to resume.
                        if matches!(a.status, 400 | 413 | 415) {
                            self.forget();
                        }
                    }
                    return Err(e);
                }
                Err(Failure::Gone(e)) => {
                    if self.url.is_none() {
                        return Err(e); // the create itself: no tus endpoint here
                    }
                    note(&self.bar, &format!("the server no longer has the upload ({e:#}): starting a new one"));
                    self.forget();
                    self.url = None;
                    offset = None;
                    furthest = None;
                    self.bar.set_position(0);
                    failures += 1;
                }
                Err(Failure::Retry(e)) => {
                    failures += 1;
                    if failures > self.opts.retries {
                        let hint = if self.url.is_some() && self.state_file.is_some() {
                            ": run the same command again to resume"
                        } else {
                            ""
                        };
                        return Err(e.context(format!(
                            "gave up after {} tries without progress at {} of {} bytes{hint}",
                            failures,
                            self.bar.position(),
                            self.src.size
                        )));
                    }
                    let wait = backoff(failures);
                    note(
                        &self.bar,
                        &format!("{e:#}; retrying in {:.1} s ({failures}/{})", wait.as_secs_f64(), self.opts.retries),
                    );
                    tokio::time::sleep(wait).await;
                    offset = None; // ask the server where it stands
                }
            }
        }
    }

    /// `POST /v1/uploads`: a new upload of the file's length, with its name, type and variants.
    async fn create(&mut self) -> Result<Position, Failure> {
        let mut metadata = vec![format!("filename {}", base64(self.file_name().as_bytes()))];
        metadata.push(format!("filetype {}", base64(self.src.content_type.as_bytes())));
        if !self.src.variants.is_empty() {
            metadata.push(format!("variants {}", base64(self.src.variants.join(",").as_bytes())));
        }
        let endpoint = Url::parse(&self.api.url("/v1/uploads")).context("the server URL")?;
        let req = self
            .api
            .request(Method::POST, endpoint.as_str())
            .header("Tus-Resumable", TUS_VERSION)
            .header("Upload-Length", self.src.size)
            .header("Upload-Metadata", metadata.join(","))
            .header(CONTENT_LENGTH, 0)
            .timeout(SMALL_REQUEST_TIMEOUT);
        let res = self.api.send(req).await?;
        let location = header(res.headers(), LOCATION.as_str()).context("the server created the upload without a Location")?;
        let url = endpoint.join(&location).with_context(|| format!("the upload's Location `{location}` is not a URL"))?;
        if url.origin() != endpoint.origin() {
            // The key goes with every request to the upload: only to the server it is for.
            return Err(Failure::Fatal(anyhow!("the server sent the upload to another origin ({url}); refusing to follow")));
        }
        let offset = header(res.headers(), "upload-offset").and_then(|v| v.parse().ok()).unwrap_or(0);
        self.url = Some(url.clone());
        self.remember(&url);
        Ok(Position { offset, image: image_id(res.headers()) })
    }

    /// `HEAD` the upload: its offset, and its image once complete.
    async fn head(&mut self) -> Result<Position, Failure> {
        let url = self.url.clone().expect("an upload");
        let req =
            self.api.request(Method::HEAD, url.as_str()).header("Tus-Resumable", TUS_VERSION).timeout(SMALL_REQUEST_TIMEOUT);
        let res = self.api.send(req).await?;
        if let Some(len) = header(res.headers(), "upload-length").and_then(|v| v.parse::<u64>().ok()) {
            if len != self.src.size {
                note(&self.bar, &format!("the server's upload is of {len} bytes, not {}: starting a new one", self.src.size));
                return Err(Failure::Gone(anyhow!("upload length mismatch")));
            }
        }
        let offset = header(res.headers(), "upload-offset")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Failure::Fatal(anyhow!("the server's HEAD of {url} has no Upload-Offset")))?;
        Ok(Position { offset, image: image_id(res.headers()) })
    }

    /// One PATCH from `offset`: the next chunk, streamed from the file (or, at the end, an
    /// empty one that asks for the image once more).
    async fn patch(&mut self, offset: u64) -> Result<Position, Failure> {
        let url = self.url.clone().expect("an upload");
        let len = self.opts.chunk_size.min(self.src.size - offset);
        let mut file = tokio::fs::File::open(self.src.path)
            .await
            .with_context(|| format!("cannot open {}", self.src.path.display()))
            .map_err(Failure::Fatal)?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .with_context(|| format!("cannot read {}", self.src.path.display()))
            .map_err(Failure::Fatal)?;
        let counter = self.bar.clone();
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), CHUNK)
            .inspect_ok(move |chunk| counter.inc(chunk.len() as u64));
        let req = self
            .api
            .request(Method::PATCH, url.as_str())
            .header("Tus-Resumable", TUS_VERSION)
            .header(CONTENT_TYPE, OFFSET_OCTETS)
            .header("Upload-Offset", offset)
            .header(CONTENT_LENGTH, len)
            .body(Body::wrap_stream(stream));
        let res = self.api.send(req).await?;
        let image = image_id(res.headers());
        let new = header(res.headers(), "upload-offset").and_then(|v| v.parse::<u64>().ok());
        let new = match (new, &image) {
            (Some(n), _) => n,
            (None, Some(_)) => self.src.size,
            (None, None) => return Err(Failure::Fatal(anyhow!("the server's answer to a PATCH has no Upload-Offset"))),
        };
        if new == offset && len > 0 && image.is_none() {
            // Nothing stored and no error: ask again (bounded by the retries, as no progress).
            return Err(Failure::Retry(anyhow!("the server stored none of the chunk at offset {offset}")));
        }
        Ok(Position { offset: new, image })
    }

    fn file_name(&self) -> String {
        self.src.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// Writes the state file (a failure to is a warning: the upload goes on, unresumable).
    fn remember(&mut self, url: &Url) {
        let Some(file) = &self.state_file else { return };
        self.saved.upload_url = url.to_string();
        let write = || -> std::io::Result<()> {
            let dir = file.parent().expect("a state directory");
            std::fs::create_dir_all(dir)?;
            let tmp = file.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&self.saved).expect("serializable"))?;
            std::fs::rename(&tmp, file)
        };
        if let Err(e) = write() {
            note(&self.bar, &format!("warning: cannot keep the resume state in {}: {e}", file.display()));
        }
    }

    /// Deletes the state file (the upload is complete, refused or gone).
    fn forget(&mut self) {
        if let Some(file) = &self.state_file {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// Where resume state lives: `$XDG_STATE_HOME/imagelake/uploads`, else
/// `~/.local/state/imagelake/uploads`; None without a HOME.
pub fn state_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".local/state"),
    };
    Some(base.join("imagelake").join("uploads"))
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string())
}

/// The id in `Imagelake-Image: /v1/images/{id}`.
fn image_id(h: &HeaderMap) -> Option<String> {
    let v = header(h, "imagelake-image")?;
    let id = v.trim_end_matches('/').rsplit('/').next()?.to_string();
    (!id.is_empty()).then_some(id)
}

/// 0.5 s, 1 s, 2 s... up to 20 s, give or take a quarter (so that many clients cut at
/// once do not come back at once).
pub(crate) fn backoff(failures: u32) -> Duration {
    let base = (500u64 << failures.saturating_sub(1).min(6)).min(20_000);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let jitter = (nanos as u64 % (base / 2 + 1)) as i64 - (base / 4) as i64;
    Duration::from_millis((base as i64 + jitter).max(100) as u64)
}

/// 64-bit FNV-1a: the state file's name (its content is checked too).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Standard base64 with padding (RFC 4648), as tus's Upload-Metadata wants.
fn base64(bytes: &[u8]) -> String {
    use ::base64::Engine as _;
    ::base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn image_id_is_the_last_segment() {
        let mut h = HeaderMap::new();
        assert_eq!(image_id(&h), None);
        h.insert("imagelake-image", "/v1/images/0190c0de-0000-7000-8000-000000000000".parse().unwrap());
        assert_eq!(image_id(&h).as_deref(), Some("0190c0de-0000-7000-8000-000000000000"));
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert!(backoff(1) <= Duration::from_millis(700));
        assert!(backoff(3) >= Duration::from_millis(1500));
        for n in 1..40 {
            assert!(backoff(n) <= Duration::from_secs(25));
        }
    }

    #[test]
    fn failures_are_classified_by_status() {
        let api = |status| anyhow::Error::from(ApiError { status, code: "x".into(), detail: "d".into() });
        assert!(matches!(Failure::from(api(503)), Failure::Retry(_)));
        assert!(matches!(Failure::from(api(409)), Failure::Retry(_)));
        assert!(matches!(Failure::from(api(423)), Failure::Retry(_)));
        assert!(matches!(Failure::from(api(410)), Failure::Gone(_)));
        assert!(matches!(Failure::from(api(404)), Failure::Gone(_)));
        assert!(matches!(Failure::from(api(415)), Failure::Fatal(_)));
        assert!(matches!(Failure::from(api(401)), Failure::Fatal(_)));
        assert!(matches!(Failure::from(anyhow!("connection reset")), Failure::Retry(_)));
    }
}
