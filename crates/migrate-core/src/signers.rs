//! Who may sign: an allowed-signers file in ssh-keygen's format, and SSH
//! signatures (`ssh-keygen -Y sign`, the armored SSHSIG format git uses for
//! signed commits) checked against it.
//!
//! A line of the file is `principals [options] key-type base64-key [comment]`:
//! comma-separated principal names, then optionally `namespaces="a,b"`, then
//! an OpenSSH public key. Only Ed25519 keys are accepted. Patterns in
//! principals, `cert-authority`, `valid-after` and `valid-before` are refused
//! with the line named rather than half-understood: a check that silently
//! ignored an expiry would accept an expired key.

use std::path::Path;

use serde::Serialize;
use ssh_key::{Algorithm, HashAlg, PublicKey, SshSig};

use crate::error::Error;

/// The namespace (`ssh-keygen -n`) of an approval of a plan.
pub const APPROVAL_NAMESPACE: &str = "dbops-approval";
/// The namespace (`ssh-keygen -n`) of the actor's own signature over the plan they run.
pub const RUN_NAMESPACE: &str = "dbops-run";

/// The keys allowed to sign, with their principals.
#[derive(Debug, Clone)]
pub struct AllowedSigners {
    origin: String,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    principals: Vec<String>,
    namespaces: Option<Vec<String>>,
    key: PublicKey,
}

/// Who made a signature that verified: the key's fingerprint and every
/// principal the allowed-signers file lists it under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signer {
    /// The principals of the key, sorted.
    pub principals: Vec<String>,
    /// The key's SHA-256 fingerprint, as `ssh-keygen -l` prints it (`SHA256:...`).
    pub fingerprint: String,
}

impl Signer {
    /// Whether two signers are one person: the same key, or a principal in common.
    pub fn same_person(&self, other: &Signer) -> bool {
        self.fingerprint == other.fingerprint
            || self.principals.iter().any(|p| other.principals.contains(p))
    }

    /// The principals, comma-separated.
    pub fn names(&self) -> String {
        self.principals.join(",")
    }
}

impl AllowedSigners {
    /// Reads an allowed-signers file.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file (and line) when it cannot be read
    /// or a line is not understood.
    pub fn load(path: &Path) -> Result<AllowedSigners, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            origin: path.display().to_string(),
            message: format!("cannot read the allowed signers: {e}"),
        })?;
        AllowedSigners::parse(&text, &path.display().to_string())
    }

    /// Parses allowed-signers text; `origin` names it in errors.
    ///
    /// # Errors
    /// [`Error::Config`] naming `origin` and the line of the first entry
    /// that is not understood.
    pub fn parse(text: &str, origin: &str) -> Result<AllowedSigners, Error> {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            entries.push(parse_line(line).map_err(|message| Error::Config {
                origin: format!("{origin}:{}", index + 1),
                message,
            })?);
        }
        Ok(AllowedSigners {
            origin: origin.to_string(),
            entries,
        })
    }

    /// Where the list was read from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Checks an armored SSH signature over `message` in `namespace`.
    ///
    /// # Errors
    /// Why the signature does not count, in words: not a signature, a key
    /// not in the list (or not allowed in this namespace), another
    /// namespace, or a signature over other content.
    pub fn verify(
        &self,
        signature: &str,
        namespace: &str,
        message: &[u8],
    ) -> Result<Signer, String> {
        let signature = SshSig::from_pem(signature.trim()).map_err(|_| {
            "not an SSH signature (the armored output of `ssh-keygen -Y sign`, -----BEGIN SSH SIGNATURE-----)".to_string()
        })?;
        let fingerprint = signature
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string();
        let listed: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|entry| entry.key.key_data() == signature.public_key())
            .collect();
        let Some(first) = listed.first() else {
            return Err(format!(
                "signed by key {fingerprint}, which is not in {}",
                self.origin
            ));
        };
        if signature.namespace() != namespace {
            return Err(format!(
                "key {fingerprint} signed in namespace {:?}, not {namespace:?}",
                signature.namespace()
            ));
        }
        let mut principals: Vec<String> = listed
            .iter()
            .filter(|entry| {
                entry
                    .namespaces
                    .as_ref()
                    .is_none_or(|allowed| allowed.iter().any(|n| n == namespace))
            })
            .flat_map(|entry| entry.principals.iter().cloned())
            .collect();
        if principals.is_empty() {
            return Err(format!(
                "key {fingerprint} is not allowed to sign in namespace {namespace:?} by {}",
                self.origin
            ));
        }
        first
            .key
            .verify(namespace, message, &signature)
            .map_err(|_| {
                format!("the signature by key {fingerprint} is not over this plan (its target, environment, direction and hash)")
            })?;
        principals.sort();
        principals.dedup();
        Ok(Signer {
            principals,
            fingerprint,
        })
    }
}

/// One entry: principals, options, key.
fn parse_line(line: &str) -> Result<Entry, String> {
    let (principals, rest) = split_field(line);
    let principals: Vec<String> = principals.split(',').map(str::to_string).collect();
    if principals.iter().any(|p| p.is_empty()) {
        return Err("an empty principal name".into());
    }
    if principals
        .iter()
        .any(|p| p.contains(['*', '?']) || p.starts_with('!'))
    {
        return Err(
            "principal patterns (*, ?, !) are not supported: list each principal by name".into(),
        );
    }
    let rest = rest.trim_start();
    let (namespaces, key) = if is_key_type(rest) {
        (None, rest)
    } else {
        let (options, key) = split_field(rest);
        (parse_options(options)?, key.trim_start())
    };
    let (key_type, _) = split_field(key);
    if key_type != Algorithm::Ed25519.as_str() {
        return Err(format!(
            "a {key_type} key: only Ed25519 keys are accepted (ssh-keygen -t ed25519)"
        ));
    }
    let key =
        PublicKey::from_openssh(key).map_err(|e| format!("not an OpenSSH public key: {e}"))?;
    Ok(Entry {
        principals,
        namespaces,
        key,
    })
}

/// The first whitespace-separated field (double quotes protect spaces) and the rest.
fn split_field(text: &str) -> (&str, &str) {
    let mut quoted = false;
    for (at, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return (&text[..at], &text[at..]),
            _ => {}
        }
    }
    (text, "")
}

fn is_key_type(text: &str) -> bool {
    ["ssh-", "ecdsa-", "sk-"]
        .iter()
        .any(|prefix| text.starts_with(prefix))
}

/// The options field: only `namespaces="..."` is understood.
fn parse_options(options: &str) -> Result<Option<Vec<String>>, String> {
    if !options.matches('"').count().is_multiple_of(2) {
        return Err(format!("unbalanced quotes in options {options:?}"));
    }
    let mut namespaces = None;
    // A comma inside the quotes of namespaces="a,b" does not end the option.
    let mut quoted = false;
    let list = options.split(|c: char| {
        if c == '"' {
            quoted = !quoted;
        }
        c == ',' && !quoted
    });
    for option in list {
        let (name, value) = option.split_once('=').unwrap_or((option, ""));
        match name.to_ascii_lowercase().as_str() {
            "namespaces" => {
                let value = value.trim_matches('"');
                namespaces = Some(value.split(',').map(|n| n.trim().to_string()).collect());
            }
            "cert-authority" | "valid-after" | "valid-before" => {
                return Err(format!(
                    "option {name} is not supported: list each approver's own key, and remove a key from the file when it expires"
                ));
            }
            _ => return Err(format!("unknown option {name:?}")),
        }
    }
    Ok(namespaces)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ed25519 public key made up for parsing (no private half exists).
    fn key() -> String {
        PublicKey::from(ssh_key::public::Ed25519PublicKey([7; 32]))
            .to_openssh()
            .unwrap()
    }

    fn parse_error(line: &str) -> String {
        AllowedSigners::parse(&format!("# people\n\n{line}\n"), "signers")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn entries_are_read_and_the_unsupported_refused_by_line() {
        let key = key();
        let signers = AllowedSigners::parse(
            &format!(
                "ann,ann@example.com {key} laptop\nbob namespaces=\"dbops-approval,git\" {key}\n"
            ),
            "signers",
        )
        .unwrap();
        assert_eq!(signers.entries.len(), 2);
        assert_eq!(signers.entries[0].principals, ["ann", "ann@example.com"]);
        assert_eq!(
            signers.entries[1].namespaces.as_deref(),
            Some(&["dbops-approval".to_string(), "git".to_string()][..])
        );
        for (line, expected) in [
            (format!("a* {key}"), "signers:3: principal patterns"),
            (
                format!("ann cert-authority {key}"),
                "signers:3: option cert-authority is not supported",
            ),
            (
                format!("ann valid-before=\"20300101\" {key}"),
                "signers:3: option valid-before",
            ),
            (
                format!("ann color=red {key}"),
                "signers:3: unknown option \"color\"",
            ),
            (
                "ann ssh-ed25519 AAAA".to_string(),
                "signers:3: not an OpenSSH public key",
            ),
            (format!(",ann {key}"), "signers:3: an empty principal name"),
            (
                format!("ann namespaces=\"git {key}"),
                "signers:3: unbalanced quotes",
            ),
        ] {
            let err = parse_error(&line);
            assert!(err.starts_with(expected), "{line}: {err}");
        }
    }

    #[test]
    fn garbage_is_not_a_signature() {
        let key = key();
        let signers = AllowedSigners::parse(&format!("ann {key}\n"), "signers").unwrap();
        let err = signers.verify("bob", APPROVAL_NAMESPACE, b"x").unwrap_err();
        assert!(err.starts_with("not an SSH signature"), "{err}");
    }

    #[test]
    fn one_person_is_one_key_or_one_principal() {
        let signer = |names: &[&str], fingerprint: &str| Signer {
            principals: names.iter().map(|n| n.to_string()).collect(),
            fingerprint: fingerprint.into(),
        };
        assert!(signer(&["ann"], "A").same_person(&signer(&["bob"], "A")));
        assert!(signer(&["ann", "bob"], "A").same_person(&signer(&["bob"], "B")));
        assert!(!signer(&["ann"], "A").same_person(&signer(&["bob"], "B")));
    }
}
