-- imagelake: the daily aggregates, for DuckDB. The lifecycle runs this script for one day D
-- with the views uploads, jobs, variants, deletions, posts and comments over the files of
-- that day's partitions (dt = D) only, deduplicated as in views.sql (and uploads_all,
-- jobs_all, ...: every row of the same files, copies included), and writes each table
-- to lake/agg_{name}/dt=D/{fingerprint}.parquet (core/src/lake/agg.rs). Business users
-- and BI tools read these tables first: they are small, and already deduplicated.
--
-- What "the facts of day D" are: uploads, variants, deletions, posts and comments whose
-- event time is on D (UTC), and the attempts of the jobs *enqueued* on D, whenever they
-- finished (the jobs table is partitioned by enqueue time, so that all attempts of a job are
-- in one partition and its outcome is decided there). Counts and bytes are per customer and
-- hour; latencies are histograms per customer and day, each value a millisecond figure
-- rounded to 2 % (ms_bucket), which merge by adding counts. Hours and days are UTC, at
-- their start, as TIMESTAMP.

-- A latency in milliseconds rounded to 2 % (1 % either way), the histograms' value.
CREATE OR REPLACE MACRO ms_bucket(v) AS
    round(pow(1.02, round(ln(1 + greatest(v, 0)) / ln(1.02))) - 1, 3)::DOUBLE;

-- One row per job: its customer, image, whether an attempt succeeded, when its last attempt
-- finished, and the duration of the succeeded attempt.
CREATE OR REPLACE TEMP VIEW day_job_outcomes AS
SELECT job_id, any_value(customer_id) AS customer_id, any_value(image_id) AS image_id,
       bool_or(status = 'succeeded') AS succeeded,
       max(finished_at) AS finished_at,
       max(duration_ms) FILTER (WHERE status = 'succeeded') AS duration_ms
FROM jobs
GROUP BY job_id;

-- Uploads per customer, hour, format and content type, with the outcome of their images'
-- jobs enqueued the same day (processed: one succeeded; failed: attempted, none succeeded).
CREATE OR REPLACE TABLE agg_uploads AS
WITH outcome AS (
    SELECT image_id, bool_or(succeeded) AS succeeded FROM day_job_outcomes GROUP BY image_id
)
SELECT customer_id, date_trunc('hour', uploaded_at::TIMESTAMP) AS hour, format, content_type,
       count(*)::BIGINT AS images, sum(bytes)::BIGINT AS bytes,
       sum(width)::BIGINT AS sum_width, count(width)::BIGINT AS n_width,
       sum(height)::BIGINT AS sum_height, count(height)::BIGINT AS n_height,
       count(*) FILTER (WHERE o.succeeded)::BIGINT AS processed,
       count(*) FILTER (WHERE NOT o.succeeded)::BIGINT AS failed
FROM uploads u
LEFT JOIN outcome o USING (image_id)
GROUP BY ALL;

-- Uploads of the day without a job enqueued the same day (their job came later: the last
-- seconds before midnight, or an outage of the queue): few rows.
CREATE OR REPLACE TABLE agg_unattempted AS
SELECT image_id, customer_id, uploaded_at, format, content_type
FROM uploads
WHERE image_id NOT IN (SELECT image_id FROM jobs);

-- The outcome of the day's jobs whose image was uploaded on an earlier day (the other side
-- of agg_unattempted).
CREATE OR REPLACE TABLE agg_late_outcomes AS
SELECT image_id, any_value(customer_id) AS customer_id, bool_or(succeeded) AS succeeded
FROM day_job_outcomes
WHERE image_id NOT IN (SELECT image_id FROM uploads)
GROUP BY image_id;

-- Jobs by outcome, in the hour their last attempt finished.
CREATE OR REPLACE TABLE agg_jobs AS
SELECT customer_id, date_trunc('hour', finished_at::TIMESTAMP) AS hour,
       count(*) FILTER (WHERE succeeded)::BIGINT AS processed,
       count(*) FILTER (WHERE NOT succeeded)::BIGINT AS failed
FROM day_job_outcomes
GROUP BY ALL;

-- Processing time of succeeded jobs, by the day their last attempt finished.
CREATE OR REPLACE TABLE agg_job_ms AS
SELECT customer_id, finished_at::TIMESTAMP::DATE AS day, ms_bucket(duration_ms) AS value, count(*)::BIGINT AS n
FROM day_job_outcomes
WHERE duration_ms IS NOT NULL
GROUP BY ALL;

-- The same histograms per hour: read for the days a range's edge cuts only (the day's
-- whole hours; reporting/src/edges.rs), so that a range cut inside a day does not reread
-- that day's raw jobs. Not kept in the reporting service's memory.
CREATE OR REPLACE TABLE agg_job_ms_hour AS
SELECT customer_id, date_trunc('hour', finished_at::TIMESTAMP) AS hour, ms_bucket(duration_ms) AS value, count(*)::BIGINT AS n
FROM day_job_outcomes
WHERE duration_ms IS NOT NULL
GROUP BY ALL;

-- Attempts by status, in the hour they finished.
CREATE OR REPLACE TABLE agg_attempts AS
SELECT customer_id, date_trunc('hour', finished_at::TIMESTAMP) AS hour, status,
       count(*)::BIGINT AS attempts, count(*) FILTER (WHERE attempt > 1)::BIGINT AS retries
FROM jobs
GROUP BY ALL;

-- Queue wait (started_at - enqueued_at) and processing time of every attempt, by the day
-- it finished.
CREATE OR REPLACE TABLE agg_attempt_ms AS
SELECT customer_id, finished_at::TIMESTAMP::DATE AS day, metric, ms_bucket(v) AS value, count(*)::BIGINT AS n
FROM jobs,
     LATERAL (VALUES ('processing', duration_ms::DOUBLE),
                     ('queue_wait', (epoch_us(started_at::TIMESTAMP) - epoch_us(enqueued_at::TIMESTAMP)) / 1000.0)) AS l(metric, v)
GROUP BY ALL;

-- The same for all customers together.
CREATE OR REPLACE TABLE agg_attempt_ms_all AS
SELECT day, metric, value, sum(n)::BIGINT AS n
FROM agg_attempt_ms
GROUP BY ALL;

CREATE OR REPLACE TABLE agg_variants AS
SELECT customer_id, date_trunc('hour', created_at::TIMESTAMP) AS hour, count(*)::BIGINT AS variants, sum(bytes)::BIGINT AS bytes
FROM variants
GROUP BY ALL;

CREATE OR REPLACE TABLE agg_deletions AS
SELECT customer_id, date_trunc('hour', deleted_at::TIMESTAMP) AS hour, reason,
       count(*)::BIGINT AS deletions, sum(bytes)::BIGINT AS bytes
FROM deletions
GROUP BY ALL;

-- Post events (created, published, failed, deleted) per customer and hour.
CREATE OR REPLACE TABLE agg_posts AS
SELECT customer_id, date_trunc('hour', "at"::TIMESTAMP) AS hour, event, count(*)::BIGINT AS n
FROM posts
GROUP BY ALL;

-- Comment events (created, deleted) per customer and hour.
CREATE OR REPLACE TABLE agg_comments AS
SELECT customer_id, date_trunc('hour', "at"::TIMESTAMP) AS hour, event, count(*)::BIGINT AS n
FROM comments
GROUP BY ALL;

-- Comments created and deleted per post and day (the engagement report's ranking).
CREATE OR REPLACE TABLE agg_post_comments AS
SELECT customer_id, post_id, "at"::TIMESTAMP::DATE AS day,
       count(*) FILTER (WHERE event = 'created')::BIGINT AS created,
       count(*) FILTER (WHERE event = 'deleted')::BIGINT AS deleted
FROM comments
GROUP BY ALL;

-- Each post's events of the day: its author, when it was published and deleted (NULL: not
-- on this day). A post's state is the earliest of these over all days.
CREATE OR REPLACE TABLE agg_post_state AS
SELECT post_id, any_value(customer_id) AS customer_id, any_value(author) AS author,
       min("at") FILTER (WHERE event = 'published') AS published_at,
       min("at") FILTER (WHERE event = 'deleted') AS deleted_at
FROM posts
GROUP BY post_id;

-- The day's facts written more than once (a redelivered job, a compaction interrupted
-- between its write and its deletes), from every row of the day's files (uploads_all,
-- jobs_all, ...: the views' scans without their deduplication): per input table, each
-- event id with copies, and how many rows it has. Usually empty. A reader that rereads an
-- aggregated day's raw facts (a range edge, reporting/src/edges.rs) deduplicates these
-- alone, instead of counting the copies of every fact of the day.
CREATE OR REPLACE TABLE agg_copies AS
SELECT 'uploads' AS fact_table, event_id, count(*)::BIGINT AS copies FROM uploads_all GROUP BY event_id HAVING count(*) > 1
UNION ALL
SELECT 'jobs', event_id, count(*)::BIGINT FROM jobs_all GROUP BY event_id HAVING count(*) > 1
UNION ALL
SELECT 'variants', event_id, count(*)::BIGINT FROM variants_all GROUP BY event_id HAVING count(*) > 1
UNION ALL
SELECT 'deletions', event_id, count(*)::BIGINT FROM deletions_all GROUP BY event_id HAVING count(*) > 1
UNION ALL
SELECT 'posts', event_id, count(*)::BIGINT FROM posts_all GROUP BY event_id HAVING count(*) > 1
UNION ALL
SELECT 'comments', event_id, count(*)::BIGINT FROM comments_all GROUP BY event_id HAVING count(*) > 1;
