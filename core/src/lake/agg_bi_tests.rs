//! The BI files of the daily aggregates against the tables `sql/aggregates.sql` makes
//! (through [`crate::lake::aggregate::create_empty`], so the truth is DuckDB's own
//! `DESCRIBE`, not a list kept by hand):
//!
//! - `sql/athena/aggregates.sql` declares every table of [`Agg::ALL`], in that order, each
//!   with exactly its columns (names in order, Hive types), partitioned by `dt string` and
//!   located at `lake/{name}/`;
//! - every `dashboards/tableau/imagelake_agg_*.tds` lists exactly its table's columns and
//!   then `dt`, in its metadata records and its `<column>`s (Tableau types), and its Custom
//!   SQL, run by DuckDB over an empty Parquet file of the table in a lake laid out like the
//!   real one, answers exactly those columns (times as UTC `TIMESTAMP`, `dt` a `DATE`).
//!
//! Wired in `mod.rs` with `#[cfg(test)] mod agg_bi_tests;`.

#[cfg(test)]
mod bi_tests {
    use crate::lake::agg::Agg;
    use crate::lake::aggregate::create_empty;
    use duckdb::Connection;
    use std::path::PathBuf;

    const ATHENA: &str = include_str!("../../../sql/athena/aggregates.sql");

    /// The Tableau data sources of the aggregates: the table, its file, the file's text.
    const TABLEAU: [(Agg, &str, &str); 8] = [
        (Agg::Uploads, "imagelake_agg_uploads.tds", include_str!("../../../dashboards/tableau/imagelake_agg_uploads.tds")),
        (Agg::Jobs, "imagelake_agg_jobs.tds", include_str!("../../../dashboards/tableau/imagelake_agg_jobs.tds")),
        (Agg::JobMs, "imagelake_agg_job_ms.tds", include_str!("../../../dashboards/tableau/imagelake_agg_job_ms.tds")),
        (
            Agg::AttemptMsAll,
            "imagelake_agg_attempt_ms_all.tds",
            include_str!("../../../dashboards/tableau/imagelake_agg_attempt_ms_all.tds"),
        ),
        (Agg::Variants, "imagelake_agg_variants.tds", include_str!("../../../dashboards/tableau/imagelake_agg_variants.tds")),
        (Agg::Deletions, "imagelake_agg_deletions.tds", include_str!("../../../dashboards/tableau/imagelake_agg_deletions.tds")),
        (Agg::Posts, "imagelake_agg_posts.tds", include_str!("../../../dashboards/tableau/imagelake_agg_posts.tds")),
        (Agg::Comments, "imagelake_agg_comments.tds", include_str!("../../../dashboards/tableau/imagelake_agg_comments.tds")),
    ];

    type Columns = Vec<(String, String)>;

    /// `DESCRIBE {what}` (a table or a query): (column name, DuckDB type), in order.
    fn describe(conn: &Connection, what: &str) -> Columns {
        let mut stmt = conn.prepare(&format!("DESCRIBE {what}")).unwrap_or_else(|e| panic!("DESCRIBE {what}: {e}"));
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap_or_else(|e| panic!("DESCRIBE {what}: {e}"));
        rows.collect::<Result<Columns, _>>().unwrap_or_else(|e| panic!("DESCRIBE {what}: {e}"))
    }

    /// A connection with every aggregate made empty in the schema `agg_empty`, and the
    /// columns of each, in the order of [`Agg::ALL`].
    fn aggregates() -> (Connection, Vec<(Agg, Columns)>) {
        let conn = Connection::open_in_memory().unwrap();
        create_empty(&conn, "agg_empty").unwrap();
        let tables: Vec<(Agg, Columns)> = Agg::ALL
            .iter()
            .map(|a| {
                let cols = describe(&conn, &format!("agg_empty.{}", a.name()));
                assert!(!cols.is_empty(), "{} has no columns", a.name());
                assert!(!cols.iter().any(|(c, _)| c == "dt"), "{}: `dt` is the partition, not a column of the files", a.name());
                (*a, cols)
            })
            .collect();
        (conn, tables)
    }

    fn athena_type(duckdb: &str) -> &'static str {
        match duckdb {
            "VARCHAR" => "string",
            "BIGINT" => "bigint",
            "INTEGER" => "int",
            "DOUBLE" => "double",
            "BOOLEAN" => "boolean",
            "DATE" => "date",
            "TIMESTAMP" | "TIMESTAMP WITH TIME ZONE" => "timestamp",
            other => panic!("an aggregate column of DuckDB type {other}: map it here and in the BI files"),
        }
    }

    fn tableau_type(duckdb: &str) -> &'static str {
        match duckdb {
            "VARCHAR" => "string",
            "BIGINT" | "INTEGER" => "integer",
            "DOUBLE" => "real",
            "BOOLEAN" => "boolean",
            "DATE" => "date",
            "TIMESTAMP" | "TIMESTAMP WITH TIME ZONE" => "datetime",
            other => panic!("an aggregate column of DuckDB type {other}: map it here and in the BI files"),
        }
    }

    /// The text between `open` and the next `close` after it.
    fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
        let start = text.find(open)? + open.len();
        let len = text[start..].find(close)?;
        Some(&text[start..start + len])
    }

    /// `name='v'` or `name="v"` in an XML start tag (`name` preceded by a space).
    fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
        between(tag, &format!(" {name}='"), "'").or_else(|| between(tag, &format!(" {name}=\""), "\""))
    }

    fn unescape(xml: &str) -> String {
        xml.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
    }

    /// `name type` pairs separated by commas (an Athena column list), names unquoted, types lower case.
    fn column_list(text: &str) -> Columns {
        text.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let mut words = p.split_whitespace();
                let name = words.next().unwrap().trim_matches('`').to_string();
                let ty = words.collect::<Vec<_>>().join(" ").to_ascii_lowercase();
                (name, ty)
            })
            .collect()
    }

    /// One `CREATE EXTERNAL TABLE` of the Athena file.
    struct AthenaTable {
        name: String,
        columns: Columns,
        partitions: Columns,
        location: String,
        /// The statement's text, comments removed.
        text: String,
    }

    fn athena_tables(ddl: &str) -> Vec<AthenaTable> {
        let code: String = ddl.lines().map(|l| l.split("--").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
        let head = "CREATE EXTERNAL TABLE IF NOT EXISTS ";
        code.split(head)
            .skip(1)
            .map(|st| {
                let name: String = st.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                let p = st.find("PARTITIONED BY").unwrap_or_else(|| panic!("{name}: no PARTITIONED BY"));
                let open = st.find('(').unwrap();
                let close = st[..p].rfind(')').unwrap_or_else(|| panic!("{name}: no `)` before PARTITIONED BY"));
                assert!(open < close, "{name}: no column list");
                AthenaTable {
                    columns: column_list(&st[open + 1..close]),
                    partitions: column_list(between(&st[p..], "(", ")").unwrap()),
                    location: between(st, "LOCATION '", "'").unwrap_or_else(|| panic!("{name}: no LOCATION")).to_string(),
                    text: st.to_string(),
                    name,
                }
            })
            .collect()
    }

    #[test]
    fn athena_declares_every_aggregate_with_its_columns() {
        let (_conn, tables) = aggregates();
        let ddl = athena_tables(ATHENA);
        let names: Vec<&str> = ddl.iter().map(|t| t.name.as_str()).collect();
        let want_names: Vec<&str> = Agg::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(names, want_names, "sql/athena/aggregates.sql: one table per Agg::ALL, in order");
        for ((agg, cols), t) in tables.iter().zip(&ddl) {
            let name = agg.name();
            let want: Columns = cols.iter().map(|(c, ty)| (c.clone(), athena_type(ty).to_string())).collect();
            assert_eq!(t.columns, want, "sql/athena/aggregates.sql, {name} vs sql/aggregates.sql");
            assert_eq!(t.partitions, vec![("dt".to_string(), "string".to_string())], "{name}: partitioned by dt string");
            assert!(t.text.contains("STORED AS PARQUET"), "{name}");
            assert_eq!(t.location, format!("s3://${{BUCKET}}/${{PREFIX}}lake/{name}/"), "{name}: LOCATION");
            let template = format!("'s3://${{BUCKET}}/${{PREFIX}}lake/{name}/dt=${{dt}}/'");
            assert!(t.text.contains(&template), "{name}: storage.location.template");
            for prop in ["'projection.enabled'", "'projection.dt.type'", "'projection.dt.format'", "'projection.dt.range'"] {
                assert!(t.text.contains(prop), "{name}: no {prop}");
            }
            assert!(t.text.trim_end().ends_with(");"), "{name}: each statement ends with `);` (README.md splits the file there)");
        }
    }

    #[test]
    fn tableau_data_sources_list_their_tables_columns() {
        let (conn, tables) = aggregates();
        // Every imagelake_agg_*.tds on disk is checked here.
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dashboards/tableau");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with("imagelake_agg_") && f.ends_with(".tds"))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = TABLEAU.iter().map(|(_, f, _)| f.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed, "dashboards/tableau/imagelake_agg_*.tds vs TABLEAU in this test");

        // A lake of empty files, laid out like the real one, for the Custom SQL to read.
        let lake = std::env::temp_dir().join(format!(
            "imagelake-agg-bi-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        let lake_s = lake.display().to_string();

        for (agg, file, text) in TABLEAU {
            let name = agg.name();
            assert_eq!(file, format!("imagelake_{name}.tds"));
            let cols = &tables.iter().find(|(a, _)| *a == agg).unwrap().1;
            let mut want: Columns = cols.iter().map(|(c, ty)| (c.clone(), tableau_type(ty).to_string())).collect();
            want.push(("dt".into(), "date".into()));

            // The metadata records: remote-name and local-type, ordinals 1.., local-name [name].
            let records: Vec<&str> = text.split("<metadata-record ").skip(1).collect();
            let got: Columns = records
                .iter()
                .map(|r| {
                    let n = between(r, "<remote-name>", "</remote-name>");
                    let n = n.unwrap_or_else(|| panic!("{file}: a record without remote-name"));
                    let t = between(r, "<local-type>", "</local-type>");
                    let t = t.unwrap_or_else(|| panic!("{file}: {n} without local-type"));
                    (n.to_string(), t.to_string())
                })
                .collect();
            assert_eq!(got, want, "{file}: metadata records vs sql/aggregates.sql");
            for (i, r) in records.iter().enumerate() {
                let (n, _) = &want[i];
                assert_eq!(between(r, "<ordinal>", "</ordinal>"), Some((i + 1).to_string().as_str()), "{file}: {n} ordinal");
                let (local, parent) = (format!("[{n}]"), format!("[{name}]"));
                assert_eq!(between(r, "<local-name>", "</local-name>"), Some(local.as_str()), "{file}: {n} local-name");
                assert_eq!(between(r, "<parent-name>", "</parent-name>"), Some(parent.as_str()), "{file}: {n} parent-name");
            }

            // The <column>s: name [col] and datatype.
            let got: Columns = text
                .lines()
                .map(str::trim_start)
                .filter(|l| l.starts_with("<column "))
                .map(|l| {
                    let n = attr(l, "name").unwrap_or_else(|| panic!("{file}: a <column> without name: {l}"));
                    let t = attr(l, "datatype").unwrap_or_else(|| panic!("{file}: a <column> without datatype: {l}"));
                    (n.trim_start_matches('[').trim_end_matches(']').to_string(), t.to_string())
                })
                .collect();
            assert_eq!(got, want, "{file}: <column>s vs sql/aggregates.sql");

            // The relation: this table's files, and what DuckDB answers for it.
            let relation = between(text, "<relation ", "</relation>").unwrap_or_else(|| panic!("{file}: no relation"));
            assert_eq!(attr(relation, "name"), Some(name), "{file}: relation name");
            assert_eq!(attr(relation, "type"), Some("text"), "{file}: Custom SQL");
            let sql = unescape(relation.split_once('>').unwrap().1);
            assert!(sql.contains(&format!("'${{LAKE}}/{name}/*/*.parquet'")), "{file} reads {name}: {sql}");
            let day = lake.join(name).join("dt=2026-11-28");
            std::fs::create_dir_all(&day).unwrap();
            let path = day.join("empty.parquet").display().to_string().replace('\'', "''");
            conn.execute_batch(&format!("COPY agg_empty.{name} TO '{path}' (FORMAT parquet)")).unwrap();
            let answered = describe(&conn, &sql.replace("${LAKE}", &lake_s.replace('\'', "''")));
            let mut want: Columns = cols
                .iter()
                .map(|(c, ty)| {
                    // The data sources hand Tableau UTC wall-clock times.
                    let ty = if ty == "TIMESTAMP WITH TIME ZONE" { "TIMESTAMP" } else { ty.as_str() };
                    (c.clone(), ty.to_string())
                })
                .collect();
            want.push(("dt".into(), "DATE".into()));
            assert_eq!(answered, want, "{file}: its Custom SQL run by DuckDB");
        }
        let _ = std::fs::remove_dir_all(&lake);
    }
}
