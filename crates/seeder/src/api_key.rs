//! API keys: generating them, hashing them with the pepper, verifying a presented key, and the one function that stores them.
//!
//! A key looks like `dbk_AbCdEfGhIjKl_<32 base-62 characters>`. Its first 16
//! characters (`dbk_` and 12 base-62 characters) are the public prefix, stored
//! in `api_keys.key_prefix` to find the key and shown in the console. The
//! whole key is the secret: it is shown once, when it is created, and stored
//! only as `HMAC-SHA-256(pepper, key)` in `api_keys.key_hash`.
//!
//! The pepper is a server-side secret read from [`PEPPER_ENV`]; a stolen
//! database alone is therefore useless for checking guessed keys. Keys carry
//! 190 bits of randomness, so a fast keyed hash is enough (a slow password hash
//! protects low-entropy secrets, which these are not). See `docs/security.md`.
//!
//! Services authenticate a request with [`parse_prefix`], a lookup by prefix,
//! and [`verify`]:
//!
//! ```
//! use seeder::api_key::{self, Pepper};
//!
//! let pepper = Pepper::new(b"a pepper of at least thirty-two bytes!".to_vec()).unwrap();
//! let key = api_key::generate(&mut rand::rng());
//! let stored = api_key::hash_secret(&pepper, &key);
//! // Later, a request presents `key.expose()`:
//! let presented = key.expose();
//! assert_eq!(api_key::parse_prefix(presented), Some(key.prefix()));
//! assert!(api_key::verify(&pepper, presented, &stored));
//! assert!(!api_key::verify(&pepper, "dbk_AbCdEfGhIjKl_wrong", &stored));
//! ```

use std::fmt;

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use time::OffsetDateTime;
use tokio_postgres::GenericClient;

use crate::Error;

/// The environment variable holding the pepper.
pub const PEPPER_ENV: &str = "DBOPS_API_KEY_PEPPER";

/// The shortest pepper accepted, in bytes.
pub const MIN_PEPPER_LEN: usize = 32;

/// What every key starts with, so that a leaked key is recognisable (secret
/// scanners match on it).
pub const KEY_TAG: &str = "dbk_";

/// Length of the public prefix: the tag and 12 base-62 characters.
pub const PREFIX_LEN: usize = KEY_TAG.len() + 12;

/// Number of base-62 characters after the prefix and its `_` separator.
const SECRET_CHARS: usize = 32;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

type HmacSha256 = Hmac<Sha256>;

/// The server-side secret mixed into every key hash. Never printed: its
/// `Debug` output is redacted.
#[derive(Clone)]
pub struct Pepper {
    bytes: Vec<u8>,
}

impl Pepper {
    /// A pepper from raw bytes, at least [`MIN_PEPPER_LEN`] long.
    ///
    /// # Errors
    /// [`Error::PepperTooShort`].
    pub fn new(bytes: Vec<u8>) -> Result<Pepper, Error> {
        Pepper::checked(bytes, "argument")
    }

    /// The pepper from the [`PEPPER_ENV`] environment variable (its UTF-8 bytes).
    ///
    /// # Errors
    /// [`Error::PepperMissing`] or [`Error::PepperTooShort`].
    pub fn from_env() -> Result<Pepper, Error> {
        let value = std::env::var_os(PEPPER_ENV).ok_or(Error::PepperMissing {
            variable: PEPPER_ENV,
        })?;
        Pepper::checked(value.into_encoded_bytes(), PEPPER_ENV)
    }

    fn checked(bytes: Vec<u8>, origin: &'static str) -> Result<Pepper, Error> {
        if bytes.len() < MIN_PEPPER_LEN {
            return Err(Error::PepperTooShort {
                origin,
                length: bytes.len(),
                minimum: MIN_PEPPER_LEN,
            });
        }
        Ok(Pepper { bytes })
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.bytes).expect("HMAC accepts keys of any length")
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(<redacted>)")
    }
}

/// A whole API key, secret included. Its `Debug` output shows only the
/// prefix; [`ApiKeySecret::expose`] is the one way to read the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret {
    key: String,
}

impl ApiKeySecret {
    /// The whole key, for showing to its owner once.
    pub fn expose(&self) -> &str {
        &self.key
    }

    /// The public prefix (`dbk_` and 12 characters).
    pub fn prefix(&self) -> &str {
        &self.key[..PREFIX_LEN]
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({}_<redacted>)", self.prefix())
    }
}

/// Generates a new key from `rng`. Use a cryptographically secure generator
/// (`rand::rng()`) for real keys; the seeder uses a seeded ChaCha generator so
/// that fixtures are reproducible.
pub fn generate(rng: &mut impl Rng) -> ApiKeySecret {
    let mut key = String::with_capacity(PREFIX_LEN + 1 + SECRET_CHARS);
    key.push_str(KEY_TAG);
    push_base62(&mut key, rng, PREFIX_LEN - KEY_TAG.len());
    key.push('_');
    push_base62(&mut key, rng, SECRET_CHARS);
    ApiKeySecret { key }
}

fn push_base62(out: &mut String, rng: &mut impl Rng, count: usize) {
    for _ in 0..count {
        // random_range is unbiased (rejection sampling).
        out.push(char::from(BASE62[rng.random_range(0..BASE62.len())]));
    }
}

/// The public prefix of a presented key, or `None` when it is not shaped like
/// a key (wrong tag, length or alphabet). Look the key up by this prefix, then
/// [`verify`] it.
pub fn parse_prefix(presented: &str) -> Option<&str> {
    let bytes = presented.as_bytes();
    let well_formed = bytes.len() == PREFIX_LEN + 1 + SECRET_CHARS
        && presented.starts_with(KEY_TAG)
        && bytes[PREFIX_LEN] == b'_'
        && bytes[KEY_TAG.len()..PREFIX_LEN]
            .iter()
            .chain(&bytes[PREFIX_LEN + 1..])
            .all(u8::is_ascii_alphanumeric);
    well_formed.then(|| &presented[..PREFIX_LEN])
}

/// `HMAC-SHA-256(pepper, key)`: the value stored in `api_keys.key_hash`.
pub fn hash_secret(pepper: &Pepper, secret: &ApiKeySecret) -> [u8; 32] {
    hash_bytes(pepper, secret.key.as_bytes())
}

fn hash_bytes(pepper: &Pepper, key: &[u8]) -> [u8; 32] {
    let mut mac = pepper.mac();
    mac.update(key);
    mac.finalize().into_bytes().into()
}

/// Whether `presented` is the key whose hash is `stored_hash`, compared in
/// constant time.
pub fn verify(pepper: &Pepper, presented: &str, stored_hash: &[u8]) -> bool {
    let mut mac = pepper.mac();
    mac.update(presented.as_bytes());
    mac.verify_slice(stored_hash).is_ok()
}

/// A key to store with [`insert`].
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// The organization the key belongs to.
    pub organization_id: i64,
    /// The owner of a personal key; `None` for an organization key.
    pub user_id: Option<i64>,
    /// The key's label.
    pub name: String,
    /// Scopes, a subset of `inference`, `embeddings`, `usage:read`, `admin`.
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Expiry, if any.
    pub expires_at: Option<OffsetDateTime>,
    /// The key itself.
    pub secret: ApiKeySecret,
}

/// A key that [`insert`] stored: the only moment its secret is available.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    /// `api_keys.id`.
    pub id: i64,
    /// The organization.
    pub organization_id: i64,
    /// The key's label.
    pub name: String,
    /// The key; show it once with [`ApiKeySecret::expose`].
    pub secret: ApiKeySecret,
}

/// Stores keys, hashing each with the pepper; keys whose prefix is already
/// stored are left alone. Returns the keys actually inserted, in input order.
/// This is the only code path that writes key material.
///
/// # Errors
/// [`Error::Database`] when the insert fails (for example a scope outside the
/// allowed set, or a user of another organization).
pub async fn insert(
    client: &impl GenericClient,
    pepper: &Pepper,
    keys: &[NewApiKey],
) -> Result<Vec<IssuedKey>, Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let organization_ids: Vec<i64> = keys.iter().map(|k| k.organization_id).collect();
    let user_ids: Vec<Option<i64>> = keys.iter().map(|k| k.user_id).collect();
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    let prefixes: Vec<&str> = keys.iter().map(|k| k.secret.prefix()).collect();
    let hashes: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| hash_secret(pepper, &k.secret).to_vec())
        .collect();
    // unnest flattens two-dimensional arrays, so scopes travel as one string each.
    let scopes: Vec<String> = keys.iter().map(|k| k.scopes.join(",")).collect();
    let created: Vec<OffsetDateTime> = keys.iter().map(|k| k.created_at).collect();
    let expires: Vec<Option<OffsetDateTime>> = keys.iter().map(|k| k.expires_at).collect();
    let rows = client
        .query(
            "INSERT INTO api_keys (organization_id, user_id, name, key_prefix, key_hash, scopes, created_at, expires_at) \
             SELECT o, u, n, p, h, string_to_array(s, ','), c, e \
             FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::timestamptz[], $8::timestamptz[]) \
                  WITH ORDINALITY AS k(o, u, n, p, h, s, c, e, ord) \
             ORDER BY ord \
             ON CONFLICT (key_prefix) DO NOTHING \
             RETURNING id, key_prefix",
            &[&organization_ids, &user_ids, &names, &prefixes, &hashes, &scopes, &created, &expires],
        )
        .await
        .map_err(Error::db("storing API keys"))?;
    let mut inserted: std::collections::HashMap<String, i64> = rows
        .iter()
        .map(|row| (row.get::<_, String>(1), row.get::<_, i64>(0)))
        .collect();
    Ok(keys
        .iter()
        .filter_map(|key| {
            let id = inserted.remove(key.secret.prefix())?;
            Some(IssuedKey {
                id,
                organization_id: key.organization_id,
                name: key.name.clone(),
                secret: key.secret.clone(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn pepper() -> Pepper {
        Pepper::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
    }

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let a = generate(&mut rng);
        let b = generate(&mut rng);
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), PREFIX_LEN + 1 + SECRET_CHARS);
        assert_eq!(parse_prefix(a.expose()), Some(a.prefix()));
        assert!(a.prefix().starts_with(KEY_TAG));
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        let key = generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
        let text = key.expose();
        assert_eq!(parse_prefix(&text[1..]), None);
        assert_eq!(parse_prefix(&format!("{text}x")), None);
        assert_eq!(parse_prefix(&text.replacen("dbk_", "sk__", 1)), None);
        assert_eq!(parse_prefix(&text.replace('_', "-")), None);
        assert_eq!(parse_prefix(&format!("{}é", &text[..text.len() - 2])), None);
    }

    #[test]
    fn the_hash_is_hmac_sha256_of_the_whole_key_under_the_pepper() {
        // RFC 4231 test case 2 shape: HMAC-SHA-256 of known inputs.
        let pepper = Pepper {
            bytes: b"Jefe".to_vec(),
        };
        assert_eq!(
            hash_bytes(&pepper, b"what do ya want for nothing?"),
            [
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
                0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
                0x64, 0xec, 0x38, 0x43
            ]
        );
    }

    #[test]
    fn verification_needs_the_same_key_and_the_same_pepper() {
        let key = generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
        let stored = hash_secret(&pepper(), &key);
        assert!(verify(&pepper(), key.expose(), &stored));
        let other_pepper = Pepper::new(b"another pepper, also 32 bytes long".to_vec()).unwrap();
        assert!(!verify(&other_pepper, key.expose(), &stored));
        let mut tampered = key.expose().to_owned();
        tampered.pop();
        tampered.push('!');
        assert!(!verify(&pepper(), &tampered, &stored));
        assert!(!verify(&pepper(), key.expose(), &stored[..31]));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let key = generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(5));
        let shown = format!("{key:?} {:?}", pepper());
        assert!(!shown.contains(&key.expose()[PREFIX_LEN..]), "{shown}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains(key.prefix()));
    }

    #[test]
    fn short_peppers_are_refused() {
        assert!(matches!(
            Pepper::new(b"short".to_vec()),
            Err(Error::PepperTooShort {
                length: 5,
                minimum: MIN_PEPPER_LEN,
                ..
            })
        ));
    }
}
