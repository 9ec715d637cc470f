//! Connection settings of the real test servers, exported by `scripts/test`.
//!
//! Tests that need Garage or the SQS server call these and fail loudly when the
//! variables are missing: a test against a real server never skips silently.

use crate::queue::SqsOptions;
use crate::store::S3Options;
use std::time::Duration;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: real-server tests run under `scripts/test`, which starts Garage and the SQS server")
    })
}

/// Garage, on loopback.
pub fn s3_options() -> S3Options {
    S3Options {
        bucket: var("IMAGELAKE_TEST_S3_BUCKET"),
        endpoint: Some(var("IMAGELAKE_TEST_S3_ENDPOINT")),
        region: Some(var("IMAGELAKE_TEST_S3_REGION")),
        force_path_style: true,
        checksum_when_required: true,
        credentials: Some((var("IMAGELAKE_TEST_S3_ACCESS_KEY"), var("IMAGELAKE_TEST_S3_SECRET_KEY"))),
        prefix: String::new(),
    }
}

/// The SQS server, on loopback; queue urls are filled in by `SqsQueue::create`.
pub fn sqs_options(visibility: Duration, max_receives: u32) -> SqsOptions {
    SqsOptions {
        queue_url: String::new(),
        dead_letter_url: String::new(),
        endpoint: Some(var("IMAGELAKE_TEST_SQS_ENDPOINT")),
        region: Some(var("IMAGELAKE_TEST_SQS_REGION")),
        visibility,
        max_receives,
        credentials: Some(("test".into(), "test".into())),
    }
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("imagelake-{tag}-{}", crate::ids::new_compact_id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fresh, empty PostgreSQL database on the test server (`IMAGELAKE_TEST_DATABASE_URL`,
/// exported by `scripts/test`): its URL. Each test gets its own, so tests run in parallel.
pub async fn postgres_database() -> String {
    use sqlx::Connection;
    let admin = var("IMAGELAKE_TEST_DATABASE_URL");
    let name = format!("t{}", crate::ids::new_compact_id());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to the test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("create database");
    let _ = conn.close().await;
    let (base, _) = admin.rsplit_once('/').expect("a database url ends with /dbname");
    format!("{base}/{name}")
}

/// A fresh SQLite database file: its URL.
pub fn sqlite_database() -> String {
    format!("sqlite://{}", temp_dir("meta").join("imagelake.db").display())
}
