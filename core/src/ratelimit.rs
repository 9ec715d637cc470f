//! Per-key request rate limits on the API routes (`[http] rate_limit`, `rate_burst`),
//! with `tower_governor`'s GCRA limiter.
//!
//! A request is counted against its key (a tag of its `Authorization` value, so that no
//! database lookup comes first); a request without a key, against its peer's address.
//! Over the limit it answers `429 rate_limited` problem+json with `Retry-After`. The
//! probes (`/healthz`, `/readyz`, `/metrics`) are not limited: a load balancer's health
//! checks must never be refused.
//!
//! The limiter keeps one small cell per key seen; a task drops the idle ones every few
//! seconds, so that a flood of made-up keys cannot grow it without bound.

use crate::config::HttpConfig;
use crate::problem::Problem;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

/// Who a request is counted against.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum RateKey {
    Key([u8; 16]),
    Peer(IpAddr),
    Unknown,
}

#[derive(Clone, Debug)]
struct KeyOrPeer;

impl KeyExtractor for KeyOrPeer {
    type Key = RateKey;

    fn extract<T>(&self, req: &Request<T>) -> Result<RateKey, GovernorError> {
        Ok(match crate::auth::key_tag(req.headers()) {
            Some(tag) => RateKey::Key(tag),
            None => crate::serve::peer(req).map_or(RateKey::Unknown, |p| RateKey::Peer(p.ip())),
        })
    }
}

/// `router` with the per-key limit of `cfg` (unchanged when `rate_limit` is 0). Must be
/// called inside the Tokio runtime (it starts the cleaning task).
pub fn limit<S: Clone + Send + Sync + 'static>(router: Router<S>, cfg: &HttpConfig) -> Router<S> {
    if cfg.rate_limit == 0 {
        return router;
    }
    let period = Duration::from_nanos(1_000_000_000 / u64::from(cfg.rate_limit));
    let config = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(cfg.rate_burst)
        .key_extractor(KeyOrPeer)
        .finish()
        .expect("a non-zero period and burst (checked when the configuration loads)");
    let limiter = Arc::downgrade(config.limiter());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            let Some(limiter) = limiter.upgrade() else { return };
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    });
    router.layer(GovernorLayer::new(config).error_handler(refusal))
}

fn refusal(e: GovernorError) -> Response<Body> {
    match e {
        GovernorError::TooManyRequests { wait_time, .. } => {
            crate::metrics::rate_limited();
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests with this key; retry in {} s", wait_time.max(1)),
            )
            .with_retry_after(wait_time.max(1))
            .into_response()
        }
        other => Problem::internal(other).into_response(),
    }
}
