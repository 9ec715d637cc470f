"""Writes a synthetic imagelake lake (the layout and column types of
core/src/lake/schema.rs) for the reporting benchmark: {OUT}/{table}/dt=YYYY-MM-DD/*.parquet,
zstd, one file per table and day (a compacted lake).

    python reports_lake.py OUT_DIR --uploads 1000000 --days 90 --customers 50

Deterministic (hash-based pseudo-random numbers, no numpy needed). Every upload gets
processing attempts (93 % succeed at once, 5 % fail once then succeed, 2 % fail three
times, the last dead-lettered), succeeded uploads get three variants, variants seven days
old are expired (deletion rows), and usage snapshots are taken daily at midnight.
`--dup-frac` writes that fraction of the job rows again in other files with the same
event ids (redelivery), which the views must count once.
"""
import argparse
import json
import os
import time

import duckdb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--uploads", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--customers", type=int, default=5)
    ap.add_argument("--dup-frac", type=float, default=0.0)
    ap.add_argument("--start", default="2026-01-01")
    a = ap.parse_args()
    t0 = time.time()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("CREATE MACRO r(i, k) AS (hash(i, k) % 1000000007)::DOUBLE / 1000000007")
    con.execute("CREATE MACRO gauss(i, k) AS sqrt(-2 * ln(1 - r(i, k))) * cos(2 * pi() * r(i, k + 1000))")
    start = f"TIMESTAMPTZ '{a.start} 00:00:00+00'"
    n, days, c = a.uploads, a.days, a.customers
    con.execute(f"""
        CREATE TABLE uploads AS
        SELECT 'up' || i AS event_id,
               'img' || lpad(i::VARCHAR, 10, '0') AS image_id,
               'cust' || lpad(least({c} - 1, floor({c} * pow(r(i, 1), 2)))::BIGINT::VARCHAR, 3, '0') AS customer_id,
               {start} + to_microseconds((r(i, 2) * {days} * 86400e6)::BIGINT) AS uploaded_at,
               CASE WHEN f < .50 THEN 'image/jpeg' WHEN f < .70 THEN 'image/png' WHEN f < .85 THEN 'image/webp'
                    WHEN f < .90 THEN 'image/gif' WHEN f < .95 THEN 'image/tiff' ELSE 'image/avif' END AS content_type,
               CASE WHEN f < .50 THEN 'jpeg' WHEN f < .70 THEN 'png' WHEN f < .85 THEN 'webp'
                    WHEN f < .90 THEN 'gif' WHEN f < .95 THEN 'tiff' ELSE 'avif' END AS format,
               least(5e9, greatest(1000, exp(13 + 1.2 * gauss(i, 4))))::BIGINT AS bytes,
               CASE WHEN r(i, 6) > .02 THEN (200 + r(i, 7) * 7800)::INTEGER END AS width,
               CASE WHEN r(i, 6) > .02 THEN (200 + r(i, 8) * 5800)::INTEGER END AS height,
               'sha' || i AS sha256
        FROM (SELECT i, r(i, 3) AS f FROM range({n}) t(i))
    """)
    con.execute("""
        CREATE TABLE jobs AS
        SELECT 'job' || i || '-' || a AS event_id, 'job' || i AS job_id, image_id, customer_id, a::INTEGER AS attempt,
               CASE WHEN a < n THEN 'failed' WHEN k < .98 THEN 'succeeded' ELSE 'dead_lettered' END AS status,
               enqueued_at, started_at, started_at + to_milliseconds(duration_ms) AS finished_at, duration_ms,
               CASE WHEN a < n OR k >= .98 THEN 'decode_failed' END AS error_code,
               CASE WHEN a = n AND k < .98 THEN bytes // 3 ELSE 0 END::BIGINT AS output_bytes
        FROM (
            SELECT u.*, a, n, k,
                   u.uploaded_at + to_microseconds((1000 + r(i, 11) * 200000)::BIGINT) AS enqueued_at,
                   u.uploaded_at + to_microseconds((1000 + r(i, 11) * 200000)::BIGINT)
                       + to_microseconds((-ln(1 - r(i * 4 + a, 12)) * 2e6 + (a - 1) * 10e6)::BIGINT) AS started_at,
                   (exp(6 + 0.8 * gauss(i * 4 + a, 13)) + u.bytes / 1e7)::BIGINT AS duration_ms
            FROM (SELECT *, replace(event_id, 'up', '')::BIGINT AS i, r(replace(event_id, 'up', '')::BIGINT, 10) AS k,
                         CASE WHEN r(replace(event_id, 'up', '')::BIGINT, 10) < .93 THEN 1
                              WHEN r(replace(event_id, 'up', '')::BIGINT, 10) < .98 THEN 2 ELSE 3 END AS n
                  FROM uploads) u, range(1, 4) t(a)
            WHERE a <= n
        )
    """)
    con.execute("""
        CREATE TABLE variants AS
        SELECT 'var' || j.job_id || '-' || v.variant AS event_id, j.image_id, j.customer_id, v.variant, v.format,
               v.width::INTEGER AS width, v.height::INTEGER AS height,
               greatest(100, u.bytes // v.div)::BIGINT AS bytes,
               j.finished_at AS created_at, j.finished_at + INTERVAL 7 DAY AS expires_at
        FROM jobs j JOIN uploads u USING (image_id),
             (VALUES ('thumb', 'jpeg', 400, 300, 200), ('medium', 'jpeg', 1600, 1200, 20), ('webp', 'webp', 1600, 1200, 25))
               v(variant, format, width, height, div)
        WHERE j.status = 'succeeded'
    """)
    con.execute(f"""
        CREATE TABLE deletions AS
        SELECT 'del' || substr(event_id, 4) AS event_id, image_id, customer_id, 'variant' AS kind, variant, bytes,
               'expired' AS reason, expires_at + to_microseconds((r(hash(event_id), 20) * 60e6)::BIGINT) AS deleted_at
        FROM variants
        WHERE expires_at < {start} + INTERVAL {days} DAY
    """)
    con.execute(f"""
        CREATE TABLE usage AS
        WITH deltas AS (
            SELECT customer_id, uploaded_at AS ts, bytes AS o, 0 AS v FROM uploads
            UNION ALL SELECT customer_id, created_at, 0, bytes FROM variants
            UNION ALL SELECT customer_id, deleted_at, 0, -bytes FROM deletions
        ), per_day AS (
            SELECT customer_id, (ts::DATE + 1)::TIMESTAMPTZ AS taken_at, sum(o) AS o, sum(v) AS v FROM deltas GROUP BY ALL
        ), grid AS (
            SELECT customer_id, ({start} + to_days(d::INTEGER)) AS taken_at
            FROM (SELECT DISTINCT customer_id FROM uploads), range(1, {days} + 1) t(d)
        ), per_customer AS (
            SELECT g.customer_id, g.taken_at,
                   sum(coalesce(p.o, 0)) OVER w AS o, sum(coalesce(p.v, 0)) OVER w AS v
            FROM grid g LEFT JOIN per_day p USING (customer_id, taken_at)
            WINDOW w AS (PARTITION BY g.customer_id ORDER BY g.taken_at)
        ), both_levels AS (
            SELECT customer_id, taken_at, o, v FROM per_customer
            UNION ALL SELECT NULL, taken_at, sum(o), sum(v) FROM per_customer GROUP BY taken_at
        )
        SELECT 'usage-' || epoch_us(taken_at) || '-' || coalesce(customer_id, 'all') AS event_id, taken_at,
               customer_id::VARCHAR AS customer_id, o::BIGINT AS originals_bytes, v::BIGINT AS variants_bytes,
               0::BIGINT AS objects, 100000000000000::BIGINT AS capacity_bytes
        FROM both_levels
    """)
    os.makedirs(a.out, exist_ok=True)
    time_col = {"uploads": "uploaded_at", "jobs": "finished_at", "variants": "created_at",
                "deletions": "deleted_at", "usage": "taken_at"}
    rows = {}
    for table, col in time_col.items():
        rows[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        con.execute(f"""
            COPY (SELECT *, strftime({col}, '%Y-%m-%d') AS dt FROM {table})
            TO '{os.path.join(a.out, table)}'
            (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (dt), FILENAME_PATTERN 'gen-{{i}}',
             ROW_GROUP_SIZE 1048576, OVERWRITE_OR_IGNORE true)
        """)
    if a.dup_frac > 0:
        con.execute(f"""
            COPY (SELECT *, strftime(finished_at, '%Y-%m-%d') AS dt FROM jobs WHERE r(hash(event_id), 30) < {a.dup_frac})
            TO '{os.path.join(a.out, 'jobs')}'
            (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (dt), FILENAME_PATTERN 'redelivered-{{i}}',
             OVERWRITE_OR_IGNORE true)
        """)
        rows["jobs_redelivered"] = con.execute(
            f"SELECT count(*) FROM jobs WHERE r(hash(event_id), 30) < {a.dup_frac}").fetchone()[0]
    print(json.dumps({"rows": rows, "total_rows": sum(rows.values()), "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
