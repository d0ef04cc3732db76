-- The FINAL form of analytics/queries/clickhouse/key_error_ratio.sql.
SELECT api_key_id, requests, errors,
       intDiv(errors * 20000 + requests, requests * 2) / 10000 AS error_ratio
FROM (
    SELECT api_key_id,
           sum(request_count) AS requests,
           sum(error_count) AS errors
    FROM (
        SELECT * FROM usage_hourly_rollups FINAL
        WHERE hour_at >= toDateTime('{until_at}', 'UTC') - 86400
          AND hour_at < toDateTime('{until_at}', 'UTC')
    )
    GROUP BY api_key_id
)
ORDER BY error_ratio DESC, requests DESC, api_key_id
