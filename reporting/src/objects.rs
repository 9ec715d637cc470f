//! What stands under each name DuckDB's reports read, from a listing of the lake: the
//! views of the fact tables (`views.sql`), the raw facts of the days not aggregated
//! (`recent_*`) and the days whose aggregates are current (`agg_days`). Pure: the engine
//! creates what changed. The aggregates themselves are tables in memory (memory.rs), and a
//! query's edge days are views of its own connection (edges.rs).

use chrono::NaiveDate;
use imagelake_core::lake::agg::{self, Agg, Listing, INPUTS};
use imagelake_core::lake::layout;
use imagelake_core::lake::views::{self, ViewStatement};
use imagelake_core::lake::Table;
use std::collections::BTreeMap;

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

/// The objects for `listing`, and the days that come from the aggregates (with their
/// fingerprints). Without `aggregates`, every day is read raw.
pub fn desired(
    listing: &Listing,
    lake_root: &str,
    statements: &[ViewStatement],
    aggregates: bool,
) -> (Vec<Object>, BTreeMap<NaiveDate, String>) {
    let days = agg::days(listing);
    let current: BTreeMap<NaiveDate, String> = if aggregates {
        days.into_iter().filter(|(_, d)| d.current).map(|(day, d)| (day, d.fingerprint)).collect()
    } else {
        BTreeMap::new()
    };
    let mut out = Vec::new();
    for table in Table::ALL {
        let files: Vec<(&str, NaiveDate)> = listing
            .keys()
            .filter_map(|k| layout::parse(k).filter(|p| p.dir == table.name()).map(|p| (k.as_str(), p.day)))
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
        let recent: Vec<String> =
            files.iter().filter(|(_, d)| !current.contains_key(d)).map(|(k, _)| quote(lake_root, k)).collect();
        out.push(match view_over(&st.sql, table, &name, &recent, false) {
            Some(sql) => Object { name, kind: Kind::View, sql },
            None => Object { name: name.clone(), kind: Kind::Table, sql: views::empty_table_sql_named(table, &name) },
        });
    }
    let days_sql = if current.is_empty() {
        "CREATE TABLE agg_days (day DATE)".to_string()
    } else {
        let values: Vec<String> = current.keys().map(|d| format!("(DATE '{d}')")).collect();
        format!("CREATE TABLE agg_days AS SELECT * FROM (VALUES {}) v(day)", values.join(", "))
    };
    out.push(Object { name: "agg_days".into(), kind: Kind::Table, sql: days_sql });
    (out, current)
}

/// The view of `table` over these files only (the statement of `views.sql` with its name
/// and glob replaced; `temp`: a view of the connection that creates it); `None` without
/// files.
pub fn view_over(view_sql: &str, table: Table, name: &str, files: &[String], temp: bool) -> Option<String> {
    if files.is_empty() {
        return None;
    }
    let glob = format!("'${{LAKE}}/{}/*/*.parquet'", table.name());
    let head = format!("VIEW {} AS", table.name());
    assert!(view_sql.contains(&glob) && view_sql.contains(&head), "views.sql's view of {} has an unexpected form", table.name());
    let new_head = format!("{}VIEW {name} AS", if temp { "TEMP " } else { "" });
    Some(view_sql.replacen(&head, &new_head, 1).replace(&glob, &format!("[{}]", files.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_of<'a>(objs: &'a [Object], name: &str) -> &'a Object {
        objs.iter().find(|o| o.name == name).unwrap()
    }

    #[test]
    fn current_days_come_from_the_aggregates_and_the_rest_raw() {
        let st = views::statements(views::VIEWS_SQL);
        let mut l: Listing = [
            ("uploads/dt=2026-11-27/a.parquet".to_string(), 10),
            ("uploads/dt=2026-11-28/b.parquet".to_string(), 10),
            ("jobs/dt=2026-11-28/j.parquet".to_string(), 10),
        ]
        .into();
        let (objs, n) = desired(&l, "/lake", &st, true);
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
        let (objs, n) = desired(&l, "/lake", &st, true);
        assert_eq!(n.len(), 1);
        let recent = &sql_of(&objs, "recent_uploads").sql;
        assert!(!recent.contains("2026-11-27") && recent.contains("2026-11-28/b.parquet"), "{recent}");
        assert!(recent.contains("VIEW recent_uploads AS") && recent.contains("QUALIFY"), "{recent}");
        assert_eq!(n.get(&d), Some(&fp));
        assert!(sql_of(&objs, "agg_days").sql.contains("DATE '2026-11-27'"));
        assert!(sql_of(&objs, "uploads").sql.contains("/lake/uploads/*/*.parquet"), "the full view reads every day");
        // Without aggregates, every day is raw.
        let (objs, n) = desired(&l, "/lake", &st, false);
        assert_eq!(n.len(), 0);
        assert!(sql_of(&objs, "recent_uploads").sql.contains("2026-11-27"));
    }
}
