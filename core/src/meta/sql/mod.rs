//! [`MetadataStore`] over sqlx: SQLite or PostgreSQL, one set of portable SQL.
//!
//! The two databases take the same statements (`$n` parameters, `ON CONFLICT`,
//! `RETURNING`, partial indexes). Each statement is written once and run on either pool
//! through [`on_pool!`] / [`in_tx!`], which expand the same code for both database types.
//! SQLite write transactions start with `BEGIN IMMEDIATE`, so a transaction that reads
//! before it writes waits for the write lock (`busy_timeout`) instead of failing.

mod admin;
mod images;
mod inflight;
mod posts;
mod resumable;

use super::{ApiKey, Created, DueVariant, Figures, MetaError, MetadataStore, NewImage, PendingJob, PostEvent, Transition};
use crate::auth::Principal;
use crate::post::{Comment, CommentOutcome, NewComment, Post, PostCursor, PostOrder, PostView};
use crate::record::{ImageRecord, RecordError, VariantRecord};
use crate::resumable::ResumableUpload;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

/// The schema versions, embedded at build time; run at every start.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub(super) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The metadata database.
pub struct SqlMetadata {
    pool: Pool,
}

/// Runs `$body` with `$p` bound to whichever pool this is.
macro_rules! on_pool {
    ($self:expr, $p:ident => $body:expr) => {
        match &$self.pool {
            $crate::meta::sql::Pool::Sqlite($p) => $body,
            $crate::meta::sql::Pool::Postgres($p) => $body,
        }
    };
}

/// Runs `$body` (a `Result`) in a transaction bound to `$tx`; commits when it is `Ok`.
macro_rules! in_tx {
    ($self:expr, $tx:ident => $body:expr) => {
        match &$self.pool {
            $crate::meta::sql::Pool::Sqlite(p) => {
                #[allow(unused_mut)]
                let mut $tx = p.begin_with("BEGIN IMMEDIATE").await.map_err($crate::meta::sql::err)?;
                let r = $body;
                if r.is_ok() {
                    $tx.commit().await.map_err($crate::meta::sql::err)?;
                }
                r
            }
            $crate::meta::sql::Pool::Postgres(p) => {
                #[allow(unused_mut)]
                let mut $tx = p.begin().await.map_err($crate::meta::sql::err)?;
                let r = $body;
                if r.is_ok() {
                    $tx.commit().await.map_err($crate::meta::sql::err)?;
                }
                r
            }
        }
    };
}

/// `sqlx::query($sql).bind(..)...` executed on `$on`; the rows affected.
macro_rules! exec {
    ($on:expr, $sql:expr $(, $arg:expr)* $(,)?) => {
        sqlx::query($sql)$(.bind($arg))*.execute($on).await.map_err($crate::meta::sql::err)?.rows_affected()
    };
}

pub(super) use {exec, in_tx, on_pool};

impl SqlMetadata {
    /// Connects to `url` (`sqlite://PATH` or `postgres://...`) and runs the migrations.
    pub async fn connect(url: &str, max_connections: u32, timeout: Duration) -> Result<Self, MetaError> {
        let db = Self::open(url, max_connections, timeout).await?;
        db.migrate(None).await?;
        Ok(db)
    }

    /// Connects without migrating (tests that build an old schema first).
    pub async fn open(url: &str, max_connections: u32, timeout: Duration) -> Result<Self, MetaError> {
        let pool = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| MetaError::Internal(format!("bad database url: {e}")))?
                .create_if_missing(true)
                // WAL: readers never wait for the writer. FULL: a commit is on disk when
                // it returns (NORMAL could lose the last commits on power loss).
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(timeout.max(Duration::from_secs(5)));
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.clamp(1, 64))
                .acquire_timeout(timeout)
                .connect_with(opts)
                .await
                .map_err(err)?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url).map_err(|e| MetaError::Internal(format!("bad database url: {e}")))?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(timeout)
                .connect_with(opts)
                .await
                .map_err(err)?;
            Pool::Postgres(pool)
        } else {
            return Err(MetaError::Internal("the database url must start with sqlite:// or postgres://".into()));
        };
        Ok(Self { pool })
    }

    /// Brings the schema to `version` (all of them when `None`).
    pub async fn migrate(&self, version: Option<i64>) -> Result<(), MetaError> {
        let r = on_pool!(self, p => match version {
            Some(v) => MIGRATOR.run_to(v, p).await,
            None => MIGRATOR.run(p).await,
        });
        r.map_err(|e| MetaError::Migration(e.to_string()))
    }

    /// The newest schema version this build knows.
    pub fn latest_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// Runs one statement as written (tests that write rows of an old schema version).
    pub async fn execute_raw(&self, sql: &'static str) -> Result<u64, MetaError> {
        Ok(on_pool!(self, p => exec!(p, sql)))
    }

    /// Runs SQL built at run time, unchecked: for benchmarks that seed millions of rows in
    /// bulk. Never give it anything a client sent.
    #[doc(hidden)]
    pub async fn execute_unchecked(&self, sql: String) -> Result<u64, MetaError> {
        Ok(on_pool!(self, p => exec!(p, sqlx::AssertSqlSafe(sql))))
    }
}

/// Maps a driver error: what a retry may fix is `Unavailable`.
pub(crate) fn err(e: sqlx::Error) -> MetaError {
    use sqlx::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Protocol(_) => {
            MetaError::Unavailable(e.to_string())
        }
        E::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            // SQLite: 5 busy, 6 locked. PostgreSQL: class 08 connection, 53 resources,
            // 57P0x shutting down, 40001/40P01 serialization failure and deadlock.
            let transient = matches!(code.as_str(), "5" | "6" | "517" | "40001" | "40P01")
                || code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P");
            if transient {
                MetaError::Unavailable(d.to_string())
            } else {
                MetaError::Internal(d.to_string())
            }
        }
        E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) | E::TypeNotFound { .. } => {
            MetaError::Corrupt(e.to_string())
        }
        other => MetaError::Internal(other.to_string()),
    }
}

#[async_trait::async_trait]
impl MetadataStore for SqlMetadata {
    fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    async fn ping(&self) -> Result<(), MetaError> {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()).map_err(err))?;
        Ok(())
    }

    async fn create_image(&self, new: NewImage<'_>) -> Result<Created, MetaError> {
        images::create(self, new).await
    }
    async fn begin_upload(&self, image_id: &str, customer: &str, at: DateTime<Utc>) -> Result<(), MetaError> {
        inflight::begin(self, image_id, customer, at).await
    }
    async fn end_upload(&self, image_id: &str) -> Result<(), MetaError> {
        inflight::end(self, image_id).await
    }
    async fn claim_orphan(&self, image_id: &str, stale_before: DateTime<Utc>) -> Result<bool, MetaError> {
        inflight::claim_orphan(self, image_id, stale_before).await
    }
    async fn sweep_uploads(&self, stale_before: DateTime<Utc>) -> Result<u64, MetaError> {
        inflight::sweep(self, stale_before).await
    }
    async fn image(&self, id: &str) -> Result<Option<ImageRecord>, MetaError> {
        images::get(self, id, false).await
    }
    async fn first_attempt_at(&self, id: &str, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, MetaError> {
        let row: Option<(i64,)> = on_pool!(self, p => sqlx::query_as(
            "UPDATE images SET first_attempt_at = COALESCE(first_attempt_at, $2) WHERE id = $1 RETURNING first_attempt_at")
            .bind(id).bind(crate::meta::micros(now)).fetch_optional(p).await.map_err(err)?);
        Ok(row.map(|(us,)| crate::meta::from_micros(us)))
    }
    async fn fill_sha256(&self, id: &str, sha256: &str) -> Result<(), MetaError> {
        on_pool!(self, p => exec!(p, "UPDATE images SET sha256 = $2 WHERE id = $1 AND sha256 = ''", id, sha256));
        Ok(())
    }
    async fn list_images(&self, customer: &str, before: Option<&str>, limit: usize) -> Result<Vec<ImageRecord>, MetaError> {
        images::list(self, customer, before, limit).await
    }
    async fn idempotent_image(
        &self,
        customer: &str,
        key_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ImageRecord>, MetaError> {
        images::idempotent(self, customer, key_hash, now).await
    }
    async fn start_processing(&self, id: &str, attempt: u32) -> Result<Transition, MetaError> {
        images::start_processing(self, id, attempt).await
    }
    async fn finish_processed(
        &self,
        id: &str,
        at: DateTime<Utc>,
        size: (u32, u32),
        variants: &[VariantRecord],
    ) -> Result<Transition, MetaError> {
        images::finish_processed(self, id, at, size, variants).await
    }
    async fn fail_image(
        &self,
        id: &str,
        attempt: Option<u32>,
        at: DateTime<Utc>,
        error: &RecordError,
        any_state: bool,
    ) -> Result<Transition, MetaError> {
        images::fail(self, id, attempt, at, error, any_state).await
    }
    async fn begin_delete(&self, id: &str, at: DateTime<Utc>) -> Result<Option<ImageRecord>, MetaError> {
        images::begin_delete(self, id, at).await
    }
    async fn purge_image(&self, id: &str) -> Result<(), MetaError> {
        images::purge(self, id).await
    }
    async fn stale_tombstones(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<ImageRecord>, MetaError> {
        images::stale_tombstones(self, before, limit).await
    }
    async fn import_image(&self, rec: &ImageRecord) -> Result<bool, MetaError> {
        images::import(self, rec).await
    }
    async fn scan_images(&self, customer: &str, after: Option<&str>, limit: usize) -> Result<Vec<ImageRecord>, MetaError> {
        images::scan(self, customer, after, limit).await
    }
    async fn create_post(&self, post: &Post, at: DateTime<Utc>) -> Result<Option<Post>, MetaError> {
        posts::create_post(self, post, at).await
    }
    async fn post(&self, id: &str) -> Result<Option<Post>, MetaError> {
        posts::get(self, id).await
    }
    async fn post_views(&self, list: Vec<Post>) -> Result<Vec<PostView>, MetaError> {
        posts::views(self, list).await
    }
    async fn list_posts(
        &self,
        customer: &str,
        order: PostOrder,
        after: Option<&PostCursor>,
        limit: usize,
    ) -> Result<Vec<Post>, MetaError> {
        posts::list(self, customer, order, after, limit).await
    }
    async fn add_comments(&self, comments: &[NewComment]) -> Result<Vec<CommentOutcome>, MetaError> {
        posts::add_comments(self, comments).await
    }
    async fn list_comments(&self, post_id: &str, before: Option<&str>, limit: usize) -> Result<Vec<Comment>, MetaError> {
        posts::list_comments(self, post_id, before, limit).await
    }
    async fn delete_comment(&self, post_id: &str, comment_id: &str, at: DateTime<Utc>) -> Result<Option<Comment>, MetaError> {
        posts::delete_comment(self, post_id, comment_id, at).await
    }
    async fn delete_post(&self, id: &str, at: DateTime<Utc>) -> Result<Option<ImageRecord>, MetaError> {
        posts::delete_post(self, id, at).await
    }
    async fn claim_post_events(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PostEvent>, MetaError> {
        posts::claim_events(self, now, until, limit).await
    }
    async fn post_events_written(&self, ids: &[String], webhook_until: DateTime<Utc>) -> Result<(), MetaError> {
        posts::events_written(self, ids, webhook_until).await
    }
    async fn post_event_done(&self, id: &str) -> Result<(), MetaError> {
        posts::event_done(self, id).await
    }
    async fn post_events_len(&self) -> Result<u64, MetaError> {
        posts::events_len(self).await
    }
    async fn due_variants(&self, at: DateTime<Utc>, limit: usize) -> Result<Vec<DueVariant>, MetaError> {
        images::due_variants(self, at, limit).await
    }
    async fn mark_expired(&self, variants: &[(String, String, String)]) -> Result<u64, MetaError> {
        images::mark_expired(self, variants).await
    }
    async fn usage(&self) -> Result<Vec<(String, Figures)>, MetaError> {
        admin::usage(self).await
    }
    async fn set_usage(&self, customer: &str, figures: Figures) -> Result<(), MetaError> {
        admin::set_usage(self, customer, figures).await
    }
    async fn due_jobs(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<PendingJob>, MetaError> {
        admin::due_jobs(self, now, limit).await
    }
    async fn claim_job(&self, job: &PendingJob, retry_at: DateTime<Utc>) -> Result<bool, MetaError> {
        admin::claim_job(self, job, retry_at).await
    }
    async fn job_sent(&self, job_id: &str) -> Result<(), MetaError> {
        admin::job_sent(self, job_id).await
    }
    async fn outbox_len(&self) -> Result<u64, MetaError> {
        admin::outbox_len(self).await
    }
    async fn purge_idempotency(&self, now: DateTime<Utc>) -> Result<u64, MetaError> {
        admin::purge_idempotency(self, now).await
    }
    async fn add_key(&self, key: &ApiKey) -> Result<bool, MetaError> {
        admin::add_key(self, key).await
    }
    async fn resolve_key(&self, sha256: &str) -> Result<Option<Principal>, MetaError> {
        admin::resolve_key(self, sha256).await
    }
    async fn list_keys(&self) -> Result<Vec<ApiKey>, MetaError> {
        admin::list_keys(self).await
    }
    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, MetaError> {
        admin::revoke_key(self, id, at).await
    }
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        token: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<(String, DateTime<Utc>)>, MetaError> {
        admin::acquire_lease(self, name, owner, token, now, until).await
    }
    async fn renew_lease(&self, name: &str, token: &str, until: DateTime<Utc>) -> Result<bool, MetaError> {
        admin::renew_lease(self, name, token, until).await
    }
    async fn release_lease(&self, name: &str, token: &str) -> Result<(), MetaError> {
        admin::release_lease(self, name, token).await
    }
    async fn save_state(&self, name: &str, doc: &str, at: DateTime<Utc>) -> Result<(), MetaError> {
        admin::save_state(self, name, doc, at).await
    }
    async fn load_state(&self, name: &str) -> Result<Option<String>, MetaError> {
        admin::load_state(self, name).await
    }
    async fn create_resumable(&self, upload: &ResumableUpload) -> Result<(), MetaError> {
        resumable::insert(self, upload).await
    }
    async fn resumable(&self, id: &str) -> Result<Option<ResumableUpload>, MetaError> {
        resumable::get(self, id).await
    }
    async fn lock_resumable(&self, id: &str, token: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool, MetaError> {
        resumable::lock(self, id, token, now, until).await
    }
    async fn unlock_resumable(&self, id: &str, token: &str) -> Result<(), MetaError> {
        resumable::unlock(self, id, token).await
    }
    async fn advance_resumable(&self, upload: &ResumableUpload, from: u64, token: &str) -> Result<bool, MetaError> {
        resumable::advance(self, upload, from, token).await
    }
    async fn complete_resumable(&self, id: &str, at: DateTime<Utc>, expires: DateTime<Utc>) -> Result<(), MetaError> {
        resumable::complete(self, id, at, expires).await
    }
    async fn delete_resumable(&self, id: &str) -> Result<bool, MetaError> {
        resumable::delete(self, id).await
    }
    async fn expired_resumables(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<ResumableUpload>, MetaError> {
        resumable::expired(self, now, limit).await
    }
    async fn live_multiparts(&self) -> Result<Vec<String>, MetaError> {
        resumable::live_multiparts(self).await
    }
    async fn open_resumables(&self, customer: &str) -> Result<u64, MetaError> {
        resumable::open_count(self, customer).await
    }
}
