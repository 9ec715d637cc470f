//! Posts, comments and the post events that carry their changes to the lake.
//!
//! A post's status moves only in transactions that also move its image (see
//! [`settle_posts!`]), or in the transaction that creates it from an image that already
//! finished. Each change inserts its event (`post_events`, keyed by the lake row's
//! `event_id`) in the same transaction, so a change and its fact are never apart.

use super::images::{self, Row as ImageRow};
use super::{err, exec, in_tx, on_pool, SqlMetadata};
use crate::lake::{CommentEventKind, Event, PostEventKind};
use crate::meta::{from_micros, micros, MetaError, PostEvent};
use crate::post::{self, Comment, CommentOutcome, NewComment, Post, PostCursor, PostOrder, PostStatus, PostView};
use crate::record::{ImageRecord, RecordError, VariantRecord};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

pub(super) const POST_COLUMNS: &str = "id, customer, image_id, caption, author, status, error_code, error_message, \
     callback_url, created_at, published_at, comment_count";

#[derive(sqlx::FromRow)]
pub(super) struct PostRow {
    id: String,
    customer: String,
    image_id: String,
    caption: String,
    author: Option<String>,
    status: String,
    error_code: Option<String>,
    error_message: Option<String>,
    callback_url: Option<String>,
    created_at: i64,
    published_at: Option<i64>,
    comment_count: i64,
}

impl PostRow {
    pub(super) fn into_post(self) -> Result<Post, MetaError> {
        Ok(Post {
            status: PostStatus::parse(&self.status)
                .ok_or_else(|| MetaError::Corrupt(format!("post {}: unknown status {:?}", self.id, self.status)))?,
            id: self.id,
            customer: self.customer,
            image_id: self.image_id,
            caption: self.caption,
            author: self.author,
            error: self.error_code.map(|code| RecordError { code, message: self.error_message.unwrap_or_default() }),
            callback_url: self.callback_url,
            created_at: from_micros(self.created_at),
            published_at: self.published_at.map(from_micros),
            comment_count: self.comment_count.max(0) as u64,
        })
    }
}

#[derive(sqlx::FromRow)]
struct CommentRow {
    id: String,
    post_id: String,
    author: String,
    body: String,
    created_at: i64,
}

impl From<CommentRow> for Comment {
    fn from(r: CommentRow) -> Self {
        Comment { id: r.id, post_id: r.post_id, author: r.author, text: r.body, created_at: from_micros(r.created_at) }
    }
}

pub(super) const INSERT_POST: &str = "INSERT INTO posts (id, customer, image_id, caption, author, status, error_code, \
     error_message, callback_url, created_at, published_at, comment_count) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0)";
pub(super) const INSERT_EVENT: &str = "INSERT INTO post_events (id, lake, callback_url, webhook_event, webhook, created_at, \
     next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING";

/// Inserts the post event of `$event` (a lake [`Event`]) with the webhook of `$post`
/// when `$hook` and the post has a callback URL.
macro_rules! insert_event {
    ($on:expr, $event:expr, $at:expr, $post:expr, $hook:expr) => {{
        let event: crate::lake::Event = $event;
        let post: Option<&crate::post::Post> = $post;
        let hook = post.filter(|_| $hook).and_then(|p| {
            let (name, body) = crate::post::webhook_body(p);
            p.callback_url.clone().map(|u| (u, name, body))
        });
        let id = crate::meta::sql::posts::event_id(&event);
        exec!(
            $on,
            crate::meta::sql::posts::INSERT_EVENT,
            id,
            serde_json::to_string(&event).expect("serializable"),
            hook.as_ref().map(|h| h.0.clone()),
            hook.as_ref().map(|h| h.1),
            hook.as_ref().map(|h| h.2.clone()),
            crate::meta::micros($at),
        );
    }};
}

/// Inserts a post row.
macro_rules! insert_post {
    ($on:expr, $p:expr) => {{
        let p: &Post = $p;
        exec!(
            $on,
            crate::meta::sql::posts::INSERT_POST,
            p.id.as_str(),
            p.customer.as_str(),
            p.image_id.as_str(),
            p.caption.as_str(),
            p.author.as_deref(),
            p.status.as_str(),
            p.error.as_ref().map(|e| e.code.as_str()),
            p.error.as_ref().map(|e| e.message.as_str()),
            p.callback_url.as_deref(),
            crate::meta::micros(p.created_at),
            p.published_at.map(crate::meta::micros),
        )
    }};
}

/// In a transaction that just finished image `$image_id` (`$error` is `None` when it is
/// processed): its `requested` posts become `published` or `failed`, each with its event
/// and webhook.
macro_rules! settle_posts {
    ($tx:expr, $image_id:expr, $at:expr, $error:expr) => {{
        let error: Option<&crate::record::RecordError> = $error;
        let sql = format!(
            "UPDATE posts SET status = $2, published_at = $3, error_code = $4, error_message = $5 \
             WHERE image_id = $1 AND status = 'requested' RETURNING {}",
            crate::meta::sql::posts::POST_COLUMNS
        );
        let (status, published) = match error {
            None => (crate::post::PostStatus::Published, Some(crate::meta::micros($at))),
            Some(_) => (crate::post::PostStatus::Failed, None),
        };
        let rows: Vec<crate::meta::sql::posts::PostRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind($image_id)
            .bind(status.as_str())
            .bind(published)
            .bind(error.map(|e| e.code.as_str()))
            .bind(error.map(|e| e.message.as_str()))
            .fetch_all(&mut *$tx)
            .await
            .map_err(crate::meta::sql::err)?;
        for row in rows {
            let p = row.into_post()?;
            let event = if error.is_none() { crate::lake::PostEventKind::Published } else { crate::lake::PostEventKind::Failed };
            insert_event!(&mut *$tx, crate::post::post_event(&p, event, $at), $at, Some(&p), true);
        }
    }};
}

/// In a transaction that makes image `$image_id` a tombstone: its posts and their
/// comments go, each post with its `deleted` event.
macro_rules! delete_posts_of_image {
    ($tx:expr, $image_id:expr, $at:expr) => {{
        let sql = format!("DELETE FROM posts WHERE image_id = $1 RETURNING {}", crate::meta::sql::posts::POST_COLUMNS);
        let rows: Vec<crate::meta::sql::posts::PostRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind($image_id).fetch_all(&mut *$tx).await.map_err(crate::meta::sql::err)?;
        for row in rows {
            let p = row.into_post()?;
            exec!(&mut *$tx, "DELETE FROM comments WHERE post_id = $1", p.id.as_str());
            insert_event!(&mut *$tx, crate::post::post_event(&p, crate::lake::PostEventKind::Deleted, $at), $at, None, false);
        }
    }};
}

pub(super) use {delete_posts_of_image, insert_event, insert_post, settle_posts};

/// The id of an event's row: its lake `event_id`.
pub(super) fn event_id(e: &Event) -> String {
    match e {
        Event::Post(r) => r.event_id.clone(),
        Event::Comment(r) => r.event_id.clone(),
        other => crate::ids::event_id(&[&serde_json::to_string(other).unwrap_or_default()]),
    }
}

fn select_post(filter: &str) -> String {
    format!("SELECT {POST_COLUMNS} FROM posts {filter}")
}

pub(super) async fn create_post(db: &SqlMetadata, p: &Post, at: DateTime<Utc>) -> Result<Option<Post>, MetaError> {
    in_tx!(db, tx => {
        // Locks the image row: a processor finishing it waits for this transaction (and
        // then sees the post), or finished before (and this reads its outcome).
        let n = exec!(&mut *tx, "UPDATE images SET attempts = attempts WHERE id = $1 AND customer = $2 AND deleted_at IS NULL",
            p.image_id.as_str(), p.customer.as_str());
        if n == 0 {
            return Ok(None);
        }
        let (status, code, message, processed_at): (String, Option<String>, Option<String>, Option<i64>) =
            sqlx::query_as("SELECT status, error_code, error_message, processed_at FROM images WHERE id = $1")
                .bind(p.image_id.as_str()).fetch_one(&mut *tx).await.map_err(err)?;
        let mut post = p.clone();
        match status.as_str() {
            "processed" => {
                post.status = PostStatus::Published;
                post.published_at = Some(at.max(processed_at.map(from_micros).unwrap_or(at)));
            }
            "failed" => {
                post.status = PostStatus::Failed;
                post.error = code.map(|code| RecordError { code, message: message.unwrap_or_default() });
            }
            _ => post.status = PostStatus::Requested,
        }
        insert_post!(&mut *tx, &post);
        insert_event!(&mut *tx, post::post_event(&post, PostEventKind::Created, post.created_at), at, None, false);
        if post.status != PostStatus::Requested {
            let event = if post.status == PostStatus::Published { PostEventKind::Published } else { PostEventKind::Failed };
            insert_event!(&mut *tx, post::post_event(&post, event, at), at, Some(&post), true);
        }
        Ok::<_, MetaError>(Some(post))
    })
}

pub(super) async fn get(db: &SqlMetadata, id: &str) -> Result<Option<Post>, MetaError> {
    let sql = select_post("WHERE id = $1");
    let row: Option<PostRow> =
        on_pool!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await).map_err(err)?;
    row.map(PostRow::into_post).transpose()
}

pub(super) async fn list(
    db: &SqlMetadata,
    customer: &str,
    order: PostOrder,
    after: Option<&PostCursor>,
    limit: usize,
) -> Result<Vec<Post>, MetaError> {
    let limit = limit as i64;
    let base = "WHERE customer = $1 AND status = 'published'";
    let rows: Vec<PostRow> = match (order, after) {
        (PostOrder::Newest, None) => {
            let sql = select_post(&format!("{base} ORDER BY id DESC LIMIT $2"));
            on_pool!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(customer).bind(limit).fetch_all(p).await)
        }
        (PostOrder::Newest, Some(c)) => {
            let sql = select_post(&format!("{base} AND id < $2 ORDER BY id DESC LIMIT $3"));
            on_pool!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(customer).bind(c.id.as_str()).bind(limit).fetch_all(p).await)
        }
        (PostOrder::Comments, None) => {
            let sql = select_post(&format!("{base} ORDER BY comment_count DESC, id DESC LIMIT $2"));
            on_pool!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(customer).bind(limit).fetch_all(p).await)
        }
        (PostOrder::Comments, Some(c)) => {
            // Row-value comparison, in the index's order: both databases seek with it.
            let sql = select_post(&format!(
                "{base} AND (comment_count, id) < ($2, $3) ORDER BY comment_count DESC, id DESC LIMIT $4"
            ));
            let count = c.comment_count.min(i64::MAX as u64) as i64;
            on_pool!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(customer).bind(count).bind(c.id.as_str()).bind(limit).fetch_all(p).await)
        }
    }
    .map_err(err)?;
    rows.into_iter().map(PostRow::into_post).collect()
}

/// `$1, $2, ...` from `start`.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

pub(super) async fn views(db: &SqlMetadata, posts: Vec<Post>) -> Result<Vec<PostView>, MetaError> {
    if posts.is_empty() {
        return Ok(Vec::new());
    }
    // The images' variants: one query.
    let mut image_ids: Vec<&str> = posts.iter().map(|p| p.image_id.as_str()).collect();
    image_ids.sort_unstable();
    image_ids.dedup();
    let sql = images::select_by_ids(&placeholders(1, image_ids.len()));
    let rows: Vec<ImageRow> = on_pool!(db, p => {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        for id in &image_ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await
    })
    .map_err(err)?;
    let variants: HashMap<String, Vec<VariantRecord>> =
        images::records_of(rows)?.into_iter().map(|r: ImageRecord| (r.id, r.variants)).collect();
    // The latest comments of each post: one query, a LIMIT per post (a post may have
    // millions of comments; each part reads two index entries).
    let parts: Vec<String> = (0..posts.len())
        .map(|i| {
            format!(
                "SELECT * FROM (SELECT id, post_id, author, body, created_at FROM comments WHERE post_id = ${} \
                 ORDER BY id DESC LIMIT {}) AS c{i}",
                i + 1,
                post::LATEST_COMMENTS
            )
        })
        .collect();
    let sql = parts.join(" UNION ALL ");
    let rows: Vec<CommentRow> = on_pool!(db, p => {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        for post in &posts {
            q = q.bind(post.id.as_str());
        }
        q.fetch_all(p).await
    })
    .map_err(err)?;
    let mut latest: HashMap<String, Vec<Comment>> = HashMap::new();
    for r in rows {
        latest.entry(r.post_id.clone()).or_default().push(r.into());
    }
    Ok(posts
        .into_iter()
        .map(|p| {
            let v = if p.status == PostStatus::Published {
                variants.get(&p.image_id).cloned().unwrap_or_default()
            } else {
                Vec::new()
            };
            let mut c = latest.remove(&p.id).unwrap_or_default();
            c.sort_by(|a, b| b.id.cmp(&a.id));
            PostView::new(p, v, c)
        })
        .collect())
}

pub(super) async fn add_comments(db: &SqlMetadata, comments: &[NewComment]) -> Result<Vec<CommentOutcome>, MetaError> {
    in_tx!(db, tx => {
        let mut out = Vec::with_capacity(comments.len());
        for c in comments {
            // The count moves only on a published post of this customer; that update
            // also tells whether the comment may be stored.
            let n = exec!(&mut *tx,
                "UPDATE posts SET comment_count = comment_count + 1 WHERE id = $1 AND customer = $2 AND status = 'published'",
                c.post_id.as_str(), c.customer.as_str());
            if n == 0 {
                let status: Option<(String,)> = sqlx::query_as("SELECT status FROM posts WHERE id = $1 AND customer = $2")
                    .bind(c.post_id.as_str()).bind(c.customer.as_str()).fetch_optional(&mut *tx).await.map_err(err)?;
                out.push(if status.is_some() { CommentOutcome::NotPublished } else { CommentOutcome::NoPost });
                continue;
            }
            exec!(&mut *tx, "INSERT INTO comments (id, post_id, customer, author, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                c.id.as_str(), c.post_id.as_str(), c.customer.as_str(), c.author.as_str(), c.text.as_str(), micros(c.created_at));
            let comment = Comment {
                id: c.id.clone(), post_id: c.post_id.clone(), author: c.author.clone(), text: c.text.clone(), created_at: c.created_at,
            };
            insert_event!(&mut *tx, post::comment_event(&comment, &c.customer, CommentEventKind::Created, c.created_at), c.created_at, None, false);
            out.push(CommentOutcome::Added(comment));
        }
        Ok::<_, MetaError>(out)
    })
}

pub(super) async fn list_comments(
    db: &SqlMetadata,
    post_id: &str,
    before: Option<&str>,
    limit: usize,
) -> Result<Vec<Comment>, MetaError> {
    const COLS: &str = "SELECT id, post_id, author, body, created_at FROM comments";
    let limit = limit as i64;
    let rows: Vec<CommentRow> = on_pool!(db, p => match before {
        None => sqlx::query_as(sqlx::AssertSqlSafe(format!("{COLS} WHERE post_id = $1 ORDER BY id DESC LIMIT $2")))
            .bind(post_id).bind(limit).fetch_all(p).await,
        Some(b) => sqlx::query_as(sqlx::AssertSqlSafe(format!("{COLS} WHERE post_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3")))
            .bind(post_id).bind(b).bind(limit).fetch_all(p).await,
    })
    .map_err(err)?;
    Ok(rows.into_iter().map(Comment::from).collect())
}

pub(super) async fn delete_comment(
    db: &SqlMetadata,
    post_id: &str,
    comment_id: &str,
    at: DateTime<Utc>,
) -> Result<Option<Comment>, MetaError> {
    in_tx!(db, tx => {
        let row: Option<(String, String, String, String, String, i64)> = sqlx::query_as(
            "DELETE FROM comments WHERE id = $1 AND post_id = $2 RETURNING id, post_id, customer, author, body, created_at")
            .bind(comment_id).bind(post_id).fetch_optional(&mut *tx).await.map_err(err)?;
        let Some((id, post_id, customer, author, text, created_at)) = row else {
            return Ok(None);
        };
        exec!(&mut *tx, "UPDATE posts SET comment_count = comment_count - 1 WHERE id = $1 AND comment_count > 0", post_id.as_str());
        let comment = Comment { id, post_id, author, text, created_at: from_micros(created_at) };
        insert_event!(&mut *tx, post::comment_event(&comment, &customer, CommentEventKind::Deleted, at), at, None, false);
        Ok::<_, MetaError>(Some(comment))
    })
}

pub(super) async fn delete_post(db: &SqlMetadata, id: &str, at: DateTime<Utc>) -> Result<Option<ImageRecord>, MetaError> {
    let image_id: Option<String> = in_tx!(db, tx => {
        let image: Option<(String,)> = sqlx::query_as("SELECT image_id FROM posts WHERE id = $1")
            .bind(id).fetch_optional(&mut *tx).await.map_err(err)?;
        if let Some((image_id,)) = &image {
            exec!(&mut *tx, "UPDATE images SET deleted_at = COALESCE(deleted_at, $2) WHERE id = $1", image_id.as_str(), micros(at));
            delete_posts_of_image!(tx, image_id.as_str(), at);
        }
        Ok::<_, MetaError>(image.map(|(i,)| i))
    })?;
    match image_id {
        Some(image_id) => images::get(db, &image_id, true).await,
        None => Ok(None),
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    lake: String,
    lake_written: i64,
    callback_url: Option<String>,
    webhook_event: Option<String>,
    webhook: Option<String>,
    attempts: i64,
}

pub(super) async fn claim_events(
    db: &SqlMetadata,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<PostEvent>, MetaError> {
    // The outer `next_attempt_at <= $2` is re-checked by PostgreSQL on the newest row
    // version, so two relays never claim one event.
    let rows: Vec<EventRow> = on_pool!(db, p => sqlx::query_as(
        "UPDATE post_events SET next_attempt_at = $1, attempts = attempts + 1 \
         WHERE next_attempt_at <= $2 AND id IN (SELECT id FROM post_events WHERE next_attempt_at <= $2 \
         ORDER BY next_attempt_at LIMIT $3) \
         RETURNING id, lake, lake_written, callback_url, webhook_event, webhook, attempts")
        .bind(micros(until)).bind(micros(now)).bind(limit as i64).fetch_all(p).await)
    .map_err(err)?;
    rows.into_iter()
        .map(|r| {
            let lake: Event =
                serde_json::from_str(&r.lake).map_err(|e| MetaError::Corrupt(format!("post event {}: {e}", r.id)))?;
            let webhook = match (r.callback_url, r.webhook_event, r.webhook) {
                (Some(u), Some(e), Some(b)) => Some((u, e, b)),
                _ => None,
            };
            Ok(PostEvent { id: r.id, lake, lake_written: r.lake_written != 0, webhook, attempts: r.attempts.max(0) as u32 })
        })
        .collect()
}

pub(super) async fn events_written(db: &SqlMetadata, ids: &[String], webhook_until: DateTime<Utc>) -> Result<(), MetaError> {
    for chunk in ids.chunks(500) {
        let del = format!("DELETE FROM post_events WHERE id IN ({}) AND callback_url IS NULL", placeholders(1, chunk.len()));
        let upd = format!(
            "UPDATE post_events SET lake_written = 1, next_attempt_at = $1 WHERE id IN ({})",
            placeholders(2, chunk.len())
        );
        in_tx!(db, tx => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(del.clone()));
            for id in chunk {
                q = q.bind(id.as_str());
            }
            q.execute(&mut *tx).await.map_err(err)?;
            let mut q = sqlx::query(sqlx::AssertSqlSafe(upd.clone())).bind(micros(webhook_until));
            for id in chunk {
                q = q.bind(id.as_str());
            }
            q.execute(&mut *tx).await.map_err(err)?;
            Ok::<_, MetaError>(())
        })?;
    }
    Ok(())
}

pub(super) async fn event_done(db: &SqlMetadata, id: &str) -> Result<(), MetaError> {
    on_pool!(db, p => exec!(p, "DELETE FROM post_events WHERE id = $1", id));
    Ok(())
}

pub(super) async fn events_len(db: &SqlMetadata) -> Result<u64, MetaError> {
    let (n,): (i64,) = on_pool!(db, p => sqlx::query_as("SELECT COUNT(*) FROM post_events").fetch_one(p).await).map_err(err)?;
    Ok(n.max(0) as u64)
}
