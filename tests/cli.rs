//! The command line: zero-configuration `serve`, the first-start admin key, `keys add`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imagelake"));
    for (k, _) in std::env::vars() {
        if k.starts_with("IMAGELAKE_") {
            c.env_remove(k);
        }
    }
    c
}

/// Starts `serve` in `dir` with no configuration at all; returns the child, its URL and
/// the admin key it printed (if it printed one).
fn serve_in(dir: &std::path::Path) -> (std::process::Child, String, Option<String>) {
    let mut child = bin()
        .arg("serve")
        .current_dir(dir)
        // The one deviation from zero configuration: a free port instead of 8080.
        .env("IMAGELAKE_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut url = String::new();
    let mut key = None;
    while let Some(Ok(line)) = lines.next() {
        if let Some(u) = line.strip_prefix("imagelake listening on ") {
            url = u.trim().to_string();
        }
        if line.trim().starts_with("ilk_") {
            key = Some(line.trim().to_string());
        }
        if line.trim_start().starts_with("try:") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, url, key)
}

#[tokio::test]
async fn zero_configuration_serve_prints_a_key_once_and_answers() {
    let dir = imagelake_core::testing::temp_dir("cli");
    let (mut child, url, key) = serve_in(&dir);
    let key = key.expect("first start prints an admin key");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let http = reqwest::Client::new();
    let wait = async {
        loop {
            if let Ok(r) = http.get(format!("{url}/healthz")).send().await {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let health = tokio::time::timeout(Duration::from_secs(30), wait).await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!((ready["store"].as_str(), ready["queue"].as_str()), (Some("local"), Some("local")));
    // The key works, and only its hash is on disk under ./data.
    let list = http.get(format!("{url}/v1/images")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(list.status(), 200);
    let stored = std::fs::read_to_string(dir.join("data/keys.toml")).unwrap();
    assert!(!stored.contains(&key));
    assert!(stored.contains(&imagelake_core::auth::hash_key(&key)));
    assert!(dir.join("data/queue/queue.redb").exists());
    child.kill().unwrap();
    child.wait().unwrap();

    // A second start finds the key and prints none.
    let (mut child, _, again) = serve_in(&dir);
    assert_eq!(again, None);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn keys_add_appends_a_hash_to_the_config_file() {
    let dir = imagelake_core::testing::temp_dir("cli-keys");
    let cfg = dir.join("imagelake.toml");
    std::fs::write(&cfg, "# my settings\nlisten = \"127.0.0.1:9\"\n").unwrap();
    let out = bin()
        .args(["keys", "add", "--customer", "acme", "--role", "analyst", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("ilk_") && key.len() > 40);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.starts_with("# my settings"), "comments kept");
    let config = imagelake_core::config::Config::load(Some(&cfg), Vec::new()).unwrap();
    let keys = imagelake_core::auth::KeyStore::new(&config.keys);
    let p = keys.resolve(&key).expect("the printed key resolves");
    assert_eq!((p.customer.as_str(), p.role), ("acme", imagelake_core::auth::Role::Analyst));

    let bad = bin().args(["keys", "add", "--customer", "../evil", "--role", "admin", "--config"]).arg(&cfg).output().unwrap();
    assert!(!bad.status.success());
    let bad = bin().args(["keys", "add", "--customer", "acme", "--role", "root"]).output().unwrap();
    assert!(!bad.status.success());
}
