-- imagelake: the facts every report reads, for DuckDB. Run after views.sql.
--
-- A report over [a, b) reads each kind of fact through a table macro below, which takes it
-- from three places, disjoint by construction:
--   * the daily aggregates (agg_*, sql/aggregates.sql) of the days whose aggregates are
--     current (listed in agg_days): whole hours (or days, for the latency histograms), of
--     the days that can hold facts of [a, b) only (span below). The reporting service keeps
--     them in memory, a day at a time, as tables with their `dt`;
--   * the raw facts of every other day (recent_*: the views of views.sql over the files of
--     those days only): today, and a day whose facts changed since it was aggregated;
--   * for a range edge inside an hour (day), the raw facts of that one bucket, in place of
--     its aggregate rows (reread/whole below), from edge_* (the views of views.sql over the
--     files of the aggregated days an edge cuts, and for the jobs the day before each:
--     the service makes them for each query, on its connection). The jobs' latency
--     histograms are daily: for those same days they come from the hourly ones
--     (edge_job_ms_hour, over those days' agg_job_ms_hour files), so that an edge rereads
--     its cut hour, not its day.
-- Figures that are all-time by definition (stored bytes, each post's state) come from the
-- in-memory aggregates (stored_by_day: each aggregated day's net bytes per customer;
-- agg_post_state) plus the raw facts. So a report costs its range's days, the days not
-- yet aggregated and at most the edge days, whatever the lake's size. Jobs are
-- partitioned by the day they were enqueued: the aggregates of the agg_job_lag() days
-- before a range hold its jobs that finished late, and an edge rereads that day and the
-- day before (the attempts that finished after midnight). A job whose last attempt
-- finished more than a day after it was enqueued is counted with its whole hour (its
-- whole day, for the percentiles) at an edge; nothing else is approximate, except the percentiles of aggregated days, which come
-- from histograms of values rounded to 2 %.
--
-- The reporting service provides agg_* (but agg_job_ms_hour), agg_days, recent_*, edge_*
-- (and edge_job_ms_hour), range_usage,
-- stored_by_day, post_comment_totals and agg_job_lag() (reporting/src/memory.rs,
-- objects.rs, edges.rs). On the command line, reading the raw facts alone, after views.sql:
--     CREATE TABLE agg_days (day DATE);
--     CREATE TABLE stored_by_day (dt DATE, customer_id VARCHAR, bytes BIGINT);
--     CREATE TABLE post_comment_totals (post_id VARCHAR, customer_id VARCHAR, created BIGINT);
--     CREATE MACRO agg_job_lag() AS 0;
--     CREATE VIEW range_usage AS SELECT * FROM usage;
--     -- for each input table t: CREATE VIEW recent_t AS SELECT * FROM t;
--     --                         CREATE VIEW edge_t AS SELECT * FROM t;
--     -- for each aggregate: an empty table of its columns and a dt DATE (sql/aggregates.sql),
--     -- and the view edge_job_ms_hour over the empty agg_job_ms_hour.
-- Times are compared in UTC; hours and days are their starts as TIMESTAMP. Every fact's `ts`
-- is a TIMESTAMP in UTC, and reports compare it with their bounds as TIMESTAMP: where
-- DuckDB has ICU (Python's duckdb, the command line), a cast between TIMESTAMPTZ and
-- TIMESTAMP goes through ICU's calendar, about 50 ns a row, which was most of a report's
-- time over millions of aggregate rows. utc() does it with arithmetic, whatever the
-- session's time zone.
CREATE OR REPLACE MACRO utc(t) AS make_timestamp(epoch_us(t));

-- Whether t is not at the start of its `unit` ('hour' or 'day'): an edge inside a bucket.
CREATE OR REPLACE MACRO cut(t, unit) AS t::TIMESTAMP <> date_trunc(unit, t::TIMESTAMP);

-- Whether the bucket that starts at s is not cut by either edge of [a, b).
CREATE OR REPLACE MACRO whole(s, unit, a, b) AS
    NOT (cut(a, unit) AND s = date_trunc(unit, a::TIMESTAMP))
    AND NOT (cut(b, unit) AND s = date_trunc(unit, b::TIMESTAMP));

-- Whether the aggregates of day d can hold facts of [a, b): its day is in the range, or
-- up to `back` days before it (jobs: those that finished days after they were enqueued).
-- Constant but for d, so that DuckDB prunes the aggregates' files by their dt.
CREATE OR REPLACE MACRO span(d, a, b, back) AS
    d BETWEEN a::TIMESTAMP::DATE - back AND b::TIMESTAMP::DATE;

-- Whether partition d is aggregated and holds facts of a bucket cut by an edge: the edge's
-- day, and `back` days before it.
CREATE OR REPLACE MACRO reread(d, a, b, unit, back) AS
    ((cut(a, unit) AND d BETWEEN a::TIMESTAMP::DATE - back AND a::TIMESTAMP::DATE)
     OR (cut(b, unit) AND d BETWEEN b::TIMESTAMP::DATE - back AND b::TIMESTAMP::DATE))
    AND d IN (SELECT day FROM agg_days);

-- Whether [a, b) is longer than a week: the engagement report bounds its ranking only
-- then (sql/reports/engagement.sql). Its parameters alone decide it, so DuckDB skips
-- the scans it guards when it is false.
CREATE OR REPLACE MACRO long_range(a, b) AS b::TIMESTAMP - a::TIMESTAMP > INTERVAL 7 DAY;

-- The q-quantile of values counted n times each, as quantile_cont over the values
-- repeated: an aggregate over rows (value, below = the running count of the values up to
-- this one, total = the count of all), interpolated between the values at the 0-based
-- ranks floor(q (total - 1)) and ceil(q (total - 1)).
CREATE OR REPLACE MACRO weighted_quantile(value, below, total, q) AS
    min(value) FILTER (WHERE below > floor(q * (total - 1)))
    + (q * (any_value(total) - 1) - floor(q * (any_value(total) - 1)))
      * (min(value) FILTER (WHERE below > ceil(q * (total - 1))) - min(value) FILTER (WHERE below > floor(q * (total - 1))));

-- Raw jobs of the days not aggregated, and of the aggregated days an edge rereads.
CREATE OR REPLACE MACRO raw_jobs(a, b, unit) AS TABLE
SELECT * FROM recent_jobs
UNION ALL BY NAME
SELECT * FROM edge_jobs WHERE reread(dt, a, b, unit, 1);

-- One row per job: whether an attempt succeeded, when the last one finished, the duration
-- of the succeeded one; `edge`: from an aggregated day. Every job of the days not
-- aggregated; of the aggregated days an edge rereads, the jobs with an attempt that
-- finished in a bucket an edge cuts only (a job's last attempt is in a cut bucket only if
-- one of its attempts is): the readers of an edge job keep it only if its last attempt
-- is in one. So a range cut inside two hours groups those hours' jobs, not four days'.
CREATE OR REPLACE MACRO raw_outcomes(a, b, unit) AS TABLE
SELECT any_value(customer_id) AS customer_id, any_value(image_id) AS image_id,
       bool_or(status = 'succeeded') AS succeeded, max(finished_at) AS finished_at,
       max(duration_ms) FILTER (WHERE status = 'succeeded') AS duration_ms,
       bool_or(dt IN (SELECT day FROM agg_days)) AS edge
FROM (SELECT * FROM recent_jobs
      UNION ALL BY NAME
      SELECT * FROM edge_jobs WHERE reread(dt, a, b, unit, 1)
        AND job_id IN (SELECT job_id FROM edge_jobs WHERE reread(dt, a, b, unit, 1)
                         AND NOT whole(date_trunc(unit, utc(finished_at)), unit, a, b)))
GROUP BY job_id;

-- Raw uploads: of the days not aggregated, and of the aggregated hours an edge cuts.
CREATE OR REPLACE MACRO raw_uploads(a, b) AS TABLE
SELECT * FROM recent_uploads
UNION ALL BY NAME
SELECT * FROM edge_uploads WHERE reread(dt, a, b, 'hour', 0)
  AND NOT whole(date_trunc('hour', utc(uploaded_at)), 'hour', a, b);

-- Uploads: `images` of them at `ts`, with their bytes and dimensions' sums.
CREATE OR REPLACE MACRO upload_facts(a, b) AS TABLE
SELECT customer_id, hour AS ts, format, content_type, images, bytes,
       sum_width, n_width, sum_height, n_height
FROM agg_uploads WHERE span(dt, a, b, 0) AND (whole(hour, 'hour', a, b) OR NOT reread(dt, a, b, 'hour', 0))
UNION ALL
SELECT customer_id, utc(uploaded_at), format, content_type, 1, bytes,
       width, (width IS NOT NULL)::BIGINT, height, (height IS NOT NULL)::BIGINT
FROM raw_uploads(a, b);

-- job_outcomes: the raw_outcomes that job_facts and job_ms_facts read. It is not a table
-- of the database but a CTE that each report reading them declares first:
--     WITH job_outcomes AS MATERIALIZED (SELECT * FROM raw_outcomes($1, $2, 'hour')), ...
-- so that a report that reads both groups the raw attempts into jobs once (customers: a
-- fifth of its time over a range that cuts hours, at 361 M rows). Both keep the edge rows
-- of cut hours. This view only lets the two macros be created:
-- it is dropped after them, so a report that does not declare the CTE fails
-- ("job_outcomes does not exist") instead of missing the raw jobs.
CREATE OR REPLACE VIEW job_outcomes AS SELECT * FROM raw_outcomes(NULL::TIMESTAMP, NULL::TIMESTAMP, 'hour');

-- One row per job (or aggregated hour): processed (an attempt succeeded) or failed (none
-- did), at the time its last attempt finished.
CREATE OR REPLACE MACRO job_facts(a, b) AS TABLE
SELECT customer_id, hour AS ts, processed, failed
FROM agg_jobs WHERE span(dt, a, b, agg_job_lag()) AND (whole(hour, 'hour', a, b) OR NOT reread(dt, a, b, 'hour', 1))
UNION ALL
SELECT customer_id, utc(finished_at), succeeded::BIGINT, (NOT succeeded)::BIGINT
FROM job_outcomes
WHERE NOT edge OR NOT whole(date_trunc('hour', utc(finished_at)), 'hour', a, b);

-- Processing time of succeeded jobs: a value counted n times, by the day (agg_job_ms),
-- the hour (agg_job_ms_hour, of the days an edge cuts: edge_job_ms_hour) or the time
-- (raw, of the hours an edge cuts and the days not aggregated) their last attempt finished.
CREATE OR REPLACE MACRO job_ms_facts(a, b) AS TABLE
SELECT customer_id, day::TIMESTAMP AS ts, value, n
FROM agg_job_ms WHERE span(dt, a, b, agg_job_lag()) AND NOT reread(dt, a, b, 'day', 1)
UNION ALL
SELECT customer_id, hour, value, n
FROM edge_job_ms_hour WHERE reread(dt, a, b, 'day', 1) AND (whole(hour, 'hour', a, b) OR NOT reread(dt, a, b, 'hour', 1))
UNION ALL
SELECT customer_id, utc(finished_at), duration_ms::DOUBLE, 1
FROM job_outcomes
WHERE duration_ms IS NOT NULL
  AND (NOT edge OR NOT whole(date_trunc('hour', utc(finished_at)), 'hour', a, b));

DROP VIEW job_outcomes;

-- Attempts by status (and how many were retries), when they finished.
CREATE OR REPLACE MACRO attempt_facts(a, b) AS TABLE
SELECT customer_id, hour AS ts, status, attempts, retries
FROM agg_attempts WHERE span(dt, a, b, agg_job_lag()) AND (whole(hour, 'hour', a, b) OR NOT reread(dt, a, b, 'hour', 1))
UNION ALL
SELECT customer_id, utc(finished_at), status, 1, (attempt > 1)::BIGINT
FROM raw_jobs(a, b, 'hour')
WHERE dt NOT IN (SELECT day FROM agg_days) OR NOT whole(date_trunc('hour', utc(finished_at)), 'hour', a, b);

-- Queue wait and processing time of every attempt, of customer c (NULL: all customers,
-- from the smaller all-customer histograms).
CREATE OR REPLACE MACRO attempt_ms_facts(a, b, c) AS TABLE
SELECT NULL::VARCHAR AS customer_id, day::TIMESTAMP AS ts, metric, value, n
FROM agg_attempt_ms_all
WHERE c IS NULL AND span(dt, a, b, agg_job_lag()) AND (whole(day::TIMESTAMP, 'day', a, b) OR NOT reread(dt, a, b, 'day', 1))
UNION ALL
SELECT customer_id, day::TIMESTAMP, metric, value, n
FROM agg_attempt_ms
WHERE customer_id = c AND span(dt, a, b, agg_job_lag()) AND (whole(day::TIMESTAMP, 'day', a, b) OR NOT reread(dt, a, b, 'day', 1))
UNION ALL
SELECT customer_id, utc(finished_at), metric, v, 1
FROM raw_jobs(a, b, 'day'),
     LATERAL (VALUES ('processing', duration_ms::DOUBLE),
                     ('queue_wait', (epoch_us(started_at) - epoch_us(enqueued_at)) / 1000.0)) AS l(metric, v)
WHERE (c IS NULL OR customer_id = c)
  AND (dt NOT IN (SELECT day FROM agg_days) OR NOT whole(date_trunc('day', utc(finished_at)), 'day', a, b));

CREATE OR REPLACE MACRO variant_facts(a, b) AS TABLE
SELECT customer_id, hour AS ts, variants, bytes
FROM agg_variants WHERE span(dt, a, b, 0) AND (whole(hour, 'hour', a, b) OR NOT reread(dt, a, b, 'hour', 0))
UNION ALL
SELECT customer_id, utc(created_at), 1, bytes
FROM (SELECT * FROM recent_variants
      UNION ALL BY NAME
      SELECT * FROM edge_variants WHERE reread(dt, a, b, 'hour', 0)
        AND NOT whole(date_trunc('hour', utc(created_at)), 'hour', a, b));

CREATE OR REPLACE MACRO deletion_facts(a, b) AS TABLE
SELECT customer_id, hour AS ts, reason, deletions, bytes
FROM agg_deletions WHERE span(dt, a, b, 0) AND (whole(hour, 'hour', a, b) OR NOT reread(dt, a, b, 'hour', 0))
UNION ALL
SELECT customer_id, utc(deleted_at), reason, 1, bytes
FROM (SELECT * FROM recent_deletions
      UNION ALL BY NAME
      SELECT * FROM edge_deletions WHERE reread(dt, a, b, 'hour', 0)
        AND NOT whole(date_trunc('hour', utc(deleted_at)), 'hour', a, b));

-- Post events (`created`, `published`, `failed`, `deleted`), `n` of them at `ts`.
CREATE OR REPLACE MACRO post_facts(a, b) AS TABLE
SELECT customer_id, hour AS ts, event, n
FROM agg_posts WHERE span(dt, a, b, 0) AND (whole(hour, 'hour', a, b) OR NOT reread(dt, a, b, 'hour', 0))
UNION ALL
SELECT customer_id, utc("at"), event, 1
FROM (SELECT * FROM recent_posts
      UNION ALL BY NAME
      SELECT * FROM edge_posts WHERE reread(dt, a, b, 'hour', 0)
        AND NOT whole(date_trunc('hour', utc("at")), 'hour', a, b));

-- Comment events (`created`, `deleted`), `n` of them at `ts`.
CREATE OR REPLACE MACRO comment_facts(a, b) AS TABLE
SELECT customer_id, hour AS ts, event, n
FROM agg_comments WHERE span(dt, a, b, 0) AND (whole(hour, 'hour', a, b) OR NOT reread(dt, a, b, 'hour', 0))
UNION ALL
SELECT customer_id, utc("at"), event, 1
FROM (SELECT * FROM recent_comments
      UNION ALL BY NAME
      SELECT * FROM edge_comments WHERE reread(dt, a, b, 'hour', 0)
        AND NOT whole(date_trunc('hour', utc("at")), 'hour', a, b));

-- Comments created and deleted per post (per day from the aggregates, per comment raw).
CREATE OR REPLACE MACRO post_comment_facts(a, b) AS TABLE
SELECT customer_id, post_id, day::TIMESTAMP AS ts, created, deleted
FROM agg_post_comments WHERE span(dt, a, b, 0) AND (whole(day::TIMESTAMP, 'day', a, b) OR NOT reread(dt, a, b, 'day', 0))
UNION ALL
SELECT customer_id, post_id, utc("at"), (event = 'created')::BIGINT, (event = 'deleted')::BIGINT
FROM (SELECT * FROM recent_comments
      UNION ALL BY NAME
      SELECT * FROM edge_comments WHERE reread(dt, a, b, 'day', 0)
        AND NOT whole(date_trunc('day', utc("at")), 'day', a, b));

-- Each post's events: its customer, author, when it was published and deleted (NULL: not
-- on that day, or not yet as far as the lake knows); a post's state is the earliest of
-- these, grouped by post_id. All time: from agg_post_state (the aggregated days, in
-- memory) and the raw posts.
CREATE OR REPLACE MACRO post_state_facts() AS TABLE
SELECT post_id, customer_id, author, published_at, deleted_at
FROM agg_post_state
UNION ALL
SELECT post_id, customer_id, author,
       CASE WHEN event = 'published' THEN "at" END,
       CASE WHEN event = 'deleted' THEN "at" END
FROM recent_posts;

-- Bytes stored now, per customer (originals + variants - deletions, all time): the sums
-- of the aggregated days (stored_by_day) and the raw facts of the others. An abandoned
-- upload's deletion (reason `abandoned`: a resumable upload that expired incomplete) is
-- not subtracted: its bytes were never an upload's.
CREATE OR REPLACE MACRO stored_facts() AS TABLE
SELECT customer_id, bytes FROM stored_by_day
UNION ALL
SELECT customer_id, bytes FROM recent_uploads
UNION ALL
SELECT customer_id, bytes FROM recent_variants
UNION ALL
SELECT customer_id, -bytes FROM recent_deletions WHERE reason <> 'abandoned';

-- The outcome so far of each image with raw jobs or a job on another day than its upload
-- (for the uploads of agg_unattempted and the raw uploads of [a, b); the others carry
-- theirs). A late job of an upload in the range was enqueued on the range's first day or
-- later.
CREATE OR REPLACE MACRO image_outcomes(a, b) AS TABLE
SELECT image_id, bool_or(succeeded) AS succeeded
FROM (SELECT image_id, status = 'succeeded' AS succeeded FROM raw_jobs(a, b, 'hour')
      UNION ALL
      SELECT image_id, succeeded FROM agg_late_outcomes WHERE dt >= a::TIMESTAMP::DATE)
GROUP BY image_id;
