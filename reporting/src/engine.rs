//! DuckDB in-process: one in-memory database over the lake, a small pool of connections
//! (concurrent reports do not queue behind one connection), and queries run on the
//! blocking pool under `reporting.query_timeout`, interrupted when they overrun.

use crate::error::ReportingError;
use crate::lake::{self, FileSet, Source};
use crate::rollup::{Build, Rollups};
use crate::views::{self, ViewStatement};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use duckdb::types::Value;
use duckdb::Connection;
use imagelake_core::lake::Table;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections kept idle for the next requests; more are opened under load.
const MAX_IDLE: usize = 4;

/// A report's answer: DuckDB's Arrow batches and their schema.
pub struct Answer {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// The watermark of the rollups the query could read (facts before it pre-aggregated).
    pub rollup_watermark: Option<DateTime<Utc>>,
}

/// What stands under a table's name in DuckDB right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Object {
    Missing,
    View,
    EmptyTable,
}

pub(crate) struct LakeState {
    source: Source,
    last_sync: Option<Instant>,
    /// The files each table's current object was made from.
    pub(crate) files: HashMap<Table, FileSet>,
    objects: HashMap<Table, Object>,
}

pub struct Engine {
    /// Opens the pool's connections (held only for `try_clone`).
    pub(crate) base: Mutex<Connection>,
    /// Runs the view DDL, so that opening a connection never waits behind it.
    pub(crate) ddl: Mutex<Connection>,
    idle: Mutex<Vec<Connection>>,
    statements: Vec<ViewStatement>,
    pub(crate) lake_root: String,
    pub(crate) lake: tokio::sync::Mutex<LakeState>,
    /// None: reports read the views alone.
    pub(crate) rollups: Option<Rollups>,
    cache_ttl: Duration,
    timeout: Duration,
}

fn db_err(e: duckdb::Error) -> ReportingError {
    ReportingError::Query(e.to_string())
}

impl Engine {
    /// Opens DuckDB, syncs the lake once and creates the views and the (empty) rollups; with
    /// `rollups`, builds them in the background.
    pub async fn open(
        source: Source,
        cache_ttl: Duration,
        timeout: Duration,
        rollups: bool,
    ) -> Result<Arc<Self>, ReportingError> {
        let conn = Connection::open_in_memory().map_err(|e| ReportingError::Setup(e.to_string()))?;
        // Footers are read once per file, not once per query; lake files never change in place.
        conn.execute_batch("SET parquet_metadata_cache = true;").map_err(|e| ReportingError::Setup(e.to_string()))?;
        std::fs::create_dir_all(source.root()).map_err(|e| ReportingError::Setup(e.to_string()))?;
        let lake_root = source.root().display().to_string();
        let ddl = conn.try_clone().map_err(|e| ReportingError::Setup(e.to_string()))?;
        let engine = Arc::new(Engine {
            base: Mutex::new(conn),
            ddl: Mutex::new(ddl),
            idle: Mutex::new(Vec::new()),
            statements: views::statements(views::VIEWS_SQL),
            lake_root,
            lake: tokio::sync::Mutex::new(LakeState {
                source,
                last_sync: None,
                files: HashMap::new(),
                objects: Table::ALL.into_iter().map(|t| (t, Object::Missing)).collect(),
            }),
            rollups: rollups.then(Rollups::new),
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
        engine.create_rollup_objects().map_err(ReportingError::Setup)?;
        let files = engine.lake.lock().await.files.clone();
        engine.maintain_rollups(&files).await;
        Ok(engine)
    }

    /// Syncs the lake when the last sync is older than `cache_ttl` (or `force`), and
    /// re-creates the view of every table whose files changed: a fact flushed to the lake
    /// is in the next query's answer.
    pub async fn refresh(self: &Arc<Self>, force: bool) -> Result<(), ReportingError> {
        let mut state = self.lake.lock().await;
        if !force && state.last_sync.is_some_and(|t| t.elapsed() < self.cache_ttl) {
            return Ok(());
        }
        // The first refresh (from `open`) comes before the rollups' macros exist.
        let first = state.last_sync.is_none();
        state.source.sync().await?;
        let root = state.source.root().to_path_buf();
        let scanned = tokio::task::spawn_blocking(move || lake::scan(&root))
            .await
            .map_err(|e| ReportingError::LakeUnavailable(e.to_string()))?;
        let mut changed: Vec<(Table, FileSet, Object)> = Vec::new();
        for table in Table::ALL {
            let files = scanned.get(&table).cloned().unwrap_or_default();
            let was = state.objects[&table];
            if was == Object::Missing || state.files.get(&table) != Some(&files) {
                changed.push((table, files, was));
            }
        }
        if !changed.is_empty() {
            let this = self.clone();
            let done = tokio::task::spawn_blocking(move || {
                changed
                    .into_iter()
                    .map(|(table, files, was)| {
                        let now = this.rebuild(table, !files.is_empty(), was);
                        (table, files, now)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| ReportingError::Query(e.to_string()))?;
            for (table, files, now) in done {
                match now {
                    Ok(obj) => {
                        state.objects.insert(table, obj);
                        state.files.insert(table, files);
                    }
                    // Retried at the next refresh; the previous object (if any) stays.
                    Err(e) => {
                        tracing::warn!(table = table.name(), error = %e, "could not (re)create the lake view");
                        state.files.remove(&table);
                    }
                }
            }
        }
        state.last_sync = Some(Instant::now());
        if self.rollups.is_some() && !first {
            let files = state.files.clone();
            self.maintain_rollups(&files).await;
        }
        Ok(())
    }

    /// Puts the view of `table` (or, without files, an empty table) under its name.
    fn rebuild(&self, table: Table, has_files: bool, was: Object) -> Result<Object, String> {
        let name = table.name();
        let drop = match was {
            Object::View => format!("DROP VIEW IF EXISTS {name};"),
            Object::EmptyTable => format!("DROP TABLE IF EXISTS {name};"),
            Object::Missing => String::new(),
        };
        let (create, now) = if has_files {
            let st = self.statements.iter().find(|s| s.table == Some(table)).expect("every table has a view");
            (views::with_lake(&st.sql, &self.lake_root), Object::View)
        } else {
            (views::empty_table_sql(table), Object::EmptyTable)
        };
        let conn = self.ddl.lock().unwrap();
        // One transaction: a concurrent report sees the old object or the new one.
        let sql = format!("BEGIN TRANSACTION; {drop} {create}; COMMIT;");
        if let Err(e) = conn.execute_batch(&sql) {
            let _ = conn.execute_batch("ROLLBACK;");
            return Err(e.to_string());
        }
        Ok(now)
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

    /// The watermark of the published rollups, if any.
    pub fn rollup_watermark(&self) -> Option<DateTime<Utc>> {
        self.rollups.as_ref().and_then(Rollups::watermark)
    }

    /// Runs one prepared statement with bound parameters, under the timeout.
    pub async fn query(self: &Arc<Self>, sql: Cow<'static, str>, params: Vec<Value>) -> Result<Answer, ReportingError> {
        // The rollups (if any) this query reads stay until it ends.
        let build = self.rollups.as_ref().and_then(Rollups::current);
        let setup = self.rollups.as_ref().map(|_| Build::setup_sql(build.as_deref()));
        let watermark = build.as_ref().map(|b| b.w);
        let conn = self.checkout()?;
        let interrupt = conn.interrupt_handle();
        let abandoned = Arc::new(AtomicBool::new(false));
        let (this, flag) = (self.clone(), abandoned.clone());
        let task = tokio::task::spawn_blocking(move || {
            let result = match setup.map(|s| conn.execute_batch(&s)) {
                Some(Err(e)) => Err(db_err(e)),
                _ => run(&conn, &sql, params).map(|a| Answer { rollup_watermark: watermark, ..a }),
            };
            drop(build);
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
}

fn run(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<Answer, ReportingError> {
    let mut stmt = conn.prepare(sql).map_err(db_err)?;
    let batches: Vec<RecordBatch> = stmt.query_arrow(duckdb::params_from_iter(params)).map_err(db_err)?.collect();
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => stmt.schema(),
    };
    Ok(Answer { schema, batches, rollup_watermark: None })
}
