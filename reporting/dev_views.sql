-- Development stand-in for sql/views.sql (used only while that file does not exist).
-- One view per lake table, one row per event_id. `${LAKE}` is the lake root directory.
CREATE OR REPLACE VIEW uploads AS
SELECT DISTINCT ON (event_id) * FROM read_parquet('${LAKE}/uploads/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW jobs AS
SELECT DISTINCT ON (event_id) * FROM read_parquet('${LAKE}/jobs/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW variants AS
SELECT DISTINCT ON (event_id) * FROM read_parquet('${LAKE}/variants/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW deletions AS
SELECT DISTINCT ON (event_id) * FROM read_parquet('${LAKE}/deletions/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW downloads AS
SELECT DISTINCT ON (event_id) * FROM read_parquet('${LAKE}/downloads/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW usage AS
SELECT DISTINCT ON (event_id) * FROM read_parquet('${LAKE}/usage/*/*.parquet', hive_partitioning = true, union_by_name = true);
