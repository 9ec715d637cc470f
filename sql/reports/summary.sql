-- summary: totals over [from, to) and the current usage against capacity.
-- $1 from (TIMESTAMP, inclusive)  $2 to (TIMESTAMP, exclusive)  $3 customer (VARCHAR, NULL = all)
-- $4 capacity_bytes (BIGINT)      $5 the live usage gauge of the serving process (BIGINT)
--
-- images/bytes: uploads accepted in the range. processed/failed: processing jobs whose
-- last attempt finished in the range, by outcome (failed = no attempt succeeded).
-- expired: variants deleted by retention in the range. used_bytes: stored now, from the
-- lake (originals + variants - deletions, all time).
-- Each view is read once (its deduplication is the expensive part): range and all-time
-- figures come from the same scan.
WITH up AS (
    SELECT count(*) FILTER (WHERE uploaded_at >= $1::TIMESTAMPTZ AND uploaded_at < $2::TIMESTAMPTZ)::BIGINT AS images,
           coalesce(sum(bytes) FILTER (WHERE uploaded_at >= $1::TIMESTAMPTZ AND uploaded_at < $2::TIMESTAMPTZ), 0)::BIGINT AS bytes,
           coalesce(sum(bytes), 0)::BIGINT AS stored
    FROM uploads
    WHERE $3::VARCHAR IS NULL OR customer_id = $3::VARCHAR
), outcome AS (
    SELECT job_id, bool_or(status = 'succeeded') AS succeeded, max(finished_at) AS finished_at
    FROM jobs
    WHERE $3::VARCHAR IS NULL OR customer_id = $3::VARCHAR
    GROUP BY job_id
), jb AS (
    SELECT count(*) FILTER (WHERE succeeded)::BIGINT AS processed,
           count(*) FILTER (WHERE NOT succeeded)::BIGINT AS failed
    FROM outcome
    WHERE finished_at >= $1::TIMESTAMPTZ AND finished_at < $2::TIMESTAMPTZ
), va AS (
    SELECT coalesce(sum(bytes), 0)::BIGINT AS stored
    FROM variants
    WHERE $3::VARCHAR IS NULL OR customer_id = $3::VARCHAR
), de AS (
    SELECT count(*) FILTER (WHERE reason = 'expired' AND deleted_at >= $1::TIMESTAMPTZ AND deleted_at < $2::TIMESTAMPTZ)::BIGINT AS expired,
           coalesce(sum(bytes) FILTER (WHERE reason = 'expired' AND deleted_at >= $1::TIMESTAMPTZ AND deleted_at < $2::TIMESTAMPTZ), 0)::BIGINT AS expired_bytes,
           coalesce(sum(bytes), 0)::BIGINT AS removed
    FROM deletions
    WHERE $3::VARCHAR IS NULL OR customer_id = $3::VARCHAR
)
SELECT
    up.images,
    up.bytes,
    jb.processed,
    jb.failed,
    jb.failed / nullif(jb.processed + jb.failed, 0)::DOUBLE AS failure_rate,
    de.expired,
    de.expired_bytes,
    (up.stored + va.stored - de.removed)::BIGINT AS used_bytes,
    $4::BIGINT AS capacity_bytes,
    100.0 * (up.stored + va.stored - de.removed) / nullif($4::BIGINT, 0)::DOUBLE AS used_percent,
    $5::BIGINT AS gauge_used_bytes
FROM up, jb, va, de;
