#!/usr/bin/env python3
"""Times the query a Tableau sheet sends, over the raw facts and over the daily aggregates.

    scripts/bench_bi.py LAKE [--days 30] [--runs 5] [--aggregate] [--json]

LAKE is the lake root (the directory that holds uploads/, jobs/, ... and agg_uploads/...;
with the embedded store, `{data_dir}/store/objects/lake`). Needs the `duckdb` module (the
venv of scripts/install.sh).

The sheet: uploads (number of images) and bytes per customer and day, over the last
`--days` days that have aggregates. It is sent the way Tableau sends it, the data source's
Custom SQL wrapped in a subquery with the filter on the day outside it, to three sources:

- `raw_view`:  the deduplicating view `uploads` of sql/views.sql (dedup per dt, event_id);
- `raw_tds`:   the Custom SQL of dashboards/tableau/imagelake_uploads.tds (dedup per event_id
               over the whole table: the filter on dt cannot go below the window);
- `agg_tds`:   the Custom SQL of dashboards/tableau/imagelake_agg_uploads.tds (no dedup).

Each runs `--runs` times on a fresh connection; the median, min and max are reported, with
the rows each source holds in the window and the rows of the answer, and whether the three
answers are equal.

`--aggregate` first makes the aggregates of the closed days that have none current, in
Python, the way core/src/lake/aggregate.rs does (per day: the views of sql/views.sql over
that day's files, sql/aggregates.sql, one Parquet file per table named by the day's
fingerprint, older files of the day removed). Use it when `imagelake lake aggregate` is not
available; it writes into LAKE.
"""

import argparse
import datetime as dt
import glob
import hashlib
import json
import os
import re
import statistics
import sys
import time

import duckdb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# core/src/lake/agg.rs: INPUTS and Agg::ALL.
INPUTS = ["uploads", "jobs", "variants", "deletions", "posts", "comments"]
AGGS = ["agg_uploads", "agg_unattempted", "agg_late_outcomes", "agg_jobs", "agg_job_ms", "agg_job_ms_hour", "agg_attempts", "agg_attempt_ms",
        "agg_attempt_ms_all", "agg_variants", "agg_deletions", "agg_posts", "agg_comments", "agg_post_comments",
        "agg_post_state", "agg_copies"]
# core/src/lake/schema.rs, for the empty stand-in of an input with no file on a day.
SCHEMA = {
    "uploads": "event_id VARCHAR, image_id VARCHAR, customer_id VARCHAR, uploaded_at TIMESTAMPTZ, content_type VARCHAR, "
               "format VARCHAR, bytes BIGINT, width INTEGER, height INTEGER, sha256 VARCHAR",
    "jobs": "event_id VARCHAR, job_id VARCHAR, image_id VARCHAR, customer_id VARCHAR, attempt INTEGER, status VARCHAR, "
            "enqueued_at TIMESTAMPTZ, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, duration_ms BIGINT, "
            "error_code VARCHAR, output_bytes BIGINT",
    "variants": "event_id VARCHAR, image_id VARCHAR, customer_id VARCHAR, variant VARCHAR, format VARCHAR, width INTEGER, "
                "height INTEGER, bytes BIGINT, created_at TIMESTAMPTZ, expires_at TIMESTAMPTZ",
    "deletions": "event_id VARCHAR, image_id VARCHAR, customer_id VARCHAR, kind VARCHAR, variant VARCHAR, bytes BIGINT, "
                 "reason VARCHAR, deleted_at TIMESTAMPTZ",
    "posts": "event_id VARCHAR, post_id VARCHAR, customer_id VARCHAR, image_id VARCHAR, author VARCHAR, event VARCHAR, "
             "error_code VARCHAR, caption_chars INTEGER, \"at\" TIMESTAMPTZ",
    "comments": "event_id VARCHAR, comment_id VARCHAR, post_id VARCHAR, customer_id VARCHAR, author VARCHAR, event VARCHAR, "
                "chars INTEGER, \"at\" TIMESTAMPTZ",
}
SETTLE = dt.timedelta(minutes=30)  # core/src/lake/aggregate.rs


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def view_sql(table):
    """The statement of sql/views.sql that defines the view of `table` (with ${LAKE})."""
    m = re.search(rf"CREATE OR REPLACE VIEW {table} AS\s.*?;", read("sql/views.sql"), re.S)
    assert m, f"sql/views.sql has no view of {table}"
    return m.group(0)


def tds_sql(name):
    """The Custom SQL of dashboards/tableau/{name}.tds (with ${LAKE})."""
    text = read(f"dashboards/tableau/{name}.tds")
    m = re.search(r"<relation [^>]*type='text'>(.*?)</relation>", text, re.S)
    assert m, f"{name}.tds has no Custom SQL relation"
    return (m.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'")
            .replace("&amp;", "&"))


def q(s):
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def with_lake(sql, lake):
    return sql.replace("${LAKE}", lake.replace("'", "''"))


def connect():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


# ---- the aggregates, as core/src/lake/aggregate.rs makes them -------------------------------

def listing(lake):
    """{relative key: size} of every Parquet file under LAKE/{dir}/dt=YYYY-MM-DD/."""
    out = {}
    for path in glob.glob(os.path.join(lake, "*", "dt=*", "*.parquet")):
        rel = os.path.relpath(path, lake).replace(os.sep, "/")
        if not os.path.basename(rel).startswith("."):
            out[rel] = os.path.getsize(path)
    return out


def days(lake):
    """{day: (inputs [(key, size)] in key order, fingerprint, agg keys, current)}, like agg::days."""
    by_day = {}
    for key, size in listing(lake).items():
        d, part, _ = key.split("/")
        day = part[3:]
        entry = by_day.setdefault(day, ([], []))
        if d in INPUTS:
            entry[0].append((key, size))
        elif d in AGGS:
            entry[1].append(key)
    out = {}
    for day, (inputs, aggs) in sorted(by_day.items()):
        if not inputs:
            continue
        inputs.sort()
        # agg::fingerprint: the SQL that makes the aggregates, then the inputs.
        h = hashlib.sha256()
        for script in ("aggregates.sql", "views.sql"):
            with open(os.path.join(ROOT, "sql", script), "rb") as f:
                h.update(f.read())
        for key, size in inputs:
            h.update(f"{key}\t{size}\n".encode())
        fp = h.hexdigest()[:16]
        current = all(f"{a}/dt={day}/{fp}.parquet" in aggs for a in AGGS)
        out[day] = (inputs, fp, aggs, current)
    return out


def aggregate_day(lake, day, inputs, fp, old):
    con = connect()
    for t in INPUTS:
        files = [os.path.join(lake, k) for k, _ in inputs if k.startswith(f"{t}/")]
        if files:
            lst = "[" + ", ".join(q(f) for f in files) + "]"
            view = view_sql(t).replace(f"'${{LAKE}}/{t}/*/*.parquet'", lst)
            con.execute(view)
            # Every row, copies included (core::lake::views::every_copy_sql): agg_copies.
            scan = view[view.index("read_parquet("):view.index("QUALIFY")]
            con.execute(f"CREATE VIEW {t}_all AS SELECT * EXCLUDE (filename) FROM {scan}")
        else:
            con.execute(f"CREATE TABLE {t} ({SCHEMA[t]}, dt DATE)")
            con.execute(f"CREATE TABLE {t}_all ({SCHEMA[t]}, dt DATE)")
    con.execute(read("sql/aggregates.sql"))
    meta = "\n".join(f"{k}\t{s}" for k, s in inputs).replace("'", "''")
    for a in AGGS:
        d = os.path.join(lake, a, f"dt={day}")
        os.makedirs(d, exist_ok=True)
        tmp = os.path.join(d, f".{fp}.parquet.tmp")
        con.execute(f"COPY {a} TO '{tmp}' (FORMAT parquet, COMPRESSION zstd, KV_METADATA {{'imagelake.inputs': '{meta}'}})")
        os.replace(tmp, os.path.join(d, f"{fp}.parquet"))
    wanted = {f"{a}/dt={day}/{fp}.parquet" for a in AGGS}
    for k in old:
        if k not in wanted:
            os.remove(os.path.join(lake, k))
    con.close()


def aggregate(lake):
    last_closed = ((dt.datetime.now(dt.timezone.utc) - SETTLE).date() - dt.timedelta(days=1)).isoformat()
    built, t0 = 0, time.perf_counter()
    for day, (inputs, fp, old, current) in days(lake).items():
        if day > last_closed or current:
            continue
        aggregate_day(lake, day, inputs, fp, old)
        built += 1
    print(f"aggregated {built} days in {time.perf_counter() - t0:.1f} s (closed days up to {last_closed})", file=sys.stderr)


# ---- the sheet ---------------------------------------------------------------------------

def sheet(source, measures, lo, hi):
    """The query Tableau sends for a sheet over a Custom SQL data source: customer and day,
    the measures, a filter on the day."""
    return f"""SELECT "Custom SQL Query"."customer_id" AS "customer_id",
  "Custom SQL Query"."dt" AS "dt",
  {measures}
FROM (
{source}
) "Custom SQL Query"
WHERE (("Custom SQL Query"."dt" >= (DATE '{lo}')) AND ("Custom SQL Query"."dt" <= (DATE '{hi}')))
GROUP BY 1, 2"""


RAW_MEASURES = 'SUM(1) AS "sum:Number of Records:ok",\n  SUM("Custom SQL Query"."bytes") AS "sum:bytes:ok"'
AGG_MEASURES = 'SUM("Custom SQL Query"."images") AS "sum:images:ok",\n  SUM("Custom SQL Query"."bytes") AS "sum:bytes:ok"'


def time_query(setup, sql, runs):
    times, answer = [], None
    for _ in range(runs):
        con = connect()
        for s in setup:
            con.execute(s)
        t0 = time.perf_counter()
        answer = con.execute(sql).fetchall()
        times.append(time.perf_counter() - t0)
        con.close()
    return times, answer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lake", help="the lake root (holds uploads/, agg_uploads/, ...)")
    ap.add_argument("--days", type=int, default=30, help="days in the sheet's filter (default 30)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per source (default 5)")
    ap.add_argument("--aggregate", action="store_true", help="first make the missing aggregates in Python (writes into LAKE)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args()
    lake = os.path.abspath(a.lake)
    if a.aggregate:
        aggregate(lake)

    ds = days(lake)
    agg_days = sorted({k.split("/")[1][3:] for k in listing(lake) if k.startswith("agg_uploads/")})
    if not agg_days:
        sys.exit(f"{lake}: no agg_uploads files (run `imagelake lake aggregate`, or this script with --aggregate)")
    hi = agg_days[-1]
    lo = (dt.date.fromisoformat(hi) - dt.timedelta(days=a.days - 1)).isoformat()
    window = [d for d in agg_days if lo <= d <= hi]
    stale = [d for d in window if d in ds and not ds[d][3]]
    doubled = [d for d in window if len(glob.glob(os.path.join(lake, "agg_uploads", f"dt={d}", "*.parquet"))) > 1]

    raw_view = view_sql("uploads")
    sources = {
        "raw_view": ([with_lake(raw_view, lake)], sheet('SELECT * FROM uploads', RAW_MEASURES, lo, hi)),
        "raw_tds": ([], sheet(with_lake(tds_sql("imagelake_uploads"), lake), RAW_MEASURES, lo, hi)),
        "agg_tds": ([], sheet(with_lake(tds_sql("imagelake_agg_uploads"), lake), AGG_MEASURES, lo, hi)),
    }
    con = connect()
    con.execute(with_lake(raw_view, lake))
    counts = {
        "raw_rows_total": con.execute(f"SELECT count(*) FROM read_parquet({q(lake + '/uploads/*/*.parquet')})").fetchone()[0],
        "raw_rows_window_dedup": con.execute(f"SELECT count(*) FROM uploads WHERE dt BETWEEN DATE '{lo}' AND DATE '{hi}'").fetchone()[0],
        "agg_rows_total": con.execute(f"SELECT count(*) FROM read_parquet({q(lake + '/agg_uploads/*/*.parquet')})").fetchone()[0],
        "agg_rows_window": con.execute(
            f"SELECT count(*) FROM read_parquet({q(lake + '/agg_uploads/*/*.parquet')}, hive_partitioning = true, "
            f"hive_types = {{'dt': DATE}}) WHERE dt BETWEEN DATE '{lo}' AND DATE '{hi}'").fetchone()[0],
    }
    con.close()

    result = {"lake": lake, "from": lo, "to": hi, "days": len(window), "stale_days": stale, "days_with_two_files": doubled,
              "duckdb": duckdb.__version__, "threads": os.cpu_count(), **counts, "sources": {}}
    answers = {}
    for name, (setup, sql) in sources.items():
        times, answer = time_query(setup, sql, a.runs)
        answers[name] = sorted((str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in answer)
        result["sources"][name] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                                   "runs_s": [round(t, 4) for t in times], "answer_rows": len(answer), "sql": sql}
    result["answers_equal"] = answers["raw_view"] == answers["raw_tds"] == answers["agg_tds"]

    if a.json:
        print(json.dumps(result, indent=2))
        return
    print(f"lake {lake}: duckdb {duckdb.__version__}, {os.cpu_count()} cores")
    print(f"sheet: uploads and bytes per customer and day, {lo} to {hi} ({len(window)} days with aggregates)")
    print(f"uploads: {counts['raw_rows_total']:,} raw rows in all, {counts['raw_rows_window_dedup']:,} deduplicated in the window")
    print(f"agg_uploads: {counts['agg_rows_total']:,} rows in all, {counts['agg_rows_window']:,} in the window")
    if stale:
        print(f"warning: aggregates not current (inputs changed since) on {', '.join(stale)}")
    if doubled:
        print(f"warning: two agg_uploads files on {', '.join(doubled)} (a re-aggregation in progress?): agg_tds counts twice")
    print(f"{'source':10} {'median s':>9} {'min s':>8} {'max s':>8} {'answer rows':>12}")
    for name, r in result["sources"].items():
        print(f"{name:10} {r['median_s']:9.3f} {r['min_s']:8.3f} {r['max_s']:8.3f} {r['answer_rows']:12,}")
    print("answers equal:", result["answers_equal"])


if __name__ == "__main__":
    sys.exit(main())
