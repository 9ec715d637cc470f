-- processing: one row per UTC day of processing attempts (by the time they finished).
-- $1 from (TIMESTAMP, inclusive)  $2 to (TIMESTAMP, exclusive)  $3 customer (VARCHAR, NULL = all)
--
-- attempts: every attempt; succeeded/failed/dead_lettered: attempts by status; retries:
-- attempts after the first (attempt > 1). queue_wait = started_at - enqueued_at and
-- processing = duration_ms, both in milliseconds, over every attempt of the day.
WITH a AS (
    SELECT finished_at::TIMESTAMP::DATE AS day, status, attempt, duration_ms::DOUBLE AS processing_ms,
           (epoch_us(started_at::TIMESTAMP) - epoch_us(enqueued_at::TIMESTAMP)) / 1000.0 AS queue_wait_ms
    FROM jobs
    WHERE finished_at >= $1::TIMESTAMPTZ AND finished_at < $2::TIMESTAMPTZ
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
)
SELECT
    day,
    count(*)::BIGINT AS attempts,
    count(*) FILTER (WHERE status = 'succeeded')::BIGINT AS succeeded,
    count(*) FILTER (WHERE status = 'failed')::BIGINT AS failed,
    count(*) FILTER (WHERE status = 'dead_lettered')::BIGINT AS dead_lettered,
    count(*) FILTER (WHERE attempt > 1)::BIGINT AS retries,
    quantile_cont(queue_wait_ms, 0.5)::DOUBLE AS p50_queue_wait_ms,
    quantile_cont(queue_wait_ms, 0.95)::DOUBLE AS p95_queue_wait_ms,
    quantile_cont(queue_wait_ms, 0.99)::DOUBLE AS p99_queue_wait_ms,
    quantile_cont(processing_ms, 0.5)::DOUBLE AS p50_processing_ms,
    quantile_cont(processing_ms, 0.95)::DOUBLE AS p95_processing_ms,
    quantile_cont(processing_ms, 0.99)::DOUBLE AS p99_processing_ms
FROM a
GROUP BY day
ORDER BY day;
