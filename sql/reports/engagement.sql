-- engagement: the most-commented posts of the range, most first (ties: post_id).
-- $1 from (TIMESTAMP, inclusive)  $2 to (TIMESTAMP, exclusive)  $3 customer (VARCHAR, NULL = all)
-- $4 limit (BIGINT): at most this many rows
--
-- comments: comments made on the post in the range (their `created` events), whether
-- or not deleted since. comments_deleted: comments of the post deleted in the range.
-- Only posts with a comment made in the range, published, and not deleted (as the lake
-- knows now: a deleted post's comments are gone with it) are listed. author: the post's
-- (NULL when it has none); published_at: when it was published (UTC, like every report's times).
--
-- Counting every post of a long range is a hash aggregation into millions of posts, so
-- the ranking is bounded first. A post's comments in any range are at most its comments
-- of all time: post_comment_totals (the aggregated days, in memory) plus the raw days'.
--   1. The range's comments of a few candidates (the 4 x limit posts with the most
--      comments of all time, and of the raw days) are counted, and their state read:
--      `bar` is the limit-th most comments of a listed candidate.
--   2. Every post that can reach `bar`: an aggregated total of at least `bar`, or raw
--      comments that bring its total to `bar`. No other post can rank among the first
--      `limit`, so counting these is exact. When the candidates list fewer than `limit`
--      posts, or more than 200 000 posts can reach the bar (a short range, few comments
--      per post), every post of the range is counted instead.
-- A range of a week or less skips the bound (long_range, sql/facts.sql): counting its
-- posts costs less than the bound's scans of every post of all time (post_comment_totals,
-- post_state_facts), which would make a short report grow with the lake.
-- Each post's state is all-time (post_state_facts: millions of rows), so it is looked up
-- for the most-commented posts only: the 4 x limit first, with every post tied with the
-- last of them. When at least `limit` of those are listed, no other post can rank above
-- them, and the ranking is exact; otherwise the state of every counted post is read.
WITH raw AS MATERIALIZED (
    SELECT post_id, count(*) AS comments FROM recent_comments
    WHERE long_range($1, $2) AND event = 'created' AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY post_id
), candidates AS MATERIALIZED (
    (SELECT post_id FROM post_comment_totals WHERE long_range($1, $2) AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
     ORDER BY created DESC LIMIT 4 * $4::BIGINT)
    UNION
    (SELECT post_id FROM raw ORDER BY comments DESC LIMIT 4 * $4::BIGINT)
), candidate_counts AS (
    SELECT post_id, sum(created) AS comments
    FROM post_comment_facts($1, $2) SEMI JOIN candidates USING (post_id)
    WHERE ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    GROUP BY post_id
    HAVING sum(created) > 0
), bar AS MATERIALIZED (
    SELECT (SELECT c.comments FROM candidate_counts c
            JOIN (SELECT post_id FROM post_state_facts() SEMI JOIN candidates USING (post_id)
                  WHERE long_range($1, $2)
                  GROUP BY post_id
                  HAVING min(published_at) IS NOT NULL AND min(deleted_at) IS NULL) USING (post_id)
            ORDER BY c.comments DESC LIMIT 1 OFFSET $4::BIGINT - 1) AS comments
), bounded AS MATERIALIZED (
    -- At most this many posts can reach the bar (the raw days' posts all counted).
    SELECT long_range($1, $2) AND (SELECT comments FROM bar) IS NOT NULL
       AND (SELECT count(*) FROM post_comment_totals WHERE long_range($1, $2) AND created >= (SELECT comments FROM bar))
           + (SELECT count(*) FROM raw)
           <= 200000 AS yes
), reach AS MATERIALIZED (
    SELECT post_id FROM post_comment_totals
    WHERE long_range($1, $2) AND (SELECT yes FROM bounded) AND created >= (SELECT comments FROM bar)
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
    UNION ALL
    SELECT post_id FROM (SELECT * FROM raw WHERE (SELECT yes FROM bounded)) r LEFT JOIN post_comment_totals t USING (post_id)
    WHERE r.comments + coalesce(t.created, 0) >= (SELECT comments FROM bar)
), counts AS MATERIALIZED (
    SELECT post_id, sum(created)::BIGINT AS comments, sum(deleted)::BIGINT AS comments_deleted
    FROM post_comment_facts($1, $2)
    WHERE ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP
      AND ($3::VARCHAR IS NULL OR customer_id = $3::VARCHAR)
      AND (NOT (SELECT yes FROM bounded) OR post_id IN (SELECT post_id FROM reach))
    GROUP BY post_id
    HAVING sum(created) > 0
), top AS (
    SELECT post_id, comments FROM counts
    WHERE comments >= (SELECT min(comments) FROM (SELECT comments FROM counts ORDER BY comments DESC LIMIT 4 * $4::BIGINT))
), listed_top AS (
    SELECT post_id FROM post_state_facts() SEMI JOIN top USING (post_id)
    GROUP BY post_id
    HAVING min(published_at) IS NOT NULL AND min(deleted_at) IS NULL
       AND ($3::VARCHAR IS NULL OR any_value(customer_id) = $3::VARCHAR)
), least AS (
    -- The state is read for the posts with at least this many comments: the top's fewest
    -- when the top lists `limit` posts, otherwise 1 (every counted post).
    SELECT CASE WHEN (SELECT count(*) FROM listed_top) >= $4::BIGINT THEN (SELECT min(comments) FROM top) ELSE 1 END AS comments
), looked_up AS (
    SELECT * FROM counts WHERE comments >= (SELECT comments FROM least)
), state AS (
    SELECT post_id, any_value(customer_id) AS customer_id, any_value(author) AS author,
           min(published_at) AS published_at, min(deleted_at) AS deleted_at
    FROM post_state_facts()
    SEMI JOIN looked_up USING (post_id)
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
FROM looked_up c
JOIN state s USING (post_id)
WHERE s.published_at IS NOT NULL AND s.deleted_at IS NULL
ORDER BY c.comments DESC, s.post_id
LIMIT $4::BIGINT;
