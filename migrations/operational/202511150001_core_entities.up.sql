-- Core entities of the platform: organizations (tenants), their users and API
-- keys, the model registry, budgets and the append-only audit log.
-- Naming follows docs/conventions.md; every table and column carries a comment
-- because the data dictionary is generated from them.

-- Keeps updated_at honest for every table that has one.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION set_updated_at() IS 'Trigger function: sets updated_at to the transaction time on every UPDATE.';

-- Organizations -------------------------------------------------------------

CREATE TABLE organizations (
    id bigint GENERATED ALWAYS AS IDENTITY,
    slug text NOT NULL,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'active',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT organizations_pkey PRIMARY KEY (id),
    CONSTRAINT organizations_slug_key UNIQUE (slug),
    CONSTRAINT organizations_slug_check CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
    CONSTRAINT organizations_name_check CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT organizations_status_check CHECK (status IN ('active', 'suspended', 'closed')),
    CONSTRAINT organizations_updated_at_check CHECK (updated_at >= created_at)
);
CREATE TRIGGER organizations_set_updated_at BEFORE UPDATE ON organizations
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

COMMENT ON TABLE organizations IS 'Tenants of the platform. Every user, API key, budget and usage event belongs to exactly one organization. Organizations are closed (status), not deleted, while they have usage history.';
COMMENT ON COLUMN organizations.id IS 'Surrogate key.';
COMMENT ON COLUMN organizations.slug IS 'URL-safe unique handle: lowercase letters, digits and inner hyphens, 1 to 63 characters.';
COMMENT ON COLUMN organizations.name IS 'Display name, 1 to 200 characters.';
COMMENT ON COLUMN organizations.status IS 'Lifecycle: active (may call the API), suspended (calls refused, data kept) or closed (terminal).';
COMMENT ON COLUMN organizations.created_at IS 'When the organization was created.';
COMMENT ON COLUMN organizations.updated_at IS 'When the row last changed; maintained by a trigger.';

-- Users ---------------------------------------------------------------------

CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY,
    organization_id bigint NOT NULL,
    email text NOT NULL,
    display_name text NOT NULL,
    role text NOT NULL DEFAULT 'member',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_pkey PRIMARY KEY (id),
    -- Target of the tenant-consistent composite foreign keys of api_keys and budgets.
    CONSTRAINT users_organization_id_id_key UNIQUE (organization_id, id),
    CONSTRAINT users_organization_id_fkey FOREIGN KEY (organization_id)
        REFERENCES organizations (id) ON DELETE CASCADE,
    CONSTRAINT users_email_check CHECK (char_length(email) <= 320 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    CONSTRAINT users_display_name_check CHECK (char_length(display_name) BETWEEN 1 AND 200),
    CONSTRAINT users_role_check CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    CONSTRAINT users_updated_at_check CHECK (updated_at >= created_at)
);
-- One account per email within an organization, whatever the letter case.
-- Also serves users_organization_id_fkey (leading column).
CREATE UNIQUE INDEX users_organization_id_email_key ON users (organization_id, lower(email));
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

COMMENT ON TABLE users IS 'People who act within one organization. An email address is unique per organization, case-insensitively; the same person in two organizations is two users.';
COMMENT ON COLUMN users.id IS 'Surrogate key.';
COMMENT ON COLUMN users.organization_id IS 'The organization the user belongs to; deleting the organization deletes its users.';
COMMENT ON COLUMN users.email IS 'Login and contact address, at most 320 characters; unique per organization ignoring case.';
COMMENT ON COLUMN users.display_name IS 'Name shown in the console, 1 to 200 characters.';
COMMENT ON COLUMN users.role IS 'Permissions within the organization: owner, admin, member or viewer.';
COMMENT ON COLUMN users.created_at IS 'When the user was created.';
COMMENT ON COLUMN users.updated_at IS 'When the row last changed; maintained by a trigger.';

-- API keys ------------------------------------------------------------------

CREATE TABLE api_keys (
    id bigint GENERATED ALWAYS AS IDENTITY,
    organization_id bigint NOT NULL,
    user_id bigint,
    name text NOT NULL,
    key_prefix text NOT NULL,
    key_hash bytea NOT NULL,
    scopes text[] NOT NULL DEFAULT ARRAY['inference']::text[],
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz,
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_organization_id_id_key UNIQUE (organization_id, id),
    CONSTRAINT api_keys_key_prefix_key UNIQUE (key_prefix),
    CONSTRAINT api_keys_organization_id_fkey FOREIGN KEY (organization_id)
        REFERENCES organizations (id) ON DELETE CASCADE,
    -- The owner must belong to the key's organization. A personal key dies with its owner.
    CONSTRAINT api_keys_organization_id_user_id_fkey FOREIGN KEY (organization_id, user_id)
        REFERENCES users (organization_id, id) ON DELETE CASCADE,
    CONSTRAINT api_keys_name_check CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT api_keys_key_prefix_check CHECK (key_prefix ~ '^dbk_[0-9A-Za-z]{12}$'),
    CONSTRAINT api_keys_key_hash_check CHECK (octet_length(key_hash) = 32),
    CONSTRAINT api_keys_scopes_check CHECK (
        cardinality(scopes) >= 1
        AND scopes <@ ARRAY['inference', 'embeddings', 'usage:read', 'admin']::text[]
    ),
    CONSTRAINT api_keys_expires_at_check CHECK (expires_at > created_at),
    CONSTRAINT api_keys_revoked_at_check CHECK (revoked_at >= created_at),
    CONSTRAINT api_keys_last_used_at_check CHECK (last_used_at >= created_at)
);
-- Serves both foreign keys (leading columns) and "the keys of an organization".
CREATE INDEX api_keys_organization_id_user_id_idx ON api_keys (organization_id, user_id);

COMMENT ON TABLE api_keys IS 'Credentials for the inference API. The secret is shown once at creation and never stored: only its HMAC-SHA-256 under a server-side pepper (see docs/security.md). A request is authenticated by looking the key up by its public prefix and comparing hashes in constant time.';
COMMENT ON COLUMN api_keys.id IS 'Surrogate key.';
COMMENT ON COLUMN api_keys.organization_id IS 'The organization billed for the key''s usage; deleting the organization deletes its keys.';
COMMENT ON COLUMN api_keys.user_id IS 'The user who owns a personal key; NULL for an organization (service) key. Deleting the user deletes the key.';
COMMENT ON COLUMN api_keys.name IS 'Label chosen by the owner, 1 to 200 characters.';
COMMENT ON COLUMN api_keys.key_prefix IS 'Public part of the key (dbk_ and 12 base-62 characters): shown in the console and used to find the key; not secret.';
COMMENT ON COLUMN api_keys.key_hash IS 'HMAC-SHA-256 (32 bytes) of the whole key under the DBOPS_API_KEY_PEPPER pepper; written only by seeder::api_key::hash_secret.';
COMMENT ON COLUMN api_keys.scopes IS 'What the key may do: a non-empty subset of inference, embeddings, usage:read and admin.';
COMMENT ON COLUMN api_keys.created_at IS 'When the key was issued.';
COMMENT ON COLUMN api_keys.expires_at IS 'After this instant the key is refused; NULL for a key that does not expire.';
COMMENT ON COLUMN api_keys.revoked_at IS 'When the key was revoked; a revoked key is refused. NULL while the key is live.';
COMMENT ON COLUMN api_keys.last_used_at IS 'Last successful authentication, updated at most about once a minute; NULL if never used.';

-- Model registry ------------------------------------------------------------

CREATE TABLE models (
    id bigint GENERATED ALWAYS AS IDENTITY,
    provider text NOT NULL,
    name text NOT NULL,
    context_window integer NOT NULL,
    input_price_micros bigint NOT NULL,
    output_price_micros bigint NOT NULL,
    status text NOT NULL DEFAULT 'active',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT models_pkey PRIMARY KEY (id),
    CONSTRAINT models_provider_name_key UNIQUE (provider, name),
    CONSTRAINT models_provider_check CHECK (provider ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    CONSTRAINT models_name_check CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT models_context_window_check CHECK (context_window > 0),
    CONSTRAINT models_input_price_micros_check CHECK (input_price_micros >= 0),
    CONSTRAINT models_output_price_micros_check CHECK (output_price_micros >= 0),
    CONSTRAINT models_status_check CHECK (status IN ('active', 'deprecated', 'retired')),
    CONSTRAINT models_updated_at_check CHECK (updated_at >= created_at)
);
CREATE TRIGGER models_set_updated_at BEFORE UPDATE ON models
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

COMMENT ON TABLE models IS 'The model registry: every model the gateway can route to, with its list prices. Models are retired, never deleted, because usage events refer to them.';
COMMENT ON COLUMN models.id IS 'Surrogate key.';
COMMENT ON COLUMN models.provider IS 'Who serves the model (openai, anthropic, self_hosted, ...): lowercase letters, digits, _ and -.';
COMMENT ON COLUMN models.name IS 'The provider''s model name; unique per provider.';
COMMENT ON COLUMN models.context_window IS 'Maximum tokens of input and output together, positive.';
COMMENT ON COLUMN models.input_price_micros IS 'List price of one million input tokens in millionths of a US dollar.';
COMMENT ON COLUMN models.output_price_micros IS 'List price of one million output tokens in millionths of a US dollar.';
COMMENT ON COLUMN models.status IS 'active (routable), deprecated (routable, warned) or retired (refused).';
COMMENT ON COLUMN models.created_at IS 'When the model was registered.';
COMMENT ON COLUMN models.updated_at IS 'When the row last changed; maintained by a trigger.';

-- Budgets -------------------------------------------------------------------

CREATE TABLE budgets (
    id bigint GENERATED ALWAYS AS IDENTITY,
    organization_id bigint NOT NULL,
    user_id bigint,
    api_key_id bigint,
    period text NOT NULL,
    limit_cost_micros bigint,
    limit_tokens bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT budgets_pkey PRIMARY KEY (id),
    -- One budget per scope and period; NULLS NOT DISTINCT makes the
    -- organization-wide budget (both NULL) unique too.
    CONSTRAINT budgets_organization_id_user_id_api_key_id_period_key
        UNIQUE NULLS NOT DISTINCT (organization_id, user_id, api_key_id, period),
    CONSTRAINT budgets_organization_id_fkey FOREIGN KEY (organization_id)
        REFERENCES organizations (id) ON DELETE CASCADE,
    CONSTRAINT budgets_organization_id_user_id_fkey FOREIGN KEY (organization_id, user_id)
        REFERENCES users (organization_id, id) ON DELETE CASCADE,
    CONSTRAINT budgets_organization_id_api_key_id_fkey FOREIGN KEY (organization_id, api_key_id)
        REFERENCES api_keys (organization_id, id) ON DELETE CASCADE,
    CONSTRAINT budgets_user_id_api_key_id_check CHECK (num_nonnulls(user_id, api_key_id) <= 1),
    CONSTRAINT budgets_period_check CHECK (period IN ('daily', 'weekly', 'monthly')),
    CONSTRAINT budgets_limit_cost_micros_check CHECK (limit_cost_micros > 0),
    CONSTRAINT budgets_limit_tokens_check CHECK (limit_tokens > 0),
    CONSTRAINT budgets_limit_cost_micros_limit_tokens_check CHECK (num_nonnulls(limit_cost_micros, limit_tokens) >= 1),
    CONSTRAINT budgets_updated_at_check CHECK (updated_at >= created_at)
);
-- Serves budgets_organization_id_api_key_id_fkey and the per-key budget check;
-- the unique constraint above serves the other two foreign keys.
CREATE INDEX budgets_organization_id_api_key_id_idx ON budgets (organization_id, api_key_id);
CREATE TRIGGER budgets_set_updated_at BEFORE UPDATE ON budgets
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

COMMENT ON TABLE budgets IS 'Spending and token limits per period for an organization, optionally narrowed to one user or one API key (not both).';
COMMENT ON COLUMN budgets.id IS 'Surrogate key.';
COMMENT ON COLUMN budgets.organization_id IS 'The organization the budget applies to; deleting it deletes its budgets.';
COMMENT ON COLUMN budgets.user_id IS 'Narrows the budget to one user of the organization; NULL otherwise. Deleting the user deletes the budget.';
COMMENT ON COLUMN budgets.api_key_id IS 'Narrows the budget to one API key of the organization; NULL otherwise. Deleting the key deletes the budget.';
COMMENT ON COLUMN budgets.period IS 'The window the limits apply to, in UTC calendar terms: daily, weekly (from Monday) or monthly.';
COMMENT ON COLUMN budgets.limit_cost_micros IS 'Spend limit per period in millionths of a US dollar, positive; NULL for no spend limit.';
COMMENT ON COLUMN budgets.limit_tokens IS 'Limit on input plus output tokens per period, positive; NULL for no token limit. At least one limit is set.';
COMMENT ON COLUMN budgets.created_at IS 'When the budget was created.';
COMMENT ON COLUMN budgets.updated_at IS 'When the row last changed; maintained by a trigger.';

-- Audit log -----------------------------------------------------------------

CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    target_type text NOT NULL,
    target_id text,
    organization_id bigint,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash bytea,
    entry_hash bytea,
    CONSTRAINT audit_log_pkey PRIMARY KEY (id),
    CONSTRAINT audit_log_actor_check CHECK (char_length(actor) BETWEEN 1 AND 200),
    CONSTRAINT audit_log_action_check CHECK (action ~ '^[a-z][a-z0-9_.:-]{0,99}$'),
    CONSTRAINT audit_log_target_type_check CHECK (target_type ~ '^[a-z][a-z0-9_.:-]{0,99}$'),
    CONSTRAINT audit_log_target_id_check CHECK (char_length(target_id) BETWEEN 1 AND 200),
    CONSTRAINT audit_log_metadata_check CHECK (jsonb_typeof(metadata) = 'object'),
    CONSTRAINT audit_log_prev_hash_check CHECK (octet_length(prev_hash) = 32),
    CONSTRAINT audit_log_entry_hash_check CHECK (octet_length(entry_hash) = 32)
);
CREATE INDEX audit_log_occurred_at_idx ON audit_log (occurred_at);
CREATE INDEX audit_log_organization_id_occurred_at_idx ON audit_log (organization_id, occurred_at);
CREATE INDEX audit_log_target_type_target_id_idx ON audit_log (target_type, target_id);

-- Append-only, enforced by the database: no UPDATE, DELETE or TRUNCATE, whoever asks.
CREATE FUNCTION audit_log_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Record a correcting entry instead.';
END;
$$;
COMMENT ON FUNCTION audit_log_reject_change() IS 'Trigger function: rejects UPDATE, DELETE and TRUNCATE on audit_log.';
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change();
CREATE TRIGGER audit_log_append_only_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_reject_change();

COMMENT ON TABLE audit_log IS 'Append-only record of who did what to which object, chained by hashes so that an edited or deleted entry is detected (dbops audit verify). UPDATE, DELETE and TRUNCATE are rejected by triggers. No foreign keys: an entry outlives the objects it describes.';
COMMENT ON COLUMN audit_log.id IS 'Surrogate key; also the order of the hash chain.';
COMMENT ON COLUMN audit_log.occurred_at IS 'When the action happened.';
COMMENT ON COLUMN audit_log.actor IS 'Who acted: a user''s email, a service name or an operator''s login, 1 to 200 characters.';
COMMENT ON COLUMN audit_log.action IS 'What was done, as a lowercase dotted verb such as migration.apply or api_key.revoke.';
COMMENT ON COLUMN audit_log.target_type IS 'The kind of object acted upon, such as migration, api_key or organization.';
COMMENT ON COLUMN audit_log.target_id IS 'The identifier of the object acted upon, as text (a numeric id or a migration version); NULL when the action has no single target.';
COMMENT ON COLUMN audit_log.organization_id IS 'The organization concerned, if any; not a foreign key so that entries survive the organization.';
COMMENT ON COLUMN audit_log.metadata IS 'Details of the action as a JSON object (target, version, checksum, duration, outcome, ...). Never holds secrets.';
COMMENT ON COLUMN audit_log.prev_hash IS 'SHA-256 (32 bytes) of the previous entry; NULL for the first entry of a chain.';
COMMENT ON COLUMN audit_log.entry_hash IS 'SHA-256 (32 bytes) of this entry including prev_hash; NULL for an entry written outside the chain.';
