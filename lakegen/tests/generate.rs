//! The synthetic lake generator: right counts, sane contents, deterministic, bounded files.

use arrow::array::{Array, AsArray};
use chrono::{TimeZone, Utc};
use imagelake_core::lake::Table;
use imagelake_core::store::{list_all, LocalStore, SharedStore};
use imagelake_core::testing;
use imagelake_lakegen::{generate, GenerateOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

fn opts() -> GenerateOptions {
    GenerateOptions {
        images: 5_000,
        customers: 50,
        days: 20,
        seed: 7,
        end: Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap(),
        file_rows: 4_000,
        only: Vec::new(),
    }
}

/// `only` writes the chosen tables of the same history, and nothing else.
#[tokio::test]
async fn writes_only_the_chosen_tables() {
    let store: SharedStore = Arc::new(LocalStore::open(testing::temp_dir("lake-gen-only")).unwrap());
    let report = generate(&store, GenerateOptions { only: vec![Table::Uploads], ..opts() }).await.unwrap();
    assert_eq!(report.rows.keys().copied().collect::<Vec<_>>(), vec![Table::Uploads]);
    assert_eq!(report.rows[&Table::Uploads], 5_000);
    let files = list_all(store.as_ref(), "lake/").await.unwrap();
    assert!(!files.is_empty() && files.iter().all(|f| f.key.starts_with("lake/uploads/")), "{files:?}");
    let all: SharedStore = Arc::new(LocalStore::open(testing::temp_dir("lake-gen-all")).unwrap());
    generate(&all, opts()).await.unwrap();
    let (mut a, mut b) = (column(&store, Table::Uploads, "event_id").await, column(&all, Table::Uploads, "event_id").await);
    a.sort();
    b.sort();
    assert_eq!(a, b, "the same uploads as with every table");
}

/// (column values as strings) of every row of `table`.
async fn column(store: &SharedStore, table: Table, name: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for f in list_all(store.as_ref(), &format!("lake/{}/", table.name())).await.unwrap() {
        let body = store.get(&f.key, None).await.unwrap().bytes().await.unwrap();
        for b in ParquetRecordBatchReaderBuilder::try_new(body).unwrap().build().unwrap() {
            let b = b.unwrap();
            let c = arrow::compute::cast(b.column_by_name(name).unwrap(), &arrow::datatypes::DataType::Utf8).unwrap();
            let s = c.as_string::<i32>();
            out.extend((0..s.len()).map(|i| (!s.is_null(i)).then(|| s.value(i).to_string())));
        }
    }
    out
}

#[tokio::test]
async fn generates_a_realistic_deterministic_lake() {
    let store: SharedStore = Arc::new(LocalStore::open(testing::temp_dir("lake-gen")).unwrap());
    let report = generate(&store, opts()).await.unwrap();
    assert_eq!(report.rows[&Table::Uploads], 5_000);
    for t in Table::ALL {
        assert!(report.rows.get(&t).copied().unwrap_or(0) > 0, "{t:?} has rows: {report:?}");
    }
    let files = list_all(store.as_ref(), "lake/").await.unwrap();
    assert_eq!(files.len() as u64, report.files);
    assert_eq!(files.iter().map(|f| f.size).sum::<u64>(), report.bytes);
    let end_day = opts().end.date_naive();
    for f in &files {
        let dt = f.key.split("/dt=").nth(1).unwrap().split('/').next().unwrap();
        let d = chrono::NaiveDate::parse_from_str(dt, "%Y-%m-%d").unwrap();
        assert!(d <= end_day && d > end_day - chrono::Duration::days(20), "{}", f.key);
    }

    // Every event id is unique within its table.
    for t in Table::ALL {
        let ids = column(&store, t, "event_id").await;
        let set: BTreeSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len(), "{t:?} event ids are unique");
    }
    // Jobs: mostly first-attempt successes, some failures, some retries, statuses known.
    let status = column(&store, Table::Jobs, "status").await;
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for s in status.iter().flatten() {
        *by.entry(s.clone()).or_default() += 1;
    }
    assert!(by.keys().all(|k| ["succeeded", "failed", "dead_lettered"].contains(&k.as_str())), "{by:?}");
    let failed = by.get("failed").copied().unwrap_or(0) as f64 / status.len() as f64;
    assert!((0.01..0.08).contains(&failed), "about 3% of attempts fail: {by:?}");
    assert!(by["succeeded"] > 4_800);
    assert!(by.get("dead_lettered").is_some_and(|n| *n > 0), "some jobs are dead-lettered: {by:?}");
    // Customers are skewed: the biggest has far more than an even share.
    let customers = column(&store, Table::Uploads, "customer_id").await;
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for c in customers.iter().flatten() {
        *per.entry(c.clone()).or_default() += 1;
    }
    let top = per.values().max().copied().unwrap();
    assert!(top > 5 * 5_000 / 50, "Zipf-like skew: top customer has {top}");
    // Usage snapshots include a total row (customer_id null) per day.
    let usage_customers = column(&store, Table::Usage, "customer_id").await;
    // (the midnight after the last day is after `end`: 19 snapshots for 20 days)
    assert_eq!(usage_customers.iter().filter(|c| c.is_none()).count(), 19);
    // Variants expire after 7 days: there are expiry deletions.
    let reasons = column(&store, Table::Deletions, "reason").await;
    assert!(reasons.iter().flatten().any(|r| r == "expired"));

    // Posts: about 30% of images; every post is created, most are published, some fail or
    // go with their image; event ids are those of core::post (post id + event).
    let posts = column(&store, Table::Posts, "post_id").await;
    let events = column(&store, Table::Posts, "event").await;
    let post_events = column(&store, Table::Posts, "event_id").await;
    let mut per_event: BTreeMap<String, usize> = BTreeMap::new();
    for e in events.iter().flatten() {
        *per_event.entry(e.clone()).or_default() += 1;
    }
    let created = per_event["created"];
    assert!((1_200..1_800).contains(&created), "about 30% of 5000 images are posts: {per_event:?}");
    assert!(per_event["published"] > created * 9 / 10, "{per_event:?}");
    assert!(per_event.keys().all(|k| ["created", "published", "failed", "deleted"].contains(&k.as_str())), "{per_event:?}");
    for ((p, e), id) in posts.iter().zip(&events).zip(&post_events) {
        let (p, e) = (p.as_deref().unwrap(), e.as_deref().unwrap());
        assert_eq!(id.as_deref(), Some(imagelake_core::lake::PostRow::event_id_of(p, e.parse().unwrap()).as_str()));
    }
    // Comments: skewed (the most-commented post has many times the mean), a few deleted,
    // all on created posts.
    let on = column(&store, Table::Comments, "post_id").await;
    let comment_events = column(&store, Table::Comments, "event").await;
    let known: BTreeSet<_> = posts.iter().flatten().collect();
    assert!(on.iter().flatten().all(|p| known.contains(p)), "comments on posts that exist");
    let mut per_post: BTreeMap<&str, usize> = BTreeMap::new();
    for (p, e) in on.iter().zip(&comment_events) {
        if e.as_deref() == Some("created") {
            *per_post.entry(p.as_deref().unwrap()).or_default() += 1;
        }
    }
    let total: usize = per_post.values().sum();
    let most = per_post.values().max().copied().unwrap();
    assert!(total > created, "more comments than posts: {total}");
    assert!(most > 10 * total / per_event["published"], "heavy tail: the top post has {most} of {total}");
    let deleted = comment_events.iter().flatten().filter(|e| *e == "deleted").count();
    assert!(deleted > 0 && deleted < total / 10, "a few comments deleted: {deleted} of {total}");

    // Same options, same lake.
    let again: SharedStore = Arc::new(LocalStore::open(testing::temp_dir("lake-gen")).unwrap());
    let r2 = generate(&again, opts()).await.unwrap();
    assert_eq!(r2.rows, report.rows);
    let keys = |fs: &Vec<imagelake_core::store::ObjectMeta>| fs.iter().map(|f| (f.key.clone(), f.size)).collect::<Vec<_>>();
    assert_eq!(keys(&list_all(again.as_ref(), "lake/").await.unwrap()), keys(&files));
}
