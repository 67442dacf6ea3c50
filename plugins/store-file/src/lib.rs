//! connapp store plugin `store-file`: secrets in one encrypted file.
//!
//! The file is XChaCha20-Poly1305 encrypted under a key derived from a
//! passphrase with argon2id (salt and cost parameters in the file header, which
//! is also the AEAD's associated data). The passphrase comes from
//! `CONNAPP_FILE_PASSPHRASE` or, at a terminal, from a no-echo prompt.
//!
//! Writes are atomic (temp file, fsync, rename, directory fsync) and
//! serialised across processes by an exclusive lock on a lock file, so two
//! processes never interleave writes and a killed writer never leaves a
//! half-written store. The directory must be 0700 and the files 0600; looser
//! permissions are refused with the `chmod` that fixes them.
//!
//! What it is **not**: shared across hosts (it is a local file) or a key
//! agent (each process derives the key once when it opens the store).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use connapp_plugin_api::{
    Capabilities, ErrorCode, Expected, Plugin, PluginInfo, Provided, Record, SettingType, Store, StoreContext,
    StoreDescription, StoreError, StoreSetting, bounded, export_plugin, plugin_info,
};
use zeroize::{Zeroize, Zeroizing};

/// The environment variable holding the passphrase.
pub const PASSPHRASE_ENV: &str = "CONNAPP_FILE_PASSPHRASE";
/// The file holding the encrypted records.
pub const STORE_FILE: &str = "secrets.cnst";
const LOCK_FILE: &str = "secrets.lock";
const MAGIC: &[u8; 12] = b"CONNAPPSTORE";
const FORMAT_VERSION: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = MAGIC.len() + 1 + 12 + SALT_LEN + NONCE_LEN;
/// Largest value the store accepts.
pub const MAX_VALUE: usize = 1 << 20;
/// The largest store file read (a few hundred values at the largest size).
pub const MAX_FILE: u64 = 256 << 20;

/// What the file store can do: persistent, local to this host, compare-and-swap
/// emulated under a file lock.
pub const CAPABILITIES: Capabilities = Capabilities {
    persistent: true,
    shared_across_hosts: false,
    native_cas: false,
    max_value_size: MAX_VALUE as u64,
};

/// Argon2id cost parameters: OWASP's recommendation (19 MiB, 2 passes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for Cost {
    fn default() -> Self {
        Cost {
            m_kib: 19 * 1024,
            t: 2,
            p: 1,
        }
    }
}

fn err(code: ErrorCode, msg: impl Into<String>) -> StoreError {
    StoreError::new(code, msg)
}

fn read_err(e: bounded::ReadError) -> StoreError {
    let code = match e.io_kind() {
        None => ErrorCode::TOO_LARGE,
        Some(std::io::ErrorKind::PermissionDenied) => ErrorCode::PERMISSION_DENIED,
        Some(_) => ErrorCode::UNAVAILABLE,
    };
    err(code, e.to_string())
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    let code = match e.kind() {
        std::io::ErrorKind::PermissionDenied => ErrorCode::PERMISSION_DENIED,
        _ => ErrorCode::UNAVAILABLE,
    };
    err(code, format!("cannot {what} {}: {e}", path.display()))
}

/// One record inside the encrypted file. A deleted key keeps its last version
/// (with no value) so that versions never repeat.
struct Entry {
    version: u64,
    value: Option<Zeroizing<Vec<u8>>>,
}

/// Everything in the file, decrypted.
#[derive(Default)]
struct Contents {
    entries: BTreeMap<String, Entry>,
}

impl Contents {
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (k, e) in &self.entries {
            out.extend_from_slice(&(k.len() as u16).to_le_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&e.version.to_le_bytes());
            match &e.value {
                Some(v) => {
                    out.push(1);
                    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    out.extend_from_slice(v);
                }
                None => out.push(0),
            }
        }
        out
    }

    fn decode(b: &[u8]) -> Option<Self> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if b.len() < n {
                return None;
            }
            let (h, t) = b.split_at(n);
            *b = t;
            Some(h)
        }
        let mut b = b;
        let n = u32::from_le_bytes(take(&mut b, 4)?.try_into().ok()?);
        let mut entries = BTreeMap::new();
        for _ in 0..n {
            let kl = u16::from_le_bytes(take(&mut b, 2)?.try_into().ok()?) as usize;
            let key = String::from_utf8(take(&mut b, kl)?.to_vec()).ok()?;
            let version = u64::from_le_bytes(take(&mut b, 8)?.try_into().ok()?);
            let value = match take(&mut b, 1)?[0] {
                1 => {
                    let vl = u32::from_le_bytes(take(&mut b, 4)?.try_into().ok()?) as usize;
                    Some(Zeroizing::new(take(&mut b, vl)?.to_vec()))
                }
                0 => None,
                _ => return None,
            };
            entries.insert(key, Entry { version, value });
        }
        b.is_empty().then_some(Contents { entries })
    }
}

struct Header {
    cost: Cost,
    salt: [u8; SALT_LEN],
}

fn parse_header(bytes: &[u8], path: &Path) -> Result<(Header, [u8; NONCE_LEN]), StoreError> {
    if bytes.len() < HEADER_LEN + 16 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(err(
            ErrorCode::CORRUPT,
            format!("{} is not a connapp store file (bad header)", path.display()),
        ));
    }
    let mut i = MAGIC.len();
    if bytes[i] != FORMAT_VERSION {
        return Err(err(
            ErrorCode::CORRUPT,
            format!(
                "{} has store format {}, this connapp reads format {FORMAT_VERSION}; upgrade connapp",
                path.display(),
                bytes[i]
            ),
        ));
    }
    i += 1;
    let u = |j: usize| u32::from_le_bytes([bytes[j], bytes[j + 1], bytes[j + 2], bytes[j + 3]]);
    let cost = Cost {
        m_kib: u(i),
        t: u(i + 4),
        p: u(i + 8),
    };
    i += 12;
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&bytes[i..i + SALT_LEN]);
    i += SALT_LEN;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[i..i + NONCE_LEN]);
    Ok((Header { cost, salt }, nonce))
}

fn header_bytes(h: &Header, nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&h.cost.m_kib.to_le_bytes());
    out.extend_from_slice(&h.cost.t.to_le_bytes());
    out.extend_from_slice(&h.cost.p.to_le_bytes());
    out.extend_from_slice(&h.salt);
    out.extend_from_slice(nonce);
    out
}

fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| err(ErrorCode::UNAVAILABLE, format!("no system randomness: {e}")))?;
    Ok(b)
}

fn derive_key(passphrase: &[u8], h: &Header) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    if h.cost.m_kib > 4 * 1024 * 1024 || h.cost.t > 64 || h.cost.p > 64 {
        return Err(err(
            ErrorCode::CORRUPT,
            "the store file asks for absurd argon2 costs; refusing",
        ));
    }
    let params = Params::new(h.cost.m_kib, h.cost.t, h.cost.p, Some(32)).map_err(|e| {
        err(
            ErrorCode::CORRUPT,
            format!("bad argon2 parameters in the store file: {e}"),
        )
    })?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, &h.salt, key.as_mut())
        .map_err(|e| err(ErrorCode::OTHER, format!("key derivation failed: {e}")))?;
    Ok(key)
}

#[cfg(unix)]
fn mode_of(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

#[cfg(unix)]
fn check_private(path: &Path, is_dir: bool) -> Result<(), StoreError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect", path, e)),
    };
    let mode = mode_of(&meta);
    if mode & 0o077 != 0 {
        let want = if is_dir { "700" } else { "600" };
        return Err(err(
            ErrorCode::PERMISSION_DENIED,
            format!(
                "{} has mode {mode:03o}, so other users can reach the secrets; refusing to use it. Fix: chmod {want} {}",
                path.display(),
                path.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _is_dir: bool) -> Result<(), StoreError> {
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.exists() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(|e| io_err("create", parent, e))?;
    }
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    match b.create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err("create", dir, e)),
    }
}

fn open_private(path: &Path, opts: &mut OpenOptions) -> std::io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// The passphrase plus the key derived for the salt seen last.
struct Keys {
    passphrase: Zeroizing<Vec<u8>>,
    cached: Option<([u8; SALT_LEN], Cost, Zeroizing<[u8; 32]>)>,
}

impl Keys {
    fn key_for(&mut self, h: &Header) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        if let Some((salt, cost, key)) = &self.cached
            && *salt == h.salt
            && *cost == h.cost
        {
            return Ok(key.clone());
        }
        let key = derive_key(&self.passphrase, h)?;
        self.cached = Some((h.salt, h.cost, key.clone()));
        Ok(key)
    }
}

/// The encrypted file store.
pub struct FileStore {
    dir: PathBuf,
    cost: Cost,
    keys: Mutex<Keys>,
}

impl FileStore {
    /// Opens (and, on first write, creates) the store in `dir` with the
    /// passphrase. Checks permissions and, if the file exists, the passphrase.
    pub fn open(dir: &Path, passphrase: Zeroizing<Vec<u8>>, cost: Cost) -> Result<Self, StoreError> {
        if passphrase.is_empty() {
            return Err(err(ErrorCode::INVALID_INPUT, "the file store passphrase is empty"));
        }
        create_private_dir(dir)?;
        check_private(dir, true)?;
        let store = FileStore {
            dir: dir.to_path_buf(),
            cost,
            keys: Mutex::new(Keys {
                passphrase,
                cached: None,
            }),
        };
        // Fail now, not at the first read, if the passphrase is wrong.
        store.read()?;
        Ok(store)
    }

    /// The path of the encrypted file.
    pub fn file_path(&self) -> PathBuf {
        self.dir.join(STORE_FILE)
    }

    fn lock(&self) -> Result<File, StoreError> {
        let path = self.dir.join(LOCK_FILE);
        check_private(&path, false)?;
        let f = open_private(&path, OpenOptions::new().create(true).truncate(false).write(true))
            .map_err(|e| io_err("open the lock file", &path, e))?;
        f.lock().map_err(|e| io_err("lock", &path, e))?;
        Ok(f)
    }

    fn read(&self) -> Result<Contents, StoreError> {
        let path = self.file_path();
        check_private(&path, false)?;
        let bytes = match bounded::read_file("the store file", &path, MAX_FILE) {
            Ok(b) => b,
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => return Ok(Contents::default()),
            Err(e) => return Err(read_err(e)),
        };
        let (header, nonce) = parse_header(&bytes, &path)?;
        let key = self.keys.lock().map_err(|_| poisoned())?.key_for(&header)?;
        let cipher =
            XChaCha20Poly1305::new_from_slice(key.as_ref()).map_err(|_| err(ErrorCode::OTHER, "bad key length"))?;
        let aad = header_bytes(&header, &nonce);
        let plain = cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &bytes[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| {
                err(
                    ErrorCode::AUTH_FAILED,
                    format!(
                        "cannot decrypt {}: wrong passphrase (or the file was altered). Check {PASSPHRASE_ENV} or the passphrase you typed",
                        path.display()
                    ),
                )
            })?;
        let plain = Zeroizing::new(plain);
        Contents::decode(&plain).ok_or_else(|| {
            err(
                ErrorCode::CORRUPT,
                format!("{} decrypted but its records are malformed", path.display()),
            )
        })
    }

    /// Encrypts and writes atomically. Caller holds the lock.
    fn write(&self, contents: &Contents) -> Result<(), StoreError> {
        let path = self.file_path();
        // Keep the salt of an existing file so the cached key stays valid.
        let header = match bounded::read_file("the store file", &path, MAX_FILE) {
            Ok(b) => parse_header(&b, &path)?.0,
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => Header {
                cost: self.cost,
                salt: random()?,
            },
            Err(e) => return Err(read_err(e)),
        };
        let key = self.keys.lock().map_err(|_| poisoned())?.key_for(&header)?;
        let nonce: [u8; NONCE_LEN] = random()?;
        let aad = header_bytes(&header, &nonce);
        let plain = contents.encode();
        let cipher =
            XChaCha20Poly1305::new_from_slice(key.as_ref()).map_err(|_| err(ErrorCode::OTHER, "bad key length"))?;
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: &plain, aad: &aad })
            .map_err(|_| err(ErrorCode::OTHER, "encryption failed"))?;

        // Remove temp files of writers that died: we hold the lock, so none is
        // live (`.secrets.tmp.` is how older versions named them).
        let ours = format!(".{STORE_FILE}.tmp.");
        if let Ok(rd) = fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let n = e.file_name();
                let n = n.to_string_lossy();
                if n.starts_with(&ours) || n.starts_with(".secrets.tmp.") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let mut file = Vec::with_capacity(aad.len() + sealed.len());
        file.extend_from_slice(&aad);
        file.extend_from_slice(&sealed);
        // Its temp file is `.secrets.cnst.tmp.PID.N`, which the clean-up above knows.
        connapp_plugin_api::atomic::write_file_with(&path, &file, 0o600, || {
            #[cfg(feature = "fault-injection")]
            if std::env::var("CONNAPP_FAULT").is_ok_and(|p| p == "store-write") {
                // SAFETY: SIGKILL to ourselves, between the temp file and the rename.
                unsafe {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
            }
        })
        .map_err(|e| io_err("write", &path, e))?;
        Ok(())
    }
}

fn poisoned() -> StoreError {
    err(ErrorCode::OTHER, "internal lock poisoned by an earlier panic")
}

fn current(c: &Contents, key: &str) -> Option<u64> {
    c.entries.get(key).filter(|e| e.value.is_some()).map(|e| e.version)
}

fn conflict(key: &str, expected: Expected, current: Option<u64>) -> StoreError {
    let found = current.map_or("absent".to_string(), |v| format!("version {v}"));
    let wanted = match expected {
        Expected::Any => "any".to_string(),
        Expected::Absent => "absent".to_string(),
        Expected::Version(v) => format!("version {v}"),
    };
    StoreError::conflict(format!("{key}: expected {wanted}, found {found}"))
}

impl Store for FileStore {
    fn describe(&self) -> Result<StoreDescription, StoreError> {
        Ok(StoreDescription {
            capabilities: CAPABILITIES,
            location: self.file_path().display().to_string(),
        })
    }

    fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let mut c = self.read()?;
        Ok(c.entries.remove(key).and_then(|e| {
            e.value.map(|value| Record {
                value,
                version: e.version,
            })
        }))
    }

    fn put(&self, key: &str, value: &[u8], expected: Expected) -> Result<u64, StoreError> {
        let _lock = self.lock()?;
        let mut c = self.read()?;
        let cur = current(&c, key);
        if !expected.matches(cur) {
            return Err(conflict(key, expected, cur));
        }
        let version = c.entries.get(key).map_or(0, |e| e.version) + 1;
        c.entries.insert(
            key.to_string(),
            Entry {
                version,
                value: Some(Zeroizing::new(value.to_vec())),
            },
        );
        self.write(&c)?;
        Ok(version)
    }

    fn delete(&self, key: &str, expected: Expected) -> Result<bool, StoreError> {
        let _lock = self.lock()?;
        let mut c = self.read()?;
        let cur = current(&c, key);
        if !expected.matches(cur) {
            return Err(conflict(key, expected, cur));
        }
        let Some(e) = c.entries.get_mut(key).filter(|e| e.value.is_some()) else {
            return Ok(false);
        };
        if let Some(mut v) = e.value.take() {
            v.zeroize();
        }
        self.write(&c)?;
        Ok(true)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let c = self.read()?;
        Ok(c.entries
            .iter()
            .filter(|(k, e)| e.value.is_some() && k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }
}

/// The plugin: provides the store kind `file`.
pub struct FileStorePlugin;

impl Plugin for FileStorePlugin {
    fn info() -> PluginInfo {
        plugin_info![Provided::store("file", CAPABILITIES)]
    }

    fn store_settings(_kind: &str) -> Option<Vec<StoreSetting>> {
        Some(vec![
            StoreSetting::new(
                "path",
                SettingType::PATH,
                "an absolute directory for the encrypted file (the passphrase comes from CONNAPP_FILE_PASSPHRASE or a prompt)",
            )
            .default_value("<data directory>/store"),
        ])
    }

    fn open_store(_name: &str, ctx: &StoreContext<'_>) -> Result<Box<dyn Store>, StoreError> {
        for (k, _) in ctx.settings() {
            if k != "path" {
                return Err(err(
                    ErrorCode::INVALID_INPUT,
                    format!("store.settings.{k}: unknown setting for the file store (known: path)"),
                ));
            }
        }
        let dir = match ctx.setting("path") {
            Some(p) if Path::new(p).is_absolute() => PathBuf::from(p),
            Some(p) => {
                return Err(err(
                    ErrorCode::INVALID_INPUT,
                    format!("store.settings.path = {p:?} must be an absolute path"),
                ));
            }
            None => Path::new(ctx.data_dir()).join("store"),
        };
        if let Some(v) = std::env::var_os(PASSPHRASE_ENV) {
            let mut s = v.into_encoded_bytes();
            let p = Zeroizing::new(s.clone());
            s.zeroize();
            return Ok(Box::new(FileStore::open(&dir, p, Cost::default())?));
        }
        if !ctx.interactive() {
            return Err(err(
                ErrorCode::AUTH_FAILED,
                format!(
                    "the file store needs a passphrase: set {PASSPHRASE_ENV}, or run connapp at a terminal to be asked for it"
                ),
            ));
        }
        let prompt = |text: &str| ctx.prompt_secret(text);
        Ok(Box::new(open_asking(&dir, &prompt, Cost::default())?))
    }
}

/// Asks a person for a passphrase with the given prompt (no echo).
pub type Prompt<'a> = &'a dyn Fn(&str) -> Result<Zeroizing<Vec<u8>>, StoreError>;

/// How often a person may type the passphrase of an existing store.
pub const PASSPHRASE_TRIES: usize = 3;

/// Opens the store in `dir` with a passphrase a person types at `prompt`, as
/// ssh-keygen and gpg ask: a new store says that it is new and takes the
/// passphrase twice (they must match); an existing one allows
/// [`PASSPHRASE_TRIES`] tries.
pub fn open_asking(dir: &Path, prompt: Prompt<'_>, cost: Cost) -> Result<FileStore, StoreError> {
    let file = dir.join(STORE_FILE);
    if !file.exists() {
        let first = prompt(&format!(
            "Creating a new file store at {}.\nChoose its passphrase (connapp cannot recover it): ",
            file.display()
        ))?;
        if first.is_empty() {
            return Err(err(
                ErrorCode::INVALID_INPUT,
                "the file store passphrase is empty; nothing was created",
            ));
        }
        let again = prompt("Repeat the passphrase: ")?;
        if *first != *again {
            return Err(err(
                ErrorCode::INVALID_INPUT,
                "the passphrases do not match; nothing was created (run the command again)",
            ));
        }
        return FileStore::open(dir, first, cost);
    }
    let mut last = None;
    for i in 0..PASSPHRASE_TRIES {
        let text = if i == 0 {
            format!("Passphrase for the file store {}: ", file.display())
        } else {
            format!("Wrong passphrase; try again ({} of {PASSPHRASE_TRIES}): ", i + 1)
        };
        match FileStore::open(dir, prompt(&text)?, cost) {
            Err(e) if e.code == ErrorCode::AUTH_FAILED => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| err(ErrorCode::AUTH_FAILED, "no passphrase was given")))
}

export_plugin!(FileStorePlugin);

#[cfg(test)]
mod tests;
