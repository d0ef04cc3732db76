-- The (organization, hour) buckets touched by the usage events ingested in a
-- window: what an incremental rollup run must recompute.
--
-- Parameters (psql variables; the engine substitutes typed literals):
--   :'ingested_from'  timestamptz, inclusive: the watermark of the last run
--   :'ingested_to'    timestamptz, exclusive: the new watermark
--
-- Runs on the operational database. Its cost follows the number of events in
-- the window, not the size of the table, when usage_events has a btree index
-- on ingested_at; without one it reads every partition (docs/analytics.md).
--
-- Try it: psql "$DB_URL" -v ingested_from='2025-11-16 00:00+00' \
--           -v ingested_to='2025-11-16 01:00+00' -f analytics/transforms/dirty_buckets.sql

SELECT DISTINCT date_trunc('hour', occurred_at, 'UTC') AS hour_at, organization_id
FROM public.usage_events
WHERE ingested_at >= :'ingested_from'::timestamptz
  AND ingested_at < :'ingested_to'::timestamptz
ORDER BY hour_at, organization_id;
