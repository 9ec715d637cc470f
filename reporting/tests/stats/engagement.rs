//! The engagement report's ranking: exact when the most commented posts are not listed,
//! and when it counts only the posts that can reach its bar.

use super::*;
use imagelake_core::lake::{CommentEventKind, CommentRow, PostEventKind, PostRow};

/// The engagement report looks up the state of the most-commented posts only (4 x limit,
/// with ties); when those list too few posts (here the eight most commented are deleted or
/// never published), it reads every counted post's state, and the ranking stays exact. With
/// and without aggregates, against the independent computation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engagement_ranks_exactly_when_the_most_commented_are_not_listed() {
    let ctx = Context::connect(config("engagement-unlisted")).await.unwrap();
    let lake = ctx.config.storage_dir().join("objects/lake");
    let mut events = Vec::new();
    // Posts 0-7: 20 comments each, then deleted (0-3) or never published (4-7).
    // Posts 8-10: published, with 3, 2 and 2 comments.
    for i in 0..11u32 {
        let post_id = format!("busy-{i:02}");
        events.push(post_event(&post_id, PostEventKind::Created, support::at(2, 8, 0)));
        if !(4..8).contains(&i) {
            events.push(post_event(&post_id, PostEventKind::Published, support::at(2, 9, 0)));
        }
        if i < 4 {
            events.push(post_event(&post_id, PostEventKind::Deleted, support::at(5, 9, 0)));
        }
        let n = match i {
            0..=7 => 20,
            8 => 3,
            _ => 2,
        };
        events.extend(comments(&post_id, n, support::at(3, 10, 0)));
    }
    ctx.lake.write_durable(events).await.unwrap();
    let app = app(&ctx).await;
    let expected = |limit: usize| -> Vec<(String, u64)> {
        [("busy-08", 3), ("busy-09", 2), ("busy-10", 2)].iter().take(limit).map(|(p, n)| (p.to_string(), *n)).collect()
    };
    for pass in ["raw", "aggregated"] {
        if pass == "aggregated" {
            aggregate(&ctx).await;
            assert!(aggregated_days(&app).await >= 2);
        }
        for limit in [1usize, 2, 3, 10] {
            let uri = format!("/v1/stats/engagement?limit={limit}");
            let got = get(&app, Some(ANALYST), &uri, None).await;
            assert_eq!(got.status, 200);
            assert_eq!(ranking(&got.json()), expected(limit), "{pass} {uri}");
            matches_independent(
                &app,
                &lake,
                ctx.config.capacity.bytes.0,
                "engagement",
                &[("limit", &limit.to_string())],
                Expect::Exact,
            )
            .await;
        }
    }
}

/// A long range counts only the posts whose comments of all time (their aggregated days'
/// total plus their raw comments) reach the bar: the `limit`-th count of the candidates,
/// the posts with the most comments of all time and of the raw days. Here the most
/// commented of all time have none in the range; `post-e` is not among the candidates
/// (fifth of all time, limit 1) but leads the range; `post-c` reaches the bar with its raw
/// comments only, `post-d` has raw comments alone. Against the independent computation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engagement_counts_the_posts_that_can_reach_the_bar() {
    let ctx = Context::connect(config("engagement-bar")).await.unwrap();
    let lake = ctx.config.storage_dir().join("objects/lake");
    let mut closed = Vec::new();
    // (post, comments on day 2, comments on day 3)
    for (post, day2, day3) in
        [("post-a", 10, 0), ("post-f", 9, 0), ("post-g", 8, 0), ("post-h", 7, 0), ("post-e", 0, 5), ("post-c", 0, 2)]
    {
        closed.extend(published(post, support::at(2, 8, 0)));
        closed.extend(comments(post, day2, support::at(2, 10, 0)));
        closed.extend(comments(post, day3, support::at(3, 10, 0)));
    }
    closed.extend(published("post-d", support::at(2, 8, 0)));
    ctx.lake.write_durable(closed).await.unwrap();
    assert!(aggregate(&ctx).await.built.len() >= 2);
    // Today's comments (raw: not aggregated).
    let now = Utc::now() - ChronoDuration::seconds(5);
    let mut today = comments("post-c", 2, now);
    today.extend(comments("post-d", 4, now));
    ctx.lake.write_durable(today).await.unwrap();
    let app = app(&ctx).await;
    assert!(aggregated_days(&app).await >= 2);
    let to = (Utc::now() + ChronoDuration::days(1)).format("%Y-%m-%dT00:00:00Z").to_string();
    let expected = [("post-e", 5), ("post-c", 4), ("post-d", 4)];
    for limit in [1usize, 2, 3, 10] {
        let args = [("from", "2026-11-03T00:00:00Z"), ("to", to.as_str()), ("limit", &limit.to_string())];
        let query: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let got = get(&app, Some(ANALYST), &format!("/v1/stats/engagement?{}", query.join("&")), None).await;
        assert_eq!(got.status, 200);
        let want: Vec<(String, u64)> = expected.iter().take(limit).map(|(p, n)| (p.to_string(), *n)).collect();
        assert_eq!(ranking(&got.json()), want, "limit {limit}");
        matches_independent(&app, &lake, ctx.config.capacity.bytes.0, "engagement", &args, Expect::Exact).await;
    }
}

/// A post created and published at `at`, by acme.
fn published(post_id: &str, at: DateTime<Utc>) -> Vec<Event> {
    [PostEventKind::Created, PostEventKind::Published].into_iter().map(|event| post_event(post_id, event, at)).collect()
}

/// One event of an acme post.
fn post_event(post_id: &str, event: PostEventKind, at: DateTime<Utc>) -> Event {
    Event::Post(PostRow {
        event_id: PostRow::event_id_of(post_id, event),
        post_id: post_id.into(),
        customer_id: "acme".into(),
        image_id: format!("img-{post_id}"),
        author: Some("ana".into()),
        event,
        error_code: None,
        caption_chars: 5,
        at,
    })
}

/// `n` comments made on the post, a minute apart from `at`.
fn comments(post_id: &str, n: i64, at: DateTime<Utc>) -> Vec<Event> {
    (0..n)
        .map(|k| {
            let comment_id = format!("c-{post_id}-{}-{k}", at.timestamp());
            Event::Comment(CommentRow {
                event_id: CommentRow::event_id_of(&comment_id, CommentEventKind::Created),
                comment_id,
                post_id: post_id.into(),
                customer_id: "acme".into(),
                author: "bo".into(),
                event: CommentEventKind::Created,
                chars: 4,
                at: at + ChronoDuration::minutes(k),
            })
        })
        .collect()
}

/// The ranking's (post, comments).
fn ranking(v: &Value) -> Vec<(String, u64)> {
    v.as_array().unwrap().iter().map(|r| (r["post_id"].as_str().unwrap().to_string(), r["comments"].as_u64().unwrap())).collect()
}
