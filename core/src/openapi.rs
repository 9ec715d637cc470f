//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes.
//!
//! Each service crate contributes its own part (`imagelake_ingest::openapi()`,
//! `imagelake_reporting::openapi()`); [`document`] merges the parts of the services a
//! process runs with the operational routes (`/healthz`, `/readyz`, `/metrics`,
//! `/openapi.json`), the problem+json schema, the bearer-key security scheme, and the
//! `Request-Id` header every answer carries. [`router`] serves it at `/openapi.json`.

use crate::problem::Problem;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, OpenApi as Document, RefOr, Type};
use utoipa::{Modify, OpenApi};

/// The name of the bearer-key security scheme; handlers say `security(("bearer" = []))`.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "imagelake",
        description = "Image uploads, processed variants, and statistics over an analytics lake of every fact. \
            Errors are `application/problem+json` (RFC 9457) with a stable `code`. \
            Authenticate with `Authorization: Bearer KEY` (roles: uploader, analyst, admin).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(crate::health::healthz, crate::health::readyz, crate::metrics::scrape, openapi_json),
    components(schemas(Problem)),
    tags(
        (name = "images", description = "Uploads, records, downloads"),
        (name = "uploads", description = "Resumable uploads: tus 1.0 at `/v1/uploads`, and direct to S3 with presigned parts"),
        (name = "stats", description = "Statistics over the lake (analyst and admin keys)"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    ),
)]
struct Operational;

/// The whole document: the operational routes plus the services' `parts`.
pub fn document(parts: impl IntoIterator<Item = Document>) -> Document {
    let mut doc = Operational::openapi();
    for part in parts {
        doc.merge(part);
    }
    Finish.modify(&mut doc);
    doc
}

/// Adds what every operation shares: the security scheme and the `Request-Id` header.
struct Finish;

impl Modify for Finish {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`Authorization: Bearer KEY`, an API key made by `imagelake keys add`"))
                    .build(),
            ),
        );
        let request_id = HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String))
            .description(Some("The request's id (the client's `Request-Id`, or a new UUID); also in the server's log"))
            .build();
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.head,
                &mut item.patch,
                &mut item.options,
                &mut item.trace,
            ];
            for op in ops.into_iter().flatten() {
                for response in op.responses.responses.values_mut() {
                    if let RefOr::T(r) = response {
                        r.headers.insert("Request-Id".into(), request_id.clone());
                    }
                }
            }
        }
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this process's routes",
        body = Object, content_type = "application/json"))
)]
pub async fn openapi_json() {}

/// `GET /openapi.json`, serving `doc` (rendered once).
pub fn router<S: Clone + Send + Sync + 'static>(doc: &Document) -> Router<S> {
    let body: Arc<str> = doc.to_json().expect("the OpenAPI document serializes").into();
    Router::new().route(
        "/openapi.json",
        get(move || {
            let body = body.clone();
            async move {
                let mut res: Response = body.to_string().into_response();
                res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                res
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operational_document_has_the_problem_schema_and_the_bearer_scheme() {
        let doc = document([]);
        let json: serde_json::Value = serde_json::from_str(&doc.to_json().unwrap()).unwrap();
        assert_eq!(json["openapi"], "3.1.0");
        for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
            assert!(json["paths"][path]["get"].is_object(), "{path} missing");
        }
        let problem = &json["components"]["schemas"]["Problem"]["properties"];
        for field in ["type", "title", "status", "detail", "code"] {
            assert!(problem[field].is_object(), "Problem.{field} missing: {problem}");
        }
        assert_eq!(json["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        assert!(json["paths"]["/readyz"]["get"]["responses"]["503"]["headers"]["Request-Id"].is_object());
        assert!(json["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/problem+json"].is_object());
    }
}
