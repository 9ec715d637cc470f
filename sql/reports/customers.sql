-- customers: one row per customer.
-- $1 from (TIMESTAMP, inclusive)  $2 to (TIMESTAMP, exclusive)  $3 customer (VARCHAR, NULL = all)
--
-- uploads/bytes_uploaded: uploads accepted in the range. processed/failed: jobs whose last
-- attempt finished in the range, by outcome; failure_rate = failed / (processed + failed).
-- p50/p95_processing_ms: duration of the succeeded attempts of those jobs (exact from the
-- views, within 1 % from the daily aggregates' histograms; see sql/facts.sql).
-- bytes_stored: stored now (originals + variants - deletions, all time; an
-- abandoned upload's deletion is not subtracted: its bytes were never an upload's).
-- posts: posts published in the range (their `published` events). comments: comments made
-- in the range (their `created` events). Both count what happened in the range: a post or
-- comment deleted later still counts (deletions are not netted out).
WITH job_outcomes AS MATERIALIZED (
    -- The raw jobs' outcomes that job_facts and job_ms_facts read (once) (sql/facts.sql).
    SELECT * FROM raw_outcomes($1, $2, 'hour')
), up AS (
    SELECT customer_id, sum(images)::BIGINT AS uploads, sum(bytes)::BIGINT AS bytes_uploaded
    FROM upload_facts($1, $2)
    WHERE ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY customer_id
), st AS (
    SELECT customer_id, sum(bytes)::BIGINT AS stored
    FROM stored_facts()
    WHERE $3::VARCHAR IS NULL OR customer_id = $3::VARCHAR
    GROUP BY customer_id
), jb AS (
    SELECT customer_id, sum(processed)::BIGINT AS processed, sum(failed)::BIGINT AS failed
    FROM job_facts($1, $2)
    WHERE ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY customer_id
), ranked AS (
    SELECT customer_id, value,
           sum(n) OVER (PARTITION BY customer_id ORDER BY value ROWS UNBOUNDED PRECEDING) AS below,
           sum(n) OVER (PARTITION BY customer_id) AS total
    FROM (
        SELECT customer_id, value, sum(n) AS n
        FROM job_ms_facts($1, $2)
        WHERE ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
          AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
        GROUP BY ALL
    )
), ms AS (
    SELECT customer_id,
           weighted_quantile(value, below, total, 0.5) AS p50_processing_ms,
           weighted_quantile(value, below, total, 0.95) AS p95_processing_ms
    FROM ranked
    GROUP BY customer_id
), po AS (
    SELECT customer_id, sum(n)::BIGINT AS posts
    FROM post_facts($1, $2)
    WHERE event = 'published' AND ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY customer_id
), co AS (
    SELECT customer_id, sum(n)::BIGINT AS comments
    FROM comment_facts($1, $2)
    WHERE event = 'created' AND ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY customer_id
)
SELECT
    customer_id,
    coalesce(up.uploads, 0)::BIGINT AS uploads,
    coalesce(up.bytes_uploaded, 0)::BIGINT AS bytes_uploaded,
    coalesce(jb.processed, 0)::BIGINT AS processed,
    coalesce(jb.failed, 0)::BIGINT AS failed,
    jb.failed / nullif(jb.processed + jb.failed, 0)::DOUBLE AS failure_rate,
    ms.p50_processing_ms::DOUBLE AS p50_processing_ms,
    ms.p95_processing_ms::DOUBLE AS p95_processing_ms,
    coalesce(st.stored, 0)::BIGINT AS bytes_stored,
    coalesce(po.posts, 0)::BIGINT AS posts,
    coalesce(co.comments, 0)::BIGINT AS comments
FROM st
FULL OUTER JOIN up USING (customer_id)
FULL OUTER JOIN jb USING (customer_id)
FULL OUTER JOIN ms USING (customer_id)
FULL OUTER JOIN po USING (customer_id)
FULL OUTER JOIN co USING (customer_id)
ORDER BY customer_id;
