//! The posts and comments part of `MetadataStore`, against SQLite and the real PostgreSQL
//! server (`scripts/test` starts it): a post moves with its image in one transaction and
//! only once; comments count and page; deletes take everything; the post events are
//! claimed by one relay at a time and carry exactly one fact per change.

#[macro_use]
mod common;

use chrono::{DateTime, Duration, Utc};
use imagelake_core::ids;
use imagelake_core::lake::Event;
use imagelake_core::meta::{MetadataStore, NewImage, SqlMetadata, Transition};
use imagelake_core::post::{CommentOutcome, NewComment, Post, PostCursor, PostOrder, PostStatus};
use imagelake_core::record::{ImageRecord, RecordError, Status};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

conformance!(
    a_post_moves_with_its_image_once,
    a_post_of_a_finished_image_takes_its_outcome,
    racing_post_creation_and_finish_never_strand_a_post,
    comments_count_page_and_delete,
    listings_page_exactly_in_both_orders,
    deleting_a_post_takes_comments_and_tombstones_the_image,
    events_are_claimed_once_and_carry_one_fact_per_change,
);

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap()
}

fn record(customer: &str) -> ImageRecord {
    ImageRecord {
        id: ids::new_id(),
        customer: customer.into(),
        status: Status::Uploaded,
        content_type: "image/png".into(),
        format: "png".into(),
        bytes: 10,
        width: Some(4),
        height: Some(3),
        sha256: "ab".repeat(32),
        uploaded_at: now(),
        processed_at: None,
        error: None,
        exif: None,
        requested_variants: vec!["thumb".into()],
        variants: Vec::new(),
        attempts: 0,
        callback_url: None,
    }
}

fn draft(customer: &str, image_id: &str, hook: bool) -> Post {
    Post {
        id: ids::new_id(),
        customer: customer.into(),
        image_id: image_id.into(),
        caption: "a caption".into(),
        author: Some("ada".into()),
        status: PostStatus::Requested,
        error: None,
        callback_url: hook.then(|| "https://example.com/hook".to_string()),
        created_at: now(),
        published_at: None,
        comment_count: 0,
    }
}

/// An image uploaded with a post in its transaction.
async fn upload_with_post(db: &SqlMetadata, customer: &str, hook: bool) -> (ImageRecord, Post) {
    let r = record(customer);
    let p = draft(customer, &r.id, hook);
    let job = ids::new_id();
    let new = NewImage {
        record: &r,
        job_id: &job,
        job_body: "{}",
        send_after: r.uploaded_at,
        idempotency: None,
        post: Some(&p),
        in_flight: false,
    };
    db.create_image(new).await.unwrap();
    (r, p)
}

async fn upload(db: &SqlMetadata, customer: &str) -> ImageRecord {
    let r = record(customer);
    let job = ids::new_id();
    let new = NewImage {
        record: &r,
        job_id: &job,
        job_body: "{}",
        send_after: r.uploaded_at,
        idempotency: None,
        post: None,
        in_flight: false,
    };
    db.create_image(new).await.unwrap();
    r
}

/// Every pending event, claimed and finished (lake written, webhooks delivered).
async fn drain(db: &SqlMetadata) -> Vec<(String, Event, Option<String>)> {
    let t = now();
    let mut out = Vec::new();
    loop {
        let got = db.claim_post_events(t + Duration::days(1), t + Duration::days(2), 100).await.unwrap();
        if got.is_empty() {
            return out;
        }
        let ids: Vec<String> = got.iter().map(|e| e.id.clone()).collect();
        db.post_events_written(&ids, t).await.unwrap();
        for e in got {
            db.post_event_done(&e.id).await.unwrap();
            out.push((e.id, e.lake, e.webhook.map(|w| w.1)));
        }
    }
}

fn post_facts(events: &[(String, Event, Option<String>)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = events
        .iter()
        .filter_map(|(_, e, _)| match e {
            Event::Post(r) => Some((r.post_id.clone(), r.event.to_string())),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

async fn a_post_moves_with_its_image_once(db: Arc<SqlMetadata>) {
    let (img, p) = upload_with_post(&db, "acme", true).await;
    let (img2, p2) = upload_with_post(&db, "acme", true).await;
    assert_eq!(db.post(&p.id).await.unwrap().unwrap().status, PostStatus::Requested);
    assert!(db.list_posts("acme", PostOrder::Newest, None, 10).await.unwrap().is_empty(), "requested posts are not listed");
    db.start_processing(&img.id, 1).await.unwrap();
    let at = now();
    assert!(matches!(db.finish_processed(&img.id, at, (4, 3), &[]).await.unwrap(), Transition::Applied(_)));
    // A second delivery finishes nothing, and publishes nothing again.
    assert!(matches!(db.finish_processed(&img.id, now(), (4, 3), &[]).await.unwrap(), Transition::Refused(_)));
    let got = db.post(&p.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.published_at), (PostStatus::Published, Some(at)));
    let error = RecordError { code: "decode_failed".into(), message: "bad".into() };
    assert!(matches!(db.fail_image(&img2.id, Some(1), now(), &error, false).await.unwrap(), Transition::Applied(_)));
    assert!(matches!(db.fail_image(&img2.id, Some(2), now(), &error, false).await.unwrap(), Transition::Refused(_)));
    let got2 = db.post(&p2.id).await.unwrap().unwrap();
    assert_eq!(got2.status, PostStatus::Failed);
    assert_eq!(got2.error.unwrap().code, "decode_failed");
    let listed = db.list_posts("acme", PostOrder::Newest, None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), [p.id.as_str()]);
    let events = drain(&db).await;
    let mut want = vec![
        (p.id.clone(), "created".to_string()),
        (p.id.clone(), "published".to_string()),
        (p2.id.clone(), "created".to_string()),
        (p2.id.clone(), "failed".to_string()),
    ];
    want.sort();
    assert_eq!(post_facts(&events), want, "one fact per change");
    let hooks: Vec<&str> = events.iter().filter_map(|(_, _, h)| h.as_deref()).collect();
    assert_eq!(hooks.len(), 2, "one webhook per transition: {hooks:?}");
    assert!(hooks.contains(&"post.published") && hooks.contains(&"post.failed"));
}

async fn a_post_of_a_finished_image_takes_its_outcome(db: Arc<SqlMetadata>) {
    let done = upload(&db, "acme").await;
    db.finish_processed(&done.id, now(), (4, 3), &[]).await.unwrap();
    let p = db.create_post(&draft("acme", &done.id, false), now()).await.unwrap().unwrap();
    assert_eq!(p.status, PostStatus::Published);
    assert!(p.published_at.is_some());
    let bad = upload(&db, "acme").await;
    let error = RecordError { code: "image_too_large".into(), message: "big".into() };
    db.fail_image(&bad.id, Some(1), now(), &error, false).await.unwrap();
    let p = db.create_post(&draft("acme", &bad.id, false), now()).await.unwrap().unwrap();
    assert_eq!((p.status, p.error.unwrap().code.as_str()), (PostStatus::Failed, "image_too_large"));
    // Another customer's image, a deleted one, or none: no post.
    assert!(db.create_post(&draft("globex", &done.id, false), now()).await.unwrap().is_none());
    assert!(db.create_post(&draft("acme", &ids::new_id(), false), now()).await.unwrap().is_none());
    let gone = upload(&db, "acme").await;
    db.begin_delete(&gone.id, now()).await.unwrap();
    assert!(db.create_post(&draft("acme", &gone.id, false), now()).await.unwrap().is_none());
}

/// A post created while its image is being finished ends published, never stranded in
/// `requested` (the image row lock orders the two transactions).
async fn racing_post_creation_and_finish_never_strand_a_post(db: Arc<SqlMetadata>) {
    for _ in 0..20 {
        let img = upload(&db, "acme").await;
        let (a, b) = (db.clone(), db.clone());
        let id = img.id.clone();
        let finish = tokio::spawn(async move { a.finish_processed(&id, now(), (4, 3), &[]).await.unwrap() });
        let id = img.id.clone();
        let create = tokio::spawn(async move { b.create_post(&draft("acme", &id, false), now()).await.unwrap().unwrap() });
        finish.await.unwrap();
        let p = create.await.unwrap();
        assert_eq!(db.post(&p.id).await.unwrap().unwrap().status, PostStatus::Published, "stranded");
    }
}

fn comment(post: &Post, text: &str) -> NewComment {
    NewComment {
        id: ids::new_id(),
        post_id: post.id.clone(),
        customer: post.customer.clone(),
        author: "bob".into(),
        text: text.into(),
        created_at: now(),
    }
}

async fn published(db: &SqlMetadata, customer: &str) -> Post {
    let img = upload(db, customer).await;
    db.finish_processed(&img.id, now(), (4, 3), &[]).await.unwrap();
    db.create_post(&draft(customer, &img.id, false), now()).await.unwrap().unwrap()
}

async fn comments_count_page_and_delete(db: Arc<SqlMetadata>) {
    let p = published(&db, "acme").await;
    let (_, requested) = upload_with_post(&db, "acme", false).await;
    let mut stranger = p.clone();
    stranger.customer = "globex".into();
    let batch: Vec<NewComment> = (0..5).map(|i| comment(&p, &format!("c{i}"))).collect();
    let mut with_refusals = batch.clone();
    with_refusals.push(comment(&requested, "too early"));
    with_refusals.push(comment(&stranger, "not yours"));
    let mut missing = p.clone();
    missing.id = ids::new_id();
    with_refusals.push(comment(&missing, "nobody"));
    let out = db.add_comments(&with_refusals).await.unwrap();
    assert!(out[..5].iter().all(|o| matches!(o, CommentOutcome::Added(_))));
    assert_eq!(out[5..], [CommentOutcome::NotPublished, CommentOutcome::NoPost, CommentOutcome::NoPost]);
    assert_eq!(db.post(&p.id).await.unwrap().unwrap().comment_count, 5);
    let page1 = db.list_comments(&p.id, None, 2).await.unwrap();
    let page2 = db.list_comments(&p.id, Some(&page1[1].id), 2).await.unwrap();
    let texts: Vec<&str> = page1.iter().chain(&page2).map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["c4", "c3", "c2", "c1"]);
    let view = db.post_views(vec![db.post(&p.id).await.unwrap().unwrap()]).await.unwrap().pop().unwrap();
    assert_eq!(view.latest_comments.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(), ["c4", "c3"]);
    assert_eq!(view.comment_count, 5);
    let gone = db.delete_comment(&p.id, &batch[4].id, now()).await.unwrap().unwrap();
    assert_eq!(gone.text, "c4");
    assert!(db.delete_comment(&p.id, &batch[4].id, now()).await.unwrap().is_none(), "deleted once");
    assert!(db.delete_comment(&requested.id, &batch[3].id, now()).await.unwrap().is_none(), "only on its own post");
    assert_eq!(db.post(&p.id).await.unwrap().unwrap().comment_count, 4);
}

async fn listings_page_exactly_in_both_orders(db: Arc<SqlMetadata>) {
    let mut posts = Vec::new();
    for i in 0..9u64 {
        let p = published(&db, "acme").await;
        let n = (i * 7) % 4; // ties on purpose
        let batch: Vec<NewComment> = (0..n).map(|k| comment(&p, &format!("{k}"))).collect();
        db.add_comments(&batch).await.unwrap();
        posts.push((n, p.id));
    }
    published(&db, "globex").await;
    for order in [PostOrder::Newest, PostOrder::Comments] {
        let mut seen = Vec::new();
        let mut after: Option<PostCursor> = None;
        loop {
            let page = db.list_posts("acme", order, after.as_ref(), 2).await.unwrap();
            let Some(last) = page.last() else { break };
            after = Some(PostCursor { comment_count: last.comment_count, id: last.id.clone() });
            seen.extend(page.iter().map(|p| (p.comment_count, p.id.clone())));
        }
        let mut want = posts.clone();
        match order {
            PostOrder::Newest => want.sort_by(|a, b| b.1.cmp(&a.1)),
            PostOrder::Comments => want.sort_by(|a, b| b.cmp(a)),
        }
        assert_eq!(seen, want, "{order:?}: exact, nothing skipped or repeated");
    }
}

async fn deleting_a_post_takes_comments_and_tombstones_the_image(db: Arc<SqlMetadata>) {
    let p = published(&db, "acme").await;
    // A second post of the same image goes with it.
    let p2 = db.create_post(&draft("acme", &p.image_id, false), now()).await.unwrap().unwrap();
    db.add_comments(&[comment(&p, "a"), comment(&p2, "b")]).await.unwrap();
    let image = db.delete_post(&p.id, now()).await.unwrap().expect("the image, to remove its objects");
    assert_eq!(image.id, p.image_id);
    assert!(db.image(&p.image_id).await.unwrap().is_none(), "the image is a tombstone");
    assert!(db.post(&p.id).await.unwrap().is_none() && db.post(&p2.id).await.unwrap().is_none());
    assert!(db.list_comments(&p.id, None, 10).await.unwrap().is_empty());
    assert!(db.delete_post(&p.id, now()).await.unwrap().is_none());
    // Deleting an image directly takes its posts too.
    let q = published(&db, "acme").await;
    db.begin_delete(&q.image_id, now()).await.unwrap();
    assert!(db.post(&q.id).await.unwrap().is_none());
    let facts = post_facts(&drain(&db).await);
    for id in [&p.id, &p2.id, &q.id] {
        assert!(facts.contains(&(id.to_string(), "deleted".into())), "{id} deleted fact: {facts:?}");
    }
}

async fn events_are_claimed_once_and_carry_one_fact_per_change(db: Arc<SqlMetadata>) {
    let p = published(&db, "acme").await;
    let batch: Vec<NewComment> = (0..300).map(|i| comment(&p, &format!("{i}"))).collect();
    db.add_comments(&batch).await.unwrap();
    let total = db.post_events_len().await.unwrap();
    assert_eq!(total, 302, "created + published + 300 comments");
    // Four relays claim at once: every event goes to exactly one of them.
    let t = now();
    let claims = (0..4).map(|_| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = db.claim_post_events(t, t + Duration::seconds(30), 25).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|e| e.id));
            }
        })
    });
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for c in claims {
        for id in c.await.unwrap() {
            *counts.entry(id).or_default() += 1;
        }
    }
    assert_eq!(counts.len() as u64, total);
    assert!(counts.values().all(|n| *n == 1), "an event claimed twice");
    // Claimed events wait out their lease; then they come back (a relay died).
    assert!(db.claim_post_events(t, t + Duration::seconds(30), 10).await.unwrap().is_empty());
    let again = drain(&db).await;
    assert_eq!(again.len() as u64, total);
    let ids: HashSet<&String> = again.iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids.len(), again.len());
    assert_eq!(db.post_events_len().await.unwrap(), 0);
}
