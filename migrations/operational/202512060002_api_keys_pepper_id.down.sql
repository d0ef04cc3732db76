-- Drops the pepper ids. Keys hashed with a pepper other than the one that
-- DBOPS_API_KEY_PEPPER will hold no longer verify: revoke or reissue them first.

ALTER TABLE api_keys DROP COLUMN pepper_id;
COMMENT ON COLUMN api_keys.key_hash IS 'HMAC-SHA-256 (32 bytes) of the whole key under the DBOPS_API_KEY_PEPPER pepper; written only by seeder::api_key::hash_secret.';
