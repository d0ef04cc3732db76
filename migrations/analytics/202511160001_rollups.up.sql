-- Hourly and daily usage rollups, and the bookkeeping of the engine that keeps
-- them (crates/rollup-engine, `dbops rollup run`). See docs/analytics.md.
--
-- This target may live in the operational database (rollup target `local`) or
-- in a separate warehouse database (target `warehouse`), so nothing here
-- refers to an operational table: ids are plain references, as in
-- usage_events.
--
-- Rollup rows are replaced, never incremented: the engine deletes the rows of
-- the (organization, hour) buckets it recomputes and writes them again from
-- the raw events, and derives each (organization, day) from its hourly rows.
--
-- Keys: an event without an API key (api_key_id IS NULL) is rolled up under
-- api_key_id = 0. Identity values start at 1, so 0 never names a real key,
-- and a NOT NULL key column can be part of the primary key (and of a
-- ClickHouse ORDER BY, which does not accept NULLs either).
--
-- Latency percentiles: each row keeps a sparse logarithmic histogram of its
-- requests' latencies (latency_bins, latency_bin_counts). Bin i holds the
-- latencies v with gamma^(i-1) < v <= gamma^i, gamma = 1.02 / 0.98, and bin 0
-- holds v = 0, 1 ms. Counts add up exactly, so a day's histogram is the sum
-- of its hours' and any percentile over any set of rows is read from the sum
-- of their histograms; reading bin i as 2 * gamma^i / (gamma + 1) is within 2%
-- of every latency in it (the DDSketch bound). analytics.latency_quantile()
-- does that.

CREATE SCHEMA analytics;
COMMENT ON SCHEMA analytics IS 'Usage rollups (hourly, daily) and the bookkeeping of the rollup engine; written only by `dbops rollup run`.';

-- Hourly rollups ------------------------------------------------------------

CREATE TABLE analytics.usage_hourly_rollups (
    hour_at timestamptz NOT NULL,
    organization_id bigint NOT NULL,
    api_key_id bigint NOT NULL,
    model_id bigint NOT NULL,
    request_count bigint NOT NULL,
    error_count bigint NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cost_micros bigint NOT NULL,
    latency_ms_sum bigint NOT NULL,
    latency_ms_max integer NOT NULL,
    latency_bins smallint[] NOT NULL,
    latency_bin_counts bigint[] NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    -- Organization first: the engine rewrites (organization, hour) buckets and
    -- derives (organization, day) ones, and an organization is the natural
    -- distribution key of a sharded deployment (Citus).
    CONSTRAINT usage_hourly_rollups_pkey PRIMARY KEY (organization_id, hour_at, api_key_id, model_id),
    CONSTRAINT usage_hourly_rollups_hour_at_check CHECK (hour_at = date_trunc('hour', hour_at, 'UTC')),
    CONSTRAINT usage_hourly_rollups_api_key_id_check CHECK (api_key_id >= 0),
    CONSTRAINT usage_hourly_rollups_request_count_check CHECK (request_count > 0),
    CONSTRAINT usage_hourly_rollups_error_count_request_count_check CHECK (error_count BETWEEN 0 AND request_count),
    CONSTRAINT usage_hourly_rollups_input_tokens_check CHECK (input_tokens >= 0),
    CONSTRAINT usage_hourly_rollups_output_tokens_check CHECK (output_tokens >= 0),
    CONSTRAINT usage_hourly_rollups_cost_micros_check CHECK (cost_micros >= 0),
    CONSTRAINT usage_hourly_rollups_latency_ms_sum_check CHECK (latency_ms_sum >= 0),
    CONSTRAINT usage_hourly_rollups_latency_ms_max_check CHECK (latency_ms_max >= 0),
    CONSTRAINT usage_hourly_rollups_latency_bins_latency_bin_counts_check
        CHECK (cardinality(latency_bins) = cardinality(latency_bin_counts))
);

-- Error ratio by key over the last hours: an index-only range scan on hour_at.
CREATE INDEX usage_hourly_rollups_hour_at_api_key_id_idx
    ON analytics.usage_hourly_rollups (hour_at, api_key_id) INCLUDE (request_count, error_count);

COMMENT ON TABLE analytics.usage_hourly_rollups IS 'Usage per UTC hour, organization, API key and model, recomputed from usage_events by the rollup engine whenever events of the organization and hour are ingested. Rows are replaced, never incremented.';
COMMENT ON COLUMN analytics.usage_hourly_rollups.hour_at IS 'Start of the UTC hour the events occurred in (usage_events.occurred_at truncated to the hour).';
COMMENT ON COLUMN analytics.usage_hourly_rollups.organization_id IS 'The organization billed (organizations.id in the operational database; not enforced).';
COMMENT ON COLUMN analytics.usage_hourly_rollups.api_key_id IS 'The API key used (api_keys.id), or 0 for events without a key.';
COMMENT ON COLUMN analytics.usage_hourly_rollups.model_id IS 'The model that served the requests (models.id).';
COMMENT ON COLUMN analytics.usage_hourly_rollups.request_count IS 'Number of events (requests), at least 1.';
COMMENT ON COLUMN analytics.usage_hourly_rollups.error_count IS 'Number of events whose status is not ok.';
COMMENT ON COLUMN analytics.usage_hourly_rollups.input_tokens IS 'Sum of the events'' input_tokens.';
COMMENT ON COLUMN analytics.usage_hourly_rollups.output_tokens IS 'Sum of the events'' output_tokens.';
COMMENT ON COLUMN analytics.usage_hourly_rollups.cost_micros IS 'Sum of the events'' cost, in millionths of a US dollar.';
COMMENT ON COLUMN analytics.usage_hourly_rollups.latency_ms_sum IS 'Sum of the events'' latency_ms; divided by request_count, the mean latency.';
COMMENT ON COLUMN analytics.usage_hourly_rollups.latency_ms_max IS 'Largest latency_ms of the events.';
COMMENT ON COLUMN analytics.usage_hourly_rollups.latency_bins IS 'Latency histogram, bin numbers in ascending order: bin i holds latencies in (gamma^(i-1), gamma^i] ms, gamma = 1.02/0.98; bin 0 holds 0 and 1 ms. Only non-empty bins are listed.';
COMMENT ON COLUMN analytics.usage_hourly_rollups.latency_bin_counts IS 'Number of events in the bin at the same position of latency_bins; the counts add up to request_count.';
COMMENT ON COLUMN analytics.usage_hourly_rollups.computed_at IS 'When the engine last recomputed the row.';

-- Daily rollups -------------------------------------------------------------

CREATE TABLE analytics.usage_daily_rollups (
    day date NOT NULL,
    organization_id bigint NOT NULL,
    api_key_id bigint NOT NULL,
    model_id bigint NOT NULL,
    request_count bigint NOT NULL,
    error_count bigint NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cost_micros bigint NOT NULL,
    latency_ms_sum bigint NOT NULL,
    latency_ms_max integer NOT NULL,
    latency_bins smallint[] NOT NULL,
    latency_bin_counts bigint[] NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    -- Also serves an organization's daily usage over a date range.
    CONSTRAINT usage_daily_rollups_pkey PRIMARY KEY (organization_id, day, api_key_id, model_id),
    CONSTRAINT usage_daily_rollups_api_key_id_check CHECK (api_key_id >= 0),
    CONSTRAINT usage_daily_rollups_request_count_check CHECK (request_count > 0),
    CONSTRAINT usage_daily_rollups_error_count_request_count_check CHECK (error_count BETWEEN 0 AND request_count),
    CONSTRAINT usage_daily_rollups_input_tokens_check CHECK (input_tokens >= 0),
    CONSTRAINT usage_daily_rollups_output_tokens_check CHECK (output_tokens >= 0),
    CONSTRAINT usage_daily_rollups_cost_micros_check CHECK (cost_micros >= 0),
    CONSTRAINT usage_daily_rollups_latency_ms_sum_check CHECK (latency_ms_sum >= 0),
    CONSTRAINT usage_daily_rollups_latency_ms_max_check CHECK (latency_ms_max >= 0),
    CONSTRAINT usage_daily_rollups_latency_bins_latency_bin_counts_check
        CHECK (cardinality(latency_bins) = cardinality(latency_bin_counts))
);

-- Top models by tokens over the last days: an index-only range scan on day.
CREATE INDEX usage_daily_rollups_day_model_id_idx
    ON analytics.usage_daily_rollups (day, model_id) INCLUDE (input_tokens, output_tokens);

COMMENT ON TABLE analytics.usage_daily_rollups IS 'Usage per UTC day, organization, API key and model: the sum of the day''s rows in usage_hourly_rollups, recomputed whenever one of them changes.';
COMMENT ON COLUMN analytics.usage_daily_rollups.day IS 'The UTC day the events occurred on.';
COMMENT ON COLUMN analytics.usage_daily_rollups.organization_id IS 'The organization billed (organizations.id in the operational database; not enforced).';
COMMENT ON COLUMN analytics.usage_daily_rollups.api_key_id IS 'The API key used (api_keys.id), or 0 for events without a key.';
COMMENT ON COLUMN analytics.usage_daily_rollups.model_id IS 'The model that served the requests (models.id).';
COMMENT ON COLUMN analytics.usage_daily_rollups.request_count IS 'Number of events (requests), at least 1.';
COMMENT ON COLUMN analytics.usage_daily_rollups.error_count IS 'Number of events whose status is not ok.';
COMMENT ON COLUMN analytics.usage_daily_rollups.input_tokens IS 'Sum of the events'' input_tokens.';
COMMENT ON COLUMN analytics.usage_daily_rollups.output_tokens IS 'Sum of the events'' output_tokens.';
COMMENT ON COLUMN analytics.usage_daily_rollups.cost_micros IS 'Sum of the events'' cost, in millionths of a US dollar.';
COMMENT ON COLUMN analytics.usage_daily_rollups.latency_ms_sum IS 'Sum of the events'' latency_ms.';
COMMENT ON COLUMN analytics.usage_daily_rollups.latency_ms_max IS 'Largest latency_ms of the events.';
COMMENT ON COLUMN analytics.usage_daily_rollups.latency_bins IS 'Latency histogram bin numbers, ascending, as in usage_hourly_rollups; the day''s histogram is the bin-wise sum of its hours''.';
COMMENT ON COLUMN analytics.usage_daily_rollups.latency_bin_counts IS 'Number of events in the bin at the same position of latency_bins; the counts add up to request_count.';
COMMENT ON COLUMN analytics.usage_daily_rollups.computed_at IS 'When the engine last recomputed the row.';

-- Reading percentiles -------------------------------------------------------

CREATE FUNCTION analytics.latency_quantile(bins smallint[], bin_counts bigint[], q double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN bin = 0 THEN 1.0::double precision
                ELSE 2 * power(1.02::double precision / 0.98, bin) / (1.02::double precision / 0.98 + 1) END
    FROM (
        SELECT bin, sum(n) OVER (ORDER BY bin) AS running, sum(n) OVER () AS total
        FROM unnest(bins, bin_counts) AS h(bin, n)
    ) AS cumulative
    WHERE running >= q * total
    ORDER BY bin
    LIMIT 1
$$;
COMMENT ON FUNCTION analytics.latency_quantile(smallint[], bigint[], double precision) IS 'The q-quantile (0 < q <= 1) in milliseconds of a latency histogram, within 2% of the exact value. The histogram may list a bin more than once (concatenated histograms), so any set of rows can be answered with array_agg over unnest of their bins and counts.';

-- Concatenates arrays across rows, like ClickHouse's groupArrayArray: the
-- daily transform gathers a day's hourly histograms with it, and the engine
-- merges equal bins. array_cat is built in, so this costs no procedural code.
CREATE AGGREGATE analytics.array_cat_agg(anycompatiblearray) (
    SFUNC = array_cat,
    STYPE = anycompatiblearray
);
COMMENT ON AGGREGATE analytics.array_cat_agg(anycompatiblearray) IS 'Concatenation of the input arrays (one-dimensional) in input order; used by analytics/transforms/daily_rollup.sql to gather hourly latency histograms.';

-- Engine bookkeeping --------------------------------------------------------

CREATE TABLE analytics.rollup_watermarks (
    id bigint GENERATED ALWAYS AS IDENTITY,
    source_table text NOT NULL,
    watermark_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rollup_watermarks_pkey PRIMARY KEY (id),
    CONSTRAINT rollup_watermarks_source_table_key UNIQUE (source_table),
    CONSTRAINT rollup_watermarks_source_table_check CHECK (char_length(source_table) BETWEEN 1 AND 200)
);
COMMENT ON TABLE analytics.rollup_watermarks IS 'How far the rollup engine has read each source table by ingestion time. Advances in the same transaction that queues the (organization, hour) buckets touched by the events it passes.';
COMMENT ON COLUMN analytics.rollup_watermarks.id IS 'Surrogate key.';
COMMENT ON COLUMN analytics.rollup_watermarks.source_table IS 'The table whose events are rolled up, schema-qualified (public.usage_events).';
COMMENT ON COLUMN analytics.rollup_watermarks.watermark_at IS 'Every event with ingested_at before this time has its bucket queued or rolled up. Never later than the start of the oldest transaction open on the source when it was set, so events still being inserted are not passed over.';
COMMENT ON COLUMN analytics.rollup_watermarks.updated_at IS 'When the watermark last moved.';

CREATE TABLE analytics.rollup_runs (
    id bigint GENERATED ALWAYS AS IDENTITY,
    target text NOT NULL,
    status text NOT NULL DEFAULT 'running',
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    duration_ms bigint,
    watermark_from_at timestamptz,
    watermark_to_at timestamptz,
    buckets_queued integer NOT NULL DEFAULT 0,
    buckets_covered integer NOT NULL DEFAULT 0,
    hours_covered integer NOT NULL DEFAULT 0,
    days_covered integer NOT NULL DEFAULT 0,
    hourly_rows_written bigint NOT NULL DEFAULT 0,
    daily_rows_written bigint NOT NULL DEFAULT 0,
    error_message text,
    CONSTRAINT rollup_runs_pkey PRIMARY KEY (id),
    CONSTRAINT rollup_runs_target_check CHECK (char_length(target) BETWEEN 1 AND 100),
    CONSTRAINT rollup_runs_status_check CHECK (status IN ('running', 'succeeded', 'failed')),
    CONSTRAINT rollup_runs_finished_at_started_at_check CHECK (finished_at >= started_at),
    CONSTRAINT rollup_runs_duration_ms_check CHECK (duration_ms >= 0),
    -- Column parts shortened to stay within 63 bytes (docs/conventions.md).
    CONSTRAINT rollup_runs_buckets_hours_days_check
        CHECK (buckets_queued >= 0 AND buckets_covered >= 0 AND hours_covered >= 0 AND days_covered >= 0),
    CONSTRAINT rollup_runs_hourly_rows_written_daily_rows_written_check
        CHECK (hourly_rows_written >= 0 AND daily_rows_written >= 0),
    CONSTRAINT rollup_runs_error_message_check CHECK (char_length(error_message) <= 4000)
);
CREATE INDEX rollup_runs_started_at_idx ON analytics.rollup_runs (started_at);
COMMENT ON TABLE analytics.rollup_runs IS 'One row per `dbops rollup run`: what it covered and how long it took. `dbops rollup status` flags runs slower than 5 minutes per hour of data covered.';
COMMENT ON COLUMN analytics.rollup_runs.id IS 'Surrogate key.';
COMMENT ON COLUMN analytics.rollup_runs.target IS 'The rollup target of the run (local or warehouse, from analytics/transforms/config.toml).';
COMMENT ON COLUMN analytics.rollup_runs.status IS 'running (or crashed: a run that stays running after its process ended), succeeded or failed.';
COMMENT ON COLUMN analytics.rollup_runs.started_at IS 'When the run started.';
COMMENT ON COLUMN analytics.rollup_runs.finished_at IS 'When the run ended, successfully or not; NULL while running.';
COMMENT ON COLUMN analytics.rollup_runs.duration_ms IS 'Wall time of the run in milliseconds; NULL while running.';
COMMENT ON COLUMN analytics.rollup_runs.watermark_from_at IS 'The watermark when the run started; NULL on the first run.';
COMMENT ON COLUMN analytics.rollup_runs.watermark_to_at IS 'The watermark the run advanced to.';
COMMENT ON COLUMN analytics.rollup_runs.buckets_queued IS '(organization, hour) buckets the run found touched by newly ingested events (or was asked to recompute) and queued.';
COMMENT ON COLUMN analytics.rollup_runs.buckets_covered IS '(organization, hour) buckets the run recomputed.';
COMMENT ON COLUMN analytics.rollup_runs.hours_covered IS 'Distinct hours of data the run recomputed (for any organization): the unit of the duration bar (5 minutes per hour).';
COMMENT ON COLUMN analytics.rollup_runs.days_covered IS 'Days whose daily rows the run recomputed.';
COMMENT ON COLUMN analytics.rollup_runs.hourly_rows_written IS 'Rows written to usage_hourly_rollups.';
COMMENT ON COLUMN analytics.rollup_runs.daily_rows_written IS 'Rows written to usage_daily_rollups.';
COMMENT ON COLUMN analytics.rollup_runs.error_message IS 'Why a failed run failed (the error chain, without connection strings); NULL otherwise.';

CREATE TABLE analytics.rollup_dirty_buckets (
    id bigint GENERATED ALWAYS AS IDENTITY,
    organization_id bigint NOT NULL,
    hour_at timestamptz NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT now(),
    rollup_run_id bigint,
    CONSTRAINT rollup_dirty_buckets_pkey PRIMARY KEY (id),
    CONSTRAINT rollup_dirty_buckets_hour_at_check CHECK (hour_at = date_trunc('hour', hour_at, 'UTC')),
    CONSTRAINT rollup_dirty_buckets_rollup_run_id_fkey FOREIGN KEY (rollup_run_id)
        REFERENCES analytics.rollup_runs (id) ON DELETE SET NULL
);
-- Claims take the oldest hours first.
CREATE INDEX rollup_dirty_buckets_hour_at_organization_id_idx
    ON analytics.rollup_dirty_buckets (hour_at, organization_id);
CREATE INDEX rollup_dirty_buckets_rollup_run_id_idx ON analytics.rollup_dirty_buckets (rollup_run_id);
COMMENT ON TABLE analytics.rollup_dirty_buckets IS 'Queue of (organization, hour) buckets whose rollups must be recomputed. A run claims rows with FOR UPDATE SKIP LOCKED and deletes them in the transaction that rewrites the buckets, so a crash leaves them queued. A bucket may be queued more than once; recomputing it is idempotent.';
COMMENT ON COLUMN analytics.rollup_dirty_buckets.id IS 'Surrogate key; lets a run claim exactly the queue entries it saw.';
COMMENT ON COLUMN analytics.rollup_dirty_buckets.organization_id IS 'The organization whose hour must be recomputed.';
COMMENT ON COLUMN analytics.rollup_dirty_buckets.hour_at IS 'Start of the UTC hour to recompute.';
COMMENT ON COLUMN analytics.rollup_dirty_buckets.queued_at IS 'When the bucket was queued.';
COMMENT ON COLUMN analytics.rollup_dirty_buckets.rollup_run_id IS 'The run that queued the bucket.';
