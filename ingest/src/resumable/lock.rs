//! The write lock of one upload: a row lock in the metadata database with a short lease,
//! renewed while the writer runs, so that writers of one upload on any instance run one
//! at a time, and the lock of a crashed process is free again within `LEASE`.

use crate::error::IngestError;
use axum::http::StatusCode;
use imagelake_core::app::Context;
use std::time::Duration;

/// How long a lock lasts without renewal.
const LEASE: Duration = Duration::from_secs(15);
/// How long a writer waits for a held lock before `423 Locked`.
const WAIT: Duration = Duration::from_secs(20);

/// A held lock; released when dropped (or when its lease runs out, if the process dies).
pub struct Held {
    ctx: Context,
    id: String,
    pub token: String,
    renew: tokio::task::JoinHandle<()>,
}

impl Held {
    /// Takes the upload's lock, waiting up to `WAIT` for another writer to finish.
    pub async fn take(ctx: &Context, id: &str) -> Result<Held, IngestError> {
        let token = imagelake_core::ids::new_id();
        let started = tokio::time::Instant::now();
        loop {
            let now = ctx.clock.now();
            if ctx.meta.lock_resumable(id, &token, now, now + lease()).await? {
                break;
            }
            if started.elapsed() > WAIT {
                return Err(IngestError::Status(
                    StatusCode::LOCKED,
                    "upload_locked",
                    format!("upload {id} is being written by another request; retry when it ended"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let renew = {
            let (ctx, id, token) = (ctx.clone(), id.to_string(), token.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE / 3).await;
                    let now = ctx.clock.now();
                    match ctx.meta.lock_resumable(&id, &token, now, now + lease()).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(e) => tracing::warn!(upload = %id, error = %e, "could not renew an upload's lock"),
                    }
                }
            })
        };
        Ok(Held { ctx: ctx.clone(), id: id.to_string(), token, renew })
    }
}

fn lease() -> chrono::Duration {
    chrono::Duration::from_std(LEASE).expect("small")
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renew.abort();
        let (ctx, id, token) = (self.ctx.clone(), std::mem::take(&mut self.id), std::mem::take(&mut self.token));
        tokio::spawn(async move {
            if let Err(e) = ctx.meta.unlock_resumable(&id, &token).await {
                tracing::warn!(upload = %id, error = %e, "could not release an upload's lock; its lease runs out");
            }
        });
    }
}
