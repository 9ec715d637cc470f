-- imagelake metadata, version 2: the job outbox. A job row is committed with its image;
-- it is sent to the queue after the commit and removed once sent. `next_attempt_at` is
-- when a sweeper may (re)send it: a crash or a queue outage between the commit and the
-- send leaves the row, and the sweeper sends it later.
CREATE TABLE outbox (
    job_id          TEXT PRIMARY KEY,
    image_id        TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox (next_attempt_at);
