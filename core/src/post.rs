//! Posts and comments: an image published with a caption, and what people say about it.
//!
//! A post is `requested` while its image is processed, and becomes `published` or
//! `failed` in the same database transaction that finishes the image (`crate::meta`).
//! Every change of a post or a comment leaves one event row in the database's
//! `post_events` table in that same transaction; the processor's relay writes it to the
//! lake and, for `published` and `failed`, sends the post's webhook. This module holds
//! the types, the input rules and the one recipe of those events.

use crate::lake::{CommentEventKind, CommentRow, Event, PostEventKind, PostRow};
use crate::record::{RecordError, VariantRecord};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest caption, in characters (Instagram's limit).
pub const MAX_CAPTION_CHARS: usize = 2200;
/// Longest comment, in characters, after trimming.
pub const MAX_COMMENT_CHARS: usize = 2000;
/// Longest author name, in characters.
pub const MAX_AUTHOR_CHARS: usize = 100;
/// Comments shown inside a post.
pub const LATEST_COMMENTS: usize = 2;

/// Where a post is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PostStatus {
    /// Its image is still being processed; not listed yet.
    Requested,
    /// Its image is processed; listed and open to comments.
    Published,
    /// Its image failed; `error` says why. Never listed.
    Failed,
}

impl PostStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PostStatus::Requested => "requested",
            PostStatus::Published => "published",
            PostStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "requested" => Some(PostStatus::Requested),
            "published" => Some(PostStatus::Published),
            "failed" => Some(PostStatus::Failed),
            _ => None,
        }
    }
}

/// A post as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    pub id: String,
    pub customer: String,
    pub image_id: String,
    pub caption: String,
    pub author: Option<String>,
    pub status: PostStatus,
    pub error: Option<RecordError>,
    pub callback_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    pub comment_count: u64,
}

/// A comment as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Comment {
    pub id: String,
    pub post_id: String,
    pub author: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// A post as the API shows it: the stored post, its image's variants, its comment count
/// and its latest comments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PostView {
    pub id: String,
    pub url: String,
    pub image_id: String,
    pub caption: String,
    pub author: Option<String>,
    pub status: PostStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordError>,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    /// The image's variants (empty until it is processed).
    pub variants: Vec<VariantRecord>,
    pub comment_count: u64,
    /// The newest comments, newest first (at most two).
    pub latest_comments: Vec<Comment>,
}

impl PostView {
    pub fn new(post: Post, variants: Vec<VariantRecord>, latest_comments: Vec<Comment>) -> Self {
        Self {
            url: post_url(&post.id),
            id: post.id,
            image_id: post.image_id,
            caption: post.caption,
            author: post.author,
            status: post.status,
            error: post.error,
            created_at: post.created_at,
            published_at: post.published_at,
            variants,
            comment_count: post.comment_count,
            latest_comments,
        }
    }
}

pub fn post_url(id: &str) -> String {
    format!("/v1/posts/{id}")
}

/// How a listing of posts is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostOrder {
    /// Newest first (by id: ids are UUIDv7, so id order is creation order).
    Newest,
    /// Most comments first, ties newest first.
    Comments,
}

/// Where a page of posts starts: strictly after this post in the listing's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostCursor {
    pub comment_count: u64,
    pub id: String,
}

/// A new comment, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewComment {
    pub id: String,
    pub post_id: String,
    pub customer: String,
    pub author: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// What storing one comment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentOutcome {
    Added(Comment),
    /// No such post for this customer.
    NoPost,
    /// The post exists but is not published (yet, or ever).
    NotPublished,
}

/// An input that breaks a rule, with its stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

fn invalid(code: &'static str, message: String) -> Invalid {
    Invalid { code, message }
}

/// A caption: at most [`MAX_CAPTION_CHARS`] characters (it may be empty), no NUL.
pub fn check_caption(caption: &str) -> Result<String, Invalid> {
    let n = caption.chars().count();
    if n > MAX_CAPTION_CHARS {
        return Err(invalid(
            "caption_too_long",
            format!("the caption has {n} characters; at most {MAX_CAPTION_CHARS} are allowed"),
        ));
    }
    if caption.contains('\0') {
        return Err(invalid("invalid_caption", "the caption contains a NUL character".into()));
    }
    Ok(caption.to_string())
}

/// An author: trimmed, 1 to [`MAX_AUTHOR_CHARS`] characters, no control characters.
pub fn check_author(author: &str) -> Result<String, Invalid> {
    let a = author.trim();
    let n = a.chars().count();
    if n == 0 || n > MAX_AUTHOR_CHARS || a.chars().any(char::is_control) {
        return Err(invalid(
            "invalid_author",
            format!("the author must be 1 to {MAX_AUTHOR_CHARS} characters without control characters"),
        ));
    }
    Ok(a.to_string())
}

/// A comment's text: trimmed, 1 to [`MAX_COMMENT_CHARS`] characters, no NUL.
pub fn check_comment(text: &str) -> Result<String, Invalid> {
    let t = text.trim();
    let n = t.chars().count();
    if n == 0 {
        return Err(invalid("empty_comment", "the comment is empty".into()));
    }
    if n > MAX_COMMENT_CHARS {
        return Err(invalid(
            "comment_too_long",
            format!("the comment has {n} characters; at most {MAX_COMMENT_CHARS} are allowed"),
        ));
    }
    if t.contains('\0') {
        return Err(invalid("invalid_comment", "the comment contains a NUL character".into()));
    }
    Ok(t.to_string())
}

/// The lake fact of a post's `event` (`created`, `published`, `failed`, `deleted`). Each
/// happens once per post, so the post and the event name the fact.
pub fn post_event(post: &Post, event: PostEventKind, at: DateTime<Utc>) -> Event {
    Event::Post(PostRow {
        event_id: PostRow::event_id_of(&post.id, event),
        post_id: post.id.clone(),
        customer_id: post.customer.clone(),
        image_id: post.image_id.clone(),
        author: post.author.clone(),
        event,
        error_code: post.error.as_ref().map(|e| e.code.clone()),
        caption_chars: post.caption.chars().count() as u32,
        at,
    })
}

/// The lake fact of a comment's `event` (`created`, `deleted`).
pub fn comment_event(comment: &Comment, customer: &str, event: CommentEventKind, at: DateTime<Utc>) -> Event {
    Event::Comment(CommentRow {
        event_id: CommentRow::event_id_of(&comment.id, event),
        comment_id: comment.id.clone(),
        post_id: comment.post_id.clone(),
        customer_id: customer.into(),
        author: comment.author.clone(),
        event,
        chars: comment.text.chars().count() as u32,
        at,
    })
}

/// The webhook event name of a post's status, and the body sent.
pub fn webhook_body(post: &Post) -> (&'static str, String) {
    let event = match post.status {
        PostStatus::Published => "post.published",
        PostStatus::Failed => "post.failed",
        PostStatus::Requested => "post.requested",
    };
    let view = PostView::new(post.clone(), Vec::new(), Vec::new());
    (event, serde_json::to_string(&view).expect("serializable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_rules() {
        assert_eq!(check_comment("  hi  ").unwrap(), "hi");
        assert_eq!(check_comment(" \n\t ").unwrap_err().code, "empty_comment");
        assert!(check_comment(&"é".repeat(2000)).is_ok());
        assert_eq!(check_comment(&"é".repeat(2001)).unwrap_err().code, "comment_too_long");
        assert_eq!(check_caption(&"x".repeat(2201)).unwrap_err().code, "caption_too_long");
        assert!(check_caption("").is_ok());
        assert_eq!(check_author("a\u{7}b").unwrap_err().code, "invalid_author");
        assert_eq!(check_author("  ").unwrap_err().code, "invalid_author");
    }
}
