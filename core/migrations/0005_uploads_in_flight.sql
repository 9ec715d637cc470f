-- imagelake metadata, version 5: uploads in flight. Ingest inserts a row before the first
-- byte of an original is stored, and deletes it in the transaction that commits the image.
-- Reconcile deletes an original that has no record only after it deleted the upload's row
-- (when older than the longest upload allowed) or found none. The two deletes of one row
-- cannot both succeed, so an original that a client was told is stored is never taken for
-- an orphan, however long its upload ran (on S3, a multipart object's LastModified is when
-- its upload started).
CREATE TABLE uploads_in_flight (
    image_id   TEXT PRIMARY KEY,
    customer   TEXT NOT NULL,
    started_at BIGINT NOT NULL
);
CREATE INDEX uploads_in_flight_started ON uploads_in_flight (started_at);
