-- Daily usage rows of some (organization, UTC day) pairs on ClickHouse, from
-- the hourly rows: the `clickhouse` target's daily_rollup.sql
-- (crates/rollup-clickhouse, buckets.rs).
--
-- Placeholders (the engine substitutes numbers and dates it formats itself):
--   {version}        the run writing the rows
--   {hourly_filter}  which hourly rows: those of some (organization, day)
--                    pairs, `(organization_id, toDate(hour_at)) IN ((42,
--                    toDate('2025-11-16')), ...) AND organization_id IN (42,
--                    ...)` (the second half lets the sort key prune), or
--                    those of a month partition on a full rebuild,
--                    `toYYYYMM(hour_at) = 202511`
--
-- Runs after the run's hourly rows are on their shards. Reads one version
-- per hourly row (FINAL: the highest `version` of each key) and writes every
-- daily row of the pairs again with the run's version: rows are replaced,
-- never incremented. sumMap adds the hourly histograms bin by bin, so the
-- daily histogram is exactly the sum of the hourly ones.

INSERT INTO usage_daily_rollups
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
    FROM usage_hourly_rollups FINAL
    WHERE {hourly_filter}
    -- No positional GROUP BY: ClickHouse 18.16 does not accept it.
    GROUP BY day, organization_id, api_key_id, model_id
)
