//! Change evidence: what an `apply` or a `rotate` did, as an in-toto
//! Statement v1 (`docs/operations.md` §5) whose subjects are the documents
//! the change concerns (the declaration, the provider's settings before
//! and after, the consumer's records), each by its SHA-256, and whose
//! predicate holds the plan, the scopes, credential fingerprints (never
//! values), the verify results, who ran it and when. Signed, when asked,
//! in a DSSE envelope with a local Ed25519 key (the `dsse` crate does the
//! envelope and its pre-authentication encoding).
//!
//! The statement and the subject documents are bytes; the front end writes
//! them (the evidence file and its subjects directory beside it).

use serde::Serialize;
use serde_json::{Value, json};
use sha2::Digest;

use crate::Error;

/// The Statement's `_type`.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The DSSE payload type of an in-toto Statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// connapp's predicate type.
pub const PREDICATE_TYPE: &str = "https://connapp.dev/evidence/change/v1";
/// The largest evidence file `verify` reads.
pub const MAX_EVIDENCE_BYTES: u64 = 8 << 20;

/// A document the change concerns, by name (a file name in the subjects
/// directory).
#[derive(Clone, Debug)]
pub struct Subject {
    /// Its name, a plain file name.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl Subject {
    /// A subject from a JSON value, pretty-printed.
    pub fn json(name: &str, v: &Value) -> Subject {
        let mut bytes = serde_json::to_vec_pretty(v).unwrap_or_default();
        bytes.push(b'\n');
        Subject {
            name: name.to_string(),
            bytes,
        }
    }
}

/// Lower-case hex of the SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The in-toto Statement v1 over `subjects` with `predicate`.
pub fn statement(subjects: &[Subject], predicate: Value) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects
            .iter()
            .map(|s| json!({"name": s.name, "digest": {"sha256": sha256_hex(&s.bytes)}}))
            .collect::<Vec<_>>(),
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    })
}

/// An Ed25519 key pair for signing evidence: the secret seed and the public key.
pub struct KeyPair {
    /// The 32-byte secret seed.
    pub secret: connapp_plugin_api::zeroize::Zeroizing<Vec<u8>>,
    /// The 32-byte public key.
    pub public: Vec<u8>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &hex(&self.public))
            .finish_non_exhaustive()
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex, `None` when it is not hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn signer(secret: &[u8]) -> Result<dsse::Ed25519Signer, Error> {
    dsse::Ed25519Signer::from_bytes(secret)
        .map_err(|e| Error::invalid(format!("the signing key is not an Ed25519 key: {e}")))
}

/// The key's id in envelopes: `ed25519:` and the first 16 hex digits of the
/// SHA-256 of the public key.
pub fn key_id(public: &[u8]) -> String {
    format!("ed25519:{}", &sha256_hex(public)[..16])
}

/// A new key pair from the system's randomness.
pub fn keygen() -> Result<KeyPair, Error> {
    let secret = connapp_oauth::lifecycle::new_journal_key().map_err(Error::failure)?;
    let public = public_of(&secret)?;
    Ok(KeyPair { secret, public })
}

/// The public key of the secret seed `secret`.
pub fn public_of(secret: &[u8]) -> Result<Vec<u8>, Error> {
    let s = signer(secret)?;
    // The verifier's identity is `ed25519:` and the 32 public-key bytes.
    let id = dsse::Verifier::key_identity(&s.verifier()).unwrap_or_default();
    Ok(id.strip_prefix(b"ed25519:").unwrap_or(&id).to_vec())
}

/// The statement as the evidence file holds it: the bare statement, or a
/// DSSE envelope signed with `secret`.
pub fn seal(statement: &Value, secret: Option<&[u8]>) -> Result<Vec<u8>, Error> {
    let payload = serde_json::to_vec(statement).map_err(|e| Error::failure(format!("the statement: {e}")))?;
    let Some(secret) = secret else {
        let mut pretty = serde_json::to_vec_pretty(statement).unwrap_or(payload);
        pretty.push(b'\n');
        return Ok(pretty);
    };
    let public = public_of(secret)?;
    let s = signer(secret)?.with_key_id(key_id(&public));
    let env = dsse::sign(PAYLOAD_TYPE, &payload, &s).map_err(|e| Error::failure(format!("cannot sign: {e}")))?;
    let mut out = env
        .to_json()
        .map_err(|e| Error::failure(format!("the envelope: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

/// One subject's check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubjectCheck {
    /// The subject's name.
    pub name: String,
    /// `ok`, `mismatch` or `missing`.
    pub result: &'static str,
}

/// What [`check`] found.
#[derive(Clone, Debug, Serialize)]
pub struct Checked {
    /// Whether the file is a DSSE envelope.
    pub signed: bool,
    /// The signing key's id, when a signature verified.
    pub key_id: Option<String>,
    /// Every subject, in the statement's order.
    pub subjects: Vec<SubjectCheck>,
    /// The statement.
    #[serde(skip)]
    pub statement: Value,
}

impl Checked {
    /// Whether every subject matched (the signature, when there is one, was checked before).
    pub fn ok(&self) -> bool {
        self.subjects.iter().all(|s| s.result == "ok")
    }
}

fn shape_error(why: impl Into<String>) -> Error {
    Error::failure(format!("the evidence is not an in-toto Statement v1: {}", why.into()))
}

/// Checks an evidence file's bytes: a DSSE envelope's signature against
/// `public` (required when the file is signed), the statement's shape, and
/// every subject's digest against `read(name)` (`None`: missing).
pub fn check(bytes: &[u8], public: Option<&[u8]>, read: &dyn Fn(&str) -> Option<Vec<u8>>) -> Result<Checked, Error> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| shape_error(format!("not JSON ({e})")))?;
    let (signed, key, payload) = if v.get("payloadType").is_some() {
        let env = dsse::Envelope::from_json(bytes).map_err(|e| Error::failure(format!("the DSSE envelope: {e}")))?;
        let Some(public) = public else {
            return Err(Error::new(
                crate::ErrorKind::Usage,
                "the evidence is signed: give the public key to check it with",
            )
            .hint("pass --key FILE.pub (written by `connapp evidence keygen`)"));
        };
        let verifier = dsse::Ed25519Verifier::from_bytes(public)
            .map_err(|e| Error::invalid(format!("the public key: {e}")))?
            .with_key_id(key_id(public));
        let verified = dsse::verify(&env, &[&verifier], 1).map_err(|e| {
            Error::failure(format!(
                "the signature does not verify with key {}: {e}",
                key_id(public)
            ))
            .hint("the evidence was changed after it was signed, or signed with another key")
        })?;
        if verified.payload_type != PAYLOAD_TYPE {
            return Err(shape_error(format!("payload type {:?}", verified.payload_type)));
        }
        (true, Some(key_id(public)), verified.payload)
    } else {
        (false, None, bytes.to_vec())
    };
    let st: Value = serde_json::from_slice(&payload).map_err(|e| shape_error(format!("not JSON ({e})")))?;
    if st["_type"] != STATEMENT_TYPE {
        return Err(shape_error(format!("_type is {}", st["_type"])));
    }
    if !st["predicateType"].is_string() {
        return Err(shape_error("predicateType is missing"));
    }
    let subjects = st["subject"]
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| shape_error("subject is missing or empty"))?;
    let mut out = Vec::new();
    for s in subjects {
        let name = s["name"].as_str().ok_or_else(|| shape_error("a subject has no name"))?;
        let want = s["digest"]["sha256"]
            .as_str()
            .ok_or_else(|| shape_error(format!("subject {name} has no sha256 digest")))?;
        let result = match read(name) {
            None => "missing",
            Some(b) if sha256_hex(&b) == want => "ok",
            Some(_) => "mismatch",
        };
        out.push(SubjectCheck {
            name: name.to_string(),
            result,
        });
    }
    Ok(Checked {
        signed,
        key_id: key,
        subjects: out,
        statement: st,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_statement_verifies_and_one_flipped_byte_does_not() {
        let subjects = vec![Subject::json("a.json", &json!({"x": 1}))];
        let st = statement(&subjects, json!({"who": "me"}));
        let key = keygen().expect("key");
        let file = seal(&st, Some(&key.secret)).expect("sealed");
        let read = |n: &str| (n == "a.json").then(|| subjects[0].bytes.clone());
        let c = check(&file, Some(&key.public), &read).expect("verifies");
        assert!(c.signed && c.ok(), "{c:?}");
        assert_eq!(c.statement["predicate"]["who"], "me");
        // Another key refuses.
        let other = keygen().expect("key");
        assert!(check(&file, Some(&other.public), &read).is_err());
        // A flipped byte in the payload refuses.
        let mut env: Value = serde_json::from_slice(&file).expect("json");
        let p = env["payload"].as_str().expect("payload").to_string();
        let flipped = format!("{}{}", if p.starts_with('e') { "f" } else { "e" }, &p[1..]);
        env["payload"] = json!(flipped);
        assert!(check(env.to_string().as_bytes(), Some(&key.public), &read).is_err());
        // A changed subject is a mismatch, a gone one missing.
        let changed = |_: &str| Some(b"{}".to_vec());
        assert_eq!(
            check(&file, Some(&key.public), &changed).expect("checks").subjects[0].result,
            "mismatch"
        );
        assert_eq!(
            check(&file, Some(&key.public), &|_| None).expect("checks").subjects[0].result,
            "missing"
        );
    }

    #[test]
    fn an_unsigned_statement_is_checked_for_shape_and_digests() {
        let subjects = vec![Subject::json("a.json", &json!([1]))];
        let file = seal(&statement(&subjects, json!({})), None).expect("sealed");
        let c = check(&file, None, &|_| Some(subjects[0].bytes.clone())).expect("checks");
        assert!(!c.signed && c.ok());
        assert!(check(b"{\"_type\": \"x\"}", None, &|_| None).is_err());
        assert_eq!(unhex(&hex(b"\x00\xffab")), Some(b"\x00\xffab".to_vec()));
        assert_eq!(unhex("zz"), None);
    }
}
