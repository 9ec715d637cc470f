-- processing: one row per UTC day of processing attempts (by the time they finished).
-- $1 from (TIMESTAMP, inclusive)  $2 to (TIMESTAMP, exclusive)  $3 customer (VARCHAR, NULL = all)
--
-- attempts: every attempt; succeeded/failed/dead_lettered: attempts by status; retries:
-- attempts after the first (attempt > 1). queue_wait = started_at - enqueued_at and
-- processing = duration_ms, both in milliseconds, over every attempt of the day (exact
-- from the views, within 1 % from the daily aggregates' histograms; see sql/facts.sql).
WITH counts AS (
    SELECT ts::DATE AS day,
           sum(attempts)::BIGINT AS attempts,
           coalesce(sum(attempts) FILTER (WHERE status = 'succeeded'), 0)::BIGINT AS succeeded,
           coalesce(sum(attempts) FILTER (WHERE status = 'failed'), 0)::BIGINT AS failed,
           coalesce(sum(attempts) FILTER (WHERE status = 'dead_lettered'), 0)::BIGINT AS dead_lettered,
           sum(retries)::BIGINT AS retries
    FROM attempt_facts($1, $2)
    WHERE ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY 1
), ranked AS (
    SELECT day, metric, value,
           sum(n) OVER (PARTITION BY day, metric ORDER BY value ROWS UNBOUNDED PRECEDING) AS below,
           sum(n) OVER (PARTITION BY day, metric) AS total
    FROM (
        SELECT ts::DATE AS day, metric, value, sum(n) AS n
        FROM attempt_ms_facts($1, $2, $3::VARCHAR)
        WHERE ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
        GROUP BY ALL
    )
), pct AS (
    SELECT day, metric,
           weighted_quantile(value, below, total, 0.5) AS p50,
           weighted_quantile(value, below, total, 0.95) AS p95,
           weighted_quantile(value, below, total, 0.99) AS p99
    FROM ranked
    GROUP BY ALL
)
SELECT
    c.day,
    c.attempts, c.succeeded, c.failed, c.dead_lettered, c.retries,
    q.p50::DOUBLE AS p50_queue_wait_ms,
    q.p95::DOUBLE AS p95_queue_wait_ms,
    q.p99::DOUBLE AS p99_queue_wait_ms,
    p.p50::DOUBLE AS p50_processing_ms,
    p.p95::DOUBLE AS p95_processing_ms,
    p.p99::DOUBLE AS p99_processing_ms
FROM counts c
LEFT JOIN pct q ON q.day = c.day AND q.metric = 'queue_wait'
LEFT JOIN pct p ON p.day = c.day AND p.metric = 'processing'
ORDER BY c.day;
