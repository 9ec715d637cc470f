//! The raw days' small files held in memory (reporting/src/held.rs): each new file's facts
//! are in the next answer, a compaction that merges the held files changes no figure, and
//! a fact written again in another file, before or after the merge, counts once.

use super::*;

fn upload(id: &str, at: DateTime<Utc>) -> Event {
    Event::Upload(UploadRow {
        event_id: format!("up-{id}"),
        image_id: id.into(),
        customer_id: "heldco".into(),
        uploaded_at: at,
        content_type: "image/webp".into(),
        format: "webp".into(),
        bytes: 12_345,
        width: Some(10),
        height: Some(10),
        sha256: format!("sha-{id}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_small_files_count_each_fact_once_through_a_compaction() {
    let (ctx, lake) = lake_with_data("held").await;
    let app = app(&ctx).await;
    let capacity = ctx.config.capacity.bytes.0;
    let figures = |app: Router| async move {
        let s = get(&app, Some(ANALYST), "/v1/stats/summary", None).await.json()[0].clone();
        let c = get(&app, Some(ANALYST), "/v1/stats/customers?customer=heldco", None).await.json();
        let heldco = c.as_array().unwrap().first().map(|r| (r["uploads"].as_u64(), r["processed"].as_u64()));
        (s["images"].as_u64().unwrap(), s["processed"].as_u64().unwrap(), heldco)
    };
    let (images, processed, none) = figures(app.clone()).await;
    assert_eq!(none, None, "no heldco yet");
    let listed = || tokio::time::sleep(Duration::from_millis(100));
    // One new image and its job, then the upload written again in a file of its own.
    let (at, done) = (support::at(5, 10, 0), support::at(5, 10, 1));
    ctx.lake.write_durable(vec![upload("h1", at), job("job-h1", "h1", "heldco", 1, at, done)]).await.unwrap();
    ctx.lake.write_durable(vec![upload("h1", at)]).await.unwrap();
    listed().await;
    let expected = (images + 1, processed + 1, Some((Some(1), Some(1))));
    assert_eq!(figures(app.clone()).await, expected, "the new files' facts, the copy once");
    defaults_match(&app, &lake, capacity, Expect::Exact).await;
    // The lifecycle's compaction merges every held file: the held rows are replaced by the
    // merged files' rows, the figures stay.
    let merged = imagelake_core::lake::compact::compact_days(&ctx.store, Utc::now().date_naive(), true, &[], 256 << 20, "test")
        .await
        .unwrap();
    assert!(merged.iter().map(|r| r.inputs).sum::<usize>() > 10, "{merged:?}");
    listed().await;
    assert_eq!(figures(app.clone()).await, expected, "after the merge");
    // A copy in a new file beside the merged one, and a second image: counted once each.
    ctx.lake.write_durable(vec![upload("h1", at), upload("h2", at)]).await.unwrap();
    listed().await;
    let (i, p, c) = figures(app.clone()).await;
    assert_eq!((i, p, c), (images + 2, processed + 1, Some((Some(2), Some(1)))), "a copy beside the merged file");
    defaults_match(&app, &lake, capacity, Expect::Exact).await;
    // A file too big to hold (3 000 uploads of distinct hashes: scanned), and a small copy
    // of one of its facts (held): the probe of the scanned keys lists the copy.
    let bulk: Vec<Event> = (0..3000u64)
        .map(|i| {
            let mut e = upload(&format!("bulk-{i}"), at);
            if let Event::Upload(u) = &mut e {
                let h = |k: u128| u128::from(i + 1).wrapping_mul(k).rotate_left(61) ^ k;
                u.sha256 = format!(
                    "{:032x}{:032x}",
                    h(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835),
                    h(0xD6E8_FEB8_6659_FD93_A54F_F53A_5F1D_36F1)
                );
            }
            e
        })
        .collect();
    ctx.lake.write_durable(bulk).await.unwrap();
    ctx.lake.write_durable(vec![upload("bulk-7", at)]).await.unwrap();
    let day = lake.join("uploads/dt=2026-11-05");
    let big = std::fs::read_dir(&day).unwrap().filter(|f| f.as_ref().unwrap().metadata().unwrap().len() > 64 << 10).count();
    assert_eq!(big, 1, "one file to scan");
    listed().await;
    let (i, p, c) = figures(app.clone()).await;
    assert_eq!((i, p, c), (images + 3002, processed + 1, Some((Some(3002), Some(1)))), "a held copy of a scanned fact");
    defaults_match(&app, &lake, capacity, Expect::Exact).await;
}

/// A compaction deletes the files it merged while the service refreshes: a refresh that
/// finds a listed file gone lists again, and no report fails. A file of copies of facts
/// the lake has comes and goes (for 2 to 6 ms, every 25 ms or so) while reports run; no
/// figure changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_merged_away_during_a_refresh_fails_no_report() {
    let (ctx, lake) = lake_with_data("held-race").await;
    let app = app(&ctx).await;
    let images = || async { get(&app, Some(ANALYST), "/v1/stats/summary", None).await };
    let before = images().await.json()[0]["images"].as_u64().unwrap();
    let day = std::fs::read_dir(lake.join("uploads")).unwrap().next().unwrap().unwrap().path();
    let source = std::fs::read_dir(&day).unwrap().next().unwrap().unwrap().path();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flicker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (tmp, file) = (day.join(".flicker.parquet"), day.join(format!("flicker-{i}.parquet")));
                std::fs::copy(&source, &tmp).unwrap();
                std::fs::rename(&tmp, &file).unwrap();
                std::thread::sleep(Duration::from_millis(2 + i % 5));
                std::fs::remove_file(&file).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                i += 1;
            }
            i
        })
    };
    for n in 0..150 {
        let got = images().await;
        assert_eq!(got.status, 200, "report {n}: {}", String::from_utf8_lossy(&got.body));
        assert_eq!(got.json()[0]["images"].as_u64(), Some(before), "report {n}");
        tokio::time::sleep(Duration::from_millis(55)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(flicker.join().unwrap() > 100, "the file came and went while the reports ran");
}
