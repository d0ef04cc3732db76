-- An organization's daily usage over the 30 days ending on a day, on the
-- `clickhouse` rollup target: the ClickHouse form of
-- analytics/queries/organization_daily_usage.sql, with the same columns and
-- the same answers (crates/rollup-clickhouse, queries.rs, runs it and a test
-- compares the two).
--
-- Placeholders (the engine substitutes values it formats itself; ClickHouse
-- 18.16 has no query parameters):
--   {organization_id}  bigint
--   {until_day}        date (YYYY-MM-DD), the last day shown
--
-- One version per row: argMax(..., version) of each (day, key, model) of the
-- organization. The read is selective (one organization, which leads the sort
-- key), where argMax's plain aggregation beat FINAL's merge in every benchmark
-- run (about 2.2 times faster, docs/benchmarks.md); the two scans of every
-- organization (top_models_by_tokens.sql, key_error_ratio.sql) use FINAL. The P95 is read from the day's summed histogram with
-- the rule of analytics.latency_quantile: the first bin whose running count
-- reaches 95% of the total, read as 2 * gamma^bin / (gamma + 1) ms.

SELECT day, requests, errors, input_tokens, output_tokens, cost_micros,
       round(if(p95_bin = 0, 1., 2 * pow(1.02 / 0.98, p95_bin) / (1.02 / 0.98 + 1))) AS p95_latency_ms
FROM (
    SELECT day, requests, errors, input_tokens, output_tokens, cost_micros,
           tupleElement(histogram, 1)[arrayFirstIndex(
               running -> running >= 0.95 * arraySum(tupleElement(histogram, 2)),
               arrayCumSum(tupleElement(histogram, 2)))] AS p95_bin
    FROM (
        SELECT day,
               sum(row_requests) AS requests,
               sum(row_errors) AS errors,
               sum(row_input_tokens) AS input_tokens,
               sum(row_output_tokens) AS output_tokens,
               sum(row_cost_micros) AS cost_micros,
               sumMap(row_bins, row_bin_counts) AS histogram
        FROM (
            SELECT day,
                   argMax(request_count, version) AS row_requests,
                   argMax(error_count, version) AS row_errors,
                   argMax(input_tokens, version) AS row_input_tokens,
                   argMax(output_tokens, version) AS row_output_tokens,
                   argMax(cost_micros, version) AS row_cost_micros,
                   argMax(latency_bins, version) AS row_bins,
                   argMax(latency_bin_counts, version) AS row_bin_counts
            FROM usage_daily_rollups
            WHERE organization_id = {organization_id}
              AND day > toDate('{until_day}') - 30
              AND day <= toDate('{until_day}')
            GROUP BY day, api_key_id, model_id
        )
        GROUP BY day
    )
)
ORDER BY day
