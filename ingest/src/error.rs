//! The ingest crate's errors, each with an HTTP status and a stable `code`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imagelake_core::meta::MetaError;
use imagelake_core::problem::Problem;
use imagelake_core::queue::QueueError;
use imagelake_core::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The key's role may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such image for this caller (another customer's image is also "not found").
    #[error("no image with id `{0}`")]
    NotFound(String),
    /// No such post or comment (`{0}`) for this caller.
    #[error("no {0} with id `{1}`")]
    NotFoundOf(&'static str, String),
    /// The request conflicts with the resource's state.
    #[error("{1}")]
    Conflict(&'static str, String),
    /// Too much waiting work: retry after a second.
    #[error("{0}")]
    Busy(&'static str),
    /// The variant exists in no record of this image, or is not made yet.
    #[error("image `{0}` has no variant `{1}` (yet)")]
    NoVariant(String, String),
    /// The variant expired and was deleted.
    #[error("variant `{1}` of image `{0}` expired at {2}")]
    Gone(String, String, String),
    /// The variant is stored in none of the media types the request's `Accept` allows;
    /// the last field lists those it is stored in.
    #[error("variant `{1}` of image `{0}` is stored as {2}; the request's Accept header allows none of them")]
    NotAcceptable(String, String, String),
    /// The body is empty.
    #[error("the request body is empty: send the image bytes, or a multipart field `file`")]
    EmptyBody,
    /// The bytes are not an image in an accepted format.
    #[error("{0}")]
    NotAnImage(String),
    /// The body is over `max_upload_bytes`.
    #[error("the upload is larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// The header declares more pixels than `[processor] max_pixels`: it could not be
    /// processed, so it is refused before it is stored.
    #[error("the image is {width}x{height}, over the limit of {max_pixels} pixels ([processor] max_pixels)")]
    ImageTooLarge { width: u32, height: u32, max_pixels: u64 },
    /// The client went away before the body was complete.
    #[error("the request body ended early: {0}")]
    Truncated(String),
    /// No byte of the body arrived for `ingest.body_idle_timeout`.
    #[error("no byte of the body arrived for {0:?}; the upload was aborted")]
    BodyTimeout(std::time::Duration),
    /// The body took longer than `ingest.max_upload_time`.
    #[error("the upload took longer than {0:?}, the longest allowed; it was aborted")]
    UploadTooSlow(std::time::Duration),
    /// This key has `ingest.max_uploads_per_key` uploads streaming already.
    #[error("{0}")]
    TooMany(String),
    /// A query parameter or header is invalid.
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// A `Range` header that lies outside the object.
    #[error("range not satisfiable for {0} bytes")]
    RangeNotSatisfiable(u64),
    /// Storage is at or over capacity.
    #[error("storage is full: {0}")]
    InsufficientStorage(String),
    /// The object store is unreachable; retry later.
    #[error("object store unavailable")]
    StoreUnavailable(#[source] StoreError),
    /// The metadata database is unreachable; retry later.
    #[error("metadata database unavailable")]
    DatabaseUnavailable(#[source] MetaError),
    /// The queue is unreachable; retry later.
    #[error("job queue unavailable")]
    QueueUnavailable(#[source] QueueError),
    /// A status of its own, for protocols that name theirs (tus: 409, 412, 423, 460 ...).
    #[error("{2}")]
    Status(StatusCode, &'static str, String),
    /// Anything else; logged, not shown.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Io(_) => IngestError::StoreUnavailable(e),
            StoreError::Body(m) => IngestError::Truncated(m),
            StoreError::InvalidRange { size, .. } => IngestError::RangeNotSatisfiable(size),
            StoreError::InvalidKey { .. } => IngestError::BadRequest("invalid_id", e.to_string()),
            StoreError::Rejected(m) => IngestError::BadRequest("invalid_parts", m),
            other => IngestError::Internal(other.to_string()),
        }
    }
}

impl From<MetaError> for IngestError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::Unavailable(_) => IngestError::DatabaseUnavailable(e),
            other => IngestError::Internal(other.to_string()),
        }
    }
}

impl From<imagelake_core::CoreError> for IngestError {
    fn from(e: imagelake_core::CoreError) -> Self {
        match e {
            imagelake_core::CoreError::Store(e) => e.into(),
            imagelake_core::CoreError::Meta(e) => e.into(),
            other => IngestError::Internal(other.to_string()),
        }
    }
}

impl From<QueueError> for IngestError {
    fn from(e: QueueError) -> Self {
        IngestError::QueueUnavailable(e)
    }
}

impl IngestError {
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::Forbidden(_) => "forbidden",
            IngestError::NotFound(_) | IngestError::NotFoundOf(..) => "not_found",
            IngestError::Conflict(code, _) => code,
            IngestError::Busy(_) => "busy",
            IngestError::NoVariant(..) => "variant_not_found",
            IngestError::Gone(..) => "variant_expired",
            IngestError::NotAcceptable(..) => "not_acceptable",
            IngestError::EmptyBody => "empty_body",
            IngestError::NotAnImage(_) => "unsupported_media_type",
            IngestError::TooLarge(_) => "payload_too_large",
            IngestError::ImageTooLarge { .. } => "image_too_large",
            IngestError::Truncated(_) => "body_incomplete",
            IngestError::BadRequest(code, _) => code,
            IngestError::BodyTimeout(_) => "body_timeout",
            IngestError::UploadTooSlow(_) => "upload_too_slow",
            IngestError::TooMany(_) => "too_many_uploads",
            IngestError::RangeNotSatisfiable(_) => "range_not_satisfiable",
            IngestError::InsufficientStorage(_) => "insufficient_storage",
            IngestError::StoreUnavailable(_) => "store_unavailable",
            IngestError::QueueUnavailable(_) => "queue_unavailable",
            IngestError::DatabaseUnavailable(_) => "database_unavailable",
            IngestError::Status(_, code, _) => code,
            IngestError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::Forbidden(_) => StatusCode::FORBIDDEN,
            IngestError::NotFound(_) | IngestError::NotFoundOf(..) | IngestError::NoVariant(..) => StatusCode::NOT_FOUND,
            IngestError::Conflict(..) => StatusCode::CONFLICT,
            IngestError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Gone(..) => StatusCode::GONE,
            IngestError::NotAcceptable(..) => StatusCode::NOT_ACCEPTABLE,
            IngestError::EmptyBody | IngestError::BadRequest(..) | IngestError::Truncated(_) => StatusCode::BAD_REQUEST,
            IngestError::NotAnImage(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::BodyTimeout(_) | IngestError::UploadTooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            IngestError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            IngestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::ImageTooLarge { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            IngestError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            IngestError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            IngestError::StoreUnavailable(_) | IngestError::QueueUnavailable(_) | IngestError::DatabaseUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            IngestError::Status(status, ..) => *status,
            IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let problem = match &self {
            IngestError::Internal(detail) => Problem::internal(detail),
            IngestError::StoreUnavailable(e) => {
                tracing::warn!(error = %e, "object store unavailable");
                Problem::unavailable(self.code(), "the object store is unavailable; retry later")
            }
            IngestError::DatabaseUnavailable(e) => {
                tracing::warn!(error = %e, "metadata database unavailable");
                Problem::unavailable(self.code(), "the metadata database is unavailable; retry later")
            }
            IngestError::QueueUnavailable(e) => {
                tracing::warn!(error = %e, "queue unavailable");
                Problem::unavailable(self.code(), "the job queue is unavailable; retry later")
            }
            IngestError::Busy(m) => Problem::unavailable(self.code(), *m).with_retry_after(1),
            IngestError::TooMany(m) => Problem::new(self.status(), self.code(), m.as_str()).with_retry_after(1),
            _ => Problem::new(self.status(), self.code(), self.to_string()),
        };
        let mut res = problem.into_response();
        if let IngestError::RangeNotSatisfiable(size) = self {
            if let Ok(v) = format!("bytes */{size}").parse() {
                res.headers_mut().insert(axum::http::header::CONTENT_RANGE, v);
            }
        }
        res
    }
}
