-- summary: totals over [from, to) and the current usage against capacity.
-- $1 from (TIMESTAMP, inclusive)  $2 to (TIMESTAMP, exclusive)  $3 customer (VARCHAR, NULL = all)
-- $4 capacity_bytes (BIGINT)      $5 the live usage gauge of the serving process (BIGINT)
--
-- images/bytes: uploads accepted in the range. processed/failed: processing jobs whose
-- last attempt finished in the range, by outcome (failed = no attempt succeeded).
-- expired: variants deleted by retention in the range. used_bytes: stored now, from the
-- lake (originals + variants - deletions, all time; an
-- abandoned upload's deletion is not subtracted: its bytes were never an upload's).
-- Facts come through the macros of sql/facts.sql: the range's days, and the all-time
-- sums of stored bytes (stored_facts).
WITH job_outcomes AS (
    -- The raw jobs' outcomes that job_facts read (sql/facts.sql).
    SELECT * FROM raw_outcomes($1, $2, 'hour')
), up AS (
    SELECT coalesce(sum(images), 0)::BIGINT AS images, coalesce(sum(bytes), 0)::BIGINT AS bytes
    FROM upload_facts($1, $2)
    WHERE ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
), st AS (
    SELECT coalesce(sum(bytes), 0)::BIGINT AS stored
    FROM stored_facts()
    WHERE $3::VARCHAR IS NULL OR customer_id = $3::VARCHAR
), jb AS (
    SELECT coalesce(sum(processed), 0)::BIGINT AS processed,
           coalesce(sum(failed), 0)::BIGINT AS failed
    FROM job_facts($1, $2)
    WHERE ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
), de AS (
    SELECT coalesce(sum(deletions), 0)::BIGINT AS expired, coalesce(sum(bytes), 0)::BIGINT AS expired_bytes
    FROM deletion_facts($1, $2)
    WHERE reason = 'expired' AND ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
)
SELECT
    up.images,
    up.bytes,
    jb.processed,
    jb.failed,
    jb.failed / nullif(jb.processed + jb.failed, 0)::DOUBLE AS failure_rate,
    de.expired,
    de.expired_bytes,
    st.stored AS used_bytes,
    $4::BIGINT AS capacity_bytes,
    100.0 * st.stored / nullif($4::BIGINT, 0)::DOUBLE AS used_percent,
    $5::BIGINT AS gauge_used_bytes
FROM up, st, jb, de;
