-- types: one row per image format (or content type) of the uploads in the range.
-- $1 from (TIMESTAMP, inclusive)  $2 to (TIMESTAMP, exclusive)  $3 customer (VARCHAR, NULL = all)
-- $4 grouping: 'format' or 'content_type'
--
-- images/bytes/mean_width/mean_height: uploads accepted in the range. processed/failed:
-- outcome of those images' processing so far (failed = attempts, none succeeded; images
-- not yet attempted count in neither); failure_rate = failed / (processed + failed).
WITH up AS (
    SELECT image_id,
           CASE WHEN $4::VARCHAR = 'content_type' THEN content_type ELSE format END AS type,
           bytes, width, height
    FROM uploads
    WHERE uploaded_at >= $1::TIMESTAMPTZ AND uploaded_at < $2::TIMESTAMPTZ
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
), outcome AS (
    SELECT image_id, bool_or(status = 'succeeded') AS succeeded
    FROM jobs
    WHERE $3::VARCHAR IS NULL OR customer_id = $3::VARCHAR
    GROUP BY image_id
), per_type AS (
    SELECT up.type,
           count(*)::BIGINT AS images,
           sum(up.bytes)::BIGINT AS bytes,
           avg(up.width)::DOUBLE AS mean_width,
           avg(up.height)::DOUBLE AS mean_height,
           count(*) FILTER (WHERE o.succeeded)::BIGINT AS processed,
           count(*) FILTER (WHERE NOT o.succeeded)::BIGINT AS failed
    FROM up LEFT JOIN outcome o USING (image_id)
    GROUP BY up.type
)
SELECT type, images, bytes, mean_width, mean_height, processed, failed,
       failed / nullif(processed + failed, 0)::DOUBLE AS failure_rate
FROM per_type
ORDER BY images DESC, type;
