//! An app's secrets in the store, by kind: the one place that knows the store
//! keys (`apps/<app>/<kind>`, `apps/<app>/token`), so a front end asks for
//! "the Client Secret of dex" and never builds a key.
//!
//! Values stay in `Zeroizing` buffers; nothing here logs or formats one.

use connapp_core::{SecretKind, secret_key};
use connapp_oauth::lifecycle::{HostLease, LeaseError, LeaseTaken, TokenStore, Versioned};
use connapp_plugin_api::zeroize::Zeroizing;
use connapp_plugin_api::{Expected, LeaseHandle, Record, StoreError, StoreHandle};

/// The store key of an app's token record (the lifecycle's, never a user's to set).
pub fn token_key(app: &str) -> String {
    format!("apps/{app}/token")
}

/// The store key of when connapp stored an app's credential of `kind`
/// (with the value's fingerprint, so a value stored by other means is not
/// given that date).
pub fn since_key(app: &str, kind: SecretKind) -> String {
    format!("apps/{app}/{}-since", kind.as_str())
}

/// The one error for a secret the work needs and the store lacks: what is
/// missing, for which app, and the command that stores it (`source`, when
/// given, says where the value comes from).
pub fn missing(app: &str, kind: SecretKind, source: Option<&str>) -> crate::Error {
    let set = format!("`connapp secrets set {} --app {app}`", kind.as_str());
    crate::Error::failure(format!("no {} is stored for {app}", kind.label())).hint(match source {
        Some(s) if !s.is_empty() => format!("{s}, then run {set}"),
        _ => format!("run {set}"),
    })
}

/// One line of [`Secrets::inventory`]: whether a secret is stored, never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The app.
    pub app: String,
    /// The kind of secret.
    pub kind: SecretKind,
    /// The stored version, when there is one.
    pub version: Option<u64>,
    /// The value's length in bytes, when there is one.
    pub bytes: Option<usize>,
}

impl Entry {
    /// Whether a value is stored.
    pub fn present(&self) -> bool {
        self.version.is_some()
    }
}

/// The apps' secrets in one open store.
#[derive(Clone, Copy)]
pub struct Secrets<'s> {
    store: &'s StoreHandle,
}

impl std::fmt::Debug for Secrets<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl<'s> Secrets<'s> {
    /// The secrets kept in `store`.
    pub fn new(store: &'s StoreHandle) -> Self {
        Secrets { store }
    }

    /// The stored value of `app`'s secret of `kind`, if any.
    pub fn get(&self, app: &str, kind: SecretKind) -> Result<Option<Record>, StoreError> {
        self.store.get(&secret_key(app, kind))
    }

    /// Stores `value` as `app`'s secret of `kind`; returns the new version.
    pub fn put(&self, app: &str, kind: SecretKind, value: &[u8], expected: Expected) -> Result<u64, StoreError> {
        self.store.put(&secret_key(app, kind), value, expected)
    }

    /// Stores `value` as `app`'s secret of `kind`, and that it was stored at
    /// `now` (the owner's clock): `verify` tells the secret's age from it.
    /// Returns the new version.
    pub fn put_dated(
        &self,
        app: &str,
        kind: SecretKind,
        value: &[u8],
        expected: Expected,
        now: u64,
    ) -> Result<u64, StoreError> {
        let v = self.put(app, kind, value, expected)?;
        let meta = serde_json::json!({"since": now, "fingerprint": crate::rotation::fingerprint(value)});
        self.store
            .put(&since_key(app, kind), meta.to_string().as_bytes(), Expected::Any)?;
        Ok(v)
    }

    /// When connapp stored the current value of `app`'s secret of `kind`
    /// (unix seconds); `None` when it holds none or has no date for this very value.
    pub fn since(&self, app: &str, kind: SecretKind) -> Result<Option<u64>, StoreError> {
        let Some(current) = self.get(app, kind)? else {
            return Ok(None);
        };
        let Some(meta) = self.store.get(&since_key(app, kind))? else {
            return Ok(None);
        };
        let meta: serde_json::Value = serde_json::from_slice(&meta.value).unwrap_or_default();
        let same = meta["fingerprint"].as_str() == Some(crate::rotation::fingerprint(&current.value).as_str());
        Ok(meta["since"].as_u64().filter(|_| same))
    }

    /// Removes `app`'s secret of `kind`; whether there was one.
    pub fn remove(&self, app: &str, kind: SecretKind) -> Result<bool, StoreError> {
        self.store.delete(&secret_key(app, kind), Expected::Any)
    }

    /// What is stored for the apps named: the three credentials always
    /// (present or missing), the other kept kinds (app id, instance
    /// credentials) only where there is a value.
    pub fn inventory<'a>(&self, apps: impl IntoIterator<Item = &'a str>) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        for app in apps {
            for kind in SecretKind::KEPT {
                let rec = self.get(app, kind)?;
                if !SecretKind::ALL.contains(&kind) && rec.is_none() {
                    continue;
                }
                out.push(Entry {
                    app: app.to_string(),
                    kind,
                    version: rec.as_ref().map(|r| r.version),
                    bytes: rec.as_ref().map(|r| r.value.len()),
                });
            }
        }
        Ok(out)
    }

    /// `app`'s token record as stored (the lifecycle reads and writes it with its own rules).
    pub fn token(&self, app: &str) -> Result<Option<Record>, StoreError> {
        self.store.get(&token_key(app))
    }

    /// `app`'s token record for the token lifecycle to read and write.
    pub fn token_records(&self, app: &str) -> TokenRecords<'s> {
        TokenRecords {
            store: self.store,
            key: token_key(app),
            app: app.to_string(),
            leases: None,
            lease: std::sync::OnceLock::new(),
        }
    }

    /// Removes `app`'s token record if it is still at `version`; whether it was removed.
    pub fn remove_token(&self, app: &str, version: u64) -> Result<bool, StoreError> {
        self.store.delete(&token_key(app), Expected::Version(version))
    }
}

/// The stored token record of an app, as the lifecycle sees it (with the
/// journal key beside it and, for a store hosts share, its lease), from
/// [`Secrets::token_records`].
pub struct TokenRecords<'a> {
    store: &'a StoreHandle,
    key: String,
    app: String,
    leases: Option<&'a Leases<'a>>,
    lease: std::sync::OnceLock<Option<AppLease<'a>>>,
}

impl<'a> TokenRecords<'a> {
    /// With the store's leases (opened only when a refresh needs one).
    pub fn with_leases(mut self, leases: &'a Leases<'a>) -> Self {
        self.leases = Some(leases);
        self
    }
}

/// The store's lease, opened on first use (a token served from the store
/// never opens it): the opener comes from the host that opened the store.
pub struct Leases<'r> {
    open: Option<LeaseOpener<'r>>,
    /// Kept once opened; a failure is not kept, so a long-lived owner tries
    /// again at its next refresh.
    handle: std::sync::OnceLock<Option<LeaseHandle>>,
}

/// Opens the store's lease (`None`: the store offers none).
pub type LeaseOpener<'r> = Box<dyn Fn() -> Result<Option<LeaseHandle>, String> + Send + Sync + 'r>;

impl<'r> Leases<'r> {
    /// Leases opened by `open`; `None`: the host offers none.
    pub fn new(open: Option<LeaseOpener<'r>>) -> Self {
        Leases {
            open,
            handle: std::sync::OnceLock::new(),
        }
    }

    fn get(&self) -> Result<Option<&LeaseHandle>, String> {
        let Some(open) = &self.open else { return Ok(None) };
        if self.handle.get().is_none() {
            // Two threads may both open it; one handle is kept.
            let _ = self.handle.set(open()?);
        }
        Ok(self.handle.get().and_then(Option::as_ref))
    }
}

impl std::fmt::Debug for Leases<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").field("offered", &self.open.is_some()).finish()
    }
}

/// One app's lease: `locks/<app>` in the store.
struct AppLease<'a> {
    handle: &'a LeaseHandle,
    name: String,
}

impl HostLease for AppLease<'_> {
    fn try_take(&self, holder: &str, ttl_secs: u64) -> Result<Option<LeaseTaken>, LeaseError> {
        match self.handle.try_take(&self.name, holder, ttl_secs) {
            Ok(t) => Ok(t.map(|t| LeaseTaken {
                version: t.version,
                after_expiry: t.after_expiry,
            })),
            Err(e) => Err(LeaseError {
                retryable: e.retryable,
                message: e.to_string(),
            }),
        }
    }
    fn give_back(&self, version: u64) {
        if let Err(e) = self.handle.give_back(&self.name, version) {
            // It expires by the server's clock anyway.
            tracing::info!(lease = %self.name, "could not give the lease back: {e}");
        }
    }
}

impl std::fmt::Debug for TokenRecords<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRecords").field("key", &self.key).finish()
    }
}

impl TokenStore for TokenRecords<'_> {
    fn load(&self) -> Result<Option<Versioned>, String> {
        self.store
            .get(&self.key)
            .map(|r| r.map(|r| (r.value, r.version)))
            .map_err(|e| e.to_string())
    }
    fn save(&self, bytes: &[u8], expected: Option<u64>) -> Result<u64, Option<String>> {
        let exp = match expected {
            Some(v) => Expected::Version(v),
            None => Expected::Absent,
        };
        connapp_oauth::lifecycle::fault("before-store-write");
        self.store
            .put(&self.key, bytes, exp)
            .map_err(|e| if e.is_conflict() { None } else { Some(e.to_string()) })
    }
    fn lease(&self) -> Result<Option<&dyn HostLease>, String> {
        let Some(leases) = self.leases else { return Ok(None) };
        if self.lease.get().is_none() {
            let app = leases.get()?.map(|handle| AppLease {
                handle,
                name: self.app.clone(),
            });
            let _ = self.lease.set(app);
        }
        Ok(self.lease.get().and_then(Option::as_ref).map(|l| l as &dyn HostLease))
    }
    fn journal_key(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        // Next to the tokens: wherever the store keeps them (an encrypted
        // file, Vault, the keyring), never in plaintext on disk.
        let key = format!("{}.journal-key", self.key);
        let get = || -> Result<Option<Zeroizing<Vec<u8>>>, String> {
            match self.store.get(&key).map_err(|e| e.to_string())? {
                Some(r) if r.value.len() == 32 => Ok(Some(r.value)),
                Some(_) => Err(format!(
                    "{key} in the store is not a 32-byte key; remove it to make a new one"
                )),
                None => Ok(None),
            }
        };
        if let Some(k) = get()? {
            return Ok(k);
        }
        let k = connapp_oauth::lifecycle::new_journal_key()?;
        match self.store.put(&key, &k, Expected::Absent) {
            Ok(_) => Ok(k),
            // Another process created it first: use theirs.
            Err(e) if e.is_conflict() => get()?.ok_or_else(|| format!("{key} vanished while it was created")),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests;
