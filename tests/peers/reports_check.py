"""An independent computation of the reporting API's numbers, with polars (not DuckDB,
not the SQL of sql/reports/), over the same lake files: what the reporting tests compare
the API's answers with.

    python reports_check.py LAKE_DIR REPORT [--from ISO] [--to ISO] [--customer C]
                            [--interval day] [--by format] [--capacity BYTES] [--limit N]

Prints the report as a JSON array of objects, as the API answers it (JSON format).
Definitions (the same as sql/reports/*.sql say in words): rows are deduplicated by
event_id; the range is [from, to); a job's outcome is succeeded if any attempt succeeded,
else failed, and it falls in the range by its last attempt's finish time; stored bytes are
uploads + variants - deletions (but an abandoned upload's) over all time; posts are `published` post events and
comments `created` comment events in the range; the engagement ranking counts, per post
published and never deleted, the comments made (and deleted) in the range.
"""
import argparse
import datetime as dt
import glob
import json
import os

import polars as pl

UTC = dt.timezone.utc
TS = pl.Datetime("us", "UTC")
SCHEMAS = {
    "uploads": {"event_id": pl.Utf8, "image_id": pl.Utf8, "customer_id": pl.Utf8, "uploaded_at": TS,
                "content_type": pl.Utf8, "format": pl.Utf8, "bytes": pl.Int64, "width": pl.Int32, "height": pl.Int32,
                "sha256": pl.Utf8},
    "jobs": {"event_id": pl.Utf8, "job_id": pl.Utf8, "image_id": pl.Utf8, "customer_id": pl.Utf8, "attempt": pl.Int32,
             "status": pl.Utf8, "enqueued_at": TS, "started_at": TS, "finished_at": TS, "duration_ms": pl.Int64,
             "error_code": pl.Utf8, "output_bytes": pl.Int64},
    "variants": {"event_id": pl.Utf8, "image_id": pl.Utf8, "customer_id": pl.Utf8, "variant": pl.Utf8, "format": pl.Utf8,
                 "width": pl.Int32, "height": pl.Int32, "bytes": pl.Int64, "created_at": TS, "expires_at": TS},
    "deletions": {"event_id": pl.Utf8, "image_id": pl.Utf8, "customer_id": pl.Utf8, "kind": pl.Utf8, "variant": pl.Utf8,
                  "bytes": pl.Int64, "reason": pl.Utf8, "deleted_at": TS},
    "usage": {"event_id": pl.Utf8, "taken_at": TS, "customer_id": pl.Utf8, "originals_bytes": pl.Int64,
              "variants_bytes": pl.Int64, "objects": pl.Int64, "capacity_bytes": pl.Int64},
    "posts": {"event_id": pl.Utf8, "post_id": pl.Utf8, "customer_id": pl.Utf8, "image_id": pl.Utf8, "author": pl.Utf8,
              "event": pl.Utf8, "error_code": pl.Utf8, "caption_chars": pl.Int32, "at": TS},
    "comments": {"event_id": pl.Utf8, "comment_id": pl.Utf8, "post_id": pl.Utf8, "customer_id": pl.Utf8,
                 "author": pl.Utf8, "event": pl.Utf8, "chars": pl.Int32, "at": TS},
}


def load(lake, table):
    files = sorted(glob.glob(os.path.join(lake, table, "*", "*.parquet")))
    schema = SCHEMAS[table]
    if not files:
        return pl.DataFrame(schema=schema)
    frames = [pl.read_parquet(f).select(list(schema)).cast(schema) for f in files]
    return pl.concat(frames).unique(subset="event_id", keep="first", maintain_order=True)


def parse_time(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


def utc_text(t):
    """A UTC time as the API's JSON writes a TIMESTAMP: ISO 8601 without an offset, with 0, 3
    or 6 decimals as needed (arrow's formatting)."""
    us = t.microsecond
    frac = "" if us == 0 else f".{us // 1000:03d}" if us % 1000 == 0 else f".{us:06d}"
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac


def in_range(df, col, a):
    return df.filter((pl.col(col) >= a.frm) & (pl.col(col) < a.to))


def of_customer(df, a):
    return df if a.customer is None else df.filter(pl.col("customer_id") == a.customer)


def rate(failed, processed):
    return None if processed + failed == 0 else failed / (processed + failed)


def outcomes(jobs, key):
    return jobs.group_by(key).agg(
        (pl.col("status") == "succeeded").any().alias("succeeded"),
        pl.col("finished_at").max().alias("finished_at"),
        pl.col("customer_id").first().alias("customer_id") if key != "customer_id" else pl.lit(None).alias("_"),
        pl.col("duration_ms").filter(pl.col("status") == "succeeded").max().alias("duration_ms"),
    )


def stored(lake_tables, a, per_customer):
    parts = [of_customer(lake_tables["uploads"], a).select("customer_id", "bytes"),
             of_customer(lake_tables["variants"], a).select("customer_id", "bytes"),
             of_customer(lake_tables["deletions"].filter(pl.col("reason") != "abandoned"), a)
             .select("customer_id", (-pl.col("bytes")).alias("bytes"))]
    df = pl.concat(parts)
    if per_customer:
        return {r["customer_id"]: r["bytes"] for r in df.group_by("customer_id").agg(pl.col("bytes").sum()).to_dicts()}
    return int(df["bytes"].sum() or 0)


def summary(t, a):
    up = in_range(of_customer(t["uploads"], a), "uploaded_at", a)
    oc = in_range(outcomes(of_customer(t["jobs"], a), "job_id"), "finished_at", a)
    processed = oc.filter(pl.col("succeeded")).height
    failed = oc.height - processed
    ex = in_range(of_customer(t["deletions"], a), "deleted_at", a).filter(pl.col("reason") == "expired")
    used = stored(t, a, False)
    return [{
        "images": up.height, "bytes": int(up["bytes"].sum() or 0), "processed": processed, "failed": failed,
        "failure_rate": rate(failed, processed), "expired": ex.height, "expired_bytes": int(ex["bytes"].sum() or 0),
        "used_bytes": used, "capacity_bytes": a.capacity,
        "used_percent": None if a.capacity == 0 else 100.0 * used / a.capacity,
    }]


def quantile(values, q):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return pl.Series(values, dtype=pl.Float64).quantile(q, interpolation="linear")


def published(t, a):
    return in_range(of_customer(t["posts"], a), "at", a).filter(pl.col("event") == "published")


def commented(t, a):
    return in_range(of_customer(t["comments"], a), "at", a).filter(pl.col("event") == "created")


def customers(t, a):
    up = in_range(of_customer(t["uploads"], a), "uploaded_at", a)
    oc = in_range(outcomes(of_customer(t["jobs"], a), "job_id"), "finished_at", a)
    st = stored(t, a, True)
    po, co = published(t, a), commented(t, a)
    names = sorted(set(up["customer_id"].to_list()) | set(oc["customer_id"].to_list()) | set(st)
                   | set(po["customer_id"].to_list()) | set(co["customer_id"].to_list()))
    out = []
    for c in names:
        u = up.filter(pl.col("customer_id") == c)
        o = oc.filter(pl.col("customer_id") == c)
        processed = o.filter(pl.col("succeeded")).height
        failed = o.height - processed
        durations = o.filter(pl.col("succeeded"))["duration_ms"].to_list()
        out.append({
            "customer_id": c, "uploads": u.height, "bytes_uploaded": int(u["bytes"].sum() or 0),
            "processed": processed, "failed": failed,
            "failure_rate": rate(failed, processed) if o.height else None,
            "p50_processing_ms": quantile(durations, 0.5), "p95_processing_ms": quantile(durations, 0.95),
            "bytes_stored": int(st.get(c, 0)),
            "posts": po.filter(pl.col("customer_id") == c).height,
            "comments": co.filter(pl.col("customer_id") == c).height,
        })
    return out


def types(t, a):
    col = "content_type" if a.by == "content_type" else "format"
    up = in_range(of_customer(t["uploads"], a), "uploaded_at", a)
    oc = {r["image_id"]: r["succeeded"] for r in outcomes(of_customer(t["jobs"], a), "image_id").to_dicts()}
    out = []
    for ty in set(up[col].to_list()):
        u = up.filter(pl.col(col) == ty)
        states = [oc.get(i) for i in u["image_id"].to_list()]
        processed = sum(1 for s in states if s is True)
        failed = sum(1 for s in states if s is False)
        out.append({
            "type": ty, "images": u.height, "bytes": int(u["bytes"].sum()), "mean_width": u["width"].mean(),
            "mean_height": u["height"].mean(), "processed": processed, "failed": failed,
            "failure_rate": rate(failed, processed),
        })
    return sorted(out, key=lambda r: (-r["images"], r["type"]))


EVERY = {"hour": "1h", "day": "1d", "week": "1w", "month": "1mo"}


def volume(t, a):
    every = EVERY[a.interval]

    def bucketed(df, col):
        return df.with_columns(pl.col(col).dt.replace_time_zone(None).dt.truncate(every).alias("bucket"))

    up = bucketed(in_range(of_customer(t["uploads"], a), "uploaded_at", a), "uploaded_at")
    # processed / failed: jobs with a successful attempt / none, in the bucket of their last attempt.
    jobs = bucketed(in_range(outcomes(of_customer(t["jobs"], a), "job_id"), "finished_at", a), "finished_at")
    pr, fa = jobs.filter(pl.col("succeeded")), jobs.filter(~pl.col("succeeded"))
    ex = bucketed(in_range(of_customer(t["deletions"], a), "deleted_at", a).filter(pl.col("reason") == "expired"), "deleted_at")
    po = bucketed(published(t, a), "at")
    co = bucketed(commented(t, a), "at")
    all_buckets = (up["bucket"].to_list() + pr["bucket"].to_list() + fa["bucket"].to_list() + ex["bucket"].to_list()
                   + po["bucket"].to_list() + co["bucket"].to_list())
    if not all_buckets:
        return []
    series = pl.datetime_range(min(all_buckets), max(all_buckets), every, eager=True).to_list()
    out = []
    for b in series:
        u = up.filter(pl.col("bucket") == b)
        e = ex.filter(pl.col("bucket") == b)
        out.append({
            "bucket": b.strftime("%Y-%m-%dT%H:%M:%S"), "uploads": u.height, "bytes": int(u["bytes"].sum() or 0),
            "processed": pr.filter(pl.col("bucket") == b).height, "failed": fa.filter(pl.col("bucket") == b).height,
            "expired": e.height,
            "expired_bytes": int(e["bytes"].sum() or 0),
            "posts": po.filter(pl.col("bucket") == b).height,
            "comments": co.filter(pl.col("bucket") == b).height,
        })
    return out


def engagement(t, a):
    posts = of_customer(t["posts"], a)
    gone = set(posts.filter(pl.col("event") == "deleted")["post_id"].to_list())
    live = {}
    for r in posts.filter(pl.col("event") == "published").sort("at").to_dicts():
        if r["post_id"] not in gone and r["post_id"] not in live:
            live[r["post_id"]] = r
    c = in_range(of_customer(t["comments"], a), "at", a)
    made, deleted = {}, {}
    for r in c.to_dicts():
        counter = made if r["event"] == "created" else deleted
        counter[r["post_id"]] = counter.get(r["post_id"], 0) + 1
    rows = []
    for post_id, n in made.items():
        p = live.get(post_id)
        if p is None:
            continue
        rows.append({
            "post_id": post_id, "customer_id": p["customer_id"], "author": p["author"], "comments": n,
            "comments_deleted": deleted.get(post_id, 0),
            "published_at": utc_text(p["at"]),
        })
    rows.sort(key=lambda r: (-r["comments"], r["post_id"]))
    return rows[:a.limit]


def processing(t, a):
    j = in_range(of_customer(t["jobs"], a), "finished_at", a).with_columns(
        pl.col("finished_at").dt.date().alias("day"),
        ((pl.col("started_at") - pl.col("enqueued_at")).dt.total_microseconds() / 1000.0).alias("wait_ms"),
    )
    out = []
    for day in sorted(set(j["day"].to_list())):
        d = j.filter(pl.col("day") == day)
        wait, proc = d["wait_ms"].to_list(), [float(x) for x in d["duration_ms"].to_list()]
        out.append({
            "day": day.isoformat(), "attempts": d.height,
            "succeeded": d.filter(pl.col("status") == "succeeded").height,
            "failed": d.filter(pl.col("status") == "failed").height,
            "dead_lettered": d.filter(pl.col("status") == "dead_lettered").height,
            "retries": d.filter(pl.col("attempt") > 1).height,
            "p50_queue_wait_ms": quantile(wait, 0.5), "p95_queue_wait_ms": quantile(wait, 0.95),
            "p99_queue_wait_ms": quantile(wait, 0.99),
            "p50_processing_ms": quantile(proc, 0.5), "p95_processing_ms": quantile(proc, 0.95),
            "p99_processing_ms": quantile(proc, 0.99),
        })
    return out


def slope(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return None if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var


def usage(t, a):
    deltas = pl.concat([
        t["uploads"].select("customer_id", pl.col("uploaded_at").alias("ts"), "bytes"),
        t["variants"].select("customer_id", pl.col("created_at").alias("ts"), "bytes"),
        t["deletions"].filter(pl.col("reason") != "abandoned")
        .select("customer_id", pl.col("deleted_at").alias("ts"), (-pl.col("bytes")).alias("bytes")),
    ])
    snaps = in_range(t["usage"], "taken_at", a)
    who = [None] + sorted(set(of_customer(deltas, a)["customer_id"].to_list()))
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    rows = []
    for c in who:
        mine = deltas if c is None else deltas.filter(pl.col("customer_id") == c)
        used = int(mine["bytes"].sum() or 0)
        s = snaps.filter(pl.col("customer_id").is_null() if c is None else pl.col("customer_id") == c)
        source, growth = None, None
        if s["taken_at"].n_unique() >= 2:
            xs = [(x - epoch).total_seconds() / 86400.0 for x in s["taken_at"].to_list()]
            ys = [o + v for o, v in zip(s["originals_bytes"].to_list(), s["variants_bytes"].to_list())]
            source, growth = "snapshots", slope(xs, ys)
        else:
            daily = (mine.filter(pl.col("ts") < a.to).with_columns(pl.col("ts").dt.date().alias("day"))
                     .group_by("day").agg(pl.col("bytes").sum()).sort("day"))
            cum, points = 0, []
            for day, b in zip(daily["day"].to_list(), daily["bytes"].to_list()):
                cum += b
                if day >= a.frm.date():
                    points.append(((dt.datetime.combine(day, dt.time(), UTC) - epoch).total_seconds() / 86400.0, cum))
            if len(points) >= 2:
                source, growth = "uploads", slope([p[0] for p in points], [p[1] for p in points])
        days = None
        if c is None and growth is not None and growth > 0:
            days = max(a.capacity - used, 0) / growth
        rows.append({"customer_id": c, "used_bytes": used, "capacity_bytes": a.capacity,
                     "used_percent": None if a.capacity == 0 else 100.0 * used / a.capacity,
                     "trend_source": source, "growth_bytes_per_day": growth, "days_until_full": days})
    total, rest = rows[0], rows[1:]
    return [total] + sorted(rest, key=lambda r: (-r["used_bytes"], r["customer_id"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lake")
    ap.add_argument("report", choices=["summary", "customers", "types", "volume", "processing", "usage", "engagement"])
    ap.add_argument("--from", dest="frm", default="1970-01-01T00:00:00Z")
    ap.add_argument("--to", default="3000-01-01T00:00:00Z")
    ap.add_argument("--customer")
    ap.add_argument("--interval", default="day")
    ap.add_argument("--by", default="format")
    ap.add_argument("--capacity", type=int, default=100_000_000_000_000)
    ap.add_argument("--limit", type=int, default=10)
    a = ap.parse_args()
    a.frm, a.to = parse_time(a.frm), parse_time(a.to)
    t = {name: load(a.lake, name) for name in SCHEMAS}
    print(json.dumps(globals()[a.report](t, a)))


if __name__ == "__main__":
    main()
