#!/usr/bin/env python3
"""The reporting service's `customers` and `volume` reports, computed by Apache Spark over
the lake's Parquet files (issue 18): what a user who outgrows one machine runs on a
cluster (docs/spark.md), and what tests/spark_lake.rs compares with the API's answers.

    python scripts/spark_reports.py LAKE_DIR --from 2026-01-01T00:00:00Z --to 2026-02-01 \
        [--interval day] [--master local[2]] [--driver-memory 1g]

LAKE_DIR is the lake root (the directory holding uploads/, jobs/, ...; on the embedded
backend `{data_dir}/store/objects/lake`), or any path Spark's Hadoop file systems read
(`s3a://bucket/prefix/lake` with the s3a settings of docs/spark.md). `--from` (inclusive)
and `--to` (exclusive) take what the API takes: an RFC 3339 time, or a date (`--from` the
start of that UTC day, `--to` the end of it, so the day is included).

Prints one JSON object on stdout, {"customers": [...], "volume": [...]}, with the rows
and columns of the API's JSON answers for the same range: every column of
sql/reports/customers.sql (failure_rate and p50/p95_processing_ms included, computed
exactly as the reports do from the views; the API's percentiles come from the daily aggregates'
2 % histograms when the range allows them, so they agree within 1 % there) and of
sql/reports/volume.sql (`bucket` as `YYYY-MM-DDTHH:MM:SS`, UTC, like the API).

Definitions follow the SQL of sql/reports/ over the deduplicated facts of sql/views.sql:
one row per (dt, event_id), the copy with the earliest event time (then file name) kept.
Spark SQL throughout (the same statements are in docs/spark.md). Logs go to stderr.
"""

import argparse
import datetime as dt
import json
import os
import sys
import tempfile

UTC = dt.timezone.utc

# Each table the reports read: its event-time column (the partition's) and its columns,
# for a table that has no file yet (read as empty, as the reporting service does).
TABLES = {
    "uploads": (
        "uploaded_at",
        "event_id STRING, image_id STRING, customer_id STRING, uploaded_at TIMESTAMP, content_type STRING, "
        "format STRING, bytes BIGINT, width INT, height INT, sha256 STRING, dt DATE",
    ),
    "jobs": (
        "finished_at",
        "event_id STRING, job_id STRING, image_id STRING, customer_id STRING, attempt INT, status STRING, "
        "enqueued_at TIMESTAMP, started_at TIMESTAMP, finished_at TIMESTAMP, duration_ms BIGINT, "
        "error_code STRING, output_bytes BIGINT, dt DATE",
    ),
    "variants": (
        "created_at",
        "event_id STRING, image_id STRING, customer_id STRING, variant STRING, format STRING, width INT, "
        "height INT, bytes BIGINT, created_at TIMESTAMP, expires_at TIMESTAMP, dt DATE",
    ),
    "deletions": (
        "deleted_at",
        "event_id STRING, image_id STRING, customer_id STRING, kind STRING, variant STRING, bytes BIGINT, "
        "reason STRING, deleted_at TIMESTAMP, dt DATE",
    ),
    "posts": (
        "at",
        "event_id STRING, post_id STRING, customer_id STRING, image_id STRING, author STRING, event STRING, "
        "error_code STRING, caption_chars INT, `at` TIMESTAMP, dt DATE",
    ),
    "comments": (
        "at",
        "event_id STRING, comment_id STRING, post_id STRING, customer_id STRING, author STRING, event STRING, "
        "chars INT, `at` TIMESTAMP, dt DATE",
    ),
}

# One row per (dt, event_id): a fact's copies are the same row in the same partition; the
# earliest by event time, then file name, is kept (as sql/views.sql does). `{table}_raw`
# is the table's files with `_file`, the file each row came from.
DEDUP_SQL = """
CREATE OR REPLACE TEMPORARY VIEW {table} AS
SELECT {columns}
FROM (
    SELECT *, row_number() OVER (PARTITION BY dt, event_id ORDER BY `{time}`, _file) AS _copy
    FROM {table}_raw
) AS t
WHERE _copy = 1
"""

# One row per job: its customer, whether an attempt succeeded (1/0), when its last attempt
# finished, and the duration of its succeeded attempt (sql/aggregates.sql, day_job_outcomes).
JOB_OUTCOMES_SQL = """
CREATE OR REPLACE TEMPORARY VIEW job_outcomes AS
SELECT job_id,
       min(customer_id) AS customer_id,
       max(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END) AS succeeded,
       max(finished_at) AS finished_at,
       max(CASE WHEN status = 'succeeded' THEN duration_ms END) AS duration_ms
FROM jobs
GROUP BY job_id
"""

# sql/reports/customers.sql. :from inclusive, :to exclusive (UTC timestamps as text). A filter
# on `dt` (the UTC day of the event time) skips other days' files; jobs are not filtered by
# it, since a job's outcome needs all its attempts, and neither are all-time sums.
# uploads/bytes_uploaded: uploads accepted in the range. processed/failed: jobs whose last
# attempt finished in the range, by outcome; failure_rate = failed / (processed + failed).
# p50/p95_processing_ms: duration of the succeeded attempts of those jobs (exact, like
# DuckDB's quantile_cont). bytes_stored: stored now (originals + variants - deletions, all
# time, but an abandoned upload's: its bytes were never an upload's). posts: `published` post events in the range; comments: `created` comment events.
CUSTOMERS_SQL = """
WITH up AS (
    SELECT customer_id,
           sum(CASE WHEN uploaded_at >= CAST(:from AS TIMESTAMP) AND uploaded_at < CAST(:to AS TIMESTAMP) THEN 1 ELSE 0 END) AS uploads,
           sum(CASE WHEN uploaded_at >= CAST(:from AS TIMESTAMP) AND uploaded_at < CAST(:to AS TIMESTAMP) THEN bytes ELSE 0 END) AS bytes_uploaded,
           sum(bytes) AS stored
    FROM uploads
    GROUP BY customer_id
), jb AS (
    SELECT customer_id,
           sum(succeeded) AS processed,
           sum(1 - succeeded) AS failed,
           percentile(duration_ms, 0.5) AS p50_processing_ms,
           percentile(duration_ms, 0.95) AS p95_processing_ms
    FROM job_outcomes
    WHERE finished_at >= CAST(:from AS TIMESTAMP) AND finished_at < CAST(:to AS TIMESTAMP)
    GROUP BY customer_id
), va AS (
    SELECT customer_id, sum(bytes) AS stored FROM variants GROUP BY customer_id
), de AS (
    SELECT customer_id, sum(bytes) AS removed FROM deletions WHERE reason <> 'abandoned' GROUP BY customer_id
), po AS (
    SELECT customer_id, count(*) AS posts
    FROM posts
    WHERE event = 'published' AND `at` >= CAST(:from AS TIMESTAMP) AND `at` < CAST(:to AS TIMESTAMP)
      AND dt BETWEEN CAST(:from AS DATE) AND CAST(:to AS DATE)
    GROUP BY customer_id
), co AS (
    SELECT customer_id, count(*) AS comments
    FROM comments
    WHERE event = 'created' AND `at` >= CAST(:from AS TIMESTAMP) AND `at` < CAST(:to AS TIMESTAMP)
      AND dt BETWEEN CAST(:from AS DATE) AND CAST(:to AS DATE)
    GROUP BY customer_id
), c AS (
    SELECT customer_id FROM up UNION SELECT customer_id FROM jb UNION SELECT customer_id FROM va
    UNION SELECT customer_id FROM de UNION SELECT customer_id FROM po UNION SELECT customer_id FROM co
)
SELECT c.customer_id,
       coalesce(up.uploads, 0) AS uploads,
       coalesce(up.bytes_uploaded, 0) AS bytes_uploaded,
       coalesce(jb.processed, 0) AS processed,
       coalesce(jb.failed, 0) AS failed,
       CAST(jb.failed AS DOUBLE) / nullif(jb.processed + jb.failed, 0) AS failure_rate,
       jb.p50_processing_ms,
       jb.p95_processing_ms,
       coalesce(up.stored, 0) + coalesce(va.stored, 0) - coalesce(de.removed, 0) AS bytes_stored,
       coalesce(po.posts, 0) AS posts,
       coalesce(co.comments, 0) AS comments
FROM c
LEFT JOIN up ON up.customer_id = c.customer_id
LEFT JOIN jb ON jb.customer_id = c.customer_id
LEFT JOIN va ON va.customer_id = c.customer_id
LEFT JOIN de ON de.customer_id = c.customer_id
LEFT JOIN po ON po.customer_id = c.customer_id
LEFT JOIN co ON co.customer_id = c.customer_id
ORDER BY c.customer_id
"""

# sql/reports/volume.sql. :interval is hour, day, week (ISO, from Monday) or month; buckets
# are UTC (the session time zone), one row per bucket from the first to the last active
# one, with zeros in between. processed: jobs an attempt of which succeeded; failed: jobs
# none of whose attempts succeeded; both in the bucket of their last attempt; expired: variants deleted by
# retention; posts: `published` events; comments: `created` events.
VOLUME_SQL = """
WITH up AS (
    SELECT date_trunc(:interval, uploaded_at) AS bucket, count(*) AS uploads, sum(bytes) AS bytes
    FROM uploads
    WHERE uploaded_at >= CAST(:from AS TIMESTAMP) AND uploaded_at < CAST(:to AS TIMESTAMP)
      AND dt BETWEEN CAST(:from AS DATE) AND CAST(:to AS DATE)
    GROUP BY 1
), pr AS (
    SELECT date_trunc(:interval, finished_at) AS bucket, count(*) AS processed
    FROM job_outcomes
    WHERE succeeded = 1 AND finished_at >= CAST(:from AS TIMESTAMP) AND finished_at < CAST(:to AS TIMESTAMP)
    GROUP BY 1
), fa AS (
    SELECT date_trunc(:interval, finished_at) AS bucket, count(*) AS failed
    FROM job_outcomes
    WHERE succeeded = 0 AND finished_at >= CAST(:from AS TIMESTAMP) AND finished_at < CAST(:to AS TIMESTAMP)
    GROUP BY 1
), ex AS (
    SELECT date_trunc(:interval, deleted_at) AS bucket, count(*) AS expired, sum(bytes) AS expired_bytes
    FROM deletions
    WHERE reason = 'expired' AND deleted_at >= CAST(:from AS TIMESTAMP) AND deleted_at < CAST(:to AS TIMESTAMP)
      AND dt BETWEEN CAST(:from AS DATE) AND CAST(:to AS DATE)
    GROUP BY 1
), po AS (
    SELECT date_trunc(:interval, `at`) AS bucket, count(*) AS posts
    FROM posts
    WHERE event = 'published' AND `at` >= CAST(:from AS TIMESTAMP) AND `at` < CAST(:to AS TIMESTAMP)
      AND dt BETWEEN CAST(:from AS DATE) AND CAST(:to AS DATE)
    GROUP BY 1
), co AS (
    SELECT date_trunc(:interval, `at`) AS bucket, count(*) AS comments
    FROM comments
    WHERE event = 'created' AND `at` >= CAST(:from AS TIMESTAMP) AND `at` < CAST(:to AS TIMESTAMP)
      AND dt BETWEEN CAST(:from AS DATE) AND CAST(:to AS DATE)
    GROUP BY 1
), span AS (
    SELECT min(bucket) AS lo, max(bucket) AS hi
    FROM (SELECT bucket FROM up UNION ALL SELECT bucket FROM pr UNION ALL SELECT bucket FROM fa
          UNION ALL SELECT bucket FROM ex UNION ALL SELECT bucket FROM po UNION ALL SELECT bucket FROM co) AS b
), buckets AS (
    SELECT explode(sequence(lo, hi, CAST(concat('1 ', :interval) AS INTERVAL))) AS bucket
    FROM span
    WHERE lo IS NOT NULL
)
SELECT date_format(b.bucket, "yyyy-MM-dd'T'HH:mm:ss") AS bucket,
       coalesce(up.uploads, 0) AS uploads,
       coalesce(up.bytes, 0) AS bytes,
       coalesce(pr.processed, 0) AS processed,
       coalesce(fa.failed, 0) AS failed,
       coalesce(ex.expired, 0) AS expired,
       coalesce(ex.expired_bytes, 0) AS expired_bytes,
       coalesce(po.posts, 0) AS posts,
       coalesce(co.comments, 0) AS comments
FROM buckets b
LEFT JOIN up ON up.bucket = b.bucket
LEFT JOIN pr ON pr.bucket = b.bucket
LEFT JOIN fa ON fa.bucket = b.bucket
LEFT JOIN ex ON ex.bucket = b.bucket
LEFT JOIN po ON po.bucket = b.bucket
LEFT JOIN co ON co.bucket = b.bucket
ORDER BY b.bucket
"""

INTERVALS = ("hour", "day", "week", "month")

# Spark's own logging: errors only, on stderr (stdout carries the JSON).
LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""


def parse_time(name, s, is_end):
    """An RFC 3339 time, or a date (the start of that UTC day; as `to`, its end), in UTC,
    as the reporting API reads `from` and `to`."""
    try:
        d = dt.date.fromisoformat(s)
        if len(s) == 10:
            t = dt.datetime(d.year, d.month, d.day, tzinfo=UTC)
            return t + dt.timedelta(days=1) if is_end else t
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SystemExit(f"--{name} must be an RFC 3339 time (2026-11-23T10:00:00Z) or a date (2026-11-23), not {s!r}")
    if t.tzinfo is None:
        raise SystemExit(f"--{name} needs a UTC offset (Z or +hh:mm): {s!r}")
    return t.astimezone(UTC)


def spark_session(master, driver_memory, log_conf):
    # Debian's OpenJDK 17 unless told otherwise (PySpark takes JAVA_HOME, else `java`).
    debian_jdk = "/usr/lib/jvm/java-17-openjdk-amd64"
    if not os.environ.get("JAVA_HOME") and os.path.isdir(debian_jdk):
        os.environ["JAVA_HOME"] = debian_jdk
    local = master.startswith("local")
    if local:
        # Local mode talks to itself only: no lookup of the host name, no guessed interface.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    from pyspark.sql import SparkSession

    b = (
        SparkSession.builder.appName("imagelake-reports")
        .master(master)
        .config("spark.driver.memory", driver_memory)
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log_conf}")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Every time is UTC: date_trunc's buckets, and the range's literals.
        .config("spark.sql.session.timeZone", "UTC")
    )
    if local:
        b = (
            b.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.sql.shuffle.partitions", "4")
        )
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def register(spark, lake, table):
    """`{table}_raw` (the files, hive-partitioned by dt, with `_file`) and `{table}` (one row
    per fact). A table without files is an empty table of its columns."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    time_col, ddl = TABLES[table]
    path = f"{lake.rstrip('/')}/{table}"
    try:
        raw = (
            spark.read.option("mergeSchema", "true")  # older files lack newer (nullable) columns
            .option("pathGlobFilter", "*.parquet")
            .parquet(path)
            .select("*", F.col("_metadata.file_path").alias("_file"))
        )
    except AnalysisException as e:
        condition = e.getCondition() if hasattr(e, "getCondition") else e.getErrorClass()
        if condition not in ("PATH_NOT_FOUND", "UNABLE_TO_INFER_SCHEMA"):
            raise
        print(f"spark_reports: {path} has no Parquet file yet: read as empty", file=sys.stderr)
        raw = spark.createDataFrame([], f"{ddl}, _file STRING")
    raw.createOrReplaceTempView(f"{table}_raw")
    columns = ", ".join(f"`{c}`" for c in raw.columns if c != "_file")
    spark.sql(DEDUP_SQL.format(table=table, columns=columns, time=time_col))


def rows(df):
    return [r.asDict() for r in df.collect()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("lake", help="the lake root (uploads/, jobs/, ...), local or s3a://")
    ap.add_argument("--from", dest="from_", default="1970-01-01T00:00:00Z", help="inclusive (default 1970-01-01)")
    ap.add_argument("--to", default="3000-01-01T00:00:00Z", help="exclusive (default 3000-01-01)")
    ap.add_argument("--interval", default="day", choices=INTERVALS, help="volume buckets (default day)")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="1g")
    a = ap.parse_args()
    start = parse_time("from", a.from_, False)
    end = parse_time("to", a.to, True)
    if start >= end:
        raise SystemExit(f"--from ({start.isoformat()}) must be before --to ({end.isoformat()}): --to is exclusive")
    lake = a.lake
    if "://" not in lake:
        if not os.path.isdir(lake):
            raise SystemExit(f"{lake}: no such directory")
        lake = os.path.abspath(lake)

    with tempfile.NamedTemporaryFile("w", prefix="spark-log4j2-", suffix=".properties") as log_conf:
        log_conf.write(LOG4J2)
        log_conf.flush()
        spark = spark_session(a.master, a.driver_memory, log_conf.name)
        try:
            for table in TABLES:
                register(spark, lake, table)
            spark.sql(JOB_OUTCOMES_SQL)
            fmt = "%Y-%m-%d %H:%M:%S.%f"
            args = {"from": start.strftime(fmt), "to": end.strftime(fmt), "interval": a.interval}
            customers = rows(spark.sql(CUSTOMERS_SQL, args={k: args[k] for k in ("from", "to")}))
            volume = rows(spark.sql(VOLUME_SQL, args=args))
        finally:
            spark.stop()
    json.dump({"customers": customers, "volume": volume}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
