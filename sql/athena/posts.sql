-- imagelake lake table `posts`: one row per change of a post: created, published, failed, deleted.
-- Partitioned by dt (the UTC day of at); partitions are projected, never crawled.
-- ${BUCKET} and ${PREFIX} are placeholders: see README.md. The raw files may hold a fact
-- twice (at-least-once delivery): count distinct event_id, or use the views of views.sql.
CREATE EXTERNAL TABLE IF NOT EXISTS posts (
  `event_id`      string,
  `post_id`       string,
  `customer_id`   string,
  `image_id`      string,
  `author`        string,
  `event`         string,
  `error_code`    string,
  `caption_chars` int,
  `at`            timestamp
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}lake/posts/'
TBLPROPERTIES (
  'parquet.compression'          = 'ZSTD',
  'projection.enabled'           = 'true',
  'projection.dt.type'           = 'date',
  'projection.dt.format'         = 'yyyy-MM-dd',
  'projection.dt.range'          = '2024-01-01,NOW',
  'projection.dt.interval'       = '1',
  'projection.dt.interval.unit'  = 'DAYS',
  'storage.location.template'    = 's3://${BUCKET}/${PREFIX}lake/posts/dt=${dt}/'
);
