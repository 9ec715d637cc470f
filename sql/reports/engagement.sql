-- engagement: the most-commented posts of the range, most first (ties: post_id).
-- $1 from (TIMESTAMP, inclusive)  $2 to (TIMESTAMP, exclusive)  $3 customer (VARCHAR, NULL = all)
-- $4 limit (BIGINT): at most this many rows
--
-- comments: comments made on the post in the range (their `created` events), whether
-- or not deleted since. comments_deleted: comments of the post deleted in the range.
-- Only posts with a comment made in the range, published, and not deleted (as the lake
-- knows now: a deleted post's comments are gone with it) are listed. author: the post's
-- (NULL when it has none); published_at: when it was published (UTC, like every report's times).
WITH counts AS (
    SELECT post_id, sum(created)::BIGINT AS comments, sum(deleted)::BIGINT AS comments_deleted
    FROM post_comment_facts($1, $2)
    WHERE ts >= $1::TIMESTAMPTZ AND ts < $2::TIMESTAMPTZ
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY post_id
    HAVING sum(created) > 0
), state AS (
    -- The state of the counted posts only (post_state_facts is every post, all time).
    SELECT post_id, any_value(customer_id) AS customer_id, any_value(author) AS author,
           min(published_at) AS published_at, min(deleted_at) AS deleted_at
    FROM post_state_facts() SEMI JOIN counts USING (post_id)
    GROUP BY post_id
    HAVING $3::VARCHAR IS NULL OR any_value(customer_id) = $3::VARCHAR
)
SELECT
    s.post_id,
    s.customer_id,
    s.author,
    c.comments,
    c.comments_deleted,
    s.published_at::TIMESTAMP AS published_at
FROM counts c
JOIN state s USING (post_id)
WHERE s.published_at IS NOT NULL AND s.deleted_at IS NULL
ORDER BY c.comments DESC, s.post_id
LIMIT $4::BIGINT;
