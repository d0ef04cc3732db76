-- Removes the core entities, dependents first. Drops every organization, user,
-- API key, model, budget and audit entry: restore from a backup to undo.
DROP TABLE audit_log;
DROP FUNCTION audit_log_reject_change();
DROP TABLE budgets;
DROP TABLE models;
DROP TABLE api_keys;
DROP TABLE users;
DROP TABLE organizations;
DROP FUNCTION set_updated_at();
