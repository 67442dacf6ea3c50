//! The token lifecycle: never lose a rotated refresh token.
//!
//! 1. Single flight inside a process (a mutex per app) and a lock across
//!    processes (an exclusive lock on `<lock_dir>/<app>.lock`).
//! 2. After taking the lock, re-read: someone else may have refreshed.
//! 3. The refresh response is made durable first: a journal file (0600,
//!    atomic, fsync'd) is written before the store is touched, then the store
//!    record is replaced with compare-and-swap, then the journal is removed.
//!    A journal left behind (crash, store failure) is replayed by the next
//!    run before anything else.
//!
//! The one window no client can close is between the provider rotating the
//! token and the journal reaching the disk (the response in flight): a crash
//! exactly there loses the new refresh token.

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
    /// The stored grant has no refresh token (server-to-server, client credentials).
    #[error("the token of {app} expired and its grant has no refresh token")]
    NoRefreshToken {
        /// The app.
        app: String,
    },
    /// The provider refused the refresh token.
    #[error("the provider refused the refresh token of {app}: {source}")]
    RefreshRejected {
        /// The app.
        app: String,
        /// What it said.
        source: EdgeError,
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

/// Where the lifecycle keeps its local files and how it behaves.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    /// The app's name (store namespace, lock and journal file names).
    pub app: String,
    /// Directory for `<app>.lock`.
    pub lock_dir: PathBuf,
    /// Directory for `<app>.journal`.
    pub journal_dir: PathBuf,
    /// Refresh when the access token expires within this many seconds.
    pub margin: u64,
    /// Give up waiting for another process's lock after this long.
    pub lock_timeout: Duration,
}

/// What [`Lifecycle::token`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The stored token was fresh.
    Stored,
    /// Another process refreshed while we waited for the lock.
    RefreshedElsewhere,
    /// This call refreshed.
    Refreshed,
    /// A journal from an interrupted run was replayed.
    Replayed,
}

/// One mutex per app for the life of the process (a handful of apps; each
/// is allocated once and kept).
fn process_lock(app: &str) -> &'static Mutex<()> {
    static LOCKS: OnceLock<Mutex<HashMap<String, &'static Mutex<()>>>> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    map.entry(app.to_string())
        .or_insert_with(|| Box::leak(Box::new(Mutex::new(()))))
}

/// Test builds only: kills the process at a named point (`CONNAPP_FAULT`).
#[cfg(feature = "fault-injection")]
pub fn fault(point: &str) {
    if std::env::var("CONNAPP_FAULT").is_ok_and(|p| p == point) {
        // SAFETY: sending SIGKILL to ourselves; nothing after this runs.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

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

    fn journal_path(&self) -> PathBuf {
        self.journal_dir.join(format!("{}.journal", self.app))
    }

    /// Takes the in-process and the cross-process lock of the app.
    pub fn lock(&self, mut waiting: impl FnMut()) -> Result<AppLock, LifecycleError> {
        let inner = process_lock(&self.app).lock().unwrap_or_else(|p| p.into_inner());
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
        let start = Instant::now();
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if !told {
                        waiting();
                        told = true;
                    }
                    if start.elapsed() > self.lock_timeout {
                        return Err(LifecycleError::LockTimeout {
                            app: self.app.clone(),
                            secs: self.lock_timeout.as_secs(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(15));
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

    fn write_journal(&self, base: Option<u64>, rec: &TokenRecord) -> Result<(), LifecycleError> {
        private_dir(&self.journal_dir)?;
        let path = self.journal_path();
        let tmp = self
            .journal_dir
            .join(format!(".{}.journal.tmp.{}", self.app, std::process::id()));
        let body = rec.to_bytes();
        let mut out = Zeroizing::new(Vec::with_capacity(body.len() + 32));
        out.extend_from_slice(format!("{}\n", base.map_or("-".to_string(), |v| v.to_string())).as_bytes());
        out.extend_from_slice(&body);
        tracing::debug!(journal = %path.display(), "journaling the new tokens before the store write");
        let res = (|| {
            let mut opts = OpenOptions::new();
            opts.create(true).write(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            f.write_all(&out)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.journal_dir)?.sync_all()
        })();
        res.map_err(|e| LifecycleError::Local(format!("cannot write the journal {}: {e}", path.display())))
    }

    fn read_journal(&self) -> Result<Option<(Option<u64>, TokenRecord)>, LifecycleError> {
        let path = self.journal_path();
        // A journal holds one token answer: a few KiB.
        let bytes = match connapp_plugin_api::bounded::read_file("the journal", &path, 1 << 20) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => return Ok(None),
            Err(e) => return Err(LifecycleError::Local(e.to_string())),
        };
        let Some(nl) = bytes.iter().position(|b| *b == b'\n') else {
            return Err(LifecycleError::Local(format!(
                "{} is damaged; remove it",
                path.display()
            )));
        };
        let base = std::str::from_utf8(&bytes[..nl])
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        let rec = TokenRecord::from_bytes(&bytes[nl + 1..]).map_err(LifecycleError::Local)?;
        Ok(Some((base, rec)))
    }

    fn remove_journal(&self) {
        let _ = fs::remove_file(self.journal_path());
        if let Ok(d) = File::open(&self.journal_dir) {
            let _ = d.sync_all();
        }
    }

    /// Makes `rec` durable: journal, then store (CAS against `base`), then
    /// drop the journal. Returns the new store version.
    fn commit(&self, store: &dyn TokenStore, base: Option<u64>, rec: &TokenRecord) -> Result<u64, LifecycleError> {
        self.write_journal(base, rec)?;
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
        self.remove_journal();
        Ok(v)
    }

    /// Replays a journal left by an interrupted run. Caller holds the lock.
    fn replay(&self, store: &dyn TokenStore) -> Result<bool, LifecycleError> {
        let Some((base, rec)) = self.read_journal()? else {
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
        self.remove_journal();
        Ok(newer)
    }

    /// Stores a brand-new grant (login, client/account credentials) durably.
    pub fn store_new(&self, store: &dyn TokenStore, rec: &TokenRecord) -> Result<(), LifecycleError> {
        let _lock = self.lock(|| {})?;
        self.replay(store)?;
        let base = self.read(store)?.map(|(_, v)| v);
        self.commit(store, base, rec)?;
        Ok(())
    }

    /// A valid token: the stored one if fresh (and `force` is false), else a
    /// refreshed one, refreshed at most once across processes.
    pub fn token(
        &self,
        store: &dyn TokenStore,
        now: &dyn Fn() -> u64,
        force: bool,
        refresh: &dyn Fn(&SecretString) -> Result<TokenSet, EdgeError>,
        waiting: impl FnMut(),
    ) -> Result<(TokenRecord, Source), LifecycleError> {
        // Fast path without the lock.
        if !force
            && !self.journal_path().exists()
            && let Some((rec, _)) = self.read(store)?
            && rec.is_fresh(now(), self.margin)
        {
            return Ok((rec, Source::Stored));
        }
        let _lock = self.lock(waiting)?;
        let replayed = self.replay(store)?;
        let (rec, version) = self
            .read(store)?
            .ok_or_else(|| LifecycleError::NoToken { app: self.app.clone() })?;
        if rec.is_fresh(now(), self.margin) && (!force || replayed) {
            let src = if replayed {
                Source::Replayed
            } else {
                Source::RefreshedElsewhere
            };
            return Ok((rec, src));
        }
        tracing::info!(app = %self.app, expires_at = rec.expires_at, "the stored token needs a refresh");
        let Some(rt) = &rec.refresh_token else {
            return Err(LifecycleError::NoRefreshToken { app: self.app.clone() });
        };
        fault("before-request");
        let set = refresh(rt).map_err(|e| match e {
            EdgeError::Rejected { .. } => LifecycleError::RefreshRejected {
                app: self.app.clone(),
                source: e,
            },
            other => LifecycleError::Edge(other),
        })?;
        let mut new = TokenRecord::from_set(set, &rec.grant_type, now(), &rec.scopes);
        if new.api_url.is_none() {
            new.api_url = rec.api_url.clone();
        }
        self.commit(store, Some(version), &new)?;
        Ok((new, Source::Refreshed))
    }

    /// Removes the stored tokens' journal (after a revoke).
    pub fn forget_journal(&self) {
        self.remove_journal();
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
    }

    fn lc(dir: &Path) -> Lifecycle {
        Lifecycle {
            app: "app".into(),
            lock_dir: dir.join("locks"),
            journal_dir: dir.join("journal"),
            margin: 60,
            lock_timeout: Duration::from_secs(5),
        }
    }

    fn rec(at: &str, rt: &str, expires_at: u64, obtained_at: u64) -> TokenRecord {
        TokenRecord {
            access_token: SecretString::from(at.to_string()),
            refresh_token: Some(SecretString::from(rt.to_string())),
            expires_at,
            obtained_at,
            scopes: vec![],
            grant_type: "authorization_code".into(),
            api_url: None,
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
        let dir = std::env::temp_dir().join(format!("connapp-lc-{}-1", std::process::id()));
        let l = lc(&dir);
        let store = Mem::default();
        l.store_new(&store, &rec("a1", "r1", 1000, 0)).expect("store");
        let calls = AtomicU64::new(0);
        let refresh = |rt: &SecretString| {
            calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(rt.expose_secret(), "r1");
            Ok(set("a2", "r2"))
        };
        let (r, s) = l.token(&store, &|| 100, false, &refresh, || {}).expect("token");
        assert_eq!((r.access_token.expose_secret(), s), ("a1", Source::Stored));
        let (r, s) = l.token(&store, &|| 990, false, &refresh, || {}).expect("token");
        assert_eq!((r.access_token.expose_secret(), s), ("a2", Source::Refreshed));
        let (r, _) = l.token(&store, &|| 991, false, &refresh, || {}).expect("token");
        assert_eq!(r.refresh_token.as_ref().map(|t| t.expose_secret()), Some("r2"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_journal_is_replayed_before_anything_else() {
        let dir = std::env::temp_dir().join(format!("connapp-lc-{}-2", std::process::id()));
        let l = lc(&dir);
        let store = Mem::default();
        l.store_new(&store, &rec("a1", "r1", 1000, 0)).expect("store");
        // A run that got new tokens but died before the store write.
        l.write_journal(Some(1), &rec("a2", "r2", 5000, 900)).expect("journal");
        let refresh = |_: &SecretString| -> Result<TokenSet, EdgeError> { panic!("must not refresh") };
        let (r, s) = l.token(&store, &|| 950, false, &refresh, || {}).expect("token");
        assert_eq!((r.access_token.expose_secret(), s), ("a2", Source::Replayed));
        assert!(!l.journal_path().exists());
        // A stale journal (older than the store) is dropped, not applied.
        l.write_journal(Some(1), &rec("old", "old", 100, 1)).expect("journal");
        let (r, _) = l.token(&store, &|| 950, false, &refresh, || {}).expect("token");
        assert_eq!(r.access_token.expose_secret(), "a2");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_rejected_refresh_is_reported_and_changes_nothing() {
        let dir = std::env::temp_dir().join(format!("connapp-lc-{}-3", std::process::id()));
        let l = lc(&dir);
        let store = Mem::default();
        l.store_new(&store, &rec("a1", "r1", 10, 0)).expect("store");
        let refresh = |_: &SecretString| {
            Err(EdgeError::Rejected {
                endpoint: "token endpoint",
                status: 400,
                error: "invalid_grant".into(),
                reason: Some("Invalid Token!".into()),
            })
        };
        let e = l.token(&store, &|| 100, false, &refresh, || {}).expect_err("rejected");
        assert!(matches!(e, LifecycleError::RefreshRejected { .. }), "{e}");
        let (b, _) = store.load().expect("load").expect("kept");
        assert_eq!(
            TokenRecord::from_bytes(&b).expect("rec").access_token.expose_secret(),
            "a1"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
