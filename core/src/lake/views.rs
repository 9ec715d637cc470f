//! The lake's SQL for DuckDB, embedded at build time: `sql/views.sql` (the one definition
//! of the views, shared with the duckdb command line) split into statements, each
//! recognised as the view of a lake table or kept as an extra statement, and
//! `sql/aggregates.sql` (the daily aggregates).
//!
//! A table with no files yet cannot have a `read_parquet` view (DuckDB refuses an empty
//! glob), so the service creates an empty table of the table's schema in its place, and
//! swaps in the view as soon as a file appears: an empty lake answers zeros.

use super::{schema::schema, Table};
use arrow::datatypes::{DataType, TimeUnit};

/// The embedded view definitions.
pub const VIEWS_SQL: &str = include_str!("../../../sql/views.sql");

/// The daily aggregates (`super::aggregate`).
pub const AGGREGATES_SQL: &str = include_str!("../../../sql/aggregates.sql");

#[derive(Debug, Clone)]
pub struct ViewStatement {
    /// The lake table this statement defines a view of, if it does.
    pub table: Option<Table>,
    /// With `${LAKE}` still in it.
    pub sql: String,
}

/// The statements of `views`, in order.
pub fn statements(views: &str) -> Vec<ViewStatement> {
    split(views).into_iter().map(classify).collect()
}

/// `sql` with the lake root in place of `${LAKE}` (quoted for a string literal).
pub fn with_lake(sql: &str, lake_root: &str) -> String {
    sql.replace("${LAKE}", &lake_root.replace('\'', "''"))
}

fn classify(sql: String) -> ViewStatement {
    // Tokens of the statement, without comments, lower-cased, quotes and schema dropped.
    let code = strip_comments(&sql).to_ascii_lowercase();
    let words: Vec<&str> = code.split_whitespace().collect();
    let mut table = None;
    if words.first() == Some(&"create") {
        if let Some(pos) = words.iter().position(|w| *w == "view") {
            let mut i = pos + 1;
            if words.get(i) == Some(&"if") {
                i += 3; // if not exists
            }
            if let Some(name) = words.get(i) {
                let name = name.trim_end_matches(['(', ';']);
                let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
                table = Table::ALL.into_iter().find(|t| t.name() == name);
            }
        }
    }
    ViewStatement { table, sql }
}

pub fn strip_comments(sql: &str) -> String {
    sql.lines().map(|l| l.split("--").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Splits a script at `;` outside strings, quoted identifiers and comments.
pub fn split(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                cur.push(c);
                for d in chars.by_ref() {
                    cur.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        cur.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            ';' => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The text of `sql` from `open` (which ends with an opening parenthesis) to its closing
/// parenthesis; `None` if `sql` has no such call.
pub fn call<'a>(sql: &'a str, open: &str) -> Option<&'a str> {
    let start = sql.find(open)?;
    let mut depth = 0usize;
    for (i, c) in sql[start + open.len() - 1..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&sql[start..start + open.len() + i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The name under which `sql/aggregates.sql` sees every row of `table`'s files, copies
/// included (`{table}_all`).
pub fn every_copy_name(table: Table) -> String {
    format!("{}_all", table.name())
}

/// The view [`every_copy_name`] of `table` from its statement in views.sql (`view_sql`):
/// the same scan without the deduplication. `None` if the statement has no scan.
pub fn every_copy_sql(view_sql: &str, table: Table) -> Option<String> {
    let scan = call(view_sql, "read_parquet(")?;
    Some(format!("CREATE OR REPLACE VIEW {} AS SELECT * EXCLUDE (filename) FROM {scan}", every_copy_name(table)))
}

/// `CREATE TABLE` of an empty table with `table`'s columns, standing in for its view.
pub fn empty_table_sql(table: Table) -> String {
    empty_table_sql_named(table, table.name())
}

/// The same, under another name.
pub fn empty_table_sql_named(table: Table, name: &str) -> String {
    let cols: Vec<String> = schema(table)
        .fields()
        .iter()
        .map(|f| {
            let ty = match f.data_type() {
                DataType::Utf8 => "VARCHAR",
                DataType::Int32 => "INTEGER",
                DataType::Int64 => "BIGINT",
                DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "TIMESTAMPTZ",
                DataType::Timestamp(_, _) => "TIMESTAMP",
                DataType::Boolean => "BOOLEAN",
                DataType::Float64 => "DOUBLE",
                other => unreachable!("lake column type {other:?} has no DuckDB mapping here"),
            };
            format!("\"{}\" {ty}", f.name())
        })
        .collect();
    format!("CREATE TABLE {name} ({}, dt DATE)", cols.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_recognises_views() {
        let s = statements(
            "-- a; comment\nCREATE OR REPLACE VIEW uploads AS SELECT 'a;b' FROM x;\n/* ; */ create view if not exists main.\"jobs\" as select 1;\nCREATE MACRO m() AS 1;",
        );
        assert_eq!(s[0].table, Some(Table::Uploads));
        assert!(s[0].sql.contains("'a;b'"));
        assert_eq!(s[1].table, Some(Table::Jobs));
        assert_eq!(s[2].table, None);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn the_shared_views_define_every_lake_table() {
        let s = statements(VIEWS_SQL);
        for t in Table::ALL {
            assert!(s.iter().any(|v| v.table == Some(t)), "sql/views.sql has no view of {}", t.name());
        }
    }

    #[test]
    fn lake_root_is_quoted() {
        assert_eq!(with_lake("'${LAKE}/a'", "/tmp/o'k"), "'/tmp/o''k/a'");
    }
}
