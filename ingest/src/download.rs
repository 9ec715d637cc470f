//! Downloads of originals and variants: streamed, with `Content-Length`, `ETag`,
//! `If-None-Match` (304), one `Range` (206), and `410 Gone` once a variant expired.
//!
//! A variant may be stored in several formats (a preset's `formats`, in order of
//! preference; the record has one entry per format). `.../variants/{name}` sends the one
//! the request's `Accept` weighs highest (`crate::accept`), with `Vary: Accept`, or `406`
//! when it takes none of them; `.../variants/{name}.{ext}` asks for one format. Each
//! format is its own object, with its own `ETag`.

use crate::accept::Accept;
use crate::error::IngestError;
use crate::images::find;
#[allow(unused_imports)]
use crate::upload::ImageBytes;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use imagelake_core::app::Context;
use imagelake_core::auth::Principal;
use imagelake_core::config::OutputFormat;
use imagelake_core::ids;
use imagelake_core::lake::{DownloadRow, Event};
#[allow(unused_imports)]
use imagelake_core::problem::Problem;
use imagelake_core::record::{self, ImageRecord, VariantRecord, VariantState};
use imagelake_core::store::StoreError;
use std::ops::Range;

/// The original as uploaded, streamed.
#[utoipa::path(
    get,
    path = "/v1/images/{id}/original",
    tag = "images",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The image id (a UUIDv7)"),
        ("Range" = Option<String>, Header, description = "One `bytes=` range; several, or another unit, get the whole object"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: `304` if unchanged"),
        ("If-Range" = Option<String>, Header, description = "The `Range` is honoured only while the `ETag` still matches"),
    ),
    responses(
        (status = 200, description = "The bytes", content((ImageBytes = "image/*"), (ImageBytes = "application/octet-stream")),
            headers(("ETag" = String), ("Content-Length" = u64), ("Accept-Ranges" = String))),
        (status = 206, description = "The requested range", content((ImageBytes = "image/*"), (ImageBytes = "application/octet-stream")),
            headers(("Content-Range" = String), ("ETag" = String))),
        (status = 304, description = "Not modified (`If-None-Match`)", headers(("ETag" = String))),
        (status = 400, description = "A malformed path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such image for this key (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "The range starts past the end (`range_not_satisfiable`)", body = Problem, content_type = "application/problem+json",
            headers(("Content-Range" = String, description = "`bytes */SIZE`"))),
        (status = 503, description = "The object store is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn original(
    State(ctx): State<Context>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, IngestError> {
    let rec = find(&ctx, &principal, &id).await?;
    // The content hash is the strongest validator there is, and the same on every backend.
    let etag = format!("\"{}\"", rec.sha256);
    let key = record::original_key(&rec.customer, &rec.id);
    // A delete that runs meanwhile removes the object before the record: not found.
    let missing = || IngestError::NotFound(rec.id.clone());
    serve(&ctx, &headers, &key, &etag, &rec.content_type, rec.bytes, (&rec.id, &rec.customer, None), missing).await
}

/// A processed variant, streamed, in the stored format the request's `Accept` prefers.
#[utoipa::path(
    get,
    path = "/v1/images/{id}/variants/{name}",
    tag = "images",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The image id (a UUIDv7)"),
        ("name" = String, Path, description = "The variant preset's name (e.g. `thumb`). `NAME.EXT` asks for one format (the next operation)"),
        ("Accept" = Option<String>, Header, description = "The media types the client takes, with `q` weights (RFC 9110): of the formats the \
            variant is stored in, the one weighed highest is sent, the preset's order of preference breaking ties. None: the preset's first format"),
        ("Range" = Option<String>, Header, description = "One `bytes=` range; several, or another unit, get the whole object"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: `304` if unchanged"),
        ("If-Range" = Option<String>, Header, description = "The `Range` is honoured only while the `ETag` still matches"),
    ),
    responses(
        (status = 200, description = "The bytes", content((ImageBytes = "image/*"), (ImageBytes = "application/octet-stream")),
            headers(("ETag" = String), ("Content-Length" = u64), ("Accept-Ranges" = String), ("Vary" = String, description = "`Accept`"))),
        (status = 206, description = "The requested range", content((ImageBytes = "image/*"), (ImageBytes = "application/octet-stream")),
            headers(("Content-Range" = String), ("ETag" = String), ("Vary" = String, description = "`Accept`"))),
        (status = 304, description = "Not modified (`If-None-Match`)", headers(("ETag" = String), ("Vary" = String, description = "`Accept`"))),
        (status = 400, description = "A malformed path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such image (`not_found`), or no such variant (yet) (`variant_not_found`)", body = Problem, content_type = "application/problem+json",
            headers(("Vary" = String, description = "`Accept`"))),
        (status = 406, description = "The variant is stored in no media type the `Accept` header allows (`not_acceptable`); the detail lists those it is stored in",
            body = Problem, content_type = "application/problem+json", headers(("Vary" = String, description = "`Accept`"))),
        (status = 410, description = "The variant expired and was deleted (`variant_expired`)", body = Problem, content_type = "application/problem+json",
            headers(("Vary" = String, description = "`Accept`"))),
        (status = 416, description = "The range starts past the end (`range_not_satisfiable`)", body = Problem, content_type = "application/problem+json",
            headers(("Content-Range" = String, description = "`bytes */SIZE`"), ("Vary" = String, description = "`Accept`"))),
        (status = 503, description = "The object store is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn variant(
    State(ctx): State<Context>,
    principal: Principal,
    Path((id, segment)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    // One route serves both shapes of `record::variant_url` and `record::variant_format_url`
    // (the router matches whole segments only).
    match record::variant_segment(&segment) {
        (name, Some(ext)) => variant_as(&ctx, &principal, &id, name, ext, &headers).await.into_response(),
        (name, None) => {
            // Every answer depends on `Accept`, errors too, so that no cache keeps one for all.
            let mut res = negotiated(&ctx, &principal, &id, name, &headers).await.into_response();
            res.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
            res
        }
    }
}

/// One format of a processed variant, streamed, whatever the request's `Accept` says.
#[utoipa::path(
    get,
    path = "/v1/images/{id}/variants/{name}.{ext}",
    tag = "images",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The image id (a UUIDv7)"),
        ("name" = String, Path, description = "The variant preset's name (e.g. `thumb`)"),
        ("ext" = String, Path, description = "The format: `jpg` (or `jpeg`), `png`, `webp` or `avif`"),
        ("Range" = Option<String>, Header, description = "One `bytes=` range; several, or another unit, get the whole object"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: `304` if unchanged"),
        ("If-Range" = Option<String>, Header, description = "The `Range` is honoured only while the `ETag` still matches"),
    ),
    responses(
        (status = 200, description = "The bytes", content((ImageBytes = "image/*"), (ImageBytes = "application/octet-stream")),
            headers(("ETag" = String), ("Content-Length" = u64), ("Accept-Ranges" = String))),
        (status = 206, description = "The requested range", content((ImageBytes = "image/*"), (ImageBytes = "application/octet-stream")),
            headers(("Content-Range" = String), ("ETag" = String))),
        (status = 304, description = "Not modified (`If-None-Match`)", headers(("ETag" = String))),
        (status = 400, description = "A malformed path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or an unknown one (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such image (`not_found`); no such variant (yet), an unknown extension, or a format the variant is not stored in (`variant_not_found`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The variant expired and was deleted (`variant_expired`)", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "The range starts past the end (`range_not_satisfiable`)", body = Problem, content_type = "application/problem+json",
            headers(("Content-Range" = String, description = "`bytes */SIZE`"))),
        (status = 503, description = "The object store is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn variant_as(
    ctx: &Context,
    principal: &Principal,
    id: &str,
    name: &str,
    ext: &str,
    headers: &HeaderMap,
) -> Result<Response, IngestError> {
    let rec = find(ctx, principal, id).await?;
    let not_found = || IngestError::NoVariant(id.into(), format!("{name}.{ext}").chars().take(64).collect());
    let format = OutputFormat::from_extension(ext).ok_or_else(not_found)?;
    let v = rec.variants.iter().find(|v| v.name == name && v.format == format.as_str()).ok_or_else(not_found)?;
    send_variant(ctx, &rec, v, headers).await
}

/// The variant `name` in the stored, unexpired format the request's `Accept` weighs
/// highest; of equal weights, the first in the record (the preset's order of preference).
async fn negotiated(
    ctx: &Context,
    principal: &Principal,
    id: &str,
    name: &str,
    headers: &HeaderMap,
) -> Result<Response, IngestError> {
    let rec = find(ctx, principal, id).await?;
    let stored: Vec<&VariantRecord> = rec.variants.iter().filter(|v| v.name == name).collect();
    let Some(first) = stored.first() else {
        return Err(IngestError::NoVariant(id.into(), name.chars().take(64).collect()));
    };
    let now = ctx.clock.now();
    let ready: Vec<&VariantRecord> = stored.iter().copied().filter(|v| !expired(v, now)).collect();
    if ready.is_empty() {
        return Err(IngestError::Gone(id.into(), name.into(), first.expires_at.to_rfc3339()));
    }
    let accept = Accept::from_headers(headers);
    match accept.choose(ready.iter().copied(), |v| content_type(v)) {
        Some(v) => send_variant(ctx, &rec, v, headers).await,
        None => {
            let types: Vec<&str> = ready.iter().map(|v| content_type(v)).collect();
            Err(IngestError::NotAcceptable(id.into(), name.into(), types.join(", ")))
        }
    }
}

/// Expired by retention (the sweep may not have run yet).
fn expired(v: &VariantRecord, now: DateTime<Utc>) -> bool {
    v.state == VariantState::Expired || v.expires_at <= now
}

/// The media type of a stored format.
fn content_type(v: &VariantRecord) -> &'static str {
    OutputFormat::from_extension(&v.format).map_or("application/octet-stream", |f| f.content_type())
}

/// One stored format of a variant: `410` once it expired or its object is gone.
async fn send_variant(ctx: &Context, rec: &ImageRecord, v: &VariantRecord, headers: &HeaderMap) -> Result<Response, IngestError> {
    // Expired by retention, or the object gone (expired, or the image deleted meanwhile)
    // before the HEAD or between the HEAD and the GET: all the same answer.
    let gone = || IngestError::Gone(rec.id.clone(), v.name.clone(), v.expires_at.to_rfc3339());
    if expired(v, ctx.clock.now()) {
        return Err(gone());
    }
    let key = v.object_key(&rec.customer, &rec.id);
    let etag = match ctx.store.head(&key).await? {
        Some(m) => m.etag,
        None => return Err(gone()),
    };
    serve(ctx, headers, &key, &etag, content_type(v), v.bytes, (&rec.id, &rec.customer, Some(&v.name)), gone).await
}

// One function serves originals and variants; its arguments are what differs between them.
#[allow(clippy::too_many_arguments)]
async fn serve(
    ctx: &Context,
    headers: &HeaderMap,
    key: &str,
    etag: &str,
    content_type: &str,
    size: u64,
    who: (&str, &str, Option<&str>),
    missing: impl FnOnce() -> IngestError,
) -> Result<Response, IngestError> {
    if if_none_match(headers, etag) {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        res.headers_mut().insert(header::ETAG, hv(etag));
        return Ok(res);
    }
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        // A Range is honoured only while the client's copy (If-Range) is still current.
        Some(r) if if_range_ok(headers, etag) => parse_range(r, size)?,
        _ => None,
    };
    let got = match ctx.store.get(key, range.clone()).await {
        Ok(got) => got,
        Err(StoreError::NotFound(_)) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    let served = got.range.end - got.range.start;
    let status = if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let (image_id, customer, variant) = (who.0.to_string(), who.1.to_string(), who.2.map(str::to_string));
    let lake = ctx.lake.clone();
    let clock = ctx.clock.clone();
    // The download is logged once the body has been sent whole, with the bytes sent.
    let mut sent = 0u64;
    let body = got.body.map(move |chunk| {
        if let Ok(c) = &chunk {
            sent += c.len() as u64;
            if sent == served {
                let at = clock.now();
                let event = Event::Download(DownloadRow {
                    event_id: DownloadRow::event_id_of(&image_id, variant.as_deref(), &ids::new_id()),
                    image_id: image_id.clone(),
                    customer_id: customer.clone(),
                    variant: variant.clone(),
                    bytes: served,
                    served_at: at,
                });
                lake.append_buffered(event);
            }
        }
        chunk
    });
    let mut res = Response::new(Body::from_stream(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, hv(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(served));
    h.insert(header::ETAG, hv(etag));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    if range.is_some() {
        h.insert(header::CONTENT_RANGE, hv(&format!("bytes {}-{}/{}", got.range.start, got.range.end - 1, got.meta.size)));
    }
    Ok(res)
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

fn if_range_ok(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => v.trim() == etag,
    }
}

/// One `bytes=` range. Several ranges, or a syntax we do not know, are ignored (the whole
/// object is sent, as RFC 9110 allows); a range outside the object is a 416.
pub fn parse_range(header: &str, size: u64) -> Result<Option<Range<u64>>, IngestError> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return Ok(None) };
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        // The last `b` bytes.
        let Ok(n) = b.parse::<u64>() else { return Ok(None) };
        if n == 0 || size == 0 {
            return Err(IngestError::RangeNotSatisfiable(size));
        }
        size.saturating_sub(n)..size
    } else {
        let Ok(start) = a.parse::<u64>() else { return Ok(None) };
        let end = if b.is_empty() {
            size
        } else {
            match b.parse::<u64>() {
                Ok(e) if e >= start => e.saturating_add(1).min(size),
                _ => return Ok(None),
            }
        };
        if start >= size {
            return Err(IngestError::RangeNotSatisfiable(size));
        }
        start..end
    };
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000).unwrap(), Some(0..100));
        assert_eq!(parse_range("bytes=900-", 1000).unwrap(), Some(900..1000));
        assert_eq!(parse_range("bytes=-100", 1000).unwrap(), Some(900..1000));
        assert_eq!(parse_range("bytes=990-2000", 1000).unwrap(), Some(990..1000));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000).unwrap(), None);
        assert_eq!(parse_range("items=0-1", 1000).unwrap(), None);
        assert_eq!(parse_range("bytes=5-1", 1000).unwrap(), None);
        assert!(parse_range("bytes=1000-", 1000).is_err());
        assert!(parse_range("bytes=-0", 1000).is_err());
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// One range that overlaps the object is that part of it; one that starts past its
        /// end is 416; anything else (several ranges, another unit, a malformed one) is
        /// the whole object.
        #[test]
        fn ranges_round_trip(size in prop_oneof![Just(0u64), 1..10_000u64, any::<u64>()],
                             start in prop_oneof![0..10_000u64, any::<u64>()], len in 0..20_000u64, suffix in any::<bool>()) {
            if suffix {
                let n = len;
                match parse_range(&format!("bytes=-{n}"), size) {
                    Ok(r) => prop_assert_eq!(r, Some(size - n.min(size)..size)),
                    Err(e) => prop_assert!(n == 0 || size == 0, "{e}"),
                }
            } else {
                let end = start.saturating_add(len);
                match parse_range(&format!("bytes={start}-{end}"), size) {
                    Ok(r) => prop_assert_eq!(r, Some(start..end.saturating_add(1).min(size))),
                    Err(e) => {
                        prop_assert!(start >= size);
                        prop_assert_eq!(e.code(), "range_not_satisfiable");
                    }
                }
                prop_assert_eq!(parse_range(&format!("bytes={start}-{end},0-1"), size).unwrap(), None);
                prop_assert_eq!(parse_range(&format!("items={start}-{end}"), size).unwrap(), None);
            }
        }

        /// Any header: no panic; a range is never empty and never past the object.
        #[test]
        fn any_range_header(h in prop_oneof![any::<String>(), " ?(bytes|items)= ?[0-9+-]{0,8} ?-? ?[0-9+-]{0,8}"], size in prop_oneof![0..100u64, any::<u64>()]) {
            match parse_range(&h, size) {
                Ok(Some(r)) => prop_assert!(r.start < r.end && r.end <= size, "{r:?} of {size}"),
                Ok(None) => {}
                Err(e) => prop_assert_eq!(e.code(), "range_not_satisfiable"),
            }
        }
    }
}
