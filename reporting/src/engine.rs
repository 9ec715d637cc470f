//! DuckDB in-process: one in-memory database over the lake, a small pool of connections
//! (concurrent reports do not queue behind one connection), and queries run on the
//! blocking pool under `reporting.query_timeout`, interrupted when they overrun. A report
//! runs in a transaction on its connection, after the views of its edge days (edges.rs).

use crate::edges::DayFiles;
use crate::error::ReportingError;
use crate::held::{self, Held};
use crate::lake::{self, Source};
use crate::memory::Memory;
use crate::objects::{self, Kind, Object};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use duckdb::types::Value;
use duckdb::Connection;
use imagelake_core::lake::agg::Listing;
use imagelake_core::lake::views::{self, ViewStatement};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A refresh that finds a listed file gone lists again, up to this many times in all.
const REFRESH_ATTEMPTS: usize = 5;

/// Connections kept idle for the next requests; more are opened under load.
const MAX_IDLE: usize = 4;

/// The reports' table macros (sql/facts.sql), embedded at build time.
pub const FACTS_SQL: &str = include_str!("../../sql/facts.sql");

/// A report's answer: DuckDB's Arrow batches and their schema.
pub struct Answer {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// The days whose facts the query could read from the lake's daily aggregates.
    pub aggregated_days: usize,
}

/// A report's range: [from, to).
pub type Range = (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>);

pub(crate) struct LakeState {
    source: Source,
    last_sync: Option<Instant>,
    /// The listing the current objects were made from.
    pub(crate) listing: Listing,
    /// What stands under each name now.
    created: HashMap<String, Object>,
    /// The aggregated days loaded in memory (memory.rs).
    memory: Memory,
    /// The raw days' small files whose rows are held in memory (held.rs).
    held: Held,
}

pub struct Engine {
    /// Opens the pool's connections (held only for `try_clone`).
    pub(crate) base: Mutex<Connection>,
    /// Runs the DDL, so that opening a connection never waits behind it.
    pub(crate) ddl: Mutex<Connection>,
    idle: Mutex<Vec<Connection>>,
    statements: Vec<ViewStatement>,
    pub(crate) lake_root: String,
    pub(crate) lake: tokio::sync::Mutex<LakeState>,
    /// The files a query's edge views list, replaced with the objects, under the write lock,
    /// as they commit: a query reads the files and starts its transaction under the read
    /// lock, so the two are of one listing.
    day_files: RwLock<Arc<DayFiles>>,
    /// Read the lake's daily aggregates (false: every day raw).
    aggregates: bool,
    aggregated_days: AtomicUsize,
    cache_ttl: Duration,
    timeout: Duration,
}

fn db_err(e: duckdb::Error) -> ReportingError {
    ReportingError::Query(e.to_string())
}

impl Engine {
    /// Opens DuckDB, syncs the lake once and creates the views, the aggregates' objects and
    /// the reports' macros.
    pub async fn open(
        source: Source,
        cache_ttl: Duration,
        timeout: Duration,
        aggregates: bool,
    ) -> Result<Arc<Self>, ReportingError> {
        let setup = |e: &dyn std::fmt::Display| ReportingError::Setup(e.to_string());
        let conn = Connection::open_in_memory().map_err(|e| setup(&e))?;
        // Footers are read once per file, not once per query; lake files never change in place.
        conn.execute_batch("SET parquet_metadata_cache = true;").map_err(|e| setup(&e))?;
        std::fs::create_dir_all(source.root()).map_err(|e| setup(&e))?;
        let lake_root = source.root().display().to_string();
        let ddl = conn.try_clone().map_err(|e| setup(&e))?;
        imagelake_core::lake::aggregate::create_empty(&ddl, objects::EMPTY_AGG_SCHEMA).map_err(|e| setup(&e))?;
        ddl.execute_batch(&crate::edges::placeholders_sql()).map_err(|e| setup(&e))?;
        ddl.execute_batch(&crate::memory::create_sql(objects::EMPTY_AGG_SCHEMA)).map_err(|e| setup(&e))?;
        ddl.execute_batch(&held::create_sql(&imagelake_core::lake::agg::INPUTS)).map_err(|e| setup(&e))?;
        let engine = Arc::new(Engine {
            base: Mutex::new(conn),
            ddl: Mutex::new(ddl),
            idle: Mutex::new(Vec::new()),
            statements: views::statements(views::VIEWS_SQL),
            lake_root,
            lake: tokio::sync::Mutex::new(LakeState {
                source,
                last_sync: None,
                listing: Listing::new(),
                created: HashMap::new(),
                memory: Memory::default(),
                held: Held::default(),
            }),
            day_files: RwLock::new(Arc::new(DayFiles::default())),
            aggregates,
            aggregated_days: AtomicUsize::new(0),
            cache_ttl,
            timeout,
        });
        // Statements that are not a table's view (settings, macros, derived views) run once:
        // before the tables' views (which may use them), and again after for those that
        // failed (which may be built on the tables' views).
        let extra: Vec<String> =
            engine.statements.iter().filter(|s| s.table.is_none()).map(|s| views::with_lake(&s.sql, &engine.lake_root)).collect();
        let failed: Vec<&String> = extra.iter().filter(|sql| engine.ddl.lock().unwrap().execute_batch(sql).is_err()).collect();
        engine.refresh(true).await?;
        for sql in failed {
            if let Err(e) = engine.ddl.lock().unwrap().execute_batch(sql) {
                tracing::warn!(error = %e, statement = %sql.chars().take(120).collect::<String>(), "a views statement failed");
            }
        }
        for sql in views::split(FACTS_SQL) {
            let code = views::strip_comments(&sql);
            if !code.trim().is_empty() {
                engine
                    .ddl
                    .lock()
                    .unwrap()
                    .execute_batch(&code)
                    .map_err(|e| setup(&format!("{e}: {}", code.chars().take(120).collect::<String>())))?;
            }
        }
        Ok(engine)
    }

    /// Syncs the lake when the last sync is older than `cache_ttl` (or `force`), and
    /// re-creates every object whose files changed and loads (drops) the days whose
    /// aggregates became (stopped being) current, in one transaction: a fact flushed to
    /// the lake is in the next query's answer, and a day moves from the raw facts to its
    /// aggregates at once (a query sees it on one side, never on both or neither).
    ///
    /// It runs as a task of its own, so the request that triggers it cannot cancel it
    /// halfway: DuckDB commits in a blocking thread that nothing stops, and a refresh
    /// dropped after that commit would leave the recorded state (the held files, the
    /// memory's days, the objects) behind what DuckDB holds, and the next refresh would
    /// load the same files twice.
    pub async fn refresh(self: &Arc<Self>, force: bool) -> Result<(), ReportingError> {
        let this = self.clone();
        tokio::spawn(async move { this.refresh_whole(force).await })
            .await
            .map_err(|e| ReportingError::Query(format!("refresh task failed: {e}")))?
    }

    async fn refresh_whole(self: &Arc<Self>, force: bool) -> Result<(), ReportingError> {
        let mut state = self.lake.lock().await;
        if !force && state.last_sync.is_some_and(|t| t.elapsed() < self.cache_ttl) {
            return Ok(());
        }
        // A file merged away by a compaction between the listing and the load of the held
        // files (the local backend's compaction deletes its inputs as the refresh runs):
        // list again.
        for _ in 1..REFRESH_ATTEMPTS {
            match self.sync(&mut state).await {
                Err(ReportingError::LakeUnavailable(m)) if crate::is_vanished_file(&m) => {
                    tracing::debug!(error = %m, "a lake file vanished during the refresh; listing again");
                }
                other => return other,
            }
        }
        self.sync(&mut state).await
    }

    /// One refresh: sync, list, and re-create what changed.
    async fn sync(self: &Arc<Self>, state: &mut LakeState) -> Result<(), ReportingError> {
        state.source.sync().await?;
        let root = state.source.root().to_path_buf();
        let known = std::mem::take(&mut state.listing);
        let (listing, known) = tokio::task::spawn_blocking(move || (lake::scan(&root, &known), known))
            .await
            .map_err(|e| ReportingError::LakeUnavailable(e.to_string()))?;
        state.listing = known;
        if listing != state.listing || state.created.is_empty() {
            let desired = objects::desired(&listing, &self.lake_root, &self.statements, self.aggregates);
            let current = desired.current;
            let files = DayFiles::new(&listing, &self.lake_root, &self.statements, &current);
            let (held_sql, held) = state.held.update(&desired.held, |t, f| {
                let st = self.statements.iter().find(|s| s.table == Some(t)).expect("views.sql has a view of every table");
                objects::scan_over(&st.sql, t, f)
            });
            let changed: Vec<(Option<Object>, Object)> = desired
                .objects
                .into_iter()
                .filter(|o| state.created.get(&o.name) != Some(o))
                .map(|o| (state.created.get(&o.name).cloned(), o))
                .collect();
            let (this, memory) = (self.clone(), state.memory.clone());
            let days = current.len();
            let (memory, created) =
                tokio::task::spawn_blocking(move || this.recreate(changed, &held_sql, &memory, &current, files))
                    .await
                    .map_err(|e| ReportingError::Query(e.to_string()))?
                    .map_err(ReportingError::LakeUnavailable)?;
            for o in created {
                state.created.insert(o.name.clone(), o);
            }
            if let Some(m) = memory {
                state.memory = m;
            }
            state.held = held;
            state.listing = listing;
            self.aggregated_days.store(days, Ordering::SeqCst);
        }
        state.last_sync = Some(Instant::now());
        Ok(())
    }

    /// Brings the held rows up to date (`held_sql`), replaces these objects and brings the
    /// memory to the `current` days, in one transaction, and the edge views' files with
    /// `files` as it commits; returns the memory after it (`None`: unchanged) and the new
    /// objects.
    fn recreate(
        &self,
        changed: Vec<(Option<Object>, Object)>,
        held_sql: &str,
        memory: &Memory,
        current: &BTreeMap<chrono::NaiveDate, String>,
        files: DayFiles,
    ) -> Result<(Option<Memory>, Vec<Object>), String> {
        let conn = self.ddl.lock().unwrap();
        let file = |a, day, fp: &str| objects::agg_file(&self.lake_root, a, day, fp);
        let update = memory.update(&conn, current, file).map_err(|e| format!("could not read the lake's aggregates: {e}"))?;
        let mut sql = String::from("BEGIN TRANSACTION;\n");
        sql.push_str(held_sql);
        for (old, new) in &changed {
            match old.as_ref().map(|o| o.kind) {
                Some(Kind::View) => sql.push_str(&format!("DROP VIEW IF EXISTS {};\n", new.name)),
                Some(Kind::Table) => sql.push_str(&format!("DROP TABLE IF EXISTS {};\n", new.name)),
                None => {}
            }
            sql.push_str(&new.sql);
            sql.push_str(";\n");
        }
        if let Some(u) = &update {
            sql.push_str(&u.sql);
        }
        let commit = || {
            let mut day_files = self.day_files.write().unwrap();
            conn.execute_batch("COMMIT;")?;
            *day_files = Arc::new(files);
            Ok::<_, duckdb::Error>(())
        };
        if let Err(e) = conn.execute_batch(&sql).and_then(|_| commit()) {
            let _ = conn.execute_batch("ROLLBACK;");
            return Err(format!("could not (re)create the lake's objects: {e}"));
        }
        Ok((update.map(|u| u.after), changed.into_iter().map(|(_, o)| o).collect()))
    }

    fn checkout(&self) -> Result<Connection, ReportingError> {
        if let Some(c) = self.idle.lock().unwrap().pop() {
            return Ok(c);
        }
        self.base.lock().unwrap().try_clone().map_err(db_err)
    }

    fn checkin(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Runs one prepared statement with bound parameters, under the timeout; with a `range`
    /// [from, to), a report's, after the views of its edge days.
    pub async fn query(
        self: &Arc<Self>,
        sql: Cow<'static, str>,
        params: Vec<Value>,
        range: Option<Range>,
    ) -> Result<Answer, ReportingError> {
        let days = self.aggregated_days.load(Ordering::SeqCst);
        let conn = self.checkout()?;
        let interrupt = conn.interrupt_handle();
        let abandoned = Arc::new(AtomicBool::new(false));
        let (this, flag) = (self.clone(), abandoned.clone());
        let task = tokio::task::spawn_blocking(move || {
            let result = match range {
                Some(range) => this.in_range(&conn, range, || run(&conn, &sql, params)),
                None => run(&conn, &sql, params),
            }
            .map(|a| Answer { aggregated_days: days, ..a });
            // A connection whose query was interrupted is not reused.
            if !flag.load(Ordering::SeqCst) {
                this.checkin(conn);
            }
            result
        });
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(ReportingError::Query(format!("query task failed: {join}"))),
            Err(_) => {
                abandoned.store(true, Ordering::SeqCst);
                interrupt.interrupt();
                Err(ReportingError::Timeout(self.timeout))
            }
        }
    }

    /// Runs `f` in a transaction on `conn` whose snapshot of the lake's objects is the
    /// listing's that the views of `range`'s edge days are made from.
    fn in_range<T>(
        &self,
        conn: &Connection,
        (from, to): Range,
        f: impl FnOnce() -> Result<T, ReportingError>,
    ) -> Result<T, ReportingError> {
        let views = {
            let files = self.day_files.read().unwrap();
            // The first read of the main catalog fixes the transaction's snapshot.
            conn.execute_batch("BEGIN TRANSACTION; SELECT count(*) FROM agg_days;").map(|_| files.sql(from, to))
        };
        let result = views.and_then(|v| conn.execute_batch(&v)).map_err(db_err).and_then(|_| f());
        let end = if result.is_ok() { "COMMIT;" } else { "ROLLBACK;" };
        let ended = conn.execute_batch(end).map_err(db_err);
        result.and_then(|r| ended.map(|_| r))
    }
}

fn run(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<Answer, ReportingError> {
    let mut stmt = conn.prepare(sql).map_err(db_err)?;
    let batches: Vec<RecordBatch> = stmt.query_arrow(duckdb::params_from_iter(params)).map_err(db_err)?.collect();
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => stmt.schema(),
    };
    Ok(Answer { schema, batches, aggregated_days: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagelake_core::lake::Table;

    /// A refresh whose caller gives up halfway still records what it loads: the next
    /// refresh loads no file twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refresh_dropped_by_its_caller_loads_no_file_twice() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("uploads/dt=2026-11-01");
        std::fs::create_dir_all(&dir).unwrap();
        let files = Connection::open_in_memory().unwrap();
        let write = |range: std::ops::Range<usize>| {
            for i in range {
                files
                    .execute_batch(&format!(
                        "COPY (SELECT 'e{i}' AS event_id, 'i{i}' AS image_id, 'c' AS customer_id,
                                TIMESTAMPTZ '2026-11-01 10:00:00+00' AS uploaded_at, 'image/png' AS content_type,
                                'png' AS format, 1::BIGINT AS bytes, 1 AS width, 1 AS height, 's' AS sha256)
                         TO '{}/f{i}.parquet' (FORMAT parquet)",
                        dir.display()
                    ))
                    .unwrap();
            }
        };
        write(0..1);
        let source = Source::Local { root: tmp.path().to_path_buf() };
        let engine = Engine::open(source, Duration::from_millis(1), Duration::from_secs(60), true).await.unwrap();
        write(1..2001);
        // Given up while the 2 000 new files load (a client that disconnects).
        let _ = tokio::time::timeout(Duration::from_millis(30), engine.refresh(true)).await;
        engine.refresh(true).await.unwrap();
        let rows: i64 = engine.ddl.lock().unwrap().query_row("SELECT count(*) FROM held_uploads", [], |r| r.get(0)).unwrap();
        let recorded = engine.lake.lock().await.held.files.get(&Table::Uploads).map_or(0, |f| f.len());
        assert_eq!((rows, recorded), (2001, 2001));
    }
}
