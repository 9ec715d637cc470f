//! The HTTP layers every service shares: a request id on every request (echoed in
//! `Request-Id`, carried into logs and jobs), a trace span per request, and problem+json
//! for every client error, including the ones axum's extractors produce in plain text,
//! and the request count and latency by route template (`metrics.rs`); CORS for the
//! configured web origins ([`cors`]).

use crate::problem::Problem;
use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, StatusCode};
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

/// Request headers a browser page may send: the API's and tus's.
const CORS_REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "idempotency-key",
    "request-id",
    "tus-resumable",
    "upload-length",
    "upload-defer-length",
    "upload-metadata",
    "upload-offset",
    "upload-checksum",
];

/// Answer headers a browser page may read: where things are, and tus's state.
const CORS_EXPOSED_HEADERS: &[&str] = &[
    "location",
    "request-id",
    "retry-after",
    "content-disposition",
    "etag",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "upload-offset",
    "upload-length",
    "upload-defer-length",
    "upload-metadata",
    "upload-expires",
    "imagelake-image",
];

/// Whether `o` is `*` or an origin as browsers send it: `scheme://host[:port]`.
pub fn valid_origin(o: &str) -> bool {
    if o == "*" {
        return true;
    }
    let Some((scheme, host)) = o.split_once("://") else { return false };
    !scheme.is_empty()
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

/// CORS for the configured `origins` (outermost, so that preflights and refusals carry
/// it too); none configured, none added. Keys travel in `Authorization`, never in
/// cookies, so credentials are not allowed.
pub fn cors(router: Router, origins: &[String]) -> Router {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return router;
    }
    let names = |list: &[&'static str]| list.iter().copied().map(HeaderName::from_static).collect::<Vec<_>>();
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    router.layer(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS])
            .allow_headers(names(CORS_REQUEST_HEADERS))
            .expose_headers(names(CORS_EXPOSED_HEADERS))
            .max_age(std::time::Duration::from_secs(24 * 3600)),
    )
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

    use proptest::prelude::*;
    use std::io::{Read, Write};

    const ALLOWED: &[u8] = b"-_.:/+=";

    /// Values near the edges: allowed characters around the length limit, one stranger,
    /// and any bytes.
    fn ids() -> impl Strategy<Value = Vec<u8>> {
        let allowed = proptest::sample::select([b"abcXYZ019".as_slice(), ALLOWED].concat());
        prop_oneof![
            proptest::collection::vec(allowed.clone(), 0..=140),
            (proptest::collection::vec(allowed, 1..=130), any::<u8>(), any::<usize>()).prop_map(|(mut v, b, at)| {
                let at = at % v.len();
                v[at] = b;
                v
            }),
            proptest::collection::vec(any::<u8>(), 0..200),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Kept exactly when it is 1 to 128 bytes, each an ASCII letter or digit or one of
        /// `-_.:/+=`.
        #[test]
        fn request_ids_are_checked_byte_by_byte(v in ids()) {
            let plain = v.iter().all(|b| b.is_ascii_alphanumeric() || ALLOWED.contains(b));
            prop_assert_eq!(super::usable_request_id(&v), plain && !v.is_empty() && v.len() <= super::MAX_REQUEST_ID);
        }
    }

    /// Header values: no control characters (but tab), no surrounding whitespace.
    fn header_value() -> impl Strategy<Value = Vec<u8>> {
        ids().prop_map(|v| {
            v.into_iter().filter(|&b| b == b'\t' || (b >= 0x20 && b != 0x7F)).collect::<Vec<u8>>().trim_ascii().to_vec()
        })
    }

    /// A server with the shared layers whose one route answers 200, on a loopback port.
    fn server(rt: &tokio::runtime::Runtime) -> std::net::SocketAddr {
        rt.block_on(async {
            let app = super::layers(axum::Router::new().route("/", axum::routing::get(|| async { "ok" })));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            addr
        })
    }

    /// The status and the `request-id` headers of the answer to a GET with `ids`.
    fn get_with(addr: std::net::SocketAddr, ids: &[Vec<u8>]) -> (u16, Vec<Vec<u8>>) {
        let mut req = b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n".to_vec();
        for id in ids {
            req.extend(b"request-id: ");
            req.extend(id);
            req.extend(b"\r\n");
        }
        req.extend(b"\r\n");
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        conn.write_all(&req).unwrap();
        let mut res = Vec::new();
        conn.read_to_end(&mut res).unwrap();
        let head = &res[..res.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head")];
        let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let status = std::str::from_utf8(&lines.next().unwrap()[9..12]).unwrap().parse().unwrap();
        let ids = lines
            .filter_map(|l| l.strip_prefix(b"request-id: ".as_slice()).or_else(|| l.strip_prefix(b"Request-Id: ".as_slice())))
            .map(<[u8]>::to_vec)
            .collect();
        (status, ids)
    }

    /// Through the layers: a usable id is echoed as sent; an unusable one, or two ids, are
    /// replaced by one generated UUID. Values HTTP itself refuses are left to hyper.
    #[test]
    fn request_ids_through_the_layers() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let addr = server(&rt);
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(256));
        let [kept, replaced, refused] = [(); 3].map(|_| std::sync::atomic::AtomicUsize::new(0));
        let count = |c: &std::sync::atomic::AtomicUsize| c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        runner
            .run(&prop_oneof![3 => proptest::collection::vec(header_value(), 1..=1), 1 => proptest::collection::vec(header_value(), 0..=2)], |sent| {
                let (status, echoed) = get_with(addr, &sent);
                if status == 400 {
                    // hyper's own refusal of a header it cannot parse, before any layer.
                    count(&refused);
                    return Ok(());
                }
                prop_assert_eq!(status, 200);
                prop_assert_eq!(echoed.len(), 1, "{:?}", echoed);
                match sent.as_slice() {
                    [one] if super::usable_request_id(one) => {
                        count(&kept);
                        prop_assert_eq!(&echoed[0], one)
                    }
                    _ => {
                        count(&replaced);
                        let id = std::str::from_utf8(&echoed[0]).unwrap();
                        prop_assert!(uuid::Uuid::try_parse(id).is_ok(), "{id:?} for {sent:?}");
                        prop_assert!(!sent.contains(&echoed[0]));
                    }
                }
                Ok(())
            })
            .unwrap();
        let [kept, replaced, refused] = [kept, replaced, refused].map(|c| c.into_inner());
        assert!(kept > 20 && replaced > 20, "kept {kept}, replaced {replaced}, refused by hyper {refused}");
    }
}
