-- imagelake lake table `usage`: one snapshot row per customer, and one total row (customer_id NULL).
-- Partitioned by dt (the UTC day of taken_at); partitions are projected, never crawled.
-- ${BUCKET} and ${PREFIX} are placeholders: see README.md. The raw files may hold a fact
-- twice (at-least-once delivery): count distinct event_id, or use the views of views.sql.
CREATE EXTERNAL TABLE IF NOT EXISTS usage (
  `event_id`        string,
  `taken_at`        timestamp,
  `customer_id`     string,
  `originals_bytes` bigint,
  `variants_bytes`  bigint,
  `objects`         bigint,
  `capacity_bytes`  bigint
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/usage/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/usage/dt=${dt}/'
);
