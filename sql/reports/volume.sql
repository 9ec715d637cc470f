-- volume: a time series, one row per interval from the first to the last active one
-- (inactive intervals in between are present, with zeros). Buckets are UTC.
-- $1 from (TIMESTAMP, inclusive)  $2 to (TIMESTAMP, exclusive)  $3 customer (VARCHAR, NULL = all)
-- $4 interval: 'hour', 'day', 'week' (ISO, from Monday) or 'month'
--
-- uploads/bytes: uploads accepted. processed: jobs an attempt of which succeeded; failed:
-- jobs none of whose attempts succeeded; both in the interval of their last attempt, as in
-- summary, whose `processed` and `failed` are the sums of these (a job redelivered while
-- its first delivery ran has two succeeded attempts: one job processed). expired/expired_bytes: variants deleted by retention.
-- posts: posts published; comments: comments made (`created`; later deletions not netted out).
-- Facts come through the macros of sql/facts.sql.
WITH job_outcomes AS (
    -- The raw jobs' outcomes that job_facts read (sql/facts.sql).
    SELECT * FROM raw_outcomes($1, $2, 'hour')
), up AS (
    SELECT date_trunc($4::VARCHAR, ts) AS bucket,
           sum(images)::BIGINT AS uploads, sum(bytes)::BIGINT AS bytes
    FROM upload_facts($1, $2)
    WHERE ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY 1
), jb AS (
    SELECT date_trunc($4::VARCHAR, ts) AS bucket, sum(processed)::BIGINT AS processed, sum(failed)::BIGINT AS failed
    FROM job_facts($1, $2)
    WHERE ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY 1
), ex AS (
    SELECT date_trunc($4::VARCHAR, ts) AS bucket,
           sum(deletions)::BIGINT AS expired, sum(bytes)::BIGINT AS expired_bytes
    FROM deletion_facts($1, $2)
    WHERE reason = 'expired'
      AND ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY 1
), po AS (
    SELECT date_trunc($4::VARCHAR, ts) AS bucket, sum(n)::BIGINT AS posts
    FROM post_facts($1, $2)
    WHERE event = 'published'
      AND ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY 1
), co AS (
    SELECT date_trunc($4::VARCHAR, ts) AS bucket, sum(n)::BIGINT AS comments
    FROM comment_facts($1, $2)
    WHERE event = 'created'
      AND ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY 1
), span AS (
    SELECT min(bucket) AS lo, max(bucket) AS hi
    FROM (SELECT bucket FROM up UNION ALL SELECT bucket FROM jb UNION ALL SELECT bucket FROM ex
          UNION ALL SELECT bucket FROM po UNION ALL SELECT bucket FROM co)
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
    coalesce(jb.processed, 0)::BIGINT AS processed,
    coalesce(jb.failed, 0)::BIGINT AS failed,
    coalesce(ex.expired, 0)::BIGINT AS expired,
    coalesce(ex.expired_bytes, 0)::BIGINT AS expired_bytes,
    coalesce(po.posts, 0)::BIGINT AS posts,
    coalesce(co.comments, 0)::BIGINT AS comments
FROM buckets b
LEFT JOIN up USING (bucket)
LEFT JOIN jb USING (bucket)
LEFT JOIN ex USING (bucket)
LEFT JOIN po USING (bucket)
LEFT JOIN co USING (bucket)
ORDER BY b.bucket;
