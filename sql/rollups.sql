-- imagelake: rollups, for DuckDB. Run after views.sql.
--
-- Every report reads facts through the table macros below: facts before a watermark `w`
-- come pre-aggregated from the rollup_* tables, facts from `w` on come from the views.
-- Built with the watermark variable set (a UTC midnight), the tables hold:
--   * uploads, variants and deletions whose event time is before the watermark, summed
--     per customer and hour;
--   * jobs *enqueued* before the watermark, every attempt of them, whenever it finished:
--     a job is in the rollups or in the views, never split, so that its outcome (did an
--     attempt succeed, when did the last one finish) is computed from all its attempts;
--   * latencies as counts per value, the value rounded to 2 % (a histogram per customer
--     and day, and per day for all customers), from which the reports take percentiles;
--   * post and comment events before the watermark, counted per customer, hour and event;
--     comments also per post and day, and each post's state (author, published, deleted)
--     from its events before the watermark.
-- The reporting service builds them in the background and rebuilds them when the
-- watermark moves (daily) or when a file arrives with facts before it (a late retry, a
-- compaction); until then a report reads the views alone. On the command line, without
-- the variable, the tables are empty and the macros read the views alone:
--     SET VARIABLE rollup_watermark = TIMESTAMPTZ '2026-11-23 00:00:00+00';  -- optional
--     .read sql/rollups.sql
-- Counted times are at hour (`hour`) or day (`day`) starts, UTC.

-- The watermark the tables were built with ('-infinity': none).
CREATE OR REPLACE MACRO rollup_watermark() AS
    coalesce(getvariable('rollup_watermark')::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ);

-- The watermark a report over [a, b) may use: the tables hold whole hours (days), so a range
-- that does not start and end on one reads the views alone.
CREATE OR REPLACE MACRO hour_watermark(a, b) AS
    CASE WHEN a::TIMESTAMP = date_trunc('hour', a::TIMESTAMP) AND b::TIMESTAMP = date_trunc('hour', b::TIMESTAMP)
         THEN rollup_watermark() ELSE '-infinity'::TIMESTAMPTZ END;
CREATE OR REPLACE MACRO day_watermark(a, b) AS
    CASE WHEN a::TIMESTAMP = date_trunc('day', a::TIMESTAMP) AND b::TIMESTAMP = date_trunc('day', b::TIMESTAMP)
         THEN rollup_watermark() ELSE '-infinity'::TIMESTAMPTZ END;

-- Whether a fact's time t is before the watermark. Without one, false before anything is
-- read, so that this script makes empty tables at once.
CREATE OR REPLACE MACRO before_watermark(t) AS
    rollup_watermark() > '-infinity'::TIMESTAMPTZ AND t < rollup_watermark();

-- A latency in milliseconds rounded to 2 % (1 % either way), the histograms' value.
CREATE OR REPLACE MACRO ms_bucket(v) AS
    round(pow(1.02, round(ln(1 + greatest(v, 0)) / ln(1.02))) - 1, 3)::DOUBLE;

-- The q-quantile of values counted n times each, as quantile_cont over the values
-- repeated: an aggregate over rows (value, below = the running count of the values up to
-- this one, total = the count of all), interpolated between the values at the 0-based
-- ranks floor(q (total - 1)) and ceil(q (total - 1)).
CREATE OR REPLACE MACRO weighted_quantile(value, below, total, q) AS
    min(value) FILTER (WHERE below > floor(q * (total - 1)))
    + (q * (any_value(total) - 1) - floor(q * (any_value(total) - 1)))
      * (min(value) FILTER (WHERE below > ceil(q * (total - 1))) - min(value) FILTER (WHERE below > floor(q * (total - 1))));

-- One row per job enqueued in [lo, hi): its customer, whether an attempt succeeded, when
-- its last attempt finished, and the duration of the succeeded attempt. An empty result,
-- without reading, when hi is '-infinity' (no watermark).
CREATE OR REPLACE MACRO job_outcomes(lo, hi) AS TABLE
SELECT any_value(customer_id) AS customer_id,
       bool_or(status = 'succeeded') AS succeeded,
       max(finished_at) AS finished_at,
       max(duration_ms) FILTER (WHERE status = 'succeeded') AS duration_ms
FROM jobs
WHERE hi > '-infinity'::TIMESTAMPTZ AND dt >= lo::TIMESTAMP::DATE AND enqueued_at >= lo AND enqueued_at < hi
GROUP BY job_id;

-- Queue wait (started_at - enqueued_at) and processing time (duration_ms) in milliseconds,
-- two rows per attempt of the jobs enqueued in [lo, hi), as in job_outcomes.
CREATE OR REPLACE MACRO attempt_latencies(lo, hi) AS TABLE
SELECT customer_id, finished_at, metric, v
FROM jobs,
     LATERAL (VALUES ('processing', duration_ms::DOUBLE),
                     ('queue_wait', (epoch_us(started_at::TIMESTAMP) - epoch_us(enqueued_at::TIMESTAMP)) / 1000.0)) AS l(metric, v)
WHERE hi > '-infinity'::TIMESTAMPTZ AND dt >= lo::TIMESTAMP::DATE AND enqueued_at >= lo AND enqueued_at < hi;

CREATE OR REPLACE TABLE rollup_uploads AS
WITH outcome AS (
    SELECT image_id, bool_or(status = 'succeeded') AS succeeded
    FROM jobs
    WHERE before_watermark(enqueued_at)
    GROUP BY image_id
)
SELECT customer_id, date_trunc('hour', uploaded_at::TIMESTAMP) AS hour, format, content_type,
       count(*)::BIGINT AS images, sum(bytes)::BIGINT AS bytes,
       sum(width)::BIGINT AS sum_width, count(width)::BIGINT AS n_width,
       sum(height)::BIGINT AS sum_height, count(height)::BIGINT AS n_height,
       count(*) FILTER (WHERE o.succeeded)::BIGINT AS processed,
       count(*) FILTER (WHERE NOT o.succeeded)::BIGINT AS failed
FROM uploads u
LEFT JOIN outcome o USING (image_id)
WHERE before_watermark(uploaded_at)
GROUP BY ALL;

-- Uploads before the watermark without a job enqueued before it (their processing, if any,
-- is in the views): few, the last seconds before the watermark.
CREATE OR REPLACE TABLE rollup_unattempted AS
SELECT image_id, customer_id, uploaded_at, format, content_type
FROM uploads
WHERE before_watermark(uploaded_at)
  AND image_id NOT IN (SELECT image_id FROM jobs WHERE before_watermark(enqueued_at));

CREATE OR REPLACE TABLE rollup_jobs AS
SELECT customer_id, date_trunc('hour', finished_at::TIMESTAMP) AS hour,
       count(*) FILTER (WHERE succeeded)::BIGINT AS processed,
       count(*) FILTER (WHERE NOT succeeded)::BIGINT AS failed
FROM job_outcomes('-infinity'::TIMESTAMPTZ, rollup_watermark())
GROUP BY ALL;

-- Processing time of succeeded jobs, by the day their last attempt finished.
CREATE OR REPLACE TABLE rollup_job_ms AS
SELECT customer_id, finished_at::TIMESTAMP::DATE AS day, ms_bucket(duration_ms) AS value, count(*)::BIGINT AS n
FROM job_outcomes('-infinity'::TIMESTAMPTZ, rollup_watermark())
WHERE duration_ms IS NOT NULL
GROUP BY ALL;

CREATE OR REPLACE TABLE rollup_attempts AS
SELECT customer_id, date_trunc('hour', finished_at::TIMESTAMP) AS hour, status,
       count(*)::BIGINT AS attempts, count(*) FILTER (WHERE attempt > 1)::BIGINT AS retries
FROM jobs
WHERE before_watermark(enqueued_at)
GROUP BY ALL;

-- Queue wait and processing time of every attempt, by the day it finished.
CREATE OR REPLACE TABLE rollup_attempt_ms AS
SELECT customer_id, finished_at::TIMESTAMP::DATE AS day, metric, ms_bucket(v) AS value, count(*)::BIGINT AS n
FROM attempt_latencies('-infinity'::TIMESTAMPTZ, rollup_watermark())
GROUP BY ALL;

CREATE OR REPLACE TABLE rollup_attempt_ms_all AS
SELECT day, metric, value, sum(n)::BIGINT AS n
FROM rollup_attempt_ms
GROUP BY ALL;

CREATE OR REPLACE TABLE rollup_variants AS
SELECT customer_id, date_trunc('hour', created_at::TIMESTAMP) AS hour, count(*)::BIGINT AS variants, sum(bytes)::BIGINT AS bytes
FROM variants
WHERE before_watermark(created_at)
GROUP BY ALL;

CREATE OR REPLACE TABLE rollup_deletions AS
SELECT customer_id, date_trunc('hour', deleted_at::TIMESTAMP) AS hour, reason,
       count(*)::BIGINT AS deletions, sum(bytes)::BIGINT AS bytes
FROM deletions
WHERE before_watermark(deleted_at)
GROUP BY ALL;

CREATE OR REPLACE TABLE rollup_posts AS
SELECT customer_id, date_trunc('hour', "at"::TIMESTAMP) AS hour, event, count(*)::BIGINT AS n
FROM posts
WHERE before_watermark("at")
GROUP BY ALL;

CREATE OR REPLACE TABLE rollup_comments AS
SELECT customer_id, date_trunc('hour', "at"::TIMESTAMP) AS hour, event, count(*)::BIGINT AS n
FROM comments
WHERE before_watermark("at")
GROUP BY ALL;

-- Comments created and deleted per post and day (the engagement report's ranking).
CREATE OR REPLACE TABLE rollup_post_comments AS
SELECT customer_id, post_id, "at"::TIMESTAMP::DATE AS day,
       count(*) FILTER (WHERE event = 'created')::BIGINT AS created,
       count(*) FILTER (WHERE event = 'deleted')::BIGINT AS deleted
FROM comments
WHERE before_watermark("at")
GROUP BY ALL;

-- Each post's state from its events before the watermark (later events come from the view).
CREATE OR REPLACE TABLE rollup_post_state AS
SELECT post_id, any_value(customer_id) AS customer_id, any_value(author) AS author,
       min("at") FILTER (WHERE event = 'published') AS published_at,
       min("at") FILTER (WHERE event = 'deleted') AS deleted_at
FROM posts
WHERE before_watermark("at")
GROUP BY post_id;

-- The facts of each table from the rollups (before w) and the views (from w on). `ts` is
-- the hour (day) start of a rollup row, the exact time of a view row; counts are weights.

CREATE OR REPLACE MACRO upload_facts(w) AS TABLE
SELECT customer_id, hour::TIMESTAMPTZ AS ts, format, content_type, images, bytes,
       sum_width, n_width, sum_height, n_height
FROM rollup_uploads WHERE w > '-infinity'::TIMESTAMPTZ
UNION ALL
SELECT customer_id, uploaded_at, format, content_type, 1, bytes,
       width, (width IS NOT NULL)::BIGINT, height, (height IS NOT NULL)::BIGINT
FROM uploads WHERE dt >= w::TIMESTAMP::DATE AND uploaded_at >= w;

-- One row per job (or rollup hour): processed (an attempt succeeded) or failed (none did),
-- at the time its last attempt finished.
CREATE OR REPLACE MACRO job_facts(w) AS TABLE
SELECT customer_id, hour::TIMESTAMPTZ AS ts, processed, failed
FROM rollup_jobs WHERE w > '-infinity'::TIMESTAMPTZ
UNION ALL
SELECT customer_id, finished_at, succeeded::BIGINT, (NOT succeeded)::BIGINT
FROM job_outcomes(w, 'infinity'::TIMESTAMPTZ);

CREATE OR REPLACE MACRO job_ms_facts(w) AS TABLE
SELECT customer_id, day::TIMESTAMPTZ AS ts, value, n
FROM rollup_job_ms WHERE w > '-infinity'::TIMESTAMPTZ
UNION ALL
SELECT customer_id, finished_at, duration_ms::DOUBLE, 1
FROM job_outcomes(w, 'infinity'::TIMESTAMPTZ)
WHERE duration_ms IS NOT NULL;

CREATE OR REPLACE MACRO attempt_facts(w) AS TABLE
SELECT customer_id, hour::TIMESTAMPTZ AS ts, status, attempts, retries
FROM rollup_attempts WHERE w > '-infinity'::TIMESTAMPTZ
UNION ALL
SELECT customer_id, finished_at, status, 1, (attempt > 1)::BIGINT
FROM jobs WHERE dt >= w::TIMESTAMP::DATE AND enqueued_at >= w;

-- Of customer c (NULL: all customers, from the smaller all-customer histograms).
CREATE OR REPLACE MACRO attempt_ms_facts(w, c) AS TABLE
SELECT NULL::VARCHAR AS customer_id, day::TIMESTAMPTZ AS ts, metric, value, n
FROM rollup_attempt_ms_all WHERE w > '-infinity'::TIMESTAMPTZ AND c IS NULL
UNION ALL
SELECT customer_id, day::TIMESTAMPTZ, metric, value, n
FROM rollup_attempt_ms WHERE w > '-infinity'::TIMESTAMPTZ AND customer_id = c
UNION ALL
SELECT customer_id, finished_at, metric, v, 1
FROM attempt_latencies(w, 'infinity'::TIMESTAMPTZ)
WHERE c IS NULL OR customer_id = c;

CREATE OR REPLACE MACRO variant_facts(w) AS TABLE
SELECT customer_id, hour::TIMESTAMPTZ AS ts, variants, bytes
FROM rollup_variants WHERE w > '-infinity'::TIMESTAMPTZ
UNION ALL
SELECT customer_id, created_at, 1, bytes
FROM variants WHERE dt >= w::TIMESTAMP::DATE AND created_at >= w;

CREATE OR REPLACE MACRO deletion_facts(w) AS TABLE
SELECT customer_id, hour::TIMESTAMPTZ AS ts, reason, deletions, bytes
FROM rollup_deletions WHERE w > '-infinity'::TIMESTAMPTZ
UNION ALL
SELECT customer_id, deleted_at, reason, 1, bytes
FROM deletions WHERE dt >= w::TIMESTAMP::DATE AND deleted_at >= w;

-- Post events (`created`, `published`, `failed`, `deleted`), `n` of them at `ts`.
CREATE OR REPLACE MACRO post_facts(w) AS TABLE
SELECT customer_id, hour::TIMESTAMPTZ AS ts, event, n
FROM rollup_posts WHERE w > '-infinity'::TIMESTAMPTZ
UNION ALL
SELECT customer_id, "at", event, 1
FROM posts WHERE dt >= w::TIMESTAMP::DATE AND "at" >= w;

-- Comment events (`created`, `deleted`), `n` of them at `ts`.
CREATE OR REPLACE MACRO comment_facts(w) AS TABLE
SELECT customer_id, hour::TIMESTAMPTZ AS ts, event, n
FROM rollup_comments WHERE w > '-infinity'::TIMESTAMPTZ
UNION ALL
SELECT customer_id, "at", event, 1
FROM comments WHERE dt >= w::TIMESTAMP::DATE AND "at" >= w;

-- Comments created and deleted per post (per day before w, per comment from w on).
CREATE OR REPLACE MACRO post_comment_facts(w) AS TABLE
SELECT customer_id, post_id, day::TIMESTAMPTZ AS ts, created, deleted
FROM rollup_post_comments WHERE w > '-infinity'::TIMESTAMPTZ
UNION ALL
SELECT customer_id, post_id, "at", (event = 'created')::BIGINT, (event = 'deleted')::BIGINT
FROM comments WHERE dt >= w::TIMESTAMP::DATE AND "at" >= w;

-- One row per post: its customer, author, when it was published and deleted (NULL: not
-- yet, as far as the lake knows).
CREATE OR REPLACE MACRO post_states(w) AS TABLE
SELECT post_id, any_value(customer_id) AS customer_id, any_value(author) AS author,
       min(published_at) AS published_at, min(deleted_at) AS deleted_at
FROM (
    SELECT post_id, customer_id, author, published_at, deleted_at
    FROM rollup_post_state WHERE w > '-infinity'::TIMESTAMPTZ
    UNION ALL
    SELECT post_id, customer_id, author,
           CASE WHEN event = 'published' THEN "at" END,
           CASE WHEN event = 'deleted' THEN "at" END
    FROM posts WHERE dt >= w::TIMESTAMP::DATE AND "at" >= w
)
GROUP BY post_id;
