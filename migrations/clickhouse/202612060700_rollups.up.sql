-- Hourly and daily usage rollups on a ClickHouse cluster: the `clickhouse`
-- rollup target (crates/rollup-clickhouse, docs/analytics.md).
--
-- Run by `rollup_clickhouse::migrate` on every server of the cluster, one
-- statement at a time (ClickHouse has no transactions), in the database the
-- target names; `{cluster}` is replaced by the target's cluster name. Every
-- statement is idempotent (IF NOT EXISTS), so a file that failed half-way
-- runs again from the top.
--
-- Each server holds its shard of the rows in the *_local tables; the
-- Distributed tables over them route inserts by organization and read all
-- shards. All the rows of an organization live on one shard, so every
-- version of a row meets its successors there and ReplacingMergeTree keeps
-- the newest.
--
-- Rows are replaced, never incremented: a run writes every row of the
-- (organization, hour) buckets it recomputes with its own run id as
-- `version`, and readers see the row of the highest version per key (FINAL,
-- or argMax(..., version)); merges drop the older ones eventually.
--
-- The latency histogram is the Postgres target's (crates/rollup-engine,
-- histogram.rs): bin i holds latencies in (gamma^(i-1), gamma^i] ms,
-- gamma = 1.02/0.98, bin 0 holds 0 and 1 ms, only non-empty bins are listed
-- in ascending order, with exact counts. Histograms of several rows add up
-- with sumMap(latency_bins, latency_bin_counts), so a day's or a month's P95
-- read from the sum is within the same 2% of the exact P95.
--
-- hour_at is DateTime('UTC'): hours are UTC hours whatever the server's
-- time zone, and toDate(hour_at) is the UTC day, as in PostgreSQL.
--
-- Only types and engines that ClickHouse 18.16 and current releases both
-- accept: no LowCardinality, DateTime64 or SimpleAggregateFunction.

CREATE TABLE IF NOT EXISTS usage_hourly_rollups_local (
    hour_at DateTime('UTC'),
    organization_id Int64,
    api_key_id Int64,
    model_id Int64,
    request_count Int64,
    error_count Int64,
    input_tokens Int64,
    output_tokens Int64,
    cost_micros Int64,
    latency_ms_sum Int64,
    latency_ms_max Int32,
    latency_bins Array(Int16),
    latency_bin_counts Array(Int64),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(hour_at)
ORDER BY (organization_id, hour_at, api_key_id, model_id);

CREATE TABLE IF NOT EXISTS usage_daily_rollups_local (
    day Date,
    organization_id Int64,
    api_key_id Int64,
    model_id Int64,
    request_count Int64,
    error_count Int64,
    input_tokens Int64,
    output_tokens Int64,
    cost_micros Int64,
    latency_ms_sum Int64,
    latency_ms_max Int32,
    latency_bins Array(Int16),
    latency_bin_counts Array(Int64),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (organization_id, day, api_key_id, model_id);

CREATE TABLE IF NOT EXISTS usage_hourly_rollups AS usage_hourly_rollups_local
ENGINE = Distributed({cluster}, currentDatabase(), usage_hourly_rollups_local, intHash64(organization_id));

CREATE TABLE IF NOT EXISTS usage_daily_rollups AS usage_daily_rollups_local
ENGINE = Distributed({cluster}, currentDatabase(), usage_daily_rollups_local, intHash64(organization_id));
