-- The ten models that served the most tokens over the 7 days ending on a
-- day, on the `clickhouse` rollup target: the ClickHouse form of
-- analytics/queries/top_models_by_tokens.sql, same columns, same answers.
--
-- Placeholders (substituted by the engine):
--   {until_day}  date (YYYY-MM-DD), the last day counted
--
-- One version per row: FINAL. This query scans 7 days of every
-- organization, where FINAL's merge in key order beat argMax's hash
-- aggregation in every benchmark run (about 1.5 times faster,
-- docs/benchmarks.md). ClickHouse 18.16 refuses a sum aliased as its own
-- column (input_tokens) and reads a Distributed table FINAL only with every
-- key column selected, hence the two subqueries.

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
