-- The ten models that served the most tokens over the 7 days ending on a
-- day, on the `clickhouse` rollup target: the ClickHouse form of
-- analytics/queries/top_models_by_tokens.sql, same columns, same answers.
--
-- Placeholders (substituted by the engine):
--   {until_day}  date (YYYY-MM-DD), the last day counted
--
-- One version per row: argMax(..., version) per daily key.

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
