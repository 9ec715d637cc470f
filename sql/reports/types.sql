-- types: one row per image format (or content type) of the uploads in the range.
-- $1 from (TIMESTAMP, inclusive)  $2 to (TIMESTAMP, exclusive)  $3 customer (VARCHAR, NULL = all)
-- $4 grouping: 'format' or 'content_type'
--
-- images/bytes/mean_width/mean_height: uploads accepted in the range. processed/failed:
-- outcome of those images' processing so far (failed = attempts, none succeeded; images
-- not yet attempted count in neither); failure_rate = failed / (processed + failed).
-- Aggregated uploads carry the outcome of their jobs enqueued the same day; the outcome of
-- the others (agg_unattempted, raw uploads) comes from image_outcomes (sql/facts.sql).
WITH o AS (
    SELECT * FROM image_outcomes($1, $2)
), up AS (
    SELECT format, content_type, images, bytes, sum_width, n_width, sum_height, n_height, processed, failed
    FROM agg_uploads
    WHERE span(dt, $1, $2, 0) AND (whole(hour, 'hour', $1, $2) OR NOT reread(dt, $1, $2, 'hour', 0))
      AND hour >= $1::TIMESTAMP AND hour < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    UNION ALL
    SELECT r.format, r.content_type, 0, 0, 0, 0, 0, 0, o.succeeded::BIGINT, (NOT o.succeeded)::BIGINT
    FROM agg_unattempted r JOIN o USING (image_id)
    WHERE span(r.dt, $1, $2, 0)
      AND (whole(date_trunc('hour', utc(r.uploaded_at)), 'hour', $1, $2) OR NOT reread(r.dt, $1, $2, 'hour', 0))
      AND r.uploaded_at >= $1::TIMESTAMPTZ AND r.uploaded_at < $2::TIMESTAMPTZ
      AND ($3::VARCHAR IS NULL OR r.customer_id = $3::VARCHAR)
    UNION ALL
    SELECT u.format, u.content_type, 1, u.bytes, u.width, (u.width IS NOT NULL)::BIGINT, u.height, (u.height IS NOT NULL)::BIGINT,
           o.succeeded::BIGINT, (NOT o.succeeded)::BIGINT
    FROM raw_uploads($1, $2) u
    LEFT JOIN o USING (image_id)
    WHERE u.uploaded_at >= $1::TIMESTAMPTZ AND u.uploaded_at < $2::TIMESTAMPTZ
      AND ($3::VARCHAR IS NULL OR u.customer_id = $3::VARCHAR)
), per_type AS (
    SELECT CASE WHEN $4::VARCHAR = 'content_type' THEN content_type ELSE format END AS type,
           sum(images)::BIGINT AS images,
           sum(bytes)::BIGINT AS bytes,
           (sum(sum_width) / nullif(sum(n_width), 0))::DOUBLE AS mean_width,
           (sum(sum_height) / nullif(sum(n_height), 0))::DOUBLE AS mean_height,
           coalesce(sum(processed), 0)::BIGINT AS processed,
           coalesce(sum(failed), 0)::BIGINT AS failed
    FROM up
    GROUP BY 1
)
SELECT type, images, bytes, mean_width, mean_height, processed, failed,
       failed / nullif(processed + failed, 0)::DOUBLE AS failure_rate
FROM per_type
WHERE images > 0
ORDER BY images DESC, type;
