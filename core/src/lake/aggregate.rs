//! Making the daily aggregates (`sql/aggregates.sql`) of closed days, in DuckDB.
//!
//! A day is aggregated when it has closed (before the day of `now` less [`SETTLE`]) and
//! its aggregates are not current ([`super::agg`]): never, or its inputs changed since.
//! Aggregating reads that day's input files only, so the work is proportional to the new
//! facts, not to the lake. The day's files are fetched into a scratch directory, DuckDB
//! runs the views (deduplicated) and the script over them, and each table is written with
//! one atomic put to `lake/agg_{name}/dt=D/{fingerprint}.parquet`; only then are the day's
//! older aggregate files deleted. Readers take a day's aggregates only when every table
//! has the current fingerprint, so a run interrupted anywhere leaves the day raw, never
//! counted twice or half; the next run finishes it.

use super::agg::{self, Agg, Day, Listing, INPUTS};
use super::layout;
use super::views::{self, AGGREGATES_SQL};
use super::{LakeError, Table};
use crate::store::{list_all, SharedStore};
use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use std::path::{Path, PathBuf};

/// A day is aggregated once this long has passed since its end: the last attempts of the
/// jobs enqueued before midnight land meanwhile (a later one makes the day stale, and it is
/// aggregated again).
pub const SETTLE: Duration = Duration::minutes(30);

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AggregateReport {
    /// Days with facts.
    pub days: usize,
    /// Closed days whose aggregates were already current.
    pub current: usize,
    /// Days aggregated now.
    pub built: Vec<NaiveDate>,
    pub input_files: u64,
    pub input_bytes: u64,
    pub rows_in: u64,
    pub output_bytes: u64,
    /// Aggregate files of older fingerprints removed (after a new build, or left by a run
    /// that died between its writes and its deletes).
    pub removed: u64,
}

fn err(what: &str, e: impl std::fmt::Display) -> LakeError {
    LakeError::Encode("aggregates", format!("{what}: {e}"))
}

/// Lists the lake once.
pub async fn listing(store: &SharedStore) -> Result<Listing, LakeError> {
    Ok(list_all(store.as_ref(), layout::PREFIX)
        .await?
        .into_iter()
        .filter(|m| layout::parse(&m.key).is_some())
        .map(|m| (layout::relative(&m.key).to_string(), m.size))
        .collect())
}

/// The last day that is closed at `now`.
pub fn last_closed_day(now: DateTime<Utc>) -> NaiveDate {
    (now - SETTLE).date_naive() - Duration::days(1)
}

/// Aggregates every closed day whose aggregates are not current; `scratch` is a directory
/// for the day's files (emptied afterwards).
pub async fn aggregate_closed_days(
    store: &SharedStore,
    now: DateTime<Utc>,
    scratch: &Path,
) -> Result<AggregateReport, LakeError> {
    let days = agg::days(&listing(store).await?);
    let last = last_closed_day(now);
    let mut report = AggregateReport { days: days.len(), ..Default::default() };
    for (day, d) in days.range(..=last) {
        if d.current {
            report.current += 1;
            // Files of an older fingerprint, left by a run that died before its deletes:
            // readers of every file (Athena, Spark) would count the day twice.
            remove_stale(store, *day, d, &mut report).await?;
            continue;
        }
        aggregate_day(store, *day, d, scratch, &mut report).await?;
    }
    Ok(report)
}

/// Aggregates one day from its inputs (as listed in `d`).
pub async fn aggregate_day(
    store: &SharedStore,
    day: NaiveDate,
    d: &Day,
    scratch: &Path,
    report: &mut AggregateReport,
) -> Result<(), LakeError> {
    let dir = scratch.join(format!("aggregate-{}", crate::ids::new_compact_id()));
    let result = build(store, day, d, &dir, report).await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

async fn build(store: &SharedStore, day: NaiveDate, d: &Day, dir: &Path, report: &mut AggregateReport) -> Result<(), LakeError> {
    let (lake, out) = (dir.join("lake"), dir.join("out"));
    tokio::fs::create_dir_all(&out).await.map_err(|e| err("scratch", e))?;
    // The inputs, a few at a time. One deleted since the listing (a compaction) means the
    // day changed: give up this time, the next run sees the new files.
    let fetched: Vec<Option<()>> =
        futures::stream::iter(d.inputs.iter()).map(|(rel, _)| fetch(store, rel, &lake)).buffer_unordered(8).try_collect().await?;
    if fetched.iter().any(Option::is_none) {
        tracing::info!(day = %day, "aggregates skipped: an input went away (compacted); next run");
        return Ok(());
    }
    report.input_files += d.inputs.len() as u64;
    report.input_bytes += d.inputs.iter().map(|(_, s)| s).sum::<u64>();
    let inputs_meta = d.inputs.iter().map(|(k, s)| format!("{k}\t{s}")).collect::<Vec<_>>().join("\n");
    let (lake_s, out_s, present) = (lake.clone(), out.clone(), present_tables(d));
    let rows = tokio::task::spawn_blocking(move || run_sql(&lake_s, &out_s, &present, &inputs_meta))
        .await
        .map_err(|e| err("aggregate task", e))??;
    report.rows_in += rows;
    for a in Agg::ALL {
        let body = tokio::fs::read(out.join(format!("{}.parquet", a.name()))).await.map_err(|e| err("read output", e))?;
        report.output_bytes += body.len() as u64;
        store.put(&a.key(day, &d.fingerprint), Bytes::from(body)).await?;
    }
    // Every table is in place: the older fingerprints go.
    remove_stale(store, day, d, report).await?;
    report.built.push(day);
    tracing::info!(day = %day, inputs = d.inputs.len(), rows, fingerprint = %d.fingerprint, "day aggregated");
    Ok(())
}

/// Deletes the day's aggregate files of other fingerprints than its current one.
async fn remove_stale(store: &SharedStore, day: NaiveDate, d: &Day, report: &mut AggregateReport) -> Result<(), LakeError> {
    let wanted = agg::files(day, &d.fingerprint);
    let old: Vec<String> = d.agg_files.iter().filter(|k| !wanted.contains(k)).map(|k| format!("{}{k}", layout::PREFIX)).collect();
    if !old.is_empty() {
        store.delete_many(&old).await?;
        report.removed += old.len() as u64;
    }
    Ok(())
}

fn present_tables(d: &Day) -> Vec<Table> {
    INPUTS.into_iter().filter(|t| d.inputs.iter().any(|(k, _)| layout::parse(k).is_some_and(|p| p.dir == t.name()))).collect()
}

async fn fetch(store: &SharedStore, rel: &str, lake: &Path) -> Result<Option<()>, LakeError> {
    let key = format!("{}{rel}", layout::PREFIX);
    let body = match store.get(&key, None).await {
        Ok(g) => g.bytes().await?,
        Err(crate::store::StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let dest: PathBuf = lake.join(rel);
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(|e| err("scratch", e))?;
    }
    tokio::fs::write(&dest, &body).await.map_err(|e| err("scratch", e))?;
    Ok(Some(()))
}

/// Runs the views over `lake` (one day's files), and the same scans without the
/// deduplication ([`views::every_copy_sql`]), and the aggregates script, writing each
/// table to `out/{name}.parquet`. Returns the rows read (deduplicated facts).
fn run_sql(lake: &Path, out: &Path, present: &[Table], inputs_meta: &str) -> Result<u64, LakeError> {
    let conn = duckdb::Connection::open_in_memory().map_err(|e| err("duckdb", e))?;
    // No `SET TimeZone`: that needs the ICU extension, which an offline build lacks;
    // without it DuckDB's TIMESTAMPTZ casts are UTC, which is what the script means.
    let lake_root = lake.display().to_string();
    for st in views::statements(views::VIEWS_SQL) {
        let Some(t) = st.table.filter(|t| INPUTS.contains(t)) else { continue };
        let sql = if present.contains(&t) {
            let every = views::every_copy_sql(&st.sql, t).ok_or_else(|| err(t.name(), "views.sql's view has no scan"))?;
            format!("{};\n{}", views::with_lake(&st.sql, &lake_root), views::with_lake(&every, &lake_root))
        } else {
            format!("{};\n{}", views::empty_table_sql(t), views::empty_table_sql_named(t, &views::every_copy_name(t)))
        };
        conn.execute_batch(&sql).map_err(|e| err(t.name(), e))?;
    }
    let mut rows = 0u64;
    for t in INPUTS {
        let n: i64 =
            conn.query_row(&format!("SELECT count(*) FROM {}", t.name()), [], |r| r.get(0)).map_err(|e| err(t.name(), e))?;
        rows += n as u64;
    }
    run_script(&conn)?;
    let meta = inputs_meta.replace('\'', "''");
    for a in Agg::ALL {
        let path = out.join(format!("{}.parquet", a.name())).display().to_string().replace('\'', "''");
        conn.execute_batch(&format!(
            "COPY {} TO '{path}' (FORMAT parquet, COMPRESSION zstd, KV_METADATA {{'imagelake.inputs': '{meta}'}});",
            a.name()
        ))
        .map_err(|e| err(a.name(), e))?;
    }
    Ok(rows)
}

/// Runs `sql/aggregates.sql` on `conn`, whose `uploads`, `jobs`, ... hold one day's facts
/// (and `uploads_all`, `jobs_all`, ... every row of its files, copies included).
pub fn run_script(conn: &duckdb::Connection) -> Result<(), LakeError> {
    for sql in views::split(AGGREGATES_SQL) {
        let code = views::strip_comments(&sql);
        if code.trim().is_empty() {
            continue;
        }
        conn.execute_batch(&code).map_err(|e| err(&code.chars().take(80).collect::<String>(), e))?;
    }
    Ok(())
}

/// Creates the aggregate tables, empty, in `conn` (without touching the lake): the
/// stand-ins a reader uses for a table while no day is aggregated.
pub fn create_empty(conn: &duckdb::Connection, schema: &str) -> Result<(), LakeError> {
    conn.execute_batch(&format!("CREATE SCHEMA IF NOT EXISTS {schema}; SET schema = '{schema}'; SET search_path = '{schema}';"))
        .map_err(|e| err("duckdb", e))?;
    for t in INPUTS {
        conn.execute_batch(&views::empty_table_sql(t)).map_err(|e| err(t.name(), e))?;
        conn.execute_batch(&views::empty_table_sql_named(t, &views::every_copy_name(t))).map_err(|e| err(t.name(), e))?;
    }
    let r = run_script(conn);
    conn.execute_batch("RESET schema; RESET search_path;").map_err(|e| err("duckdb", e))?;
    r
}
