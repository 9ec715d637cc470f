//! Resumable uploads (schema version 6): see `migrations/0006_resumable_uploads.sql` and
//! [`crate::resumable`].

use super::{err, exec, on_pool, SqlMetadata};
use crate::meta::{from_micros, micros, MetaError};
use crate::resumable::{Kind, ResumableUpload, StoredPart};
use chrono::{DateTime, Utc};

/// The columns a row is read from, in [`Row`]'s order.
macro_rules! columns {
    () => {
        "id, customer, kind, length, upload_offset, metadata, variants, callback_url, multipart_id, \
         part_size, parts, tail_key, created_at, expires_at, completed_at"
    };
}

type Row = (
    String,
    String,
    String,
    Option<i64>,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    String,
    Option<String>,
    i64,
    i64,
    Option<i64>,
);

fn decode(r: Row) -> Result<ResumableUpload, MetaError> {
    let corrupt = |what: &str| MetaError::Corrupt(format!("resumable upload {}: {what}", r.0));
    let kind = Kind::parse(&r.2).ok_or_else(|| corrupt("unknown kind"))?;
    let variants: Vec<String> = serde_json::from_str(&r.6).map_err(|_| corrupt("variants"))?;
    let parts: Vec<StoredPart> = serde_json::from_str(&r.10).map_err(|_| corrupt("parts"))?;
    Ok(ResumableUpload {
        kind,
        variants,
        parts,
        length: r.3.map(|n| n as u64),
        offset: r.4 as u64,
        metadata: r.5,
        callback_url: r.7,
        multipart_id: r.8,
        part_size: r.9 as u64,
        tail_key: r.11,
        created_at: from_micros(r.12),
        expires_at: from_micros(r.13),
        completed_at: r.14.map(from_micros),
        id: r.0,
        customer: r.1,
    })
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serializes")
}

pub(super) async fn insert(db: &SqlMetadata, u: &ResumableUpload) -> Result<(), MetaError> {
    on_pool!(db, p => exec!(p,
        "INSERT INTO resumable_uploads (id, customer, kind, length, upload_offset, metadata, variants, callback_url, \
         multipart_id, part_size, parts, tail_key, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        u.id.as_str(), u.customer.as_str(), u.kind.as_str(), u.length.map(|n| n as i64), u.offset as i64,
        u.metadata.as_str(), json(&u.variants), u.callback_url.as_deref(), u.multipart_id.as_deref(),
        u.part_size as i64, json(&u.parts), u.tail_key.as_deref(), micros(u.created_at), micros(u.expires_at)));
    Ok(())
}

pub(super) async fn get(db: &SqlMetadata, id: &str) -> Result<Option<ResumableUpload>, MetaError> {
    const SQL: &str = concat!("SELECT ", columns!(), " FROM resumable_uploads WHERE id = $1");
    let row: Option<Row> = on_pool!(db, p => sqlx::query_as(SQL).bind(id).fetch_optional(p).await).map_err(err)?;
    row.map(decode).transpose()
}

pub(super) async fn lock(
    db: &SqlMetadata,
    id: &str,
    token: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, MetaError> {
    Ok(on_pool!(db, p => exec!(p,
        "UPDATE resumable_uploads SET lock_token = $2, locked_until = $3 \
         WHERE id = $1 AND (lock_token IS NULL OR lock_token = $2 OR locked_until < $4)",
        id, token, micros(until), micros(now)))
        == 1)
}

pub(super) async fn unlock(db: &SqlMetadata, id: &str, token: &str) -> Result<(), MetaError> {
    on_pool!(db, p => exec!(p,
        "UPDATE resumable_uploads SET lock_token = NULL, locked_until = NULL WHERE id = $1 AND lock_token = $2",
        id, token));
    Ok(())
}

pub(super) async fn advance(db: &SqlMetadata, u: &ResumableUpload, from: u64, token: &str) -> Result<bool, MetaError> {
    Ok(on_pool!(db, p => exec!(p,
        "UPDATE resumable_uploads SET length = $2, upload_offset = $3, multipart_id = $4, parts = $5, tail_key = $6, \
         expires_at = $7 \
         WHERE id = $1 AND upload_offset = $8 AND lock_token = $9 AND completed_at IS NULL",
        u.id.as_str(), u.length.map(|n| n as i64), u.offset as i64, u.multipart_id.as_deref(), json(&u.parts),
        u.tail_key.as_deref(), micros(u.expires_at), from as i64, token))
        == 1)
}

pub(super) async fn complete(db: &SqlMetadata, id: &str, at: DateTime<Utc>, expires: DateTime<Utc>) -> Result<(), MetaError> {
    on_pool!(db, p => exec!(p,
        "UPDATE resumable_uploads SET completed_at = $2, expires_at = $3, tail_key = NULL, lock_token = NULL, \
         locked_until = NULL WHERE id = $1",
        id, micros(at), micros(expires)));
    Ok(())
}

pub(super) async fn delete(db: &SqlMetadata, id: &str) -> Result<bool, MetaError> {
    Ok(on_pool!(db, p => exec!(p, "DELETE FROM resumable_uploads WHERE id = $1", id)) == 1)
}

pub(super) async fn expired(db: &SqlMetadata, now: DateTime<Utc>, limit: usize) -> Result<Vec<ResumableUpload>, MetaError> {
    // A locked row is being written to: not expired, whatever its date says.
    const SQL: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM resumable_uploads WHERE expires_at < $1 AND (locked_until IS NULL OR locked_until < $1) \
         ORDER BY expires_at LIMIT $2"
    );
    let rows: Vec<Row> =
        on_pool!(db, p => sqlx::query_as(SQL).bind(micros(now)).bind(limit as i64).fetch_all(p).await).map_err(err)?;
    rows.into_iter().map(decode).collect()
}

pub(super) async fn live_multiparts(db: &SqlMetadata) -> Result<Vec<String>, MetaError> {
    let rows: Vec<(String,)> = on_pool!(db, p => sqlx::query_as(
        "SELECT multipart_id FROM resumable_uploads WHERE multipart_id IS NOT NULL AND completed_at IS NULL")
        .fetch_all(p).await)
    .map_err(err)?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

pub(super) async fn open_count(db: &SqlMetadata, customer: &str) -> Result<u64, MetaError> {
    let (n,): (i64,) = on_pool!(db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM resumable_uploads WHERE customer = $1 AND completed_at IS NULL")
        .bind(customer).fetch_one(p).await)
    .map_err(err)?;
    Ok(n as u64)
}
