-- imagelake: the lake's views, for DuckDB (the reporting service, the duckdb CLI, Python).
--
-- `${LAKE}` is the lake root: the directory that holds uploads/, jobs/, variants/,
-- deletions/, downloads/, usage/, posts/ and comments/ (in the object store, the `lake/`
-- prefix). The reporting service substitutes it; on the command line:
--     sed "s#\${LAKE}#/path/to/lake#g" sql/views.sql | duckdb
-- See sql/README.md for every column, and for tables that have no file yet.
--
-- One view per table, one row per event_id: a fact written twice (a redelivered job, a
-- compaction interrupted between writing its output and deleting its inputs) is counted
-- once. Of duplicate rows (the same fact), the one with the earliest event time, then the
-- first file name, is kept, so that the answer is deterministic. `dt` (DATE) is the
-- partition: the UTC day of the event time. A fact's copies are the same row, so they are
-- in the same partition; deduplicating per partition lets a filter on `dt` skip the files
-- of other days (the rollups' recent facts read only the last day or two). Files of older schema versions (fewer
-- columns) read with NULL in the columns they lack (union_by_name).

CREATE OR REPLACE VIEW uploads AS
SELECT * EXCLUDE (filename)
FROM read_parquet('${LAKE}/uploads/*/*.parquet', hive_partitioning = true, hive_types = {'dt': DATE}, union_by_name = true, filename = true)
QUALIFY row_number() OVER (PARTITION BY dt, event_id ORDER BY uploaded_at, filename) = 1;

CREATE OR REPLACE VIEW jobs AS
SELECT * EXCLUDE (filename)
FROM read_parquet('${LAKE}/jobs/*/*.parquet', hive_partitioning = true, hive_types = {'dt': DATE}, union_by_name = true, filename = true)
QUALIFY row_number() OVER (PARTITION BY dt, event_id ORDER BY finished_at, filename) = 1;

CREATE OR REPLACE VIEW variants AS
SELECT * EXCLUDE (filename)
FROM read_parquet('${LAKE}/variants/*/*.parquet', hive_partitioning = true, hive_types = {'dt': DATE}, union_by_name = true, filename = true)
QUALIFY row_number() OVER (PARTITION BY dt, event_id ORDER BY created_at, filename) = 1;

CREATE OR REPLACE VIEW deletions AS
SELECT * EXCLUDE (filename)
FROM read_parquet('${LAKE}/deletions/*/*.parquet', hive_partitioning = true, hive_types = {'dt': DATE}, union_by_name = true, filename = true)
QUALIFY row_number() OVER (PARTITION BY dt, event_id ORDER BY deleted_at, filename) = 1;

CREATE OR REPLACE VIEW downloads AS
SELECT * EXCLUDE (filename)
FROM read_parquet('${LAKE}/downloads/*/*.parquet', hive_partitioning = true, hive_types = {'dt': DATE}, union_by_name = true, filename = true)
QUALIFY row_number() OVER (PARTITION BY dt, event_id ORDER BY served_at, filename) = 1;

CREATE OR REPLACE VIEW usage AS
SELECT * EXCLUDE (filename)
FROM read_parquet('${LAKE}/usage/*/*.parquet', hive_partitioning = true, hive_types = {'dt': DATE}, union_by_name = true, filename = true)
QUALIFY row_number() OVER (PARTITION BY dt, event_id ORDER BY taken_at, filename) = 1;

CREATE OR REPLACE VIEW posts AS
SELECT * EXCLUDE (filename)
FROM read_parquet('${LAKE}/posts/*/*.parquet', hive_partitioning = true, hive_types = {'dt': DATE}, union_by_name = true, filename = true)
QUALIFY row_number() OVER (PARTITION BY dt, event_id ORDER BY "at", filename) = 1;

CREATE OR REPLACE VIEW comments AS
SELECT * EXCLUDE (filename)
FROM read_parquet('${LAKE}/comments/*/*.parquet', hive_partitioning = true, hive_types = {'dt': DATE}, union_by_name = true, filename = true)
QUALIFY row_number() OVER (PARTITION BY dt, event_id ORDER BY "at", filename) = 1;

-- Derived views. They read the views above, so they are deduplicated too.

-- The state of each uploaded image, from the lake alone (no record store needed):
--   state: processed (an attempt succeeded), dead_lettered (the last attempt was moved to
--   the dead-letter queue), failed (the last attempt failed; it may still be retried,
--   unless its error code is final, e.g. decode_failed), pending (no attempt finished yet);
--   deleted_at is set when the original was deleted (the state is then what it was before).
CREATE OR REPLACE VIEW image_state AS
WITH last_attempt AS (
    SELECT image_id,
           count(*)::BIGINT AS attempts,
           bool_or(status = 'succeeded') AS succeeded,
           min(finished_at) FILTER (WHERE status = 'succeeded') AS processed_at,
           arg_max(job_id, (attempt, finished_at)) AS job_id,
           arg_max(status, (attempt, finished_at)) AS last_status,
           arg_max(error_code, (attempt, finished_at)) AS last_error_code,
           max(finished_at) AS last_finished_at,
           sum(output_bytes) FILTER (WHERE status = 'succeeded')::BIGINT AS output_bytes
    FROM jobs
    GROUP BY image_id
), gone AS (
    SELECT image_id, min(deleted_at) AS deleted_at
    FROM deletions
    WHERE kind = 'original'
    GROUP BY image_id
)
SELECT u.image_id, u.customer_id, u.uploaded_at, u.content_type, u.format, u.bytes, u.width, u.height, u.sha256,
       j.job_id,
       coalesce(j.attempts, 0) AS attempts,
       CASE WHEN j.succeeded THEN 'processed'
            WHEN j.last_status = 'dead_lettered' THEN 'dead_lettered'
            WHEN j.last_status = 'failed' THEN 'failed'
            ELSE 'pending' END AS state,
       j.last_status, j.last_error_code, j.last_finished_at, j.processed_at, j.output_bytes,
       g.deleted_at
FROM uploads u
LEFT JOIN last_attempt j USING (image_id)
LEFT JOIN gone g USING (image_id);

-- Every object the lake says is stored now: originals not deleted, and variants neither
-- deleted (expired by retention, or removed with their image) nor belonging to a deleted
-- original. `kind` is original or variant; `expired` says a variant is past its expiry
-- time and waits for the next retention run.
CREATE OR REPLACE VIEW stored_objects AS
WITH original_gone AS (
    SELECT DISTINCT image_id FROM deletions WHERE kind = 'original'
), variant_gone AS (
    SELECT DISTINCT image_id, variant FROM deletions WHERE kind = 'variant'
)
SELECT u.image_id, u.customer_id, 'original' AS kind, NULL::VARCHAR AS variant, u.format, u.bytes,
       u.uploaded_at AS created_at, NULL::TIMESTAMPTZ AS expires_at, false AS expired
FROM uploads u
WHERE u.image_id NOT IN (SELECT image_id FROM original_gone)
UNION ALL
SELECT v.image_id, v.customer_id, 'variant' AS kind, v.variant, v.format, v.bytes,
       v.created_at, v.expires_at, v.expires_at <= now() AS expired
FROM variants v
WHERE v.image_id NOT IN (SELECT image_id FROM original_gone)
  AND NOT EXISTS (SELECT 1 FROM variant_gone g WHERE g.image_id = v.image_id AND g.variant = v.variant);

-- Live objects: stored and not expired (what a client can still download).
CREATE OR REPLACE VIEW live_objects AS
SELECT * EXCLUDE (expired) FROM stored_objects WHERE NOT expired;

-- The state of each post, from its events: when it was created, published (its image
-- processed), failed (error_code: the image's) or deleted; `comments` is the number of its
-- comments now (created minus deleted; a deleted post's comments go with it, without
-- events of their own).
CREATE OR REPLACE VIEW post_state AS
WITH c AS (
    SELECT post_id,
           (count(*) FILTER (WHERE event = 'created') - count(*) FILTER (WHERE event = 'deleted'))::BIGINT AS comments
    FROM comments
    GROUP BY post_id
)
SELECT p.post_id,
       any_value(p.customer_id) AS customer_id,
       any_value(p.image_id) AS image_id,
       any_value(p.author) AS author,
       any_value(p.caption_chars) AS caption_chars,
       min(p."at") FILTER (WHERE p.event = 'created') AS created_at,
       min(p."at") FILTER (WHERE p.event = 'published') AS published_at,
       min(p."at") FILTER (WHERE p.event = 'failed') AS failed_at,
       any_value(p.error_code) FILTER (WHERE p.event = 'failed') AS error_code,
       min(p."at") FILTER (WHERE p.event = 'deleted') AS deleted_at,
       CASE WHEN bool_or(p.event = 'deleted') THEN 0 ELSE coalesce(any_value(c.comments), 0) END::BIGINT AS comments
FROM posts p
LEFT JOIN c USING (post_id)
GROUP BY p.post_id;

-- The latest usage snapshot of each customer (customer_id NULL: the platform total).
CREATE OR REPLACE VIEW usage_latest AS
SELECT * FROM usage
QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY taken_at DESC) = 1;
