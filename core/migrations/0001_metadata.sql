-- imagelake metadata, version 1. Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Times are microseconds since the Unix epoch (UTC), as BIGINT.

-- One row per image. `status` is uploaded | processing | processed | failed. A row with
-- `deleted_at` set is a tombstone: hidden at once, kept while the delete removes the
-- objects, so that processing can no longer finish the image and an interrupted delete
-- can be completed.
CREATE TABLE images (
    id                 TEXT PRIMARY KEY,
    customer           TEXT NOT NULL,
    status             TEXT NOT NULL,
    content_type       TEXT NOT NULL,
    format             TEXT NOT NULL,
    bytes              BIGINT NOT NULL,
    width              BIGINT,
    height             BIGINT,
    sha256             TEXT NOT NULL,
    uploaded_at        BIGINT NOT NULL,
    processed_at       BIGINT,
    error_code         TEXT,
    error_message      TEXT,
    exif               TEXT,
    requested_variants TEXT NOT NULL,
    attempts           BIGINT NOT NULL DEFAULT 0,
    callback_url       TEXT,
    deleted_at         BIGINT
);
-- The listing: a customer's images newest first (ids are UUIDv7, so id order is time order).
CREATE INDEX images_by_customer ON images (customer, id);
CREATE INDEX images_deleted ON images (deleted_at) WHERE deleted_at IS NOT NULL;

-- One row per variant written. `state` is ready | expired; `position` keeps the presets' order.
CREATE TABLE variants (
    image_id   TEXT NOT NULL,
    name       TEXT NOT NULL,
    customer   TEXT NOT NULL,
    format     TEXT NOT NULL,
    width      BIGINT NOT NULL,
    height     BIGINT NOT NULL,
    bytes      BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    state      TEXT NOT NULL,
    position   BIGINT NOT NULL,
    PRIMARY KEY (image_id, name)
);
-- The due-variant index the expire sweep reads.
CREATE INDEX variants_due ON variants (expires_at) WHERE state = 'ready';

-- Bytes and objects stored per customer, kept in the same transactions as the records.
CREATE TABLE usage_counters (
    customer        TEXT PRIMARY KEY,
    originals_bytes BIGINT NOT NULL DEFAULT 0,
    originals       BIGINT NOT NULL DEFAULT 0,
    variants_bytes  BIGINT NOT NULL DEFAULT 0,
    variants        BIGINT NOT NULL DEFAULT 0
);

-- Idempotency-Key (hashed) -> the image its first request made.
CREATE TABLE idempotency_keys (
    customer   TEXT NOT NULL,
    key_hash   TEXT NOT NULL,
    image_id   TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (customer, key_hash)
);
CREATE INDEX idempotency_expiry ON idempotency_keys (expires_at);
CREATE INDEX idempotency_by_image ON idempotency_keys (image_id);

-- API keys: only the SHA-256 of a key is stored.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    sha256     TEXT NOT NULL UNIQUE,
    customer   TEXT NOT NULL,
    role       TEXT NOT NULL,
    source     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- One runner per lifecycle job: a row per job, taken when absent or expired.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    token      TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Small documents the lifecycle keeps between runs (each job's last run), by name.
CREATE TABLE job_state (
    name       TEXT PRIMARY KEY,
    doc        TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
