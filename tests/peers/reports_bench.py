"""Runs the named reports (sql/reports/*.sql) with Python's duckdb over a lake directory,
through the same objects the service makes (sql/views.sql; the daily aggregates of every
day that has all of them, the raw facts of the others; sql/facts.sql): the bare-query
side of the reporting benchmark, and a quick way to try a report from the command line.

    python reports_bench.py LAKE_DIR [--runs 5] [--report customers] [--show] [--raw]
                                     [--from 2026-09-01T09:17:00 --to 2026-10-31T16:43:00]

Prints the set-up time, then one JSON object per report: median, p95 and all run times in
milliseconds, row count. (`--raw`: no aggregates, every day from the views.)
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


AGGS = ["agg_uploads", "agg_unattempted", "agg_late_outcomes", "agg_jobs", "agg_job_ms", "agg_job_ms_hour", "agg_attempts", "agg_attempt_ms",
        "agg_attempt_ms_all", "agg_variants", "agg_deletions", "agg_posts", "agg_comments", "agg_post_comments",
        "agg_post_state", "agg_copies"]
INPUTS = ["uploads", "jobs", "variants", "deletions", "posts", "comments"]


def files_by_day(lake, d):
    out = {}
    for part in sorted(os.listdir(os.path.join(lake, d))) if os.path.isdir(os.path.join(lake, d)) else []:
        if part.startswith("dt="):
            fs = sorted(f for f in os.listdir(os.path.join(lake, d, part)) if f.endswith(".parquet"))
            if fs:
                out[part[3:]] = [os.path.join(lake, d, part, f) for f in fs]
    return out


def call(sql, opening):
    """The text of sql from `opening` (ending with "(") to its closing parenthesis."""
    start = sql.index(opening)
    depth = 0
    for i in range(start + len(opening) - 1, len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[i], 0)
        if depth == 0:
            return sql[start:i + 1]
    raise ValueError(opening)


ONE_SCAN_FILES = 64


def view_over(view_sql, glob, name, files, temp=False, copies=None):
    """The view of views.sql's statement over these files only, as the service makes it
    (reporting/src/objects.rs, view_over): the window over the copies only (`copies`: a
    query of their (dt, event_id) when the aggregates list them; None: found by counting),
    or over more than ONE_SCAN_FILES files one scan with the window over every row."""
    scan = call(view_sql, "read_parquet(").replace(glob, lit(files))
    window = call(view_sql, "QUALIFY row_number() OVER (")
    if len(files) > ONE_SCAN_FILES:
        return f"CREATE OR REPLACE {'TEMP ' if temp else ''}VIEW {name} AS SELECT * EXCLUDE (filename) FROM {scan} {window} = 1"
    return (f"CREATE OR REPLACE {'TEMP ' if temp else ''}VIEW {name} AS "
            f"WITH facts AS NOT MATERIALIZED (SELECT * FROM {scan}), "
            f"copies AS ({copies or 'SELECT dt, event_id FROM facts GROUP BY ALL HAVING count(*) > 1'}) "
            "SELECT * EXCLUDE (filename) FROM facts ANTI JOIN copies USING (dt, event_id) "
            "UNION ALL BY NAME "
            f"SELECT * EXCLUDE (filename) FROM (SELECT * FROM facts SEMI JOIN copies USING (dt, event_id) {window} = 1)")


def lit(paths):
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


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


# What edge_views needs of each connection's lake.
_EDGES = {}


def connect(lake, aggregates=True):
    """The views over `lake`, the aggregates of every day that has all of them (the
    benchmark aggregates every closed day first), the raw facts of the other days, and
    the reports' macros."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET parquet_metadata_cache = true")
    for table, cols in EMPTY.items():
        if not any(f.endswith(".parquet") for _, _, fs in os.walk(os.path.join(lake, table)) for f in fs):
            con.execute(f"CREATE TABLE {table} ({cols}, dt DATE)")
    view_of = {}
    for body in statements(views_sql().replace("${LAKE}", lake.replace("'", "''"))):
        for t in EMPTY:
            if f"VIEW {t} AS" in body:
                view_of[t] = body
        try:
            con.execute(body)
        except duckdb.Error as e:
            if "No files found" not in str(e):
                raise
    agg = {a: files_by_day(lake, a) for a in AGGS}
    days = set.intersection(*(set(v) for v in agg.values())) if aggregates else set()
    days = sorted(d for d in days if all(len(agg[a][d]) == 1 for a in AGGS))
    con.execute("CREATE TABLE agg_days (day DATE)")
    if days:
        con.execute("INSERT INTO agg_days VALUES " + ", ".join(f"(DATE '{d}')" for d in days))
    for t in INPUTS:
        raw = [f for d, fs in files_by_day(lake, t).items() if d not in days for f in fs]
        if raw:
            glob = "'" + lake.replace("'", "''") + f"/{t}/*/*.parquet'"
            copies = None
            if len(raw) <= ONE_SCAN_FILES:
                # The facts with copies, counted once (reporting/src/objects.rs, desired).
                con.execute(f"CREATE TABLE recent_copies_{t} AS SELECT dt, event_id FROM read_parquet({lit(raw)}, "
                            "hive_partitioning = true, hive_types = {'dt': DATE}, union_by_name = true) "
                            "GROUP BY ALL HAVING count(*) > 1")
                copies = f"SELECT dt, event_id FROM recent_copies_{t}"
            con.execute(view_over(view_of[t], glob, f"recent_{t}", raw, copies=copies))
        else:
            con.execute(f"CREATE TABLE recent_{t} ({EMPTY[t]}, dt DATE)")
    # The aggregates' columns, from sql/aggregates.sql over empty inputs.
    con.execute("CREATE SCHEMA agg_empty; SET schema = 'agg_empty'; SET search_path = 'agg_empty'")
    for t, cols in EMPTY.items():
        con.execute(f"CREATE TABLE {t} ({cols}, dt DATE)")
        con.execute(f"CREATE TABLE {t}_all ({cols}, dt DATE)")
    for body in statements(open(os.path.join(ROOT, "sql", "aggregates.sql")).read()):
        con.execute(body)
    con.execute("RESET schema; RESET search_path")
    # What the service keeps in memory from the same aggregates (reporting/src/memory.rs).
    # (agg_job_ms_hour is read from the edge days' files: edge_views.)
    for a in (a for a in AGGS if a != "agg_job_ms_hour"):
        con.execute(f"CREATE TABLE {a} AS SELECT *, NULL::DATE AS dt FROM agg_empty.{a}")
        if days:
            con.execute(f"INSERT INTO {a} BY NAME SELECT * FROM read_parquet({lit([agg[a][d][0] for d in days])}, "
                        "hive_partitioning = true, hive_types = {'dt': DATE})")
    con.execute("CREATE TABLE stored_by_day (dt DATE, customer_id VARCHAR, bytes BIGINT)")
    lag = 0
    if days:
        con.execute("INSERT INTO stored_by_day SELECT dt, customer_id, sum(bytes)::BIGINT FROM ("
                    "SELECT dt, customer_id, bytes FROM agg_uploads UNION ALL SELECT dt, customer_id, bytes FROM agg_variants "
                    "UNION ALL SELECT dt, customer_id, -bytes FROM agg_deletions WHERE reason <> 'abandoned') GROUP BY ALL")
        lag = con.execute("SELECT coalesce(max(hour::DATE - dt), 0) FROM agg_jobs").fetchone()[0]
    con.execute(f"CREATE MACRO agg_job_lag() AS {int(lag)}")
    con.execute("CREATE TABLE post_comment_totals AS SELECT post_id, any_value(customer_id) AS customer_id, "
                "sum(created)::BIGINT AS created FROM agg_post_comments GROUP BY post_id")
    # Placeholders in main, so that the macros bind; a query's temporary views come first.
    for t in INPUTS:
        con.execute(f"CREATE VIEW edge_{t} AS SELECT * FROM agg_empty.{t}")
    con.execute("CREATE VIEW range_usage AS SELECT * FROM agg_empty.usage")
    con.execute(f"CREATE VIEW edge_job_ms_hour AS {EMPTY_JOB_MS_HOUR}")
    _EDGES[id(con)] = {"lake": lake, "days": set(days), "view_of": view_of, "job_ms_hour": agg["agg_job_ms_hour"],
                 "files": {t: files_by_day(lake, t) for t in INPUTS + ["usage"]}}
    for body in statements(open(os.path.join(ROOT, "sql", "facts.sql")).read()):
        con.execute(body)
    return con, len(days)


EMPTY_JOB_MS_HOUR = "SELECT *, NULL::DATE AS dt FROM agg_empty.agg_job_ms_hour"


def edge_views(con, frm, to):
    """The views a query over [frm, to) reads besides the others (reporting/src/edges.rs):
    edge_t, the files of the aggregated days an edge cuts (for the jobs, and the day before
    each), deduplicated with those days' agg_copies; edge_job_ms_hour, the hourly latency
    histograms of the jobs' edge days; and range_usage, the usage files of the range's
    days."""
    import datetime as dt
    e = _EDGES[id(con)]
    cut, before = set(), set()
    for t in (frm, to):
        if t.time() != dt.time(0):
            cut.add(t.date())
            before.add(t.date() - dt.timedelta(days=1))
    for t in INPUTS + ["usage"]:
        if t == "usage":
            name = "range_usage"
            files = [f for d, fs in e["files"][t].items() if frm.date() <= dt.date.fromisoformat(d) <= to.date() for f in fs]
        else:
            name = f"edge_{t}"
            days = cut | before if t == "jobs" else cut
            files = [f for d in sorted(days) if d.isoformat() in e["days"] for f in e["files"][t].get(d.isoformat(), [])]
        if files:
            glob = "'" + e["lake"].replace("'", "''") + f"/{t}/*/*.parquet'"
            # The edge days are aggregated: their agg_copies lists the facts with copies.
            copies = None if t == "usage" else f"SELECT dt, event_id FROM agg_copies WHERE fact_table = '{t}'"
            con.execute(view_over(e["view_of"][t], glob, name, files, temp=True, copies=copies))
        else:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM agg_empty.{t}")
    hours = [e["job_ms_hour"][d.isoformat()][0] for d in sorted(cut | before) if d.isoformat() in e["days"]]
    body = (f"SELECT * FROM read_parquet({lit(hours)}, hive_partitioning = true, hive_types = {{'dt': DATE}})"
            if hours else EMPTY_JOB_MS_HOUR)
    con.execute(f"CREATE OR REPLACE TEMP VIEW edge_job_ms_hour AS {body}")


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
    ap.add_argument("--raw", action="store_true", help="no aggregates: every day from the views")
    ap.add_argument("--from", dest="frm", default="1970-01-01 00:00:00")
    ap.add_argument("--to", default="3000-01-01 00:00:00")
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    t = time.perf_counter()
    con, days = connect(os.path.abspath(a.lake), not a.raw)
    print(json.dumps({"setup_ms": round((time.perf_counter() - t) * 1000, 1), "aggregated_days": days}), flush=True)
    for report in a.report or REPORTS:
        sql = open(os.path.join(ROOT, "sql", "reports", f"{report}.sql")).read()
        times, rows = [], None
        for _ in range(a.runs):
            p = params(report, a.frm.replace("T", " "), a.to.replace("T", " "))
            t = time.perf_counter()
            edge_views(con, p[0], p[1])
            table = con.sql(sql, params=p).to_arrow_table()
            times.append((time.perf_counter() - t) * 1000)
            rows = table.num_rows
        ordered = sorted(times)
        p95 = ordered[min(len(ordered) - 1, max(0, -(-95 * len(ordered) // 100) - 1))]
        out = {"report": report, "range": a.label, "median_ms": round(statistics.median(times), 1),
               "p95_ms": round(p95, 1), "runs_ms": [round(x, 1) for x in times], "rows": rows}
        if a.show:
            out["first_rows"] = table.slice(0, 3).to_pylist()
        print(json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    main()
