-- imagelake metadata, version 6: resumable uploads (tus at /v1/uploads, and direct-to-S3
-- multipart at /v1/uploads/direct). The row is the upload's truth: `upload_offset` counts
-- the bytes durably stored (whole parts of the store's multipart upload, listed in
-- `parts`, plus the object `tail_key` holding the bytes after the last whole part). A
-- PATCH stores its bytes first and then moves the row on, conditionally on the offset it
-- started from and on holding the row's lock, so a crash at any point leaves the row
-- describing bytes that are all stored. The upload's id is also its image's id.
CREATE TABLE resumable_uploads (
    id            TEXT PRIMARY KEY,
    customer      TEXT NOT NULL,
    kind          TEXT NOT NULL,
    length        BIGINT,
    upload_offset BIGINT NOT NULL,
    metadata      TEXT NOT NULL,
    variants      TEXT NOT NULL,
    callback_url  TEXT,
    multipart_id  TEXT,
    part_size     BIGINT NOT NULL,
    parts         TEXT NOT NULL,
    tail_key      TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    completed_at  BIGINT,
    lock_token    TEXT,
    locked_until  BIGINT
);
CREATE INDEX resumable_uploads_expires ON resumable_uploads (expires_at);
