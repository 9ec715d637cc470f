-- customers: one row per customer.
-- $1 from (TIMESTAMP, inclusive)  $2 to (TIMESTAMP, exclusive)  $3 customer (VARCHAR, NULL = all)
--
-- uploads/bytes_uploaded: uploads accepted in the range. processed/failed: jobs whose last
-- attempt finished in the range, by outcome; failure_rate = failed / (processed + failed).
-- p50/p95_processing_ms: duration of the succeeded attempts of those jobs.
-- bytes_stored: stored now (originals + variants - deletions, all time).
-- Each view is read once: range and all-time figures come from the same scan.
WITH up AS (
    SELECT customer_id,
           count(*) FILTER (WHERE uploaded_at >= $1::TIMESTAMPTZ AND uploaded_at < $2::TIMESTAMPTZ)::BIGINT AS uploads,
           coalesce(sum(bytes) FILTER (WHERE uploaded_at >= $1::TIMESTAMPTZ AND uploaded_at < $2::TIMESTAMPTZ), 0)::BIGINT AS bytes_uploaded,
           sum(bytes)::BIGINT AS stored
    FROM uploads
    WHERE $3::VARCHAR IS NULL OR customer_id = $3::VARCHAR
    GROUP BY customer_id
), outcome AS (
    SELECT job_id,
           any_value(customer_id) AS customer_id,
           bool_or(status = 'succeeded') AS succeeded,
           max(finished_at) AS finished_at,
           max(duration_ms) FILTER (WHERE status = 'succeeded') AS duration_ms
    FROM jobs
    WHERE $3::VARCHAR IS NULL OR customer_id = $3::VARCHAR
    GROUP BY job_id
), jb AS (
    SELECT customer_id,
           count(*) FILTER (WHERE succeeded)::BIGINT AS processed,
           count(*) FILTER (WHERE NOT succeeded)::BIGINT AS failed,
           quantile_cont(duration_ms, 0.5)::DOUBLE AS p50_processing_ms,
           quantile_cont(duration_ms, 0.95)::DOUBLE AS p95_processing_ms
    FROM outcome
    WHERE finished_at >= $1::TIMESTAMPTZ AND finished_at < $2::TIMESTAMPTZ
    GROUP BY customer_id
), va AS (
    SELECT customer_id, sum(bytes)::BIGINT AS stored
    FROM variants
    WHERE $3::VARCHAR IS NULL OR customer_id = $3::VARCHAR
    GROUP BY customer_id
), de AS (
    SELECT customer_id, sum(bytes)::BIGINT AS removed
    FROM deletions
    WHERE $3::VARCHAR IS NULL OR customer_id = $3::VARCHAR
    GROUP BY customer_id
)
SELECT
    customer_id,
    coalesce(up.uploads, 0)::BIGINT AS uploads,
    coalesce(up.bytes_uploaded, 0)::BIGINT AS bytes_uploaded,
    coalesce(jb.processed, 0)::BIGINT AS processed,
    coalesce(jb.failed, 0)::BIGINT AS failed,
    jb.failed / nullif(jb.processed + jb.failed, 0)::DOUBLE AS failure_rate,
    jb.p50_processing_ms,
    jb.p95_processing_ms,
    (coalesce(up.stored, 0) + coalesce(va.stored, 0) - coalesce(de.removed, 0))::BIGINT AS bytes_stored
FROM up
FULL OUTER JOIN jb USING (customer_id)
FULL OUTER JOIN va USING (customer_id)
FULL OUTER JOIN de USING (customer_id)
ORDER BY customer_id;
