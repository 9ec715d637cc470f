//! Lake benchmarks (run by `scripts/bench-lake.sh`):
//!
//!   lake_bench encode ROWS            uploads-shaped rows through `lake::encode`, rows/s
//!   lake_bench generate IMAGES CUSTOMERS DAYS DIR
//!                                     `imagelake_lakegen::generate` into DIR, then per table
//!                                     rows, bytes and bytes/row; then compacts closed days
//!                                     and reports the sizes again.

use chrono::{Duration, TimeZone, Utc};
use imagelake_core::lake::compact::{compact_days, parse_table, DEFAULT_TARGET_BYTES};
use imagelake_core::lake::{encode, Event, Table, UploadRow};
use imagelake_core::store::{list_all, LocalStore, SharedStore};
use imagelake_lakegen::{generate, GenerateOptions};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

fn uploads(n: usize) -> Vec<Event> {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    let formats = [("jpeg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp")];
    (0..n)
        .map(|i| {
            let image_id = uuid::Uuid::now_v7().to_string();
            let (f, ct) = formats[i % 3];
            let h = imagelake_core::ids::event_id(&["sha", &i.to_string()]);
            Event::Upload(UploadRow {
                event_id: UploadRow::event_id_of(&image_id),
                image_id,
                customer_id: format!("cust-{:05}", (i * 7919) % 1000 / (1 + i % 50)),
                uploaded_at: t0 + Duration::microseconds(i as i64 * 86_400_000_000 / n as i64),
                content_type: ct.into(),
                format: f.into(),
                bytes: 50_000 + (i as u64 * 104_729) % 5_000_000,
                width: Some(4032),
                height: Some(3024),
                sha256: format!("{h}{h}"),
            })
        })
        .collect()
}

async fn sizes(store: &SharedStore) -> BTreeMap<Table, (u64, u64)> {
    let mut m = BTreeMap::new();
    for t in Table::ALL {
        let files = list_all(store.as_ref(), &format!("lake/{}/", t.name())).await.unwrap();
        m.insert(t, (files.len() as u64, files.iter().map(|f| f.size).sum::<u64>()));
    }
    m
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("encode") => {
            let rows: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
            let file_rows = 100_000;
            let events = uploads(rows);
            // Warm up once, then measure.
            let _ = encode(Table::Uploads, &events[..file_rows.min(rows)]).unwrap();
            let start = Instant::now();
            let mut bytes = 0usize;
            for chunk in events.chunks(file_rows) {
                bytes += encode(Table::Uploads, chunk).unwrap().len();
            }
            let s = start.elapsed().as_secs_f64();
            println!(
                "encode uploads: {rows} rows in {s:.3} s = {:.0} rows/s; {} files of {file_rows} rows, {bytes} bytes = {:.1} bytes/row",
                rows as f64 / s,
                rows.div_ceil(file_rows),
                bytes as f64 / rows as f64
            );
        }
        Some("generate") => {
            let n = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
            let dir = args.get(4).cloned().unwrap_or_else(|| "/tmp/imagelake-bench-lake".into());
            let store: SharedStore = Arc::new(LocalStore::open(&dir).unwrap());
            let opts = GenerateOptions {
                images: n(1, 1_000_000),
                customers: n(2, 1000) as u32,
                days: n(3, 30) as u32,
                seed: 42,
                end: Utc.with_ymd_and_hms(2026, 11, 20, 23, 59, 0).unwrap(),
                file_rows: 1_000_000,
                // Optional fifth argument: only these tables (comma-separated).
                only: args.get(5).map(|s| s.split(',').filter_map(parse_table).collect()).unwrap_or_default(),
            };
            let r = generate(&store, opts.clone()).await.unwrap();
            println!(
                "generate: {} images, {} customers, {} days: {} rows, {} files, {} bytes in {:.1} s = {:.0} rows/s",
                opts.images,
                opts.customers,
                opts.days,
                r.total_rows(),
                r.files,
                r.bytes,
                r.seconds,
                r.total_rows() as f64 / r.seconds
            );
            for (t, rows) in &r.rows {
                let (files, bytes) = sizes(&store).await[t];
                println!(
                    "  {:<10} {rows:>12} rows {files:>5} files {bytes:>14} bytes {:>7.1} bytes/row",
                    t.name(),
                    bytes as f64 / *rows as f64
                );
            }
            let start = Instant::now();
            let reports =
                compact_days(&store, opts.end.date_naive() + Duration::days(1), false, &[], DEFAULT_TARGET_BYTES, "bench")
                    .await
                    .unwrap();
            let done: Vec<_> = reports.iter().filter(|r| !r.skipped).collect();
            println!(
                "compact: {} partitions ({} already compact) in {:.1} s",
                done.len(),
                reports.len() - done.len(),
                start.elapsed().as_secs_f64()
            );
            let after = sizes(&store).await;
            let mut total = 0;
            for (t, rows) in &r.rows {
                let (files, bytes) = after[t];
                total += bytes;
                println!(
                    "  {:<10} {rows:>12} rows {files:>5} files {bytes:>14} bytes {:>7.1} bytes/row (compacted)",
                    t.name(),
                    bytes as f64 / *rows as f64
                );
            }
            println!(
                "  all        {:>12} rows             {total:>14} bytes {:>7.1} bytes/event",
                r.total_rows(),
                total as f64 / r.total_rows() as f64
            );
        }
        _ => {
            eprintln!("usage: lake_bench encode ROWS | lake_bench generate IMAGES CUSTOMERS DAYS DIR");
            std::process::exit(2);
        }
    }
}
