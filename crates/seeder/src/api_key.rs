//! API keys: generating them, hashing them with the pepper, verifying a presented key, and the one function that stores them.
//!
//! A key looks like `dbk_AbCdEfGhIjKl_<32 base-62 characters>`. Its first 16
//! characters (`dbk_` and 12 base-62 characters) are the public prefix, stored
//! in `api_keys.key_prefix` to find the key and shown in the console. The
//! whole key is the secret: it is shown once, when it is created, and stored
//! only as `HMAC-SHA-256(pepper, key)` in `api_keys.key_hash`, with the id of
//! the pepper in `api_keys.pepper_id`.
//!
//! The pepper is a server-side secret; a stolen database alone is therefore
//! useless for checking guessed keys. The 32 secret characters carry
//! 32 × log2(62) ≈ 190.5 bits (the 12 characters of the prefix are public and
//! add nothing), so a fast keyed hash is enough (a slow password hash protects
//! low-entropy secrets, which these are not). See `docs/security.md`.
//!
//! Peppers live in a [`Keyring`]: [`PEPPERS_ENV`] lists `ID=SECRET` entries,
//! the pepper of new keys first, then older ones that stored hashes still
//! name, so the pepper can rotate while issued keys keep verifying. A lone
//! [`PEPPER_ENV`] is a keyring of one pepper with id [`DEFAULT_PEPPER_ID`].
//!
//! Seeded keys are reproducible, so their secret part is derived from the
//! pepper ([`derive()`]): two databases seeded with different peppers print
//! different keys, and nobody reproduces them without the pepper.
//!
//! Services authenticate a request with [`parse_prefix`], a lookup by prefix,
//! and [`Keyring::verify`] (or [`verify`] with one pepper):
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

/// The environment variable holding the pepper, when there is only one.
pub const PEPPER_ENV: &str = "DBOPS_API_KEY_PEPPER";

/// The environment variable holding the keyring: `ID=SECRET` entries
/// separated by white space, the pepper of new keys first.
pub const PEPPERS_ENV: &str = "DBOPS_API_KEY_PEPPERS";

/// The id of a lone [`PEPPER_ENV`] pepper, and of the hashes stored before
/// pepper ids were (the column's default).
pub const DEFAULT_PEPPER_ID: &str = "1";

/// The longest pepper id.
const MAX_PEPPER_ID_LEN: usize = 32;

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

/// Peppers by id: the one new keys are hashed with (the first), and older
/// ones that stored hashes may name. Its `Debug` output shows only the ids.
#[derive(Clone)]
pub struct Keyring {
    /// (id, pepper), the current one first; ids are distinct.
    peppers: Vec<(String, Pepper)>,
}

impl Keyring {
    /// A keyring of one pepper.
    ///
    /// # Errors
    /// [`Error::KeyringInvalid`] when `id` is not 1 to 32 characters of
    /// `A-Z a-z 0-9 _ . -`.
    pub fn single(id: &str, pepper: Pepper) -> Result<Keyring, Error> {
        check_pepper_id(id).map_err(|message| Error::KeyringInvalid {
            origin: "argument",
            entry: 1,
            message,
        })?;
        Ok(Keyring {
            peppers: vec![(id.to_owned(), pepper)],
        })
    }

    /// Parses `ID=SECRET` entries separated by white space, the current
    /// pepper first; `origin` names the text in errors, which never show a
    /// secret.
    ///
    /// # Errors
    /// [`Error::KeyringInvalid`]: no entry, an entry without `=`, a bad or
    /// repeated id, or a pepper shorter than [`MIN_PEPPER_LEN`].
    pub fn parse(text: &str, origin: &'static str) -> Result<Keyring, Error> {
        let mut peppers: Vec<(String, Pepper)> = Vec::new();
        for (index, entry) in text.split_whitespace().enumerate() {
            let invalid = |message: String| Error::KeyringInvalid {
                origin,
                entry: index + 1,
                message,
            };
            let (id, secret) = entry
                .split_once('=')
                .ok_or_else(|| invalid("expected ID=SECRET".to_owned()))?;
            check_pepper_id(id).map_err(&invalid)?;
            if peppers.iter().any(|(known, _)| known == id) {
                return Err(invalid(format!("pepper id {id:?} is listed twice")));
            }
            if secret.len() < MIN_PEPPER_LEN {
                return Err(invalid(format!(
                    "the pepper of id {id:?} is {} bytes long; at least {MIN_PEPPER_LEN} random bytes are required",
                    secret.len()
                )));
            }
            peppers.push((
                id.to_owned(),
                Pepper {
                    bytes: secret.as_bytes().to_vec(),
                },
            ));
        }
        if peppers.is_empty() {
            return Err(Error::KeyringInvalid {
                origin,
                entry: 1,
                message: "no pepper: list ID=SECRET entries, the pepper of new keys first"
                    .to_owned(),
            });
        }
        Ok(Keyring { peppers })
    }

    /// The keyring from the environment: [`PEPPERS_ENV`], else a lone
    /// [`PEPPER_ENV`] with id [`DEFAULT_PEPPER_ID`].
    ///
    /// # Errors
    /// [`Error::PepperConflict`] when both are set, [`Error::PepperMissing`]
    /// when neither is, and the errors of [`Keyring::parse`] and
    /// [`Pepper::from_env`].
    pub fn from_env() -> Result<Keyring, Error> {
        Keyring::from_variables(|name| std::env::var_os(name))
    }

    fn from_variables(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Keyring, Error> {
        match (var(PEPPERS_ENV), var(PEPPER_ENV)) {
            (Some(_), Some(_)) => Err(Error::PepperConflict {
                keyring: PEPPERS_ENV,
                single: PEPPER_ENV,
            }),
            (Some(keyring), None) => {
                let text = keyring.into_string().map_err(|_| Error::KeyringInvalid {
                    origin: PEPPERS_ENV,
                    entry: 1,
                    message: "not valid UTF-8".to_owned(),
                })?;
                Keyring::parse(&text, PEPPERS_ENV)
            }
            (None, Some(single)) => Ok(Keyring {
                peppers: vec![(
                    DEFAULT_PEPPER_ID.to_owned(),
                    Pepper::checked(single.into_encoded_bytes(), PEPPER_ENV)?,
                )],
            }),
            (None, None) => Err(Error::PepperMissing {
                variable: "DBOPS_API_KEY_PEPPERS (or DBOPS_API_KEY_PEPPER)",
            }),
        }
    }

    /// The id of the pepper new keys are hashed with.
    pub fn current_id(&self) -> &str {
        &self.peppers[0].0
    }

    /// The pepper new keys are hashed with.
    pub fn current(&self) -> &Pepper {
        &self.peppers[0].1
    }

    /// The pepper of id `id`, if the keyring holds it.
    pub fn get(&self, id: &str) -> Option<&Pepper> {
        self.peppers
            .iter()
            .find(|(known, _)| known == id)
            .map(|(_, pepper)| pepper)
    }

    /// Whether `presented` is the key whose hash, made with the pepper of
    /// id `pepper_id` (`api_keys.pepper_id`), is `stored_hash`.
    ///
    /// # Errors
    /// [`Error::PepperUnknown`] when the keyring has no pepper of that id.
    pub fn verify(
        &self,
        presented: &str,
        stored_hash: &[u8],
        pepper_id: &str,
    ) -> Result<bool, Error> {
        let pepper = self.get(pepper_id).ok_or_else(|| Error::PepperUnknown {
            id: pepper_id.to_owned(),
        })?;
        Ok(verify(pepper, presented, stored_hash))
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.peppers.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "Keyring(ids: {ids:?}, peppers: <redacted>)")
    }
}

fn check_pepper_id(id: &str) -> Result<(), String> {
    let well_formed = (1..=MAX_PEPPER_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "pepper id {id:?} is not 1 to {MAX_PEPPER_ID_LEN} characters of A-Z a-z 0-9 _ . -"
        ))
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

/// The key stored for the seeded key `material`: the same public prefix, and
/// a secret part drawn from a ChaCha20 generator keyed with
/// `HMAC-SHA-256(pepper, domain, material)`. The seed makes keys
/// reproducible; the pepper makes them secret: without it nobody derives
/// them, and another pepper derives other keys.
pub fn derive(pepper: &Pepper, material: &ApiKeySecret) -> ApiKeySecret {
    use rand::SeedableRng;
    let mut mac = pepper.mac();
    mac.update(b"dbops seeded API key v1\0");
    mac.update(material.key.as_bytes());
    let seed: [u8; 32] = mac.finalize().into_bytes().into();
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    let mut key = String::with_capacity(PREFIX_LEN + 1 + SECRET_CHARS);
    key.push_str(material.prefix());
    key.push('_');
    push_base62(&mut key, &mut rng, SECRET_CHARS);
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

/// Stores keys, hashing each with the keyring's current pepper and recording
/// its id; keys whose prefix is already stored are left alone. Returns the keys actually inserted, in input order.
/// This is the only code path that writes key material.
///
/// # Errors
/// [`Error::Database`] when the insert fails (for example a scope outside the
/// allowed set, or a user of another organization).
pub async fn insert(
    client: &impl GenericClient,
    keyring: &Keyring,
    keys: &[NewApiKey],
) -> Result<Vec<IssuedKey>, Error> {
    let pepper = keyring.current();
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
            "INSERT INTO api_keys (organization_id, user_id, name, key_prefix, key_hash, pepper_id, scopes, created_at, expires_at) \
             SELECT o, u, n, p, h, $9, string_to_array(s, ','), c, e \
             FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::timestamptz[], $8::timestamptz[]) \
                  WITH ORDINALITY AS k(o, u, n, p, h, s, c, e, ord) \
             ORDER BY ord \
             ON CONFLICT (key_prefix) DO NOTHING \
             RETURNING id, key_prefix",
            &[&organization_ids, &user_ids, &names, &prefixes, &hashes, &scopes, &created, &expires, &keyring.current_id()],
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
    fn derived_keys_keep_the_prefix_and_depend_on_the_pepper() {
        let material = generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(9));
        let other_pepper = Pepper::new(b"another pepper, also 32 bytes long".to_vec()).unwrap();
        let (a, again, b) = (
            derive(&pepper(), &material),
            derive(&pepper(), &material),
            derive(&other_pepper, &material),
        );
        assert_eq!(a, again, "the same pepper and seed give the same key");
        assert_ne!(a, b);
        assert_ne!(a, material);
        for key in [&a, &b] {
            assert_eq!(key.prefix(), material.prefix());
            assert_eq!(parse_prefix(key.expose()), Some(material.prefix()));
        }
        // A key derived with one pepper does not verify against the other's hash.
        assert!(!verify(&pepper(), b.expose(), &hash_secret(&pepper(), &a)));
        assert!(!verify(
            &other_pepper,
            a.expose(),
            &hash_secret(&other_pepper, &b)
        ));
    }

    #[test]
    fn a_keyring_verifies_each_hash_with_the_pepper_it_names() {
        let keyring = Keyring::parse(
            "2026=the-new-pepper-of-at-least-32-bytes\n  1=the-old-pepper-of-at-least-32-bytes!",
            PEPPERS_ENV,
        )
        .unwrap();
        assert_eq!(keyring.current_id(), "2026");
        let key = generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(11));
        let old = hash_secret(keyring.get("1").unwrap(), &key);
        let new = hash_secret(keyring.current(), &key);
        assert!(keyring.verify(key.expose(), &old, "1").unwrap());
        assert!(keyring.verify(key.expose(), &new, "2026").unwrap());
        assert!(!keyring.verify(key.expose(), &old, "2026").unwrap());
        assert!(matches!(
            keyring.verify(key.expose(), &old, "0"),
            Err(Error::PepperUnknown { id }) if id == "0"
        ));
        let shown = format!("{keyring:?}");
        assert_eq!(shown, r#"Keyring(ids: ["2026", "1"], peppers: <redacted>)"#);
    }

    #[test]
    fn malformed_keyrings_are_refused_without_showing_a_secret() {
        let long = "x".repeat(MIN_PEPPER_LEN);
        for (text, expected) in [
            ("", "invalid DBOPS_API_KEY_PEPPERS: entry 1: no pepper: list ID=SECRET entries, the pepper of new keys first".to_owned()),
            (long.as_str(), "invalid DBOPS_API_KEY_PEPPERS: entry 1: expected ID=SECRET".to_owned()),
            (&format!("1={long} 1={long}y"), "invalid DBOPS_API_KEY_PEPPERS: entry 2: pepper id \"1\" is listed twice".to_owned()),
            (&format!("a/b={long}"), "invalid DBOPS_API_KEY_PEPPERS: entry 1: pepper id \"a/b\" is not 1 to 32 characters of A-Z a-z 0-9 _ . -".to_owned()),
            ("2=short-secret", "invalid DBOPS_API_KEY_PEPPERS: entry 1: the pepper of id \"2\" is 12 bytes long; at least 32 random bytes are required".to_owned()),
        ] {
            let error = Keyring::parse(text, PEPPERS_ENV).unwrap_err().to_string();
            assert_eq!(error, expected);
            assert!(!error.contains("short-secret") && !error.contains(&long));
        }
        assert!(matches!(
            Keyring::single("", pepper()),
            Err(Error::KeyringInvalid { .. })
        ));
    }

    #[test]
    fn the_keyring_comes_from_one_variable_or_the_other() {
        use std::ffi::OsString;
        let long: OsString = "y".repeat(MIN_PEPPER_LEN).into();
        let ring: OsString = format!("k1={}", "z".repeat(MIN_PEPPER_LEN)).into();
        let from = |peppers: Option<&OsString>, single: Option<&OsString>| {
            Keyring::from_variables(|name| match name {
                PEPPERS_ENV => peppers.cloned(),
                PEPPER_ENV => single.cloned(),
                _ => None,
            })
        };
        assert_eq!(from(Some(&ring), None).unwrap().current_id(), "k1");
        assert_eq!(
            from(None, Some(&long)).unwrap().current_id(),
            DEFAULT_PEPPER_ID
        );
        assert!(matches!(
            from(Some(&ring), Some(&long)),
            Err(Error::PepperConflict { .. })
        ));
        assert_eq!(
            from(None, None).unwrap_err().to_string(),
            "DBOPS_API_KEY_PEPPERS (or DBOPS_API_KEY_PEPPER) is not set: API keys are hashed with a secret pepper, see docs/security.md"
        );
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
