//! The lake's daily aggregates, kept in this process's memory as DuckDB tables a day at a
//! time (the reports' macros, sql/facts.sql, read them):
//! - `agg_*`: each aggregate table, with its `dt`, loaded from the aggregated days' files
//!   (but `agg_job_ms_hour`, which a query reads from its edge days' files: edges.rs).
//!   In memory, a query's filter on `dt` skips the other days' rows by the tables' zone
//!   maps, at a planning cost that does not grow with the days: a view listing a year of
//!   files took DuckDB 5 ms to plan, per view and query;
//! - `stored_by_day`: each aggregated day's net stored bytes per customer (its uploads'
//!   and variants' bytes less its deletions'), for the all-time figures;
//! - `post_comment_totals`: each post's comments made (`created`) over the aggregated days,
//!   at least its count in any range of them: the engagement report ranks the posts that
//!   can reach its bar alone (sql/reports/engagement.sql). It changes by the loaded and
//!   dropped days' sums (a delta), not by a count of every post;
//! - `agg_job_lag()`: a constant, the most days between a job's enqueue day and the day
//!   its last attempt finished, over the aggregated days. A report reads the jobs'
//!   aggregates from that many days before its range, and no earlier.
//!
//! A day is loaded when its aggregates become current and dropped when they stop being
//! (a late fact, a new fingerprint, the aggregates switched off), so the cost follows the
//! days that changed, not the lake. Nothing here is made from raw facts: every instance
//! reads the same aggregate files. The changes run in the transaction that re-creates the
//! views, so a query sees a day on one side only.

use crate::objects::read_parquet;
use chrono::NaiveDate;
use duckdb::Connection;
use imagelake_core::lake::agg::Agg;
use std::collections::BTreeMap;

/// The aggregates kept here: all but those read from their files (`Agg::in_memory`).
fn kept() -> impl Iterator<Item = Agg> {
    Agg::ALL.into_iter().filter(|a| a.in_memory())
}

/// The tables and the macro, empty; the aggregates' columns come from their stand-ins in
/// `schema` (objects::EMPTY_AGG_SCHEMA).
pub fn create_sql(schema: &str) -> String {
    let mut sql: String =
        kept().map(|a| format!("CREATE TABLE {0} AS SELECT *, NULL::DATE AS dt FROM {schema}.{0};\n", a.name())).collect();
    sql.push_str("CREATE TABLE stored_by_day (dt DATE, customer_id VARCHAR, bytes BIGINT);\nCREATE MACRO agg_job_lag() AS 0;\n");
    sql.push_str("CREATE TABLE post_comment_totals (post_id VARCHAR, customer_id VARCHAR, created BIGINT);");
    sql
}

/// Adds `post_comment_delta` (rows of post, customer, comments) to `post_comment_totals`:
/// the posts it has are updated, the others inserted, and a post whose total fell to 0
/// (its days dropped) removed.
const POST_TOTALS_SQL: &str = "
CREATE OR REPLACE TEMP TABLE post_comment_change AS
SELECT post_id, any_value(customer_id) AS customer_id, sum(created)::BIGINT AS created
FROM post_comment_delta GROUP BY post_id HAVING sum(created) <> 0;
UPDATE post_comment_totals SET created = post_comment_totals.created + c.created
FROM post_comment_change c WHERE post_comment_totals.post_id = c.post_id;
INSERT INTO post_comment_totals SELECT * FROM post_comment_change ANTI JOIN post_comment_totals USING (post_id);
DELETE FROM post_comment_totals WHERE created = 0;
DROP TABLE post_comment_delta;
DROP TABLE post_comment_change;
";

/// The days loaded now: each one's fingerprint and job lag (days).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    days: BTreeMap<NaiveDate, (String, i64)>,
}

/// The SQL that brings the memory to a new set of current days, and the state after it.
pub struct Update {
    pub sql: String,
    pub after: Memory,
}

impl Memory {
    /// What to run so that the memory holds `current` (day → fingerprint) and nothing else;
    /// `None` when it already does. `file(agg, day, fingerprint)` is the quoted path of an
    /// aggregate's file. Reads the lag of the days it loads from their `agg_jobs` files.
    pub fn update(
        &self,
        conn: &Connection,
        current: &BTreeMap<NaiveDate, String>,
        file: impl Fn(Agg, NaiveDate, &str) -> String,
    ) -> Result<Option<Update>, duckdb::Error> {
        let drop: Vec<NaiveDate> = self.days.iter().filter(|(d, (fp, _))| current.get(*d) != Some(fp)).map(|(d, _)| *d).collect();
        let load: Vec<(NaiveDate, &String)> =
            current.iter().filter(|(d, fp)| self.days.get(*d).map(|(f, _)| f) != Some(*fp)).map(|(d, fp)| (*d, fp)).collect();
        if drop.is_empty() && load.is_empty() {
            return Ok(None);
        }
        let mut after = self.clone();
        let mut sql = String::new();
        let dates =
            |days: &mut dyn Iterator<Item = NaiveDate>| days.map(|d| format!("DATE '{d}'")).collect::<Vec<_>>().join(", ");
        // The post totals' change: the dropped days' rows, negated (read before they go),
        // and the loaded days' (after they come).
        sql.push_str("CREATE OR REPLACE TEMP TABLE post_comment_delta (post_id VARCHAR, customer_id VARCHAR, created BIGINT);\n");
        if !drop.is_empty() {
            let days = dates(&mut drop.iter().copied());
            sql.push_str(&format!(
                "INSERT INTO post_comment_delta SELECT post_id, customer_id, -created FROM agg_post_comments WHERE dt IN ({days});\n"
            ));
            for table in kept().map(|a| a.name()).chain(["stored_by_day"]) {
                sql.push_str(&format!("DELETE FROM {table} WHERE dt IN ({days});\n"));
            }
            for d in &drop {
                after.days.remove(d);
            }
        }
        if !load.is_empty() {
            let read = |a: Agg| read_parquet(&load.iter().map(|(d, fp)| file(a, *d, fp)).collect::<Vec<_>>());
            for a in kept() {
                sql.push_str(&format!("INSERT INTO {} BY NAME SELECT * FROM {};\n", a.name(), read(a)));
            }
            let days = dates(&mut load.iter().map(|(d, _)| *d));
            sql.push_str(&format!(
                "INSERT INTO post_comment_delta SELECT post_id, customer_id, created FROM agg_post_comments WHERE dt IN ({days});\n"
            ));
            sql.push_str(&format!(
                "INSERT INTO stored_by_day
                 SELECT dt, customer_id, sum(bytes)::BIGINT FROM (
                     SELECT dt, customer_id, bytes FROM agg_uploads
                     UNION ALL SELECT dt, customer_id, bytes FROM agg_variants
                     UNION ALL SELECT dt, customer_id, -bytes FROM agg_deletions WHERE reason <> 'abandoned'
                 ) WHERE dt IN ({days}) GROUP BY ALL;\n"
            ));
            let lags: BTreeMap<NaiveDate, i64> = conn
                .prepare(&format!(
                    "SELECT dt::VARCHAR, coalesce(max(hour)::DATE - dt, 0)::BIGINT FROM {} GROUP BY dt",
                    read(Agg::Jobs)
                ))?
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .filter_map(|r| r.ok().and_then(|(d, lag)| d.parse().ok().map(|d| (d, lag))))
                .collect();
            for (d, fp) in &load {
                after.days.insert(*d, ((*fp).clone(), lags.get(d).copied().unwrap_or(0).max(0)));
            }
        }
        sql.push_str(POST_TOTALS_SQL);
        if after.job_lag() != self.job_lag() {
            sql.push_str(&format!("CREATE OR REPLACE MACRO agg_job_lag() AS {};\n", after.job_lag()));
        }
        Ok(Some(Update { sql, after }))
    }

    /// The most days a job of an aggregated day finished after it was enqueued.
    pub fn job_lag(&self) -> i64 {
        self.days.values().map(|(_, lag)| *lag).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    /// Writes one day's aggregate files under `root` (the three stored-bytes tables, post
    /// state and jobs with rows, the others empty), with `lag` days between the day and its
    /// jobs' last finish.
    fn write_day(conn: &Connection, root: &std::path::Path, d: NaiveDate, fp: &str, bytes: i64, lag: i64) {
        let rows = [
            (Agg::Uploads, format!("SELECT 'c1' AS customer_id, {bytes}::BIGINT AS bytes")),
            (Agg::Variants, "SELECT 'c1' AS customer_id, 10::BIGINT AS bytes".to_string()),
            (Agg::Deletions, "SELECT 'c1' AS customer_id, 'expired' AS reason, 1::BIGINT AS bytes".to_string()),
            (
                Agg::PostState,
                format!(
                    "SELECT 'p{d}' AS post_id, 'c1' AS customer_id, NULL::VARCHAR AS author, \
                     TIMESTAMPTZ '{d} 10:00:00+00' AS published_at, NULL::TIMESTAMPTZ AS deleted_at"
                ),
            ),
            (
                Agg::PostComments,
                format!(
                    "SELECT 'c1' AS customer_id, post_id, DATE '{d}' AS day, n::BIGINT AS created, 0::BIGINT AS deleted \
                     FROM (VALUES ('p{d}', 1), ('shared', {bytes} // 50)) v(post_id, n)"
                ),
            ),
            (Agg::Jobs, format!("SELECT (DATE '{d}' + INTERVAL {lag} DAY + INTERVAL 3 HOUR)::TIMESTAMP AS hour")),
        ];
        for a in Agg::ALL {
            let sql = rows
                .iter()
                .find(|(r, _)| *r == a)
                .map(|(_, s)| s.clone())
                .unwrap_or(format!("SELECT * FROM agg_empty.{}", a.name()));
            let dir = root.join(format!("{}/dt={d}", a.name()));
            std::fs::create_dir_all(&dir).unwrap();
            conn.execute_batch(&format!("COPY ({sql}) TO '{}/{fp}.parquet' (FORMAT parquet)", dir.display())).unwrap();
        }
    }

    #[test]
    fn days_load_and_drop_as_their_aggregates_come_and_go() {
        let tmp = tempfile::tempdir().unwrap();
        let conn = Connection::open_in_memory().unwrap();
        let schema = "agg_empty";
        imagelake_core::lake::aggregate::create_empty(&conn, schema).unwrap();
        conn.execute_batch(&create_sql(schema)).unwrap();
        let file = |a: Agg, d: NaiveDate, fp: &str| format!("'{}/{}/dt={d}/{fp}.parquet'", tmp.path().display(), a.name());
        write_day(&conn, tmp.path(), day(1), "f1", 100, 0);
        write_day(&conn, tmp.path(), day(2), "f2", 200, 3);
        write_day(&conn, tmp.path(), day(2), "g2", 250, 1);
        let apply = |m: &Memory, current: &[(u32, &str)]| -> Memory {
            let current: BTreeMap<NaiveDate, String> = current.iter().map(|(d, f)| (day(*d), f.to_string())).collect();
            match m.update(&conn, &current, file).unwrap() {
                Some(u) => {
                    conn.execute_batch(&format!("BEGIN; {} COMMIT;", u.sql)).unwrap();
                    u.after
                }
                None => m.clone(),
            }
        };
        let stored =
            || -> i64 { conn.query_row("SELECT coalesce(sum(bytes), 0)::BIGINT FROM stored_by_day", [], |r| r.get(0)).unwrap() };
        let posts = || -> i64 { conn.query_row("SELECT count(*) FROM agg_post_state", [], |r| r.get(0)).unwrap() };
        let totals = || -> String {
            conn.query_row(
                "SELECT string_agg(post_id || '=' || created, ' ' ORDER BY post_id) FROM post_comment_totals",
                [],
                |r| r.get::<_, Option<String>>(0),
            )
            .unwrap()
            .unwrap_or_default()
        };
        let lag = || -> i64 { conn.query_row("SELECT agg_job_lag()", [], |r| r.get(0)).unwrap() };
        let uploads = || -> String {
            conn.query_row("SELECT string_agg(dt::VARCHAR || '=' || bytes, ' ' ORDER BY dt) FROM agg_uploads", [], |r| r.get(0))
                .unwrap_or_default()
        };

        let m = apply(&Memory::default(), &[(1, "f1"), (2, "f2")]);
        assert_eq!((stored(), posts(), lag()), (100 + 10 - 1 + 200 + 10 - 1, 2, 3));
        assert_eq!(uploads(), "2026-11-01=100 2026-11-02=200");
        assert_eq!(totals(), "p2026-11-01=1 p2026-11-02=1 shared=6");
        assert!(m.update(&conn, &[(day(1), "f1".into()), (day(2), "f2".into())].into(), file).unwrap().is_none());
        // Day 2 aggregated again (a late fact): its rows are replaced, the lag follows.
        let m = apply(&m, &[(1, "f1"), (2, "g2")]);
        assert_eq!((stored(), posts(), lag()), (109 + 259, 2, 1));
        assert_eq!(uploads(), "2026-11-01=100 2026-11-02=250");
        assert_eq!(totals(), "p2026-11-01=1 p2026-11-02=1 shared=7");
        // Day 1 no longer current (read raw): it leaves the memory.
        let m = apply(&m, &[(2, "g2")]);
        assert_eq!((stored(), posts(), lag()), (259, 1, 1));
        assert_eq!(uploads(), "2026-11-02=250");
        assert_eq!(totals(), "p2026-11-02=1 shared=5");
        let m = apply(&m, &[]);
        assert_eq!((stored(), posts(), lag(), m.job_lag()), (0, 0, 0, 0));
        assert_eq!(totals(), "");
    }
}
