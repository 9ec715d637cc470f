//! The raw days' small files, held in memory: the rows of every file of at most
//! [`HOLD_BYTES`] (the writers' files of a day not compacted yet: `write_durable` makes
//! about three per processed image) live in a table `held_{table}` that a refresh changes
//! by the files that came and went, rather than in the views' file lists. DuckDB pays a
//! fixed cost for every file a query scans (0.3 ms here: 45 s over the 150 000 files of
//! 50 000 processed images), so a day of small files made every report time out until the
//! lifecycle's compaction; held, each file is read once, when it arrives. The rows keep
//! the `filename` the views' scan gives them, so the views' order of copies is unchanged.
//! Bounded: files of at most [`HOLD_BYTES`] are held, smallest first, up to
//! [`HOLD_TOTAL_BYTES`] of Parquet a table; the rest are scanned as before.

use imagelake_core::lake::schema::schema;
use imagelake_core::lake::views;
use imagelake_core::lake::Table;
use std::collections::{BTreeMap, BTreeSet};

/// A file of at most this many bytes is held: a writer's file of a few facts is about 4 KB,
/// nearly all of it Parquet's fixed overhead, which is what makes a scan of many of them
/// slow; a file of thousands of rows is scanned as cheaply as it is loaded.
pub const HOLD_BYTES: u64 = 64 << 10;

/// At most this many bytes of Parquet held per table: an hour of 1 M processed images a
/// day is 42 000 files of about 4 KB a table (160 MB).
pub const HOLD_TOTAL_BYTES: u64 = 256 << 20;

/// The held rows of `table`.
pub fn name(table: Table) -> String {
    format!("held_{}", table.name())
}

/// Which of these files (quoted paths, with their sizes) are held, and which are scanned.
pub fn split(files: Vec<(String, u64)>) -> (BTreeSet<String>, Vec<String>) {
    let mut by_size: Vec<(u64, String)> = files.into_iter().map(|(f, s)| (s, f)).collect();
    by_size.sort();
    let (mut held, mut scanned, mut total) = (BTreeSet::new(), Vec::new(), 0u64);
    for (size, file) in by_size {
        if size <= HOLD_BYTES && total + size <= HOLD_TOTAL_BYTES {
            total += size;
            held.insert(file);
        } else {
            scanned.push(file);
        }
    }
    scanned.sort();
    (held, scanned)
}

/// The empty held tables of these tables: the views' columns and `filename`.
pub fn create_sql(tables: &[Table]) -> String {
    tables
        .iter()
        .map(|t| {
            format!("{};\nALTER TABLE {} ADD COLUMN filename VARCHAR;\n", views::empty_table_sql_named(*t, &name(*t)), name(*t))
        })
        .collect()
}

/// The held table's columns of a scan: a file of a newer writer may have more (read as the
/// views read them once it is compacted), one of an older writer fewer (NULL).
fn columns(table: Table) -> String {
    let names: Vec<String> =
        schema(table).fields().iter().map(|f| format!("'{}'", f.name())).chain(["'dt'".into(), "'filename'".into()]).collect();
    format!("COLUMNS(lambda c: list_contains([{}], c))", names.join(", "))
}

/// The files whose rows are in the held tables now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    pub files: BTreeMap<Table, BTreeSet<String>>,
}

impl Held {
    /// The statements that bring the held tables from `self` to `want`, and the state after
    /// them. `scan(table, files)` is the views' scan of `table` over these quoted files. A
    /// table that loses more files than it keeps (a compaction merged them) is dropped and
    /// made anew with what it keeps, so the statement never lists the many files that left.
    pub fn update(&self, want: &BTreeMap<Table, BTreeSet<String>>, scan: impl Fn(Table, &[String]) -> String) -> (String, Held) {
        let mut sql = String::new();
        let empty = BTreeSet::new();
        let tables: BTreeSet<Table> = self.files.keys().chain(want.keys()).copied().collect();
        for t in tables {
            let (have, want) = (self.files.get(&t).unwrap_or(&empty), want.get(&t).unwrap_or(&empty));
            let kept = have.intersection(want).count();
            let removed: Vec<&String> = have.difference(want).collect();
            let added: Vec<String> = if removed.len() > kept {
                // Made anew rather than emptied: DuckDB keeps deleted rows' memory until the
                // row groups go, and this is how an hour's merged files leave.
                sql.push_str(&format!("DROP TABLE {};\n{}", name(t), create_sql(&[t])));
                want.iter().cloned().collect()
            } else {
                if !removed.is_empty() {
                    let list: Vec<&str> = removed.iter().map(|f| f.as_str()).collect();
                    sql.push_str(&format!("DELETE FROM {} WHERE filename IN ({});\n", name(t), list.join(", ")));
                }
                want.difference(have).cloned().collect()
            };
            if !added.is_empty() {
                sql.push_str(&format!("INSERT INTO {} BY NAME SELECT {} FROM {};\n", name(t), columns(t), scan(t, &added)));
            }
        }
        let after = Held { files: want.iter().filter(|(_, f)| !f.is_empty()).map(|(t, f)| (*t, f.clone())).collect() };
        (sql, after)
    }

    /// A digest of `table`'s held files, which changes whenever they do.
    pub fn digest(files: &BTreeSet<String>) -> String {
        imagelake_core::lake::agg::fingerprint(files.iter().map(|f| (f.as_str(), 0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_files_are_held_smallest_first_within_the_bound() {
        let f = |n: &str, s: u64| (format!("'/lake/{n}'"), s);
        let (held, scanned) = split(vec![f("big", HOLD_BYTES + 1), f("a", 10), f("b", HOLD_BYTES)]);
        assert_eq!(held.into_iter().collect::<Vec<_>>(), ["'/lake/a'", "'/lake/b'"]);
        assert_eq!(scanned, ["'/lake/big'"]);
        // Past the bound, the rest are scanned.
        let fit = (HOLD_TOTAL_BYTES / HOLD_BYTES) as usize;
        let many: Vec<(String, u64)> = (0..fit + 3).map(|i| f(&format!("m{i:05}"), HOLD_BYTES)).collect();
        let (held, scanned) = split(many);
        assert_eq!((held.len(), scanned.len()), (fit, 3));
        assert!(held.contains("'/lake/m00000'") && scanned.contains(&format!("'/lake/m{:05}'", fit + 2)));
    }

    #[test]
    fn an_update_loads_what_came_and_deletes_what_left() {
        let set = |names: &[&str]| -> BTreeSet<String> { names.iter().map(|n| format!("'/l/{n}'")).collect() };
        let scan = |_: Table, f: &[String]| format!("scan[{}]", f.join(","));
        let want = BTreeMap::from([(Table::Jobs, set(&["a", "b", "c"]))]);
        let (sql, held) = Held::default().update(&want, scan);
        let insert = |files: &str| format!("INSERT INTO held_jobs BY NAME SELECT {} FROM scan[{files}];\n", columns(Table::Jobs));
        assert_eq!(sql, insert("'/l/a','/l/b','/l/c'"));
        let (sql, held) = held.update(&BTreeMap::from([(Table::Jobs, set(&["a", "b", "d"]))]), scan);
        assert_eq!(sql, format!("DELETE FROM held_jobs WHERE filename IN ('/l/c');\n{}", insert("'/l/d'")));
        // Most of them merged away: made anew with the one kept and the new one.
        let (sql, held) = held.update(&BTreeMap::from([(Table::Jobs, set(&["d", "e"]))]), scan);
        let anew = format!("DROP TABLE held_jobs;\n{}", create_sql(&[Table::Jobs]));
        assert_eq!(sql, format!("{anew}{}", insert("'/l/d','/l/e'")));
        let (sql, held) = held.update(&BTreeMap::new(), scan);
        assert_eq!((sql, held), (anew, Held::default()));
    }
}
