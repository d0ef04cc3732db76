-- An organization's daily usage over the 30 days ending on a day: requests,
-- errors, tokens, cost and the day's P95 latency across its keys and models.
--
-- Parameters (psql variables):
--   :'organization_id'  bigint
--   :'until_day'        date, the last day shown
--
-- Served by usage_daily_rollups_organization_id_day_idx.
--
-- Try it: psql "$ANALYTICS_URL" -v organization_id=42 -v until_day=2025-11-16 \
--           -f analytics/queries/organization_daily_usage.sql

SELECT day,
       sum(request_count) AS requests,
       sum(error_count) AS errors,
       sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens,
       sum(cost_micros) AS cost_micros,
       round(analytics.latency_quantile(analytics.array_cat_agg(latency_bins),
                                        analytics.array_cat_agg(latency_bin_counts), 0.95)) AS p95_latency_ms
FROM analytics.usage_daily_rollups
WHERE organization_id = :'organization_id'::bigint
  AND day > :'until_day'::date - 30
  AND day <= :'until_day'::date
GROUP BY day
ORDER BY day;
