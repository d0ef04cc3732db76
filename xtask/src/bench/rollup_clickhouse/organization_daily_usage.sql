-- The FINAL form of analytics/queries/clickhouse/organization_daily_usage.sql,
-- timed beside it by `cargo xtask bench rollup-clickhouse` to choose between
-- FINAL and argMax (same answers).
SELECT day, requests, errors, input_tokens, output_tokens, cost_micros,
       round(if(p95_bin = 0, 1., 2 * pow(1.02 / 0.98, p95_bin) / (1.02 / 0.98 + 1))) AS p95_latency_ms
FROM (
    SELECT day, requests, errors, input_tokens, output_tokens, cost_micros,
           tupleElement(histogram, 1)[arrayFirstIndex(
               running -> running >= 0.95 * arraySum(tupleElement(histogram, 2)),
               arrayCumSum(tupleElement(histogram, 2)))] AS p95_bin
    FROM (
        SELECT day,
               sum(request_count) AS requests,
               sum(error_count) AS errors,
               sum(input_tokens) AS input_tokens,
               sum(output_tokens) AS output_tokens,
               sum(cost_micros) AS cost_micros,
               sumMap(latency_bins, latency_bin_counts) AS histogram
        FROM (
            SELECT * FROM usage_daily_rollups FINAL
            WHERE organization_id = {organization_id}
              AND day > toDate('{until_day}') - 30
              AND day <= toDate('{until_day}')
        )
        GROUP BY day
    )
)
ORDER BY day
