"""Runs the named reports (sql/reports/*.sql) with Python's duckdb over a lake directory,
through the same views and rollups the service uses (the rollups built at the service's
watermark, unless --watermark says otherwise): the bare-query side of the reporting
benchmark, and a quick way to try a report from the command line.

    python reports_bench.py LAKE_DIR [--runs 5] [--report customers] [--show] [--watermark none]

Prints the set-up time (views and the rollups' build), then one JSON object per report: median and all run times in milliseconds, row count.
Parameters are those of a request with no `from`, `to` or `customer` (the whole lake),
`interval=day`, `by=format`, `limit=10`; capacity 100 TB.
"""
import argparse
import json
import os
import statistics
import time

import duckdb

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CAPACITY = 100_000_000_000_000
REPORTS = ["summary", "customers", "types", "volume", "processing", "usage", "engagement"]


def views_sql():
    return open(os.path.join(ROOT, "sql", "views.sql")).read()


def statements(script):
    for stmt in script.split(";\n"):
        body = "\n".join(l for l in stmt.splitlines() if not l.strip().startswith("--")).strip()
        if body:
            yield body


def default_watermark():
    """The reporting service's: the last UTC midnight at least an hour ago."""
    import datetime as dt
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    return now.strftime("%Y-%m-%d 00:00:00+00")


# Stand-ins for tables without files, as the service makes them (core/src/lake/schema.rs).
EMPTY = {
    "uploads": "event_id VARCHAR, image_id VARCHAR, customer_id VARCHAR, uploaded_at TIMESTAMPTZ, content_type VARCHAR, "
               "format VARCHAR, bytes BIGINT, width INTEGER, height INTEGER, sha256 VARCHAR",
    "jobs": "event_id VARCHAR, job_id VARCHAR, image_id VARCHAR, customer_id VARCHAR, attempt INTEGER, status VARCHAR, "
            "enqueued_at TIMESTAMPTZ, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, duration_ms BIGINT, "
            "error_code VARCHAR, output_bytes BIGINT",
    "variants": "event_id VARCHAR, image_id VARCHAR, customer_id VARCHAR, variant VARCHAR, format VARCHAR, width INTEGER, "
                "height INTEGER, bytes BIGINT, created_at TIMESTAMPTZ, expires_at TIMESTAMPTZ",
    "deletions": "event_id VARCHAR, image_id VARCHAR, customer_id VARCHAR, kind VARCHAR, variant VARCHAR, bytes BIGINT, "
                 "reason VARCHAR, deleted_at TIMESTAMPTZ",
    "downloads": "event_id VARCHAR, image_id VARCHAR, customer_id VARCHAR, variant VARCHAR, bytes BIGINT, served_at TIMESTAMPTZ",
    "usage": "event_id VARCHAR, taken_at TIMESTAMPTZ, customer_id VARCHAR, originals_bytes BIGINT, variants_bytes BIGINT, "
             "objects BIGINT, capacity_bytes BIGINT",
    "posts": 'event_id VARCHAR, post_id VARCHAR, customer_id VARCHAR, image_id VARCHAR, author VARCHAR, event VARCHAR, '
             'error_code VARCHAR, caption_chars INTEGER, "at" TIMESTAMPTZ',
    "comments": 'event_id VARCHAR, comment_id VARCHAR, post_id VARCHAR, customer_id VARCHAR, author VARCHAR, '
                'event VARCHAR, chars INTEGER, "at" TIMESTAMPTZ',
}


def connect(lake, watermark=None):
    """The views over `lake`, and the rollups built at `watermark` (None: empty rollups,
    every report reads the views)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET parquet_metadata_cache = true")
    for table, cols in EMPTY.items():
        if not any(f.endswith(".parquet") for _, _, fs in os.walk(os.path.join(lake, table)) for f in fs):
            con.execute(f"CREATE TABLE {table} ({cols}, dt DATE)")
    for body in statements(views_sql().replace("${LAKE}", lake.replace("'", "''"))):
        try:
            con.execute(body)
        except duckdb.Error as e:
            if "No files found" not in str(e):
                raise
    if watermark:
        con.execute(f"SET VARIABLE rollup_watermark = TIMESTAMPTZ '{watermark}'")
    for body in statements(open(os.path.join(ROOT, "sql", "rollups.sql")).read()):
        con.execute(body)
    return con


def params(report, frm="1970-01-01 00:00:00", to="3000-01-01 00:00:00", customer=None, interval="day", by="format",
           limit=10):
    import datetime as dt
    p = [dt.datetime.fromisoformat(frm), dt.datetime.fromisoformat(to), customer]
    if report == "summary":
        p += [CAPACITY, 0]
    elif report == "types":
        p.append(by)
    elif report == "volume":
        p.append(interval)
    elif report == "usage":
        p.append(CAPACITY)
    elif report == "engagement":
        p.append(limit)
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lake")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--report", action="append")
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--watermark", default=default_watermark(),
                    help="build the rollups at this time (default: the service's); 'none': no rollups")
    a = ap.parse_args()
    t = time.perf_counter()
    con = connect(os.path.abspath(a.lake), None if a.watermark == "none" else a.watermark)
    print(json.dumps({"setup_ms": round((time.perf_counter() - t) * 1000, 1), "watermark": a.watermark}), flush=True)
    for report in a.report or REPORTS:
        sql = open(os.path.join(ROOT, "sql", "reports", f"{report}.sql")).read()
        times, rows = [], None
        for _ in range(a.runs):
            t = time.perf_counter()
            table = con.sql(sql, params=params(report)).to_arrow_table()
            times.append((time.perf_counter() - t) * 1000)
            rows = table.num_rows
        out = {"report": report, "median_ms": round(statistics.median(times), 1),
               "runs_ms": [round(x, 1) for x in times], "rows": rows}
        if a.show:
            out["first_rows"] = table.slice(0, 3).to_pylist()
        print(json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    main()
