//! The web dashboard: three static files from `dashboards/web/`, embedded in the binary at
//! build time and served at `/dashboard`. The page needs no key (it holds no data); its
//! script asks the statistics API with the analyst key the user types in, which stays in
//! the browser's `sessionStorage`.
//!
//! Nothing is fetched from anywhere but this server: the Content-Security-Policy allows
//! only same-origin scripts, styles and API calls (`connect-src 'self'`), no inline script
//! or style, no frames, and `data:` images only (the empty favicon).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("../../dashboards/web/index.html");
const APP_JS: &str = include_str!("../../dashboards/web/app.js");
const APP_CSS: &str = include_str!("../../dashboards/web/app.css");

/// No external source of any kind; the API is same-origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'none'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes (stateless, so they merge into any router).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/dashboard", get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }))
        .route("/dashboard/", get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }))
        .route("/dashboard/app.js", get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }))
        .route("/dashboard/app.css", get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Small files embedded in the binary: revalidating costs nothing, and a new build is
    // seen at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    #[tokio::test]
    async fn serves_the_three_files_with_their_types_and_a_strict_csp() {
        for (path, ty, needle) in [
            ("/dashboard", "text/html", "<title>"),
            ("/dashboard/", "text/html", "<title>"),
            ("/dashboard/app.js", "text/javascript", "sessionStorage"),
            ("/dashboard/app.css", "text/css", "--accent"),
        ] {
            let res = routes::<()>().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            let h = res.headers();
            assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with(ty), "{path}");
            let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("default-src 'none'") && !csp.contains("http") && !csp.contains("unsafe"), "{csp}");
            let body = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
            assert!(String::from_utf8_lossy(&body).contains(needle), "{path}");
        }
    }

    #[test]
    fn the_files_reference_nothing_external() {
        for text in [INDEX_HTML, APP_JS, APP_CSS] {
            // The SVG namespace is a name, not something fetched.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            for bad in ["http://", "https://", "//cdn", "@import", "<script>", "style=\""] {
                assert!(!text.contains(bad), "`{bad}` in a dashboard file");
            }
        }
    }
}
