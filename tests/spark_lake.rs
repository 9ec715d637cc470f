//! The lake read by Apache Spark (issue 18): `scripts/spark_reports.py` computes the
//! customers and volume reports with Spark SQL (PySpark from PyPI, local mode, on Debian's
//! OpenJDK 17) over a lake the real binary generated, and every figure equals the answer of
//! the statistics API (the real `imagelake reporting`) for the same range: one that starts
//! and ends on whole UTC days (volume by day), and one that starts and ends inside days,
//! 09:17 to 16:43 (volume by hour). Copies of some files stand for facts written twice
//! (a redelivery, an interrupted compaction); both sides count them once.
//!
//! Needs the test venv's pyspark (`scripts/requirements-test.txt`, installed by
//! `scripts/install.sh`) and Java 17 (`JAVA_HOME`, set by `scripts/test`, else Debian's
//! `/usr/lib/jvm/java-17-openjdk-amd64`, else `java`): without them the test fails, saying
//! what is missing.

mod common;

use chrono::NaiveDate;
use common::lake::python;
use imagelake_core::auth::{generate_key, hash_key};
use imagelake_core::testing;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IMAGES: u64 = 20_000;
const CUSTOMERS: usize = 5;
const DAYS: i64 = 10;
/// The JDK scripts/spark_reports.py uses when JAVA_HOME is not set.
const DEBIAN_JDK: &str = "/usr/lib/jvm/java-17-openjdk-amd64";
/// One run of the script: Spark starts in ~10 s and answers in ~10 s more on 2 cores.
const SPARK_LIMIT: Duration = Duration::from_secs(600);
/// Columns of doubles; every other column is compared exactly.
const RATES: [&str; 1] = ["failure_rate"];
/// From the daily aggregates (rollups), percentiles come from histograms of values rounded
/// to 2 %: within 1 % of the exact ones (sql/README.md).
const PERCENTILES: [&str; 2] = ["p50_processing_ms", "p95_processing_ms"];

/// `imagelake reporting` (the statistics API alone: no processor, no lifecycle job moving
/// files under Spark's feet), stopped when dropped.
struct Reporting {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Reporting {
    fn start(config: &Path, log: PathBuf) -> Reporting {
        let mut child = Command::new(env!("CARGO_BIN_EXE_imagelake"))
            .arg("--config")
            .arg(config)
            .arg("reporting")
            .env_remove("IMAGELAKE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("spawn imagelake reporting");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("imagelake listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => Reporting { child, url, log },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("imagelake reporting did not start; log:\n{}", std::fs::read_to_string(log.as_path()).unwrap_or_default())
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Reporting {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Java PySpark will start: JAVA_HOME's, else Debian's OpenJDK 17, else `java`.
fn java() -> PathBuf {
    match std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join("bin/java"),
        None if Path::new(DEBIAN_JDK).is_dir() => Path::new(DEBIAN_JDK).join("bin/java"),
        None => PathBuf::from("java"),
    }
}

/// Fails (never skips) when the test venv has no pyspark or there is no Java 17 or later.
fn require_spark() {
    let py = python();
    let out = Command::new(&py)
        .args(["-c", "import pyspark; print(pyspark.__version__)"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py} ({e}): the test venv is made by scripts/install.sh (run scripts/test)"));
    assert!(
        out.status.success(),
        "pyspark is not installed in {py}: scripts/install.sh installs scripts/requirements-test.txt (run scripts/test)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pyspark = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let java = java();
    let out = Command::new(&java).arg("-version").output().unwrap_or_else(|e| {
        panic!(
            "cannot run {} ({e}): Spark needs Java 17 (Debian's openjdk-17-jre-headless; scripts/test sets JAVA_HOME)",
            java.display()
        )
    });
    // `openjdk version "17.0.15" 2025-04-15`, on stderr.
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let major = text.split('"').nth(1).and_then(|v| v.split('.').next()).and_then(|m| m.parse::<u32>().ok());
    assert!(
        out.status.success() && major.is_some_and(|m| m >= 17),
        "Spark 4 needs Java 17 or later; {} says:\n{text}",
        java.display()
    );
    println!("pyspark {pyspark} on {}", text.lines().next().unwrap_or_default());
}

/// The days of the lake's partitions of `table`, sorted.
fn days(lake: &Path, table: &str) -> Vec<NaiveDate> {
    let mut days: Vec<NaiveDate> = std::fs::read_dir(lake.join(table))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| NaiveDate::parse_from_str(name.strip_prefix("dt=")?, "%Y-%m-%d").ok())
        .collect();
    days.sort();
    days
}

/// Copies the first Parquet file of the first and the last partition of `table` beside
/// itself, under another name: every fact in it is then in the lake twice.
fn duplicate_facts(lake: &Path, table: &str) -> usize {
    let all = days(lake, table);
    let mut copied = 0;
    for day in [all.first(), all.last()].into_iter().flatten() {
        let dir = lake.join(table).join(format!("dt={day}"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        files.sort();
        if let Some(f) = files.first() {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::copy(f, dir.join(format!("zz-copy-of-{name}"))).unwrap();
            copied += 1;
        }
    }
    copied
}

/// A report from the API, and whether its percentiles may come from the daily aggregates
/// (rollups).
async fn api(http: &reqwest::Client, server: &Reporting, key: &str, path: &str) -> (serde_json::Value, bool) {
    let res = http.get(format!("{}{path}", server.url)).bearer_auth(key).send().await.unwrap();
    let status = res.status();
    let headers = res.headers();
    let aggregated = headers.contains_key("rollup-watermark")
        || headers
            .get("lake-aggregated-days")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    let body = res.text().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}\nlog:\n{}", server.log());
    (serde_json::from_str(&body).unwrap(), aggregated)
}

/// `scripts/spark_reports.py LAKE --from --to --interval`: {"customers": [...], "volume": [...]}.
fn spark(lake: &Path, from: &str, to: &str, interval: &str, out_dir: &Path) -> serde_json::Value {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let (out, err) = (out_dir.join(format!("spark-{interval}.json")), out_dir.join(format!("spark-{interval}.log")));
    let mut child = Command::new(python())
        .arg(format!("{root}/scripts/spark_reports.py"))
        .arg(lake)
        .args(["--from", from, "--to", to, "--interval", interval])
        .stdin(Stdio::null())
        .stdout(File::create(out.as_path()).unwrap())
        .stderr(File::create(err.as_path()).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("run {} ({e})", python()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > SPARK_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "spark_reports.py still running after {SPARK_LIMIT:?}:\n{}",
                std::fs::read_to_string(err.as_path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = std::fs::read_to_string(err.as_path()).unwrap_or_default();
    assert!(status.success(), "spark_reports.py {from} {to} {interval} failed ({status}):\n{log}");
    println!("spark_reports.py {from} {to} {interval}: {:.1} s", started.elapsed().as_secs_f64());
    let text = std::fs::read_to_string(out.as_path()).unwrap();
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("spark_reports.py printed no JSON ({e}):\n{text}\n{log}"))
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-9)
}

/// Asserts the same rows, in the same order, with the same columns and figures; returns
/// how many figures were compared.
fn assert_same(what: &str, api: &serde_json::Value, spark: &serde_json::Value, aggregated: bool) -> usize {
    let (a, s) = (api.as_array().expect("API rows"), spark.as_array().expect("Spark rows"));
    assert_eq!(a.len(), s.len(), "{what}: {} rows from the API, {} from Spark\napi: {api}\nspark: {spark}", a.len(), s.len());
    let mut figures = 0;
    for (ra, rs) in a.iter().zip(s) {
        let (oa, os) = (ra.as_object().unwrap(), rs.as_object().unwrap());
        let mut columns: Vec<&String> = oa.keys().collect();
        let mut spark_columns: Vec<&String> = os.keys().collect();
        columns.sort();
        spark_columns.sort();
        assert_eq!(columns, spark_columns, "{what}: not the same columns\napi: {ra}\nspark: {rs}");
        for (k, va) in oa {
            let vs = &os[k];
            let rel = if PERCENTILES.contains(&k.as_str()) {
                Some(if aggregated { 0.011 } else { 1e-9 })
            } else if RATES.contains(&k.as_str()) {
                Some(1e-12)
            } else {
                None
            };
            let ok = match (rel, va.as_f64(), vs.as_f64()) {
                (Some(rel), Some(x), Some(y)) => close(x, y, rel),
                (Some(_), _, _) => va.is_null() && vs.is_null(),
                (None, _, _) => va == vs,
            };
            assert!(ok, "{what} `{k}`: API {va}, Spark {vs}\napi:   {ra}\nspark: {rs}");
            figures += 1;
        }
    }
    figures
}

fn total(rows: &serde_json::Value, column: &str) -> u64 {
    rows.as_array().unwrap().iter().map(|r| r[column].as_u64().unwrap_or_else(|| panic!("`{column}` in {r}"))).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_computes_the_customers_and_volume_reports_as_the_api_does() {
    require_spark();
    let data = testing::temp_dir("spark-lake");
    let key = generate_key();
    let config = data.join("imagelake.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[[keys]]\nsha256 = \"{}\"\ncustomer = \"ops\"\nrole = \"admin\"\n",
            data.display().to_string(),
            hash_key(&key)
        ),
    )
    .unwrap();

    // Ten days of synthetic history, ending now.
    let out = Command::new(env!("CARGO_BIN_EXE_imagelake"))
        .arg("--config")
        .arg(&config)
        .args(["lake", "generate", "--images", &IMAGES.to_string(), "--customers", &CUSTOMERS.to_string()])
        .args(["--days", &DAYS.to_string(), "--seed", "18"])
        .env_remove("IMAGELAKE_CONFIG")
        .output()
        .expect("run imagelake lake generate");
    assert!(out.status.success(), "lake generate: {}", String::from_utf8_lossy(&out.stderr));
    let lake = data.join("store/objects/lake");
    for table in ["uploads", "jobs", "variants", "deletions", "posts", "comments"] {
        assert!(duplicate_facts(&lake, table) > 0, "no file of {table} in {}", lake.display());
    }
    let upload_days = days(&lake, "uploads");
    let (first, last) = (upload_days[0], upload_days[upload_days.len() - 1]);
    assert_eq!((last - first).num_days() + 1, DAYS, "{upload_days:?}");

    // The closed days' aggregates, as the lifecycle makes them: the API reads them (and the
    // raw facts of today and of the edge hours), Spark reads the raw facts.
    let out = Command::new(env!("CARGO_BIN_EXE_imagelake"))
        .arg("--config")
        .arg(&config)
        .args(["lake", "aggregate"])
        .env_remove("IMAGELAKE_CONFIG")
        .output()
        .expect("run imagelake lake aggregate");
    assert!(out.status.success(), "lake aggregate: {}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    // "N days with facts, C already current, B aggregated (...)": every closed day (the day
    // before today is closed 30 minutes after midnight).
    let built: i64 = said.split(", ").nth(2).and_then(|p| p.split(' ').next()?.parse().ok()).unwrap_or(0);
    assert!(built >= DAYS - 2, "every closed day aggregated: {said}");
    let server = Reporting::start(&config, data.join("reporting.log"));
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http.get(format!("{}/healthz", server.url)).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "healthz never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let next = |d: NaiveDate| d.succ_opt().unwrap();
    let cases = [
        // Whole days: every fact of the lake (days may come from the daily aggregates).
        (format!("{first}T00:00:00Z"), format!("{}T00:00:00Z", next(last)), "day"),
        // Inside days at both ends, several days apart.
        (format!("{}T09:17:00Z", next(first)), format!("{}T16:43:00Z", last.pred_opt().unwrap()), "hour"),
    ];
    let mut figures = 0;
    for (n, (from, to, interval)) in cases.iter().enumerate() {
        let (customers, c_aggregated) = api(&http, &server, &key, &format!("/v1/stats/customers?from={from}&to={to}")).await;
        let (volume, v_aggregated) =
            api(&http, &server, &key, &format!("/v1/stats/volume?from={from}&to={to}&interval={interval}")).await;
        let (lake_dir, out_dir, (f, t, i)) = (lake.clone(), data.clone(), (from.clone(), to.clone(), interval.to_string()));
        let by_spark = tokio::task::spawn_blocking(move || spark(&lake_dir, &f, &t, &i, &out_dir)).await.unwrap();
        figures += assert_same(&format!("customers {from}..{to}"), &customers, &by_spark["customers"], c_aggregated);
        figures += assert_same(&format!("volume {from}..{to} by {interval}"), &volume, &by_spark["volume"], v_aggregated);

        // Not vacuous: every customer, and every kind of figure, is there.
        assert_eq!(customers.as_array().unwrap().len(), CUSTOMERS, "{customers}");
        for column in ["uploads", "processed", "failed", "posts", "comments"] {
            assert!(total(&customers, column) > 0, "no {column}: {customers}");
        }
        let buckets: Vec<&str> = volume.as_array().unwrap().iter().map(|r| r["bucket"].as_str().unwrap()).collect();
        if n == 0 {
            // Each fact once, although some files are there twice.
            assert_eq!(total(&customers, "uploads"), IMAGES, "{customers}");
            assert_eq!(total(&volume, "uploads"), IMAGES, "{volume}");
            assert!(total(&volume, "expired") > 0, "variants expire after 7 of the 10 days: {volume}");
            assert_eq!(buckets.len() as i64, DAYS, "{buckets:?}");
            assert_eq!(buckets[0], format!("{first}T00:00:00"));
        } else {
            // Hours cut by the range's edges are there, with the facts inside the range.
            assert_eq!(buckets.first().copied(), Some(format!("{}T09:00:00", next(first)).as_str()), "{buckets:?}");
            assert_eq!(buckets.last().copied(), Some(format!("{}T16:00:00", last.pred_opt().unwrap()).as_str()), "{buckets:?}");
        }
    }
    println!("{figures} figures equal in the API's and Spark's answers");
}
