-- Daily usage rows of some (organization, UTC day) pairs on ClickHouse, from
-- the hourly rows: the `clickhouse` target's daily_rollup.sql
-- (crates/rollup-clickhouse, buckets.rs).
--
-- Placeholders (the engine substitutes numbers and dates it formats itself):
--   {version}        the run writing the rows
--   {hourly_filter}  which hourly rows: those of some (organization, day)
--                    pairs, `(organization_id, toDate(hour_at)) IN ((42,
--                    toDate('2025-11-16')), ...)`
--
-- A full rebuild derives whole months with daily_rollup_month.sql instead.
--
-- Runs on every server at once, each over its own shard: the hourly and the
-- daily tables are sharded by the same key (organization), so a day's hours
-- and its daily row live on the same server, and no row crosses the network.
-- Runs after the run's hourly rows are on their shards. Reads one version
-- per hourly row (argMax by `version`: a plain aggregation, which filters
-- first and runs on every core; for 1,000 pairs on the 10M-event fixture
-- FINAL took about 1.7 times as long, docs/benchmarks.md) and writes every daily row of the pairs again with the
-- run's version: rows are replaced, never incremented. sumMap adds the
-- hourly histograms bin by bin, so the daily histogram is exactly the sum of
-- the hourly ones.

INSERT INTO usage_daily_rollups_local
    (day, organization_id, api_key_id, model_id, request_count, error_count,
     input_tokens, output_tokens, cost_micros, latency_ms_sum, latency_ms_max,
     latency_bins, latency_bin_counts, version)
SELECT day, organization_id, api_key_id, model_id, request_count, error_count,
       input_tokens, output_tokens, cost_micros, latency_ms_sum, latency_ms_max,
       tupleElement(histogram, 1), tupleElement(histogram, 2), toUInt64({version})
FROM (
    SELECT day,
           organization_id,
           api_key_id,
           model_id,
           sum(tupleElement(newest, 1)) AS request_count,
           sum(tupleElement(newest, 2)) AS error_count,
           sum(tupleElement(newest, 3)) AS input_tokens,
           sum(tupleElement(newest, 4)) AS output_tokens,
           sum(tupleElement(newest, 5)) AS cost_micros,
           sum(tupleElement(newest, 6)) AS latency_ms_sum,
           max(tupleElement(newest, 7)) AS latency_ms_max,
           sumMap(tupleElement(newest, 8), tupleElement(newest, 9)) AS histogram
    FROM (
        SELECT toDate(hour_at) AS day,
               organization_id,
               api_key_id,
               model_id,
               argMax((request_count, error_count, input_tokens, output_tokens, cost_micros,
                       latency_ms_sum, latency_ms_max, latency_bins, latency_bin_counts),
                      version) AS newest
        FROM usage_hourly_rollups_local
        WHERE {hourly_filter}
        -- No positional GROUP BY: ClickHouse 18.16 does not accept it.
        GROUP BY organization_id, hour_at, api_key_id, model_id
    )
    GROUP BY day, organization_id, api_key_id, model_id
)
