-- The argMax form of analytics/queries/clickhouse/top_models_by_tokens.sql, timed beside
-- it by `cargo xtask bench rollup-clickhouse` to choose between FINAL and
-- argMax (same answers).

SELECT model_id,
       sum(row_input_tokens + row_output_tokens) AS tokens,
       sum(row_input_tokens) AS input_tokens,
       sum(row_output_tokens) AS output_tokens
FROM (
    SELECT model_id,
           argMax(input_tokens, version) AS row_input_tokens,
           argMax(output_tokens, version) AS row_output_tokens
    FROM usage_daily_rollups
    WHERE day > toDate('{until_day}') - 7
      AND day <= toDate('{until_day}')
    GROUP BY organization_id, day, api_key_id, model_id
)
GROUP BY model_id
ORDER BY tokens DESC, model_id
LIMIT 10
