//! Uploads in flight (schema version 5): the row that keeps reconcile away from an
//! original whose upload has not committed yet. See `migrations/0005_uploads_in_flight.sql`.

use super::{err, exec, in_tx, on_pool, SqlMetadata};
use crate::meta::{micros, MetaError};
use chrono::{DateTime, Utc};

pub(super) async fn begin(db: &SqlMetadata, image_id: &str, customer: &str, at: DateTime<Utc>) -> Result<(), MetaError> {
    on_pool!(db, p => exec!(p,
        "INSERT INTO uploads_in_flight (image_id, customer, started_at) VALUES ($1, $2, $3) \
         ON CONFLICT (image_id) DO UPDATE SET started_at = excluded.started_at",
        image_id, customer, micros(at)));
    Ok(())
}

pub(super) async fn end(db: &SqlMetadata, image_id: &str) -> Result<(), MetaError> {
    on_pool!(db, p => exec!(p, "DELETE FROM uploads_in_flight WHERE image_id = $1", image_id));
    Ok(())
}

pub(super) async fn claim_orphan(db: &SqlMetadata, image_id: &str, stale_before: DateTime<Utc>) -> Result<bool, MetaError> {
    in_tx!(db, tx => {
        // The row first: whichever of this and the upload's commit deletes it wins.
        exec!(&mut *tx, "DELETE FROM uploads_in_flight WHERE image_id = $1 AND started_at < $2", image_id, micros(stale_before));
        let live: Option<(i64,)> = sqlx::query_as("SELECT started_at FROM uploads_in_flight WHERE image_id = $1")
            .bind(image_id).fetch_optional(&mut *tx).await.map_err(err)?;
        let recorded: Option<(String,)> = sqlx::query_as("SELECT id FROM images WHERE id = $1")
            .bind(image_id).fetch_optional(&mut *tx).await.map_err(err)?;
        Ok::<_, MetaError>(live.is_none() && recorded.is_none())
    })
}

pub(super) async fn sweep(db: &SqlMetadata, stale_before: DateTime<Utc>) -> Result<u64, MetaError> {
    Ok(on_pool!(db, p => exec!(p, "DELETE FROM uploads_in_flight WHERE started_at < $1", micros(stale_before))))
}
