-- dbops:no-transaction
-- Drops the quarantine and the run's backend; abandoned runs become failed
-- ones, which the older status check allows.

UPDATE analytics.rollup_runs SET status = 'failed' WHERE status = 'abandoned';
ALTER TABLE analytics.rollup_runs
    DROP CONSTRAINT IF EXISTS rollup_runs_status_check,
    ADD CONSTRAINT rollup_runs_status_check
        CHECK (status IN ('running', 'succeeded', 'failed')) NOT VALID,
    DROP COLUMN IF EXISTS backend_started_at,
    DROP COLUMN IF EXISTS backend_pid;
ALTER TABLE analytics.rollup_runs VALIDATE CONSTRAINT rollup_runs_status_check;

COMMENT ON COLUMN analytics.rollup_runs.status IS 'running (or crashed: a run that stays running after its process ended), succeeded or failed.';

DROP TABLE IF EXISTS analytics.quarantined_events;
