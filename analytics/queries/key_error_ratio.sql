-- Error ratio by API key over the 24 hours before a time, worst first
-- (api_key_id 0 stands for requests without a key).
--
-- Parameters (psql variables):
--   :'until_at'  timestamptz, the end of the 24 hours (exclusive)
--
-- Served by an index-only scan of usage_hourly_rollups_hour_at_api_key_id_idx.
--
-- Try it: psql "$ANALYTICS_URL" -v until_at='2025-11-16 12:00+00' -f analytics/queries/key_error_ratio.sql

SELECT api_key_id,
       sum(request_count) AS requests,
       sum(error_count) AS errors,
       round(sum(error_count)::numeric / sum(request_count), 4) AS error_ratio
FROM analytics.usage_hourly_rollups
WHERE hour_at >= :'until_at'::timestamptz - interval '24 hours'
  AND hour_at < :'until_at'::timestamptz
GROUP BY api_key_id
ORDER BY error_ratio DESC, requests DESC, api_key_id;
