-- usage: stored bytes now against capacity, with a growth trend and days until full.
-- $1 from (TIMESTAMP, inclusive)  $2 to (TIMESTAMP, exclusive)  $3 customer (VARCHAR, NULL = all)
-- $4 capacity_bytes (BIGINT)
--
-- The first row is the whole lake (customer_id NULL), then one row per customer (only $3
-- when given). used_bytes: originals + variants - deletions, all time (stored_facts; an
-- abandoned upload's deletion is not subtracted: its bytes were never an upload's).
-- growth_bytes_per_day: least-squares slope of stored bytes over time in [from, to): over
-- the usage snapshots when there are at least two ('snapshots'), else over the stored
-- bytes at the end of each day with uploads, variants or deletions ('uploads'): those
-- days' net bytes added up from the range's first day (a slope does not depend on the
-- bytes stored before it, so the days before the range are not read).
-- The snapshots come from range_usage: those of the range's days (sql/facts.sql).
-- days_until_full (whole lake only): (capacity - used) / growth, when growth > 0.
WITH net AS (
    SELECT customer_id, ts, bytes AS delta FROM upload_facts($1, $2)
    UNION ALL
    SELECT customer_id, ts, bytes FROM variant_facts($1, $2)
    UNION ALL
    SELECT customer_id, ts, -bytes FROM deletion_facts($1, $2) WHERE reason <> 'abandoned'
), per_day AS MATERIALIZED (
    -- Facts read once (through the macros of sql/facts.sql); everything below works on
    -- these (customer, day) sums.
    SELECT customer_id, ts::DATE AS day, ts < $2::TIMESTAMP AS before_to, sum(delta) AS delta
    FROM net
    GROUP BY ALL
), keyed AS MATERIALIZED (
    -- '' is the whole lake (no customer id is empty).
    SELECT '' AS who, day, before_to, delta FROM per_day
    UNION ALL
    SELECT customer_id, day, before_to, delta FROM per_day WHERE $3::VARCHAR IS NULL OR customer_id = $3::VARCHAR
), stored AS MATERIALIZED (
    SELECT customer_id, sum(bytes) AS bytes FROM stored_facts() GROUP BY customer_id
), used AS (
    SELECT who, sum(bytes)::BIGINT AS used_bytes
    FROM (SELECT '' AS who, bytes FROM stored
          UNION ALL
          SELECT customer_id, bytes FROM stored WHERE $3::VARCHAR IS NULL OR customer_id = $3::VARCHAR
          UNION ALL
          SELECT '', 0)
    GROUP BY who
), daily AS (
    SELECT who, day, sum(delta) AS delta
    FROM keyed
    WHERE day IS NOT NULL AND before_to
    GROUP BY ALL
), cumulative AS (
    SELECT who, day, sum(delta) OVER (PARTITION BY who ORDER BY day) AS stored FROM daily
), volume_trend AS (
    SELECT who, regr_slope(stored, epoch_us(day::TIMESTAMP) / 86400e6) AS per_day, count(*) AS points
    FROM cumulative
    WHERE day >= $1::TIMESTAMP::DATE
    GROUP BY who
), snapshot_trend AS (
    SELECT coalesce(customer_id, '') AS who,
           regr_slope(originals_bytes + variants_bytes, epoch_us(taken_at) / 86400e6) AS per_day,
           count(DISTINCT taken_at) AS points
    FROM range_usage
    WHERE taken_at >= $1::TIMESTAMPTZ AND taken_at < $2::TIMESTAMPTZ
    GROUP BY 1
), trend AS (
    SELECT u.who, u.used_bytes,
           CASE WHEN s.points >= 2 THEN 'snapshots' WHEN v.points >= 2 THEN 'uploads' END AS trend_source,
           CASE WHEN s.points >= 2 THEN s.per_day WHEN v.points >= 2 THEN v.per_day END AS growth_bytes_per_day
    FROM used u
    LEFT JOIN snapshot_trend s USING (who)
    LEFT JOIN volume_trend v USING (who)
)
SELECT
    nullif(who, '') AS customer_id,
    used_bytes,
    $4::BIGINT AS capacity_bytes,
    100.0 * used_bytes / nullif($4::BIGINT, 0)::DOUBLE AS used_percent,
    trend_source,
    growth_bytes_per_day::DOUBLE AS growth_bytes_per_day,
    CASE WHEN who = '' AND growth_bytes_per_day > 0
         THEN greatest($4::BIGINT - used_bytes, 0) / growth_bytes_per_day END::DOUBLE AS days_until_full
FROM trend
ORDER BY who <> '', used_bytes DESC, who;
