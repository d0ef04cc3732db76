-- Error ratio by API key over the 24 hours before a time, worst first
-- (api_key_id 0 stands for requests without a key), on the `clickhouse`
-- rollup target: the ClickHouse form of analytics/queries/key_error_ratio.sql,
-- same columns, same answers.
--
-- Placeholders (substituted by the engine):
--   {until_at}  a UTC time (YYYY-MM-DD hh:mm:ss), the end of the 24 hours
--               (exclusive)
--
-- One version per row: FINAL, as in top_models_by_tokens.sql (a scan of 24
-- hours of every organization; here FINAL and argMax tied, each faster in
-- two of four benchmark runs, docs/benchmarks.md). The ratio is rounded to
-- 4 places half away from zero in integers, as PostgreSQL's
-- round(numeric, 4) does, so both targets order the keys the same.

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
