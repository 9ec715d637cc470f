//! Shared by the reporting crate's tests: a configuration on a temp data_dir with one key
//! per role, and a small lake of known facts.
#![allow(dead_code)]

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use imagelake_core::auth::{hash_key, Role};
use imagelake_core::config::{Config, KeyConfig};
use imagelake_core::lake::{
    CommentRow, DeletionKind, DeletionReason, DeletionRow, Event, JobRow, PostRow, UploadRow, UsageRow, VariantRow,
};
use imagelake_core::units::Dur;
use std::time::Duration;

pub const ANALYST: &str = "ilk_test_analyst";
pub const ADMIN: &str = "ilk_test_admin";
pub const UPLOADER: &str = "ilk_test_uploader";

pub fn config(tag: &str) -> Config {
    let mut c = Config { data_dir: imagelake_core::testing::temp_dir(tag), ..Config::default() };
    c.keys = vec![
        KeyConfig { sha256: hash_key(ANALYST), customer: "acme".into(), role: Role::Analyst, all_customers: true },
        KeyConfig { sha256: hash_key(ADMIN), customer: "ops".into(), role: Role::Admin, all_customers: false },
        KeyConfig { sha256: hash_key(UPLOADER), customer: "acme".into(), role: Role::Uploader, all_customers: false },
    ];
    c.reporting.cache_ttl = Dur(Duration::from_millis(50));
    c.capacity.bytes.0 = 50_000_000;
    c
}

pub fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, minute, 0).unwrap()
}

/// Sixty uploads over nine days by three customers: first-time successes, a retry that
/// succeeds, failures for good, an image never attempted, expired variants, a deleted
/// original, usage snapshots (three for the whole lake, one for acme), and posts with
/// comments (see [`post_events`]).
pub fn lake_events() -> Vec<Vec<Event>> {
    let customers = ["acme", "acme", "globex", "globex", "initech"];
    let formats = [("jpeg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp"), ("gif", "image/gif")];
    let mut batches: Vec<Vec<Event>> = vec![Vec::new(), Vec::new(), Vec::new()];
    for i in 0..60u32 {
        let customer = customers[i as usize % 5].to_string();
        let (format, content_type) = formats[i as usize % 4];
        let uploaded = at(1 + i % 9, i % 24, (i * 7) % 60);
        let bytes = 1_000 + (i as u64 * 7_919) % 50_000;
        let image_id = format!("img-{i:03}");
        let upload = UploadRow {
            event_id: format!("up-{i}"),
            image_id: image_id.clone(),
            customer_id: customer.clone(),
            uploaded_at: uploaded,
            content_type: content_type.into(),
            format: format.into(),
            bytes,
            width: (i % 11 != 0).then_some(100 + i * 13),
            height: (i % 11 != 0).then_some(80 + i * 7),
            sha256: format!("sha-{i}"),
        };
        let b = &mut batches[i as usize % 3];
        b.push(Event::Upload(upload));
        let statuses: &[&str] = match i % 10 {
            0..=6 => &["succeeded"],
            7 => &["failed", "succeeded"],
            8 => &["failed", "dead_lettered"],
            _ => &[],
        };
        let enqueued = uploaded + ChronoDuration::seconds(1);
        let mut finished = enqueued;
        for (n, status) in statuses.iter().enumerate() {
            let attempt = n as u32 + 1;
            let started = enqueued + ChronoDuration::milliseconds(((i % 7) as i64 + 1) * 100 + n as i64 * 2_000);
            let duration_ms = 100 + (i as i64 * 37) % 900;
            finished = started + ChronoDuration::milliseconds(duration_ms);
            b.push(Event::Job(JobRow {
                event_id: format!("job-{i}-{attempt}"),
                job_id: format!("job-{i}"),
                image_id: image_id.clone(),
                customer_id: customer.clone(),
                attempt,
                status: status.parse().unwrap(),
                enqueued_at: enqueued,
                started_at: started,
                finished_at: finished,
                duration_ms,
                error_code: (*status != "succeeded").then(|| "decode_failed".into()),
                output_bytes: if *status == "succeeded" { bytes / 3 } else { 0 },
            }));
        }
        if statuses.last() == Some(&"succeeded") {
            for (v, div) in [("thumb", 20u64), ("medium", 5), ("webp", 6)] {
                let expires = finished + ChronoDuration::days(7);
                b.push(Event::Variant(VariantRow {
                    event_id: format!("var-{i}-{v}"),
                    image_id: image_id.clone(),
                    customer_id: customer.clone(),
                    variant: v.into(),
                    format: if v == "webp" { "webp".into() } else { "jpeg".into() },
                    width: 400,
                    height: 300,
                    bytes: bytes / div,
                    created_at: finished,
                    expires_at: expires,
                }));
                if i % 9 < 2 {
                    b.push(Event::Deletion(DeletionRow {
                        event_id: format!("del-{i}-{v}"),
                        image_id: image_id.clone(),
                        customer_id: customer.clone(),
                        kind: DeletionKind::Variant,
                        variant: Some(v.into()),
                        bytes: bytes / div,
                        reason: DeletionReason::Expired,
                        deleted_at: expires + ChronoDuration::seconds(30),
                    }));
                }
            }
        }
        post_events(i, &image_id, &customer, uploaded, statuses, finished, b);
        if i % 13 == 0 {
            b.push(Event::Deletion(DeletionRow {
                event_id: format!("del-{i}-original"),
                image_id: image_id.clone(),
                customer_id: customer.clone(),
                kind: DeletionKind::Original,
                variant: None,
                bytes,
                reason: DeletionReason::Deleted,
                deleted_at: at(10, 12, 0),
            }));
        }
    }
    for (n, day) in [3u32, 6, 9].into_iter().enumerate() {
        batches[2].push(Event::Usage(UsageRow {
            event_id: format!("usage-{day}-all"),
            taken_at: at(day, 0, 0),
            customer_id: None,
            originals_bytes: 100_000 + n as u64 * 250_000,
            variants_bytes: 10_000 + n as u64 * 40_000,
            objects: 10,
            capacity_bytes: 50_000_000,
        }));
    }
    batches[2].push(Event::Usage(UsageRow {
        event_id: "usage-6-acme".into(),
        taken_at: at(6, 0, 0),
        customer_id: Some("acme".into()),
        originals_bytes: 50_000,
        variants_bytes: 5_000,
        objects: 4,
        capacity_bytes: 50_000_000,
    }));
    // Redelivery: some job, post and comment facts written a second time, in another file.
    let mut again: Vec<Event> = batches[0].iter().filter(|e| matches!(e, Event::Job(_))).take(10).cloned().collect();
    again.extend(batches[1].iter().filter(|e| matches!(e, Event::Post(_) | Event::Comment(_))).take(12).cloned());
    batches.push(again);
    batches
}

/// Image `i` as a post when `i % 3 == 0` (twenty posts): created two seconds after the
/// upload, published when its job succeeds or failed when it fails for good, deleted with
/// its image (`i % 13 == 0`, on the 10th) or on its own (`i == 27`, on the 3rd, after its
/// two comments). A published post gets `(i * 7) % 11` comments over the following days (ties in the
/// ranking included), every fourth of them deleted a day later; authors alternate, one post
/// has none.
fn post_events(
    i: u32,
    image_id: &str,
    customer: &str,
    uploaded: DateTime<Utc>,
    statuses: &[&str],
    done: DateTime<Utc>,
    b: &mut Vec<Event>,
) {
    if !i.is_multiple_of(3) {
        return;
    }
    let post_id = format!("post-{i:03}");
    let author = (i != 6).then(|| ["ana", "bo", "cy"][i as usize % 3 % 2 + (i as usize / 3) % 2].to_string());
    let row = |event: &str, at: DateTime<Utc>, error_code: Option<&str>| {
        Event::Post(PostRow {
            event_id: format!("post-{i}-{event}"),
            post_id: post_id.clone(),
            customer_id: customer.into(),
            image_id: image_id.into(),
            author: author.clone(),
            event: event.parse().unwrap(),
            error_code: error_code.map(str::to_string),
            caption_chars: 10 + i,
            at,
        })
    };
    b.push(row("created", uploaded + ChronoDuration::seconds(2), None));
    let published = match statuses.last() {
        Some(&"succeeded") => {
            b.push(row("published", done, None));
            true
        }
        Some(_) => {
            b.push(row("failed", done, Some("decode_failed")));
            false
        }
        None => false,
    };
    let deleted = if i.is_multiple_of(13) {
        Some(at(10, 12, 0))
    } else if i == 27 {
        Some(at(3, 0, 0))
    } else {
        None
    };
    if let Some(d) = deleted {
        b.push(row("deleted", d, None));
    }
    if !published {
        return;
    }
    for k in 0..(i * 7) % 11 {
        let when = done + ChronoDuration::hours(5 + 7 * k as i64);
        if deleted.is_some_and(|d| when >= d) {
            break;
        }
        let comment = |event: &str, at: DateTime<Utc>| {
            Event::Comment(CommentRow {
                event_id: format!("comment-{i}-{k}-{event}"),
                comment_id: format!("comment-{i}-{k}"),
                post_id: post_id.clone(),
                customer_id: customer.into(),
                author: format!("reader-{}", k % 4),
                event: event.parse().unwrap(),
                chars: 3 + k * 5,
                at,
            })
        };
        b.push(comment("created", when));
        if k % 4 == 3 {
            b.push(comment("deleted", when + ChronoDuration::days(1)));
        }
    }
}
