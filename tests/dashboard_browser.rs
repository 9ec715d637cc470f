//! The web dashboard in a real browser: the real `imagelake serve` (embedded backend) over a
//! generated 30-day lake plus images uploaded and processed by the server itself, driven by
//! headless Chromium through Selenium (`tests/peers/dashboard_check.py`), which compares
//! every figure the page shows with the statistics API's answer for the same key and range,
//! changes the range, and checks the empty and error states.
//!
//! Needs `chromium` and `chromium-driver` (Debian packages, installed by `scripts/install.sh`)
//! and the test venv with `selenium`. Screenshots are written to
//! `$CARGO_TARGET_DIR/test-artifacts/dashboard*.png` (the path is printed).

mod common;

use common::{image_bytes, lake::python, Server};
use image::ImageFormat;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `$CARGO_TARGET_DIR/test-artifacts`, or beside the binary under test when the variable
/// is not set (the binary is `TARGET/release/imagelake`).
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_BIN_EXE_imagelake")).parent().and_then(Path::parent).unwrap().to_path_buf());
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn find_program(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: run scripts/install.sh (Debian packages chromium, chromium-driver)")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_api_figures_in_a_real_browser() {
    let chromium = find_program("chromium");
    let chromedriver = find_program("chromedriver");
    let mut server = Server::embedded().await;

    // A realistic lake: 30 days of synthetic history, written into the server's own store
    // while it is stopped (the embedded queue is one process's), then the server again.
    server.kill9();
    let out = Command::new(env!("CARGO_BIN_EXE_imagelake"))
        .arg("--config")
        .arg(&server.config_file)
        .args(["lake", "generate", "--images", "3000", "--customers", "12", "--days", "30", "--seed", "11"])
        .output()
        .expect("run imagelake lake generate");
    assert!(out.status.success(), "lake generate: {}", String::from_utf8_lossy(&out.stderr));
    server.spawn(&[]).await;

    // And today's real uploads, processed by the real pipeline (one corrupt: a failure).
    let c = server.client();
    let mut ids = Vec::new();
    for (key, w, fmt) in [
        (&server.keys.acme, 640, ImageFormat::Jpeg),
        (&server.keys.acme, 320, ImageFormat::Png),
        (&server.keys.globex, 800, ImageFormat::Jpeg),
    ] {
        let res = c.upload(key, image_bytes(w, w * 3 / 4, fmt), "application/octet-stream").await;
        assert_eq!(res.status(), 202);
        ids.push((key.clone(), res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()));
    }
    let mut corrupt = image_bytes(640, 480, ImageFormat::Jpeg);
    corrupt.truncate(600);
    let res = c.upload(&server.keys.globex, corrupt, "image/jpeg").await;
    assert_eq!(res.status(), 202);
    ids.push((server.keys.globex.clone(), res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()));
    for (key, id) in &ids {
        c.wait_done(key, id, Duration::from_secs(60)).await;
    }
    // The processed records are durable in the lake; wait until the reports see them.
    let started = Instant::now();
    loop {
        let s: serde_json::Value =
            c.get(&server.keys.analyst, "/v1/stats/customers?customer=globex").send().await.unwrap().json().await.unwrap();
        if s[0]["processed"] == 1 && s[0]["failed"] == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the reports never saw the uploads: {s}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let artifacts = artifacts_dir();
    let script = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("tests/peers/dashboard_check.py");
    let url = server.url.clone();
    let key = server.keys.analyst.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .args(["--url", &url, "--key", &key, "--artifacts"])
            .arg(&artifacts)
            .arg("--chromium")
            .arg(chromium)
            .arg("--chromedriver")
            .arg(chromedriver)
            .output()
            .expect("run tests/peers/dashboard_check.py (the venv of scripts/install.sh)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(out.status.success(), "dashboard_check.py failed:\n{stdout}\n{stderr}\nserver log:\n{}", server.log());
    println!("dashboard check: {stdout}");
    println!("screenshots: {}", artifacts_dir().join("dashboard.png").display());
}
