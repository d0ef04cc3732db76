-- The argMax form of analytics/queries/clickhouse/key_error_ratio.sql, timed beside
-- it by `cargo xtask bench rollup-clickhouse` to choose between FINAL and
-- argMax (same answers).

SELECT api_key_id, requests, errors,
       intDiv(errors * 20000 + requests, requests * 2) / 10000 AS error_ratio
FROM (
    SELECT api_key_id,
           sum(row_requests) AS requests,
           sum(row_errors) AS errors
    FROM (
        SELECT api_key_id,
               argMax(request_count, version) AS row_requests,
               argMax(error_count, version) AS row_errors
        FROM usage_hourly_rollups
        WHERE hour_at >= toDateTime('{until_at}', 'UTC') - 86400
          AND hour_at < toDateTime('{until_at}', 'UTC')
        GROUP BY organization_id, hour_at, api_key_id, model_id
    )
    GROUP BY api_key_id
)
ORDER BY error_ratio DESC, requests DESC, api_key_id
