//! A Client Secret rotation's state, for any front end and any platform:
//! the record that says which of the four steps (create, set, test,
//! finish; AWS Secrets Manager's `createSecret` … `finishSecret`) an app's
//! rotation has reached, the pending secret beside the current one, and
//! the sealed journal that keeps a new secret the provider has issued
//! until the store holds it.
//!
//! The record (`apps/<app>/rotation`) holds no secret: fingerprints, times
//! and what each step proved. The pending secret (`apps/<app>/client-secret-pending`)
//! is a store value like the others. A rotation in progress makes the next
//! one refuse; a finished or aborted one stays as the record of the last
//! rotation.
//!
//! What it is **not**: the provider's or the consumer's calls (their
//! clients do those, through [`crate::manage`]) or the order of the steps
//! (`connapp-clients::rotate` drives them).

use connapp_core::SecretKind;
use connapp_plugin_api::zeroize::Zeroizing;
use connapp_plugin_api::{Expected, StoreHandle};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::Error;
use crate::tokens::AppCtx;

/// Test builds only (`fault-injection`): kills the process at a named point
/// of a rotation, so a test can resume or abort from each step.
pub use connapp_oauth::lifecycle::fault;

/// The store key of an app's rotation record.
pub fn record_key(app: &str) -> String {
    format!("apps/{app}/rotation")
}

/// The store key of an app's pending Client Secret.
pub fn pending_key(app: &str) -> String {
    format!("apps/{app}/client-secret-pending")
}

/// The fingerprint of a secret the record keeps instead of its value:
/// `sha256:` and the first 16 hex digits of its SHA-256.
pub fn fingerprint(secret: &[u8]) -> String {
    let d = sha2::Sha256::digest(secret);
    let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Where a rotation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The rotation is recorded; the provider may or may not have issued
    /// the new secret yet (its answer is journaled before it is stored).
    Creating,
    /// The provider issued the new secret; it is stored as pending.
    Created,
    /// The consumer holds the new secret.
    Set,
    /// The new secret was proven (see [`Rotation::tested`]).
    Tested,
    /// The new secret is becoming current and the old one is being revoked.
    Finishing,
    /// Done: the new secret is current.
    Finished,
    /// Undone on connapp's side: the old secret is current everywhere again.
    Aborted,
}

impl Step {
    /// The word the CLI prints and `--json` carries.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Creating => "creating",
            Step::Created => "created",
            Step::Set => "set",
            Step::Tested => "tested",
            Step::Finishing => "finishing",
            Step::Finished => "finished",
            Step::Aborted => "aborted",
        }
    }

    /// Whether a rotation at this step is still open (the next one refuses).
    pub fn open(self) -> bool {
        !matches!(self, Step::Finished | Step::Aborted)
    }
}

/// What exercised the new secret, and what it showed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "result", content = "detail")]
pub enum Proof {
    /// The call was made with the new secret and succeeded.
    Ok(String),
    /// Nothing proved it (yet): why.
    Unproven(String),
    /// The provider or the consumer refused it: why.
    Failed(String),
    /// There is nothing to exercise (no consumer): why.
    NotApplicable(String),
}

impl Proof {
    /// Whether this proof exercised the secret successfully.
    pub fn ok(&self) -> bool {
        matches!(self, Proof::Ok(_))
    }
    /// The word for tables and JSON.
    pub fn word(&self) -> &'static str {
        match self {
            Proof::Ok(_) => "ok",
            Proof::Unproven(_) => "unproven",
            Proof::Failed(_) => "fail",
            Proof::NotApplicable(_) => "n/a",
        }
    }
    /// What it showed.
    pub fn detail(&self) -> &str {
        match self {
            Proof::Ok(d) | Proof::Unproven(d) | Proof::Failed(d) | Proof::NotApplicable(d) => d,
        }
    }
}

/// The test step's findings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tested {
    /// A token connapp obtained with the new secret.
    pub provider: Proof,
    /// The consumer's own use of it (its grant refreshed since the set step).
    pub consumer: Proof,
}

/// One line of a rotation's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When (unix seconds, the owner's clock).
    pub at: u64,
    /// The step reached.
    pub step: Step,
    /// What happened, in words (never a secret).
    pub note: String,
}

/// An app's rotation record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// The app.
    pub app: String,
    /// Where it stands.
    pub step: Step,
    /// When it started (unix seconds).
    pub started_at: u64,
    /// When the provider stops accepting the old secret (unix seconds):
    /// asked for at the create step, moved by an abort or a finish.
    pub revoke_old_at: u64,
    /// The provider's app was rotated by a person (no management app):
    /// connapp printed the steps and was handed the new secret.
    pub manual: bool,
    /// The old (current) secret's fingerprint.
    pub old_fingerprint: String,
    /// The new secret's fingerprint, once issued.
    pub new_fingerprint: Option<String>,
    /// When the consumer was handed the new secret.
    pub set_at: Option<u64>,
    /// The consumer's own record of its last token exchange right after
    /// the set step (its clock): a later one proves the new secret.
    pub consumer_exchange_at: Option<u64>,
    /// What the test step proved.
    pub tested: Option<Tested>,
    /// When the old secret was revoked, or is scheduled to be (`now` or a time), once finished.
    pub old_revoked: Option<String>,
    /// Who ran it (`user@host pid`).
    pub by: String,
    /// Every step reached, in order.
    pub history: Vec<Entry>,
}

impl Rotation {
    /// A new rotation of `app` whose old secret is `old`, recorded as creating.
    pub fn new(app: &str, now: u64, revoke_old_at: u64, old: &[u8], manual: bool) -> Rotation {
        Rotation {
            app: app.to_string(),
            step: Step::Creating,
            started_at: now,
            revoke_old_at,
            manual,
            old_fingerprint: fingerprint(old),
            new_fingerprint: None,
            set_at: None,
            consumer_exchange_at: None,
            tested: None,
            old_revoked: None,
            by: who(),
            history: vec![Entry {
                at: now,
                step: Step::Creating,
                note: "rotation started".into(),
            }],
        }
    }

    /// Moves to `step`, with a line of history.
    pub fn reach(&mut self, step: Step, now: u64, note: impl Into<String>) {
        self.step = step;
        self.history.push(Entry {
            at: now,
            step,
            note: note.into(),
        });
    }

    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Who runs connapp here, for the record: `user@host pid N`.
pub fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    format!(
        "{user}@{} pid {}",
        connapp_oauth::lifecycle::host_name(),
        std::process::id()
    )
}

/// The rotation records and pending secrets in one open store.
#[derive(Clone, Copy)]
pub struct Rotations<'s> {
    store: &'s StoreHandle,
}

impl std::fmt::Debug for Rotations<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rotations { .. }")
    }
}

fn store_err(app: &str, e: connapp_plugin_api::StoreError) -> Error {
    Error::failure(format!("{app}: the store: {e}"))
}

impl<'s> Rotations<'s> {
    /// The rotations kept in `store`.
    pub fn new(store: &'s StoreHandle) -> Self {
        Rotations { store }
    }

    /// `app`'s rotation record and its version, if any.
    pub fn get(&self, app: &str) -> Result<Option<(Rotation, u64)>, Error> {
        let Some(r) = self.store.get(&record_key(app)).map_err(|e| store_err(app, e))? else {
            return Ok(None);
        };
        let rot: Rotation = serde_json::from_slice(&r.value).map_err(|e| {
            Error::failure(format!("{app}: the rotation record in the store cannot be read: {e}")).hint(format!(
                "remove it with the store's own tools (key {}) if no rotation is in progress",
                record_key(app)
            ))
        })?;
        Ok(Some((rot, r.version)))
    }

    /// Writes `rot` if the record is still at `version` (`None`: absent);
    /// returns the new version. A conflict means another run moved it.
    pub fn put(&self, rot: &Rotation, version: Option<u64>) -> Result<u64, Error> {
        let expected = version.map_or(Expected::Absent, Expected::Version);
        self.store
            .put(&record_key(&rot.app), &rot.to_bytes(), expected)
            .map_err(|e| {
                if e.is_conflict() {
                    Error::failure(format!(
                        "{}: another connapp run changed the rotation record meanwhile",
                        rot.app
                    ))
                    .hint("run `connapp rotate client-secret --resume` again once that run has ended")
                } else {
                    store_err(&rot.app, e)
                }
            })
    }

    /// The pending secret, if any.
    pub fn pending(&self, app: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        Ok(self
            .store
            .get(&pending_key(app))
            .map_err(|e| store_err(app, e))?
            .map(|r| r.value))
    }

    /// Stores the pending secret.
    pub fn put_pending(&self, app: &str, secret: &[u8]) -> Result<(), Error> {
        self.store
            .put(&pending_key(app), secret, Expected::Any)
            .map(|_| ())
            .map_err(|e| store_err(app, e))
    }

    /// Removes the pending secret.
    pub fn remove_pending(&self, app: &str) -> Result<(), Error> {
        self.store
            .delete(&pending_key(app), Expected::Any)
            .map(|_| ())
            .map_err(|e| store_err(app, e))
    }

    /// Makes `secret` the app's current Client Secret, dated `now`.
    pub fn make_current(&self, app: &str, secret: &[u8], now: u64) -> Result<(), Error> {
        crate::secrets::Secrets::new(self.store)
            .put_dated(app, SecretKind::ClientSecret, secret, Expected::Any, now)
            .map(|_| ())
            .map_err(|e| store_err(app, e))
    }
}

/// The sealed journal's purpose tag.
const JOURNAL_PURPOSE: &[u8; 8] = b"CAROT001";
/// A journal holds one secret.
const MAX_JOURNAL_BYTES: u64 = 64 * 1024;

fn journal_name(app: &str) -> String {
    format!("{app}.rotation")
}

/// Seals the new secret the provider just issued into the app's journal
/// directory (0600, durable) before anything else happens to it.
pub fn journal(c: &AppCtx<'_>, secret: &[u8]) -> Result<(), Error> {
    let app = &c.app.name;
    let key = c.journal_key()?;
    let sealed = connapp_oauth::lifecycle::seal_for(JOURNAL_PURPOSE, app, &key, secret)
        .map_err(|e| Error::failure(format!("{app}: {e}")))?;
    let dir = c.journal_dir();
    let _ = std::fs::remove_file(dir.join(journal_name(app)));
    connapp_oauth::lifecycle::write_durable(dir, &journal_name(app), &sealed)
        .map_err(|e| Error::failure(format!("{app}: {e}")))?;
    Ok(())
}

/// The journaled new secret, if a journal opens under the app's key.
pub fn journaled(c: &AppCtx<'_>) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
    let app = &c.app.name;
    let path = c.journal_dir().join(journal_name(app));
    if !path.exists() {
        return Ok(None);
    }
    let key = c.journal_key()?;
    let bytes = connapp_plugin_api::bounded::read_file("the rotation journal", &path, MAX_JOURNAL_BYTES)
        .map(Zeroizing::new)
        .map_err(|e| Error::failure(format!("{app}: {e}")))?;
    Ok(connapp_oauth::lifecycle::open_for(JOURNAL_PURPOSE, app, &key, &bytes))
}

/// Removes the journal once the store holds what it kept.
pub fn forget_journal(c: &AppCtx<'_>) {
    let _ = std::fs::remove_file(c.journal_dir().join(journal_name(&c.app.name)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_names_the_secret_without_holding_it() {
        let f = fingerprint(b"CANARY-secret");
        assert!(f.starts_with("sha256:") && f.len() == 7 + 16, "{f}");
        assert!(!f.contains("CANARY"));
        assert_ne!(f, fingerprint(b"CANARY-secreu"));
    }

    #[test]
    fn the_record_round_trips_and_holds_no_secret() {
        let mut r = Rotation::new("dex", 100, 200, b"old-CANARY", false);
        r.reach(Step::Created, 101, "Zoom issued the new secret");
        r.new_fingerprint = Some(fingerprint(b"new-CANARY"));
        r.tested = Some(Tested {
            provider: Proof::Ok("token".into()),
            consumer: Proof::Unproven("no refresh yet".into()),
        });
        let bytes = r.to_bytes();
        assert!(!String::from_utf8_lossy(&bytes).contains("CANARY"));
        let back: Rotation = serde_json::from_slice(&bytes).expect("parses");
        assert_eq!(back, r);
        assert!(back.step.open());
        assert!(!Step::Finished.open() && !Step::Aborted.open());
    }
}
