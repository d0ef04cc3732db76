-- dbops:no-transaction
-- Poison-proof rollups and runs that are known to have died (issue 14).
--
-- analytics.quarantined_events holds the usage events a run could not roll
-- up, one row per event with the reason; every other bucket goes on in the
-- same run (docs/analytics.md, "Poisoned events"). It lives with the rollups
-- because the engine writes it in the transaction that rewrites the event's
-- bucket.
--
-- analytics.rollup_runs records the backend of the session that holds the
-- run, so that the next run can tell a run whose process died (kill -9, a
-- lost host) from one still going, and mark it `abandoned`. Its status
-- check is replaced NOT VALID and then validated in a statement of its own,
-- so the scan does not block the table; every statement can be repeated.

CREATE TABLE IF NOT EXISTS analytics.quarantined_events (
    id bigint GENERATED ALWAYS AS IDENTITY,
    event_id bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    organization_id bigint NOT NULL,
    hour_at timestamptz NOT NULL,
    api_key_id bigint,
    model_id bigint NOT NULL,
    reason text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    rollup_run_id bigint,
    CONSTRAINT quarantined_events_pkey PRIMARY KEY (id),
    CONSTRAINT quarantined_events_event_id_occurred_at_key UNIQUE (event_id, occurred_at),
    CONSTRAINT quarantined_events_hour_at_check CHECK (hour_at = date_trunc('hour', hour_at, 'UTC')),
    CONSTRAINT quarantined_events_reason_check CHECK (char_length(reason) BETWEEN 1 AND 1000),
    CONSTRAINT quarantined_events_rollup_run_id_fkey FOREIGN KEY (rollup_run_id)
        REFERENCES analytics.rollup_runs (id) ON DELETE SET NULL
);
-- A bucket's entries are replaced whenever the bucket is recomputed.
CREATE INDEX IF NOT EXISTS quarantined_events_organization_id_hour_at_idx
    ON analytics.quarantined_events (organization_id, hour_at);
CREATE INDEX IF NOT EXISTS quarantined_events_rollup_run_id_idx ON analytics.quarantined_events (rollup_run_id);

COMMENT ON TABLE analytics.quarantined_events IS 'Usage events the rollup engine could not roll up (a value the rollup tables refuse, or sums that would overflow), one row per event with the reason. Their buckets are rolled up without them. A bucket''s rows are replaced whenever it is recomputed, so a fixed or deleted event leaves the quarantine at its bucket''s next recompute. `dbops rollup check` and `dbops health` report them.';
COMMENT ON COLUMN analytics.quarantined_events.id IS 'Surrogate key.';
COMMENT ON COLUMN analytics.quarantined_events.event_id IS 'usage_events.id of the event.';
COMMENT ON COLUMN analytics.quarantined_events.occurred_at IS 'usage_events.occurred_at of the event (with event_id, its key).';
COMMENT ON COLUMN analytics.quarantined_events.organization_id IS 'The event''s organization: with hour_at, the (organization, hour) bucket it belongs to.';
COMMENT ON COLUMN analytics.quarantined_events.hour_at IS 'Start of the UTC hour of occurred_at.';
COMMENT ON COLUMN analytics.quarantined_events.api_key_id IS 'The event''s API key, as stored (NULL for none).';
COMMENT ON COLUMN analytics.quarantined_events.model_id IS 'The event''s model.';
COMMENT ON COLUMN analytics.quarantined_events.reason IS 'Why the event cannot be rolled up, naming the value and the bound it breaks.';
COMMENT ON COLUMN analytics.quarantined_events.quarantined_at IS 'When the run that quarantined it recomputed the bucket.';
COMMENT ON COLUMN analytics.quarantined_events.rollup_run_id IS 'The run that quarantined it.';

ALTER TABLE analytics.rollup_runs
    ADD COLUMN IF NOT EXISTS backend_pid integer,
    ADD COLUMN IF NOT EXISTS backend_started_at timestamptz,
    DROP CONSTRAINT IF EXISTS rollup_runs_status_check,
    ADD CONSTRAINT rollup_runs_status_check
        CHECK (status IN ('running', 'succeeded', 'failed', 'abandoned')) NOT VALID;
ALTER TABLE analytics.rollup_runs VALIDATE CONSTRAINT rollup_runs_status_check;

COMMENT ON COLUMN analytics.rollup_runs.status IS 'running, succeeded, failed, or abandoned: the run''s session ended while it was running (its process was killed or lost), as found by a later run.';
COMMENT ON COLUMN analytics.rollup_runs.backend_pid IS 'pg_backend_pid() of the session that holds the run; NULL for runs recorded before it was kept.';
COMMENT ON COLUMN analytics.rollup_runs.backend_started_at IS 'When that session started (pg_stat_activity.backend_start): with backend_pid, tells the run''s session from a later one that reuses the pid.';
