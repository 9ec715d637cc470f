//! The HTTP server every service runs: hyper's connection handling with the limits that
//! `axum::serve` does not set.
//!
//! - A **header read timeout** (`[http] header_timeout`): a connection that has not sent
//!   a whole request head in time is closed, whether it is new or idle between requests.
//!   Without it, a client that opens connections and sends nothing holds them forever.
//! - A **connection cap** (`[http] max_connections`): past it the listener stops
//!   accepting, so new connections wait in the kernel's backlog instead of each taking
//!   a task and its buffers.
//! - **Graceful shutdown**: when `shutdown` is cancelled the listener closes, idle
//!   connections are closed, and the requests in flight run to their end (the caller
//!   bounds that with `shutdown_grace`).
//!
//! Each request carries the peer's address as axum's `ConnectInfo<SocketAddr>`, which
//! the rate limiter uses for requests that have no key.

use crate::config::HttpConfig;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Serves `app` on `listener` until `shutdown` is cancelled, then waits for the requests
/// in flight.
pub async fn serve(listener: TcpListener, app: Router, limits: &HttpConfig, shutdown: CancellationToken) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout.0);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout.0))
        .keep_alive_timeout(limits.header_timeout.0);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was taken:
                    // wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The address a client connected from, when the server put it on the request.
pub fn peer<B>(req: &Request<B>) -> Option<SocketAddr> {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}
