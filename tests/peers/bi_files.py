"""Reads the BI files the way their tools would, and prints what they declare as JSON.

    bi_files.py ROOT [--lake DIR]

- dashboards/tableau/*.tds: parsed as XML (xml.etree); for each data source, the columns
  of its metadata records (remote-name, local-type) and of its <column> elements
  (name, datatype), which must agree; the custom SQL of its relation.
- sql/athena/*.sql: each CREATE EXTERNAL TABLE's columns and types, partition columns,
  LOCATION and TBLPROPERTIES.
- with --lake (needs the duckdb module): each data source's custom SQL is run by DuckDB
  over that lake (`${LAKE}` replaced, as the README says), and the columns and types it
  answers are reported, for tables that have files there.

The caller (tests/client_cli.rs) compares all of it with the lake schema in code
(core/src/lake/schema.rs). Exits non-zero on a file that does not parse.
"""

import argparse
import glob
import json
import os
import re
import sys
import xml.etree.ElementTree as ET


def read_tds(path):
    tree = ET.parse(path)  # raises on malformed XML
    root = tree.getroot()
    assert root.tag == "datasource", f"{path}: root element is <{root.tag}>, not <datasource>"
    named = root.findall("./connection/named-connections/named-connection/connection")
    assert named, f"{path}: no named connection"
    relations = root.findall("./connection/relation")
    assert len(relations) == 1, f"{path}: expected one relation, found {len(relations)}"
    rel = relations[0]
    records = []
    for rec in root.findall("./connection/metadata-records/metadata-record[@class='column']"):
        records.append({
            "name": rec.findtext("remote-name"),
            "local_name": rec.findtext("local-name"),
            "type": rec.findtext("local-type"),
            "ordinal": int(rec.findtext("ordinal")),
            "nullable": rec.findtext("contains-null") == "true",
        })
    columns = [{"name": c.get("name"), "type": c.get("datatype"), "role": c.get("role")} for c in root.findall("./column")]
    return {
        "file": os.path.basename(path),
        "connection_class": named[0].get("class"),
        "relation": {"name": rel.get("name"), "type": rel.get("type"), "sql": rel.text or ""},
        "records": records,
        "columns": columns,
    }


DDL = re.compile(
    r"CREATE\s+EXTERNAL\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?`?(?P<table>\w+)`?\s*\((?P<cols>.*?)\)\s*"
    r"PARTITIONED\s+BY\s*\((?P<parts>.*?)\)\s*"
    r"STORED\s+AS\s+(?P<stored>\w+)\s*"
    r"LOCATION\s+'(?P<location>[^']*)'\s*"
    r"TBLPROPERTIES\s*\((?P<props>.*?)\)\s*;",
    re.S | re.I,
)


def columns_of(text):
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, typ = part.split(None, 1)
        out.append([name.strip("`"), typ.strip().lower()])
    return out


def read_ddl(path):
    text = open(path, encoding="utf-8").read()
    body = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    m = DDL.search(body)
    assert m, f"{path}: no CREATE EXTERNAL TABLE ... PARTITIONED BY ... STORED AS ... LOCATION ... TBLPROPERTIES (...);"
    props = dict(re.findall(r"'([^']+)'\s*=\s*'([^']*)'", m.group("props")))
    return {
        "file": os.path.basename(path),
        "table": m.group("table"),
        "columns": columns_of(m.group("cols")),
        "partitions": columns_of(m.group("parts")),
        "stored_as": m.group("stored").upper(),
        "location": m.group("location"),
        "properties": props,
    }


def run_sql(sources, lake):
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    out = {}
    for s in sources:
        table = s["relation"]["name"]
        if table.startswith("agg_"):
            continue  # checked by core/src/lake/agg_bi_tests.rs
        if not glob.glob(os.path.join(lake, table, "*", "*.parquet")):
            continue
        sql = s["relation"]["sql"].replace("${LAKE}", lake)
        rel = con.sql(sql)
        rows = rel.fetchall()
        ids = [r[rel.columns.index("event_id")] for r in rows]
        out[table] = {
            "columns": [[n, str(t)] for n, t in zip(rel.columns, rel.types)],
            "rows": len(rows),
            "distinct_event_ids": len(set(ids)),
        }
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--lake")
    a = ap.parse_args()
    sources = [read_tds(p) for p in sorted(glob.glob(os.path.join(a.root, "dashboards/tableau/*.tds")))]
    ddl = [read_ddl(p) for p in sorted(glob.glob(os.path.join(a.root, "sql/athena/*.sql")))]
    result = {"tableau": sources, "athena": ddl}
    if a.lake:
        result["duckdb"] = run_sql(sources, a.lake)
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
