-- imagelake lake table `jobs`: one row per finished processing attempt.
-- Partitioned by dt (the UTC day of enqueued_at: a job's attempts share it); partitions are projected, never crawled.
-- ${BUCKET} and ${PREFIX} are placeholders: see README.md. The raw files may hold a fact
-- twice (at-least-once delivery): count distinct event_id, or use the views of views.sql.
CREATE EXTERNAL TABLE IF NOT EXISTS jobs (
  `event_id`     string,
  `job_id`       string,
  `image_id`     string,
  `customer_id`  string,
  `attempt`      int,
  `status`       string,
  `enqueued_at`  timestamp,
  `started_at`   timestamp,
  `finished_at`  timestamp,
  `duration_ms`  bigint,
  `error_code`   string,
  `output_bytes` bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/jobs/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/jobs/dt=${dt}/'
);
