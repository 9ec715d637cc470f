-- imagelake daily aggregates: one CREATE EXTERNAL TABLE per table of sql/aggregates.sql
-- (core/src/lake/agg.rs, Agg::ALL), over lake/agg_{name}/dt=YYYY-MM-DD/{fingerprint}.parquet.
-- The lifecycle writes one file per table and closed UTC day D, from the deduplicated facts
-- of the dt=D partitions: no event_id here, nothing to deduplicate, sum the counts.
-- A re-aggregation (a late fact or a compaction changed the day) writes the day's new file
-- and then deletes the old one: for a few seconds a day can have two files per table.
-- Days not closed yet (today; yesterday until about 00:30 UTC and the next lifecycle run)
-- have no aggregate: read those days from the fact tables.
-- Partitioned by dt (string 'YYYY-MM-DD'), projected, never crawled. Hours and days are UTC
-- (`hour`: the start of the hour). ${BUCKET} and ${PREFIX} are placeholders: see README.md.
-- One statement per table: Athena runs one statement per query (README.md splits the file).

-- `agg_uploads`: uploads per customer, hour (UTC, of uploaded_at), format and content type,
-- with the outcome of their jobs enqueued the same day: processed (an attempt
-- succeeded), failed (attempted, none succeeded), neither (no job that day: see
-- agg_unattempted). Average width: sum(sum_width) / sum(n_width). dt: the upload day.
CREATE EXTERNAL TABLE IF NOT EXISTS agg_uploads (
  `customer_id`  string,
  `hour`         timestamp,
  `format`       string,
  `content_type` string,
  `images`       bigint,
  `bytes`        bigint,
  `sum_width`    bigint,
  `n_width`      bigint,
  `sum_height`   bigint,
  `n_height`     bigint,
  `processed`    bigint,
  `failed`       bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_uploads/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_uploads/dt=${dt}/'
);

-- `agg_unattempted`: one row per upload of day dt without a job enqueued that day (few rows):
-- its outcome is in agg_late_outcomes of a later day, by image_id.
CREATE EXTERNAL TABLE IF NOT EXISTS agg_unattempted (
  `image_id`     string,
  `customer_id`  string,
  `uploaded_at`  timestamp,
  `format`       string,
  `content_type` string
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_unattempted/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_unattempted/dt=${dt}/'
);

-- `agg_late_outcomes`: one row per image whose job was enqueued on day dt but which was uploaded
-- on an earlier day: whether an attempt succeeded (the other side of agg_unattempted).
CREATE EXTERNAL TABLE IF NOT EXISTS agg_late_outcomes (
  `image_id`    string,
  `customer_id` string,
  `succeeded`   boolean
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_late_outcomes/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_late_outcomes/dt=${dt}/'
);

-- `agg_jobs`: jobs per customer and hour (UTC) their last attempt finished: processed (an
-- attempt succeeded) and failed (none did). dt: the day the jobs were ENQUEUED, so a
-- file can hold hours of the next day (jobs finished after midnight).
CREATE EXTERNAL TABLE IF NOT EXISTS agg_jobs (
  `customer_id` string,
  `hour`        timestamp,
  `processed`   bigint,
  `failed`      bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_jobs/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_jobs/dt=${dt}/'
);

-- `agg_job_ms`: processing time of succeeded jobs: a histogram per customer and day (UTC) the
-- job finished: n jobs took about `value` ms (rounded to 2 %). dt: the enqueue day.
CREATE EXTERNAL TABLE IF NOT EXISTS agg_job_ms (
  `customer_id` string,
  `day`         date,
  `value`       double,
  `n`           bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_job_ms/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_job_ms/dt=${dt}/'
);

-- `agg_job_ms_hour`: the same histogram per customer and hour (UTC) the job finished (five
-- times the rows of agg_job_ms: for latencies within a day). dt: the enqueue day.
CREATE EXTERNAL TABLE IF NOT EXISTS agg_job_ms_hour (
  `customer_id` string,
  `hour`        timestamp,
  `value`       double,
  `n`           bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_job_ms_hour/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_job_ms_hour/dt=${dt}/'
);

-- `agg_attempts`: attempts per customer, hour (UTC) they finished and status, with the retries
-- among them (attempt > 1). dt: the day the jobs were enqueued.
CREATE EXTERNAL TABLE IF NOT EXISTS agg_attempts (
  `customer_id` string,
  `hour`        timestamp,
  `status`      string,
  `attempts`    bigint,
  `retries`     bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_attempts/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_attempts/dt=${dt}/'
);

-- `agg_attempt_ms`: queue wait and processing time of every attempt: a histogram per customer,
-- day (UTC) it finished and metric ('processing', 'queue_wait'): n attempts
-- took about `value` ms (rounded to 2 %). dt: the enqueue day.
CREATE EXTERNAL TABLE IF NOT EXISTS agg_attempt_ms (
  `customer_id` string,
  `day`         date,
  `metric`      string,
  `value`       double,
  `n`           bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_attempt_ms/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_attempt_ms/dt=${dt}/'
);

-- `agg_attempt_ms_all`: agg_attempt_ms for all customers together: per day (UTC) finished, metric
-- and value (ms, rounded to 2 %), n attempts. dt: the enqueue day.
CREATE EXTERNAL TABLE IF NOT EXISTS agg_attempt_ms_all (
  `day`    date,
  `metric` string,
  `value`  double,
  `n`      bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_attempt_ms_all/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_attempt_ms_all/dt=${dt}/'
);

-- `agg_variants`: variants written per customer and hour (UTC, of created_at), and their bytes.
CREATE EXTERNAL TABLE IF NOT EXISTS agg_variants (
  `customer_id` string,
  `hour`        timestamp,
  `variants`    bigint,
  `bytes`       bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_variants/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_variants/dt=${dt}/'
);

-- `agg_deletions`: objects removed per customer, hour (UTC, of deleted_at) and reason ('expired',
-- 'deleted', 'abandoned'), and the bytes freed.
CREATE EXTERNAL TABLE IF NOT EXISTS agg_deletions (
  `customer_id` string,
  `hour`        timestamp,
  `reason`      string,
  `deletions`   bigint,
  `bytes`       bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_deletions/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_deletions/dt=${dt}/'
);

-- `agg_posts`: post events (created, published, failed, deleted) per customer and hour (UTC).
CREATE EXTERNAL TABLE IF NOT EXISTS agg_posts (
  `customer_id` string,
  `hour`        timestamp,
  `event`       string,
  `n`           bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_posts/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_posts/dt=${dt}/'
);

-- `agg_comments`: comment events (created, deleted) per customer and hour (UTC).
CREATE EXTERNAL TABLE IF NOT EXISTS agg_comments (
  `customer_id` string,
  `hour`        timestamp,
  `event`       string,
  `n`           bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_comments/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_comments/dt=${dt}/'
);

-- `agg_post_comments`: comments created and deleted per post and day (UTC).
CREATE EXTERNAL TABLE IF NOT EXISTS agg_post_comments (
  `customer_id` string,
  `post_id`     string,
  `day`         date,
  `created`     bigint,
  `deleted`     bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_post_comments/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_post_comments/dt=${dt}/'
);

-- `agg_post_state`: one row per post with events on day dt: author, published_at and deleted_at
-- (NULL: not on that day). A post has a row on each day it changed: take
-- min(published_at) and min(deleted_at) over all days.
CREATE EXTERNAL TABLE IF NOT EXISTS agg_post_state (
  `post_id`      string,
  `customer_id`  string,
  `author`       string,
  `published_at` timestamp,
  `deleted_at`   timestamp
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_post_state/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_post_state/dt=${dt}/'
);

-- `agg_copies`: the facts of day dt written more than once (a redelivered job, an
-- interrupted compaction), per fact table (`uploads`, `jobs`, ...): the event id and how
-- many rows it has. Usually empty; the fact tables' deduplicating views count each once.
CREATE EXTERNAL TABLE IF NOT EXISTS agg_copies (
  `fact_table`  string,
  `event_id`    string,
  `copies`      bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/agg_copies/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/agg_copies/dt=${dt}/'
);
