-- Daily usage rows of some organizations over a range of UTC days, from the
-- hourly rows.
--
-- Parameters (psql variables; the engine substitutes typed literals):
--   :'day_from'          date, inclusive: the first UTC day
--   :'day_to'            date, exclusive: the day after the last
--   :'organization_ids'  bigint[]: the organizations; '{}' for all of them
--
-- Runs on the rollups database, inside the transaction that has just
-- rewritten hours of these organizations and days, after deleting their rows from
-- analytics.usage_daily_rollups. Counts and sums add up here; the hourly
-- latency histograms are concatenated (analytics.array_cat_agg) and the engine
-- merges equal bins by adding their counts before writing the rows with binary
-- `COPY`, so the stored daily histogram is exactly the sum of the hourly ones.
--
-- Try it: psql "$ANALYTICS_URL" -v day_from=2025-11-16 -v day_to=2025-11-17 \
--           -v organization_ids='{}' -f analytics/transforms/daily_rollup.sql

SELECT (hour_at AT TIME ZONE 'UTC')::date AS day,
       organization_id,
       api_key_id,
       model_id,
       sum(request_count)::bigint AS request_count,
       sum(error_count)::bigint AS error_count,
       sum(input_tokens)::bigint AS input_tokens,
       sum(output_tokens)::bigint AS output_tokens,
       sum(cost_micros)::bigint AS cost_micros,
       sum(latency_ms_sum)::bigint AS latency_ms_sum,
       max(latency_ms_max) AS latency_ms_max,
       analytics.array_cat_agg(latency_bins) AS latency_bins,
       analytics.array_cat_agg(latency_bin_counts) AS latency_bin_counts
FROM analytics.usage_hourly_rollups
WHERE hour_at >= (:'day_from'::date)::timestamp AT TIME ZONE 'UTC'
  AND hour_at < (:'day_to'::date)::timestamp AT TIME ZONE 'UTC'
  AND (cardinality(:'organization_ids'::bigint[]) = 0
       OR organization_id = ANY (:'organization_ids'::bigint[]))
GROUP BY 1, 2, 3, 4;
