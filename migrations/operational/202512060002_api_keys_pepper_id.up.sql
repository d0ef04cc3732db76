-- dbops:no-transaction
-- Which pepper each key hash was made with, so that the pepper can rotate
-- while keys issued before keep verifying (docs/security.md, "Rotating the
-- pepper"). Keys stored before this migration were hashed with the one
-- pepper there was, DBOPS_API_KEY_PEPPER, whose id is 1.
--
-- A constant default is stored in the catalog (no table rewrite), and the
-- check is added NOT VALID, so the ALTER holds its lock only for the catalog
-- change; the validation then scans the rows in a statement of its own,
-- without blocking writes.

ALTER TABLE api_keys
    ADD COLUMN IF NOT EXISTS pepper_id text NOT NULL DEFAULT '1',
    ADD CONSTRAINT api_keys_pepper_id_check
        CHECK (pepper_id ~ '^[A-Za-z0-9_.-]{1,32}$') NOT VALID;

ALTER TABLE api_keys VALIDATE CONSTRAINT api_keys_pepper_id_check;

COMMENT ON COLUMN api_keys.pepper_id IS 'Id of the pepper key_hash was made with, in the keyring of DBOPS_API_KEY_PEPPERS (or 1, the id of a lone DBOPS_API_KEY_PEPPER); verification picks the pepper by this id. Not secret.';
COMMENT ON COLUMN api_keys.key_hash IS 'HMAC-SHA-256 (32 bytes) of the whole key under the pepper pepper_id names; written only by seeder::api_key::insert.';
