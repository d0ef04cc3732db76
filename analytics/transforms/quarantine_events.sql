-- The events of one poisoned hourly row that must be quarantined, each with
-- the reason: what the engine moves to analytics.quarantined_events before
-- reading the row again without them (docs/analytics.md, "Poisoned events").
--
-- Parameters (psql variables; the engine substitutes typed literals):
--   :'hour_at'          timestamptz: start of the row's UTC hour
--   :'organization_id'  bigint: the row's organization
--   :'api_key_id'       bigint: the row's key, 0 for events without one
--   :'model_id'         bigint: the row's model
--   :'sum_limit'        bigint: the largest sum a row may hold (as in hourly_rollup.sql)
--
-- Runs on the operational database. First, every event with a value the
-- rollups refuse. Then, among the others, the fewest largest values that
-- take a sum past the limit: for each measure the events are taken in
-- ascending order (then by id) and an event is quarantined once the running
-- sum passes the limit, so the rest of the row still fits and is rolled up.
--
-- Try it: psql "$DB_URL" -v hour_at='2025-11-16 00:00+00' -v organization_id=1 -v api_key_id=0 \
--           -v model_id=1 -v sum_limit=384307168202282325 -f analytics/transforms/quarantine_events.sql

WITH events AS (
    SELECT id, occurred_at, organization_id, api_key_id, model_id,
           input_tokens, output_tokens, cost_micros, latency_ms,
           CASE
               WHEN organization_id <= 0 THEN format('organization_id %s is not positive', organization_id)
               WHEN model_id <= 0 THEN format('model_id %s is not positive', model_id)
               WHEN api_key_id <= 0 THEN format('api_key_id %s is not positive (the rollups count events without a key under 0)', api_key_id)
               WHEN input_tokens < 0 THEN format('input_tokens %s is negative', input_tokens)
               WHEN output_tokens < 0 THEN format('output_tokens %s is negative', output_tokens)
               WHEN cost_micros < 0 THEN format('cost_micros %s is negative', cost_micros)
               WHEN latency_ms < 0 THEN format('latency_ms %s is negative', latency_ms)
           END AS problem
    FROM public.usage_events
    WHERE occurred_at >= :'hour_at'::timestamptz
      AND occurred_at < :'hour_at'::timestamptz + interval '1 hour'
      AND organization_id = :'organization_id'::bigint
      AND coalesce(api_key_id, 0) = :'api_key_id'::bigint
      AND model_id = :'model_id'::bigint
),
running AS (
    SELECT *,
           sum(input_tokens) OVER (ORDER BY input_tokens, id) AS input_tokens_sum,
           sum(output_tokens) OVER (ORDER BY output_tokens, id) AS output_tokens_sum,
           sum(cost_micros) OVER (ORDER BY cost_micros, id) AS cost_micros_sum,
           sum(latency_ms) OVER (ORDER BY latency_ms, id) AS latency_ms_sum
    FROM events
    WHERE problem IS NULL
)
SELECT id, occurred_at, organization_id, api_key_id, model_id, problem AS reason
FROM events
WHERE problem IS NOT NULL
UNION ALL
SELECT id, occurred_at, organization_id, api_key_id, model_id,
       format('%s %s takes the sum of its hourly row past %s (bigint''s maximum / 24, so that a day fits in bigint)',
              measure, value, :'sum_limit'::bigint) AS reason
FROM running,
     LATERAL (SELECT * FROM (VALUES
         (1, 'input_tokens', input_tokens::numeric, input_tokens_sum::numeric),
         (2, 'output_tokens', output_tokens::numeric, output_tokens_sum::numeric),
         (3, 'cost_micros', cost_micros::numeric, cost_micros_sum::numeric),
         (4, 'latency_ms', latency_ms::numeric, latency_ms_sum::numeric)
     ) AS m(place, measure, value, total)
     WHERE total > :'sum_limit'::bigint
     ORDER BY place
     LIMIT 1) AS over
ORDER BY id;
