//! imagelake-ingest: the HTTP API for uploads, downloads and image records.

mod accept;
mod body;
mod capacity;
mod cursor;
mod download;
pub mod error;
mod idempotency;
mod images;
mod inspect;
pub mod outbox;
mod posts;
mod resumable;
mod slots;
mod sniff;
mod upload;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use imagelake_core::app::Context;

/// The OpenAPI part of these routes (merged by `imagelake_core::openapi::document`).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        upload::create,
        images::list,
        images::show,
        images::delete,
        download::original,
        download::variant,
        download::variant_as,
        posts::create::create,
        posts::read::list,
        posts::read::show,
        posts::read::delete,
        posts::comments::add,
        posts::comments::list,
        posts::comments::delete,
        resumable::tus::options,
        resumable::tus::create,
        resumable::tus::head,
        resumable::tus::patch,
        resumable::tus::terminate,
        resumable::direct::create,
        resumable::direct::complete,
    ),
    components(schemas(
        imagelake_core::post::PostView,
        imagelake_core::post::PostStatus,
        imagelake_core::post::Comment,
        posts::read::PostPage,
        posts::comments::CommentPage,
        posts::create::NewPostJson,
        posts::comments::NewCommentJson,
        posts::create::NewPostForm,
        imagelake_core::record::ImageRecord,
        imagelake_core::record::VariantRecord,
        imagelake_core::record::RecordError,
        imagelake_core::record::ExifSummary,
        imagelake_core::record::Status,
        imagelake_core::record::VariantState,
        images::ListPage,
        upload::ImageBytes,
        upload::UploadForm,
        resumable::direct::NewDirect,
        resumable::direct::DirectUpload,
        resumable::direct::PartUrl,
        resumable::direct::Completion,
        resumable::direct::SentPart,
    ))
)]
struct IngestApi;

pub fn openapi() -> utoipa::openapi::OpenApi {
    <IngestApi as utoipa::OpenApi>::openapi()
}

/// The routes under `/v1/images`.
pub fn router() -> Router<Context> {
    Router::new()
        .route("/v1/images", post(upload::create).get(images::list))
        .route("/v1/images/{id}", get(images::show).delete(images::delete))
        .route("/v1/images/{id}/original", get(download::original))
        // Also `{name}.{ext}` (one format, `download::variant_as`): the router matches whole segments.
        .route("/v1/images/{id}/variants/{name}", get(download::variant))
        // Bodies are streamed and limited by `ingest.max_upload_bytes`, not buffered.
        .layer(DefaultBodyLimit::disable())
        .merge(posts::router())
        .merge(resumable::router())
        .layer(axum::Extension(slots::UploadSlots::default()))
}
