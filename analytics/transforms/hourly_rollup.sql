-- Hourly usage rows of some organizations over a range of UTC hours, from the
-- raw events.
--
-- Parameters (psql variables; the engine substitutes typed literals):
--   :'hour_from'         timestamptz, inclusive: start of the first hour
--   :'hour_to'           timestamptz, exclusive: end of the last hour
--   :'organization_ids'  bigint[]: the organizations; '{}' for all of them
--   :'excluded_events'   bigint[]: ids of events to leave out (quarantined); '{}' for none
--   :'sum_limit'         bigint: the largest sum a row may hold (the engine passes
--                        bigint's maximum / 24, so that a day of hours fits in bigint)
-- A full rebuild passes '-infinity', 'infinity' and '{}'. An incremental run
-- passes one hour and the organizations queued for it, which the index
-- usage_events (organization_id, occurred_at) serves.
--
-- Runs on the operational database. The engine streams the result with
-- `COPY (...) TO STDOUT (FORMAT binary)`, folds latencies_ms into the sparse
-- latency histogram (latency_bins, latency_bin_counts; see the analytics
-- migration), and writes the rows with binary `COPY` into
-- analytics.usage_hourly_rollups, after deleting that table's rows for the
-- same buckets in the same transaction: buckets are replaced, never incremented.
-- For the `local` target the rows go back into the same database, for
-- `warehouse` into the one at ANALYTICS_URL.
--
-- One row per (hour, organization, key, model). Events without an API key are
-- grouped under api_key_id 0. An error is any status other than 'ok'.
--
-- `poisoned` is true for a row that must not be written as it is: one of its
-- events has a value the rollups refuse (a non-positive id, a negative
-- measure), or a sum is above :'sum_limit' (its sums are then capped, so the
-- statement itself never overflows). The engine moves the events at fault to
-- analytics.quarantined_events (quarantine_events.sql) and reads the row again
-- without them (:'excluded_events'). docs/analytics.md, "Poisoned events".
--
-- Try it: psql "$DB_URL" -v hour_from='2025-11-16 00:00+00' -v hour_to='2025-11-16 01:00+00' \
--           -v organization_ids='{}' -v excluded_events='{}' -v sum_limit=384307168202282325 \
--           -f analytics/transforms/hourly_rollup.sql

SELECT date_trunc('hour', occurred_at, 'UTC') AS hour_at,
       organization_id,
       coalesce(api_key_id, 0) AS api_key_id,
       model_id,
       count(*) AS request_count,
       count(*) FILTER (WHERE status <> 'ok') AS error_count,
       sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens,
       least(sum(cost_micros), :'sum_limit'::bigint)::bigint AS cost_micros,
       sum(latency_ms) AS latency_ms_sum,
       max(latency_ms) AS latency_ms_max,
       array_agg(latency_ms) AS latencies_ms,
       coalesce(bool_or(organization_id <= 0 OR model_id <= 0 OR api_key_id <= 0
                        OR input_tokens < 0 OR output_tokens < 0 OR cost_micros < 0 OR latency_ms < 0), false)
           OR greatest(sum(input_tokens), sum(output_tokens), sum(cost_micros), sum(latency_ms))
              > :'sum_limit'::bigint AS poisoned
FROM public.usage_events
WHERE occurred_at >= :'hour_from'::timestamptz
  AND occurred_at < :'hour_to'::timestamptz
  AND (cardinality(:'organization_ids'::bigint[]) = 0
       OR organization_id = ANY (:'organization_ids'::bigint[]))
  AND (cardinality(:'excluded_events'::bigint[]) = 0
       OR id <> ALL (:'excluded_events'::bigint[]))
-- Organization first: the rows come out in the order of the table's primary
-- key (organization_id, hour_at, api_key_id, model_id), so writing them
-- appends to the index instead of splitting pages all over it.
GROUP BY 2, 1, 3, 4;
