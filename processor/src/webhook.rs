//! The `callback_url` webhook: once a record reaches `processed` or `failed`, its JSON is
//! POSTed to the upload's callback URL, signed (`Imagelake-Signature`, see
//! `imagelake_core::webhook`), from a task of its own so that a slow receiver never holds
//! a job slot.
//!
//! Each attempt re-checks the destination (a host may start resolving to a private
//! address) and connects to the checked address; redirects are not followed. An attempt
//! that fails to connect, times out or answers 5xx, 408 or 429 is retried after 1 s,
//! 2 s, 4 s ... (at most 5 min) up to `[webhooks] max_attempts`; any other answer ends
//! delivery. Every attempt carries the same `Imagelake-Delivery` id, so a receiver can
//! drop duplicates. Retries live in memory: a process that stops meanwhile drops them.
//! The record stays the truth, and `GET /v1/images/{id}` always has it.

use imagelake_core::app::Context;
use imagelake_core::record::{ImageRecord, Status};
use imagelake_core::webhook::{self, SIGNATURE_HEADER};
use std::time::Duration;

/// Starts delivering `record` to `url` in the background.
pub fn send(ctx: &Context, url: &str, record: &ImageRecord) {
    let body = match serde_json::to_vec(record) {
        Ok(b) => b,
        Err(e) => return tracing::error!(error = %e, "webhook body"),
    };
    let event = if record.status == Status::Processed { "image.processed" } else { "image.failed" };
    let (ctx, url, image_id) = (ctx.clone(), url.to_string(), record.id.clone());
    tokio::spawn(async move {
        let delivered = deliver(&ctx, &url, event, &body, &uuid::Uuid::now_v7().to_string()).await;
        tracing::info!(url, image_id, event, delivered, "webhook finished");
    });
}

/// Delivers `body` as `event` to `url`, retrying as described above, every attempt with
/// the same `Imagelake-Delivery` id. Whether it was delivered.
pub(crate) async fn deliver(ctx: &Context, url: &str, event: &str, body: &[u8], delivery: &str) -> bool {
    let cfg = &ctx.config.webhooks;
    let secret = match webhook::secret(&ctx.config) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "no webhook signing secret; not delivering");
            return false;
        }
    };
    let attempts = cfg.max_attempts.max(1);
    for attempt in 1..=attempts {
        match attempt_once(ctx, url, event, body, &secret, delivery).await {
            Outcome::Delivered => return true,
            Outcome::Final(why) => {
                tracing::warn!(url, attempt, why, "webhook not delivered");
                return false;
            }
            Outcome::Retry(why) if attempt < attempts => {
                let wait = Duration::from_secs(1u64 << (attempt - 1).min(8)).min(Duration::from_secs(300));
                tracing::info!(url, attempt, why, retry_in = ?wait, "webhook attempt failed");
                tokio::time::sleep(wait).await;
            }
            Outcome::Retry(why) => tracing::warn!(url, attempt, why, "webhook attempts exhausted"),
        }
    }
    false
}

enum Outcome {
    Delivered,
    Retry(String),
    Final(String),
}

async fn attempt_once(ctx: &Context, url: &str, event: &str, body: &[u8], secret: &[u8], delivery: &str) -> Outcome {
    let cfg = &ctx.config.webhooks;
    let dest = match webhook::check(url, cfg.allow_private).await {
        Ok(d) => d,
        Err(r @ webhook::Refusal::Unresolvable(..)) => return Outcome::Retry(r.to_string()),
        Err(r) => return Outcome::Final(r.to_string()),
    };
    let client = match reqwest::Client::builder()
        .timeout(cfg.timeout.0)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&dest.host, dest.addr)
        .user_agent(concat!("imagelake/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => return Outcome::Final(format!("client: {e}")),
    };
    let t = ctx.clock.now().timestamp();
    let sent = client
        .post(dest.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, webhook::sign(secret, t, body))
        .header("Imagelake-Event", event)
        .header("Imagelake-Delivery", delivery)
        .body(body.to_vec())
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Outcome::Delivered,
        Ok(r) if r.status().is_server_error() || matches!(r.status().as_u16(), 408 | 429) => {
            Outcome::Retry(format!("answered {}", r.status()))
        }
        Ok(r) => Outcome::Final(format!("answered {}", r.status())),
        Err(e) => Outcome::Retry(e.to_string()),
    }
}
