//! The expiry benchmark (`scripts/bench-expire.sh`): N variants made seven days ago, their
//! records in the metadata database (SQLite) and their bytes on Garage, one `expire` run:
//! wall time and store requests. Ignored in the normal suite.
//! `IMAGELAKE_BENCH_VARIANTS` (default 100000) sets N; `IMAGELAKE_BENCH_BACKEND=embedded`
//! runs it on the local directory instead.

mod common;

use common::{Backend, InProcess};
use futures::{StreamExt, TryStreamExt};
use imagelake_core::clock::Clock;
use imagelake_core::ids;
use imagelake_core::record::{self, ImageRecord, Status, VariantRecord, VariantState};
use imagelake_lifecycle::chrono::Duration as Days;
use imagelake_lifecycle::{run_job_with, JobName, Options};
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run through scripts/bench-expire.sh"]
async fn bench_expire() {
    let n: usize = std::env::var("IMAGELAKE_BENCH_VARIANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let backend = match std::env::var("IMAGELAKE_BENCH_BACKEND").as_deref() {
        Ok("embedded") => Backend::Embedded,
        _ => Backend::Servers,
    };
    let p = InProcess::start(backend, None).await;
    let t0 = p.clock.now();
    let expires = t0 + Days::days(7);
    let images = n.div_ceil(3);
    let store = p.ctx.store.clone();
    let setup = Instant::now();
    let names = ["thumb", "medium", "webp"];
    let mut recs = Vec::with_capacity(images);
    let mut made = 0;
    for _ in 0..images {
        let id = ids::new_id();
        let variants: Vec<VariantRecord> = names
            .iter()
            .take((n - made).min(3))
            .map(|name| VariantRecord {
                name: name.to_string(),
                format: "jpeg".into(),
                width: 400,
                height: 300,
                bytes: 1024,
                url: record::variant_url(&id, name),
                created_at: t0,
                expires_at: expires,
                state: VariantState::Ready,
            })
            .collect();
        made += variants.len();
        recs.push(ImageRecord {
            id: id.clone(),
            customer: "acme".into(),
            status: Status::Processed,
            content_type: "image/jpeg".into(),
            format: "jpeg".into(),
            bytes: 2048,
            width: Some(800),
            height: Some(600),
            sha256: "0".repeat(64),
            uploaded_at: t0,
            processed_at: Some(t0),
            error: None,
            exif: None,
            requested_variants: names.iter().map(|s| s.to_string()).collect(),
            variants,
            attempts: 1,
            callback_url: None,
        });
    }
    // The bytes, many at once; the records, a few at once (SQLite has one writer).
    let body = bytes::Bytes::from(vec![7u8; 1024]);
    futures::stream::iter(recs.iter().flat_map(|r| r.variants.iter().map(move |v| v.object_key(&r.customer, &r.id))))
        .map(|key| {
            let (store, body) = (store.clone(), body.clone());
            async move { store.put(&key, body).await }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    futures::stream::iter(recs.iter())
        .map(|rec| p.ctx.meta.import_image(rec))
        .buffer_unordered(4)
        .try_collect::<Vec<bool>>()
        .await
        .unwrap();
    let setup_s = setup.elapsed().as_secs_f64();

    p.clock.set(expires + Days::seconds(1));
    let opts = Options::default();
    let started = Instant::now();
    let r = run_job_with(&p.ctx, JobName::Expire, None, &opts).await.unwrap();
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(r.count("variants_expired"), n as u64, "{r}");
    let left = store.list("processed/", None, 10).await.unwrap();
    assert!(left.objects.is_empty(), "variants left: {:?}", left.objects);
    println!(
        "BENCH expire backend={} database={} variants={n} images={images} setup_s={setup_s:.1} wall_s={wall:.2} requests={} delete_calls={} chunks={} lake_files_written={}",
        store.backend(),
        p.ctx.meta.backend(),
        r.requests,
        r.count("delete_calls"),
        r.count("chunks"),
        r.count("lake_files_written"),
    );
    println!("{r}");
    p.stop().await;
}
