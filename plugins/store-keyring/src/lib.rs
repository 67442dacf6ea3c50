//! connapp store plugin `store-keyring`: secrets in the OS keyring — on Linux
//! the Secret Service (GNOME Keyring, KWallet, KeePassXC) over pure-Rust
//! D-Bus (no libdbus).
//!
//! Every keyring call is time-boxed: a locked or absent keyring is a clear
//! error within seconds, never a hang. There is no fallback to any other
//! store, ever. The kernel keyutils keyring is not offered: it does not
//! survive a reboot.
//!
//! Records are items with `service = "connapp"` and `username = <key>`; the
//! secret is a flag byte (live or tombstone), the version (u64, little
//! endian) and the value. Keyrings have no compare-and-swap, so writes are
//! serialised by a lock file in connapp's data directory: safe between
//! processes of one host (not shared across hosts).
//!
//! What it is **not**: a way to reach another user's or another machine's keyring.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use connapp_plugin_api::{
    Capabilities, ErrorCode, Expected, Plugin, PluginInfo, Provided, Record, SettingType, Store, StoreContext,
    StoreDescription, StoreError, StoreSetting, export_plugin, plugin_info,
};
use keyring_core::{CredentialStore, Entry, Error as KError};
use zeroize::{Zeroize, Zeroizing};

/// The Secret Service has no small item limit; connapp refuses values over this.
pub const MAX_VALUE: usize = 64 * 1024;

/// What the keyring store can do.
pub const CAPABILITIES: Capabilities = Capabilities {
    persistent: true,
    shared_across_hosts: false,
    native_cas: false,
    max_value_size: MAX_VALUE as u64,
};

const SERVICE: &str = "connapp";
const ALTERNATIVES: &str = "use the encrypted file store (kind = \"file\") or Vault/OpenBao (kind = \"vault\") instead";

fn err(code: ErrorCode, msg: impl Into<String>) -> StoreError {
    StoreError::new(code, msg)
}

/// Runs a keyring call on its own thread and gives up after `timeout`.
fn timed<T: Send + 'static>(
    timeout: Duration,
    what: &str,
    f: impl FnOnce() -> Result<T, KError> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("connapp-keyring".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| err(ErrorCode::OTHER, format!("cannot start a thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(r) => r.map_err(|e| map_error(what, e)),
        Err(_) => Err(err(
            ErrorCode::UNAVAILABLE,
            format!(
                "the keyring did not answer within {} s while trying to {what}: it may be locked and waiting for a password prompt nobody can see; unlock it (e.g. log in to the desktop session) or {ALTERNATIVES}",
                timeout.as_secs()
            ),
        )
        .retryable()),
    }
}

fn map_error(what: &str, e: KError) -> StoreError {
    match e {
        KError::NoStorageAccess(inner) => err(
            ErrorCode::PERMISSION_DENIED,
            format!("the keyring refused to {what} ({inner}); is it locked? Unlock it, or {ALTERNATIVES}"),
        ),
        KError::PlatformFailure(inner) => err(
            ErrorCode::UNAVAILABLE,
            format!(
                "no Secret Service is reachable to {what} ({inner}). On a headless Linux machine there is usually none: start one (gnome-keyring-daemon inside a D-Bus session), or {ALTERNATIVES}"
            ),
        ),
        KError::NoDefaultStore => err(
            ErrorCode::UNAVAILABLE,
            format!("no keyring is available to {what}; {ALTERNATIVES}"),
        ),
        KError::TooLong(field, max) => err(
            ErrorCode::TOO_LARGE,
            format!("the keyring takes at most {max} bytes of {field}"),
        ),
        other => err(ErrorCode::OTHER, format!("the keyring failed to {what}: {other}")),
    }
}

/// The keyring store.
pub struct KeyringStore {
    store: Arc<CredentialStore>,
    lock_path: PathBuf,
    timeout: Duration,
}

fn encode(live: bool, version: u64, value: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(9 + value.len()));
    v.push(u8::from(live));
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(value);
    v
}

/// A stored item: (live, version, value).
type Item = (bool, u64, Zeroizing<Vec<u8>>);

/// (live, version, value) of a stored secret.
fn decode(key: &str, mut b: Vec<u8>) -> Result<Item, StoreError> {
    if b.len() < 9 || b[0] > 1 {
        b.zeroize();
        return Err(err(
            ErrorCode::CORRUPT,
            format!("{key}: the keyring item was not written by connapp"),
        ));
    }
    let live = b[0] == 1;
    let mut ver = [0u8; 8];
    ver.copy_from_slice(&b[1..9]);
    let value = Zeroizing::new(b[9..].to_vec());
    b.zeroize();
    Ok((live, u64::from_le_bytes(ver), value))
}

impl KeyringStore {
    /// Connects to the platform keyring (time-boxed).
    pub fn open(data_dir: &Path, timeout: Duration) -> Result<Self, StoreError> {
        #[cfg(target_os = "linux")]
        let store: Arc<CredentialStore> = timed(timeout, "connect to the Secret Service", || {
            zbus_secret_service_keyring_store::Store::new().map(|s| s as Arc<CredentialStore>)
        })?;
        #[cfg(not(target_os = "linux"))]
        let store: Arc<CredentialStore> = return Err(err(
            ErrorCode::UNSUPPORTED,
            format!("this build has no keyring for this platform; {ALTERNATIVES}"),
        ));
        std::fs::create_dir_all(data_dir).map_err(|e| {
            err(
                ErrorCode::UNAVAILABLE,
                format!("cannot create {}: {e}", data_dir.display()),
            )
        })?;
        let s = KeyringStore {
            store,
            lock_path: data_dir.join("keyring.lock"),
            timeout,
        };
        // Fail now, not at the first write, when the keyring is unusable.
        s.read("connapp/probe")?;
        Ok(s)
    }

    fn entry(&self, key: &str) -> Result<Entry, StoreError> {
        let store = self.store.clone();
        let key = key.to_string();
        timed(self.timeout, "open an item", move || {
            Entry::new_in_store(&store, SERVICE, &key)
        })
    }

    fn read(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let entry = self.entry(key)?;
        let got = timed(self.timeout, "read an item", move || match entry.get_secret() {
            Ok(b) => Ok(Some(b)),
            Err(KError::NoEntry) => Ok(None),
            Err(e) => Err(e),
        })?;
        got.map(|b| decode(key, b)).transpose()
    }

    fn write(&self, key: &str, bytes: Zeroizing<Vec<u8>>) -> Result<(), StoreError> {
        let entry = self.entry(key)?;
        timed(self.timeout, "write an item", move || entry.set_secret(&bytes))
    }

    fn lock(&self) -> Result<File, StoreError> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|e| {
                err(
                    ErrorCode::UNAVAILABLE,
                    format!("cannot open {}: {e}", self.lock_path.display()),
                )
            })?;
        f.lock().map_err(|e| {
            err(
                ErrorCode::UNAVAILABLE,
                format!("cannot lock {}: {e}", self.lock_path.display()),
            )
        })?;
        Ok(f)
    }
}

fn conflict(key: &str, expected: Expected, cur: Option<(bool, u64)>) -> StoreError {
    let found = match cur {
        Some((true, v)) => format!("version {v}"),
        _ => "absent".into(),
    };
    StoreError::conflict(format!("{key}: expected {expected:?}, found {found}"))
}

fn live_version(cur: &Option<Item>) -> Option<u64> {
    cur.as_ref().filter(|c| c.0).map(|c| c.1)
}

impl Store for KeyringStore {
    fn describe(&self) -> Result<StoreDescription, StoreError> {
        Ok(StoreDescription {
            capabilities: CAPABILITIES,
            location: "Secret Service (default collection), service \"connapp\"".into(),
        })
    }

    fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        Ok(self
            .read(key)?
            .filter(|(live, _, _)| *live)
            .map(|(_, version, value)| Record { value, version }))
    }

    fn put(&self, key: &str, value: &[u8], expected: Expected) -> Result<u64, StoreError> {
        let _lock = self.lock()?;
        let cur = self.read(key)?;
        if !expected.matches(live_version(&cur)) {
            return Err(conflict(key, expected, cur.map(|c| (c.0, c.1))));
        }
        let version = cur.as_ref().map_or(0, |c| c.1) + 1;
        self.write(key, encode(true, version, value))?;
        Ok(version)
    }

    fn delete(&self, key: &str, expected: Expected) -> Result<bool, StoreError> {
        let _lock = self.lock()?;
        let cur = self.read(key)?;
        if !expected.matches(live_version(&cur)) {
            return Err(conflict(key, expected, cur.map(|c| (c.0, c.1))));
        }
        match cur {
            Some((true, v, _)) => {
                // A tombstone keeps the version count going.
                self.write(key, encode(false, v, &[]))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let store = self.store.clone();
        let entries = timed(self.timeout, "search items", move || {
            let mut spec = std::collections::HashMap::new();
            spec.insert("service", SERVICE);
            Entry::search_in_store(&store, &spec)
        })?;
        let mut out = Vec::new();
        for e in entries {
            let attrs = timed(self.timeout, "read item attributes", move || e.get_attributes())?;
            if let Some(user) = attrs.get("username")
                && user.starts_with(prefix)
                && user != "connapp/probe"
                && self.read(user)?.is_some_and(|c| c.0)
            {
                out.push(user.clone());
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// The plugin: provides the store kind `keyring`.
pub struct KeyringStorePlugin;

impl Plugin for KeyringStorePlugin {
    fn info() -> PluginInfo {
        plugin_info![Provided::store("keyring", CAPABILITIES)]
    }

    fn store_settings(_kind: &str) -> Option<Vec<StoreSetting>> {
        Some(vec![
            StoreSetting::new(
                "timeout_secs",
                SettingType::INTEGER,
                "how long to wait for the Secret Service (e.g. its unlock prompt), in seconds",
            )
            .default_value("5"),
        ])
    }

    fn open_store(_name: &str, ctx: &StoreContext<'_>) -> Result<Box<dyn Store>, StoreError> {
        let mut timeout = Duration::from_secs(5);
        for (k, v) in ctx.settings() {
            match k {
                "timeout_secs" => {
                    timeout = Duration::from_secs(v.parse().map_err(|_| {
                        err(
                            ErrorCode::INVALID_INPUT,
                            "store.settings.timeout_secs must be a number of seconds",
                        )
                    })?)
                }
                other => {
                    return Err(err(
                        ErrorCode::INVALID_INPUT,
                        format!("store.settings.{other}: unknown setting for the keyring store (known: timeout_secs)"),
                    ));
                }
            }
        }
        Ok(Box::new(KeyringStore::open(Path::new(ctx.data_dir()), timeout)?))
    }
}

export_plugin!(KeyringStorePlugin);

#[cfg(test)]
mod tests;
