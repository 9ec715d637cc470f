//! Reading the lake a test server wrote, with the Python peers (`tests/peers/check_lake.py`).

use super::{Backend, Server};
use imagelake_core::store::list_all;
use imagelake_core::testing;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python with duckdb, pyarrow and polars (set by `scripts/test`).
pub fn python() -> String {
    std::env::var("IMAGELAKE_TEST_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/imagelake/venv/bin/python", std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
    })
}

/// A local directory holding the server's lake (`uploads/`, `jobs/`, ...).
pub async fn lake_dir(server: &Server) -> PathBuf {
    match server.backend {
        Backend::Embedded => server.data_dir.join("store/objects/lake"),
        Backend::Servers | Backend::ServersPostgres => {
            let store = server.store().await;
            let dir = testing::temp_dir("lake-copy");
            for m in list_all(store.as_ref(), "lake/").await.unwrap() {
                let body = store.get(&m.key, None).await.unwrap().bytes().await.unwrap();
                let path = dir.join(&m.key);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, body).unwrap();
            }
            dir.join("lake")
        }
    }
}

/// Runs the peer check; panics with its output unless it passes. Returns its JSON summary.
pub fn check_lake(lake: &Path, args: &[String]) -> serde_json::Value {
    // At run time: a shared target dir may hold a binary built in another clone.
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = Command::new(python())
        .arg(format!("{root}/tests/peers/check_lake.py"))
        .arg(lake)
        .arg("--views")
        .arg(format!("{root}/sql/views.sql"))
        .args(args)
        .output()
        .expect("run the Python peer (the venv of scripts/install.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check_lake.py failed on {}:\n{stdout}\n{}",
        lake.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("JSON summary")
}
