-- dbops:no-transaction
-- Back to the open-ended checks of 202511150002_usage_events, added NOT VALID
-- and then validated without blocking inserts, and no future-time trigger.

DROP TRIGGER IF EXISTS usage_events_refuse_future ON usage_events;
DROP FUNCTION IF EXISTS usage_events_refuse_future();

ALTER TABLE usage_events
    DROP CONSTRAINT IF EXISTS usage_events_organization_id_check,
    DROP CONSTRAINT IF EXISTS usage_events_user_id_check,
    DROP CONSTRAINT IF EXISTS usage_events_api_key_id_check,
    DROP CONSTRAINT IF EXISTS usage_events_model_id_check,
    DROP CONSTRAINT usage_events_input_tokens_check,
    ADD CONSTRAINT usage_events_input_tokens_check CHECK (input_tokens >= 0) NOT VALID,
    DROP CONSTRAINT usage_events_output_tokens_check,
    ADD CONSTRAINT usage_events_output_tokens_check CHECK (output_tokens >= 0) NOT VALID,
    DROP CONSTRAINT usage_events_cost_micros_check,
    ADD CONSTRAINT usage_events_cost_micros_check CHECK (cost_micros >= 0) NOT VALID,
    DROP CONSTRAINT usage_events_latency_ms_check,
    ADD CONSTRAINT usage_events_latency_ms_check CHECK (latency_ms >= 0) NOT VALID;

ALTER TABLE usage_events VALIDATE CONSTRAINT usage_events_input_tokens_check;
ALTER TABLE usage_events VALIDATE CONSTRAINT usage_events_output_tokens_check;
ALTER TABLE usage_events VALIDATE CONSTRAINT usage_events_cost_micros_check;
ALTER TABLE usage_events VALIDATE CONSTRAINT usage_events_latency_ms_check;
