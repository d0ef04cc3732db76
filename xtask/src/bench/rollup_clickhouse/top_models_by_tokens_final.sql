-- The FINAL form of analytics/queries/clickhouse/top_models_by_tokens.sql.
-- ClickHouse 18.16 refuses a sum aliased as its own column (input_tokens)
-- and reads a Distributed table FINAL only with every key column selected,
-- hence the two subqueries.
SELECT model_id,
       sum(row_input_tokens + row_output_tokens) AS tokens,
       sum(row_input_tokens) AS input_tokens,
       sum(row_output_tokens) AS output_tokens
FROM (
    SELECT model_id, input_tokens AS row_input_tokens, output_tokens AS row_output_tokens
    FROM (
        SELECT * FROM usage_daily_rollups FINAL
        WHERE day > toDate('{until_day}') - 7
          AND day <= toDate('{until_day}')
    )
)
GROUP BY model_id
ORDER BY tokens DESC, model_id
LIMIT 10
