-- dbops:no-transaction
-- Impossible usage events are refused at insert, so that one bad producer
-- cannot poison the rollups (issue 14). Each statement commits on its own:
--
-- 1. One ALTER TABLE replaces the open-ended checks by bounded ones and adds
--    checks on the ids, all NOT VALID: it holds ACCESS EXCLUSIVE on
--    usage_events and its partitions only for the catalog change, and new
--    rows are checked from then on.
-- 2. Each VALIDATE CONSTRAINT then scans the existing rows under SHARE UPDATE
--    EXCLUSIVE, which lets inserts go on. A row that violates a check stops
--    the migration at that statement, naming the constraint; fix or delete
--    the row (the rollups have quarantined it, see docs/analytics.md) and
--    resume with `dbops migrate repair --action rerun`, which goes on from
--    the first statement that did not complete.
-- 3. A trigger refuses events ingested in the future (see below).
--
-- The bounds are far above anything real and far below what would overflow
-- a day's sums (docs/analytics.md, "Poisoned events"):
--   ids                    positive (0 is the rollups' "no API key")
--   input/output tokens    0 to 100,000,000 per request
--   cost_micros            0 to 100,000,000,000 (100,000 US dollars) per request
--   latency_ms             0 to 86,400,000 (one day)

ALTER TABLE usage_events
    ADD CONSTRAINT usage_events_organization_id_check CHECK (organization_id > 0) NOT VALID,
    ADD CONSTRAINT usage_events_user_id_check CHECK (user_id > 0) NOT VALID,
    ADD CONSTRAINT usage_events_api_key_id_check CHECK (api_key_id > 0) NOT VALID,
    ADD CONSTRAINT usage_events_model_id_check CHECK (model_id > 0) NOT VALID,
    DROP CONSTRAINT usage_events_input_tokens_check,
    ADD CONSTRAINT usage_events_input_tokens_check
        CHECK (input_tokens BETWEEN 0 AND 100000000) NOT VALID,
    DROP CONSTRAINT usage_events_output_tokens_check,
    ADD CONSTRAINT usage_events_output_tokens_check
        CHECK (output_tokens BETWEEN 0 AND 100000000) NOT VALID,
    DROP CONSTRAINT usage_events_cost_micros_check,
    ADD CONSTRAINT usage_events_cost_micros_check
        CHECK (cost_micros BETWEEN 0 AND 100000000000) NOT VALID,
    DROP CONSTRAINT usage_events_latency_ms_check,
    ADD CONSTRAINT usage_events_latency_ms_check
        CHECK (latency_ms BETWEEN 0 AND 86400000) NOT VALID;

ALTER TABLE usage_events VALIDATE CONSTRAINT usage_events_organization_id_check;
ALTER TABLE usage_events VALIDATE CONSTRAINT usage_events_user_id_check;
ALTER TABLE usage_events VALIDATE CONSTRAINT usage_events_api_key_id_check;
ALTER TABLE usage_events VALIDATE CONSTRAINT usage_events_model_id_check;
ALTER TABLE usage_events VALIDATE CONSTRAINT usage_events_input_tokens_check;
ALTER TABLE usage_events VALIDATE CONSTRAINT usage_events_output_tokens_check;
ALTER TABLE usage_events VALIDATE CONSTRAINT usage_events_cost_micros_check;
ALTER TABLE usage_events VALIDATE CONSTRAINT usage_events_latency_ms_check;

-- occurred_at is already bounded by ingested_at (usage_events_ingested_at_check:
-- at most 5 minutes later), and ingested_at defaults to now(). A CHECK cannot
-- call now(), so a writer that sets ingested_at itself is held to the clock by
-- this trigger: an event ingested more than 5 minutes in the future (clock
-- skew allowed, as for occurred_at) is refused with SQLSTATE 23514, the code
-- of a violated check, so writers handle both alike.
CREATE OR REPLACE FUNCTION usage_events_refuse_future()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.ingested_at > now() + interval '5 minutes' THEN
        RAISE EXCEPTION 'usage event % ingested in the future: ingested_at % is after now() + 5 minutes',
            NEW.request_id, NEW.ingested_at
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION usage_events_refuse_future() IS 'Trigger function of usage_events_refuse_future: refuses an event whose ingested_at (and so occurred_at) is more than 5 minutes after the inserting transaction''s now().';

-- The WHEN clause is evaluated without entering PL/pgSQL, so ordinary rows
-- cost next to nothing (200,000-row inserts: within noise of no trigger;
-- without the WHEN, 35% slower).
CREATE OR REPLACE TRIGGER usage_events_refuse_future
    BEFORE INSERT OR UPDATE OF ingested_at ON usage_events
    FOR EACH ROW
    WHEN (NEW.ingested_at > now() + interval '5 minutes')
    EXECUTE FUNCTION usage_events_refuse_future();
