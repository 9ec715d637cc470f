//! The object-store conformance suite: every case runs against the local directory and
//! against Garage over a real socket (started by `scripts/test`).

use bytes::Bytes;
use futures::{stream, TryStreamExt};
use imagelake_core::store::upload::{upload_stream, UploadOptions};
use imagelake_core::store::{list_all, LocalStore, S3Store, SharedStore, StoreError};
use imagelake_core::{ids, testing};
use std::sync::Arc;

async fn local() -> SharedStore {
    Arc::new(LocalStore::open(testing::temp_dir("store")).unwrap())
}

async fn s3() -> SharedStore {
    Arc::new(S3Store::connect(testing::s3_options()).await)
}

/// A deployment sharing the bucket under a key prefix sees only its own keys.
async fn s3_prefixed() -> SharedStore {
    let opts = imagelake_core::store::S3Options { prefix: format!("tenant-{}", ids::new_compact_id()), ..testing::s3_options() };
    Arc::new(S3Store::connect(opts).await)
}

/// Each case works under its own prefix, so cases share the bucket without interfering.
fn prefix() -> String {
    format!("conformance/{}/", ids::new_compact_id())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(seed as u32) as u8).collect()
}

async fn read(store: &SharedStore, key: &str, range: Option<std::ops::Range<u64>>) -> Result<Vec<u8>, StoreError> {
    let got = store.get(key, range).await?;
    Ok(got.bytes().await?.to_vec())
}

async fn put_get_head_overwrite(store: SharedStore) {
    let key = format!("{}a/b/object.bin", prefix());
    let body = pattern(100_000, 1);
    let meta = store.put(&key, Bytes::from(body.clone())).await.unwrap();
    assert_eq!(meta.size, 100_000);
    assert_eq!(read(&store, &key, None).await.unwrap(), body);
    let head = store.head(&key).await.unwrap().expect("object exists");
    assert_eq!(head.size, 100_000);
    assert!(head.etag.starts_with('"') && head.etag.ends_with('"'));
    store.put(&key, Bytes::from_static(b"second version")).await.unwrap();
    let head2 = store.head(&key).await.unwrap().unwrap();
    assert_ne!(head.etag, head2.etag, "a new version has a new etag");
    assert_eq!(read(&store, &key, None).await.unwrap(), b"second version");
    // Empty objects are objects.
    let empty = format!("{}empty", prefix());
    store.put(&empty, Bytes::new()).await.unwrap();
    assert_eq!(store.head(&empty).await.unwrap().unwrap().size, 0);
    assert!(read(&store, &empty, None).await.unwrap().is_empty());
}

async fn missing_objects(store: SharedStore) {
    let key = format!("{}nothing-here", prefix());
    assert!(store.head(&key).await.unwrap().is_none());
    assert!(matches!(store.get(&key, None).await.err(), Some(StoreError::NotFound(_))));
    store.delete_many(&[key]).await.unwrap();
}

async fn ranged_reads(store: SharedStore) {
    let key = format!("{}ranged", prefix());
    let body = pattern(10_000, 2);
    store.put(&key, Bytes::from(body.clone())).await.unwrap();
    assert_eq!(read(&store, &key, Some(100..200)).await.unwrap(), &body[100..200]);
    assert_eq!(read(&store, &key, Some(9_990..20_000)).await.unwrap(), &body[9_990..], "end is clamped");
    let got = store.get(&key, Some(5_000..6_000)).await.unwrap();
    assert_eq!(got.meta.size, 10_000, "meta is the whole object's");
    assert_eq!(got.range, 5_000..6_000);
    assert!(matches!(store.get(&key, Some(10_000..10_010)).await.err(), Some(StoreError::InvalidRange { .. })));
}

async fn list_paginates_in_key_order(store: SharedStore) {
    let p = prefix();
    for i in 0..25 {
        store.put(&format!("{p}items/{i:03}"), Bytes::from(vec![1u8; i])).await.unwrap();
    }
    store.put(&format!("{p}itemsX"), Bytes::from_static(b"x")).await.unwrap();
    store.put(&format!("{p}other/1"), Bytes::from_static(b"x")).await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.list(&format!("{p}items/"), after.as_deref(), 10).await.unwrap();
        pages += 1;
        assert!(page.objects.len() <= 10);
        seen.extend(page.objects.iter().map(|o| (o.key.clone(), o.size)));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<(String, u64)> = (0..25).map(|i| (format!("{p}items/{i:03}"), i as u64)).collect();
    assert_eq!(seen, expected);
    let all = list_all(store.as_ref(), &format!("{p}items")).await.unwrap();
    assert_eq!(all.len(), 26, "a prefix need not end at a slash");
}

async fn batch_delete(store: SharedStore) {
    let p = prefix();
    let keys: Vec<String> = (0..30).map(|i| format!("{p}d/{i}")).collect();
    for k in &keys {
        store.put(k, Bytes::from_static(b"bye")).await.unwrap();
    }
    let mut doomed = keys[..20].to_vec();
    doomed.push(format!("{p}d/never-existed"));
    store.delete_many(&doomed).await.unwrap();
    let left = list_all(store.as_ref(), &format!("{p}d/")).await.unwrap();
    let mut expected = keys[20..].to_vec();
    expected.sort();
    assert_eq!(left.into_iter().map(|o| o.key).collect::<Vec<_>>(), expected);
}

async fn multipart_with_concurrent_parts(store: SharedStore) {
    let key = format!("{}mp/big.bin", prefix());
    let part = 5 << 20;
    let bodies: Vec<Vec<u8>> = (0..3).map(|i| pattern(if i == 2 { 1234 } else { part }, i as u8)).collect();
    let id = store.create_multipart(&key).await.unwrap();
    let pending = store.list_multipart(&key).await.unwrap();
    assert!(pending.iter().any(|u| u.upload_id == id && u.key == key), "pending upload is listed");
    assert!(store.head(&key).await.unwrap().is_none(), "invisible until complete");
    // Upload the parts concurrently and out of order.
    let tags = futures::future::try_join_all(
        bodies.iter().enumerate().rev().map(|(i, b)| store.put_part(&key, &id, i as u32 + 1, Bytes::from(b.clone()))),
    )
    .await
    .unwrap();
    let meta = store.complete_multipart(&key, &id, tags).await.unwrap();
    assert_eq!(meta.size, (2 * part + 1234) as u64);
    assert_eq!(read(&store, &key, None).await.unwrap(), bodies.concat());
    assert!(!store.list_multipart(&key).await.unwrap().iter().any(|u| u.upload_id == id));
}

async fn multipart_abort_leaves_nothing(store: SharedStore) {
    let key = format!("{}mp/aborted.bin", prefix());
    let id = store.create_multipart(&key).await.unwrap();
    let tag = store.put_part(&key, &id, 1, Bytes::from(pattern(5 << 20, 3))).await.unwrap();
    store.abort_multipart(&key, &id).await.unwrap();
    assert!(store.head(&key).await.unwrap().is_none());
    assert!(!store.list_multipart(&key).await.unwrap().iter().any(|u| u.upload_id == id));
    assert!(store.complete_multipart(&key, &id, vec![tag]).await.is_err(), "an aborted upload cannot complete");
}

async fn upload_stream_small_and_large(store: SharedStore) {
    let p = prefix();
    let opts = UploadOptions { multipart_threshold: 6 << 20, part_size: 5 << 20, concurrency: 3 };
    let small = pattern(300_000, 4);
    let chunks = small.chunks(64 * 1024).map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c))).collect::<Vec<_>>();
    let meta = upload_stream(&store, &format!("{p}small"), stream::iter(chunks), opts).await.unwrap();
    assert_eq!(meta.size, 300_000);
    let large = pattern(23 << 20, 5);
    let chunks = large.chunks(1 << 20).map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c))).collect::<Vec<_>>();
    let meta = upload_stream(&store, &format!("{p}large"), stream::iter(chunks), opts).await.unwrap();
    assert_eq!(meta.size, 23 << 20);
    let got: Vec<Bytes> = store.get(&format!("{p}large"), None).await.unwrap().body.try_collect().await.unwrap();
    assert!(got.len() > 1, "the body streams in chunks");
    assert_eq!(got.concat(), large);
    assert!(store.list_multipart(&p).await.unwrap().is_empty());
}

async fn failed_body_leaves_nothing(store: SharedStore) {
    let p = prefix();
    let opts = UploadOptions { multipart_threshold: 6 << 20, part_size: 5 << 20, concurrency: 2 };
    for size_before_failure in [100_000usize, 17 << 20] {
        let key = format!("{p}broken-{size_before_failure}");
        let good = pattern(size_before_failure, 6);
        let mut chunks: Vec<Result<Bytes, std::io::Error>> =
            good.chunks(1 << 20).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        chunks.push(Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "client went away")));
        let err = upload_stream(&store, &key, stream::iter(chunks), opts).await.unwrap_err();
        assert!(matches!(err, StoreError::Body(_)), "{err}");
        assert!(store.head(&key).await.unwrap().is_none(), "no object after a failed body");
    }
    assert!(store.list_multipart(&p).await.unwrap().is_empty(), "no multipart upload left behind");
}

async fn invalid_keys_are_refused(store: SharedStore) {
    for key in ["../escape", "/abs", "a/../../b", "nul\0byte", "", "a//b"] {
        assert!(matches!(store.put(key, Bytes::from_static(b"x")).await, Err(StoreError::InvalidKey { .. })), "{key:?}");
        assert!(matches!(store.get(key, None).await.err(), Some(StoreError::InvalidKey { .. })), "{key:?}");
    }
    assert!(store.list("../", None, 10).await.is_err());
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod local_directory {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::local().await).await } )*
        }
        mod garage_s3 {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::s3().await).await } )*
        }
        mod garage_s3_prefixed {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::s3_prefixed().await).await } )*
        }
    };
}

conformance!(
    put_get_head_overwrite,
    missing_objects,
    ranged_reads,
    list_paginates_in_key_order,
    batch_delete,
    multipart_with_concurrent_parts,
    multipart_abort_leaves_nothing,
    upload_stream_small_and_large,
    failed_body_leaves_nothing,
    invalid_keys_are_refused,
);
