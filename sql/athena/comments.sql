-- imagelake lake table `comments`: one row per change of a comment: created, deleted.
-- Partitioned by dt (the UTC day of at); partitions are projected, never crawled.
-- ${BUCKET} and ${PREFIX} are placeholders: see README.md. The raw files may hold a fact
-- twice (at-least-once delivery): count distinct event_id, or use the views of views.sql.
CREATE EXTERNAL TABLE IF NOT EXISTS comments (
  `event_id`    string,
  `comment_id`  string,
  `post_id`     string,
  `customer_id` string,
  `author`      string,
  `event`       string,
  `chars`       int,
  `at`          timestamp
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/comments/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/comments/dt=${dt}/'
);
