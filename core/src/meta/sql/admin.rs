//! Everything around the records: usage counters, the job outbox, idempotency keys,
//! API keys and leases.

use super::{err, exec, on_pool, SqlMetadata};
use crate::auth::{Principal, Role};
use crate::meta::{from_micros, micros, ApiKey, Figures, MetaError, PendingJob};
use chrono::{DateTime, Utc};

pub(super) async fn usage(db: &SqlMetadata) -> Result<Vec<(String, Figures)>, MetaError> {
    let rows: Vec<(String, i64, i64, i64, i64)> = on_pool!(db, p => sqlx::query_as(
        "SELECT customer, originals_bytes, originals, variants_bytes, variants FROM usage_counters ORDER BY customer")
        .fetch_all(p).await)
    .map_err(err)?;
    let n = |x: i64| x.max(0) as u64;
    Ok(rows
        .into_iter()
        .map(|(c, ob, o, vb, v)| (c, Figures { originals_bytes: n(ob), originals: n(o), variants_bytes: n(vb), variants: n(v) }))
        .collect())
}

pub(super) async fn set_usage(db: &SqlMetadata, customer: &str, f: Figures) -> Result<(), MetaError> {
    on_pool!(db, p => exec!(p,
        "INSERT INTO usage_counters (customer, originals_bytes, originals, variants_bytes, variants) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (customer) DO UPDATE SET originals_bytes = excluded.originals_bytes, \
         originals = excluded.originals, variants_bytes = excluded.variants_bytes, variants = excluded.variants",
        customer, f.originals_bytes as i64, f.originals as i64, f.variants_bytes as i64, f.variants as i64));
    Ok(())
}

pub(super) async fn due_jobs(db: &SqlMetadata, now: DateTime<Utc>, limit: usize) -> Result<Vec<PendingJob>, MetaError> {
    let rows: Vec<(String, String, String, i64, i64)> = on_pool!(db, p => sqlx::query_as(
        "SELECT job_id, image_id, body, next_attempt_at, attempts FROM outbox WHERE next_attempt_at <= $1 \
         ORDER BY next_attempt_at LIMIT $2")
        .bind(micros(now)).bind(limit as i64).fetch_all(p).await)
    .map_err(err)?;
    Ok(rows
        .into_iter()
        .map(|(job_id, image_id, body, next, attempts)| PendingJob {
            job_id,
            image_id,
            body,
            next_attempt_at: from_micros(next),
            attempts: attempts.max(0) as u32,
        })
        .collect())
}

pub(super) async fn claim_job(db: &SqlMetadata, job: &PendingJob, retry_at: DateTime<Utc>) -> Result<bool, MetaError> {
    let n = on_pool!(db, p => exec!(p,
        "UPDATE outbox SET next_attempt_at = $3, attempts = attempts + 1 WHERE job_id = $1 AND next_attempt_at = $2",
        job.job_id.as_str(), micros(job.next_attempt_at), micros(retry_at)));
    Ok(n == 1)
}

pub(super) async fn job_sent(db: &SqlMetadata, job_id: &str) -> Result<(), MetaError> {
    on_pool!(db, p => exec!(p, "DELETE FROM outbox WHERE job_id = $1", job_id));
    Ok(())
}

pub(super) async fn outbox_len(db: &SqlMetadata) -> Result<u64, MetaError> {
    let (n,): (i64,) = on_pool!(db, p => sqlx::query_as("SELECT COUNT(*) FROM outbox").fetch_one(p).await).map_err(err)?;
    Ok(n.max(0) as u64)
}

pub(super) async fn purge_idempotency(db: &SqlMetadata, now: DateTime<Utc>) -> Result<u64, MetaError> {
    Ok(on_pool!(db, p => exec!(p, "DELETE FROM idempotency_keys WHERE expires_at <= $1", micros(now))))
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::Uploader => "uploader",
        Role::Analyst => "analyst",
        Role::Admin => "admin",
    }
}

fn role(s: &str) -> Result<Role, MetaError> {
    s.parse().map_err(MetaError::Corrupt)
}

pub(super) async fn add_key(db: &SqlMetadata, k: &ApiKey) -> Result<bool, MetaError> {
    let n = on_pool!(db, p => exec!(p,
        "INSERT INTO api_keys (id, sha256, customer, role, source, created_at, revoked_at, all_customers) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        k.id.as_str(), k.sha256.as_str(), k.customer.as_str(), role_str(k.role), k.source.as_str(),
        micros(k.created_at), k.revoked_at.map(micros), k.all_customers as i64));
    Ok(n == 1)
}

pub(super) async fn resolve_key(db: &SqlMetadata, sha256: &str) -> Result<Option<Principal>, MetaError> {
    let row: Option<(String, String, i64)> = on_pool!(db, p => sqlx::query_as(
        "SELECT customer, role, all_customers FROM api_keys WHERE sha256 = $1 AND revoked_at IS NULL")
        .bind(sha256).fetch_optional(p).await)
    .map_err(err)?;
    row.map(|(customer, r, all)| Ok(Principal { customer, role: role(&r)?, all_customers: all != 0 })).transpose()
}

/// id, sha256, customer, role, source, created_at, revoked_at, all_customers.
type KeyRow = (String, String, String, String, String, i64, Option<i64>, i64);

pub(super) async fn list_keys(db: &SqlMetadata) -> Result<Vec<ApiKey>, MetaError> {
    let rows: Vec<KeyRow> = on_pool!(db, p => sqlx::query_as(
        "SELECT id, sha256, customer, role, source, created_at, revoked_at, all_customers FROM api_keys ORDER BY created_at, id")
        .fetch_all(p).await)
    .map_err(err)?;
    rows.into_iter()
        .map(|(id, sha256, customer, r, source, created, revoked, all)| {
            Ok(ApiKey {
                id,
                sha256,
                customer,
                role: role(&r)?,
                source,
                created_at: from_micros(created),
                revoked_at: revoked.map(from_micros),
                all_customers: all != 0,
            })
        })
        .collect()
}

pub(super) async fn revoke_key(db: &SqlMetadata, id: &str, at: DateTime<Utc>) -> Result<bool, MetaError> {
    let id = id.to_ascii_lowercase();
    let n = on_pool!(db, p => exec!(p,
        "UPDATE api_keys SET revoked_at = $2 WHERE (id = $1 OR sha256 = $1) AND revoked_at IS NULL",
        id.as_str(), micros(at)));
    Ok(n > 0)
}

pub(super) async fn acquire_lease(
    db: &SqlMetadata,
    name: &str,
    owner: &str,
    token: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<(String, DateTime<Utc>)>, MetaError> {
    // One statement: the row is taken if absent or expired, atomically in both databases.
    let n = on_pool!(db, p => exec!(p,
        "INSERT INTO leases (name, owner, token, expires_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, token = excluded.token, expires_at = excluded.expires_at \
         WHERE leases.expires_at <= $5",
        name, owner, token, micros(until), micros(now)));
    if n == 1 {
        return Ok(None);
    }
    let holder: Option<(String, i64)> = on_pool!(db, p => sqlx::query_as("SELECT owner, expires_at FROM leases WHERE name = $1")
        .bind(name).fetch_optional(p).await)
    .map_err(err)?;
    // Released between the two statements: report it as briefly busy; the next run takes it.
    Ok(Some(holder.map(|(o, e)| (o, from_micros(e))).unwrap_or_else(|| ("(released meanwhile)".into(), now))))
}

pub(super) async fn renew_lease(db: &SqlMetadata, name: &str, token: &str, until: DateTime<Utc>) -> Result<bool, MetaError> {
    let n = on_pool!(db, p => exec!(p, "UPDATE leases SET expires_at = $3 WHERE name = $1 AND token = $2", name, token, micros(until)));
    Ok(n == 1)
}

pub(super) async fn release_lease(db: &SqlMetadata, name: &str, token: &str) -> Result<(), MetaError> {
    on_pool!(db, p => exec!(p, "DELETE FROM leases WHERE name = $1 AND token = $2", name, token));
    Ok(())
}

pub(super) async fn save_state(db: &SqlMetadata, name: &str, doc: &str, at: DateTime<Utc>) -> Result<(), MetaError> {
    on_pool!(db, p => exec!(p,
        "INSERT INTO job_state (name, doc, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
        name, doc, micros(at)));
    Ok(())
}

pub(super) async fn load_state(db: &SqlMetadata, name: &str) -> Result<Option<String>, MetaError> {
    let row: Option<(String,)> = on_pool!(db, p => sqlx::query_as("SELECT doc FROM job_state WHERE name = $1")
        .bind(name).fetch_optional(p).await)
    .map_err(err)?;
    Ok(row.map(|(d,)| d))
}
