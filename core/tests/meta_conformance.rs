//! One conformance suite for `MetadataStore`, run against every backend: SQLite (a file
//! in a temp dir) and the real PostgreSQL server that `scripts/test` starts (a fresh
//! database per test).

#[macro_use]
mod common;

use chrono::{DateTime, Duration, Utc};
use imagelake_core::auth::Role;
use imagelake_core::ids;
use imagelake_core::meta::{ApiKey, Created, Figures, MetadataStore, NewImage, SqlMetadata, Transition};
use imagelake_core::record::{ImageRecord, RecordError, Status, VariantRecord, VariantState};
use imagelake_core::testing;
use std::sync::Arc;

conformance!(
    records_list_newest_first_with_stable_cursors,
    one_idempotency_key_makes_one_image,
    transitions_are_conditional,
    a_delete_during_processing_wins,
    racing_deliveries_and_deletes_stay_consistent,
    expiry_reads_the_due_index_and_counts_bytes,
    a_variant_in_several_formats_is_one_row_per_format,
    outbox_jobs_are_claimed_once_and_removed_when_sent,
    keys_are_added_resolved_and_revoked,
    leases_are_exclusive_until_they_expire,
    import_is_idempotent,
    state_documents_round_trip,
    old_schema_upgrades_without_loss,
    an_upload_in_flight_and_reconcile_never_both_win,
);

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap()
}

fn record(customer: &str, bytes: u64) -> ImageRecord {
    ImageRecord {
        id: ids::new_id(),
        customer: customer.into(),
        status: Status::Uploaded,
        content_type: "image/jpeg".into(),
        format: "jpeg".into(),
        bytes,
        width: Some(640),
        height: None,
        sha256: "ab".repeat(32),
        uploaded_at: now(),
        processed_at: None,
        error: None,
        exif: None,
        requested_variants: vec!["thumb".into(), "web".into()],
        variants: Vec::new(),
        attempts: 0,
        callback_url: Some("https://example.com/hook".into()),
    }
}

fn variant(id: &str, name: &str, bytes: u64, made: DateTime<Utc>, ttl: Duration) -> VariantRecord {
    VariantRecord {
        name: name.into(),
        format: "webp".into(),
        width: 120,
        height: 90,
        bytes,
        url: imagelake_core::record::variant_url(id, name),
        created_at: made,
        expires_at: made + ttl,
        state: VariantState::Ready,
    }
}

async fn create(db: &SqlMetadata, r: &ImageRecord, key: Option<&str>) -> Created {
    let body = format!("{{\"image_id\":\"{}\"}}", r.id);
    let job = ids::new_id();
    let new = NewImage {
        record: r,
        job_id: &job,
        job_body: &body,
        send_after: r.uploaded_at + Duration::seconds(10),
        idempotency: key.map(|k| (k, r.uploaded_at + Duration::hours(24))),
        post: None,
        in_flight: false,
    };
    db.create_image(new).await.unwrap()
}

async fn figures(db: &SqlMetadata, customer: &str) -> Figures {
    db.usage().await.unwrap().into_iter().find(|(c, _)| c == customer).map(|(_, f)| f).unwrap_or_default()
}

async fn records_list_newest_first_with_stable_cursors(db: Arc<SqlMetadata>) {
    let mut made = Vec::new();
    for i in 0..7 {
        let r = record("acme", 100 + i);
        assert_eq!(create(&db, &r, None).await, Created::New);
        made.push(r);
    }
    create(&db, &record("globex", 5), None).await;
    assert_eq!(db.image(&made[3].id).await.unwrap().unwrap(), made[3], "a record reads back as written");
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = db.list_images("acme", before.as_deref(), 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        // Added while paging: newer than every cursor, so never on a later page.
        create(&db, &record("acme", 1), None).await;
        before = Some(page.last().unwrap().id.clone());
        seen.extend(page.into_iter().map(|r| r.id));
    }
    let expected: Vec<String> = made.iter().rev().map(|r| r.id.clone()).collect();
    assert_eq!(seen, expected, "newest first, nothing skipped or repeated, no other customer");
    assert_eq!(figures(&db, "acme").await.originals, 7 + 3);
    assert_eq!(figures(&db, "globex").await, Figures { originals_bytes: 5, originals: 1, variants_bytes: 0, variants: 0 });
}

async fn one_idempotency_key_makes_one_image(db: Arc<SqlMetadata>) {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { create(&db, &record("acme", 10), Some("key-1")).await })
        })
        .collect();
    let mut new = 0;
    let mut firsts = std::collections::BTreeSet::new();
    for t in tasks {
        match t.await.unwrap() {
            Created::New => new += 1,
            Created::Duplicate(r) => {
                firsts.insert(r.id);
            }
        }
    }
    assert_eq!(new, 1, "50 parallel creates with one key commit one image");
    assert_eq!(firsts.len(), 1, "every other one answers that image");
    assert_eq!(db.list_images("acme", None, 100).await.unwrap().len(), 1);
    let first = db.idempotent_image("acme", "key-1", now()).await.unwrap().unwrap();
    assert!(firsts.contains(&first.id));
    assert!(db.idempotent_image("globex", "key-1", now()).await.unwrap().is_none(), "keys are per customer");
    assert!(db.idempotent_image("acme", "key-1", now() + Duration::hours(25)).await.unwrap().is_none(), "keys expire");
    // The image deleted: the key is free again.
    db.begin_delete(&first.id, now()).await.unwrap().unwrap();
    db.purge_image(&first.id).await.unwrap();
    assert_eq!(create(&db, &record("acme", 10), Some("key-1")).await, Created::New);
    assert_eq!(db.purge_idempotency(now() + Duration::hours(25)).await.unwrap(), 1);
}

async fn transitions_are_conditional(db: Arc<SqlMetadata>) {
    let r = record("acme", 1000);
    create(&db, &r, None).await;
    let Transition::Applied(p) = db.start_processing(&r.id, 1).await.unwrap() else { panic!("start") };
    assert_eq!((p.status, p.attempts), (Status::Processing, 1));
    let at = now();
    let vs = vec![variant(&r.id, "thumb", 50, at, Duration::days(7)), variant(&r.id, "web", 70, at, Duration::days(7))];
    let Transition::Applied(done) = db.finish_processed(&r.id, at, (640, 480), &vs).await.unwrap() else { panic!("finish") };
    assert_eq!(done.status, Status::Processed);
    assert_eq!((done.width, done.height), (Some(640), Some(480)), "a known width is kept, a missing height filled");
    assert_eq!(done.variants, vs, "variants in the presets' order");
    // A second delivery of the same job: nothing changes, and the counters count once.
    assert!(matches!(db.start_processing(&r.id, 2).await.unwrap(), Transition::Refused(x) if x.status == Status::Processed));
    assert!(matches!(db.finish_processed(&r.id, at, (1, 1), &vs).await.unwrap(), Transition::Refused(_)));
    let err = RecordError { code: "decode_failed".into(), message: "x".into() };
    assert!(matches!(db.fail_image(&r.id, Some(2), at, &err, false).await.unwrap(), Transition::Refused(_)));
    assert_eq!(figures(&db, "acme").await, Figures { originals_bytes: 1000, originals: 1, variants_bytes: 120, variants: 2 });
    // Reconcile may fail any image whose original is gone.
    let Transition::Applied(f) = db.fail_image(&r.id, None, at, &err, true).await.unwrap() else { panic!("fail") };
    assert_eq!((f.status, f.error.unwrap().code, f.attempts), (Status::Failed, "decode_failed".to_string(), 1));
    assert_eq!(db.start_processing(&ids::new_id(), 1).await.unwrap(), Transition::Gone);
}

async fn a_delete_during_processing_wins(db: Arc<SqlMetadata>) {
    let r = record("acme", 500);
    create(&db, &r, None).await;
    db.start_processing(&r.id, 1).await.unwrap();
    let tomb = db.begin_delete(&r.id, now()).await.unwrap().unwrap();
    assert_eq!(tomb.id, r.id);
    assert!(db.image(&r.id).await.unwrap().is_none(), "hidden at once");
    assert!(db.list_images("acme", None, 10).await.unwrap().is_empty());
    let vs = vec![variant(&r.id, "thumb", 50, now(), Duration::days(7))];
    assert_eq!(
        db.finish_processed(&r.id, now(), (1, 1), &vs).await.unwrap(),
        Transition::Gone,
        "the processor cannot resurrect it"
    );
    assert_eq!(db.start_processing(&r.id, 2).await.unwrap(), Transition::Gone);
    // An interrupted delete is found and can be finished.
    assert_eq!(db.stale_tombstones(now() + Duration::seconds(1), 10).await.unwrap().len(), 1);
    assert!(db.begin_delete(&r.id, now()).await.unwrap().is_some(), "a second delete finds the tombstone");
    db.purge_image(&r.id).await.unwrap();
    assert!(db.begin_delete(&r.id, now()).await.unwrap().is_none());
    assert_eq!(figures(&db, "acme").await, Figures::default(), "nothing counted for a deleted image");
}

/// Two deliveries of one job finish together, and a delete races each: whatever the
/// order, one finish applies at most, and a delete that wins leaves nothing to resurrect.
async fn racing_deliveries_and_deletes_stay_consistent(db: Arc<SqlMetadata>) {
    for round in 0..20 {
        let r = record("acme", 10);
        create(&db, &r, None).await;
        db.start_processing(&r.id, 1).await.unwrap();
        let vs = vec![variant(&r.id, "thumb", 5, now(), Duration::days(7))];
        let finish = |db: Arc<SqlMetadata>, vs: Vec<VariantRecord>, id: String| async move {
            db.finish_processed(&id, now(), (1, 1), &vs).await.unwrap()
        };
        let (a, b, deleted) = tokio::join!(
            tokio::spawn(finish(db.clone(), vs.clone(), r.id.clone())),
            tokio::spawn(finish(db.clone(), vs.clone(), r.id.clone())),
            {
                let (db, id) = (db.clone(), r.id.clone());
                tokio::spawn(async move {
                    if round % 2 == 0 {
                        tokio::task::yield_now().await;
                    }
                    db.begin_delete(&id, now()).await.unwrap().unwrap()
                })
            }
        );
        let applied = [a.unwrap(), b.unwrap()].iter().filter(|t| matches!(t, Transition::Applied(_))).count();
        let tomb = deleted.unwrap();
        assert!(applied <= 1, "round {round}: two deliveries both finished the image");
        assert_eq!(tomb.variants.len(), applied, "round {round}: the delete sees exactly the variants that were committed");
        db.purge_image(&r.id).await.unwrap();
        assert!(db.image(&r.id).await.unwrap().is_none());
    }
    assert_eq!(figures(&db, "acme").await, Figures::default(), "counted once, un-counted once");
}

async fn expiry_reads_the_due_index_and_counts_bytes(db: Arc<SqlMetadata>) {
    let t0 = now();
    let mut ids_ = Vec::new();
    for i in 0..5 {
        let r = record("acme", 10);
        create(&db, &r, None).await;
        let made = t0 + Duration::minutes(i);
        let vs =
            vec![variant(&r.id, "thumb", 100, made, Duration::days(7)), variant(&r.id, "web", 1000, made, Duration::days(7))];
        db.finish_processed(&r.id, made, (1, 1), &vs).await.unwrap();
        ids_.push(r.id);
    }
    let due_at = t0 + Duration::days(7) + Duration::minutes(2);
    assert!(db.due_variants(t0 + Duration::days(7) - Duration::microseconds(1), 100).await.unwrap().is_empty(), "nothing early");
    let due = db.due_variants(due_at, 100).await.unwrap();
    assert_eq!(due.len(), 6, "three images' variants are due");
    assert!(due.iter().all(|d| d.expires_at <= due_at && d.customer == "acme"));
    assert_eq!(db.due_variants(due_at, 4).await.unwrap().len(), 4, "a bounded chunk");
    let objects: Vec<(String, String, String)> =
        due.iter().map(|d| (d.image_id.clone(), d.name.clone(), d.format.clone())).collect();
    assert_eq!(db.mark_expired(&objects).await.unwrap(), 3 * 1100);
    assert_eq!(db.mark_expired(&objects).await.unwrap(), 0, "expired once");
    assert!(db.due_variants(due_at, 100).await.unwrap().is_empty());
    let rec = db.image(&ids_[0]).await.unwrap().unwrap();
    assert!(rec.variants.iter().all(|v| v.state == VariantState::Expired));
    assert_eq!(figures(&db, "acme").await.variants_bytes, 2 * 1100);
    // Purging an image with expired variants un-counts only what was still stored.
    db.begin_delete(&ids_[0], now()).await.unwrap();
    db.purge_image(&ids_[0]).await.unwrap();
    assert_eq!(figures(&db, "acme").await, Figures { originals_bytes: 40, originals: 4, variants_bytes: 2200, variants: 4 });
}

/// One preset in three formats (and another in one): a row per stored format, all named
/// alike, read back in the order written (presets, then each one's order of preference),
/// counted per object, expired format by format (a sweep's chunk may end between two
/// formats of a variant), and deleted together.
async fn a_variant_in_several_formats_is_one_row_per_format(db: Arc<SqlMetadata>) {
    let r = record("acme", 1000);
    create(&db, &r, None).await;
    db.start_processing(&r.id, 1).await.unwrap();
    let (at, ttl) = (now(), Duration::days(7));
    // `formats`: how many formats the variant is stored in (each entry's URL follows).
    let made = |id: &str, name: &str, format: &str, bytes: u64, formats: usize| VariantRecord {
        format: format.into(),
        url: imagelake_core::record::entry_url(id, name, format, formats),
        ..variant(id, name, bytes, at, ttl)
    };
    let vs = vec![
        made(&r.id, "thumb", "jpeg", 10, 1),
        made(&r.id, "web", "avif", 100, 3),
        made(&r.id, "web", "webp", 200, 3),
        made(&r.id, "web", "jpeg", 400, 3),
    ];
    let Transition::Applied(done) = db.finish_processed(&r.id, at, (640, 480), &vs).await.unwrap() else { panic!("finish") };
    assert_eq!(done.variants, vs, "the entries in the order written");
    let urls: Vec<&str> = done.variants.iter().map(|v| v.url.as_str()).collect();
    let base = format!("/v1/images/{}/variants", r.id);
    assert_eq!(
        urls,
        [format!("{base}/thumb"), format!("{base}/web.avif"), format!("{base}/web.webp"), format!("{base}/web.jpg")]
    );
    assert_eq!(db.image(&r.id).await.unwrap().unwrap().variants, vs);
    assert_eq!(db.list_images("acme", None, 10).await.unwrap()[0].variants, vs, "the listing's join too");
    assert_eq!(db.scan_images("acme", None, 10).await.unwrap()[0].variants, vs);
    let counted = Figures { originals_bytes: 1000, originals: 1, variants_bytes: 710, variants: 4 };
    assert_eq!(figures(&db, "acme").await, counted, "one object per format");
    // A second delivery changes nothing and counts nothing.
    assert!(matches!(db.finish_processed(&r.id, at, (640, 480), &vs).await.unwrap(), Transition::Refused(_)));
    assert_eq!(figures(&db, "acme").await, counted);

    // Due: one entry per stored format.
    let due = db.due_variants(at + ttl, 100).await.unwrap();
    let mut listed: Vec<(String, String, u64)> = due.iter().map(|d| (d.name.clone(), d.format.clone(), d.bytes)).collect();
    listed.sort();
    assert_eq!(
        listed,
        [("thumb", "jpeg", 10), ("web", "avif", 100), ("web", "jpeg", 400), ("web", "webp", 200)].map(|(n, f, b)| (
            n.to_string(),
            f.to_string(),
            b
        ))
    );
    // Expiring one format leaves the others of the variant stored and counted.
    let object = |name: &str, format: &str| (r.id.clone(), name.to_string(), format.to_string());
    assert_eq!(db.mark_expired(&[object("web", "webp")]).await.unwrap(), 200);
    let states: Vec<(String, VariantState)> =
        db.image(&r.id).await.unwrap().unwrap().variants.into_iter().map(|v| (v.format, v.state)).collect();
    assert_eq!(
        states,
        [
            ("jpeg", VariantState::Ready),
            ("avif", VariantState::Ready),
            ("webp", VariantState::Expired),
            ("jpeg", VariantState::Ready)
        ]
        .map(|(f, s)| (f.to_string(), s))
    );
    assert_eq!(figures(&db, "acme").await, Figures { variants_bytes: 510, variants: 3, ..counted });
    assert_eq!(db.due_variants(at + ttl, 100).await.unwrap().len(), 3);
    // The rest of the variant, with the format already expired: each counted once.
    let web = [object("web", "avif"), object("web", "webp"), object("web", "jpeg")];
    assert_eq!(db.mark_expired(&web).await.unwrap(), 500);
    assert_eq!(db.mark_expired(&web).await.unwrap(), 0, "expired once");
    assert_eq!(db.mark_expired(&[object("web", "png")]).await.unwrap(), 0, "a format the variant does not have");
    assert_eq!(figures(&db, "acme").await, Figures { variants_bytes: 10, variants: 1, ..counted });
    let due = db.due_variants(at + ttl, 100).await.unwrap();
    assert_eq!((due.len(), due[0].name.as_str(), due[0].format.as_str()), (1, "thumb", "jpeg"));

    // Deleted: the tombstone lists every format; the purge un-counts only what was stored.
    let tomb = db.begin_delete(&r.id, now()).await.unwrap().unwrap();
    assert_eq!(tomb.variants.len(), 4);
    db.purge_image(&r.id).await.unwrap();
    assert_eq!(figures(&db, "acme").await, Figures::default());
    assert!(db.due_variants(at + ttl, 100).await.unwrap().is_empty(), "no row left");

    // An imported record with several formats of one variant reads back as it was.
    let mut imported = record("globex", 5);
    imported.status = Status::Processed;
    imported.processed_at = Some(at);
    imported.variants = vec![made(&imported.id, "web", "webp", 20, 2), made(&imported.id, "web", "png", 30, 2)];
    assert!(db.import_image(&imported).await.unwrap());
    assert_eq!(db.image(&imported.id).await.unwrap().unwrap(), imported);
    assert_eq!(figures(&db, "globex").await, Figures { originals_bytes: 5, originals: 1, variants_bytes: 50, variants: 2 });
}

async fn outbox_jobs_are_claimed_once_and_removed_when_sent(db: Arc<SqlMetadata>) {
    let r = record("acme", 1);
    create(&db, &r, None).await;
    assert_eq!(db.outbox_len().await.unwrap(), 1);
    assert!(db.due_jobs(r.uploaded_at, 10).await.unwrap().is_empty(), "not before its time");
    let later = r.uploaded_at + Duration::seconds(11);
    let due = db.due_jobs(later, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert!(due[0].body.contains(&r.id));
    let (a, b) =
        tokio::join!(db.claim_job(&due[0], later + Duration::seconds(10)), db.claim_job(&due[0], later + Duration::seconds(10)));
    assert!(a.unwrap() ^ b.unwrap(), "exactly one sender claims it");
    assert!(db.due_jobs(later, 10).await.unwrap().is_empty(), "claimed: not due again until its retry time");
    db.job_sent(&due[0].job_id).await.unwrap();
    assert_eq!(db.outbox_len().await.unwrap(), 0);
}

async fn keys_are_added_resolved_and_revoked(db: Arc<SqlMetadata>) {
    let hash = imagelake_core::auth::hash_key("ilk_test");
    let k = ApiKey::new(&hash, "acme", Role::Analyst, "cli", now());
    assert!(db.add_key(&k).await.unwrap());
    assert!(!db.add_key(&ApiKey::new(&hash, "other", Role::Admin, "config", now())).await.unwrap(), "a hash is added once");
    let p = db.resolve_key(&hash).await.unwrap().unwrap();
    assert_eq!((p.customer.as_str(), p.role), ("acme", Role::Analyst));
    assert_eq!(db.list_keys().await.unwrap(), vec![k.clone()]);
    assert!(db.revoke_key(&k.id, now()).await.unwrap());
    assert!(!db.revoke_key(&k.id, now()).await.unwrap(), "revoked once");
    assert!(db.resolve_key(&hash).await.unwrap().is_none());
    assert!(!db.add_key(&k).await.unwrap(), "re-importing a revoked key does not revive it");
    assert!(db.resolve_key(&hash).await.unwrap().is_none());
}

async fn leases_are_exclusive_until_they_expire(db: Arc<SqlMetadata>) {
    let t = now();
    let until = t + Duration::seconds(30);
    for round in 0..10 {
        let name = format!("expire-{round}");
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (db, name) = (db.clone(), name.clone());
                tokio::spawn(async move { db.acquire_lease(&name, &format!("o{i}"), &format!("t{i}"), t, until).await.unwrap() })
            })
            .collect();
        let mut holders = 0;
        for task in tasks {
            if task.await.unwrap().is_none() {
                holders += 1;
            }
        }
        assert_eq!(holders, 1, "exactly one of eight racing runners holds the lease");
    }
    assert!(db.acquire_lease("usage", "a", "ta", t, until).await.unwrap().is_none());
    let (owner, _) = db.acquire_lease("usage", "b", "tb", t, until).await.unwrap().unwrap();
    assert_eq!(owner, "a");
    assert!(!db.renew_lease("usage", "tb", until).await.unwrap(), "only the holder renews");
    assert!(db.renew_lease("usage", "ta", t + Duration::seconds(60)).await.unwrap());
    assert!(db.acquire_lease("usage", "b", "tb", t + Duration::seconds(59), until).await.unwrap().is_some());
    assert!(
        db.acquire_lease("usage", "b", "tb", t + Duration::seconds(60), until).await.unwrap().is_none(),
        "expired: taken over"
    );
    assert!(!db.renew_lease("usage", "ta", until).await.unwrap(), "the stale holder sees it lost it");
    db.release_lease("usage", "ta").await.unwrap(); // not ours: no effect
    assert!(db.acquire_lease("usage", "c", "tc", t, until).await.unwrap().is_some());
    db.release_lease("usage", "tb").await.unwrap();
    assert!(db.acquire_lease("usage", "c", "tc", t, until).await.unwrap().is_none());
}

async fn import_is_idempotent(db: Arc<SqlMetadata>) {
    let mut r = record("acme", 300);
    r.status = Status::Processed;
    r.processed_at = Some(now());
    r.variants = vec![variant(&r.id, "thumb", 30, now(), Duration::days(7))];
    r.variants.push(VariantRecord { state: VariantState::Expired, ..variant(&r.id, "web", 99, now(), Duration::days(-1)) });
    assert!(db.import_image(&r).await.unwrap());
    assert!(!db.import_image(&r).await.unwrap());
    assert_eq!(db.image(&r.id).await.unwrap().unwrap(), r);
    assert_eq!(figures(&db, "acme").await, Figures { originals_bytes: 300, originals: 1, variants_bytes: 30, variants: 1 });
    assert_eq!(db.outbox_len().await.unwrap(), 0, "an imported record brings no job");
    let scanned = db.scan_images("acme", None, 10).await.unwrap();
    assert_eq!(scanned.len(), 1);
    assert!(db.scan_images("acme", Some(&r.id), 10).await.unwrap().is_empty());
}

async fn state_documents_round_trip(db: Arc<SqlMetadata>) {
    assert!(db.load_state("expire").await.unwrap().is_none());
    db.save_state("expire", "{\"a\":1}", now()).await.unwrap();
    db.save_state("expire", "{\"a\":2}", now()).await.unwrap();
    assert_eq!(db.load_state("expire").await.unwrap().as_deref(), Some("{\"a\":2}"));
}

/// A database made by the first schema version, with rows in it, is brought to the
/// newest version at start-up and loses nothing.
async fn old_schema_upgrades_without_loss(fresh: Arc<SqlMetadata>) {
    // `fresh` is migrated; the old one is a second database made at version 1 only.
    let url = match fresh.backend() {
        "sqlite" => testing::sqlite_database(),
        _ => testing::postgres_database().await,
    };
    let old = SqlMetadata::open(&url, 4, std::time::Duration::from_secs(10)).await.unwrap();
    old.migrate(Some(1)).await.unwrap();
    old.execute_raw(
        "INSERT INTO images (id, customer, status, content_type, format, bytes, width, height, sha256, uploaded_at, \
         processed_at, requested_variants, attempts) VALUES ('0190a5a2-0000-7000-8000-000000000001', 'acme', 'processed', \
         'image/png', 'png', 4096, 10, 20, 'cafe', 1700000000000000, 1700000001000000, '[\"thumb\"]', 1)",
    )
    .await
    .unwrap();
    old.execute_raw(
        "INSERT INTO variants (image_id, name, customer, format, width, height, bytes, created_at, expires_at, state, position) \
         VALUES ('0190a5a2-0000-7000-8000-000000000001', 'thumb', 'acme', 'webp', 5, 10, 77, 1700000001000000, 1700604801000000, 'ready', 0)",
    )
    .await
    .unwrap();
    old.execute_raw("INSERT INTO usage_counters VALUES ('acme', 4096, 1, 77, 1)").await.unwrap();
    old.execute_raw("INSERT INTO api_keys VALUES ('abcd', 'abcdef', 'acme', 'uploader', 'file', 1, NULL)").await.unwrap();
    assert!(old.outbox_len().await.is_err(), "version 1 has no outbox");
    drop(old);
    let upgraded = SqlMetadata::connect(&url, 4, std::time::Duration::from_secs(10)).await.unwrap();
    let rec = upgraded.image("0190a5a2-0000-7000-8000-000000000001").await.unwrap().unwrap();
    assert_eq!((rec.status, rec.bytes, rec.width, rec.height), (Status::Processed, 4096, Some(10), Some(20)));
    assert_eq!(rec.variants.len(), 1);
    assert_eq!(rec.variants[0].bytes, 77);
    assert_eq!(
        figures(&upgraded, "acme").await,
        Figures { originals_bytes: 4096, originals: 1, variants_bytes: 77, variants: 1 }
    );
    let key = upgraded.resolve_key("abcdef").await.unwrap().unwrap();
    assert_eq!((key.role, key.all_customers), (Role::Uploader, false), "version 4: keys from before are scoped");
    assert_eq!(upgraded.outbox_len().await.unwrap(), 0, "version 2's table exists");
    assert_eq!(upgraded.post_events_len().await.unwrap(), 0, "version 3's tables exist");
    // An image from before posts existed can be posted, and is published at once.
    let post = imagelake_core::post::Post {
        id: ids::new_id(),
        customer: "acme".into(),
        image_id: rec.id.clone(),
        caption: "from before".into(),
        author: None,
        status: imagelake_core::post::PostStatus::Requested,
        error: None,
        callback_url: None,
        created_at: now(),
        published_at: None,
        comment_count: 0,
    };
    let made = upgraded.create_post(&post, now()).await.unwrap().unwrap();
    assert_eq!(made.status, imagelake_core::post::PostStatus::Published);
    // Version 5: an upload from before it has no in-flight row; its commit does not ask.
    assert!(upgraded.claim_orphan(&ids::new_id(), now()).await.unwrap(), "version 5's table exists");
    // Version 6: resumable uploads, none from before.
    assert!(upgraded.resumable(&ids::new_id()).await.unwrap().is_none(), "version 6's table exists");
    assert_eq!(upgraded.open_resumables("acme").await.unwrap(), 0);
    // Version 7: variants keyed by format too; the old row came along, due and expirable.
    assert_eq!((rec.variants[0].format.as_str(), rec.variants[0].name.as_str()), ("webp", "thumb"));
    let due = upgraded.due_variants(DateTime::from_timestamp_micros(1700604801000000).unwrap(), 10).await.unwrap();
    assert_eq!(due.len(), 1, "the due-variant index is there again");
    let object = (due[0].image_id.clone(), due[0].name.clone(), due[0].format.clone());
    assert_eq!(upgraded.mark_expired(&[object]).await.unwrap(), 77);
    // Version 8: the first attempt's time is set once, then kept.
    let (first, later) = (now(), now() + Duration::days(1));
    assert_eq!(upgraded.first_attempt_at(&rec.id, first).await.unwrap(), Some(first));
    assert_eq!(upgraded.first_attempt_at(&rec.id, later).await.unwrap(), Some(first), "a later attempt keeps the first's time");
    assert_eq!(upgraded.first_attempt_at(&ids::new_id(), later).await.unwrap(), None);
    assert_eq!(SqlMetadata::latest_version(), 8);
}

/// Reconcile's claim of an original and the upload's commit race for the in-flight row:
/// whichever deletes it wins, and the other backs off. A fresh upload is never claimed; a
/// stale one may be, and then its commit is refused, so no acknowledged image loses its
/// original.
async fn an_upload_in_flight_and_reconcile_never_both_win(db: Arc<SqlMetadata>) {
    let commit = |db: Arc<SqlMetadata>, r: ImageRecord| async move {
        let job = ids::new_id();
        let new = NewImage {
            record: &r,
            job_id: &job,
            job_body: "{}",
            send_after: r.uploaded_at,
            idempotency: None,
            post: None,
            in_flight: true,
        };
        db.create_image(new).await
    };
    // Fresh: reconcile keeps it, the commit goes through, and then the record keeps it.
    let r = record("acme", 10);
    db.begin_upload(&r.id, "acme", r.uploaded_at).await.unwrap();
    assert!(!db.claim_orphan(&r.id, r.uploaded_at - Duration::hours(1)).await.unwrap(), "a fresh upload is in flight");
    assert_eq!(commit(db.clone(), r.clone()).await.unwrap(), Created::New);
    assert!(!db.claim_orphan(&r.id, now() + Duration::hours(1)).await.unwrap(), "a recorded original");
    // No row and no record: an orphan.
    assert!(db.claim_orphan(&ids::new_id(), now()).await.unwrap());
    // Stale uploads: claim and commit race; exactly one wins each time.
    let (mut claimed, mut committed) = (0, 0);
    for _ in 0..20 {
        let r = record("acme", 10);
        db.begin_upload(&r.id, "acme", r.uploaded_at - Duration::hours(7)).await.unwrap();
        let claim = {
            let (db, id) = (db.clone(), r.id.clone());
            tokio::spawn(async move { db.claim_orphan(&id, now() - Duration::hours(6)).await.unwrap() })
        };
        let done = tokio::spawn(commit(db.clone(), r.clone()));
        let (claim, done) = (claim.await.unwrap(), done.await.unwrap());
        let recorded = db.image(&r.id).await.unwrap().is_some();
        match (claim, done) {
            (true, Err(e)) => {
                assert_eq!(e.code(), "database_unavailable", "{e}");
                assert!(!recorded, "a refused commit left a record");
                claimed += 1;
            }
            (false, Ok(Created::New)) => {
                assert!(recorded);
                committed += 1;
            }
            other => panic!("claim and commit both won, or both lost: {other:?}"),
        }
    }
    println!("stale uploads: {claimed} claimed by reconcile, {committed} committed");
    // Rows of dead uploads are swept; young ones stay.
    let young = ids::new_id();
    db.begin_upload(&young, "acme", now()).await.unwrap();
    db.begin_upload(&ids::new_id(), "acme", now() - Duration::hours(30)).await.unwrap();
    assert_eq!(db.sweep_uploads(now() - Duration::hours(24)).await.unwrap(), 1);
    assert!(!db.claim_orphan(&young, now() - Duration::hours(24)).await.unwrap());
    db.end_upload(&young).await.unwrap();
    assert!(db.claim_orphan(&young, now() - Duration::hours(24)).await.unwrap());
}
