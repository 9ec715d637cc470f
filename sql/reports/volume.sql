-- volume: a time series, one row per interval from the first to the last active one
-- (inactive intervals in between are present, with zeros). Buckets are UTC.
-- $1 from (TIMESTAMP, inclusive)  $2 to (TIMESTAMP, exclusive)  $3 customer (VARCHAR, NULL = all)
-- $4 interval: 'hour', 'day', 'week' (ISO, from Monday) or 'month'
--
-- uploads/bytes: uploads accepted. processed: jobs that succeeded. failed: jobs none of
-- whose attempts succeeded, in the interval of their last attempt (as in summary, whose
-- `failed` is the sum of these). expired/expired_bytes: variants deleted by retention.
WITH up AS (
    SELECT date_trunc($4::VARCHAR, uploaded_at::TIMESTAMP) AS bucket,
           count(*)::BIGINT AS uploads, sum(bytes)::BIGINT AS bytes
    FROM uploads
    WHERE uploaded_at >= $1::TIMESTAMPTZ AND uploaded_at < $2::TIMESTAMPTZ
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY 1
), pr AS (
    SELECT date_trunc($4::VARCHAR, finished_at::TIMESTAMP) AS bucket, count(*)::BIGINT AS processed
    FROM jobs
    WHERE status = 'succeeded'
      AND finished_at >= $1::TIMESTAMPTZ AND finished_at < $2::TIMESTAMPTZ
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY 1
), fa AS (
    SELECT date_trunc($4::VARCHAR, finished_at::TIMESTAMP) AS bucket, count(*)::BIGINT AS failed
    FROM (
        SELECT max(finished_at) AS finished_at
        FROM jobs
        WHERE $3::VARCHAR IS NULL OR customer_id = $3::VARCHAR
        GROUP BY job_id
        HAVING NOT bool_or(status = 'succeeded')
    )
    WHERE finished_at >= $1::TIMESTAMPTZ AND finished_at < $2::TIMESTAMPTZ
    GROUP BY 1
), ex AS (
    SELECT date_trunc($4::VARCHAR, deleted_at::TIMESTAMP) AS bucket,
           count(*)::BIGINT AS expired, sum(bytes)::BIGINT AS expired_bytes
    FROM deletions
    WHERE reason = 'expired'
      AND deleted_at >= $1::TIMESTAMPTZ AND deleted_at < $2::TIMESTAMPTZ
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY 1
), span AS (
    SELECT min(bucket) AS lo, max(bucket) AS hi
    FROM (SELECT bucket FROM up UNION ALL SELECT bucket FROM pr UNION ALL SELECT bucket FROM fa UNION ALL SELECT bucket FROM ex)
), buckets AS (
    SELECT unnest(generate_series(lo, hi, CASE $4::VARCHAR
        WHEN 'hour' THEN INTERVAL 1 HOUR
        WHEN 'week' THEN INTERVAL 7 DAY
        WHEN 'month' THEN INTERVAL 1 MONTH
        ELSE INTERVAL 1 DAY END)) AS bucket
    FROM span
    WHERE lo IS NOT NULL
)
SELECT
    b.bucket,
    coalesce(up.uploads, 0)::BIGINT AS uploads,
    coalesce(up.bytes, 0)::BIGINT AS bytes,
    coalesce(pr.processed, 0)::BIGINT AS processed,
    coalesce(fa.failed, 0)::BIGINT AS failed,
    coalesce(ex.expired, 0)::BIGINT AS expired,
    coalesce(ex.expired_bytes, 0)::BIGINT AS expired_bytes
FROM buckets b
LEFT JOIN up USING (bucket)
LEFT JOIN pr USING (bucket)
LEFT JOIN fa USING (bucket)
LEFT JOIN ex USING (bucket)
ORDER BY b.bucket;
