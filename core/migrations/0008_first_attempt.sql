-- imagelake metadata, version 8: the time of an image's first processing attempt. The
-- processor stamps the variants it writes (their `created_at`, in the database and the
-- lake) with it, so that a job redone later (a redelivery after a crash, perhaps after
-- midnight) writes the same facts into the same day's partition, where the views and the
-- daily aggregates count them once.
ALTER TABLE images ADD COLUMN first_attempt_at BIGINT;
