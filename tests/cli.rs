//! The command line: zero-configuration `serve`, the first-start admin key, the README's
//! quick-start as written, `keys add|list|revoke` against a running server.

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
/// the admin key from the file whose path it printed (if it printed one).
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
        assert!(!line.contains("ilk_"), "a key is printed: {line}");
        if let Some(rest) = line.trim().strip_prefix("admin key: ") {
            let path = dir.join(rest.split(" (").next().unwrap());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{} is readable by others", path.display());
            }
            key = Some(std::fs::read_to_string(&path).unwrap().trim().to_string());
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
    assert_eq!(
        (ready["store"].as_str(), ready["queue"].as_str(), ready["database"].as_str()),
        (Some("local"), Some("local"), Some("sqlite"))
    );
    // The key works, and only its hash is on disk under ./data (the SQLite file and its WAL).
    let list = http.get(format!("{url}/v1/images")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(list.status(), 200);
    let mut stored = Vec::new();
    for f in ["data/imagelake.db", "data/imagelake.db-wal"] {
        stored.extend(std::fs::read(dir.join(f)).unwrap_or_default());
    }
    let stored = String::from_utf8_lossy(&stored);
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

/// The README's "Try it with curl" block, run by bash as written: only `scripts/run` is
/// replaced by the binary it runs, and port 8080 by the test server's port. The server is
/// already running when `keys add` makes the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quick_start_runs_as_written() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let section = &readme[readme.find("## Try it with curl").expect("the README has the section")..];
    let start = section.find("```sh\n").expect("a shell block") + 6;
    let block = &section[start..start + section[start..].find("```").unwrap()];
    assert!(block.contains("keys add") && block.contains("/v1/images"), "{block}");

    let dir = imagelake_core::testing::temp_dir("readme");
    let photo = {
        let img = image::RgbImage::from_fn(320, 240, |x, y| image::Rgb([x as u8, y as u8, (x ^ y) as u8]));
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img).write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    };
    std::fs::write(dir.join("photo.jpg"), &photo).unwrap();
    let (mut child, url, admin) = serve_in(&dir);
    assert!(admin.is_some());
    // The last curl prints JSON without a newline.
    let script = format!("set -eu\n{}\necho\necho \"ID=$ID\"\n", block)
        .replace("scripts/run", env!("CARGO_BIN_EXE_imagelake"))
        .replace("http://127.0.0.1:8080", &url);
    let mut cmd = Command::new("timeout");
    cmd.args(["120", "bash", "-c", &script]).current_dir(&dir);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IMAGELAKE_")) {
        cmd.env_remove(k);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let id = stdout.lines().find_map(|l| l.strip_prefix("ID=")).unwrap().to_string();
    assert!(imagelake_core::ids::is_valid_id(&id), "{id}");
    assert!(stdout.contains(&format!("{{\"items\":[{{\"id\":\"{id}\"")), "the listing shows it first: {stdout}");
    assert_eq!(std::fs::read(dir.join("orig.jpg")).unwrap(), photo, "the original comes back as uploaded");
    let thumb = std::fs::read(dir.join("thumb.webp")).unwrap();
    assert!(thumb.starts_with(b"RIFF") && &thumb[8..12] == b"WEBP", "a WebP thumbnail");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `keys add`, `keys list` and `keys revoke` act on a running server at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_take_effect_on_a_running_server() {
    let dir = imagelake_core::testing::temp_dir("cli-keys");
    let (mut child, url, _) = serve_in(&dir);
    let keys = |args: &[&str]| {
        let out = bin().arg("keys").args(args).current_dir(&dir).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, key, err) = keys(&["add", "--customer", "acme", "--role", "analyst"]);
    assert!(ok, "{err}");
    let key = key.trim().to_string();
    assert!(key.starts_with("ilk_") && key.len() > 40);
    let http = reqwest::Client::new();
    let stats = || http.get(format!("{url}/v1/images?limit=1")).bearer_auth(&key).send();
    assert_eq!(stats().await.unwrap().status(), 200, "a key added to a running server works at once");
    let (ok, list, _) = keys(&["list"]);
    assert!(ok);
    let id = imagelake_core::auth::hash_key(&key)[..16].to_string();
    let line = list.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{list}"));
    assert!(line.contains("acme") && line.contains("analyst") && line.contains("cli"), "{line}");
    assert!(!list.contains(&key), "keys are never shown");
    let (ok, _, err) = keys(&["revoke", &id]);
    assert!(ok, "{err}");
    let revoked_at = std::time::Instant::now();
    loop {
        let status = stats().await.unwrap().status();
        if status == 401 {
            break;
        }
        assert!(revoked_at.elapsed() < Duration::from_secs(1), "a revoked key stops working within a second");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ok, _, _) = keys(&["revoke", &id]);
    assert!(!ok, "revoking twice is an error");
    let (ok, _, _) = keys(&["add", "--customer", "../evil", "--role", "admin"]);
    assert!(!ok);
    let (ok, _, _) = keys(&["add", "--customer", "acme", "--role", "root"]);
    assert!(!ok);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `db import` reads the record objects an earlier version wrote into the database,
/// idempotently, and reports what it did; the imported images then answer through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_import_brings_old_records_in_once() {
    use imagelake_core::record::{ImageRecord, Status};
    let dir = imagelake_core::testing::temp_dir("import");
    let store = imagelake_core::store::LocalStore::open(dir.join("data/store")).unwrap();
    use imagelake_core::store::ObjectStore;
    let id = imagelake_core::ids::new_id();
    let rec = ImageRecord {
        id: id.clone(),
        customer: "acme".into(),
        status: Status::Processed,
        content_type: "image/png".into(),
        format: "png".into(),
        bytes: 1234,
        width: Some(10),
        height: Some(20),
        sha256: "ab".repeat(32),
        uploaded_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        processed_at: Some(chrono::DateTime::from_timestamp(1_700_000_005, 0).unwrap()),
        error: None,
        exif: None,
        requested_variants: vec!["thumb".into()],
        variants: Vec::new(),
        attempts: 1,
        callback_url: None,
    };
    store.put(&format!("records/acme/{id}.json"), serde_json::to_vec(&rec).unwrap().into()).await.unwrap();
    store.put("records/acme/not-a-record.json", bytes::Bytes::from_static(b"{oops")).await.unwrap();
    store.put(&format!("listing/acme/{}", "0".repeat(32)), bytes::Bytes::new()).await.unwrap();
    let import = || {
        let out = bin().args(["db", "import"]).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = import();
    assert!(first.starts_with("2 record objects read: 1 imported, 0 already in the database, 1 unreadable"), "{first}");
    assert!(first.contains("records/acme/not-a-record.json"), "{first}");
    let second = import();
    assert!(second.starts_with("2 record objects read: 0 imported, 1 already in the database, 1 unreadable"), "{second}");

    let (mut child, url, admin) = serve_in(&dir);
    let admin = admin.expect("no key yet: an admin key is printed");
    let got: serde_json::Value = reqwest::Client::new()
        .get(format!("{url}/v1/images/{id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(serde_json::from_value::<ImageRecord>(got).unwrap(), rec, "the record reads back as it was");
    child.kill().unwrap();
    child.wait().unwrap();
}
