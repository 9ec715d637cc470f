//! What stands under each name DuckDB's reports read, from a listing of the lake: the
//! views of the fact tables (`views.sql`), the raw facts of the days not aggregated
//! (`recent_*`, with the facts among them that have copies: `recent_copies_*`) and the days
//! whose aggregates are current (`agg_days`). Pure: the engine
//! creates what changed. The aggregates themselves are tables in memory (memory.rs), and a
//! query's edge days are views of its own connection (edges.rs).

use crate::held;
use chrono::NaiveDate;
use imagelake_core::lake::agg::{self, Agg, Listing, INPUTS};
use imagelake_core::lake::layout;
use imagelake_core::lake::views::{self, ViewStatement};
use imagelake_core::lake::Table;
use std::collections::{BTreeMap, BTreeSet};

/// The schema that holds the aggregates' empty stand-ins.
pub const EMPTY_AGG_SCHEMA: &str = "agg_empty";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    View,
    Table,
}

/// One object: its name, kind and `CREATE` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub name: String,
    pub kind: Kind,
    pub sql: String,
}

/// The quoted path of aggregate `a`'s file of `day` under `lake_root`.
pub fn agg_file(lake_root: &str, a: Agg, day: NaiveDate, fingerprint: &str) -> String {
    quote(lake_root, &a.key(day, fingerprint))
}

/// `read_parquet` over these quoted paths, with the lake's `dt` partition as a DATE.
pub fn read_parquet(files: &[String]) -> String {
    format!("read_parquet([{}], hive_partitioning = true, hive_types = {{'dt': DATE}})", files.join(", "))
}

/// The quoted path of the lake file with this key under `lake_root`.
pub fn quote(lake_root: &str, key: &str) -> String {
    format!("'{}'", format!("{lake_root}/{}", layout::relative(key)).replace('\'', "''"))
}

/// What stands under each name for a listing, the days that come from the aggregates (with
/// their fingerprints) and the raw days' files held in memory (held.rs).
#[derive(Debug, Clone)]
pub struct Desired {
    pub objects: Vec<Object>,
    pub current: BTreeMap<NaiveDate, String>,
    pub held: BTreeMap<Table, BTreeSet<String>>,
}

/// The objects for `listing`. Without `aggregates`, every day is read raw.
pub fn desired(listing: &Listing, lake_root: &str, statements: &[ViewStatement], aggregates: bool) -> Desired {
    let days = agg::days(listing);
    let current: BTreeMap<NaiveDate, String> = if aggregates {
        days.into_iter().filter(|(_, d)| d.current).map(|(day, d)| (day, d.fingerprint)).collect()
    } else {
        BTreeMap::new()
    };
    let mut out = Vec::new();
    let mut held_files = BTreeMap::new();
    for table in Table::ALL {
        let files: Vec<(&str, NaiveDate, u64)> = listing
            .iter()
            .filter_map(|(k, size)| layout::parse(k).filter(|p| p.dir == table.name()).map(|p| (k.as_str(), p.day, *size)))
            .collect();
        let st = statements.iter().find(|s| s.table == Some(table)).expect("views.sql has a view of every table");
        out.push(if files.is_empty() {
            Object { name: table.name().into(), kind: Kind::Table, sql: views::empty_table_sql(table) }
        } else {
            Object { name: table.name().into(), kind: Kind::View, sql: views::with_lake(&st.sql, lake_root) }
        });
        if !INPUTS.contains(&table) {
            continue;
        }
        let name = format!("recent_{}", table.name());
        let (held, recent) = held::split(
            files.iter().filter(|(_, d, _)| !current.contains_key(d)).map(|(k, _, size)| (quote(lake_root, k), *size)).collect(),
        );
        let held_table = (!held.is_empty()).then(|| held::name(table));
        // The facts with copies, counted once per listing rather than by every query: those
        // of the scanned files when these change, and those of the held rows (among them, or
        // in a scanned file: a probe of the scanned files' keys against the held ones, not a
        // count of every key) when the held files change (their digest is in the statement).
        let copies = ((!recent.is_empty() || held_table.is_some()) && recent.len() <= ONE_SCAN_FILES).then(|| {
            let keys = (!recent.is_empty()).then(|| {
                format!(
                    "SELECT dt, event_id FROM read_parquet([{}], hive_partitioning = true, hive_types = {{'dt': DATE}}, \
                     union_by_name = true)",
                    recent.join(", ")
                )
            });
            let mut lists = Vec::new();
            if let Some(keys) = &keys {
                let copies = format!("recent_copies_{}", table.name());
                let sql = format!("CREATE TABLE {copies} AS {keys} GROUP BY ALL HAVING count(*) > 1");
                out.push(Object { name: copies.clone(), kind: Kind::Table, sql });
                lists.push(format!("SELECT dt, event_id FROM {copies}"));
            }
            if let Some(h) = &held_table {
                let copies = format!("held_copies_{}", table.name());
                let mut sql = format!("CREATE TABLE {copies} AS SELECT dt, event_id FROM {h} GROUP BY ALL HAVING count(*) > 1");
                if let Some(keys) = &keys {
                    sql.push_str(&format!(" UNION SELECT dt, event_id FROM ({keys}) s SEMI JOIN {h} USING (dt, event_id)"));
                }
                sql.push_str(&format!(" /* held: {} */", held::Held::digest(&held)));
                out.push(Object { name: copies.clone(), kind: Kind::Table, sql });
                lists.push(format!("SELECT dt, event_id FROM {copies}"));
            }
            lists.join(" UNION ALL ")
        });
        out.push(match view_over(&st.sql, table, &name, &recent, false, copies.as_deref(), held_table.as_deref()) {
            Some(sql) => Object { name, kind: Kind::View, sql },
            None => Object { name: name.clone(), kind: Kind::Table, sql: views::empty_table_sql_named(table, &name) },
        });
        held_files.insert(table, held);
    }
    let days_sql = if current.is_empty() {
        "CREATE TABLE agg_days (day DATE)".to_string()
    } else {
        let values: Vec<String> = current.keys().map(|d| format!("(DATE '{d}')")).collect();
        format!("CREATE TABLE agg_days AS SELECT * FROM (VALUES {}) v(day)", values.join(", "))
    };
    out.push(Object { name: "agg_days".into(), kind: Kind::Table, sql: days_sql });
    Desired { objects: out, current, held: held_files }
}

/// The view of `table` over these files only (`temp`: a view of the connection that
/// creates it); `None` without files. It keeps the rows `views.sql`'s view keeps (one per
/// `(dt, event_id)`: the first by its window's order), its scan and window taken from that
/// statement, but sorts the copies only: the facts whose `(dt, event_id)` occurs once pass
/// as they are, and the window runs over the others. Copies are rare, and the window over
/// every row was most of the cost of reading raw facts (583 ms against 219 ms over two
/// days of 300 M-row-lake variants). Finding the copies is a hash aggregation over every
/// row's `(dt, event_id)`: `copies` is a query of the `(dt, event_id)` that have copies
/// when they are known already (the aggregated days': `agg_copies`), and `None` counts
/// them. That form names the files three times (twice with `copies`), and DuckDB plans
/// each file each time; over more than [`ONE_SCAN_FILES`] files (a day of small files not
/// yet compacted, whose rows are few for their number) the view scans them once, with the
/// window over every row, as `views.sql` does. `held`: a table of more rows of `table`
/// (held.rs), read with the files.
pub fn view_over(
    view_sql: &str,
    table: Table,
    name: &str,
    files: &[String],
    temp: bool,
    copies: Option<&str>,
    held: Option<&str>,
) -> Option<String> {
    if files.is_empty() && held.is_none() {
        return None;
    }
    let glob = format!("'${{LAKE}}/{}/*/*.parquet'", table.name());
    let unexpected = || panic!("views.sql's view of {} has an unexpected form", table.name());
    let scan = views::call(view_sql, "read_parquet(").unwrap_or_else(unexpected);
    let window = views::call(view_sql, "QUALIFY row_number() OVER (").unwrap_or_else(unexpected);
    if !scan.contains(&glob) || !window.contains("PARTITION BY dt, event_id ORDER BY") || !view_sql.contains("EXCLUDE (filename)")
    {
        unexpected();
    }
    let over = scan_over(view_sql, table, files);
    let scan = match (files.is_empty(), held) {
        (true, Some(h)) => h.to_string(),
        (false, Some(h)) => format!("(SELECT * FROM {over} UNION ALL BY NAME SELECT * FROM {h})"),
        _ => over,
    };
    let temp = if temp { "TEMP " } else { "" };
    if files.len() > ONE_SCAN_FILES {
        return Some(format!("CREATE OR REPLACE {temp}VIEW {name} AS SELECT * EXCLUDE (filename) FROM {scan} {window} = 1"));
    }
    let copies = copies.map_or("SELECT dt, event_id FROM facts GROUP BY ALL HAVING count(*) > 1".to_string(), str::to_string);
    Some(format!(
        "CREATE OR REPLACE {temp}VIEW {name} AS
WITH facts AS NOT MATERIALIZED (SELECT * FROM {scan}),
     copies AS ({copies})
SELECT * EXCLUDE (filename) FROM facts ANTI JOIN copies USING (dt, event_id)
UNION ALL BY NAME
SELECT * EXCLUDE (filename) FROM (SELECT * FROM facts SEMI JOIN copies USING (dt, event_id) {window} = 1)"
    ))
}

/// `views.sql`'s scan of `table` (its `read_parquet(..)`, with `filename`) over these quoted
/// files: what the held tables are filled from.
pub fn scan_over(view_sql: &str, table: Table, files: &[String]) -> String {
    let scan =
        views::call(view_sql, "read_parquet(").unwrap_or_else(|| panic!("views.sql's view of {} has no scan", table.name()));
    scan.replace(&format!("'${{LAKE}}/{}/*/*.parquet'", table.name()), &format!("[{}]", files.join(", ")))
}

/// Over more files than this, [`view_over`] scans them once.
pub const ONE_SCAN_FILES: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_of<'a>(objs: &'a [Object], name: &str) -> &'a Object {
        objs.iter().find(|o| o.name == name).unwrap()
    }

    /// The derived view keeps the rows views.sql's keeps, copies in one file or two, in one
    /// day or two.
    #[test]
    fn a_view_over_files_keeps_the_rows_of_the_full_view() {
        let tmp = tempfile::tempdir().unwrap();
        let conn = duckdb::Connection::open_in_memory().unwrap();
        let root = tmp.path().display().to_string();
        let rows = |day: &str, file: &str, values: &str| {
            let dir = format!("{root}/uploads/dt={day}");
            std::fs::create_dir_all(&dir).unwrap();
            conn.execute_batch(&format!(
                "COPY (SELECT event_id, 'i' || event_id AS image_id, 'c' AS customer_id, uploaded_at::TIMESTAMPTZ AS uploaded_at,
                        'image/png' AS content_type, 'png' AS format, bytes::BIGINT AS bytes, NULL::INTEGER AS width,
                        NULL::INTEGER AS height, 's' AS sha256
                      FROM (VALUES {values}) v(event_id, uploaded_at, bytes))
                 TO '{dir}/{file}' (FORMAT parquet)"
            ))
            .unwrap();
        };
        rows(
            "2026-11-01",
            "a.parquet",
            "('e1', '2026-11-01 10:00:00+00', 1), ('e2', '2026-11-01 11:00:00+00', 2), ('e2', '2026-11-01 09:00:00+00', 3)",
        );
        rows("2026-11-01", "b.parquet", "('e1', '2026-11-01 08:00:00+00', 4), ('e3', '2026-11-01 12:00:00+00', 5)");
        rows("2026-11-02", "c.parquet", "('e1', '2026-11-02 10:00:00+00', 6), ('e4', '2026-11-02 10:00:00+00', 7)");
        let st = views::statements(views::VIEWS_SQL);
        let view = &st.iter().find(|s| s.table == Some(Table::Uploads)).unwrap().sql;
        conn.execute_batch(&views::with_lake(view, &root)).unwrap();
        let files: Vec<String> =
            ["2026-11-01/a", "2026-11-01/b", "2026-11-02/c"].iter().map(|f| format!("'{root}/uploads/dt={f}.parquet'")).collect();
        conn.execute_batch(&view_over(view, Table::Uploads, "derived", &files, false, None, None).unwrap()).unwrap();
        // Over many files, the one-scan form: the same three files named over and over, which
        // keeps the same rows however many copies it sees.
        let many: Vec<String> = files.iter().cycle().take(ONE_SCAN_FILES + 1).cloned().collect();
        let one_scan = view_over(view, Table::Uploads, "one_scan", &many, false, None, None).unwrap();
        assert!(!one_scan.contains("ANTI JOIN") && one_scan.matches("read_parquet").count() == 1, "{one_scan}");
        conn.execute_batch(&one_scan).unwrap();
        let read = |name: &str| -> Vec<(String, String, i64)> {
            let mut stmt = conn.prepare(&format!("SELECT dt::VARCHAR, event_id, bytes FROM {name} ORDER BY ALL")).unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
        };
        let expected = [
            ("2026-11-01", "e1", 4),
            ("2026-11-01", "e2", 3),
            ("2026-11-01", "e3", 5),
            ("2026-11-02", "e1", 6),
            ("2026-11-02", "e4", 7),
        ]
        .map(|(d, e, b)| (d.to_string(), e.to_string(), b));
        assert_eq!(read("uploads"), expected);
        assert_eq!(read("derived"), expected);
        assert_eq!(read("one_scan"), expected);
        // With the copies listed (as the aggregates list them), the same rows; the list is
        // what decides: a fact it leaves out keeps every copy.
        let listed = "SELECT dt, event_id FROM (VALUES (DATE '2026-11-01', 'e1'), (DATE '2026-11-01', 'e2')) c(dt, event_id)";
        let derived = view_over(view, Table::Uploads, "listed", &files, false, Some(listed), None).unwrap();
        assert!(!derived.contains("GROUP BY"), "{derived}");
        conn.execute_batch(&derived).unwrap();
        assert_eq!(read("listed"), expected);
        let partial = listed.replace(", (DATE '2026-11-01', 'e2')", "");
        conn.execute_batch(&view_over(view, Table::Uploads, "partial", &files, false, Some(&partial), None).unwrap()).unwrap();
        assert_eq!(read("partial").len(), expected.len() + 1, "e2's two copies both pass");
        // The service's objects over the same files: the copies counted into
        // recent_copies_uploads once, the view reading that table: the same rows.
        let listing =
            |names: &[&str], size: u64| -> Listing { names.iter().map(|f| (format!("uploads/dt={f}.parquet"), size)).collect() };
        let all = ["2026-11-01/a", "2026-11-01/b", "2026-11-02/c"];
        let objs = desired(&listing(&all, held::HOLD_BYTES + 1), &root, &st, true).objects;
        let lists = ["recent_copies_uploads", "held_copies_uploads"];
        let create = |objs: &[Object]| {
            conn.execute_batch("DROP VIEW IF EXISTS recent_uploads;").unwrap();
            for o in objs.iter().filter(|o| lists.contains(&o.name.as_str()) || o.name == "recent_uploads") {
                conn.execute_batch(&format!("DROP TABLE IF EXISTS {}; {}", o.name, o.sql)).unwrap();
            }
            for l in lists.iter().filter(|l| objs.iter().all(|o| o.name != **l)) {
                conn.execute_batch(&format!("DROP TABLE IF EXISTS {l}; CREATE TABLE {l} (dt DATE, event_id VARCHAR)")).unwrap();
            }
        };
        create(&objs);
        let copies = || -> i64 {
            let sql = "SELECT count(*) FROM (SELECT * FROM recent_copies_uploads UNION SELECT * FROM held_copies_uploads)";
            conn.query_row(sql, [], |r| r.get(0)).unwrap()
        };
        assert_eq!(copies(), 2, "(11-01, e1) and (11-01, e2)");
        assert_eq!(read("recent_uploads"), expected);
        // The same files small: held in memory, the view reads no file, the same rows.
        conn.execute_batch(&held::create_sql(&[Table::Uploads])).unwrap();
        let load = |from: &held::Held, d: &Desired| -> (String, held::Held) {
            let (sql, after) = from.update(&d.held, |t, f| scan_over(view, t, f));
            conn.execute_batch(&sql).unwrap();
            create(&d.objects);
            (sql, after)
        };
        let small = desired(&listing(&all, 1), &root, &st, true);
        assert!(!sql_of(&small.objects, "recent_uploads").sql.contains("read_parquet"), "{:?}", small.objects);
        let (_, now) = load(&held::Held::default(), &small);
        assert_eq!((copies(), read("recent_uploads")), (2, expected.to_vec()));
        // c.parquet leaves (merged by a compaction): its rows leave the held table, by name.
        let fewer = desired(&listing(&all[..2], 1), &root, &st, true);
        assert_ne!(sql_of(&fewer.objects, "held_copies_uploads"), sql_of(&small.objects, "held_copies_uploads"));
        assert!(fewer.objects.iter().all(|o| o.name != "recent_copies_uploads"), "no scanned file, no count of one");
        let (sql, now) = load(&now, &fewer);
        assert!(sql.contains("DELETE FROM held_uploads WHERE filename IN") && !sql.contains("INSERT"), "{sql}");
        assert_eq!((copies(), read("recent_uploads")), (2, expected[..3].to_vec()));
        // c.parquet back as a big file, scanned, beside the held a and b: the same rows.
        let mut mixed = listing(&all[..2], 1);
        mixed.extend(listing(&all[2..], held::HOLD_BYTES + 1));
        let mixed = desired(&mixed, &root, &st, true);
        let (sql, _) = load(&now, &mixed);
        assert!(sql.is_empty(), "nothing to load: {sql}");
        let recent = &sql_of(&mixed.objects, "recent_uploads").sql;
        assert!(
            recent.contains("2026-11-02/c.parquet") && recent.contains("UNION ALL BY NAME SELECT * FROM held_uploads"),
            "{recent}"
        );
        assert_eq!((copies(), read("recent_uploads")), (2, expected.to_vec()));
        // A held copy of a scanned file's fact (e4 again, later): listed by the probe of the
        // scanned keys, so the earlier copy alone passes.
        rows("2026-11-02", "e.parquet", "('e4', '2026-11-02 12:00:00+00', 8)");
        let mut cross = listing(&all[..2], 1);
        cross.extend(listing(&all[2..], held::HOLD_BYTES + 1));
        cross.extend(listing(&["2026-11-02/e"], 1));
        let cross = desired(&cross, &root, &st, true);
        assert!(sql_of(&cross.objects, "held_copies_uploads").sql.contains("SEMI JOIN held_uploads"));
        let (_, now) = load(&now, &cross);
        assert_eq!((copies(), read("recent_uploads")), (3, expected.to_vec()));
        // A file of a newer writer (a column more) that lacks a column (an older writer's):
        // held with the columns the table has.
        conn.execute_batch(&format!(
            "COPY (SELECT 'e9' AS event_id, 'i9' AS image_id, 'c' AS customer_id, TIMESTAMPTZ '2026-11-02 11:00:00+00' AS uploaded_at,
                    'image/png' AS content_type, 'png' AS format, 9::BIGINT AS bytes, NULL::INTEGER AS width, 's' AS sha256,
                    'x' AS future)
             TO '{root}/uploads/dt=2026-11-02/d.parquet' (FORMAT parquet)"
        ))
        .unwrap();
        let mut newer = listing(&all[..2], 1);
        newer.extend(listing(&all[2..], held::HOLD_BYTES + 1));
        newer.extend(listing(&["2026-11-02/d"], 1));
        load(&now, &desired(&newer, &root, &st, true));
        let mut with_d = expected.to_vec();
        with_d.push(("2026-11-02".into(), "e9".into(), 9));
        assert_eq!(read("recent_uploads"), with_d);
    }

    #[test]
    fn current_days_come_from_the_aggregates_and_the_rest_raw() {
        let st = views::statements(views::VIEWS_SQL);
        let mut l: Listing = [
            ("uploads/dt=2026-11-27/a.parquet".to_string(), 10 << 20),
            ("uploads/dt=2026-11-28/b.parquet".to_string(), 10 << 20),
            ("jobs/dt=2026-11-28/j.parquet".to_string(), 10 << 20),
        ]
        .into();
        let Desired { objects: objs, current: n, .. } = desired(&l, "/lake", &st, true);
        assert_eq!(n.len(), 0);
        assert_eq!(sql_of(&objs, "agg_days").sql, "CREATE TABLE agg_days (day DATE)");
        assert!(sql_of(&objs, "recent_uploads").sql.contains("'/lake/uploads/dt=2026-11-27/a.parquet'"));
        assert_eq!(sql_of(&objs, "recent_posts").kind, Kind::Table);
        assert!(objs.iter().all(|o| !o.name.starts_with("agg_") || o.name == "agg_days"), "the aggregates are in memory");
        // 2026-11-27 aggregated: its uploads leave recent_uploads, its aggregates come in.
        let d = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let fp = agg::days(&l)[&d].fingerprint.clone();
        for a in Agg::ALL {
            l.insert(layout::relative(&a.key(d, &fp)).to_string(), 1);
        }
        let Desired { objects: objs, current: n, .. } = desired(&l, "/lake", &st, true);
        assert_eq!(n.len(), 1);
        let recent = &sql_of(&objs, "recent_uploads").sql;
        assert!(!recent.contains("2026-11-27") && recent.contains("2026-11-28/b.parquet"), "{recent}");
        assert!(recent.contains("VIEW recent_uploads AS") && recent.contains("QUALIFY"), "{recent}");
        assert!(recent.contains("ORDER BY uploaded_at, filename) = 1"), "the view's own order: {recent}");
        assert!(recent.contains("copies AS (SELECT dt, event_id FROM recent_copies_uploads)"), "{recent}");
        let copies = sql_of(&objs, "recent_copies_uploads");
        assert_eq!(copies.kind, Kind::Table);
        assert!(copies.sql.contains("2026-11-28/b.parquet") && !copies.sql.contains("2026-11-27"), "{}", copies.sql);
        let names: Vec<&str> = objs.iter().map(|o| o.name.as_str()).collect();
        let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert!(at("recent_copies_uploads") < at("recent_uploads"), "the table before the view that reads it");
        assert!(!names.contains(&"recent_copies_posts"), "no raw posts, no table");
        assert_eq!(n.get(&d), Some(&fp));
        assert!(sql_of(&objs, "agg_days").sql.contains("DATE '2026-11-27'"));
        assert!(sql_of(&objs, "uploads").sql.contains("/lake/uploads/*/*.parquet"), "the full view reads every day");
        // Without aggregates, every day is raw.
        let Desired { objects: objs, current: n, .. } = desired(&l, "/lake", &st, false);
        assert_eq!(n.len(), 0);
        assert!(sql_of(&objs, "recent_uploads").sql.contains("2026-11-27"));
    }
}
