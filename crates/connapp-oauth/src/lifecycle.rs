//! The token lifecycle: never lose a rotated refresh token.
//!
//! 1. Single flight inside a process (a mutex per app) and a lock across
//!    processes (an exclusive lock on `<lock_dir>/<app>.lock`).
//! 2. After taking the lock, re-read: someone else may have refreshed.
//! 3. The answer is made durable first: the new record is sealed
//!    (XChaCha20-Poly1305 under the app's journal key) and written to a
//!    journal file of its own (0600, created exclusively, fsync'd, the
//!    directory fsync'd) before anything else is done with it; then the
//!    store record is replaced with compare-and-swap; then the journal file
//!    is removed. Any journal left behind (a crash, a failed store write) is
//!    replayed by the next run before anything else: every journal file of
//!    the app that decrypts is a complete answer, the newest wins, and all of
//!    them — torn ones included — are removed.
//! 4. No token is ever on disk in plaintext: the journal key is a random
//!    32-byte key kept in the store itself next to the tokens (created on
//!    first use) and read, under the lock, before the request whose answer
//!    it will seal — so it is at hand exactly when the store write fails.
//!
//! The one window no client can close is between the provider rotating the
//! token and the sealed journal reaching the disk (the response in flight,
//! the parse and the fsync): a crash exactly there loses the new refresh
//! token.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::EdgeError;
use crate::flows::TokenSet;
use crate::record::TokenRecord;

/// A stored record's bytes and version.
pub type Versioned = (Zeroizing<Vec<u8>>, u64);

/// The store as the lifecycle sees it: one record per app, with a version.
pub trait TokenStore {
    /// The record bytes and version, if any.
    fn load(&self) -> Result<Option<Versioned>, String>;
    /// Writes if the current version is `expected` (`None`: must be absent);
    /// returns the new version. `Err(None)` means a compare-and-swap conflict.
    fn save(&self, bytes: &[u8], expected: Option<u64>) -> Result<u64, Option<String>>;
    /// The app's journal key, 32 random bytes kept in the store (created on
    /// first use, with compare-and-swap so concurrent creators agree).
    fn journal_key(&self) -> Result<Zeroizing<Vec<u8>>, String>;
    /// The lease that hosts sharing this store take turns with before a
    /// refresh; `None` (the default): the store is single-host, and the local
    /// lock is enough.
    fn lease(&self) -> Result<Option<&dyn HostLease>, String> {
        Ok(None)
    }
}

/// A lock every host of a shared store sees, whose expiry the store's server
/// times (see `connapp_plugin_api::Lease`): the efficiency device that stops
/// two hosts from spending one rotating refresh token. The record's own
/// compare-and-swap stays the correctness device.
pub trait HostLease {
    /// Takes it for `ttl_secs` naming `holder`: `Some(version)` when taken,
    /// `None` while another holds it.
    fn try_take(&self, holder: &str, ttl_secs: u64) -> Result<Option<LeaseTaken>, LeaseError>;
    /// Gives back `version` (never a successor's).
    fn give_back(&self, version: u64);
}

/// A lease taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTaken {
    /// What gives it back.
    pub version: u64,
    /// The previous holder let it expire instead of giving it back: it may
    /// have died after the provider rotated the tokens and before publishing.
    pub after_expiry: bool,
}

/// Why a lease could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseError {
    /// What the store said.
    pub message: String,
    /// The store may answer later (unreachable, an election, a 5xx): keep
    /// trying within the lock timeout rather than refresh without it.
    pub retryable: bool,
}

/// How long a host holds the lease at most: longer than a token request may
/// take (its HTTP timeout is 30 s), shorter than a waiter's patience.
pub const LEASE_TTL_SECS: u64 = 60;

/// The lease's time to live: [`LEASE_TTL_SECS`]; in test builds
/// (`fault-injection`) `CONNAPP_FAULT_LEASE_TTL_SECS` shortens it, so a test
/// can let a killed holder's lease expire in seconds.
fn lease_ttl() -> u64 {
    #[cfg(feature = "fault-injection")]
    if let Some(s) = std::env::var("CONNAPP_FAULT_LEASE_TTL_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return s;
    }
    LEASE_TTL_SECS
}

/// Waiting for a lock or a lease: the wait is reported once, and gives up
/// after the lifecycle's lock timeout.
struct Patience {
    start: Instant,
    told: bool,
}

impl Patience {
    fn new() -> Self {
        Patience {
            start: Instant::now(),
            told: false,
        }
    }

    /// Reports the wait (the first time), fails once the timeout has passed,
    /// else sleeps `pause`.
    fn wait(&mut self, l: &Lifecycle, waiting: &mut impl FnMut(), pause: Duration) -> Result<(), LifecycleError> {
        if !self.told {
            waiting();
            self.told = true;
        }
        if self.start.elapsed() > l.lock_timeout {
            return Err(LifecycleError::LockTimeout {
                app: l.app.clone(),
                secs: l.lock_timeout.as_secs(),
            });
        }
        std::thread::sleep(pause);
        Ok(())
    }
}

/// What a refused refresh token means, once the store is read again.
enum Refused {
    /// Another holder stored a fresh record since: it is the answer.
    Newer(TokenRecord),
    /// The store holds a newer record (at this version) with another
    /// refresh token, its access token expired: worth one more request.
    Retry(TokenRecord, u64),
    /// Nothing newer: the grant is gone (marked lost where the record was
    /// still the one refused).
    Gone,
}

/// The lease taken, given back when dropped.
struct Turn<'a> {
    lease: &'a dyn HostLease,
    version: u64,
    after_expiry: bool,
    /// The owner's clock just before the lease was asked for: the server
    /// ends the turn no earlier than [`lease_ttl`] after it.
    asked_at: u64,
}

/// What a request to the provider may take, at most, with the publish after
/// it: the HTTP client's timeout (30 s) and a margin.
const REQUEST_BUDGET_SECS: u64 = 35;

impl Turn<'_> {
    /// Whether the server may have ended this turn by now.
    fn ran_out(&self, now: u64) -> bool {
        now.saturating_sub(self.asked_at) >= lease_ttl()
    }

    /// Whether enough of the turn is left for a request to the provider and
    /// the publish (a short test lease leaves half of itself for them).
    fn room_for_a_request(&self, now: u64) -> bool {
        let ttl = lease_ttl();
        now.saturating_sub(self.asked_at) + REQUEST_BUDGET_SECS.min(ttl / 2) < ttl
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.lease.give_back(self.version);
    }
}

/// This host and process at `now` (`host pid N since T`): who takes a lease,
/// and who obtained a token record.
pub fn holder(now: u64) -> String {
    format!("{} pid {} since {now}", host_name(), std::process::id())
}

/// This host's name, for records and reports (`$HOSTNAME`, else
/// `/etc/hostname`, else "a host").
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "a host".into())
}

/// The journal file's first bytes; the rest is nonce and sealed record.
const JOURNAL_MAGIC: &[u8; 8] = b"CAJRNL01";
const NONCE_LEN: usize = 24;
/// A journal holds one token answer: a few KiB.
const MAX_JOURNAL_BYTES: u64 = 1 << 20;

/// A 32-byte key from the system's randomness.
pub fn new_journal_key() -> Result<Zeroizing<Vec<u8>>, String> {
    let mut k = Zeroizing::new(vec![0u8; 32]);
    getrandom::fill(&mut k).map_err(|e| format!("no system randomness: {e}"))?;
    Ok(k)
}

fn cipher(key: &[u8]) -> Result<chacha20poly1305::XChaCha20Poly1305, LifecycleError> {
    use chacha20poly1305::KeyInit;
    chacha20poly1305::XChaCha20Poly1305::new_from_slice(key)
        .map_err(|_| LifecycleError::Store("the journal key in the store is not 32 bytes".into()))
}

fn sealed_aad(purpose: &[u8; 8], app: &str) -> Vec<u8> {
    let mut aad = purpose.to_vec();
    aad.extend_from_slice(app.as_bytes());
    aad
}

/// Seals `plain` for `app` under the app's journal `key`: `purpose` (eight
/// bytes naming what the file holds, e.g. the token journal's `CAJRNL01`),
/// nonce, ciphertext with its tag. The purpose and the app are bound into
/// the tag, so a file of one kind never opens as another.
pub fn seal_for(purpose: &[u8; 8], app: &str, key: &[u8], plain: &[u8]) -> Result<Vec<u8>, LifecycleError> {
    use chacha20poly1305::aead::{Aead, Payload};
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| LifecycleError::Local(format!("no system randomness: {e}")))?;
    let ct = cipher(key)?
        .encrypt(
            &chacha20poly1305::XNonce::from(nonce),
            Payload {
                msg: plain,
                aad: &sealed_aad(purpose, app),
            },
        )
        .map_err(|_| LifecycleError::Local("cannot seal the journal".into()))?;
    let mut out = Vec::with_capacity(purpose.len() + NONCE_LEN + ct.len());
    out.extend_from_slice(purpose);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens what [`seal_for`] sealed with the same purpose, app and key;
/// `None` for anything incomplete, altered, of another purpose or sealed
/// under another key.
pub fn open_for(purpose: &[u8; 8], app: &str, key: &[u8], bytes: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    use chacha20poly1305::aead::{Aead, Payload};
    let rest = bytes.strip_prefix(purpose.as_slice())?;
    if rest.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    cipher(key)
        .ok()?
        .decrypt(
            &chacha20poly1305::XNonce::from(nonce),
            Payload {
                msg: ct,
                aad: &sealed_aad(purpose, app),
            },
        )
        .ok()
        .map(Zeroizing::new)
}

/// Seals `plain` for `app`: magic, nonce, ciphertext with its tag.
fn seal(app: &str, key: &[u8], plain: &[u8]) -> Result<Vec<u8>, LifecycleError> {
    seal_for(JOURNAL_MAGIC, app, key, plain)
}

/// Opens a sealed journal; `None` for anything incomplete, altered or
/// sealed under another key.
fn open_sealed(app: &str, key: &[u8], bytes: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    open_for(JOURNAL_MAGIC, app, key, bytes)
}

/// Writes `bytes` (already sealed) to the new file `dir/name`: created
/// exclusively with mode 0600 in a 0700 directory, synced, and the
/// directory synced, so the file is durable when this returns.
pub fn write_durable(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, LifecycleError> {
    private_dir(dir)?;
    let path = dir.join(name);
    let res = (|| {
        let mut opts = OpenOptions::new();
        opts.create_new(true).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&path)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        File::open(dir)?.sync_all()
    })();
    res.map_err(|e| LifecycleError::Local(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// `base\nrecord`: the store version the record replaces, and the record.
fn parse_plain(plain: &[u8]) -> Option<(Option<u64>, TokenRecord)> {
    let nl = plain.iter().position(|b| *b == b'\n')?;
    let base = std::str::from_utf8(&plain[..nl])
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let rec = TokenRecord::from_bytes(&plain[nl + 1..]).ok()?;
    Some((base, rec))
}

/// Why a token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// No token was ever obtained for this app.
    #[error("no token is stored for {app}")]
    NoToken {
        /// The app.
        app: String,
    },
    /// The stored token is (about to be) unusable and the grant has no
    /// refresh token, nor can connapp mint one without a user.
    #[error("the token of {app} {} and its grant has no refresh token", when(*expires_at, *now))]
    NoRefreshToken {
        /// The app.
        app: String,
        /// When the stored access token expires.
        expires_at: u64,
        /// Now.
        now: u64,
    },
    /// The provider refused the refresh token.
    #[error("the provider refused the refresh token of {app}: {source}")]
    RefreshRejected {
        /// The app.
        app: String,
        /// What it said.
        source: EdgeError,
        /// Who obtained the refused tokens (host, process, time), if recorded.
        by: Option<String>,
    },
    /// The provider refused this grant for good earlier (recorded in the
    /// token record); its tokens are dead and only a new consent helps.
    #[error("the provider refused the grant of {app} for good {} ({reason})", crate::ago(*at, *now))]
    GrantLost {
        /// The app.
        app: String,
        /// When connapp learned it.
        at: u64,
        /// Now.
        now: u64,
        /// What the provider said.
        reason: String,
        /// Who obtained the refused tokens (host, process, time), if recorded.
        by: Option<String>,
    },
    /// The provider refused the refresh token right after the store's lease
    /// expired under another host that never gave it back: that host may
    /// hold the rotated tokens in its journal.
    #[error(
        "the provider refused the refresh token of {app} right after another host let the store's lease expire mid-refresh; that host may hold the new tokens in its journal"
    )]
    HolderVanished {
        /// The app.
        app: String,
        /// Who obtained the refused tokens, if recorded.
        by: Option<String>,
    },
    /// The provider refused the refresh token after this host's own turn at
    /// the store's lease had run out mid-request, and no other host published
    /// a newer record within the lock timeout: another host most likely took
    /// its turn and used the refresh token first.
    #[error(
        "the provider refused the refresh token of {app} after this host's turn at the store's lease ran out in the middle of the request; another host has most likely renewed the grant"
    )]
    LeaseOutlived {
        /// The app.
        app: String,
    },
    /// The network or provider failed otherwise.
    #[error(transparent)]
    Edge(#[from] EdgeError),
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(String),
    /// Local files (lock, journal) failed.
    #[error("{0}")]
    Local(String),
    /// Another process holds the lock for too long.
    #[error("another connapp process has been refreshing {app} for over {secs} s; giving up")]
    LockTimeout {
        /// The app.
        app: String,
        /// How long we waited.
        secs: u64,
    },
}

/// The longest provider reason a lost-grant mark keeps.
const LOST_REASON_MAX: usize = 300;

/// "expired 30 s ago" or "expires in 20 s" (inside the refresh margin).
fn when(expires_at: u64, now: u64) -> String {
    if expires_at <= now {
        format!("expired {} s ago", now - expires_at)
    } else {
        format!("expires in {} s", expires_at - now)
    }
}

/// How a stale token is renewed.
pub struct Renew<'a> {
    /// With the stored refresh token (authorization-code grants).
    pub refresh: &'a dyn Fn(&SecretString) -> Result<TokenSet, EdgeError>,
    /// With the client's own credentials, no user (client credentials,
    /// Zoom's account credentials); `None` for grants that need a user.
    pub mint: Option<&'a dyn Fn() -> Result<TokenSet, EdgeError>>,
}

/// Where the lifecycle keeps its local files and how it behaves.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    /// The app's name (store namespace, lock and journal file names).
    pub app: String,
    /// Directory for `<app>.lock`.
    pub lock_dir: PathBuf,
    /// Directory for `<app>.journal`: one per store, so that an app of the
    /// same name in another store never meets this one's journals.
    pub journal_dir: PathBuf,
    /// The directory journals were kept in before they were kept per store
    /// (shared by every store): only the files there sealed under this app's
    /// journal key are its own, and only those are replayed and removed.
    pub legacy_journal_dir: Option<PathBuf>,
    /// Refresh when the access token expires within this many seconds.
    pub margin: u64,
    /// Give up waiting for another process's lock after this long.
    pub lock_timeout: Duration,
    /// The grant type recorded for tokens minted without a user.
    pub grant_type: String,
}

/// What [`Lifecycle::token`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The stored token was fresh.
    Stored,
    /// This process served the same fresh token a moment ago (the memory
    /// tier of a long-lived owner): neither the store nor the disk was read.
    Memory,
    /// Another process refreshed while we waited for the lock.
    RefreshedElsewhere,
    /// This call refreshed.
    Refreshed,
    /// This call obtained a new token with the client's credentials.
    Minted,
    /// A journal from an interrupted run was replayed.
    Replayed,
}

/// One mutex per app and store (keyed by the lock file's path) for the life
/// of the process (a handful; each is allocated once and kept).
fn process_lock(app: &str) -> &'static Mutex<()> {
    static LOCKS: OnceLock<Mutex<HashMap<String, &'static Mutex<()>>>> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    map.entry(app.to_string())
        .or_insert_with(|| Box::leak(Box::new(Mutex::new(()))))
}

/// Test builds only: kills the process at a named point (`CONNAPP_FAULT`);
/// with `CONNAPP_FAULT_SLOW=MS`, lingers MS milliseconds at every point, so
/// that kills at random moments land in each phase of a refresh (journal
/// durable but store not written, store written but journal not removed)
/// and not only in the start-up that dominates a run. With
/// `CONNAPP_FAULT_SKIP=N` the first N arrivals at the point pass (a batch
/// run killed at its N+1st app).
#[cfg(feature = "fault-injection")]
pub fn fault(point: &str) {
    static PASSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if let Some(ms) = std::env::var("CONNAPP_FAULT_SLOW")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
    if std::env::var("CONNAPP_FAULT").is_ok_and(|p| p == point) {
        let skip = std::env::var("CONNAPP_FAULT_SKIP")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if PASSED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < skip {
            return;
        }
        // SAFETY: sending SIGKILL to ourselves; nothing after this runs.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Test builds only: appends a line to `$CONNAPP_TRACE_DURABLE` once a
/// journal is durable, so a kill test knows the new token reached the disk.
#[cfg(feature = "fault-injection")]
fn durable_marker() {
    if let Some(p) = std::env::var_os("CONNAPP_TRACE_DURABLE")
        && let Ok(mut f) = OpenOptions::new().create(true).append(true).open(p)
    {
        let _ = f.write_all(b"durable\n");
        let _ = f.sync_all();
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
fn durable_marker() {}

/// Release builds: no fault points.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn fault(_point: &str) {}

fn private_dir(dir: &Path) -> Result<(), LifecycleError> {
    if dir.exists() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| LifecycleError::Local(format!("cannot create {}: {e}", dir.display())))
}

/// A held cross-process lock; released on drop.
pub struct AppLock {
    _file: File,
    _inner: std::sync::MutexGuard<'static, ()>,
}

impl Lifecycle {
    fn lock_path(&self) -> PathBuf {
        self.lock_dir.join(format!("{}.lock", self.app))
    }

    /// Every journal file of the app in its store's directory: sealed ones
    /// (`APP.journal.PID-N`) and those of older connapp versions
    /// (`APP.journal`, `.APP.journal.tmp.PID`).
    fn journal_files(&self) -> Vec<PathBuf> {
        self.journal_files_in(&self.journal_dir)
    }

    /// The journal files of an app of this name in the old shared directory
    /// (any store's: see [`Lifecycle::legacy_journal_dir`]).
    fn legacy_journal_files(&self) -> Vec<PathBuf> {
        match &self.legacy_journal_dir {
            Some(d) if *d != self.journal_dir => self.journal_files_in(d),
            _ => Vec::new(),
        }
    }

    /// Whether the journal at `path` opens under `key` (it is this app's).
    fn sealed_under(&self, key: &[u8], path: &Path) -> bool {
        connapp_plugin_api::bounded::read_file("the journal", path, MAX_JOURNAL_BYTES)
            .is_ok_and(|b| open_sealed(&self.app, key, &Zeroizing::new(b)).is_some())
    }

    fn journal_files_in(&self, dir: &Path) -> Vec<PathBuf> {
        let Ok(rd) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let exact = format!("{}.journal", self.app);
        let sealed = format!("{}.journal.", self.app);
        let legacy_tmp = format!(".{}.journal.tmp.", self.app);
        let mut v: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n == exact || n.starts_with(&sealed) || n.starts_with(&legacy_tmp)
            })
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }

    /// Takes the in-process and the cross-process lock of the app.
    pub fn lock(&self, mut waiting: impl FnMut()) -> Result<AppLock, LifecycleError> {
        let inner = process_lock(&self.lock_path().to_string_lossy())
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        private_dir(&self.lock_dir)?;
        let path = self.lock_path();
        let mut opts = OpenOptions::new();
        opts.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts
            .open(&path)
            .map_err(|e| LifecycleError::Local(format!("cannot open {}: {e}", path.display())))?;
        tracing::trace!(lock = %path.display(), "taking the app lock");
        let mut patience = Patience::new();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    patience.wait(self, &mut waiting, Duration::from_millis(15))?;
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(LifecycleError::Local(format!("cannot lock {}: {e}", path.display())));
                }
            }
        }
        Ok(AppLock {
            _file: file,
            _inner: inner,
        })
    }

    fn read(&self, store: &dyn TokenStore) -> Result<Option<(TokenRecord, u64)>, LifecycleError> {
        match store.load().map_err(LifecycleError::Store)? {
            None => Ok(None),
            Some((bytes, v)) => Ok(Some((
                TokenRecord::from_bytes(&bytes).map_err(LifecycleError::Store)?,
                v,
            ))),
        }
    }

    /// Seals `rec` (replacing store version `base`) into a journal file of
    /// its own and makes it durable; returns the file.
    fn write_journal(&self, key: &[u8], base: Option<u64>, rec: &TokenRecord) -> Result<PathBuf, LifecycleError> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = rec.to_bytes();
        let mut plain = Zeroizing::new(Vec::with_capacity(body.len() + 32));
        plain.extend_from_slice(format!("{}\n", base.map_or("-".to_string(), |v| v.to_string())).as_bytes());
        plain.extend_from_slice(&body);
        let sealed = seal(&self.app, key, &plain)?;
        tracing::debug!(journal = %self.journal_dir.display(), "journaling the new tokens (sealed) before the store write");
        let name = format!("{}.journal.{}-{n}", self.app, std::process::id());
        let path = write_durable(&self.journal_dir, &name, &sealed)?;
        durable_marker();
        Ok(path)
    }

    /// The newest complete journal among the app's journal files (sealed
    /// under `key`, or a legacy plaintext one), if any.
    fn read_journals(&self, key: &[u8], files: &[PathBuf]) -> Option<(Option<u64>, TokenRecord)> {
        let mut best: Option<(Option<u64>, TokenRecord)> = None;
        for path in files {
            let Ok(bytes) = connapp_plugin_api::bounded::read_file("the journal", path, MAX_JOURNAL_BYTES) else {
                continue;
            };
            let bytes = Zeroizing::new(bytes);
            let found = match open_sealed(&self.app, key, &bytes) {
                Some(plain) => parse_plain(&plain),
                // Written by an older connapp, in plaintext: complete if it parses.
                None if !bytes.starts_with(JOURNAL_MAGIC) => parse_plain(&bytes),
                None => None,
            };
            match found {
                Some(j) if best.as_ref().is_none_or(|(_, b)| j.1.obtained_at >= b.obtained_at) => best = Some(j),
                Some(_) => {}
                None => {
                    tracing::info!(journal = %path.display(), "an incomplete journal (a write that was cut off); removing it")
                }
            }
        }
        best
    }

    fn remove_journals(&self, files: &[PathBuf]) {
        for f in files {
            let _ = fs::remove_file(f);
        }
        if let Ok(d) = File::open(&self.journal_dir) {
            let _ = d.sync_all();
        }
    }

    /// Makes `rec` durable: journal, then store (CAS against `base`), then
    /// drop the journal. Returns the new store version.
    fn commit(
        &self,
        store: &dyn TokenStore,
        key: &[u8],
        base: Option<u64>,
        rec: &TokenRecord,
    ) -> Result<u64, LifecycleError> {
        let journal = self.write_journal(key, base, rec)?;
        fault("after-response");
        let bytes = rec.to_bytes();
        let v = match store.save(&bytes, base) {
            Ok(v) => v,
            Err(None) => {
                // Someone wrote meanwhile (another host). Ours is newer than
                // what we started from; keep it, but only over an older record.
                let current = self.read(store)?;
                match current {
                    Some((cur, cv)) if cur.obtained_at <= rec.obtained_at => store
                        .save(&bytes, Some(cv))
                        .map_err(|e| LifecycleError::Store(e.unwrap_or_else(|| "conflict again".into())))?,
                    Some((_, cv)) => cv,
                    None => store
                        .save(&bytes, None)
                        .map_err(|e| LifecycleError::Store(e.unwrap_or_else(|| "conflict again".into())))?,
                }
            }
            // The journal stays and is replayed next time.
            Err(Some(e)) => return Err(LifecycleError::Store(e)),
        };
        fault("after-store-write");
        self.remove_journals(&[journal]);
        Ok(v)
    }

    /// Replays what interrupted runs left: the newest complete journal, if
    /// newer than the store; then removes every journal file of the app.
    /// The journal key is fetched into `key` only when there is a journal.
    /// Caller holds the lock.
    fn replay(&self, store: &dyn TokenStore, key: &mut Option<Zeroizing<Vec<u8>>>) -> Result<bool, LifecycleError> {
        let mut files = self.journal_files();
        let legacy = self.legacy_journal_files();
        if files.is_empty() && legacy.is_empty() {
            return Ok(false);
        }
        let key = self.key(store, key)?;
        // In the old shared directory, another store's app of the same name
        // may have left its only copy of a rotated token: never touch it.
        for path in legacy {
            if self.sealed_under(key, &path) {
                files.push(path);
            } else {
                tracing::info!(journal = %path.display(), "a journal of another store's app of the same name; left alone");
            }
        }
        if files.is_empty() {
            return Ok(false);
        }
        let Some((base, rec)) = self.read_journals(key, &files) else {
            self.remove_journals(&files);
            return Ok(false);
        };
        let current = self.read(store)?;
        let newer = match &current {
            None => true,
            Some((cur, v)) => Some(*v) == base || cur.obtained_at < rec.obtained_at,
        };
        tracing::info!(app = %self.app, newer, "replaying the journal of an interrupted run");
        if newer {
            let expected = current.as_ref().map(|(_, v)| *v);
            store.save(&rec.to_bytes(), expected).map_err(|e| {
                LifecycleError::Store(e.unwrap_or_else(|| "conflict while replaying the journal".into()))
            })?;
        }
        self.remove_journals(&files);
        Ok(newer)
    }

    /// The journal key, read from the store (created there on first use)
    /// the first time this call needs it, and kept in `slot` for the rest.
    fn key<'k>(
        &self,
        store: &dyn TokenStore,
        slot: &'k mut Option<Zeroizing<Vec<u8>>>,
    ) -> Result<&'k [u8], LifecycleError> {
        let k = match slot.take() {
            Some(k) => k,
            None => store.journal_key().map_err(LifecycleError::Store)?,
        };
        Ok(slot.insert(k).as_slice())
    }

    /// Stores a brand-new grant (login, client/account credentials) durably.
    pub fn store_new(&self, store: &dyn TokenStore, rec: &TokenRecord) -> Result<(), LifecycleError> {
        let _lock = self.lock(|| {})?;
        let mut key = None;
        self.replay(store, &mut key)?;
        let base = self.read(store)?.map(|(_, v)| v);
        self.commit(store, self.key(store, &mut key)?, base, rec)?;
        Ok(())
    }

    /// A valid token: the stored one if fresh (and `force` is false), else a
    /// renewed one — refreshed, or minted anew for grants without a user —
    /// renewed at most once across processes (the per-app lock, then a
    /// re-read: 32 callers at once cause one request).
    pub fn token(
        &self,
        store: &dyn TokenStore,
        now: &dyn Fn() -> u64,
        force: bool,
        renew: &Renew<'_>,
        mut waiting: impl FnMut(),
    ) -> Result<(TokenRecord, Source), LifecycleError> {
        // Fast path without the lock.
        if !force
            && self.journal_files().is_empty()
            && self.legacy_journal_files().is_empty()
            && let Some((rec, _)) = self.read(store)?
            && rec.lost.is_none()
            && rec.is_fresh(now(), self.margin)
        {
            return Ok((rec, Source::Stored));
        }
        let _lock = self.lock(&mut waiting)?;
        let mut slot = None;
        let replayed = self.replay(store, &mut slot)?;
        // A renewal asked for, with the store's lease free at once: the
        // record is read once, under the lease (one read before it would be
        // read again once it is held). Otherwise it is taken below, waiting
        // while another host holds it.
        let mut early = if force && !replayed {
            self.turn_if_free(store, now)
        } else {
            None
        };
        let stored = self.read(store)?;
        let (rec, version) = match (stored, renew.mint) {
            (Some(s), _) => s,
            (None, Some(mint)) => return self.mint(store, self.key(store, &mut slot)?, None, mint, now),
            (None, None) => return Err(LifecycleError::NoToken { app: self.app.clone() }),
        };
        // A grant the provider refused for good: its tokens are never served
        // (an access token may look fresh, but it is dead).
        if let Some(e) = self.lost(&rec, now) {
            return Err(e);
        }
        if rec.is_fresh(now(), self.margin) && (!force || replayed) {
            let src = if replayed {
                Source::Replayed
            } else {
                Source::RefreshedElsewhere
            };
            return Ok((rec, src));
        }
        // Hosts sharing the store take turns: while another host holds the
        // lease, the record it publishes is the answer; once this one holds
        // it, the record is read again (a turn may have ended just before).
        let lease = store.lease().unwrap_or_else(|e| {
            tracing::warn!(
                "{}: cannot open the store's lease, so hosts sharing the store may refresh at once: {e}",
                self.app
            );
            None
        });
        let (mut rec, mut version) = (rec, version);
        let mut retakes = 0;
        let turn = loop {
            // The record was read under this turn already.
            let held_when_read = early.is_some();
            let turn = match (early.take(), lease) {
                (Some(turn), _) => Some(turn),
                (None, None) => None,
                (None, Some(lease)) => match self.take_turn(store, lease, version, now, &mut waiting)? {
                    Ok(turn) => turn,
                    Err(published) => return Ok((published, Source::RefreshedElsewhere)),
                },
            };
            if turn.is_some()
                && !held_when_read
                && let Some((newer, v)) = self.read(store)?
                && v != version
            {
                // Another host marked it lost meanwhile: no request for a dead grant.
                if let Some(e) = self.lost(&newer, now) {
                    return Err(e);
                }
                if newer.is_fresh(now(), self.margin) {
                    return Ok((newer, Source::RefreshedElsewhere));
                }
                (rec, version) = (newer, v);
            }
            // Read before the request, not after it: the journal exists for
            // the case where the store fails once the answer is in, and then
            // the key must already be at hand. Callers that find a fresh
            // token above (another process renewed it) never read it.
            self.key(store, &mut slot)?;
            // The store was slow (an election): too little of the turn is
            // left for a whole request to the provider. A new turn, rather
            // than a request the lease may not outlive (a few times at most).
            if retakes < 3 && turn.as_ref().is_some_and(|t| !t.room_for_a_request(now())) {
                retakes += 1;
                tracing::info!(app = %self.app, "too little of this host's turn at the lease is left for a request; taking a new turn");
                continue;
            }
            break turn;
        };
        tracing::info!(app = %self.app, expires_at = rec.expires_at, "the stored token needs renewing");
        let key = self.key(store, &mut slot)?;
        let mut retried = false;
        let set = loop {
            let Some(rt) = &rec.refresh_token else {
                if let Some(mint) = renew.mint {
                    return self.mint(store, key, Some(version), mint, now);
                }
                return Err(LifecycleError::NoRefreshToken {
                    app: self.app.clone(),
                    expires_at: rec.expires_at,
                    now: now(),
                });
            };
            fault("before-request");
            let e = match (renew.refresh)(rt) {
                Ok(set) => break set,
                Err(e @ EdgeError::Rejected { .. }) => e,
                Err(other) => return Err(LifecycleError::Edge(other)),
            };
            if e.oauth_error() == Some("invalid_grant") {
                // The previous lease holder vanished mid-turn: it may have
                // rotated the tokens and kept the answer in its journal.
                // Not proof the grant is gone; never marked lost for it.
                if turn.as_ref().is_some_and(|t| t.after_expiry)
                    && let Some((newer, v)) = self.read(store)?
                    && v == version
                {
                    return Err(LifecycleError::HolderVanished {
                        app: self.app.clone(),
                        by: newer.by.clone(),
                    });
                }
                // This host's own turn ran out while the provider
                // answered: another host may have taken the lease and
                // used the refresh token first. Its record is the answer;
                // a refusal is no proof the grant is gone.
                if turn.as_ref().is_some_and(|t| t.ran_out(now())) {
                    return self.after_outlived_turn(store, version, now, &mut waiting);
                }
                match self.grant_refused(store, &rec, version, &e, now)? {
                    Refused::Newer(elsewhere) => return Ok((elsewhere, Source::RefreshedElsewhere)),
                    // What was read was older than the store (a standby's
                    // stale answer): once more with the newer refresh token.
                    Refused::Retry(newer, v) if !retried => {
                        tracing::info!(app = %self.app, "refused a refresh token the store has replaced since; trying the newer one");
                        (rec, version, retried) = (newer, v, true);
                        continue;
                    }
                    Refused::Retry(..) | Refused::Gone => {}
                }
            }
            return Err(LifecycleError::RefreshRejected {
                app: self.app.clone(),
                source: e,
                by: rec.by.clone(),
            });
        };
        let mut new = rec.refreshed(set, now());
        new.by = Some(holder(now()));
        self.commit(store, key, Some(version), &new)?;
        Ok((new, Source::Refreshed))
    }

    /// After a refusal that came once this host's turn had run out: waits
    /// (up to the lock timeout) for the host that took over to publish, and
    /// serves its record; never marks the grant lost.
    fn after_outlived_turn(
        &self,
        store: &dyn TokenStore,
        version: u64,
        now: &dyn Fn() -> u64,
        waiting: &mut impl FnMut(),
    ) -> Result<(TokenRecord, Source), LifecycleError> {
        tracing::info!(app = %self.app, "refused after this host's turn at the lease ran out; waiting for the host that took over");
        let mut patience = Patience::new();
        loop {
            if let Some((newer, v)) = self.read(store)?
                && v != version
            {
                if let Some(e) = self.lost(&newer, now) {
                    return Err(e);
                }
                if newer.is_fresh(now(), self.margin) {
                    return Ok((newer, Source::RefreshedElsewhere));
                }
            }
            if patience.wait(self, waiting, Duration::from_millis(100)).is_err() {
                return Err(LifecycleError::LeaseOutlived { app: self.app.clone() });
            }
        }
    }

    /// The error for `rec` when the provider refused its grant for good.
    fn lost(&self, rec: &TokenRecord, now: &dyn Fn() -> u64) -> Option<LifecycleError> {
        rec.lost.as_ref().map(|lost| LifecycleError::GrantLost {
            app: self.app.clone(),
            at: lost.at,
            now: now(),
            reason: lost.reason.clone(),
            by: rec.by.clone(),
        })
    }

    /// This host's turn at the store's lease if it is free now; `None` when
    /// another host holds it, the store offers none, or it cannot be asked
    /// (the caller then takes it the usual way, waiting or warning).
    fn turn_if_free<'l>(&self, store: &'l dyn TokenStore, now: &dyn Fn() -> u64) -> Option<Turn<'l>> {
        let lease = store.lease().ok()??;
        let asked_at = now();
        let t = lease.try_take(&holder(asked_at), lease_ttl()).ok()??;
        tracing::debug!(app = %self.app, version = t.version, after_expiry = t.after_expiry, "took the store's lease before reading the record");
        Some(Turn {
            lease,
            version: t.version,
            after_expiry: t.after_expiry,
            asked_at,
        })
    }

    /// Takes the store's lease for a refresh of the record read at
    /// `version`; while another host holds it, waits (up to the lock
    /// timeout) and re-reads: a usable record that host published is the
    /// answer (`Err`). `Ok(Some)`: this host's turn, given back when dropped;
    /// `Ok(None)`: the lease could not be used (e.g. the Vault policy lacks
    /// its path), so the refresh goes on as on a single host, with a warning.
    fn take_turn<'l>(
        &self,
        store: &dyn TokenStore,
        lease: &'l dyn HostLease,
        version: u64,
        now: &dyn Fn() -> u64,
        waiting: &mut impl FnMut(),
    ) -> Result<Result<Option<Turn<'l>>, TokenRecord>, LifecycleError> {
        let who = holder(now());
        let mut patience = Patience::new();
        loop {
            let asked_at = now();
            match lease.try_take(&who, lease_ttl()) {
                Ok(Some(t)) => {
                    tracing::debug!(app = %self.app, version = t.version, after_expiry = t.after_expiry, "took the store's lease");
                    return Ok(Ok(Some(Turn {
                        lease,
                        version: t.version,
                        after_expiry: t.after_expiry,
                        asked_at,
                    })));
                }
                Ok(None) => {}
                // The store is away for now (an election, an outage): wait for
                // it as for a holder; refreshing without the lease would race.
                Err(e) if e.retryable => {
                    tracing::info!(app = %self.app, "the store's lease is unavailable for now ({}); waiting", e.message);
                }
                Err(e) => {
                    tracing::warn!(
                        "{}: cannot take the store's lease, so hosts sharing the store may refresh at once: {}",
                        self.app,
                        e.message
                    );
                    return Ok(Ok(None));
                }
            }
            if !patience.told {
                tracing::info!(app = %self.app, "another host holds the store's lease; waiting for its answer");
            }
            patience.wait(self, waiting, Duration::from_millis(100))?;
            if let Some((rec, v)) = self.read(store)?
                && v != version
            {
                // The holder found the grant gone: so is ours.
                if let Some(e) = self.lost(&rec, now) {
                    return Err(e);
                }
                if rec.is_fresh(now(), self.margin) {
                    return Ok(Err(rec));
                }
            }
        }
    }

    /// The provider said `invalid_grant` to the refresh token of `rec` (read
    /// at `version`). If another holder has stored a newer record since (a
    /// host that does not share this lock refreshed a rotating refresh token
    /// first), that record is the answer; if its access token has expired
    /// meanwhile but its refresh token is another, one more request is worth
    /// it (what was refused came from a stale read). Otherwise the grant is gone: the
    /// record is marked lost — only if it is still at `version` — so every
    /// later `token` and `status` knows without asking the provider again.
    fn grant_refused(
        &self,
        store: &dyn TokenStore,
        rec: &TokenRecord,
        version: u64,
        e: &EdgeError,
        now: &dyn Fn() -> u64,
    ) -> Result<Refused, LifecycleError> {
        if let Some((newer, v)) = self.read(store)?
            && v != version
        {
            if newer.lost.is_some() {
                return Ok(Refused::Gone);
            }
            if newer.is_fresh(now(), self.margin) {
                return Ok(Refused::Newer(newer));
            }
            use secrecy::ExposeSecret;
            let other_token = match (&newer.refresh_token, &rec.refresh_token) {
                (Some(a), Some(b)) => a.expose_secret() != b.expose_secret(),
                _ => false,
            };
            return Ok(if other_token {
                Refused::Retry(newer, v)
            } else {
                Refused::Gone
            });
        }
        let mut reason = e.to_string();
        if reason.len() > LOST_REASON_MAX {
            let mut cut = LOST_REASON_MAX;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        tracing::info!(app = %self.app, "the provider refused the grant (invalid_grant); marking it lost");
        // A failed mark (the store moved on, or failed) leaves the record as
        // it was; the refusal is reported either way.
        let _ = store.save(&rec.marked_lost(now(), reason).to_bytes(), Some(version));
        Ok(Refused::Gone)
    }

    /// A new token from the client's credentials, committed like a refresh.
    /// Caller holds the lock.
    fn mint(
        &self,
        store: &dyn TokenStore,
        key: &[u8],
        version: Option<u64>,
        mint: &dyn Fn() -> Result<TokenSet, EdgeError>,
        now: &dyn Fn() -> u64,
    ) -> Result<(TokenRecord, Source), LifecycleError> {
        tracing::info!(app = %self.app, "obtaining a new token with the client's credentials");
        fault("before-request");
        let set = mint()?;
        let mut new = TokenRecord::from_set(set, &self.grant_type, now());
        new.by = Some(holder(now()));
        self.commit(store, key, version, &new)?;
        Ok((new, Source::Minted))
    }

    /// Removes the app's journal files (after a revoke).
    pub fn forget_journal(&self) {
        self.remove_journals(&self.journal_files());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use secrecy::ExposeSecret;

    use super::*;

    #[derive(Default)]
    struct Mem(Mutex<Option<(Vec<u8>, u64)>>, AtomicU64);

    impl TokenStore for Mem {
        fn load(&self) -> Result<Option<Versioned>, String> {
            Ok(self
                .0
                .lock()
                .expect("lock")
                .clone()
                .map(|(b, v)| (Zeroizing::new(b), v)))
        }
        fn save(&self, bytes: &[u8], expected: Option<u64>) -> Result<u64, Option<String>> {
            let mut g = self.0.lock().expect("lock");
            if g.as_ref().map(|(_, v)| *v) != expected {
                return Err(None);
            }
            let v = self.1.fetch_add(1, Ordering::SeqCst) + 1;
            *g = Some((bytes.to_vec(), v));
            Ok(v)
        }
        fn journal_key(&self) -> Result<Zeroizing<Vec<u8>>, String> {
            Ok(Zeroizing::new(vec![7u8; 32]))
        }
    }

    const KEY: &[u8] = &[7u8; 32];

    /// A store shared by several hosts: `Mem` and a lease that is either free,
    /// held by another host (who publishes `publish` on the first wait), or
    /// broken; it counts takes and give-backs.
    struct Shared<'a> {
        mem: &'a Mem,
        lease: FakeLease<'a>,
    }

    struct FakeLease<'a> {
        mem: &'a Mem,
        held_elsewhere: bool,
        broken: bool,
        /// The previous holder let the lease expire.
        after_expiry: bool,
        /// Answers this many times "unavailable, try again" first.
        away: AtomicU64,
        publish: Mutex<Option<TokenRecord>>,
        taken: AtomicU64,
        given_back: AtomicU64,
    }

    impl<'a> FakeLease<'a> {
        fn new(mem: &'a Mem) -> Self {
            FakeLease {
                mem,
                held_elsewhere: false,
                broken: false,
                after_expiry: false,
                away: AtomicU64::new(0),
                publish: Mutex::new(None),
                taken: AtomicU64::new(0),
                given_back: AtomicU64::new(0),
            }
        }
    }

    impl HostLease for FakeLease<'_> {
        fn try_take(&self, holder: &str, ttl_secs: u64) -> Result<Option<LeaseTaken>, LeaseError> {
            assert!(holder.contains("pid") && ttl_secs == LEASE_TTL_SECS);
            if self.broken {
                return Err(LeaseError {
                    message: "permission denied on locks/app".into(),
                    retryable: false,
                });
            }
            if self.away.load(Ordering::SeqCst) > 0 {
                self.away.fetch_sub(1, Ordering::SeqCst);
                return Err(LeaseError {
                    message: "Vault answered HTTP 503".into(),
                    retryable: true,
                });
            }
            if self.held_elsewhere {
                // The other host's answer lands while this one waits.
                if let Some(rec) = self.publish.lock().expect("lock").take() {
                    let v = self.mem.load().expect("load").map(|(_, v)| v);
                    self.mem.save(&rec.to_bytes(), v).expect("publish");
                }
                return Ok(None);
            }
            Ok(Some(LeaseTaken {
                version: self.taken.fetch_add(1, Ordering::SeqCst) + 1,
                after_expiry: self.after_expiry,
            }))
        }
        fn give_back(&self, _version: u64) {
            self.given_back.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl TokenStore for Shared<'_> {
        fn load(&self) -> Result<Option<Versioned>, String> {
            self.mem.load()
        }
        fn save(&self, bytes: &[u8], expected: Option<u64>) -> Result<u64, Option<String>> {
            self.mem.save(bytes, expected)
        }
        fn journal_key(&self) -> Result<Zeroizing<Vec<u8>>, String> {
            self.mem.journal_key()
        }
        fn lease(&self) -> Result<Option<&dyn HostLease>, String> {
            Ok(Some(&self.lease))
        }
    }

    /// A shared store whose reads pass `hook` first, with the read's number
    /// (from 0): it may act meanwhile (another host publishes, the clock
    /// moves) or answer instead of the store (a standby's stale copy).
    struct Hooked<'a> {
        shared: Shared<'a>,
        reads: AtomicU64,
        hook: Box<dyn Fn(u64) -> Option<Versioned> + 'a>,
    }

    impl<'a> Hooked<'a> {
        fn new(mem: &'a Mem, hook: impl Fn(u64) -> Option<Versioned> + 'a) -> Self {
            Hooked {
                shared: Shared {
                    mem,
                    lease: FakeLease::new(mem),
                },
                reads: AtomicU64::new(0),
                hook: Box::new(hook),
            }
        }
    }

    impl TokenStore for Hooked<'_> {
        fn load(&self) -> Result<Option<Versioned>, String> {
            match (self.hook)(self.reads.fetch_add(1, Ordering::SeqCst)) {
                Some(answer) => Ok(Some(answer)),
                None => self.shared.load(),
            }
        }
        fn save(&self, bytes: &[u8], expected: Option<u64>) -> Result<u64, Option<String>> {
            self.shared.save(bytes, expected)
        }
        fn journal_key(&self) -> Result<Zeroizing<Vec<u8>>, String> {
            self.shared.journal_key()
        }
        fn lease(&self) -> Result<Option<&dyn HostLease>, String> {
            self.shared.lease()
        }
    }

    /// On a shared store a refresh takes the lease first and gives it back;
    /// while another host holds it, the record that host publishes is the
    /// answer (no request of this host's); a lease that cannot be used
    /// degrades to a single host's refresh, never to a failure.
    #[test]
    fn hosts_take_turns_through_the_stores_lease() {
        let (_dir, l, mem) = world();
        l.store_new(&mem, &rec("at-1", "rt-1", 1000, 0)).expect("store");
        let refreshes = AtomicU64::new(0);
        let refresh = |_: &SecretString| {
            refreshes.fetch_add(1, Ordering::SeqCst);
            Ok(set("at-2", "rt-2"))
        };
        let renew = Renew {
            refresh: &refresh,
            mint: None,
        };
        // Free: taken, refreshed once, given back.
        let store = Shared {
            mem: &mem,
            lease: FakeLease::new(&mem),
        };
        let (r, s) = l.token(&store, &|| 990, false, &renew, || {}).expect("token");
        assert_eq!((r.access_token.expose_secret(), s), ("at-2", Source::Refreshed));
        assert_eq!(store.lease.taken.load(Ordering::SeqCst), 1);
        assert_eq!(store.lease.given_back.load(Ordering::SeqCst), 1);
        assert_eq!(refreshes.load(Ordering::SeqCst), 1);
        // The record says which host and process obtained it, for a later refusal's message.
        let by = stored(&mem).by.expect("who obtained it");
        assert!(by.contains(&format!("pid {}", std::process::id())), "{by}");

        // Held by another host, which publishes its answer: that is ours.
        let mut waited = 0;
        let mut lease = FakeLease::new(&mem);
        lease.held_elsewhere = true;
        *lease.publish.lock().expect("lock") = Some(rec("at-3", "rt-3", 9000, 4000));
        let store = Shared { mem: &mem, lease };
        let (r, s) = l.token(&store, &|| 5000, false, &renew, || waited += 1).expect("token");
        assert_eq!(
            (r.access_token.expose_secret(), s),
            ("at-3", Source::RefreshedElsewhere)
        );
        assert_eq!(refreshes.load(Ordering::SeqCst), 1, "no request of this host's");
        assert_eq!(waited, 1, "the wait is reported once");

        // The holder found the grant gone and marked it: the waiter says so
        // at once, without a request of its own.
        let mut lease = FakeLease::new(&mem);
        lease.held_elsewhere = true;
        let current = stored(&mem);
        *lease.publish.lock().expect("lock") = Some(current.marked_lost(8000, "invalid_grant".into()));
        let store = Shared { mem: &mem, lease };
        let e = l.token(&store, &|| 9050, false, &renew, || {}).expect_err("lost");
        assert!(matches!(e, LifecycleError::GrantLost { at: 8000, .. }), "{e}");
        assert_eq!(refreshes.load(Ordering::SeqCst), 1, "no request for a dead grant");
        // A new consent (here: a new record) makes it usable again.
        let v = mem.load().expect("load").map(|(_, v)| v);
        mem.save(&rec("at-4", "rt-4", 9060, 9000).to_bytes(), v)
            .expect("new grant");

        // A store that is away for a moment (an election): waited for, not raced.
        let lease = FakeLease::new(&mem);
        lease.away.store(2, Ordering::SeqCst);
        let store = Shared { mem: &mem, lease };
        let (_, s) = l.token(&store, &|| 9100, false, &renew, || {}).expect("token");
        assert_eq!(s, Source::Refreshed);
        assert_eq!(store.lease.taken.load(Ordering::SeqCst), 1, "taken once it answered");
        assert_eq!(refreshes.load(Ordering::SeqCst), 2);

        // The previous holder died after the provider rotated the tokens
        // (the lease expired instead of being given back): a refusal now is
        // not proof the grant is gone; the record is not marked lost.
        let dead = |_: &SecretString| -> Result<TokenSet, EdgeError> {
            Err(EdgeError::Rejected {
                endpoint: "token",
                status: 400,
                error: "invalid_grant".into(),
                reason: Some("Invalid Token!".into()),
            })
        };
        let renew_dead = Renew {
            refresh: &dead,
            mint: None,
        };
        let mut lease = FakeLease::new(&mem);
        lease.after_expiry = true;
        let store = Shared { mem: &mem, lease };
        let e = l
            .token(&store, &|| 13_000, false, &renew_dead, || {})
            .expect_err("refused");
        assert!(matches!(e, LifecycleError::HolderVanished { .. }), "{e}");
        assert_eq!(stored(&mem).lost, None, "not marked lost");

        // A lease that cannot be used: the refresh goes on.
        let mut lease = FakeLease::new(&mem);
        lease.broken = true;
        let store = Shared { mem: &mem, lease };
        let (_, s) = l.token(&store, &|| 14_000, false, &renew, || {}).expect("token");
        assert_eq!(s, Source::Refreshed);
        assert_eq!(refreshes.load(Ordering::SeqCst), 3);
    }

    /// With an injected clock: this host's turn at the lease runs out while
    /// the provider answers (the clock passes the lease's TTL during the
    /// request), another host takes over, uses the refresh token first and
    /// publishes; the provider then refuses this host's request. The other
    /// host's record is served and nothing is marked lost; when nothing is
    /// published within the lock timeout, the error says so (not "consent
    /// again").
    #[test]
    fn a_turn_that_ran_out_mid_request_serves_the_next_holders_record() {
        let (_dir, mut l, mem) = world();
        l.lock_timeout = Duration::from_millis(300);
        l.store_new(&mem, &rec("at-1", "rt-1", 1000, 0)).expect("store");
        let clock = AtomicU64::new(2000);
        let now = || clock.load(Ordering::SeqCst);
        let refused = || EdgeError::Rejected {
            endpoint: "token",
            status: 400,
            error: "invalid_grant".into(),
            reason: Some("Invalid Token!".into()),
        };
        // The other host took over and publishes a moment after the
        // provider refused this host's request (its own write is still on
        // the way when the refusal arrives).
        let publish = Mutex::new(None::<TokenRecord>);
        let publish_at = AtomicU64::new(u64::MAX);
        let store = Hooked::new(&mem, |n| {
            if n == publish_at.load(Ordering::SeqCst)
                && let Some(rec) = publish.lock().expect("lock").take()
            {
                let v = mem.load().expect("load").map(|(_, v)| v);
                mem.save(&rec.to_bytes(), v).expect("the other host publishes");
            }
            None
        });
        let slow_then_refused = |_: &SecretString| -> Result<TokenSet, EdgeError> {
            let t = clock.fetch_add(LEASE_TTL_SECS + 5, Ordering::SeqCst) + LEASE_TTL_SECS + 5;
            *publish.lock().expect("lock") = Some(rec("at-other", "rt-other", t + 3600, t));
            // On the second read from now.
            publish_at.store(store.reads.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
            Err(refused())
        };
        let (got, s) = l
            .token(
                &store,
                &now,
                false,
                &Renew {
                    refresh: &slow_then_refused,
                    mint: None,
                },
                || {},
            )
            .expect("the other host's record");
        assert_eq!(s, Source::RefreshedElsewhere);
        assert_eq!(got.access_token.expose_secret(), "at-other");
        assert_eq!(stored(&mem).lost, None);

        // Nobody publishes: a clear error after the lock timeout, the record untouched.
        clock.fetch_add(7200, Ordering::SeqCst);
        let slow_refused = |_: &SecretString| -> Result<TokenSet, EdgeError> {
            clock.fetch_add(LEASE_TTL_SECS, Ordering::SeqCst);
            Err(refused())
        };
        let store = Shared {
            mem: &mem,
            lease: FakeLease::new(&mem),
        };
        let e = l
            .token(
                &store,
                &now,
                false,
                &Renew {
                    refresh: &slow_refused,
                    mint: None,
                },
                || {},
            )
            .expect_err("refused");
        assert!(matches!(e, LifecycleError::LeaseOutlived { .. }), "{e}");
        assert_eq!(stored(&mem).lost, None, "not marked lost");
        assert_eq!(store.lease.given_back.load(Ordering::SeqCst), 1);

        // Within its turn, the same refusal is the grant's end, as before.
        clock.fetch_add(7200, Ordering::SeqCst);
        let quick_refused = |_: &SecretString| -> Result<TokenSet, EdgeError> { Err(refused()) };
        let store = Shared {
            mem: &mem,
            lease: FakeLease::new(&mem),
        };
        let e = l
            .token(
                &store,
                &now,
                false,
                &Renew {
                    refresh: &quick_refused,
                    mint: None,
                },
                || {},
            )
            .expect_err("refused");
        assert!(matches!(e, LifecycleError::RefreshRejected { .. }), "{e}");
        assert!(stored(&mem).lost.is_some(), "marked lost");
    }

    /// A stale read from a standby: right after this host takes the lease,
    /// the store answers once with the record from before the previous
    /// holder's publish (a Raft standby that has not caught up; store-vault
    /// asks for consistent reads, this is the defence behind them). The
    /// rotated-away refresh token is refused; the record read again is the
    /// newer one, served, and nothing is marked lost.
    #[test]
    fn a_stale_read_after_taking_the_lease_costs_no_grant() {
        let (_dir, l, mem) = world();
        l.store_new(&mem, &rec("at-1", "rt-1", 1000, 0)).expect("store");
        // The previous holder's publish, already in the store.
        let v = mem.load().expect("load").map(|(_, v)| v);
        mem.save(&rec("at-2", "rt-2", 9000, 5000).to_bytes(), v)
            .expect("publish");
        let stale = rec("at-1", "rt-1", 1000, 0).to_bytes();
        let stale = Mutex::new(Some((stale.to_vec(), 1u64)));
        // Forced, with the lease free: the lease is taken first, and the
        // one read under the lock (0) comes after it.
        let stale_at = AtomicU64::new(0);
        // The read right after the lease is stale, once.
        let store = Hooked::new(&mem, |n| {
            if n != stale_at.load(Ordering::SeqCst) {
                return None;
            }
            stale.lock().expect("lock").take().map(|(b, v)| (Zeroizing::new(b), v))
        });
        let spent = Mutex::new(Vec::new());
        let rotating = |rt: &SecretString| -> Result<TokenSet, EdgeError> {
            spent.lock().expect("lock").push(rt.expose_secret().to_string());
            if rt.expose_secret() == "rt-1" {
                return Err(EdgeError::Rejected {
                    endpoint: "token",
                    status: 400,
                    error: "invalid_grant".into(),
                    reason: Some("Invalid Token!".into()),
                });
            }
            Ok(set("at-3", "rt-3"))
        };
        // Forced: the fresh record does not end the call before the lease.
        let (got, s) = l
            .token(
                &store,
                &|| 6000,
                true,
                &Renew {
                    refresh: &rotating,
                    mint: None,
                },
                || {},
            )
            .expect("the newer record");
        assert_eq!(spent.lock().expect("lock").as_slice(), ["rt-1"], "one refused request");
        assert_eq!(s, Source::RefreshedElsewhere);
        assert_eq!(got.access_token.expose_secret(), "at-2");
        assert_eq!(stored(&mem).lost, None, "not marked lost");

        // Later, at-2 has expired too: after the stale read's refusal the
        // newer record's refresh token is tried, once, and works.
        spent.lock().expect("lock").clear();
        *stale.lock().expect("lock") = Some((rec("at-1", "rt-1", 1000, 0).to_bytes().to_vec(), 1));
        store.reads.store(0, Ordering::SeqCst);
        // Not forced: the fast path's read comes first.
        stale_at.store(2, Ordering::SeqCst);
        let (got, s) = l
            .token(
                &store,
                &|| 20_000,
                false,
                &Renew {
                    refresh: &rotating,
                    mint: None,
                },
                || {},
            )
            .expect("refreshed with the newer refresh token");
        assert_eq!(spent.lock().expect("lock").as_slice(), ["rt-1", "rt-2"]);
        assert_eq!(s, Source::Refreshed);
        assert_eq!(got.access_token.expose_secret(), "at-3");
        assert_eq!(stored(&mem).access_token.expose_secret(), "at-3");
        assert_eq!(stored(&mem).lost, None, "not marked lost");
    }

    /// A renewal asked for (`refresh`) with the lease free: the lease is
    /// taken before the record is read, so the record is read once (under
    /// the lease), refreshed, published and the lease given back.
    #[test]
    fn a_forced_renewal_with_the_lease_free_reads_the_record_once() {
        let (_dir, l, mem) = world();
        l.store_new(&mem, &rec("at-1", "rt-1", 9000, 0)).expect("store");
        let store = Hooked::new(&mem, |_| None);
        let refresh = |rt: &SecretString| {
            assert_eq!(rt.expose_secret(), "rt-1");
            Ok(set("at-2", "rt-2"))
        };
        let (got, s) = l
            .token(
                &store,
                &|| 2000,
                true,
                &Renew {
                    refresh: &refresh,
                    mint: None,
                },
                || {},
            )
            .expect("renewed");
        assert_eq!((s, got.access_token.expose_secret()), (Source::Refreshed, "at-2"));
        assert_eq!(store.reads.load(Ordering::SeqCst), 1, "one read, under the lease");
        let lease = &store.shared.lease;
        assert_eq!(lease.taken.load(Ordering::SeqCst), 1);
        assert_eq!(lease.given_back.load(Ordering::SeqCst), 1);
        assert_eq!(stored(&mem).access_token.expose_secret(), "at-2");
    }

    /// With an injected clock: the store answers slowly right after this
    /// host takes the lease (an election), so too little of the turn is left
    /// for a request; the turn is given back and a new one taken before the
    /// provider is asked, once.
    #[test]
    fn a_turn_too_short_for_a_request_is_taken_anew() {
        let (_dir, l, mem) = world();
        l.store_new(&mem, &rec("at-1", "rt-1", 1000, 0)).expect("store");
        let clock = AtomicU64::new(2000);
        // The third read is the one right after the lease: slow.
        let store = Hooked::new(&mem, |n| {
            if n == 2 {
                clock.fetch_add(LEASE_TTL_SECS - 20, Ordering::SeqCst);
            }
            None
        });
        let asked = AtomicU64::new(0);
        let refresh = |_: &SecretString| {
            asked.fetch_add(1, Ordering::SeqCst);
            Ok(set("at-2", "rt-2"))
        };
        let (got, s) = l
            .token(
                &store,
                &|| clock.load(Ordering::SeqCst),
                false,
                &Renew {
                    refresh: &refresh,
                    mint: None,
                },
                || {},
            )
            .expect("refreshed");
        assert_eq!(s, Source::Refreshed);
        assert_eq!(got.access_token.expose_secret(), "at-2");
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        assert_eq!(store.shared.lease.taken.load(Ordering::SeqCst), 2, "a second turn");
        assert_eq!(store.shared.lease.given_back.load(Ordering::SeqCst), 2);
    }

    /// `token` at `now` for a grant with a user (refresh, no mint).
    fn token_at(
        l: &Lifecycle,
        store: &Mem,
        now: u64,
        refresh: &dyn Fn(&SecretString) -> Result<TokenSet, EdgeError>,
    ) -> Result<(TokenRecord, Source), LifecycleError> {
        l.token(store, &|| now, false, &Renew { refresh, mint: None }, || {})
    }

    /// A lifecycle whose locks and journals live in a fresh directory
    /// (removed on drop), and an empty store.
    fn world() -> (tempfile::TempDir, Lifecycle, Mem) {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = lc(dir.path());
        (dir, l, Mem::default())
    }

    fn lc(dir: &Path) -> Lifecycle {
        Lifecycle {
            app: "app".into(),
            lock_dir: dir.join("locks"),
            journal_dir: dir.join("journal"),
            legacy_journal_dir: None,
            margin: 60,
            lock_timeout: Duration::from_secs(5),
            grant_type: "authorization_code".into(),
        }
    }

    /// Journals in the old shared directory: the one sealed under this
    /// app's key is replayed and removed; another store's app of the same
    /// name (another key) keeps its own, untouched.
    #[test]
    fn a_shared_old_journal_directory_yields_only_this_stores_journals() {
        let (dir, mut l, store) = world();
        l.store_new(&store, &rec("at-1", "rt-1", 1000, 0)).expect("store");
        let shared = dir.path().join("journal-shared");
        let in_shared = Lifecycle {
            journal_dir: shared.clone(),
            ..lc(dir.path())
        };
        let foreign = in_shared
            .write_journal(&[9u8; 32], Some(7), &rec("at-other", "rt-other", 9000, 990))
            .expect("foreign journal");
        let ours = in_shared
            .write_journal(KEY, Some(1), &rec("at-2", "rt-2", 5000, 900))
            .expect("our journal");
        l.legacy_journal_dir = Some(shared);
        let refresh = |_: &SecretString| -> Result<TokenSet, EdgeError> { panic!("must not refresh") };
        let renew = Renew {
            refresh: &refresh,
            mint: None,
        };
        let (r, s) = l.token(&store, &|| 960, false, &renew, || {}).expect("token");
        assert_eq!((r.access_token.expose_secret(), s), ("at-2", Source::Replayed));
        assert!(!ours.exists(), "ours is replayed and removed");
        assert!(foreign.exists(), "another store's journal is left alone");
    }

    fn rec(at: &str, rt: &str, expires_at: u64, obtained_at: u64) -> TokenRecord {
        TokenRecord {
            access_token: SecretString::from(at.to_string()),
            refresh_token: Some(SecretString::from(rt.to_string())),
            expires_at,
            obtained_at,
            scopes: None,
            grant_type: "authorization_code".into(),
            api_url: None,
            granted_at: None,
            lost: None,
            user: None,
            by: None,
        }
    }

    fn set(at: &str, rt: &str) -> TokenSet {
        TokenSet {
            access_token: SecretString::from(at.to_string()),
            refresh_token: Some(SecretString::from(rt.to_string())),
            expires_in: Some(3600),
            scopes: None,
            api_url: None,
        }
    }

    #[test]
    fn fresh_tokens_are_served_and_stale_ones_refreshed_once() {
        let (_dir, l, store) = world();
        l.store_new(&store, &rec("a1", "r1", 1000, 0)).expect("store");
        let calls = AtomicU64::new(0);
        let refresh = |rt: &SecretString| {
            calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(rt.expose_secret(), "r1");
            Ok(set("a2", "r2"))
        };
        let (r, s) = token_at(&l, &store, 100, &refresh).expect("token");
        assert_eq!((r.access_token.expose_secret(), s), ("a1", Source::Stored));
        let (r, s) = token_at(&l, &store, 990, &refresh).expect("token");
        assert_eq!((r.access_token.expose_secret(), s), ("a2", Source::Refreshed));
        let (r, _) = token_at(&l, &store, 991, &refresh).expect("token");
        assert_eq!(r.refresh_token.as_ref().map(|t| t.expose_secret()), Some("r2"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_journal_is_replayed_before_anything_else() {
        let (_dir, l, store) = world();
        l.store_new(&store, &rec("a1", "r1", 1000, 0)).expect("store");
        // A run that got new tokens but died before the store write.
        l.write_journal(KEY, Some(1), &rec("a2", "r2", 5000, 900))
            .expect("journal");
        let refresh = |_: &SecretString| -> Result<TokenSet, EdgeError> { panic!("must not refresh") };
        let (r, s) = token_at(&l, &store, 950, &refresh).expect("token");
        assert_eq!((r.access_token.expose_secret(), s), ("a2", Source::Replayed));
        assert!(l.journal_files().is_empty());
        // A stale journal (older than the store) is dropped, not applied.
        l.write_journal(KEY, Some(1), &rec("old", "old", 100, 1))
            .expect("journal");
        let (r, _) = token_at(&l, &store, 950, &refresh).expect("token");
        assert_eq!(r.access_token.expose_secret(), "a2");
    }

    fn refused(error: &str) -> EdgeError {
        EdgeError::Rejected {
            endpoint: "token endpoint",
            status: 400,
            error: error.into(),
            reason: Some("Invalid Token!".into()),
        }
    }

    fn stored(store: &Mem) -> TokenRecord {
        let (b, _) = store.load().expect("load").expect("kept");
        TokenRecord::from_bytes(&b).expect("rec")
    }

    /// A refusal that is not about the grant (here the client's
    /// credentials) is reported and leaves the record as it was.
    #[test]
    fn a_rejected_refresh_is_reported_and_changes_nothing() {
        let (_dir, l, store) = world();
        l.store_new(&store, &rec("a1", "r1", 10, 0)).expect("store");
        let refresh = |_: &SecretString| Err(refused("invalid_client"));
        let e = token_at(&l, &store, 100, &refresh).expect_err("rejected");
        assert!(matches!(e, LifecycleError::RefreshRejected { .. }), "{e}");
        let kept = stored(&store);
        assert_eq!(kept.access_token.expose_secret(), "a1");
        assert_eq!(kept.lost, None);
    }

    /// `invalid_grant` ends the grant: the record is marked lost, and later
    /// calls refuse at once — no request, never the dead token — even while
    /// the access token still looks fresh.
    #[test]
    fn invalid_grant_marks_the_grant_lost_and_its_tokens_are_never_served() {
        let (_dir, l, store) = world();
        l.store_new(&store, &rec("a1", "r1", 10, 0)).expect("store");
        let e = token_at(&l, &store, 100, &|_| Err(refused("invalid_grant"))).expect_err("rejected");
        assert!(matches!(e, LifecycleError::RefreshRejected { .. }), "{e}");
        let lost = stored(&store).lost.expect("marked lost");
        assert_eq!(lost.at, 100);
        assert!(lost.reason.contains("invalid_grant"), "{}", lost.reason);
        // The same access token, fresh again by the clock: still refused, without a request.
        let asked = std::cell::Cell::new(0);
        let count = |_: &SecretString| {
            asked.set(asked.get() + 1);
            Ok(set("a2", "r2"))
        };
        let e = token_at(&l, &store, 1, &count).expect_err("lost");
        assert!(matches!(e, LifecycleError::GrantLost { at: 100, .. }), "{e}");
        assert_eq!(asked.get(), 0);
        // A new consent stores a new record: served again.
        l.store_new(&store, &rec("a3", "r3", 10_000, 200)).expect("login");
        let (r, _) = token_at(&l, &store, 300, &count).expect("fresh");
        assert_eq!(r.access_token.expose_secret(), "a3");
    }

    /// A holder that lost the race for a rotating refresh token sees
    /// `invalid_grant`, but the winner's record is in the store: that one is
    /// served, nothing is marked lost.
    #[test]
    fn invalid_grant_after_another_holder_refreshed_serves_the_newer_record() {
        let (_dir, l, store) = world();
        l.store_new(&store, &rec("a1", "r1", 10, 0)).expect("store");
        let winner = rec("a2", "r2", 10_000, 90);
        let refresh = |_: &SecretString| {
            // Another host (not under this lock) refreshes first, then the provider refuses r1.
            let (_, v) = store.load().expect("load").expect("record");
            store.save(&winner.to_bytes(), Some(v)).expect("the winner writes");
            Err(refused("invalid_grant"))
        };
        let (r, src) = token_at(&l, &store, 100, &refresh).expect("the winner's token");
        assert_eq!(r.access_token.expose_secret(), "a2");
        assert_eq!(src, Source::RefreshedElsewhere);
        assert_eq!(stored(&store).lost, None);
    }

    /// RFC 6749 §6: a refresh answer may leave out `refresh_token`; the old
    /// one then stays valid and must be kept (authlib's default).
    #[test]
    fn a_refresh_answer_without_a_refresh_token_keeps_the_old_one() {
        let (_dir, l, store) = world();
        let mut first = rec("a1", "r1", 10, 0);
        first.scopes = Some(vec!["read".into()]);
        l.store_new(&store, &first).expect("store");
        let refresh = |rt: &SecretString| {
            assert_eq!(rt.expose_secret(), "r1");
            Ok(TokenSet {
                refresh_token: None,
                ..set("a2", "unused")
            })
        };
        let renew = Renew {
            refresh: &refresh,
            mint: None,
        };
        let (r, _) = l.token(&store, &|| 100, false, &renew, || {}).expect("token");
        assert_eq!(r.access_token.expose_secret(), "a2");
        assert_eq!(r.refresh_token.as_ref().map(|t| t.expose_secret()), Some("r1"));
        assert_eq!(r.scopes.as_deref(), Some(&["read".to_string()][..]));
        // And the next expiry refreshes again with the same one.
        let (r, _) = l.token(&store, &|| 100_000, false, &renew, || {}).expect("token");
        assert_eq!(r.refresh_token.as_ref().map(|t| t.expose_secret()), Some("r1"));
    }

    /// Grants without a user are minted again when due (and from nothing),
    /// once; grants that need a user say so, naming expired vs expiring.
    #[test]
    fn tokens_without_a_user_are_minted_when_due() {
        let (_dir, mut l, store) = world();
        l.grant_type = "client_credentials".into();
        let calls = AtomicU64::new(0);
        let refresh = |_: &SecretString| -> Result<TokenSet, EdgeError> { panic!("no refresh token") };
        let mint = || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            Ok(TokenSet {
                refresh_token: None,
                ..set(&format!("m{n}"), "")
            })
        };
        let renew = Renew {
            refresh: &refresh,
            mint: Some(&mint),
        };
        let (r, s) = l
            .token(&store, &|| 100, false, &renew, || {})
            .expect("minted from nothing");
        assert_eq!((r.access_token.expose_secret(), s), ("m0", Source::Minted));
        assert_eq!(r.grant_type, "client_credentials");
        assert_eq!(r.scopes, None, "not reported by the provider");
        let (_, s) = l.token(&store, &|| 200, false, &renew, || {}).expect("fresh");
        assert_eq!(s, Source::Stored);
        // Inside the margin (expires at 3700, margin 60).
        let (r, s) = l.token(&store, &|| 3650, false, &renew, || {}).expect("minted again");
        assert_eq!((r.access_token.expose_secret(), s), ("m1", Source::Minted));
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        let user = Renew {
            refresh: &refresh,
            mint: None,
        };
        let e = l
            .token(&store, &|| 7200, false, &user, || {})
            .expect_err("needs a user");
        assert!(e.to_string().contains("expires in 50 s"), "{e}");
        let e = l
            .token(&store, &|| 8000, false, &user, || {})
            .expect_err("needs a user");
        assert!(e.to_string().contains("expired 750 s ago"), "{e}");
    }

    /// A journal is sealed: no token appears in the file; a torn write (any
    /// prefix of a sealed file) is never applied and is removed; the newest
    /// complete journal wins, temp files of older versions included.
    #[test]
    fn journals_are_sealed_complete_or_ignored_and_cleaned_up() {
        let (_dir, l, store) = world();
        l.store_new(&store, &rec("at-CANARY-1", "rt-CANARY-1", 1000, 0))
            .expect("store");
        let path = l
            .write_journal(KEY, Some(1), &rec("at-CANARY-2", "rt-CANARY-2", 5000, 900))
            .expect("journal");
        let sealed = fs::read(&path).expect("read");
        assert!(
            !String::from_utf8_lossy(&sealed).contains("CANARY"),
            "plaintext in the journal"
        );
        // Every proper prefix of the sealed file is incomplete.
        for cut in [0, 8, 20, 32, sealed.len() / 2, sealed.len() - 1] {
            assert!(open_sealed("app", KEY, &sealed[..cut]).is_none(), "cut at {cut}");
        }
        assert!(open_sealed("app", &[8u8; 32], &sealed).is_none(), "another key");
        assert!(open_sealed("other-app", KEY, &sealed).is_none(), "another app");
        // A torn newer one next to the complete one, and a legacy temp file.
        fs::write(l.journal_dir.join("app.journal.99999-0"), &sealed[..sealed.len() - 5]).expect("torn");
        let legacy = rec("at-3", "rt-3", 6000, 950);
        let mut plain = b"1\n".to_vec();
        plain.extend_from_slice(&legacy.to_bytes());
        fs::write(l.journal_dir.join(".app.journal.tmp.4242"), &plain).expect("legacy");
        assert_eq!(l.journal_files().len(), 3);
        let refresh = |_: &SecretString| -> Result<TokenSet, EdgeError> { panic!("must not refresh") };
        let renew = Renew {
            refresh: &refresh,
            mint: None,
        };
        let (r, s) = l.token(&store, &|| 960, false, &renew, || {}).expect("token");
        assert_eq!(
            (r.access_token.expose_secret(), s),
            ("at-3", Source::Replayed),
            "the newest complete one"
        );
        assert!(l.journal_files().is_empty(), "every journal file is removed");
    }
}
