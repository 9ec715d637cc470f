-- imagelake metadata, version 4: an API key's statistics scope. An analyst key reads its
-- own customer's statistics unless it was made for every customer (`keys add --role
-- analyst --all-customers`, or `all_customers = true` in [[keys]]). Keys from before this
-- version are scoped: re-add an analyst key with --all-customers where one must see all.
ALTER TABLE api_keys ADD COLUMN all_customers BIGINT NOT NULL DEFAULT 0;
