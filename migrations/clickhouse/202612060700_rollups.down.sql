-- Drops the rollup tables of 202612060700_rollups.up.sql on this server:
-- the Distributed tables first, then the shards' tables they read.

DROP TABLE IF EXISTS usage_daily_rollups;
DROP TABLE IF EXISTS usage_hourly_rollups;
DROP TABLE IF EXISTS usage_daily_rollups_local;
DROP TABLE IF EXISTS usage_hourly_rollups_local;
