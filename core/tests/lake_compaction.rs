//! Lake compaction: many small files with duplicates become a few, nothing is lost or
//! doubled, and an interrupted compaction converges on a rerun. Every case runs on the
//! local directory and on Garage (started by `scripts/test`).

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use imagelake_core::lake::compact::{compact_day, compact_days, Scope};
use imagelake_core::lake::layout;
use imagelake_core::lake::{encode, Event, Table, UploadRow};
use imagelake_core::store::{
    list_all, GetResult, ListPage, LocalStore, ObjectMeta, ObjectStore, PartTag, PendingUpload, S3Options, S3Store, SharedStore,
    StoreError,
};
use imagelake_core::{ids, testing};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn local() -> SharedStore {
    Arc::new(LocalStore::open(testing::temp_dir("lake-compact")).unwrap())
}

async fn garage() -> SharedStore {
    let o = S3Options { prefix: format!("t-{}", ids::new_compact_id()), ..testing::s3_options() };
    Arc::new(S3Store::connect(o).await)
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
}

fn upload(n: u64) -> Event {
    let t0: DateTime<Utc> = Utc.from_utc_datetime(&day().and_hms_opt(0, 0, 0).unwrap());
    let image_id = format!("img-{n:06}");
    Event::Upload(UploadRow {
        event_id: UploadRow::event_id_of(&image_id),
        image_id,
        customer_id: format!("cust-{}", n % 7),
        uploaded_at: t0 + Duration::milliseconds(n as i64 * 37),
        content_type: "image/jpeg".into(),
        format: "jpeg".into(),
        bytes: 1000 + n * 13,
        width: (!n.is_multiple_of(5)).then_some(640 + n as u32 % 100),
        height: Some(480),
        sha256: format!("{:064x}", n * 7919),
    })
}

/// One row as text (every column), for exact content comparison.
fn rows_of(batch: &RecordBatch) -> Vec<(String, String)> {
    let ids = batch.column_by_name("event_id").unwrap().as_string::<i32>();
    let image = batch.column_by_name("image_id").unwrap().as_string::<i32>();
    let cust = batch.column_by_name("customer_id").unwrap().as_string::<i32>();
    let at = batch.column_by_name("uploaded_at").unwrap().as_primitive::<TimestampMicrosecondType>();
    let bytes = batch.column_by_name("bytes").unwrap().as_primitive::<Int64Type>();
    let width = batch.column_by_name("width").unwrap().as_primitive::<Int32Type>();
    let sha = batch.column_by_name("sha256").unwrap().as_string::<i32>();
    (0..batch.num_rows())
        .map(|i| {
            let w = if width.is_null(i) { "null".to_string() } else { width.value(i).to_string() };
            (
                ids.value(i).to_string(),
                format!("{}|{}|{}|{}|{}|{}", image.value(i), cust.value(i), at.value(i), bytes.value(i), w, sha.value(i)),
            )
        })
        .collect()
}

/// Every row of the partition, raw (duplicates included), and the number of files.
async fn read_partition(store: &SharedStore) -> (Vec<(String, String)>, usize) {
    let files = list_all(store.as_ref(), &layout::partition_prefix("uploads", day())).await.unwrap();
    let mut rows = Vec::new();
    for f in &files {
        let body = store.get(&f.key, None).await.unwrap().bytes().await.unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(body).unwrap().build().unwrap();
        for b in reader {
            let b = b.unwrap();
            assert_eq!(b.schema().field_with_name("uploaded_at").unwrap().data_type().to_string(), "Timestamp(µs, \"UTC\")");
            rows.extend(rows_of(&b));
        }
    }
    (rows, files.len())
}

fn distinct(rows: &[(String, String)]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (id, r) in rows {
        if let Some(prev) = m.insert(id.clone(), r.clone()) {
            assert_eq!(&prev, r, "two rows with one event_id must be the same fact");
        }
    }
    m
}

fn checksum(m: &BTreeMap<String, String>) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for (k, v) in m {
        parts.push(k);
        parts.push(v);
    }
    ids::event_id(&parts)
}

/// Writes `files` files of 1..=10 rows; about a fifth of the rows repeat an earlier event.
async fn write_small_files(store: &SharedStore, files: usize) -> BTreeMap<String, String> {
    let prefix = layout::partition_prefix("uploads", day());
    let mut next = 0u64;
    let mut futs = Vec::new();
    for f in 0..files {
        let n = 1 + (f * 7) % 10;
        let mut events = Vec::new();
        for k in 0..n {
            if next > 10 && (f + k) % 5 == 0 {
                events.push(upload((f as u64 * 31 + k as u64) % next)); // a redelivered fact
            } else {
                events.push(upload(next));
                next += 1;
            }
        }
        let body = encode(Table::Uploads, &events).unwrap();
        let key = format!("{prefix}w{}-{}.parquet", f % 3, ids::new_compact_id());
        let store = store.clone();
        futs.push(async move { store.put(&key, body).await.unwrap() });
        if futs.len() == 32 {
            futures::future::join_all(futs.drain(..)).await;
        }
    }
    futures::future::join_all(futs).await;
    (0..next).map(|n| rows_of(&encode_batch(&upload(n))).remove(0)).collect()
}

fn encode_batch(e: &Event) -> RecordBatch {
    imagelake_core::lake::schema::to_batch(e.table(), &[e]).unwrap()
}

async fn many_small_files_become_few(store: SharedStore) {
    let expected = write_small_files(&store, 1000).await;
    let (before, files_before) = read_partition(&store).await;
    assert_eq!(files_before, 1000);
    assert!(before.len() > expected.len(), "the input has duplicates");
    assert_eq!(distinct(&before), expected);

    let report = compact_day(&store, Table::Uploads, day(), 64 << 20, "compactor-test", Scope::All).await.unwrap();
    assert!(!report.skipped);
    assert_eq!(report.inputs, 1000);
    assert_eq!(report.rows_in, before.len() as u64);
    assert_eq!(report.rows_out, expected.len() as u64);
    assert_eq!(report.duplicates_dropped, (before.len() - expected.len()) as u64);
    assert_eq!(report.outputs.len(), 1);

    let (after, files_after) = read_partition(&store).await;
    assert_eq!(files_after, 1);
    assert_eq!(after.len(), expected.len(), "no duplicates left");
    let after_m = distinct(&after);
    assert_eq!(after_m, expected, "same events, same contents");
    assert_eq!(checksum(&after_m), checksum(&expected));

    // Compacting a compact partition does nothing.
    let again = compact_day(&store, Table::Uploads, day(), 64 << 20, "compactor-test", Scope::All).await.unwrap();
    assert!(again.skipped);
    assert_eq!(read_partition(&store).await.1, 1);

    // A straggler arrives; the next compaction folds it in.
    let late = encode(Table::Uploads, &[upload(999_999), upload(3)]).unwrap();
    store.put(&format!("{}late-1.parquet", layout::partition_prefix("uploads", day())), late).await.unwrap();
    let r = compact_day(&store, Table::Uploads, day(), 64 << 20, "compactor-test", Scope::All).await.unwrap();
    assert_eq!((r.inputs, r.duplicates_dropped, r.outputs.len()), (2, 1, 1));
    let (rows, files) = read_partition(&store).await;
    assert_eq!((rows.len(), files), (expected.len() + 1, 1));
}

async fn target_size_splits_output(store: SharedStore) {
    let prefix = layout::partition_prefix("uploads", day());
    for f in 0..20u64 {
        let events: Vec<Event> = (f * 2000..(f + 1) * 2000).map(upload).collect();
        store.put(&format!("{prefix}w-{f:03}.parquet"), encode(Table::Uploads, &events).unwrap()).await.unwrap();
    }
    let r = compact_day(&store, Table::Uploads, day(), 200_000, "c", Scope::All).await.unwrap();
    assert!(r.outputs.len() > 1, "a small target gives several files: {r:?}");
    assert!(r.outputs.len() < 40, "{r:?}");
    for k in &r.outputs {
        let size = store.head(k).await.unwrap().unwrap().size;
        assert!(size < 400_000, "{k}: {size} bytes for a 200 kB target");
    }
    let (rows, files) = read_partition(&store).await;
    assert_eq!(files, r.outputs.len());
    assert_eq!(distinct(&rows).len(), 40_000);
    assert_eq!(rows.len(), 40_000);
}

/// A store whose deletes "crash" after `allow` keys: the process dies between writing
/// the merged file and removing (all) the inputs.
struct CrashingDeletes {
    inner: SharedStore,
    allow: AtomicUsize,
}

#[async_trait]
impl ObjectStore for CrashingDeletes {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn put(&self, key: &str, body: Bytes) -> Result<ObjectMeta, StoreError> {
        self.inner.put(key, body).await
    }
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<GetResult, StoreError> {
        self.inner.get(key, range).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage, StoreError> {
        self.inner.list(prefix, after, limit).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        let allow = self.allow.load(Ordering::SeqCst);
        let n = keys.len().min(allow);
        self.allow.fetch_sub(n, Ordering::SeqCst);
        self.inner.delete_many(&keys[..n]).await?;
        if n < keys.len() {
            return Err(StoreError::Unavailable("simulated crash during deletes".into()));
        }
        Ok(())
    }
    async fn create_multipart(&self, key: &str) -> Result<String, StoreError> {
        self.inner.create_multipart(key).await
    }
    async fn put_part(&self, key: &str, upload_id: &str, number: u32, body: Bytes) -> Result<PartTag, StoreError> {
        self.inner.put_part(key, upload_id, number, body).await
    }
    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<PartTag>) -> Result<ObjectMeta, StoreError> {
        self.inner.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.inner.abort_multipart(key, upload_id).await
    }
    async fn list_multipart(&self, prefix: &str) -> Result<Vec<PendingUpload>, StoreError> {
        self.inner.list_multipart(prefix).await
    }
}

async fn interrupted_compaction_converges(store: SharedStore, deleted_before_crash: usize) {
    let expected = write_small_files(&store, 200).await;
    let crashing: SharedStore = Arc::new(CrashingDeletes { inner: store.clone(), allow: AtomicUsize::new(deleted_before_crash) });
    let err = compact_day(&crashing, Table::Uploads, day(), 64 << 20, "c1", Scope::All).await;
    assert!(err.is_err(), "the simulated crash surfaces");

    // Between the crash and the rerun: every event is there (some twice), none is lost.
    let (mid, files_mid) = read_partition(&store).await;
    assert_eq!(files_mid, 200 - deleted_before_crash + 1, "merged file written before any delete");
    assert_eq!(distinct(&mid), expected, "nothing lost while interrupted");

    // The rerun converges: one copy of each event.
    let r = compact_day(&store, Table::Uploads, day(), 64 << 20, "c2", Scope::All).await.unwrap();
    assert!(!r.skipped);
    let (after, files) = read_partition(&store).await;
    assert_eq!(files, 1);
    assert_eq!(after.len(), expected.len(), "nothing doubled");
    assert_eq!(distinct(&after), expected);
    assert!(compact_day(&store, Table::Uploads, day(), 64 << 20, "c3", Scope::All).await.unwrap().skipped);
}

async fn crash_before_delete_then_rerun(store: SharedStore) {
    interrupted_compaction_converges(store, 0).await
}

async fn crash_halfway_through_deletes_then_rerun(store: SharedStore) {
    interrupted_compaction_converges(store, 100).await
}

/// `compact_closed_days` leaves today's partition to the writers.
async fn closed_days_only(store: SharedStore) {
    let today = day() + Duration::days(1);
    let mut t = Vec::new();
    for (d, n) in [(day() - Duration::days(1), 3), (day(), 4), (today, 5)] {
        for f in 0..n {
            let mut e = upload(f);
            if let Event::Upload(u) = &mut e {
                u.uploaded_at = Utc.from_utc_datetime(&d.and_hms_opt(1, 0, 0).unwrap());
            }
            let key = format!("{}f{f}.parquet", layout::partition_prefix("uploads", d));
            store.put(&key, encode(Table::Uploads, &[e]).unwrap()).await.unwrap();
        }
        t.push(d);
    }
    let reports = compact_days(&store, today, false, &[], 64 << 20, "c").await.unwrap();
    assert_eq!(reports.len(), 2);
    let count = |d| {
        let store = store.clone();
        async move { list_all(store.as_ref(), &layout::partition_prefix("uploads", d)).await.unwrap().len() }
    };
    assert_eq!(count(t[0]).await, 1);
    assert_eq!(count(t[1]).await, 1);
    assert_eq!(count(t[2]).await, 5);
    // No other table has files: nothing to do for them, no error.
    assert!(list_all(store.as_ref(), "lake/jobs/").await.unwrap().is_empty());
}

/// The current day, hourly: only the writers' files merge, into a new generation; the
/// merged files of earlier hours stay as they are (each run costs the new facts); a day
/// with one writer file is left alone; every row is kept.
async fn open_day_merges_writer_files_only(store: SharedStore) {
    let today = day();
    let put = |name: String, events: Vec<Event>| {
        let store = store.clone();
        async move {
            store
                .put(&format!("{}{name}", layout::partition_prefix("uploads", today)), encode(Table::Uploads, &events).unwrap())
                .await
                .unwrap()
        }
    };
    put("compact-aaaa-0000-c.parquet".into(), (0..10).map(upload).collect()).await;
    for f in 0..3 {
        put(format!("w-{f}.parquet"), vec![upload(100 + f)]).await;
    }
    let (before, _) = read_partition(&store).await;
    let reports = compact_days(&store, today, true, &[Table::Uploads], 64 << 20, "c").await.unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0].inputs, reports[0].outputs.len(), reports[0].rows_out), (3, 1, 3), "{reports:?}");
    let (after, files) = read_partition(&store).await;
    assert_eq!(files, 2, "the earlier merged file and the new one");
    assert_eq!(distinct(&after), distinct(&before));
    let keys: Vec<String> =
        list_all(store.as_ref(), &layout::partition_prefix("uploads", today)).await.unwrap().into_iter().map(|m| m.key).collect();
    assert!(keys.iter().any(|k| k.ends_with("compact-aaaa-0000-c.parquet")), "{keys:?}");
    // An hour later: one new writer file alone is not worth a rewrite.
    put("w-9.parquet".into(), vec![upload(200)]).await;
    let again = compact_days(&store, today, true, &[Table::Uploads], 64 << 20, "c").await.unwrap();
    assert!(again[0].skipped, "{again:?}");
    // At midnight the day closes: everything merges into one generation.
    let closed = compact_days(&store, today + Duration::days(1), false, &[Table::Uploads], 64 << 20, "c").await.unwrap();
    assert_eq!(closed[0].inputs, 3);
    let (all, files) = read_partition(&store).await;
    assert_eq!(files, 1);
    assert_eq!(distinct(&all).len(), 14);
}

/// Files written by an older version (without a nullable column that was added later)
/// merge with current ones; the missing column reads as null.
async fn older_schema_merges(store: SharedStore) {
    use arrow::datatypes::Schema;
    let full = imagelake_core::lake::schema::to_batch(Table::Uploads, &[&upload(1)]).unwrap();
    let keep: Vec<usize> =
        full.schema().fields().iter().enumerate().filter(|(_, f)| f.name() != "width").map(|(i, _)| i).collect();
    let old = full.project(&keep).unwrap();
    assert!(Schema::field_with_name(&old.schema(), "width").is_err());
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, old.schema(), None).unwrap();
    w.write(&old).unwrap();
    w.close().unwrap();
    let prefix = layout::partition_prefix("uploads", day());
    store.put(&format!("{prefix}old.parquet"), Bytes::from(buf)).await.unwrap();
    store.put(&format!("{prefix}new.parquet"), encode(Table::Uploads, &[upload(2)]).unwrap()).await.unwrap();
    let r = compact_day(&store, Table::Uploads, day(), 64 << 20, "c", Scope::All).await.unwrap();
    assert_eq!(r.rows_out, 2);
    let (rows, _) = read_partition(&store).await;
    let m = distinct(&rows);
    let id1 = UploadRow::event_id_of("img-000001");
    assert!(m[&id1].contains("|null|"), "the column an old file lacks is null: {}", m[&id1]);
    let set: BTreeSet<_> = m.keys().cloned().collect();
    assert_eq!(set.len(), 2);
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod local_dir {
            $(#[tokio::test] async fn $name() { super::$name(super::local()).await })*
        }
        mod garage {
            $(#[tokio::test] async fn $name() { super::$name(super::garage().await).await })*
        }
    };
}

both!(
    many_small_files_become_few,
    target_size_splits_output,
    crash_before_delete_then_rerun,
    crash_halfway_through_deletes_then_rerun,
    closed_days_only,
    open_day_merges_writer_files_only,
    older_schema_merges,
);
