//! The HTTP layers every service shares: a request id on every request (echoed in
//! `Request-Id`, carried into logs and jobs), a trace span per request, and problem+json
//! for every client error, including the ones axum's extractors produce in plain text,
//! and the request count and latency by route template (`metrics.rs`).

use crate::problem::Problem;
use axum::body::Body;
use axum::http::{header, HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub const REQUEST_ID: &str = "request-id";

pub fn layers(router: Router) -> Router {
    let id = HeaderName::from_static(REQUEST_ID);
    router
        .fallback(|| async { Problem::not_found("no such route") })
        .layer(axum::middleware::map_response(problem_for_plain_errors))
        .layer(PropagateRequestIdLayer::new(id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
            let rid = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %rid)
        }))
        .layer(SetRequestIdLayer::new(id, MakeRequestUuid))
        // Before the id is set: a client's id that is not a plain short token is dropped,
        // so that a generated one takes its place.
        .layer(axum::middleware::map_request(drop_unusable_request_id))
        // Outermost, so that the time counted is the whole request's.
        .layer(axum::middleware::from_fn(crate::metrics::track))
}

/// Longest client `Request-Id` kept.
pub const MAX_REQUEST_ID: usize = 128;

/// Whether a client's request id is kept as it is: 1 to [`MAX_REQUEST_ID`] characters of
/// letters, digits and `-_.:/+=`. Anything else (a 250 KB value, control characters,
/// spaces) would travel into every log line and job message.
pub fn usable_request_id(v: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&v.len()) && v.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

async fn drop_unusable_request_id(mut req: Request<Body>) -> Request<Body> {
    let headers = req.headers_mut();
    let bad = headers.get_all(REQUEST_ID).iter().count() > 1
        || headers.get(REQUEST_ID).is_some_and(|v| !usable_request_id(v.as_bytes()));
    if bad {
        headers.remove(REQUEST_ID);
    }
    req
}

/// Rewrites a plain-text 4xx (an extractor's rejection, a 405) as problem+json.
async fn problem_for_plain_errors(res: Response) -> Response {
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    if !status.is_client_error() || is_problem {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        _ => "bad_request",
    };
    let detail = if text.trim().is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { text };
    let mut out = Problem::new(status, code, detail).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_short_plain_tokens() {
        assert!(super::usable_request_id(b"0190b5a0-0000-7000-8000-000000000000"));
        assert!(super::usable_request_id(b"trace:abc/1+2=3_x.y"));
        for bad in [&b""[..], b"has space", b"new\nline", &[b'a'; 129], "é".as_bytes()] {
            assert!(!super::usable_request_id(bad), "{bad:?}");
        }
    }
}
