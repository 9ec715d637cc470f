//! Image records, their variants, the listing, the due-variant index, and the byte
//! counters that move with them (in the same transactions).

use super::posts::{delete_posts_of_image, insert_event, insert_post, settle_posts};
use super::{err, exec, in_tx, on_pool, SqlMetadata};
use crate::meta::{from_micros, micros, Created, DueVariant, MetaError, NewImage, Transition};
use crate::post::Post;
use crate::record::{ExifSummary, ImageRecord, RecordError, Status, VariantRecord, VariantState};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// An image joined with its variants: one row per variant (or one with no variant).
macro_rules! select_images {
    ($from:literal, $order:literal) => {
        concat!(
            "SELECT i.id, i.customer, i.status, i.content_type, i.format, i.bytes, i.width, i.height, i.sha256, ",
            "i.uploaded_at, i.processed_at, i.error_code, i.error_message, i.exif, i.requested_variants, ",
            "i.attempts, i.callback_url, i.deleted_at, v.name AS v_name, v.format AS v_format, v.width AS v_width, ",
            "v.height AS v_height, v.bytes AS v_bytes, v.created_at AS v_created_at, ",
            "v.expires_at AS v_expires_at, v.state AS v_state FROM ",
            $from,
            " i LEFT JOIN variants v ON v.image_id = i.id ORDER BY ",
            $order
        )
    };
}

const GET: &str = select_images!("(SELECT * FROM images WHERE id = $1 AND deleted_at IS NULL)", "v.position");
const GET_ANY: &str = select_images!("(SELECT * FROM images WHERE id = $1)", "v.position");
const LIST_FIRST: &str = select_images!(
    "(SELECT * FROM images WHERE customer = $1 AND deleted_at IS NULL ORDER BY id DESC LIMIT $2)",
    "i.id DESC, v.position"
);
const LIST_AFTER: &str = select_images!(
    "(SELECT * FROM images WHERE customer = $1 AND id < $2 AND deleted_at IS NULL ORDER BY id DESC LIMIT $3)",
    "i.id DESC, v.position"
);
const SCAN: &str = select_images!(
    "(SELECT * FROM images WHERE customer = $1 AND id > $2 AND deleted_at IS NULL ORDER BY id LIMIT $3)",
    "i.id, v.position"
);
/// Images (not deleted) whose ids are in `@IDS@` (placeholders filled by [`select_by_ids`]).
const BY_IDS: &str = select_images!("(SELECT * FROM images WHERE id IN (@IDS@) AND deleted_at IS NULL)", "i.id, v.position");
const TOMBSTONES: &str = select_images!(
    "(SELECT * FROM images WHERE deleted_at IS NOT NULL AND deleted_at < $1 ORDER BY deleted_at LIMIT $2)",
    "i.id, v.position"
);

const INSERT_IMAGE: &str = "INSERT INTO images (id, customer, status, content_type, format, bytes, width, height, \
     sha256, uploaded_at, processed_at, error_code, error_message, exif, requested_variants, attempts, callback_url) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT (id) DO NOTHING";
const INSERT_VARIANT: &str = "INSERT INTO variants (image_id, name, customer, format, width, height, bytes, \
     created_at, expires_at, state, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
/// Adds (or, with negative numbers, removes) bytes and objects to a customer's counters.
const COUNT: &str = "INSERT INTO usage_counters (customer, originals_bytes, originals, variants_bytes, variants) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (customer) DO UPDATE SET \
     originals_bytes = usage_counters.originals_bytes + excluded.originals_bytes, \
     originals = usage_counters.originals + excluded.originals, \
     variants_bytes = usage_counters.variants_bytes + excluded.variants_bytes, \
     variants = usage_counters.variants + excluded.variants";

/// The statement that reads the images whose ids are bound to `placeholders`.
pub(super) fn select_by_ids(placeholders: &str) -> String {
    BY_IDS.replace("@IDS@", placeholders)
}

#[derive(sqlx::FromRow)]
pub(super) struct Row {
    id: String,
    customer: String,
    status: String,
    content_type: String,
    format: String,
    bytes: i64,
    width: Option<i64>,
    height: Option<i64>,
    sha256: String,
    uploaded_at: i64,
    processed_at: Option<i64>,
    error_code: Option<String>,
    error_message: Option<String>,
    exif: Option<String>,
    requested_variants: String,
    attempts: i64,
    callback_url: Option<String>,
    deleted_at: Option<i64>,
    v_name: Option<String>,
    v_format: Option<String>,
    v_width: Option<i64>,
    v_height: Option<i64>,
    v_bytes: Option<i64>,
    v_created_at: Option<i64>,
    v_expires_at: Option<i64>,
    v_state: Option<String>,
}

fn status(s: &str) -> Result<Status, MetaError> {
    match s {
        "uploaded" => Ok(Status::Uploaded),
        "processing" => Ok(Status::Processing),
        "processed" => Ok(Status::Processed),
        "failed" => Ok(Status::Failed),
        other => Err(MetaError::Corrupt(format!("unknown image status {other:?}"))),
    }
}

pub(crate) fn status_str(s: Status) -> &'static str {
    match s {
        Status::Uploaded => "uploaded",
        Status::Processing => "processing",
        Status::Processed => "processed",
        Status::Failed => "failed",
    }
}

fn state_str(s: VariantState) -> &'static str {
    match s {
        VariantState::Ready => "ready",
        VariantState::Expired => "expired",
    }
}

/// Folds joined rows (ordered by image) into records.
pub(super) fn records_of(rows: Vec<Row>) -> Result<Vec<ImageRecord>, MetaError> {
    records(rows)
}

fn records(rows: Vec<Row>) -> Result<Vec<ImageRecord>, MetaError> {
    Ok(fold(rows)?.into_iter().map(|(r, _)| r).collect())
}

/// Folds joined rows into records, each with whether it is a tombstone.
fn fold(rows: Vec<Row>) -> Result<Vec<(ImageRecord, bool)>, MetaError> {
    let mut out: Vec<(ImageRecord, bool)> = Vec::new();
    for r in rows {
        if out.last().is_none_or(|(last, _)| last.id != r.id) {
            let corrupt = |what: &str, e: serde_json::Error| MetaError::Corrupt(format!("image {}: {what}: {e}", r.id));
            let exif: Option<ExifSummary> = match &r.exif {
                Some(text) => serde_json::from_str(text).map_err(|e| corrupt("exif", e))?,
                None => None,
            };
            out.push((
                ImageRecord {
                    id: r.id.clone(),
                    customer: r.customer.clone(),
                    status: status(&r.status)?,
                    content_type: r.content_type.clone(),
                    format: r.format.clone(),
                    bytes: r.bytes.max(0) as u64,
                    width: r.width.map(|w| w as u32),
                    height: r.height.map(|h| h as u32),
                    sha256: r.sha256.clone(),
                    uploaded_at: from_micros(r.uploaded_at),
                    processed_at: r.processed_at.map(from_micros),
                    error: r
                        .error_code
                        .clone()
                        .map(|code| RecordError { code, message: r.error_message.clone().unwrap_or_default() }),
                    exif,
                    requested_variants: serde_json::from_str(&r.requested_variants)
                        .map_err(|e| corrupt("requested_variants", e))?,
                    variants: Vec::new(),
                    attempts: r.attempts.max(0) as u32,
                    callback_url: r.callback_url.clone(),
                },
                r.deleted_at.is_some(),
            ));
        }
        if let Some(name) = r.v_name {
            let (rec, _) = out.last_mut().expect("pushed above");
            rec.variants.push(VariantRecord {
                url: String::new(),
                name,
                format: r.v_format.unwrap_or_default(),
                width: r.v_width.unwrap_or(0) as u32,
                height: r.v_height.unwrap_or(0) as u32,
                bytes: r.v_bytes.unwrap_or(0).max(0) as u64,
                created_at: from_micros(r.v_created_at.unwrap_or(0)),
                expires_at: from_micros(r.v_expires_at.unwrap_or(0)),
                state: if r.v_state.as_deref() == Some("expired") { VariantState::Expired } else { VariantState::Ready },
            });
        }
    }
    for (rec, _) in &mut out {
        rec.fill_variant_urls();
    }
    Ok(out)
}

/// Binds the 17 columns of [`INSERT_IMAGE`].
macro_rules! insert_image {
    ($on:expr, $r:expr) => {{
        let r: &ImageRecord = $r;
        let exif = r.exif.as_ref().map(|e| serde_json::to_string(e).expect("serializable"));
        let requested = serde_json::to_string(&r.requested_variants).expect("serializable");
        exec!(
            $on,
            INSERT_IMAGE,
            r.id.as_str(),
            r.customer.as_str(),
            status_str(r.status),
            r.content_type.as_str(),
            r.format.as_str(),
            r.bytes as i64,
            r.width.map(i64::from),
            r.height.map(i64::from),
            r.sha256.as_str(),
            micros(r.uploaded_at),
            r.processed_at.map(micros),
            r.error.as_ref().map(|e| e.code.as_str()),
            r.error.as_ref().map(|e| e.message.as_str()),
            exif,
            requested,
            r.attempts as i64,
            r.callback_url.as_deref(),
        )
    }};
}

/// Inserts variant rows in order; returns (bytes, count) of those `ready`.
macro_rules! insert_variants {
    ($on:expr, $id:expr, $customer:expr, $variants:expr) => {{
        let (mut bytes, mut n) = (0i64, 0i64);
        for (i, v) in $variants.iter().enumerate() {
            exec!(
                &mut *$on,
                INSERT_VARIANT,
                $id,
                v.name.as_str(),
                $customer,
                v.format.as_str(),
                v.width as i64,
                v.height as i64,
                v.bytes as i64,
                micros(v.created_at),
                micros(v.expires_at),
                state_str(v.state),
                i as i64,
            );
            if v.state == VariantState::Ready {
                bytes += v.bytes as i64;
                n += 1;
            }
        }
        (bytes, n)
    }};
}

pub(super) async fn get(db: &SqlMetadata, id: &str, include_deleted: bool) -> Result<Option<ImageRecord>, MetaError> {
    let sql = if include_deleted { GET_ANY } else { GET };
    let rows = on_pool!(db, p => sqlx::query_as::<_, Row>(sql).bind(id).fetch_all(p).await).map_err(err)?;
    Ok(records(rows)?.into_iter().next())
}

pub(super) async fn list(
    db: &SqlMetadata,
    customer: &str,
    before: Option<&str>,
    limit: usize,
) -> Result<Vec<ImageRecord>, MetaError> {
    let limit = limit as i64;
    let rows = on_pool!(db, p => match before {
        None => sqlx::query_as::<_, Row>(LIST_FIRST).bind(customer).bind(limit).fetch_all(p).await,
        Some(b) => sqlx::query_as::<_, Row>(LIST_AFTER).bind(customer).bind(b).bind(limit).fetch_all(p).await,
    })
    .map_err(err)?;
    records(rows)
}

pub(super) async fn scan(
    db: &SqlMetadata,
    customer: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<ImageRecord>, MetaError> {
    // Every id sorts after "" whatever the collation.
    let rows = on_pool!(db, p => sqlx::query_as::<_, Row>(SCAN)
        .bind(customer).bind(after.unwrap_or("")).bind(limit as i64).fetch_all(p).await)
    .map_err(err)?;
    records(rows)
}

pub(super) async fn stale_tombstones(
    db: &SqlMetadata,
    before: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<ImageRecord>, MetaError> {
    let rows = on_pool!(db, p => sqlx::query_as::<_, Row>(TOMBSTONES).bind(micros(before)).bind(limit as i64).fetch_all(p).await)
        .map_err(err)?;
    records(rows)
}

pub(super) async fn create(db: &SqlMetadata, new: NewImage<'_>) -> Result<Created, MetaError> {
    let r = new.record;
    let first: Option<String> = in_tx!(db, tx => {
        let mut first = None;
        // The upload's in-flight row goes with the commit; if reconcile took it (the upload
        // ran past the longest allowed), its original may be gone: nothing is committed.
        if new.in_flight && exec!(&mut *tx, "DELETE FROM uploads_in_flight WHERE image_id = $1", r.id.as_str()) == 0 {
            return Err(MetaError::Unavailable(format!(
                "the upload of {} was abandoned (it ran past the longest upload allowed); upload it again",
                r.id
            )));
        }
        if let Some((key, expires)) = new.idempotency {
            // Taken unless the key is free or expired (a purged image frees its keys): the
            // unique (customer, key) makes two parallel requests agree on one image. The
            // condition reads only the conflicting row, which PostgreSQL re-checks on its
            // newest version after waiting for the other transaction (a subquery on
            // another table would see the statement's older snapshot).
            let taken = exec!(
                &mut *tx,
                "INSERT INTO idempotency_keys (customer, key_hash, image_id, expires_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (customer, key_hash) DO UPDATE SET image_id = excluded.image_id, expires_at = excluded.expires_at \
                 WHERE idempotency_keys.expires_at <= $5",
                r.customer.as_str(),
                key,
                r.id.as_str(),
                micros(expires),
                micros(r.uploaded_at),
            ) == 0;
            if taken {
                let (id,): (String,) = sqlx::query_as("SELECT image_id FROM idempotency_keys WHERE customer = $1 AND key_hash = $2")
                    .bind(r.customer.as_str())
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err)?;
                first = Some(id);
            }
        }
        if first.is_none() {
            insert_image!(&mut *tx, r);
            let (vbytes, vn) = insert_variants!(tx, r.id.as_str(), r.customer.as_str(), r.variants);
            exec!(
                &mut *tx,
                "INSERT INTO outbox (job_id, image_id, body, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5)",
                new.job_id,
                r.id.as_str(),
                new.job_body,
                micros(r.uploaded_at),
                micros(new.send_after),
            );
            exec!(&mut *tx, COUNT, r.customer.as_str(), r.bytes as i64, 1i64, vbytes, vn);
            if let Some(post) = new.post {
                insert_post!(&mut *tx, post);
                insert_event!(&mut *tx, crate::post::post_event(post, crate::lake::PostEventKind::Created, post.created_at), r.uploaded_at, None::<&Post>, false);
            }
        }
        Ok::<_, MetaError>(first)
    })?;
    match first {
        None => Ok(Created::New),
        Some(id) => match get(db, &id, false).await? {
            Some(rec) => Ok(Created::Duplicate(Box::new(rec))),
            // Deleted between the two statements: the client's retry will find the key free.
            None => Err(MetaError::Unavailable("the image of this idempotency key is being deleted; retry".into())),
        },
    }
}

pub(super) async fn import(db: &SqlMetadata, r: &ImageRecord) -> Result<bool, MetaError> {
    in_tx!(db, tx => {
        let new = insert_image!(&mut *tx, r) == 1;
        if new {
            let (vbytes, vn) = insert_variants!(tx, r.id.as_str(), r.customer.as_str(), r.variants);
            exec!(&mut *tx, COUNT, r.customer.as_str(), r.bytes as i64, 1i64, vbytes, vn);
        }
        Ok::<_, MetaError>(new)
    })
}

pub(super) async fn idempotent(
    db: &SqlMetadata,
    customer: &str,
    key_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<ImageRecord>, MetaError> {
    let id: Option<(String,)> = on_pool!(db, p => sqlx::query_as(
        "SELECT image_id FROM idempotency_keys WHERE customer = $1 AND key_hash = $2 AND expires_at > $3")
        .bind(customer).bind(key_hash).bind(micros(now)).fetch_optional(p).await)
    .map_err(err)?;
    match id {
        Some((id,)) => get(db, &id, false).await,
        None => Ok(None),
    }
}

/// The outcome of a conditional update, from the image as the same transaction sees it
/// right after it (so no other change can come in between).
fn outcome(applied: bool, rows: Vec<Row>) -> Result<Transition, MetaError> {
    Ok(match fold(rows)?.into_iter().next() {
        Some((rec, false)) if applied => Transition::Applied(rec),
        Some((rec, false)) => Transition::Refused(rec),
        _ => Transition::Gone,
    })
}

/// Runs the conditional `UPDATE` `$sql` on image `$id` and reads the image back, in one
/// transaction: the [`Transition`].
macro_rules! transition {
    ($db:expr, $id:expr, $sql:expr $(, $arg:expr)* $(,)?) => {{
        let (n, rows) = in_tx!($db, tx => {
            let n = exec!(&mut *tx, $sql, $id $(, $arg)*);
            let rows = sqlx::query_as::<_, Row>(GET_ANY).bind($id).fetch_all(&mut *tx).await.map_err(err)?;
            Ok::<_, MetaError>((n, rows))
        })?;
        outcome(n == 1, rows)
    }};
}

pub(super) async fn start_processing(db: &SqlMetadata, id: &str, attempt: u32) -> Result<Transition, MetaError> {
    transition!(
        db,
        id,
        "UPDATE images SET status = 'processing', attempts = $2 WHERE id = $1 AND status IN ('uploaded', 'processing') AND deleted_at IS NULL",
        attempt as i64
    )
}

pub(super) async fn finish_processed(
    db: &SqlMetadata,
    id: &str,
    at: DateTime<Utc>,
    (width, height): (u32, u32),
    variants: &[VariantRecord],
) -> Result<Transition, MetaError> {
    let (done, rows) = in_tx!(db, tx => {
        let customer: Option<(String,)> = sqlx::query_as(
            "UPDATE images SET status = 'processed', processed_at = $2, width = COALESCE(width, $3), \
             height = COALESCE(height, $4), error_code = NULL, error_message = NULL \
             WHERE id = $1 AND status IN ('uploaded', 'processing') AND deleted_at IS NULL RETURNING customer")
            .bind(id).bind(micros(at)).bind(width as i64).bind(height as i64)
            .fetch_optional(&mut *tx).await.map_err(err)?;
        if let Some((customer,)) = &customer {
            exec!(&mut *tx, "DELETE FROM variants WHERE image_id = $1", id);
            let (vbytes, vn) = insert_variants!(tx, id, customer.as_str(), variants);
            exec!(&mut *tx, COUNT, customer.as_str(), 0i64, 0i64, vbytes, vn);
            settle_posts!(tx, id, at, None);
        }
        let rows = sqlx::query_as::<_, Row>(GET_ANY).bind(id).fetch_all(&mut *tx).await.map_err(err)?;
        Ok::<_, MetaError>((customer.is_some(), rows))
    })?;
    outcome(done, rows)
}

pub(super) async fn fail(
    db: &SqlMetadata,
    id: &str,
    attempt: Option<u32>,
    at: DateTime<Utc>,
    error: &RecordError,
    any_state: bool,
) -> Result<Transition, MetaError> {
    let (n, rows) = in_tx!(db, tx => {
        let n = exec!(
            &mut *tx,
            "UPDATE images SET status = 'failed', attempts = COALESCE($2, attempts), processed_at = $3, \
             error_code = $4, error_message = $5 WHERE id = $1 AND deleted_at IS NULL \
             AND (status IN ('uploaded', 'processing') OR $6 = 1)",
            id,
            attempt.map(i64::from),
            micros(at),
            error.code.as_str(),
            error.message.as_str(),
            any_state as i64,
        );
        if n == 1 {
            settle_posts!(tx, id, at, Some(error));
        }
        let rows = sqlx::query_as::<_, Row>(GET_ANY).bind(id).fetch_all(&mut *tx).await.map_err(err)?;
        Ok::<_, MetaError>((n, rows))
    })?;
    outcome(n == 1, rows)
}

pub(super) async fn begin_delete(db: &SqlMetadata, id: &str, at: DateTime<Utc>) -> Result<Option<ImageRecord>, MetaError> {
    // Once the tombstone is set no transition applies, so the variants read after it are
    // all the variants there will ever be.
    let n = in_tx!(db, tx => {
        let n = exec!(&mut *tx, "UPDATE images SET deleted_at = COALESCE(deleted_at, $2) WHERE id = $1", id, micros(at));
        if n > 0 {
            delete_posts_of_image!(tx, id, at);
        }
        Ok::<_, MetaError>(n)
    })?;
    if n == 0 {
        return Ok(None);
    }
    get(db, id, true).await
}

pub(super) async fn purge(db: &SqlMetadata, id: &str) -> Result<(), MetaError> {
    in_tx!(db, tx => {
        let gone: Option<(String, i64)> = sqlx::query_as("DELETE FROM images WHERE id = $1 RETURNING customer, bytes")
            .bind(id).fetch_optional(&mut *tx).await.map_err(err)?;
        if let Some((customer, bytes)) = gone {
            let (n, vbytes): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM variants WHERE image_id = $1 AND state = 'ready'")
                .bind(id).fetch_one(&mut *tx).await.map_err(err)?;
            exec!(&mut *tx, "DELETE FROM variants WHERE image_id = $1", id);
            exec!(&mut *tx, "DELETE FROM idempotency_keys WHERE image_id = $1", id);
            exec!(&mut *tx, COUNT, customer.as_str(), -bytes, -1i64, -vbytes, -n);
        }
        Ok::<_, MetaError>(())
    })
}

pub(super) async fn due_variants(db: &SqlMetadata, at: DateTime<Utc>, limit: usize) -> Result<Vec<DueVariant>, MetaError> {
    let rows: Vec<(String, String, String, String, i64, i64)> = on_pool!(db, p => sqlx::query_as(
        "SELECT image_id, customer, name, format, bytes, expires_at FROM variants \
         WHERE state = 'ready' AND expires_at <= $1 ORDER BY expires_at LIMIT $2")
        .bind(micros(at)).bind(limit as i64).fetch_all(p).await)
    .map_err(err)?;
    Ok(rows
        .into_iter()
        .map(|(image_id, customer, name, format, bytes, expires_at)| DueVariant {
            image_id,
            customer,
            name,
            format,
            bytes: bytes.max(0) as u64,
            expires_at: from_micros(expires_at),
        })
        .collect())
}

/// Each `(image_id, name, format)` names one row, one stored object: the sweep marks
/// exactly the objects it deleted, even when a chunk ends between two formats of a variant.
pub(super) async fn mark_expired(db: &SqlMetadata, variants: &[(String, String, String)]) -> Result<u64, MetaError> {
    in_tx!(db, tx => {
        let mut freed: HashMap<String, (i64, i64)> = HashMap::new();
        for (image_id, name, format) in variants {
            let row: Option<(String, i64)> = sqlx::query_as(
                "UPDATE variants SET state = 'expired' WHERE image_id = $1 AND name = $2 AND format = $3 AND state = 'ready' \
                 RETURNING customer, bytes")
                .bind(image_id.as_str()).bind(name.as_str()).bind(format.as_str()).fetch_optional(&mut *tx).await.map_err(err)?;
            if let Some((customer, bytes)) = row {
                let e = freed.entry(customer).or_default();
                e.0 += bytes;
                e.1 += 1;
            }
        }
        let mut total = 0u64;
        for (customer, (bytes, n)) in &freed {
            exec!(&mut *tx, COUNT, customer.as_str(), 0i64, 0i64, -bytes, -n);
            total += *bytes as u64;
        }
        Ok::<_, MetaError>(total)
    })
}
