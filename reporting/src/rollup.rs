//! Rollups: `sql/rollups.sql` (embedded at build time) pre-aggregates the facts before a
//! watermark, a UTC midnight, and the reports read the rest from the views.
//!
//! The tables are built in a schema of their own (`rollups_N`) while reports go on; a
//! query finds them through its `search_path`, and `main` holds empty ones for when no
//! build is published. Published tables stay true only while the facts before their
//! watermark stay as they were: a new file with such facts (a late retry of an old job, a
//! compaction's output) or a removed one withdraws them, and they are built again.

use crate::engine::Engine;
use crate::lake::FileSet;
use crate::views::{split, strip_comments};
use chrono::{DateTime, Duration, NaiveTime, Utc};
use imagelake_core::lake::Table;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The embedded rollup definitions.
pub const ROLLUPS_SQL: &str = include_str!("../../sql/rollups.sql");

/// Facts this long after midnight are not expected for the day before any more: from then
/// on, the day before is rolled up.
const SETTLE: i64 = 3600;

/// The tables the rollups read. A fact is before or after the watermark by its event time
/// (the partition's day), a job by the time it was enqueued: all its attempts go together.
pub const ROLLED: [Table; 6] = [Table::Uploads, Table::Jobs, Table::Variants, Table::Deletions, Table::Posts, Table::Comments];

/// One statement of the script: a rollup table (`CREATE OR REPLACE TABLE ...`) or anything
/// else (macros).
#[derive(Debug, Clone)]
pub enum Statement {
    Table(String),
    Other(String),
}

pub fn statements() -> Vec<Statement> {
    split(ROLLUPS_SQL)
        .into_iter()
        .filter_map(|sql| {
            let code = strip_comments(&sql).trim().to_string();
            if code.is_empty() {
                None
            } else if code.starts_with("CREATE OR REPLACE TABLE ") {
                Some(Statement::Table(code))
            } else {
                Some(Statement::Other(code))
            }
        })
        .collect()
}

/// The watermark to build at `now`: the last midnight at least [`SETTLE`] ago.
pub fn target(now: DateTime<Utc>) -> DateTime<Utc> {
    (now - Duration::seconds(SETTLE)).date_naive().and_time(NaiveTime::MIN).and_utc()
}

/// A DuckDB literal of `w`.
pub fn literal(w: Option<DateTime<Utc>>) -> String {
    match w {
        Some(w) => format!("TIMESTAMPTZ '{}'", w.format("%Y-%m-%d %H:%M:%S%.6f+00")),
        None => "'-infinity'::TIMESTAMPTZ".into(),
    }
}

/// How the lake's files moved since a build, for the facts before `w`.
#[derive(Debug, Default, PartialEq)]
pub struct Moved {
    /// A file of a day before the watermark came or went: the rollups no longer hold.
    pub broken: bool,
    /// New job files of days from the watermark on (relative paths under the lake root):
    /// they hold facts before it if one of their jobs was enqueued before it.
    pub check_jobs: Vec<String>,
}

/// Compares the files a build read with the files there are now.
pub fn moved(w: DateTime<Utc>, then: &HashMap<Table, FileSet>, now: &HashMap<Table, FileSet>) -> Moved {
    let day = w.date_naive().format("%Y-%m-%d").to_string();
    let empty = FileSet::new();
    let mut out = Moved::default();
    for table in ROLLED {
        let (a, b) = (then.get(&table).unwrap_or(&empty), now.get(&table).unwrap_or(&empty));
        // `dt=YYYY-MM-DD/name.parquet`: the partition is the day of the fact's time.
        let before = |key: &String| key.strip_prefix("dt=").map(|k| k[..10.min(k.len())] < *day).unwrap_or(true);
        for key in a.keys().filter(|k| !b.contains_key(*k)) {
            out.broken |= before(key);
        }
        for key in b.keys().filter(|k| !a.contains_key(*k)) {
            if before(key) {
                out.broken = true;
            } else if table == Table::Jobs {
                out.check_jobs.push(format!("{}/{key}", table.name()));
            }
        }
    }
    out
}

/// The rollups' state in the engine.
pub struct Rollups {
    published: Mutex<Option<Published>>,
    /// Builds no longer published, dropped once no query reads them.
    retired: Mutex<Vec<Arc<Build>>>,
    building: AtomicBool,
    generation: AtomicU64,
}

/// A built set of rollup tables: a query holds it while it runs.
pub struct Build {
    pub w: DateTime<Utc>,
    pub schema: String,
}

impl Build {
    /// What a query runs first: the build's watermark and schema, or (none) the empty
    /// tables of `main`.
    pub fn setup_sql(build: Option<&Build>) -> String {
        match build {
            Some(b) => format!("SET VARIABLE rollup_watermark = {}; SET search_path = '{},main';", literal(Some(b.w)), b.schema),
            None => format!("SET VARIABLE rollup_watermark = {}; RESET search_path;", literal(None)),
        }
    }
}

struct Published {
    build: Arc<Build>,
    /// The lake's files the build's facts are known to match.
    files: HashMap<Table, FileSet>,
}

impl Rollups {
    pub fn new() -> Self {
        Self {
            published: Mutex::new(None),
            retired: Mutex::new(Vec::new()),
            building: AtomicBool::new(false),
            generation: AtomicU64::new(1),
        }
    }

    /// The build a query reads now, if any.
    pub fn current(&self) -> Option<Arc<Build>> {
        self.published.lock().unwrap().as_ref().map(|p| p.build.clone())
    }

    pub fn watermark(&self) -> Option<DateTime<Utc>> {
        self.current().map(|b| b.w)
    }

    /// Puts `next` (or none) in place of the published build, which retires.
    fn publish(&self, next: Option<Published>) {
        let old = std::mem::replace(&mut *self.published.lock().unwrap(), next);
        if let Some(old) = old {
            self.retired.lock().unwrap().push(old.build);
        }
    }
}

impl Default for Rollups {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// Creates the macros and the empty tables of `main` (no build published): without
    /// the watermark variable, the script's tables come out empty without reading the lake.
    pub(crate) fn create_rollup_objects(&self) -> Result<(), String> {
        let conn = self.ddl.lock().unwrap();
        for Statement::Table(sql) | Statement::Other(sql) in statements() {
            conn.execute_batch(&sql).map_err(|e| format!("{e}: {}", sql.chars().take(120).collect::<String>()))?;
        }
        Ok(())
    }

    /// After a refresh: withdraws the published build if the facts before its watermark
    /// changed, and starts a build when there is none or a later watermark is due.
    pub(crate) async fn maintain_rollups(self: &Arc<Self>, files: &HashMap<Table, FileSet>) {
        let Some(r) = &self.rollups else { return };
        self.drop_retired();
        let published = r.published.lock().unwrap().as_ref().map(|p| (p.build.w, p.files.clone()));
        if let Some((w, then)) = published {
            match self.still_holds(w, &then, files).await {
                Ok(true) => {
                    if let Some(p) = r.published.lock().unwrap().as_mut() {
                        p.files = files.clone();
                    }
                }
                Ok(false) => self.withdraw_rollups().await,
                // Checked again at the next refresh.
                Err(e) => tracing::warn!(error = %e, "could not check new job files against the rollups"),
            }
        }
        let target = target(Utc::now());
        let due = r.watermark().is_none_or(|w| w < target);
        let has_facts = ROLLED.iter().any(|t| files.get(t).is_some_and(|f| !f.is_empty()));
        if due && has_facts && !r.building.swap(true, Ordering::SeqCst) {
            let (this, files) = (self.clone(), files.clone());
            tokio::spawn(async move {
                this.build_rollups(target, files).await;
                if let Some(r) = &this.rollups {
                    r.building.store(false, Ordering::SeqCst);
                }
            });
        }
    }

    /// Whether the facts before `w` in the files `now` are those of the files `then`.
    async fn still_holds(
        &self,
        w: DateTime<Utc>,
        then: &HashMap<Table, FileSet>,
        now: &HashMap<Table, FileSet>,
    ) -> Result<bool, String> {
        let m = moved(w, then, now);
        if m.broken || m.check_jobs.is_empty() {
            return Ok(!m.broken);
        }
        let list: Vec<String> =
            m.check_jobs.iter().map(|k| format!("'{}'", format!("{}/{k}", self.lake_root).replace('\'', "''"))).collect();
        let sql = format!("SELECT count(*) FROM read_parquet([{}]) WHERE enqueued_at < {}", list.join(", "), literal(Some(w)));
        let conn = self.base.lock().unwrap().try_clone().map_err(|e| e.to_string())?;
        let early: i64 = tokio::task::spawn_blocking(move || conn.query_row(&sql, [], |row| row.get(0)))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(early == 0)
    }

    async fn withdraw_rollups(&self) {
        let Some(r) = &self.rollups else { return };
        if let Some(w) = r.watermark() {
            tracing::info!(watermark = %w, "rollups withdrawn: facts before their watermark changed");
        }
        r.publish(None);
        self.drop_retired();
    }

    /// Drops the schemas of retired builds that no query reads any more.
    fn drop_retired(&self) {
        let Some(r) = &self.rollups else { return };
        let unused: Vec<Arc<Build>> = {
            let mut retired = r.retired.lock().unwrap();
            let (unused, used) = retired.drain(..).partition(|b| Arc::strong_count(b) == 1);
            *retired = used;
            unused
        };
        for b in unused {
            self.drop_schema(&b.schema);
        }
    }

    fn drop_schema(&self, schema: &str) {
        if let Err(e) = self.ddl.lock().unwrap().execute_batch(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE;")) {
            tracing::warn!(schema, error = %e, "could not drop a rollup schema");
        }
    }

    /// Builds the rollups at `w` from the lake's `files`, in a new schema, and publishes them
    /// unless the facts before `w` changed meanwhile.
    async fn build_rollups(self: &Arc<Self>, w: DateTime<Utc>, files: HashMap<Table, FileSet>) {
        let Some(r) = &self.rollups else { return };
        let schema = format!("rollups_{}", r.generation.fetch_add(1, Ordering::SeqCst));
        let started = std::time::Instant::now();
        let conn = match self.base.lock().unwrap().try_clone() {
            Ok(c) => c,
            Err(e) => return tracing::warn!(error = %e, "rollups not built: no connection"),
        };
        let (s, lit) = (schema.clone(), literal(Some(w)));
        let built = tokio::task::spawn_blocking(move || -> Result<(), String> {
            conn.execute_batch(&format!(
                "CREATE SCHEMA {s}; SET schema = '{s}'; SET search_path = '{s},main'; SET VARIABLE rollup_watermark = {lit};"
            ))
            .map_err(|e| e.to_string())?;
            // The tables only: `SET schema` puts them in the new schema; the macros are main's.
            for st in statements() {
                if let Statement::Table(sql) = st {
                    conn.execute_batch(&sql).map_err(|e| format!("{e}: {}", sql.chars().take(120).collect::<String>()))?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        if let Err(e) = built {
            tracing::warn!(watermark = %w, error = %e, "rollups not built");
            return self.drop_schema(&schema);
        }
        let now = self.lake.lock().await.files.clone();
        if !matches!(self.still_holds(w, &files, &now).await, Ok(true)) {
            tracing::info!(watermark = %w, "rollups discarded: facts before the watermark changed while building");
            return self.drop_schema(&schema);
        }
        r.publish(Some(Published { build: Arc::new(Build { w, schema }), files: now }));
        self.drop_retired();
        tracing::info!(watermark = %w, seconds = started.elapsed().as_secs_f64(), "rollups built");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[&str]) -> FileSet {
        keys.iter().map(|k| (k.to_string(), 1)).collect()
    }

    #[test]
    fn target_is_the_last_settled_midnight() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(target(t("2026-11-24T00:30:00Z")), t("2026-11-23T00:00:00Z"));
        assert_eq!(target(t("2026-11-24T01:00:00Z")), t("2026-11-24T00:00:00Z"));
        assert_eq!(target(t("2026-11-24T23:59:59Z")), t("2026-11-24T00:00:00Z"));
    }

    #[test]
    fn files_before_the_watermark_break_the_rollups() {
        let w = DateTime::parse_from_rfc3339("2026-11-24T00:00:00Z").unwrap().with_timezone(&Utc);
        let then: HashMap<Table, FileSet> =
            [(Table::Uploads, set(&["dt=2026-11-23/a.parquet"])), (Table::Jobs, set(&["dt=2026-11-23/j.parquet"]))].into();
        // New facts of the day of the watermark and after: the rollups hold; new job files are checked.
        let now: HashMap<Table, FileSet> = [
            (Table::Uploads, set(&["dt=2026-11-23/a.parquet", "dt=2026-11-24/b.parquet"])),
            (Table::Jobs, set(&["dt=2026-11-23/j.parquet", "dt=2026-11-24/k.parquet"])),
            (Table::Downloads, set(&["dt=2026-11-01/d.parquet"])),
        ]
        .into();
        assert_eq!(moved(w, &then, &now), Moved { broken: false, check_jobs: vec!["jobs/dt=2026-11-24/k.parquet".into()] });
        // A late file of a rolled-up day, or one compacted away: they do not.
        let late: HashMap<Table, FileSet> = [
            (Table::Uploads, set(&["dt=2026-11-23/a.parquet", "dt=2026-11-23/c.parquet"])),
            (Table::Jobs, then[&Table::Jobs].clone()),
        ]
        .into();
        assert!(moved(w, &then, &late).broken);
        let gone: HashMap<Table, FileSet> = [(Table::Uploads, set(&["dt=2026-11-23/a.parquet"]))].into();
        assert!(moved(w, &then, &gone).broken);
        // A late comment of a rolled-up day too.
        let mut comment = then.clone();
        comment.insert(Table::Comments, set(&["dt=2026-11-22/c.parquet"]));
        assert!(moved(w, &then, &comment).broken);
    }

    #[test]
    fn the_script_has_tables_and_macros() {
        let st = statements();
        let tables: Vec<&str> =
            st.iter().filter_map(|s| if let Statement::Table(sql) = s { sql.split_whitespace().nth(4) } else { None }).collect();
        assert!(tables.contains(&"rollup_uploads") && tables.contains(&"rollup_attempt_ms_all"), "{tables:?}");
        for t in ["rollup_posts", "rollup_comments", "rollup_post_comments", "rollup_post_state"] {
            assert!(tables.contains(&t), "{t}: {tables:?}");
        }
        assert!(st.iter().any(|s| matches!(s, Statement::Other(sql) if sql.contains("MACRO upload_facts"))));
    }
}
