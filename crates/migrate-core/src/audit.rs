//! The audit trail of schema changes: hash-chained entries in the platform's
//! `audit_log` table, or in dbops's own `dbops.audit_log` where that table does not exist.
//!
//! Each chained entry stores the SHA-256 of the previous chained entry
//! (`prev_hash`) and its own hash over that and its content (`entry_hash`).
//! The hash is computed by PostgreSQL from the stored values, so what is
//! verified is exactly what is in the table. A head row in
//! `dbops.audit_head` remembers the newest entry of each chain, so deleting
//! the newest entries is detected as well as editing or deleting older ones.
//!
//! A database superuser can recompute every hash, so two things the
//! database never holds anchor the chain:
//!
//! - an [`AuditKey`] given to the runner: each entry written with it gets an
//!   HMAC-SHA-256 over its chain, id and hash, in `dbops.audit_mac`; without
//!   the key nobody can make a code that verifies;
//! - the published head ([`Head`], `SEQ:HASH`): every entry written is
//!   announced in the `audit.head` field of the migration's span and of a log
//!   line, for operators to keep outside the database; [`verify`] checks
//!   that each published head is still in the chain with that hash.
//!
//! `dbops.audit_log` and `dbops.audit_mac` are append-only (triggers reject
//! UPDATE, DELETE and TRUNCATE), as the platform's table is; [`verify`]
//! reports those triggers missing or disabled, and entries without a hash.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::error::Error;

/// The platform's audit table.
pub const PLATFORM_TABLE: &str = "public.audit_log";
/// dbops's own audit table, used where the platform's does not exist.
pub const FALLBACK_TABLE: &str = "dbops.audit_log";

/// The lock that serializes the writers of the chains, and the creation of
/// dbops's own audit tables: see [`PREPARE`].
pub(crate) const CHAIN_LOCK: i64 = 0x6462_6f70_735f_6175;

/// dbops's own audit tables, created when missing.
pub(crate) const FALLBACK_DDL: &str = "
CREATE SCHEMA IF NOT EXISTS dbops;
CREATE TABLE IF NOT EXISTS dbops.audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    target_type text NOT NULL,
    target_id text,
    organization_id bigint,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash bytea,
    entry_hash bytea
);
CREATE TABLE IF NOT EXISTS dbops.audit_head (
    chain text PRIMARY KEY,
    last_id bigint NOT NULL,
    last_hash bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS dbops.audit_mac (
    chain text NOT NULL,
    entry_id bigint NOT NULL,
    key_id text NOT NULL,
    mac bytea NOT NULL CHECK (octet_length(mac) = 32),
    PRIMARY KEY (chain, entry_id)
);
CREATE OR REPLACE FUNCTION dbops.audit_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $f$
BEGIN
    RAISE EXCEPTION '%.% is append-only: % is not allowed', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Record a correcting entry instead.';
END;
$f$;
DO $do$
DECLARE
    t text;
BEGIN
    -- Created when missing, never replaced: replacing would quietly
    -- re-enable a trigger someone disabled, which verify must see.
    FOREACH t IN ARRAY ARRAY['audit_log', 'audit_mac'] LOOP
        IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = ('dbops.' || t)::regclass AND tgname = t || '_append_only') THEN
            EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON dbops.%I FOR EACH ROW EXECUTE FUNCTION dbops.audit_reject_change()', t || '_append_only', t);
        END IF;
        IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = ('dbops.' || t)::regclass AND tgname = t || '_append_only_truncate') THEN
            EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON dbops.%I FOR EACH STATEMENT EXECUTE FUNCTION dbops.audit_reject_change()', t || '_append_only_truncate', t);
        END IF;
    END LOOP;
END
$do$;
";

/// True when dbops's own audit tables all exist (a SQL condition).
pub(crate) const FALLBACK_READY: &str = "(to_regclass('dbops.audit_log') IS NOT NULL AND to_regclass('dbops.audit_head') IS NOT NULL AND to_regclass('dbops.audit_mac') IS NOT NULL)";

/// The append-only triggers each audit table must have, enabled.
const APPEND_ONLY_TRIGGERS: [(&str, [&str; 2]); 3] = [
    (
        PLATFORM_TABLE,
        ["audit_log_append_only", "audit_log_append_only_truncate"],
    ),
    (
        FALLBACK_TABLE,
        ["audit_log_append_only", "audit_log_append_only_truncate"],
    ),
    (
        MAC_TABLE,
        ["audit_mac_append_only", "audit_mac_append_only_truncate"],
    ),
];

/// Where the authentication codes of entries are kept.
pub const MAC_TABLE: &str = "dbops.audit_mac";

/// The secret that authenticates audit entries (an HMAC-SHA-256 key). It is
/// given to the runner and never sent to the database; its [`Debug`] shows
/// only its id.
#[derive(Clone)]
pub struct AuditKey {
    secret: Vec<u8>,
    id: String,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey(id {}, <redacted>)", self.id)
    }
}

impl AuditKey {
    /// The shortest key accepted, in bytes.
    pub const MIN_BYTES: usize = 32;

    /// A key from its secret bytes.
    ///
    /// # Errors
    /// [`Error::Config`] when it is shorter than [`AuditKey::MIN_BYTES`].
    pub fn new(secret: &[u8]) -> Result<AuditKey, Error> {
        if secret.len() < AuditKey::MIN_BYTES {
            return Err(Error::Config {
                origin: "audit key".into(),
                message: format!(
                    "is {} bytes; it must be at least {} random bytes",
                    secret.len(),
                    AuditKey::MIN_BYTES
                ),
            });
        }
        let digest = Sha256::new()
            .chain_update(b"dbops audit key id\n")
            .chain_update(secret)
            .finalize();
        Ok(AuditKey {
            secret: secret.to_vec(),
            id: hex::encode(&digest[..8]),
        })
    }

    /// A public name of the key (a hash of it), stored with each code so that
    /// entries made with another key are told apart.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The code of the entry `id` of `chain` whose hash is `entry_hash`.
    fn mac(&self, chain: &str, id: i64, entry_hash: &[u8]) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(format!("dbops audit entry v1\n{chain}\n{id}\n").as_bytes());
        mac.update(entry_hash);
        mac.finalize().into_bytes().into()
    }

    /// The statement storing the code of `head`, with literal values (none
    /// of them secret), to send before the `COMMIT` of its transaction.
    pub(crate) fn mac_statement(&self, head: &Head) -> String {
        format!(
            "INSERT INTO {MAC_TABLE} (chain, entry_id, key_id, mac) VALUES ('{}', {}, '{}', '\\x{}');\n",
            head.chain,
            head.id,
            self.id,
            hex::encode(self.mac(head.chain, head.id, &head.hash))
        )
    }
}

/// The newest entry of a chain: what operators publish and keep, as `SEQ:HASH`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    /// The chain's table.
    pub chain: &'static str,
    /// The entry's id.
    pub id: i64,
    /// The entry's hash.
    #[serde(serialize_with = "as_hex")]
    pub hash: Vec<u8>,
}

fn as_hex<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex::encode(bytes))
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.id, hex::encode(&self.hash))
    }
}

impl Head {
    /// Publishes the head outside the database: the `audit.head` field of the
    /// current span (the migration's, exported over OTLP) and a log line.
    pub(crate) fn publish(&self) {
        let head = self.to_string();
        tracing::Span::current().record("audit.head", head.as_str());
        tracing::info!(
            audit.chain = self.chain,
            audit.head = head.as_str(),
            "audit head {head}"
        );
    }
}

/// A head as published, `SEQ:HASH`, to check with [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedHead {
    /// The entry's id.
    pub id: i64,
    /// The entry's hash.
    pub hash: Vec<u8>,
}

impl std::str::FromStr for PublishedHead {
    type Err = String;

    /// Parses `SEQ:HASH` (the hash in 64 hex digits).
    fn from_str(text: &str) -> Result<PublishedHead, String> {
        let bad =
            || format!("{text:?} is not a published head SEQ:HASH (an entry id and 64 hex digits)");
        let (id, hash) = text.trim().split_once(':').ok_or_else(bad)?;
        let id = id.parse::<i64>().map_err(|_| bad())?;
        let hash = hex::decode(hash).map_err(|_| bad())?;
        if hash.len() != 32 {
            return Err(bad());
        }
        Ok(PublishedHead { id, hash })
    }
}

impl PublishedHead {
    /// Every distinct `SEQ:HASH` in `text` (a file of heads, or log lines
    /// carrying `audit.head=SEQ:HASH`), in order of first appearance.
    pub fn find_all(text: &str) -> Vec<PublishedHead> {
        let mut heads: Vec<PublishedHead> = Vec::new();
        let words = text.split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'));
        for word in words {
            let Some(start) = word.find(|c: char| c.is_ascii_digit()) else {
                continue;
            };
            if let Ok(head) = word[start..].parse::<PublishedHead>()
                && !heads.contains(&head)
            {
                heads.push(head);
            }
        }
        heads
    }
}

/// The text an entry's hash covers, as a SQL expression over the row's
/// columns: an entry's `entry_hash` is
/// `sha256(coalesce(prev_hash, ''::bytea) || HASHED_TEXT)`.
pub const HASHED_TEXT: &str = "convert_to(concat_ws(E'\\n', id::text, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), actor, action, target_type, coalesce(target_id, ''), coalesce(organization_id::text, ''), metadata::text), 'UTF8')";

/// One entry to record.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// Who acted.
    pub actor: String,
    /// What was done, such as `migration.apply`.
    pub action: String,
    /// The kind of object, such as `migration`.
    pub target_type: String,
    /// Which object, such as a version.
    pub target_id: Option<String>,
    /// Details: target, version, checksum, duration, row counts, outcome.
    pub metadata: serde_json::Value,
}

/// Records an entry at the end of its table's chain, authenticated with
/// `key` when there is one, and publishes the new head.
///
/// Uses the platform's `audit_log` when it exists (with its hash columns),
/// otherwise dbops's own table, so that no entry is lost on a database that
/// does not have the platform schema (yet).
pub async fn record(
    client: &Client,
    entry: &AuditEntry,
    key: Option<&AuditKey>,
) -> Result<Head, Error> {
    client
        .batch_execute("BEGIN")
        .await
        .map_err(Error::db("starting an audit transaction"))?;
    match record_in_transaction(client, entry, key).await {
        Ok(head) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(Error::db("committing an audit entry"))?;
            head.publish();
            Ok(head)
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// The statement that readies a transaction for an entry: it takes the
/// chain's lock and tells where the chain lives. The migration engine appends
/// it to a migration's own query, so that it costs no round trip of its own;
/// [`chain_table`] reads its row.
///
/// The lock (0x6462_6f70_735f_6175, "dbops_au") serializes the writers of
/// the chain, so that two entries never share a predecessor. It is taken by
/// its own statement: a statement's snapshot is taken when it starts, so a
/// lock taken inside the INSERT would not let it see an entry committed
/// while it waited.
pub(crate) const PREPARE: &str = "SELECT pg_advisory_xact_lock(7233466480273088885)::text,
        EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('public.audit_log') AND attname = 'entry_hash' AND NOT attisdropped),
        (to_regclass('dbops.audit_log') IS NOT NULL AND to_regclass('dbops.audit_head') IS NOT NULL AND to_regclass('dbops.audit_mac') IS NOT NULL)";

/// The chain table named by the row of [`PREPARE`], the last row of
/// `messages`. (Its third column tells whether dbops's own audit tables
/// exist; a migration run creates them before its first step.)
pub(crate) fn chain_table(messages: &[tokio_postgres::SimpleQueryMessage]) -> &'static str {
    let platform = messages.iter().rev().find_map(|message| match message {
        tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(1) == Some("t")),
        _ => None,
    });
    if platform == Some(true) {
        PLATFORM_TABLE
    } else {
        FALLBACK_TABLE
    }
}

/// Records an entry inside the caller's open transaction, so that the entry
/// (and its code, with `key`) commits or not together with the change it
/// describes. dbops's own audit tables are created when missing. The caller
/// publishes the returned head once it commits ([`Head`]).
pub async fn record_in_transaction(
    client: &Client,
    entry: &AuditEntry,
    key: Option<&AuditKey>,
) -> Result<Head, Error> {
    let messages = client
        .simple_query(PREPARE)
        .await
        .map_err(Error::db("locking the audit chain"))?;
    let table = chain_table(&messages);
    let ready = messages.iter().rev().any(|message| {
        matches!(message, tokio_postgres::SimpleQueryMessage::Row(row) if row.get(2) == Some("t"))
    });
    if !ready {
        client
            .batch_execute(FALLBACK_DDL)
            .await
            .map_err(Error::db("creating dbops's audit tables"))?;
    }
    let head = insert(client, insert_sql(table).as_str(), table, entry)
        .await
        .map_err(|e| Error::database(format!("writing an audit entry to {table}"), e))?;
    if let Some(key) = key {
        client
            .batch_execute(&key.mac_statement(&head))
            .await
            .map_err(Error::db(format!("authenticating audit entry {head}")))?;
    }
    Ok(head)
}

/// Writes `entry` into `table` with `statement`, which is [`insert_sql`]
/// (as text, or prepared once per connection by the migration engine).
/// Returns the chain's new head: the entry.
pub(crate) async fn insert<T>(
    client: &Client,
    statement: &T,
    table: &'static str,
    entry: &AuditEntry,
) -> Result<Head, tokio_postgres::Error>
where
    T: ?Sized + tokio_postgres::ToStatement,
{
    let row = client
        .query_one(
            statement,
            &[
                &entry.actor,
                &entry.action,
                &entry.target_type,
                &entry.target_id,
                &entry.metadata,
                &table,
            ],
        )
        .await?;
    Ok(Head {
        chain: table,
        id: row.get(0),
        hash: row.get(1),
    })
}

/// The INSERT of a complete, hashed entry into `table`, in one statement:
/// the tables are append-only. The id is drawn first so that the hash, which
/// covers it, can be computed in the same INSERT; OVERRIDING SYSTEM VALUE
/// stores that very id. Parameters: actor, action, target type, target id,
/// metadata, and the chain's name (`table`).
pub(crate) fn insert_sql(table: &'static str) -> String {
    format!(
        "WITH prev AS (SELECT (SELECT entry_hash FROM {table} WHERE entry_hash IS NOT NULL ORDER BY id DESC LIMIT 1) AS hash),
              new AS (SELECT nextval(pg_get_serial_sequence('{table}', 'id')) AS id, now() AS occurred_at,
                             $1::text AS actor, $2::text AS action, $3::text AS target_type, $4::text AS target_id,
                             NULL::bigint AS organization_id, $5::jsonb AS metadata, prev.hash AS prev_hash FROM prev),
              inserted AS (
                 INSERT INTO {table} (id, occurred_at, actor, action, target_type, target_id, organization_id, metadata, prev_hash, entry_hash)
                 OVERRIDING SYSTEM VALUE
                 SELECT id, occurred_at, actor, action, target_type, target_id, organization_id, metadata, prev_hash,
                        sha256(coalesce(prev_hash, ''::bytea) || {HASHED_TEXT})
                 FROM new RETURNING id, entry_hash)
         INSERT INTO dbops.audit_head (chain, last_id, last_hash) SELECT $6, id, entry_hash FROM inserted
         ON CONFLICT (chain) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash
         RETURNING last_id, last_hash"
    )
}

/// One problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The table.
    pub table: String,
    /// The entry at fault (or the first entry after a gap); `None` for a
    /// problem of the table itself, such as a disabled trigger.
    pub id: Option<i64>,
    /// What is wrong, in words.
    pub problem: String,
}

/// What [`verify`] checks beyond the chains themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    /// The key entries were authenticated with: their codes are checked.
    pub key: Option<&'a AuditKey>,
    /// Heads published earlier: each must still be in its chain, with its hash.
    pub published: &'a [PublishedHead],
}

/// The result of checking every chain.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    /// Chained entries checked, across tables.
    pub entries: u64,
    /// Entries whose code was checked with the key and matched.
    pub authenticated: u64,
    /// Entries without a code, written before the key was in use (or
    /// checked without the key: all entries are then unauthenticated).
    pub unauthenticated: u64,
    /// Entries with a code of another key, before the first entry of this
    /// one (from before a key rotation); not checked.
    pub other_key: u64,
    /// Published heads found in their chain with their hash.
    pub heads_confirmed: u64,
    /// The newest entry of each chain, to publish.
    pub heads: Vec<Head>,
    /// Everything that does not add up; empty when the chains are intact.
    pub breaks: Vec<Break>,
}

/// Recomputes every chain and reports edited, deleted, reordered, unhashed,
/// forged or rolled-back entries and disabled append-only triggers; with a
/// key, checks every entry's code; with published heads, checks that each is
/// still in its chain.
pub async fn verify(client: &Client, options: VerifyOptions<'_>) -> Result<Verification, Error> {
    let mut verification = Verification {
        breaks: trigger_problems(client).await?,
        ..Verification::default()
    };
    let macs_exist = exists(client, MAC_TABLE).await?;
    for table in [PLATFORM_TABLE, FALLBACK_TABLE] {
        if !exists(client, table).await? {
            continue;
        }
        let mut found = Vec::new();
        let broken = |id: Option<i64>, problem: String| Break {
            table: table.into(),
            id,
            problem,
        };
        let unhashed = client
            .query(
                &format!("SELECT id FROM {table} WHERE entry_hash IS NULL ORDER BY id"),
                &[],
            )
            .await
            .map_err(Error::db(format!("reading {table}")))?;
        for row in unhashed {
            found.push(broken(
                Some(row.get(0)),
                "has no hash: it was written outside the chain, or its hash was removed".into(),
            ));
        }
        let codes = if macs_exist {
            format!("LEFT JOIN {MAC_TABLE} m ON m.chain = '{table}' AND m.entry_id = c.id")
        } else {
            "LEFT JOIN (SELECT NULL::text AS key_id, NULL::bytea AS mac) m ON false".to_string()
        };
        let rows = client
            .query(
                &format!(
                    "SELECT c.id, c.entry_hash, c.hash_ok, c.link_ok, m.key_id, m.mac
                     FROM (SELECT id, entry_hash,
                                  entry_hash = sha256(coalesce(prev_hash, ''::bytea) || {HASHED_TEXT}) AS hash_ok,
                                  prev_hash IS NOT DISTINCT FROM lag(entry_hash) OVER (ORDER BY id) AS link_ok
                           FROM {table} WHERE entry_hash IS NOT NULL) c
                     {codes}
                     ORDER BY c.id"
                ),
                &[],
            )
            .await
            .map_err(Error::db(format!("reading {table}")))?;
        // Codes come in eras: none (before any key), other keys (before a
        // rotation), this key. Once an era starts, an entry of an earlier
        // one is a forgery or a rewrite.
        let mut coded_before = None;
        let mut keyed_before = None;
        for row in &rows {
            let id: i64 = row.get(0);
            let hash: Vec<u8> = row.get(1);
            if !row.get::<_, bool>(2) {
                found.push(broken(
                    Some(id),
                    "content does not match its hash: the entry was edited".into(),
                ));
            }
            if !row.get::<_, bool>(3) {
                found.push(broken(
                    Some(id),
                    "previous-hash link is broken: an entry before it was deleted or edited".into(),
                ));
            }
            let key_id: Option<String> = row.get(4);
            let code: Option<Vec<u8>> = row.get(5);
            match (key_id, code, options.key) {
                (None, _, _) | (_, None, _) => {
                    if let Some(last) = coded_before {
                        found.push(broken(Some(id), format!("has no authentication code, though entry {last} before it has one: it was written or rewritten without the key")));
                    } else {
                        verification.unauthenticated += 1;
                    }
                }
                (Some(_), Some(_), None) => {
                    coded_before = Some(id);
                    verification.unauthenticated += 1;
                }
                (Some(key_id), Some(code), Some(key)) if key_id == key.id() => {
                    coded_before = Some(id);
                    keyed_before = Some(id);
                    if key.mac(table, id, &hash).as_slice() == code.as_slice() {
                        verification.authenticated += 1;
                    } else {
                        found.push(broken(Some(id), format!("authentication code does not match (key {key_id}): the entry, its hash or its code was rewritten without the key")));
                    }
                }
                (Some(key_id), Some(_), Some(_)) => {
                    coded_before = Some(id);
                    if let Some(last) = keyed_before {
                        found.push(broken(Some(id), format!("authenticated by another key ({key_id}) after entry {last} of this key: forged")));
                    } else {
                        verification.other_key += 1;
                    }
                }
            }
        }
        if macs_exist {
            let orphans = client
                .query(
                    &format!("SELECT entry_id FROM {MAC_TABLE} m WHERE chain = $1 AND NOT EXISTS (SELECT FROM {table} c WHERE c.id = m.entry_id AND c.entry_hash IS NOT NULL) ORDER BY entry_id"),
                    &[&table],
                )
                .await
                .map_err(Error::db(format!("reading {MAC_TABLE}")))?;
            for row in orphans {
                found.push(broken(
                    Some(row.get(0)),
                    "has an authentication code but no chained entry: the entry was deleted".into(),
                ));
            }
        }
        verification.entries += rows.len() as u64;
        let last = rows.last().map(|row| Head {
            chain: table,
            id: row.get(0),
            hash: row.get(1),
        });
        let head_row = if exists(client, "dbops.audit_head").await? {
            client
                .query_opt(
                    "SELECT last_id, last_hash FROM dbops.audit_head WHERE chain = $1",
                    &[&table],
                )
                .await
                .map_err(Error::db("reading dbops.audit_head"))?
        } else {
            None
        };
        match (&head_row, &last) {
            (Some(head), Some(last))
                if head.get::<_, i64>(0) == last.id && head.get::<_, Vec<u8>>(1) == last.hash => {}
            (Some(head), Some(last)) => found.push(broken(Some(last.id), format!("the newest entry should be {}: entries at the end of the chain were deleted or added outside it", head.get::<_, i64>(0)))),
            (Some(head), None) => found.push(broken(Some(head.get(0)), "every chained entry is gone".into())),
            (None, Some(last)) => found.push(broken(Some(last.id), "the chain has no head row in dbops.audit_head: it was deleted".into())),
            (None, None) => {}
        }
        verification.heads.extend(last);
        verification.breaks.extend(found);
    }
    for published in options.published {
        check_published(client, published, &mut verification).await?;
    }
    Ok(verification)
}

/// Checks that a published head is still in a chain with its hash.
async fn check_published(
    client: &Client,
    published: &PublishedHead,
    verification: &mut Verification,
) -> Result<(), Error> {
    let shown = format!("{}:{}", published.id, hex::encode(&published.hash));
    let mut now = None;
    let mut searched = Vec::new();
    for table in [PLATFORM_TABLE, FALLBACK_TABLE] {
        if !exists(client, table).await? {
            continue;
        }
        searched.push(table);
        let row = client
            .query_opt(
                &format!("SELECT entry_hash FROM {table} WHERE id = $1"),
                &[&published.id],
            )
            .await
            .map_err(Error::db(format!("reading {table}")))?;
        if let Some(row) = row {
            let hash: Option<Vec<u8>> = row.get(0);
            if hash.as_deref() == Some(published.hash.as_slice()) {
                verification.heads_confirmed += 1;
                return Ok(());
            }
            now = Some((table, hash));
        }
    }
    let (table, problem) = match now {
        Some((table, hash)) => (
            table.to_string(),
            format!(
                "published head {shown} now has hash {}: the chain up to it was rewritten and recomputed",
                hash.map_or_else(|| "NULL".to_string(), hex::encode)
            ),
        ),
        None => (
            searched.join(" and "),
            format!(
                "published head {shown} is gone: the chain was truncated, rolled back past it, or recreated"
            ),
        ),
    };
    verification.breaks.push(Break {
        table,
        id: Some(published.id),
        problem,
    });
    Ok(())
}

/// The newest entry of each chain, read from the chains themselves.
pub async fn heads(client: &Client) -> Result<Vec<Head>, Error> {
    let mut heads = Vec::new();
    for table in [PLATFORM_TABLE, FALLBACK_TABLE] {
        if !exists(client, table).await? {
            continue;
        }
        let row = client
            .query_opt(
                &format!("SELECT id, entry_hash FROM {table} WHERE entry_hash IS NOT NULL ORDER BY id DESC LIMIT 1"),
                &[],
            )
            .await
            .map_err(Error::db(format!("reading {table}")))?;
        heads.extend(row.map(|row| Head {
            chain: table,
            id: row.get(0),
            hash: row.get(1),
        }));
    }
    Ok(heads)
}

/// Append-only triggers of the audit tables that are missing, disabled
/// (`ALTER TABLE ... DISABLE TRIGGER`, `pg_trigger.tgenabled = 'D'`) or set
/// to fire only on replicas (`'R'`), for the tables that exist.
pub async fn trigger_problems(client: &Client) -> Result<Vec<Break>, Error> {
    let mut problems = Vec::new();
    for (table, names) in APPEND_ONLY_TRIGGERS {
        if !exists(client, table).await? {
            continue;
        }
        let rows = client
            .query(
                "SELECT tgname::text, tgenabled::text FROM pg_trigger WHERE tgrelid = to_regclass($1) AND NOT tgisinternal",
                &[&table],
            )
            .await
            .map_err(Error::db(format!("reading the triggers of {table}")))?;
        for name in names {
            let state = rows
                .iter()
                .find(|row| row.get::<_, &str>(0) == name)
                .map(|row| row.get::<_, String>(1));
            let problem = match state.as_deref() {
                None => format!(
                    "append-only trigger {name} is missing: entries can be changed or deleted"
                ),
                Some("D") => format!(
                    "append-only trigger {name} is disabled: entries can be changed or deleted"
                ),
                Some("R") => format!(
                    "append-only trigger {name} fires only in replica sessions: entries can be changed or deleted"
                ),
                Some(_) => continue,
            };
            problems.push(Break {
                table: table.into(),
                id: None,
                problem,
            });
        }
    }
    Ok(problems)
}

async fn exists(client: &Client, table: &str) -> Result<bool, Error> {
    Ok(client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(Error::db("looking for audit tables"))?
        .get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preparing_an_entry_takes_the_chain_lock() {
        let lock = format!("pg_advisory_xact_lock({CHAIN_LOCK})");
        assert!(PREPARE.contains(&lock), "{PREPARE}");
        assert!(PREPARE.contains(FALLBACK_READY), "{PREPARE}");
    }

    #[test]
    fn published_heads_are_read_from_text_and_log_lines() {
        let hash = "ab".repeat(32);
        let heads = PublishedHead::find_all(&format!(
            "# heads\n12:{hash}\n12:{hash}\n2026-01-01T00:00:00Z INFO audit head audit.chain=dbops.audit_log audit.head=13:{hash}\n{{\"audit.head\":\"14:{hash}\"}}\n15:abc\n"
        ));
        let ids: Vec<i64> = heads.iter().map(|h| h.id).collect();
        assert_eq!(ids, [12, 13, 14]);
        assert!(heads.iter().all(|h| h.hash == vec![0xab; 32]));
        let err = "12:xyz".parse::<PublishedHead>().unwrap_err();
        assert!(err.contains("is not a published head SEQ:HASH"), "{err}");
    }

    #[test]
    fn keys_are_long_named_by_a_hash_and_never_shown() {
        let err = AuditKey::new(b"short").unwrap_err().to_string();
        assert!(err.contains("at least 32 random bytes"), "{err}");
        let key = AuditKey::new(&[1; 32]).unwrap();
        let other = AuditKey::new(&[2; 32]).unwrap();
        assert_ne!(key.id(), other.id());
        assert_eq!(key.id().len(), 16);
        assert_eq!(
            format!("{key:?}"),
            format!("AuditKey(id {}, <redacted>)", key.id())
        );
        let head = Head {
            chain: FALLBACK_TABLE,
            id: 7,
            hash: vec![0; 32],
        };
        assert_ne!(
            key.mac(FALLBACK_TABLE, 7, &head.hash),
            other.mac(FALLBACK_TABLE, 7, &head.hash)
        );
        assert_ne!(
            key.mac(FALLBACK_TABLE, 7, &head.hash),
            key.mac(PLATFORM_TABLE, 7, &head.hash)
        );
        assert!(key.mac_statement(&head).starts_with(&format!("INSERT INTO dbops.audit_mac (chain, entry_id, key_id, mac) VALUES ('dbops.audit_log', 7, '{}', '\\x", key.id())));
    }
}
