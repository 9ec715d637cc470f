//! imagelake-ingest: the HTTP API for uploads, downloads and image records.

mod capacity;
mod download;
pub mod error;
mod idempotency;
mod images;
mod inspect;
mod sniff;
mod upload;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use imagelake_core::app::Context;

/// The routes under `/v1/images`.
pub fn router() -> Router<Context> {
    Router::new()
        .route("/v1/images", post(upload::create).get(images::list))
        .route("/v1/images/{id}", get(images::show).delete(images::delete))
        .route("/v1/images/{id}/original", get(download::original))
        .route("/v1/images/{id}/variants/{name}", get(download::variant))
        // Bodies are streamed and limited by `ingest.max_upload_bytes`, not buffered.
        .layer(DefaultBodyLimit::disable())
}
