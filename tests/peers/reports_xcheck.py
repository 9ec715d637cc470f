"""Cross-checks sql/reports/*.sql (run by Python duckdb over sql/views.sql) against the
independent polars computation of reports_check.py, on a lake directory, without the Rust
service: a quick check of the SQL after editing it.

    python reports_xcheck.py LAKE_DIR      (e.g. DATA_DIR/store/objects/lake after `imagelake lake generate`)
"""
import os, sys, json, subprocess, datetime as dt
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reports_bench as rb
from reports_check import utc_text
lake = sys.argv[1]
con, _ = rb.connect(lake)
def api(report, frm, to, customer=None, interval='day', by='format', limit=10):
    p = rb.params(report, frm, to, customer, interval, by, limit)
    rb.edge_views(con, p[0], p[1])
    t = con.sql(open(os.path.join(rb.ROOT, "sql", "reports", f"{report}.sql")).read(), params=p).to_arrow_table()
    rows = t.to_pylist()
    for r in rows:
        for k, v in list(r.items()):
            if isinstance(v, dt.datetime): r[k] = utc_text(v)
            elif isinstance(v, dt.date): r[k] = v.isoformat()
    return rows
def chk(report, frm='1970-01-01 00:00:00', to='3000-01-01 00:00:00', customer=None, interval='day', by='format', limit=10):
    args = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reports_check.py"), lake, report, '--from', frm.replace(' ', 'T') + 'Z', '--to', to.replace(' ', 'T') + 'Z', '--interval', interval, '--by', by, '--limit', str(limit)]
    if customer: args += ['--customer', customer]
    exp = json.loads(subprocess.check_output(args))
    got = api(report, frm, to, customer, interval, by, limit)
    assert len(exp) == len(got), (report, len(exp), len(got))
    for a, e in zip(got, exp):
        for k, v in e.items():
            if isinstance(v, float) or isinstance(a[k], float):
                assert (v is None and a[k] is None) or abs(a[k] - v) <= 1e-6 * max(abs(v), 1), (report, k, a[k], v)
            else:
                assert a[k] == v, (report, k, a[k], v, a, e)
    print('ok', report, frm, to, customer, interval, by, len(got))
for r in rb.REPORTS:
    chk(r); chk(r, '2026-01-05 00:00:00', '2026-01-12 00:00:00'); chk(r, customer='cust001')
for i in ['hour', 'week', 'month']:
    chk('volume', interval=i)
chk('types', by='content_type')
for limit in [1, 3, 1000]:
    chk('engagement', limit=limit)
for r in rb.REPORTS:
    chk(r, '2026-01-03 13:30:00', '2026-01-20 07:15:00', customer='cust002')
    chk(r, '2026-01-10 00:00:00', '2026-01-10 00:00:00')
