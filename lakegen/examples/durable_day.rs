//! A day of facts written the way the processor writes them (run by
//! `scripts/bench-reporting-durable.sh`):
//!
//!   durable_day write DIR IMAGES CONCURRENCY [PART PARTS [BATCH]]
//!       today's facts of IMAGES processed images (an upload, a succeeded job and the
//!       four default variants each) through `LakeWriter::write_durable`, one call per image from
//!       CONCURRENCY tasks, as the processor's workers call it: every call flushes what is
//!       buffered, so the lake gets the processor's small files. Into the local store
//!       DIR/store (the layout of a data directory). Prints files written and seconds.
//!       With PART and PARTS, only the PART-th of PARTS equal slices of the images (0-based),
//!       which are also the PART-th slice of today's time: a day written an hour at a time,
//!       with the hourly compaction between the slices. With BATCH, BATCH images per
//!       call (fewer, larger files: for slices whose small files are measured by nobody).
//!   durable_day compact DIR
//!       the lifecycle's hourly compaction (`compact_days` with the current day's writer
//!       files), timed.

use chrono::{Duration, Utc};
use imagelake_core::clock::SystemClock;
use imagelake_core::config::LakeConfig;
use imagelake_core::lake::compact::{compact_days, DEFAULT_TARGET_BYTES};
use imagelake_core::lake::{AttemptStatus, Event, JobRow, LakeWriter, UploadRow, VariantRow};
use imagelake_core::store::{list_all, LocalStore, SharedStore};
use std::sync::Arc;
use std::time::Instant;

/// The processor's default presets: name, format, longest edge.
const VARIANTS: [(&str, &str, u32); 4] =
    [("thumb", "webp", 120), ("small", "webp", 160), ("medium", "jpeg", 400), ("web", "webp", 2048)];

/// Image `i`'s facts: uploaded at a time of today before `now`, processed a few seconds later.
fn facts(i: u64, images: u64, now: chrono::DateTime<Utc>) -> Vec<Event> {
    let midnight = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let span = (now - midnight - Duration::minutes(1)).num_microseconds().unwrap_or(1).max(1);
    let uploaded_at = midnight + Duration::microseconds(span * i as i64 / images.max(1) as i64);
    // A few big customers and a long tail.
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let customer = format!("cust-{:03}", ((h >> 40) % 1000) * ((h >> 20) % 1000) / 5000);
    let image_id = uuid::Uuid::now_v7().to_string();
    let job_id = uuid::Uuid::now_v7().to_string();
    let (format, content_type) = [("jpeg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp")][(h % 3) as usize];
    let bytes = 200_000 + (h >> 8) % 4_000_000;
    let started = uploaded_at + Duration::milliseconds(200 + (h % 800) as i64);
    let finished = started + Duration::milliseconds(150 + (h >> 16) as i64 % 900);
    let mut events = vec![Event::Upload(UploadRow {
        event_id: UploadRow::event_id_of(&image_id),
        image_id: image_id.clone(),
        customer_id: customer.clone(),
        uploaded_at,
        content_type: content_type.into(),
        format: format.into(),
        bytes,
        width: Some(4000),
        height: Some(3000),
        sha256: format!("{h:064x}"),
    })];
    let mut output = 0;
    for (name, vformat, edge) in VARIANTS {
        let vbytes = u64::from(edge) * u64::from(edge) / 20;
        output += vbytes;
        events.push(Event::Variant(VariantRow {
            event_id: VariantRow::event_id_of(&image_id, name, vformat),
            image_id: image_id.clone(),
            customer_id: customer.clone(),
            variant: name.into(),
            format: vformat.into(),
            width: edge,
            height: edge * 3 / 4,
            bytes: vbytes,
            created_at: started,
            expires_at: started + Duration::days(7),
        }));
    }
    events.push(Event::Job(JobRow {
        event_id: JobRow::event_id_of(&job_id, 1),
        job_id,
        image_id,
        customer_id: customer,
        attempt: 1,
        status: AttemptStatus::Succeeded,
        enqueued_at: uploaded_at,
        started_at: started,
        finished_at: finished,
        duration_ms: (finished - started).num_milliseconds(),
        error_code: None,
        output_bytes: output,
    }));
    events
}

async fn lake_files(store: &SharedStore) -> usize {
    list_all(store.as_ref(), "lake/").await.map(|v| v.len()).unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: durable_day write DIR IMAGES CONCURRENCY [PART PARTS [BATCH]] | durable_day compact DIR";
    let dir = std::path::PathBuf::from(args.get(2).expect(usage));
    let store: SharedStore = Arc::new(LocalStore::open(dir.join("store")).expect("open the store"));
    let started = Instant::now();
    match args.get(1).map(String::as_str) {
        Some("write") => {
            let images: u64 = args.get(3).and_then(|s| s.parse().ok()).expect(usage);
            let concurrency: u64 = args.get(4).and_then(|s| s.parse().ok()).expect(usage);
            let part: u64 = args.get(5).map_or(Some(0), |s| s.parse().ok()).expect(usage);
            let parts: u64 = args.get(6).map_or(Some(1), |s| s.parse().ok()).filter(|&p| p > part).expect(usage);
            let batch: u64 = args.get(7).map_or(Some(1), |s| s.parse().ok()).filter(|&b| b > 0).expect(usage);
            let (first, end) = (images * part / parts, images * (part + 1) / parts);
            let writer = LakeWriter::new(store.clone(), "bench-processor", LakeConfig::default(), Arc::new(SystemClock));
            let now = Utc::now();
            let tasks: Vec<_> = (0..concurrency)
                .map(|t| {
                    let writer = writer.clone();
                    tokio::spawn(async move {
                        let mut i = first + t * batch;
                        while i < end {
                            let events = (i..(i + batch).min(end)).flat_map(|j| facts(j, images, now)).collect();
                            writer.write_durable(events).await.expect("write_durable");
                            i += concurrency * batch;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{{\"images\": {}, \"part\": {part}, \"concurrency\": {concurrency}, \"files\": {}, \"write_s\": {secs:.1}}}",
                end - first,
                lake_files(&store).await
            );
        }
        Some("compact") => {
            let today = Utc::now().date_naive();
            let before = lake_files(&store).await;
            let reports = compact_days(&store, today, true, &[], DEFAULT_TARGET_BYTES, "bench-lifecycle").await.expect("compact");
            let merged: usize = reports.iter().map(|r| r.inputs).sum();
            println!(
                "{{\"files_before\": {before}, \"merged\": {merged}, \"files_after\": {}, \"compact_s\": {:.1}}}",
                lake_files(&store).await,
                started.elapsed().as_secs_f64()
            );
        }
        _ => panic!("{usage}"),
    }
}
