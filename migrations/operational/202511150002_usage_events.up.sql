-- The usage fact table: one row per API request, range-partitioned by day on
-- occurred_at. `dbops partitions ensure` keeps daily partitions ahead of time,
-- moves stray rows out of the default partition and retires partitions older
-- than the retention in configs/data-classification.toml.
--
-- No foreign keys, deliberately: an event is an immutable billing record that
-- must outlive the user, key or organization it names, and per-row referential
-- checks would halve the ingestion rate. Writers take the ids from the
-- operational tables; the rollups and docs treat them as references.

CREATE TABLE usage_events (
    id bigint GENERATED ALWAYS AS IDENTITY,
    organization_id bigint NOT NULL,
    user_id bigint,
    api_key_id bigint,
    model_id bigint NOT NULL,
    request_id uuid NOT NULL,
    status text NOT NULL,
    input_tokens integer NOT NULL,
    output_tokens integer NOT NULL,
    cost_micros bigint NOT NULL,
    latency_ms integer NOT NULL,
    occurred_at timestamptz NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_events_pkey PRIMARY KEY (id, occurred_at),
    CONSTRAINT usage_events_status_check
        CHECK (status IN ('ok', 'client_error', 'server_error', 'timeout', 'rate_limited')),
    CONSTRAINT usage_events_input_tokens_check CHECK (input_tokens >= 0),
    CONSTRAINT usage_events_output_tokens_check CHECK (output_tokens >= 0),
    CONSTRAINT usage_events_cost_micros_check CHECK (cost_micros >= 0),
    CONSTRAINT usage_events_latency_ms_check CHECK (latency_ms >= 0),
    -- Late events arrive any time after they happened; a few minutes the other
    -- way is tolerated for clock skew between gateway and collector.
    CONSTRAINT usage_events_ingested_at_check CHECK (ingested_at >= occurred_at - interval '5 minutes')
) PARTITION BY RANGE (occurred_at);

-- Indexes are created on the parent while it has no partitions, so every
-- partition created later (by this file or by `dbops partitions ensure`) gets
-- them, named <partition>_<columns>_idx.

-- An organization's usage over a time window (dashboards, "last 24 hours").
CREATE INDEX usage_events_organization_id_occurred_at_idx
    ON usage_events (organization_id, occurred_at);
-- A user's most recent events.
CREATE INDEX usage_events_user_id_occurred_at_idx
    ON usage_events (user_id, occurred_at)
    WHERE user_id IS NOT NULL;
-- Budget checks for one key: the sums come from the index alone (index-only scan).
CREATE INDEX usage_events_api_key_id_occurred_at_idx
    ON usage_events (api_key_id, occurred_at) INCLUDE (cost_micros, input_tokens, output_tokens)
    WHERE api_key_id IS NOT NULL;
-- The rollup engine's incremental runs: the events ingested since its watermark,
-- late ones included (a btree: ingestion order is not occurred_at order).
CREATE INDEX usage_events_ingested_at_idx
    ON usage_events (ingested_at);

-- Catches events for days that have no partition yet, so none is ever lost;
-- `dbops partitions ensure` moves them into their day's partition once it exists.
CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT;

-- Today (UTC) and the next seven days, so that the table is usable straight
-- after `migrate up`; from then on `dbops partitions ensure` keeps the horizon.
DO $$
DECLARE
    day date;
BEGIN
    FOR day IN
        SELECT d::date
        FROM generate_series((now() AT TIME ZONE 'UTC')::date,
                             (now() AT TIME ZONE 'UTC')::date + 7,
                             interval '1 day') AS d
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF usage_events FOR VALUES FROM (%L) TO (%L)',
            'usage_events_p' || to_char(day, 'YYYYMMDD'),
            day::text || ' 00:00:00+00',
            (day + 1)::text || ' 00:00:00+00');
    END LOOP;
END;
$$;

COMMENT ON TABLE usage_events IS 'One row per API request: who called which model, tokens, cost, latency and outcome. Range-partitioned by occurred_at into daily partitions usage_events_pYYYYMMDD (UTC days) plus usage_events_default for events without one. Append-only in practice; retention is applied by detaching or dropping whole partitions.';
COMMENT ON COLUMN usage_events.id IS 'Surrogate key; unique together with occurred_at (the partition key).';
COMMENT ON COLUMN usage_events.organization_id IS 'The organization billed (organizations.id; not enforced, see the table comment).';
COMMENT ON COLUMN usage_events.user_id IS 'The user behind the request (users.id), if known.';
COMMENT ON COLUMN usage_events.api_key_id IS 'The API key that authenticated the request (api_keys.id), if any.';
COMMENT ON COLUMN usage_events.model_id IS 'The model that served the request (models.id).';
COMMENT ON COLUMN usage_events.request_id IS 'The gateway''s request identifier, for correlation with logs and traces.';
COMMENT ON COLUMN usage_events.status IS 'Outcome: ok, client_error, server_error, timeout or rate_limited; an error is any status other than ok.';
COMMENT ON COLUMN usage_events.input_tokens IS 'Prompt tokens billed, non-negative.';
COMMENT ON COLUMN usage_events.output_tokens IS 'Completion tokens billed, non-negative.';
COMMENT ON COLUMN usage_events.cost_micros IS 'Cost of the request in millionths of a US dollar, non-negative.';
COMMENT ON COLUMN usage_events.latency_ms IS 'Time from request received to last byte sent, in milliseconds.';
COMMENT ON COLUMN usage_events.occurred_at IS 'When the request happened; the partition key.';
COMMENT ON COLUMN usage_events.ingested_at IS 'When the event reached the database; later than occurred_at for late-arriving events, which incremental rollups must pick up.';
COMMENT ON TABLE usage_events_default IS 'Default partition of usage_events: holds events whose day has no partition until `dbops partitions ensure` moves them. Normally empty.';
