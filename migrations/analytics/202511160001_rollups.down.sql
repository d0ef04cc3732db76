-- Undoes 202511160001_rollups.up.sql: drops the rollups, the engine's
-- bookkeeping and the analytics schema. The rollups are derived data: `dbops
-- rollup run` rebuilds them from usage_events after the up migration.

DROP TABLE analytics.rollup_dirty_buckets;
DROP TABLE analytics.rollup_runs;
DROP TABLE analytics.rollup_watermarks;
DROP AGGREGATE analytics.array_cat_agg(anycompatiblearray);
DROP FUNCTION analytics.latency_quantile(smallint[], bigint[], double precision);
DROP TABLE analytics.usage_daily_rollups;
DROP TABLE analytics.usage_hourly_rollups;
DROP SCHEMA analytics;
