//! What the database conformance suites share: a fresh database of each kind, and the
//! macro that runs every case against both.

#![allow(dead_code)]

use imagelake_core::meta::SqlMetadata;
use imagelake_core::testing;
use std::sync::Arc;

/// A fresh SQLite file.
pub async fn sqlite() -> Arc<SqlMetadata> {
    Arc::new(SqlMetadata::connect(&testing::sqlite_database(), 8, std::time::Duration::from_secs(10)).await.unwrap())
}

/// A fresh database on the PostgreSQL server that `scripts/test` starts.
pub async fn postgres() -> Arc<SqlMetadata> {
    Arc::new(SqlMetadata::connect(&testing::postgres_database().await, 8, std::time::Duration::from_secs(10)).await.unwrap())
}

/// `conformance!(case_a, case_b)`: each `async fn case(db: Arc<SqlMetadata>)` becomes
/// `sqlite::case` and `postgres::case`.
#[macro_export]
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case($crate::common::sqlite().await).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case($crate::common::postgres().await).await } )*
        }
    };
}
