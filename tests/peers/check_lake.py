#!/usr/bin/env python3
"""Reads an imagelake lake with three independent Parquet readers and checks it.

Usage:
  check_lake.py LAKE_DIR --views sql/views.sql [--expect TABLE=N ...] [--exact]
                [--uploads-ids FILE] [--succeeded-ids FILE]

LAKE_DIR holds uploads/, jobs/, ... (`lake/` of the object store). For each table with
an expectation, the number of distinct event_ids must be N in every reader, and the
deduplicating view of sql/views.sql must have N rows. With --exact, the raw files must
hold exactly N rows too (no duplicates); without it, they may hold more (redeliveries,
crashes), never fewer. Column types and `dt` partitions are checked in every reader.
--uploads-ids: a file of image ids (one a line) that must each appear exactly once in the
`uploads` view; --succeeded-ids: image ids that must each have a succeeded job row, with
no (job_id, attempt) twice in the `jobs` view.
Prints a JSON summary; exits non-zero (AssertionError) on the first failed check.
"""

import argparse
import datetime as dt
import json
import os
import sys

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

TIME_COL = {
    "uploads": "uploaded_at",
    "jobs": "finished_at",
    "variants": "created_at",
    "deletions": "deleted_at",
    "downloads": "served_at",
    "usage": "taken_at",
    "posts": "at",
    "comments": "at",
}
# Expected Arrow types of some columns (every table: event_id string, its time column).
TYPES = {
    "uploads": {"bytes": pa.int64(), "width": pa.int32(), "height": pa.int32(), "customer_id": pa.string()},
    "jobs": {"attempt": pa.int32(), "duration_ms": pa.int64(), "output_bytes": pa.int64(), "enqueued_at": None, "started_at": None},
    "variants": {"bytes": pa.int64(), "width": pa.int32(), "height": pa.int32(), "expires_at": None},
    "deletions": {"bytes": pa.int64()},
    "downloads": {"bytes": pa.int64()},
    "usage": {"originals_bytes": pa.int64(), "variants_bytes": pa.int64(), "objects": pa.int64(), "capacity_bytes": pa.int64()},
    "posts": {"caption_chars": pa.int32(), "post_id": pa.string(), "author": pa.string(), "event": pa.string()},
    "comments": {"chars": pa.int32(), "comment_id": pa.string(), "post_id": pa.string(), "event": pa.string()},
}
TS = pa.timestamp("us", tz="UTC")
# Stand-ins for tables without files (as the reporting service creates them).
EMPTY = {
    "uploads": "event_id VARCHAR, image_id VARCHAR, customer_id VARCHAR, uploaded_at TIMESTAMPTZ, content_type VARCHAR, "
    "format VARCHAR, bytes BIGINT, width INTEGER, height INTEGER, sha256 VARCHAR",
    "jobs": "event_id VARCHAR, job_id VARCHAR, image_id VARCHAR, customer_id VARCHAR, attempt INTEGER, status VARCHAR, "
    "enqueued_at TIMESTAMPTZ, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, duration_ms BIGINT, error_code VARCHAR, "
    "output_bytes BIGINT",
    "variants": "event_id VARCHAR, image_id VARCHAR, customer_id VARCHAR, variant VARCHAR, format VARCHAR, width INTEGER, "
    "height INTEGER, bytes BIGINT, created_at TIMESTAMPTZ, expires_at TIMESTAMPTZ",
    "deletions": "event_id VARCHAR, image_id VARCHAR, customer_id VARCHAR, kind VARCHAR, variant VARCHAR, bytes BIGINT, "
    "reason VARCHAR, deleted_at TIMESTAMPTZ",
    "downloads": "event_id VARCHAR, image_id VARCHAR, customer_id VARCHAR, variant VARCHAR, bytes BIGINT, served_at TIMESTAMPTZ",
    "usage": "event_id VARCHAR, taken_at TIMESTAMPTZ, customer_id VARCHAR, originals_bytes BIGINT, variants_bytes BIGINT, "
    "objects BIGINT, capacity_bytes BIGINT",
    "posts": 'event_id VARCHAR, post_id VARCHAR, customer_id VARCHAR, image_id VARCHAR, author VARCHAR, event VARCHAR, '
    'error_code VARCHAR, caption_chars INTEGER, "at" TIMESTAMPTZ',
    "comments": 'event_id VARCHAR, comment_id VARCHAR, post_id VARCHAR, customer_id VARCHAR, author VARCHAR, event VARCHAR, '
    'chars INTEGER, "at" TIMESTAMPTZ',
}


def partitions(lake, table):
    d = os.path.join(lake, table)
    return sorted(p[3:] for p in os.listdir(d) if p.startswith("dt=")) if os.path.isdir(d) else []


def check_table(con, lake, table, expect, exact):
    out = {}
    parts = partitions(lake, table)
    glob = f"{lake}/{table}/*/*.parquet"

    # 1. DuckDB, straight from the files.
    raw = con.execute(
        f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"
    ).fetchall()[0]
    types = dict(
        (r[0], r[1])
        for r in con.execute(
            f"DESCRIBE SELECT * FROM read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"
        ).fetchall()
    )
    assert types[TIME_COL[table]] == "TIMESTAMP WITH TIME ZONE", (table, types)
    for col, t in TYPES[table].items():
        want = {pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.string(): "VARCHAR", None: "TIMESTAMP WITH TIME ZONE"}[t]
        assert types[col] == want, (table, col, types[col], want)
    assert types["dt"] == "DATE", (table, types["dt"])
    # Every row sits in the partition of its event time's UTC day.
    misplaced = con.execute(
        f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true, union_by_name = true) "
        f"WHERE dt <> CAST(timezone('UTC', \"{TIME_COL[table]}\") AS DATE)"
    ).fetchall()[0][0]
    assert misplaced == 0, (table, "rows outside their dt partition", misplaced)
    dts = [str(r[0]) for r in con.execute(
        f"SELECT DISTINCT dt FROM read_parquet('{glob}', hive_partitioning = true) ORDER BY 1").fetchall()]
    assert dts == parts, (table, dts, parts)
    view_rows, view_distinct = con.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {table}").fetchall()[0]
    assert view_rows == view_distinct, (table, "the view has duplicate event_ids", view_rows, view_distinct)
    out["duckdb"] = {"raw_rows": raw[0], "distinct": raw[1], "view_rows": view_rows}

    # 2. pyarrow.dataset with hive partitioning.
    dset = ds.dataset(os.path.join(lake, table), format="parquet", partitioning="hive")
    schema = dset.schema
    assert schema.field(TIME_COL[table]).type == TS, (table, schema.field(TIME_COL[table]).type)
    for col, t in TYPES[table].items():
        assert schema.field(col).type == (t or TS), (table, col, schema.field(col).type)
    assert schema.field("event_id").type in (pa.string(), pa.large_string()), schema.field("event_id").type
    tbl = dset.to_table(columns=["event_id", "dt", TIME_COL[table]])
    pa_dts = sorted({str(v) for v in pc.unique(tbl.column("dt")).to_pylist()})
    assert pa_dts == parts, (table, pa_dts, parts)
    # dt is the UTC day of the event time.
    days = pc.strftime(tbl.column(TIME_COL[table]), format="%Y-%m-%d")
    assert pc.all(pc.equal(days, pc.cast(tbl.column("dt"), pa.string()))).as_py() in (True, None), table
    pa_distinct = len(pc.unique(tbl.column("event_id")))
    out["pyarrow"] = {"raw_rows": tbl.num_rows, "distinct": pa_distinct}

    # 3. polars, lazily.
    lf = pl.scan_parquet(f"{lake}/{table}/**/*.parquet", hive_partitioning=True)
    pschema = lf.collect_schema()
    assert pschema[TIME_COL[table]] == pl.Datetime("us", "UTC"), (table, pschema[TIME_COL[table]])
    for col, t in TYPES[table].items():
        want = {pa.int64(): pl.Int64, pa.int32(): pl.Int32, pa.string(): pl.String, None: pl.Datetime("us", "UTC")}[t]
        assert pschema[col] == want, (table, col, pschema[col], want)
    agg = lf.select(pl.len().alias("rows"), pl.col("event_id").n_unique().alias("distinct")).collect()
    pl_dts = sorted(str(d) for d in lf.select(pl.col("dt").unique()).collect()["dt"].to_list())
    assert pl_dts == parts, (table, pl_dts, parts)
    out["polars"] = {"raw_rows": agg["rows"][0], "distinct": agg["distinct"][0]}

    # The three readers agree.
    assert out["duckdb"]["raw_rows"] == out["pyarrow"]["raw_rows"] == out["polars"]["raw_rows"], (table, out)
    assert out["duckdb"]["distinct"] == out["pyarrow"]["distinct"] == out["polars"]["distinct"] == view_rows, (table, out)
    if expect is not None:
        assert view_rows == expect, (table, "expected", expect, "distinct events, found", out)
        if exact:
            assert out["duckdb"]["raw_rows"] == expect, (table, "expected no duplicates", out)
        else:
            assert out["duckdb"]["raw_rows"] >= expect, (table, out)
    out["partitions"] = parts
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lake")
    ap.add_argument("--views", required=True)
    ap.add_argument("--expect", action="append", default=[])
    ap.add_argument("--exact", action="store_true")
    ap.add_argument("--uploads-ids")
    ap.add_argument("--succeeded-ids")
    a = ap.parse_args()
    lake = os.path.abspath(a.lake)
    expect = {}
    for e in a.expect:
        k, v = e.split("=")
        expect[k] = int(v)

    con = duckdb.connect()
    views = open(a.views).read().replace("${LAKE}", lake.replace("'", "''"))
    # The views of tables without files cannot be created (DuckDB refuses an empty glob):
    # those tables stand in as empty, as in the reporting service.
    present = [t for t in TIME_COL if partitions(lake, t)]
    for t in TIME_COL:
        if t not in present:
            con.execute(f"CREATE TABLE {t} ({EMPTY[t]}, dt DATE)")
    for stmt in [s for s in views.split(";\n") if s.strip()]:
        code = "\n".join(l for l in stmt.splitlines() if not l.strip().startswith("--")).strip()
        if not code:
            continue
        name = code.split()[4] if code.upper().startswith("CREATE OR REPLACE VIEW") else None
        if name in TIME_COL and name not in present:
            continue
        con.execute(code)

    summary = {}
    for table in TIME_COL:
        if table in expect or table in present:
            assert table in present, (table, "has no files; expected", expect.get(table))
            summary[table] = check_table(con, lake, table, expect.get(table), a.exact)

    if a.uploads_ids:
        ids = [l.strip() for l in open(a.uploads_ids) if l.strip()]
        rows = dict(con.execute("SELECT image_id, count(*) FROM uploads GROUP BY image_id").fetchall())
        missing = [i for i in ids if i not in rows]
        twice = {i: n for i, n in rows.items() if n != 1}
        assert not missing, ("accepted uploads missing from the lake", missing)
        assert not twice, ("uploads counted more than once", twice)
        assert set(rows) == set(ids), ("uploads the test did not make", set(rows) - set(ids))
        summary["uploads_checked"] = len(ids)
    if a.succeeded_ids:
        ids = [l.strip() for l in open(a.succeeded_ids) if l.strip()]
        dup = con.execute("SELECT job_id, attempt, count(*) FROM jobs GROUP BY ALL HAVING count(*) > 1").fetchall()
        assert not dup, ("a (job, attempt) twice in the jobs view", dup)
        ok = dict(con.execute(
            "SELECT image_id, count(*) FILTER (WHERE status = 'succeeded') FROM jobs GROUP BY image_id").fetchall())
        missing = [i for i in ids if ok.get(i, 0) < 1]
        assert not missing, ("processed images without a succeeded job row", missing)
        # A kill -9 between the lake write and the record update re-runs the job under the
        # next attempt number: a second succeeded attempt is legitimate and reported.
        summary["jobs_checked"] = len(ids)
        summary["jobs_succeeded_twice"] = sum(1 for i in ids if ok.get(i, 0) > 1)
        states = dict(con.execute("SELECT state, count(*) FROM image_state GROUP BY state").fetchall())
        assert states.get("processed", 0) >= len(ids), ("image_state", states)
        summary["image_state"] = states
    summary["readers"] = {"duckdb": duckdb.__version__, "pyarrow": pa.__version__, "polars": pl.__version__}
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    sys.exit(main())
