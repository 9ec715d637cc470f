//! The tus 1.0 headers: what the protocol sends, parsed and checked once.

use crate::error::IngestError;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use sha1::Digest as _;

pub const TUS_VERSION: &str = "1.0.0";
pub const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";
pub const CHECKSUMS: &str = "sha1,sha256";
/// The content type of a `PATCH` body.
pub const OFFSET_STREAM: &str = "application/offset+octet-stream";
/// Where a completed upload's image is: `/v1/images/{id}`.
pub const IMAGE_HEADER: &str = "imagelake-image";
/// `Upload-Metadata` is at most this long.
const MAX_METADATA: usize = 16 * 1024;

pub fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).expect("a valid status")
}

/// `Tus-Resumable: 1.0.0`, or 412.
pub fn check_version(h: &HeaderMap) -> Result<(), IngestError> {
    match h.get("tus-resumable").and_then(|v| v.to_str().ok()) {
        Some(TUS_VERSION) => Ok(()),
        Some(other) => Err(IngestError::Status(
            status(412),
            "tus_version",
            format!("Tus-Resumable `{other}` is not supported; this server speaks {TUS_VERSION}"),
        )),
        None => {
            Err(IngestError::Status(status(412), "tus_version", format!("the header Tus-Resumable: {TUS_VERSION} is required")))
        }
    }
}

fn number(h: &HeaderMap, name: &'static str) -> Result<Option<u64>, IngestError> {
    let Some(v) = h.get(name) else { return Ok(None) };
    let text = v.to_str().ok().filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    text.and_then(|s| s.parse().ok())
        .map(Some)
        .ok_or_else(|| IngestError::BadRequest("invalid_header", format!("{name} must be a non-negative integer")))
}

pub fn upload_offset(h: &HeaderMap) -> Result<u64, IngestError> {
    number(h, "upload-offset")?.ok_or_else(|| IngestError::BadRequest("invalid_header", "Upload-Offset is required".into()))
}

pub fn upload_length(h: &HeaderMap) -> Result<Option<u64>, IngestError> {
    number(h, "upload-length")
}

pub fn content_length(h: &HeaderMap) -> Result<Option<u64>, IngestError> {
    number(h, "content-length")
}

/// `Upload-Defer-Length: 1`.
pub fn deferred(h: &HeaderMap) -> Result<bool, IngestError> {
    match h.get("upload-defer-length") {
        None => Ok(false),
        Some(v) if v == "1" => Ok(true),
        Some(_) => Err(IngestError::BadRequest("invalid_header", "Upload-Defer-Length must be 1".into())),
    }
}

/// The body of a `PATCH` (or of a creation with upload) must be `application/offset+octet-stream`.
pub fn check_body_type(h: &HeaderMap) -> Result<(), IngestError> {
    let ct = h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(OFFSET_STREAM) {
        Ok(())
    } else {
        Err(IngestError::Status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type",
            format!("the body's Content-Type must be {OFFSET_STREAM}, not `{ct}`"),
        ))
    }
}

/// The client's options, from `Upload-Metadata` (`key base64,key base64`).
#[derive(Debug, Default, PartialEq)]
pub struct Metadata {
    pub filename: Option<String>,
    pub filetype: Option<String>,
    pub variants: Option<String>,
    pub callback_url: Option<String>,
}

pub fn metadata(raw: &str) -> Result<Metadata, IngestError> {
    let bad = |m: String| IngestError::BadRequest("invalid_metadata", m);
    if raw.len() > MAX_METADATA {
        return Err(bad(format!("Upload-Metadata is longer than {MAX_METADATA} bytes")));
    }
    let mut out = Metadata::default();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = match pair.split_once(' ') {
            Some((k, v)) => (k, v.trim()),
            None => (pair, ""),
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| bad(format!("the value of `{key}` in Upload-Metadata is not base64")))?;
        let text = || String::from_utf8(bytes.clone()).map_err(|_| bad(format!("the value of `{key}` is not UTF-8")));
        match key {
            "filename" => out.filename = Some(text()?),
            "filetype" => out.filetype = Some(text()?),
            "variants" => out.variants = Some(text()?),
            "callback_url" => out.callback_url = Some(text()?),
            // Other keys are the client's own (tus-js-client sends `name`, `type` ...).
            _ => {}
        }
    }
    Ok(out)
}

/// An `Upload-Checksum` to check a chunk against.
pub enum Checksum {
    Sha1(sha1::Sha1, Vec<u8>),
    Sha256(sha2::Sha256, Vec<u8>),
}

impl Checksum {
    pub fn parse(h: &HeaderMap) -> Result<Option<Checksum>, IngestError> {
        let Some(v) = h.get("upload-checksum") else { return Ok(None) };
        let bad = |m: &str| IngestError::BadRequest("bad_checksum", m.to_string());
        let text = v.to_str().map_err(|_| bad("Upload-Checksum is not ASCII"))?;
        let (algo, value) = text.trim().split_once(' ').ok_or_else(|| bad("Upload-Checksum is `algorithm base64`"))?;
        let digest = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| bad("the Upload-Checksum value is not base64"))?;
        match algo {
            "sha1" => Ok(Some(Checksum::Sha1(sha1::Sha1::new(), digest))),
            "sha256" => Ok(Some(Checksum::Sha256(sha2::Sha256::new(), digest))),
            other => Err(IngestError::BadRequest(
                "bad_checksum_algorithm",
                format!("checksum algorithm `{other}` is not supported; use one of {CHECKSUMS}"),
            )),
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        match self {
            Checksum::Sha1(h, _) => h.update(chunk),
            Checksum::Sha256(h, _) => h.update(chunk),
        }
    }

    pub fn matches(self) -> bool {
        match self {
            Checksum::Sha1(h, want) => h.finalize().as_slice() == want.as_slice(),
            Checksum::Sha256(h, want) => h.finalize().as_slice() == want.as_slice(),
        }
    }
}

/// An HTTP date, as `Upload-Expires` wants it.
pub fn http_date(t: DateTime<Utc>) -> HeaderValue {
    HeaderValue::from_str(&t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_decodes_known_keys_and_keeps_unicode() {
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let raw = format!("filename {},variants {},name {},empty", b("Zürich 東京.jpg"), b("thumb"), b("x"));
        let m = metadata(&raw).unwrap();
        assert_eq!(m.filename.as_deref(), Some("Zürich 東京.jpg"));
        assert_eq!(m.variants.as_deref(), Some("thumb"));
        assert!(metadata("filename ***").is_err());
    }

    #[test]
    fn checksums_check() {
        let mut h = HeaderMap::new();
        let digest = sha1::Sha1::digest(b"abc");
        let value = format!("sha1 {}", base64::engine::general_purpose::STANDARD.encode(digest));
        h.insert("upload-checksum", value.parse().unwrap());
        let mut c = Checksum::parse(&h).unwrap().unwrap();
        c.update(b"ab");
        c.update(b"c");
        assert!(c.matches());
        h.insert("upload-checksum", "md5 AAAA".parse().unwrap());
        assert!(Checksum::parse(&h).is_err());
    }
}
