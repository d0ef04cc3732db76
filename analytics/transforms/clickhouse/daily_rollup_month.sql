-- Daily usage rows of a whole month on ClickHouse, from the hourly rows: the
-- daily half of a full rebuild of the `clickhouse` target
-- (crates/rollup-clickhouse, buckets.rs). daily_rollup.sql does the same for
-- some (organization, day) pairs.
--
-- Placeholders (the engine substitutes numbers it formats itself):
--   {version}  the run writing the rows
--   {month}    the month partition, YYYYMM
--
-- Runs on every server at once, each over its own shard, like
-- daily_rollup.sql. Reads one version per hourly row with FINAL: over a
-- whole partition, FINAL's merge streams the parts in sorting-key order and
-- needs no hash table, and took a quarter of argMax's time on the 10M-event
-- fixture (0.42 s against 1.6 s per month, docs/benchmarks.md); for a few
-- pairs scattered over a month, argMax wins, hence two files.

INSERT INTO usage_daily_rollups_local
    (day, organization_id, api_key_id, model_id, request_count, error_count,
     input_tokens, output_tokens, cost_micros, latency_ms_sum, latency_ms_max,
     latency_bins, latency_bin_counts, version)
SELECT day, organization_id, api_key_id, model_id, request_count, error_count,
       input_tokens, output_tokens, cost_micros, latency_ms_sum, latency_ms_max,
       tupleElement(histogram, 1), tupleElement(histogram, 2), toUInt64({version})
FROM (
    SELECT toDate(hour_at) AS day,
           organization_id,
           api_key_id,
           model_id,
           sum(request_count) AS request_count,
           sum(error_count) AS error_count,
           sum(input_tokens) AS input_tokens,
           sum(output_tokens) AS output_tokens,
           sum(cost_micros) AS cost_micros,
           sum(latency_ms_sum) AS latency_ms_sum,
           max(latency_ms_max) AS latency_ms_max,
           sumMap(latency_bins, latency_bin_counts) AS histogram
    FROM usage_hourly_rollups_local FINAL
    WHERE toYYYYMM(hour_at) = {month}
    -- No positional GROUP BY: ClickHouse 18.16 does not accept it.
    GROUP BY day, organization_id, api_key_id, model_id
)
