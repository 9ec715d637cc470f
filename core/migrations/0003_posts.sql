-- imagelake metadata, version 3: posts and comments.

-- One row per post. `status` is requested | published | failed; it moves in the same
-- transaction that finishes the post's image. `comment_count` moves with the comments.
CREATE TABLE posts (
    id            TEXT PRIMARY KEY,
    customer      TEXT NOT NULL,
    image_id      TEXT NOT NULL,
    caption       TEXT NOT NULL,
    author        TEXT,
    status        TEXT NOT NULL,
    error_code    TEXT,
    error_message TEXT,
    callback_url  TEXT,
    created_at    BIGINT NOT NULL,
    published_at  BIGINT,
    comment_count BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX posts_by_image ON posts (image_id);
-- The two listings of published posts: newest first, and most commented first.
CREATE INDEX posts_newest ON posts (customer, id) WHERE status = 'published';
CREATE INDEX posts_by_comments ON posts (customer, comment_count, id) WHERE status = 'published';

-- One row per comment; ids are UUIDv7, so (post_id, id) is the newest-first listing.
CREATE TABLE comments (
    id         TEXT PRIMARY KEY,
    post_id    TEXT NOT NULL,
    customer   TEXT NOT NULL,
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX comments_by_post ON comments (post_id, id);

-- Changes of posts and comments not yet in the lake (and webhooks not yet delivered),
-- written in the transaction of the change. `id` is the lake row's event_id. The
-- processor's relay claims due rows (moving `next_attempt_at` forward), writes their
-- `lake` rows, delivers `webhook` bodies to `callback_url`, and deletes them.
CREATE TABLE post_events (
    id              TEXT PRIMARY KEY,
    lake            TEXT NOT NULL,
    lake_written    BIGINT NOT NULL DEFAULT 0,
    callback_url    TEXT,
    webhook_event   TEXT,
    webhook         TEXT,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX post_events_due ON post_events (next_attempt_at);
