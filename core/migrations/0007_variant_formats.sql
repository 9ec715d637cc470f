-- imagelake metadata, version 7: several encodings per variant. A preset may list several
-- formats (`formats = ["avif", "webp", "jpeg"]`); each is stored as its own object and has
-- its own row, so a variant's rows are keyed by (image_id, name, format). `position` keeps
-- the order of the record's entries: the presets' order, then each preset's order of
-- preference. The rows of one variant are made together and share `expires_at`.
--
-- Neither database can change a primary key in a way the other understands, so the table
-- is made again: a new table, the rows copied, the old one dropped (with its index), the
-- new one renamed, the due-variant index made again. Both run it in one transaction.
CREATE TABLE variants_v7 (
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
    CONSTRAINT variants_by_format PRIMARY KEY (image_id, name, format)
);
INSERT INTO variants_v7 (image_id, name, customer, format, width, height, bytes, created_at, expires_at, state, position)
    SELECT image_id, name, customer, format, width, height, bytes, created_at, expires_at, state, position FROM variants;
DROP TABLE variants;
ALTER TABLE variants_v7 RENAME TO variants;
-- The due-variant index the expire sweep reads (dropped with the old table).
CREATE INDEX variants_due ON variants (expires_at) WHERE state = 'ready';
