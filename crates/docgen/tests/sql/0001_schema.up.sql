-- A small schema for the validation tests: a required and an optional
-- foreign key, a partial unique index, and a daily-partitioned table.
CREATE TABLE organizations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE organizations IS 'Tenants of the platform.';

CREATE TABLE api_keys (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key_prefix text NOT NULL,
    revoked_at timestamptz
);
CREATE UNIQUE INDEX api_keys_key_prefix_key ON api_keys (key_prefix) WHERE revoked_at IS NULL;

CREATE TABLE usage_events (
    id bigint GENERATED ALWAYS AS IDENTITY,
    organization_id bigint NOT NULL REFERENCES organizations (id),
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE usage_events_p20260101 PARTITION OF usage_events
    FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-01-02 00:00:00+00');
CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT;

INSERT INTO organizations (slug) VALUES ('acme');
INSERT INTO api_keys (organization_id, key_prefix) VALUES (1, 'dbk_1');
