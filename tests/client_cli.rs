//! The command-line client (`imagelake upload|status|download|list|stats`), run as the
//! real binary against a real server; and the BI files (Tableau data sources, Athena DDL)
//! checked against the lake schema in code.

mod common;

use common::cli::{cli, client, run, write_file, Run};
use common::{image_bytes, sha256_file, sha256_hex, Backend, Server, Setup};
use imagelake_core::lake::schema::schema;
use imagelake_core::lake::Table;
use imagelake_core::testing::temp_dir;
use std::time::{Duration, Instant};

#[tokio::test]
async fn upload_wait_status_list_download_and_stats() {
    let server = Setup::new(Backend::Embedded).start().await;
    let api = server.client();
    let key = server.keys.acme.clone();
    let home = temp_dir("client-home");
    let work = temp_dir("client-work");
    let jpeg = image_bytes(640, 480, image::ImageFormat::Jpeg);
    let png = image_bytes(300, 200, image::ImageFormat::Png);
    let photo = write_file(&work, "photo.jpg", &jpeg);
    // No extension: the client sniffs the type from the first bytes.
    let drawing = write_file(&work, "drawing", &png);

    // upload --wait: the id, the final status, then the variants asked for.
    let r = cli(&server, &key, &home, &work, &["upload", photo.to_str().unwrap(), "--variants", "thumb,medium", "--wait"]).await;
    assert!(r.ok, "{r:?}");
    let first: Vec<&str> = r.stdout.lines().next().unwrap().split_whitespace().collect();
    let id = first[0].to_string();
    assert_eq!(first[1], "processed", "{r:?}");
    let rec: serde_json::Value = api.get(&key, &format!("/v1/images/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(rec["status"], "processed");
    let mut names: Vec<&str> = rec["variants"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["medium", "thumb"]);
    for v in rec["variants"].as_array().unwrap() {
        let line = r
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == v["name"].as_str())
            .unwrap_or_else(|| panic!("no line for variant {v}: {r:?}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1], v["format"].as_str().unwrap(), "{line}");
        assert_eq!(cells[2], format!("{}x{}", v["width"], v["height"]), "{line}");
        assert_eq!(cells[3], v["bytes"].to_string(), "{line}");
        assert_eq!(*cells.last().unwrap(), format!("{}{}", server.url, v["url"].as_str().unwrap()), "{line}");
    }

    // upload without --wait: the id alone.
    let r = cli(&server, &key, &home, &work, &["upload", drawing.to_str().unwrap()]).await;
    assert!(r.ok, "{r:?}");
    let id2 = r.stdout.trim().to_string();
    assert_eq!(id2.lines().count(), 1, "{r:?}");
    let rec2 = api.wait_done(&key, &id2, Duration::from_secs(60)).await;
    assert_eq!(rec2["content_type"], "image/png", "the sniffed type was sent: {rec2}");

    // status: the record, readable.
    let r = cli(&server, &key, &home, &work, &["status", &id]).await;
    assert!(r.ok, "{r:?}");
    let field = |name: &str| {
        r.stdout.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_string())).unwrap_or_default()
    };
    assert_eq!(field("id"), id);
    assert_eq!(field("status"), "processed");
    assert_eq!(field("sha256"), sha256_hex(&jpeg));
    assert_eq!(field("bytes"), jpeg.len().to_string());
    assert_eq!(field("dimensions"), "640x480");
    let r = cli(&server, &key, &home, &work, &["status", &id, "--json"]).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["id"], id.as_str());

    // list: newest first, following the cursor across pages of one.
    let r = cli(&server, &key, &home, &work, &["list", "--limit", "10", "--page-size", "1"]).await;
    assert!(r.ok, "{r:?}");
    let ids: Vec<&str> = r.stdout.lines().skip(1).map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(ids, [id2.as_str(), id.as_str()], "{r:?}");
    let r = cli(&server, &key, &home, &work, &["list", "--limit", "1"]).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 2, "a header and one image: {r:?}");

    // download: the original and a variant, byte for byte, nothing left behind.
    let dl = temp_dir("client-dl");
    let r = cli(&server, &key, &home, &dl, &["download", &id, "-o", "original.jpg"]).await;
    assert!(r.ok, "{r:?}");
    let got = std::fs::read(dl.join("original.jpg")).unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&jpeg));
    assert_eq!(got, jpeg);
    let r = cli(&server, &key, &home, &dl, &["download", &id, "--variant", "thumb"]).await;
    assert!(r.ok, "{r:?}");
    let thumb = api.get(&key, &format!("/v1/images/{id}/variants/thumb")).send().await.unwrap().bytes().await.unwrap();
    let ext = match rec["variants"].as_array().unwrap().iter().find(|v| v["name"] == "thumb").unwrap()["format"].as_str().unwrap()
    {
        "jpeg" => "jpg",
        other => other,
    };
    let default_name = dl.join(format!("{id}-thumb.{ext}"));
    assert_eq!(r.stdout.trim(), default_name.file_name().unwrap().to_str().unwrap(), "{r:?}");
    assert_eq!(sha256_hex(&std::fs::read(&default_name).unwrap()), sha256_hex(&thumb));
    let r = cli(&server, &key, &home, &dl, &["download", &id, "--variant", "nosuch", "-o", "x.jpg"]).await;
    assert!(!r.ok, "{r:?}");
    assert!(!dl.join("x.jpg").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&dl)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // stats: once the reporting service sees both uploads.
    let analyst = server.keys.analyst.clone();
    let start = Instant::now();
    loop {
        let rows: serde_json::Value =
            api.get(&analyst, "/v1/stats/types?format=json").send().await.unwrap().json().await.unwrap_or_default();
        let images: i64 = rows.as_array().map(|a| a.iter().map(|r| r["images"].as_i64().unwrap_or(0)).sum()).unwrap_or(0);
        if images >= 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the types report never counted both uploads: {rows}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let expected_csv = api.get(&analyst, "/v1/stats/types?format=csv&customer=acme").send().await.unwrap().text().await.unwrap();
    let r = cli(&server, &analyst, &home, &work, &["stats", "types", "--customer", "acme", "--format", "csv"]).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.stdout.trim_end(), expected_csv.trim_end(), "csv passes the server's output through");
    let expected_json: serde_json::Value =
        api.get(&analyst, "/v1/stats/types?format=json&customer=acme").send().await.unwrap().json().await.unwrap();
    let r = cli(&server, &analyst, &home, &work, &["stats", "types", "--customer", "acme", "--format", "json"]).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap(), expected_json);
    let r = cli(&server, &analyst, &home, &work, &["stats", "types", "--customer", "acme"]).await;
    assert!(r.ok, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    let header: Vec<&str> = expected_csv.lines().next().unwrap().split(',').collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), header, "{r:?}");
    assert_eq!(lines.len(), expected_csv.trim_end().lines().count(), "one line per row: {r:?}");
    for fmt in ["jpeg", "png"] {
        let row =
            lines.iter().find(|l| l.split_whitespace().next() == Some(fmt)).unwrap_or_else(|| panic!("no {fmt} row: {r:?}"));
        assert_eq!(row.split_whitespace().nth(1), Some("1"), "{row}");
    }
    // A one-row report reads as `column value` lines.
    let r = cli(&server, &analyst, &home, &work, &["stats", "summary", "--from", "2020-01-01"]).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.stdout.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(), ["COLUMN", "VALUE"], "{r:?}");
    assert!(r.stdout.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["images", "2"]), "{r:?}");
    // An unknown report: the server's answer, and the names of the reports.
    let r = cli(&server, &analyst, &home, &work, &["stats", "nosuch"]).await;
    assert!(!r.ok && r.stderr.contains("not_found") && r.stderr.contains("processing"), "{r:?}");
    // A wrong parameter: the server's message and code.
    let r = cli(&server, &analyst, &home, &work, &["stats", "volume", "--interval", "fortnight"]).await;
    assert!(!r.ok, "{r:?}");
    assert!(r.stderr.contains("unknown interval") && r.stderr.contains("unknown_interval"), "{r:?}");
}

#[tokio::test]
async fn failures_exit_non_zero_with_the_servers_message_and_connection_precedence() {
    let server = Server::embedded().await;
    let api = server.client();
    let key = server.keys.acme.clone();
    let home = temp_dir("client-home");
    let work = temp_dir("client-work");
    let jpeg = write_file(&work, "small.jpg", &image_bytes(64, 48, image::ImageFormat::Jpeg));
    let text = write_file(&work, "notes.txt", b"this is not an image, just some text\n");

    // A text file: 415 with the server's detail and code.
    let expected: serde_json::Value =
        api.upload(&key, b"this is not an image, just some text\n".to_vec(), "text/plain").await.json().await.unwrap();
    let r = cli(&server, &key, &home, &work, &["upload", text.to_str().unwrap()]).await;
    assert!(!r.ok, "{r:?}");
    assert_eq!(r.code, Some(1));
    assert!(r.stdout.is_empty(), "{r:?}");
    assert!(r.stderr.contains(expected["detail"].as_str().unwrap()), "{r:?}\nexpected {expected}");
    assert!(r.stderr.contains(expected["code"].as_str().unwrap()), "{r:?}");

    // Several files, one refused: the others are uploaded, the exit status says so.
    let r = cli(&server, &key, &home, &work, &["upload", text.to_str().unwrap(), jpeg.to_str().unwrap()]).await;
    assert!(!r.ok, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 1, "the JPEG's id: {r:?}");
    assert!(r.stderr.contains("1 of 2 upload(s) failed") && r.stderr.contains("notes.txt"), "{r:?}");
    let id = r.stdout.trim();
    assert_eq!(api.wait_done(&key, id, Duration::from_secs(60)).await["status"], "processed");

    // An unknown key: 401 with the server's detail and code.
    let expected: serde_json::Value = api.get("ilk_not_a_key", "/v1/images").send().await.unwrap().json().await.unwrap();
    let r = cli(&server, "ilk_not_a_key", &home, &work, &["upload", jpeg.to_str().unwrap()]).await;
    assert!(!r.ok, "{r:?}");
    assert!(r.stderr.contains(expected["detail"].as_str().unwrap()), "{r:?}\nexpected {expected}");
    assert!(r.stderr.contains(expected["code"].as_str().unwrap()), "{r:?}");
    // An unknown image, and a role that may not read statistics.
    let r = cli(&server, &key, &home, &work, &["status", "0190c0de-0000-7000-8000-000000000000"]).await;
    assert!(!r.ok && r.stderr.contains("not_found"), "{r:?}");
    let r = cli(&server, &key, &home, &work, &["stats", "summary"]).await;
    assert!(!r.ok && r.stderr.contains("403"), "{r:?}");
    // Nobody listening.
    let mut c = client(&home);
    c.args(["list", "--url", "http://127.0.0.1:9", "--key", &key]);
    let r = run(c).await;
    assert!(!r.ok && r.stderr.contains("127.0.0.1:9"), "{r:?}");

    // No key anywhere: a clear message.
    let mut c = client(&home);
    c.args(["list", "--url", &server.url]);
    let r = run(c).await;
    assert!(!r.ok && r.stderr.contains("no API key") && r.stderr.contains("IMAGELAKE_KEY"), "{r:?}");

    let res = api.upload(&key, image_bytes(32, 32, image::ImageFormat::Png), "image/png").await;
    assert_eq!(res.status(), 202);

    // The profile file: top level by default, a section with --profile.
    let profile_home = temp_dir("client-profile");
    let dir = profile_home.join(".config/imagelake");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("profile.toml"),
        format!(
            "url = {:?}\nkey = {:?}\n\n[dead]\nurl = \"http://127.0.0.1:9\"\nkey = {:?}\n\n[globex]\nurl = {:?}\nkey = {:?}\n",
            server.url, key, key, server.url, server.keys.globex
        ),
    )
    .unwrap();
    let list = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = client(&profile_home);
        c.arg("list").args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        run(c)
    };
    let r = list(&[], &[]).await;
    assert!(r.ok, "the profile alone: {r:?}");
    assert_eq!(r.stdout.lines().count(), 3, "a header and acme's two images: {r:?}");
    let r = list(&[], &["--profile", "globex"]).await;
    assert!(r.ok, "a named profile: {r:?}");
    let r = list(&[("IMAGELAKE_PROFILE", "nosuch")], &[]).await;
    assert!(!r.ok && r.stderr.contains("no profile `nosuch`") && r.stderr.contains("globex"), "{r:?}");
    // env beats profile: a wrong key in IMAGELAKE_KEY is used, and refused.
    let r = list(&[("IMAGELAKE_KEY", "ilk_not_a_key")], &[]).await;
    assert!(!r.ok && r.stderr.contains("unauthorized"), "env over profile: {r:?}");
    // flag beats env.
    let r = list(&[("IMAGELAKE_KEY", "ilk_not_a_key")], &["--key", &key]).await;
    assert!(r.ok, "flag over env: {r:?}");
    // The URL too: the dead profile's URL loses to IMAGELAKE_URL, which loses to --url.
    let r = list(&[("IMAGELAKE_URL", &server.url)], &["--profile", "dead"]).await;
    assert!(r.ok, "env URL over profile: {r:?}");
    let r = list(&[("IMAGELAKE_URL", "http://127.0.0.1:9")], &["--url", &server.url]).await;
    assert!(r.ok, "flag URL over env: {r:?}");
    let r = list(&[], &["--profile", "dead"]).await;
    assert!(!r.ok && r.stderr.contains("127.0.0.1:9"), "the profile's URL is used: {r:?}");
    // Each key sees its own customer's images only.
    let r = list(&[], &["--profile", "globex"]).await;
    assert_eq!(r.stdout.lines().count(), 1, "globex has no image: {r:?}");
}

/// A refused upload ends with one line on stderr, the server's code in it, and exit status 1,
/// whatever RUST_BACKTRACE says (an error returned from `main` printed a backtrace); through
/// the plain upload and the resumable one.
#[tokio::test]
async fn a_refused_upload_is_one_line_whatever_rust_backtrace_says() {
    let server = Server::embedded().await;
    let key = server.keys.acme.clone();
    let home = temp_dir("client-home");
    let work = temp_dir("client-work");
    let pdf = write_file(&work, "x.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    for (var, value) in [("RUST_BACKTRACE", "1"), ("RUST_BACKTRACE", "full"), ("RUST_LIB_BACKTRACE", "1")] {
        for resumable in ["64MiB", "0"] {
            let mut c = client(&home);
            c.current_dir(&work).env(var, value).args(["upload", pdf.to_str().unwrap(), "--resumable-above", resumable]);
            c.args(["--url", &server.url, "--key", &key]);
            let r = run(c).await;
            let what = format!("{var}={value}, --resumable-above {resumable}: {r:?}");
            assert_eq!(r.code, Some(1), "{what}");
            assert!(r.stdout.is_empty(), "{what}");
            let lines: Vec<&str> = r.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "one line: {what}");
            let line = lines[0];
            assert!(line.starts_with("error: upload of ") && line.contains("x.pdf refused: "), "{what}");
            assert!(line.contains("(code unsupported_media_type"), "{what}");
            assert!(!r.stderr.to_lowercase().contains("backtrace"), "{what}");
            assert!(!r.stderr.lines().any(|l| l.trim_start().starts_with("at ")), "{what}");
        }
    }
    // Another subcommand's error: the same single line.
    let mut c = client(&home);
    c.env("RUST_BACKTRACE", "1").args(["status", "0190c0de-0000-7000-8000-000000000000", "--url", &server.url, "--key", &key]);
    let r = run(c).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.starts_with("error: ") && r.stderr.contains("code not_found"), "{r:?}");
}

// --- BI files -------------------------------------------------------------------------

/// The Arrow type's kind from its Debug form (`Utf8`, `Int32`, `Int64`, `Timestamp(..)`):
/// the root crate does not depend on arrow itself.
fn kind(debug: &str) -> &'static str {
    match debug.split('(').next().unwrap() {
        "Utf8" => "Utf8",
        "Int32" => "Int32",
        "Int64" => "Int64",
        "Timestamp" => "Timestamp",
        other => panic!("a lake column of type {other}: map it in the BI files and here"),
    }
}

fn tableau_type(debug: &str) -> &'static str {
    match kind(debug) {
        "Utf8" => "string",
        "Int32" | "Int64" => "integer",
        _ => "datetime",
    }
}

fn athena_type(debug: &str) -> &'static str {
    match kind(debug) {
        "Utf8" => "string",
        "Int32" => "int",
        "Int64" => "bigint",
        _ => "timestamp",
    }
}

fn duckdb_type(debug: &str) -> &'static str {
    match kind(debug) {
        "Utf8" => "VARCHAR",
        "Int32" => "INTEGER",
        "Int64" => "BIGINT",
        // The data sources hand Tableau UTC wall-clock times.
        _ => "TIMESTAMP",
    }
}

#[tokio::test]
async fn bi_files_match_the_lake_schema() {
    // At run time: a shared target dir may hold a binary built in another clone.
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    // A small synthetic lake, for DuckDB to run each data source's SQL over.
    let data = temp_dir("bi-lake");
    let mut c = client(&data);
    c.args(["lake", "generate", "--images", "200", "--customers", "4", "--days", "3"]).env("IMAGELAKE_DATA_DIR", &data);
    let r = run(c).await;
    assert!(r.ok, "{r:?}");
    let lake = data.join("store/objects/lake");
    let out = std::process::Command::new(common::lake::python())
        .arg(format!("{root}/tests/peers/bi_files.py"))
        .arg(&root)
        .arg("--lake")
        .arg(&lake)
        .output()
        .expect("run the Python peer (the venv of scripts/install.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bi_files.py failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");

    // The aggregates' files are checked against the tables DuckDB makes
    // (core/src/lake/agg_bi_tests.rs).
    let tds: Vec<&serde_json::Value> = got["tableau"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| !d["file"].as_str().unwrap_or_default().starts_with("imagelake_agg_"))
        .collect();
    let ddl: Vec<&serde_json::Value> =
        got["athena"].as_array().unwrap().iter().filter(|d| d["file"] != "aggregates.sql").collect();
    assert_eq!(tds.len(), Table::ALL.len(), "one .tds per lake table");
    assert_eq!(ddl.len(), Table::ALL.len(), "one DDL per lake table");
    for table in Table::ALL {
        let name = table.name();
        let s = schema(table);
        // Tableau: the schema's columns, in order, then the partition `dt`.
        let mut want: Vec<(String, String)> =
            s.fields().iter().map(|f| (f.name().clone(), tableau_type(&format!("{:?}", f.data_type())).to_string())).collect();
        want.push(("dt".into(), "date".into()));
        let src = tds
            .iter()
            .find(|d| d["relation"]["name"] == name)
            .unwrap_or_else(|| panic!("no Tableau data source for table {name}"));
        assert_eq!(src["file"], format!("imagelake_{name}.tds"));
        assert_eq!(src["connection_class"], "genericjdbc");
        assert_eq!(src["relation"]["type"], "text");
        let sql = src["relation"]["sql"].as_str().unwrap();
        assert!(sql.contains(&format!("'${{LAKE}}/{name}/*/*.parquet'")), "{name}: {sql}");
        assert!(sql.contains("PARTITION BY event_id"), "{name} deduplicates: {sql}");
        let records: Vec<(String, String)> = src["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["name"].as_str().unwrap().to_string(), r["type"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(records, want, "{name}.tds metadata records vs core/src/lake/schema.rs");
        for (i, r) in src["records"].as_array().unwrap().iter().enumerate() {
            assert_eq!(r["ordinal"], i + 1);
            assert_eq!(r["local_name"], format!("[{}]", r["name"].as_str().unwrap()));
            let nullable = s.fields().get(i).map(|f| f.is_nullable()).unwrap_or(false);
            assert_eq!(r["nullable"], nullable, "{name}.{}: contains-null", r["name"]);
        }
        let columns: Vec<(String, String)> = src["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap().trim_matches(['[', ']']).to_string(), c["type"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(columns, want, "{name}.tds <column>s vs core/src/lake/schema.rs");
        // DuckDB answers exactly those columns, one row per event.
        if let Some(ran) = got["duckdb"].get(name) {
            let mut want: Vec<(String, String)> =
                s.fields().iter().map(|f| (f.name().clone(), duckdb_type(&format!("{:?}", f.data_type())).to_string())).collect();
            want.push(("dt".into(), "DATE".into()));
            let cols: Vec<(String, String)> = ran["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c[0].as_str().unwrap().to_string(), c[1].as_str().unwrap().to_string()))
                .collect();
            assert_eq!(cols, want, "{name}.tds run by DuckDB");
            assert!(ran["rows"].as_u64().unwrap() > 0);
            assert_eq!(ran["rows"], ran["distinct_event_ids"]);
        }

        // Athena: the same columns with Hive types; dt is the projected partition.
        let d = ddl.iter().find(|d| d["table"] == name).unwrap_or_else(|| panic!("no Athena DDL for table {name}"));
        assert_eq!(d["file"], format!("{name}.sql"));
        let cols: Vec<(String, String)> = d["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c[0].as_str().unwrap().to_string(), c[1].as_str().unwrap().to_string()))
            .collect();
        let want: Vec<(String, String)> =
            s.fields().iter().map(|f| (f.name().clone(), athena_type(&format!("{:?}", f.data_type())).to_string())).collect();
        assert_eq!(cols, want, "sql/athena/{name}.sql vs core/src/lake/schema.rs");
        assert_eq!(d["partitions"], serde_json::json!([["dt", "string"]]));
        assert_eq!(d["stored_as"], "PARQUET");
        assert_eq!(d["location"], format!("s3://${{BUCKET}}/${{PREFIX}}lake/{name}/"));
        let p = &d["properties"];
        assert_eq!(p["projection.enabled"], "true");
        assert_eq!(p["projection.dt.type"], "date");
        assert_eq!(p["projection.dt.format"], "yyyy-MM-dd");
        assert_eq!(p["projection.dt.range"], "2024-01-01,NOW");
        assert_eq!(p["storage.location.template"], format!("s3://${{BUCKET}}/${{PREFIX}}lake/{name}/dt=${{dt}}/"));
    }
}

/// Runs the client and samples its peak resident memory (VmHWM) until it exits.
async fn run_measuring_memory(mut c: tokio::process::Command) -> (Run, u64) {
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let pid = child.id().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = tokio::spawn(async move {
        let mut s = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut s).await.unwrap();
        s
    });
    let err = tokio::spawn(async move {
        let mut s = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut s).await.unwrap();
        s
    });
    let mut peak_kb = 0u64;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(kb) =
                s.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        assert!(start.elapsed() < Duration::from_secs(300), "the client did not finish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let run = Run {
        ok: status.success(),
        code: status.code(),
        stdout: String::from_utf8_lossy(&out.await.unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.await.unwrap()).into_owned(),
    };
    (run, peak_kb * 1024)
}

#[tokio::test]
async fn a_large_file_streams_both_ways_in_bounded_memory() {
    const SIZE: u64 = 192 << 20;
    let server = Server::embedded().await;
    let key = server.keys.acme.clone();
    let home = temp_dir("client-home");
    let work = temp_dir("client-large");
    // A JPEG signature and then zeros (a sparse file): accepted and stored as it is;
    // its processing fails later, which does not matter here.
    let big = work.join("big.jpg");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&big).unwrap();
        f.write_all(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0]).unwrap();
        f.set_len(SIZE).unwrap();
    }
    // Over 64 MiB the upload is resumable (tus, 64 MiB PATCHes); --resumable-above 1GiB
    // makes it one POST. Both stream.
    for resumable_above in ["64MiB", "1GiB"] {
        let mut c = client(&home);
        c.current_dir(&work).args(["upload", big.to_str().unwrap(), "--resumable-above", resumable_above]);
        c.args(["--url", &server.url, "--key", &key]);
        let (r, peak) = run_measuring_memory(c).await;
        assert!(r.ok, "{r:?}");
        assert!(peak < 96 << 20, "the upload of {SIZE} bytes (above {resumable_above}) peaked at {peak} bytes resident");
        let id = r.stdout.trim().to_string();
        // A resumable upload's SHA-256 is filled in by the processor, as it reads the original.
        let rec = server.client().wait_done(&key, &id, Duration::from_secs(120)).await;
        assert_eq!(rec["bytes"], SIZE);

        let mut c = client(&home);
        c.current_dir(&work).args(["download", &id, "-o", "back.jpg", "--url", &server.url, "--key", &key]);
        let (r, peak) = run_measuring_memory(c).await;
        assert!(r.ok, "{r:?}");
        assert!(peak < 96 << 20, "the download of {SIZE} bytes peaked at {peak} bytes resident");
        let back = work.join("back.jpg");
        assert_eq!(std::fs::metadata(&back).unwrap().len(), SIZE);
        assert_eq!(sha256_file(&back), rec["sha256"].as_str().unwrap());
        std::fs::remove_file(&back).unwrap();
    }
    let _ = std::fs::remove_dir_all(&work);
}
