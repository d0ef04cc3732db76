-- The ten models that served the most tokens over the 7 days ending on a day.
--
-- Parameters (psql variables):
--   :'until_day'  date, the last day counted
--
-- Served by an index-only scan of usage_daily_rollups_day_model_id_idx.
--
-- Try it: psql "$ANALYTICS_URL" -v until_day=2025-11-16 -f analytics/queries/top_models_by_tokens.sql

SELECT model_id,
       sum(input_tokens + output_tokens) AS tokens,
       sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens
FROM analytics.usage_daily_rollups
WHERE day > :'until_day'::date - 7
  AND day <= :'until_day'::date
GROUP BY model_id
ORDER BY tokens DESC, model_id
LIMIT 10;
