//! The token agent, in the spirit of ssh-agent, gpg-agent and Vault Agent:
//! one long-lived process that opens a declaration's store once (the file
//! store's key derived once, the Vault login held), answers `token` from
//! the engine's memory tier over a Unix socket, renews through the one
//! token lifecycle (journaled, compare-and-swap, single flight), renews
//! ahead of expiry, and locks itself — dropping every secret it holds —
//! after an idle time or when asked.
//!
//! The socket lives in a 0700 directory (under `$XDG_RUNTIME_DIR`) and is
//! 0600; every connection's peer uid is checked against the agent's
//! (`SO_PEERCRED`) before a byte is read. One request, one reply: a JSON
//! line each way, the request bounded. The agent never writes a secret:
//! tokens reach the disk only through the lifecycle's sealed journal and
//! the store.
//!
//! [`request`] is the client side (blocking std I/O, no runtime): what
//! `connapp token` uses when [`SOCK_ENV`] names a socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connapp_core::Declaration;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use connapp_plugin_api::{ErrorCode, Expected, Record, Store, StoreDescription, StoreError};

use crate::tokens::{AppCtx, Shared, Silent};
use crate::{Engine, Error, ErrorKind};

/// The environment variable naming the agent's socket (ssh-agent's
/// `SSH_AUTH_SOCK`).
pub const SOCK_ENV: &str = "CONNAPP_AGENT_SOCK";
/// The longest request line the agent reads: a store write of the largest
/// value a store takes (1 MiB), in hex, and the rest of the request.
pub const MAX_REQUEST: u64 = 2 * (1 << 20) + 64 * 1024 + 8;
/// The longest reply line a client reads (a value read back, in hex).
pub const MAX_REPLY: u64 = 4 << 20;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client waits for a reply (a renewal may take the HTTP timeout).
const REPLY_TIMEOUT: Duration = Duration::from_secs(45);
/// How often the agent looks for tokens to renew and for idleness.
const TICK: Duration = Duration::from_secs(1);

/// What a client asks.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// A valid access token of `app` (the declaration's only app when
    /// `None`) of the declaration at `declaration` (an absolute path).
    Token {
        /// The declaration the client would read.
        declaration: PathBuf,
        /// The app.
        app: Option<String>,
        /// Renew when it expires within this many seconds (default 60).
        margin: Option<u64>,
    },
    /// What the agent holds (no secret).
    Status,
    /// Drop every secret now; answer "locked" from then on.
    Lock,
    /// Drop every secret and exit.
    Stop,
    /// One call on the store the agent holds open (for the commands that
    /// read and write secrets), when `store` is the agent's.
    Store {
        /// Which store the client means.
        store: StoreRef,
        /// The call.
        call: StoreCall,
    },
}

/// Which store a client means: its declaration's `[store]` and its data
/// directory (the file store lives there by default).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoreRef {
    /// `[store] kind`.
    pub kind: String,
    /// `[store.settings]`.
    pub settings: Vec<(String, String)>,
    /// The data directory.
    pub data_dir: PathBuf,
}

impl StoreRef {
    /// `store` (a declaration's), with `data_dir`.
    pub fn of(store: &connapp_core::StoreDecl, data_dir: &Path) -> StoreRef {
        StoreRef {
            kind: store.kind.clone(),
            settings: store.settings.clone(),
            data_dir: data_dir.to_path_buf(),
        }
    }
}

/// `Expected` on the wire.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// Whatever the version.
    Any,
    /// The key must not exist.
    Absent,
    /// The version must be this.
    Version(u64),
}

impl From<Expected> for Expect {
    fn from(e: Expected) -> Self {
        match e {
            Expected::Any => Expect::Any,
            Expected::Absent => Expect::Absent,
            Expected::Version(v) => Expect::Version(v),
        }
    }
}

impl From<Expect> for Expected {
    fn from(e: Expect) -> Self {
        match e {
            Expect::Any => Expected::Any,
            Expect::Absent => Expected::Absent,
            Expect::Version(v) => Expected::Version(v),
        }
    }
}

/// A store call (the `Store` trait's methods).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum StoreCall {
    /// `describe`.
    Describe,
    /// `get`.
    Get {
        /// The key.
        key: String,
    },
    /// `put`, the value in hex.
    Put {
        /// The key.
        key: String,
        /// The value, hex.
        value: String,
        /// The version condition.
        expected: Expect,
    },
    /// `delete`.
    Delete {
        /// The key.
        key: String,
        /// The version condition.
        expected: Expect,
    },
    /// `list`.
    List {
        /// The prefix.
        prefix: String,
    },
}

impl std::fmt::Debug for StoreCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreCall::Describe => f.write_str("Describe"),
            StoreCall::Get { key } => f.debug_struct("Get").field("key", key).finish(),
            StoreCall::Put { key, expected, .. } => f
                .debug_struct("Put")
                .field("key", key)
                .field("value", &"<redacted>")
                .field("expected", expected)
                .finish(),
            StoreCall::Delete { key, expected } => f
                .debug_struct("Delete")
                .field("key", key)
                .field("expected", expected)
                .finish(),
            StoreCall::List { prefix } => f.debug_struct("List").field("prefix", prefix).finish(),
        }
    }
}

/// A store call's answer.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoreAnswer {
    /// `get`: the value (hex) and version.
    pub record: Option<(String, u64)>,
    /// `put`: the new version.
    pub version: Option<u64>,
    /// `delete`: whether something was deleted.
    pub removed: Option<bool>,
    /// `list`: the keys.
    pub keys: Option<Vec<String>>,
    /// `describe`: persistent, shared across hosts, native CAS, max value size, location.
    pub description: Option<(bool, bool, bool, u64, String)>,
    /// The store's error: code, message, retryable.
    pub error: Option<(u16, String, bool)>,
}

impl std::fmt::Debug for StoreAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreAnswer")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// A token, as the agent hands it out.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenReply {
    /// The app.
    pub app: String,
    /// The access token.
    pub access_token: String,
    /// When it expires (unix seconds).
    pub expires_at: u64,
    /// The scopes granted, when the provider said.
    pub scopes: Option<Vec<String>>,
    /// The API base URL the provider named, if any.
    pub api_url: Option<String>,
    /// Where the agent had it from (`memory`, `refreshed`, ...).
    pub source: String,
}

impl std::fmt::Debug for TokenReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReply")
            .field("app", &self.app)
            .field("access_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What the agent holds, for `agent status`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusReply {
    /// Its process id.
    pub pid: u32,
    /// The declaration it serves.
    pub declaration: PathBuf,
    /// Whether it has dropped its secrets.
    pub locked: bool,
    /// The apps whose tokens it holds in memory.
    pub apps: Vec<String>,
    /// Seconds without a request after which it locks itself.
    pub idle_lock_secs: u64,
    /// Seconds since its last request.
    pub idle_secs: u64,
}

/// A failure as the client reports it: its kind (as the engine's
/// [`ErrorKind`], in words), what happened and the fix.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplyError {
    /// `failure`, `usage`, `invalid`, `plugin`, `reauth`, `unreachable`, or
    /// `other-declaration` (the agent serves another declaration: the client
    /// works without it).
    pub kind: String,
    /// What happened.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
}

/// The agent's answer to one request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reply {
    /// Whether the request was served.
    pub ok: bool,
    /// The agent is locked: it holds no secret and serves no token.
    pub locked: bool,
    /// Why not, when not.
    pub error: Option<ReplyError>,
    /// The token asked for.
    pub token: Option<TokenReply>,
    /// The status asked for.
    pub status: Option<StatusReply>,
    /// A store call's answer.
    pub store: Option<StoreAnswer>,
}

impl ReplyError {
    /// The engine error it carries (`None` for `other-declaration`).
    pub fn to_error(&self) -> Option<Error> {
        let kind = match self.kind.as_str() {
            "failure" => ErrorKind::Failure,
            "usage" => ErrorKind::Usage,
            "invalid" => ErrorKind::Invalid,
            "plugin" => ErrorKind::Plugin,
            "reauth" => ErrorKind::Reauth,
            "unreachable" => ErrorKind::Unreachable,
            _ => return None,
        };
        let e = Error::new(kind, self.message.clone());
        Some(match &self.hint {
            Some(h) => e.hint(h.clone()),
            None => e,
        })
    }
}

fn failed(e: &Error) -> Reply {
    Reply {
        error: Some(ReplyError {
            kind: e.kind.as_str().into(),
            message: e.message.clone(),
            hint: e.hint.clone(),
        }),
        ..Reply::default()
    }
}

/// Why a client got no reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No agent listens there (or it refused the connection).
    #[error("no agent answers at {path}: {source}")]
    Unreachable {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The agent's answer was cut off or not a reply.
    #[error("the agent at {path} gave no usable answer: {why}")]
    Garbled {
        /// The socket.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// Sends `req` to the agent at `sock` and reads its reply.
pub fn request(sock: &Path, req: &Request) -> Result<Reply, ClientError> {
    let unreachable = |source| ClientError::Unreachable {
        path: sock.to_path_buf(),
        source,
    };
    let garbled = |why: String| ClientError::Garbled {
        path: sock.to_path_buf(),
        why,
    };
    let mut s = std::os::unix::net::UnixStream::connect(sock).map_err(unreachable)?;
    s.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(unreachable)?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT)).map_err(unreachable)?;
    // Both lines may hold a secret (a store value, a token): zeroized when dropped.
    let mut line =
        connapp_plugin_api::zeroize::Zeroizing::new(serde_json::to_vec(req).map_err(|e| garbled(e.to_string()))?);
    line.push(b'\n');
    s.write_all(&line).map_err(unreachable)?;
    let mut reply = connapp_plugin_api::zeroize::Zeroizing::new(Vec::new());
    BufReader::new(s.take(MAX_REPLY))
        .read_until(b'\n', &mut reply)
        .map_err(|e| garbled(e.to_string()))?;
    serde_json::from_slice(&reply).map_err(|e| garbled(e.to_string()))
}

/// The store an agent holds open, used through its socket: what the
/// commands that read and write secrets use while an agent serves their
/// store (unlocked once, no key derivation, no prompt).
pub struct AgentStore {
    sock: PathBuf,
    store: StoreRef,
}

impl AgentStore {
    /// The agent at `sock`'s store when it holds `store` and is unlocked;
    /// `None` otherwise (the caller opens the store itself).
    pub fn reach(sock: &Path, store: StoreRef) -> Option<AgentStore> {
        let s = AgentStore {
            sock: sock.to_path_buf(),
            store,
        };
        s.describe().ok().map(|_| s)
    }

    fn call(&self, call: StoreCall) -> Result<StoreAnswer, StoreError> {
        let unavailable = |m: String| StoreError::new(ErrorCode::UNAVAILABLE, m).retryable();
        let r = request(
            &self.sock,
            &Request::Store {
                store: self.store.clone(),
                call,
            },
        )
        .map_err(|e| unavailable(e.to_string()))?;
        if r.locked {
            return Err(StoreError::new(
                ErrorCode::UNAVAILABLE,
                format!(
                    "the agent at {} locked itself; stop and start it, or unset {SOCK_ENV}",
                    self.sock.display()
                ),
            ));
        }
        if let Some(e) = r.error {
            return Err(unavailable(e.message));
        }
        let a = r
            .store
            .ok_or_else(|| unavailable("the agent answered no store call".into()))?;
        if let Some((code, message, retryable)) = &a.error {
            let e = StoreError::new(ErrorCode(*code), message.clone());
            return Err(if *retryable { e.retryable() } else { e });
        }
        Ok(a)
    }
}

impl Store for AgentStore {
    fn describe(&self) -> Result<StoreDescription, StoreError> {
        let a = self.call(StoreCall::Describe)?;
        let (persistent, shared_across_hosts, native_cas, max_value_size, location) = a
            .description
            .ok_or_else(|| StoreError::new(ErrorCode::UNAVAILABLE, "the agent sent no description"))?;
        Ok(StoreDescription {
            capabilities: connapp_plugin_api::Capabilities {
                persistent,
                shared_across_hosts,
                native_cas,
                max_value_size,
            },
            location,
        })
    }
    fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let a = self.call(StoreCall::Get { key: key.into() })?;
        a.record
            .map(|(hex, version)| {
                crate::evidence::unhex(&hex)
                    .map(|v| Record {
                        value: connapp_plugin_api::zeroize::Zeroizing::new(v),
                        version,
                    })
                    .ok_or_else(|| StoreError::new(ErrorCode::CORRUPT, "the agent sent a value that is not hex"))
            })
            .transpose()
    }
    fn put(&self, key: &str, value: &[u8], expected: Expected) -> Result<u64, StoreError> {
        let hex = connapp_plugin_api::zeroize::Zeroizing::new(crate::evidence::hex(value));
        let a = self.call(StoreCall::Put {
            key: key.into(),
            value: hex.to_string(),
            expected: expected.into(),
        })?;
        a.version
            .ok_or_else(|| StoreError::new(ErrorCode::UNAVAILABLE, "the agent sent no version"))
    }
    fn delete(&self, key: &str, expected: Expected) -> Result<bool, StoreError> {
        let a = self.call(StoreCall::Delete {
            key: key.into(),
            expected: expected.into(),
        })?;
        Ok(a.removed.unwrap_or(false))
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .call(StoreCall::List { prefix: prefix.into() })?
            .keys
            .unwrap_or_default())
    }
}

/// The default socket: `$XDG_RUNTIME_DIR/connapp/agent.sock`, else
/// `/tmp/connapp-UID/agent.sock` (as ssh-agent falls back to `/tmp`).
pub fn default_socket() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("connapp").join("agent.sock"),
        None => PathBuf::from(format!("/tmp/connapp-{}", uid())).join("agent.sock"),
    }
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The socket to listen on.
    pub socket: PathBuf,
    /// The declaration it serves (absolute).
    pub declaration: PathBuf,
    /// Lock after this long without a request.
    pub idle_lock: Duration,
    /// Renew a token this many seconds before it expires (plus a per-app jitter).
    pub margin: u64,
}

/// What the agent holds while unlocked.
struct Unlocked {
    decl: Declaration,
    shared: Shared<'static>,
    stamp: Option<(std::time::SystemTime, u64)>,
}

struct Agent {
    engine: &'static Engine,
    cfg: Config,
    state: Mutex<Option<Unlocked>>,
    last_use: Mutex<Instant>,
    stop: AtomicBool,
    uid: u32,
}

fn stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl Agent {
    fn check(&self) -> Result<Declaration, Error> {
        let report = self
            .engine
            .environment()
            .check_declaration(&self.cfg.declaration, self.engine.registry())
            .map_err(|e| Error::invalid(format!("{}: {e}", self.cfg.declaration.display())))?;
        report.declaration.ok_or_else(|| {
            Error::invalid(format!("{} is not a valid declaration", self.cfg.declaration.display()))
                .hint(format!("run `connapp check -f {}`", self.cfg.declaration.display()))
        })
    }

    fn unlock(&self) -> Result<(), Error> {
        let decl = self.check()?;
        let shared = self.engine.open(&decl)?;
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(Unlocked {
            decl,
            shared,
            stamp: stamp(&self.cfg.declaration),
        });
        Ok(())
    }

    /// Drops every secret it holds (the store handle, its derived key, the
    /// memory tier's tokens: all zeroized on drop).
    fn lock(&self) {
        let old = self.state.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(old);
    }

    fn locked(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// A changed declaration is read again; the store stays open when its
    /// section is unchanged (else a locked agent is the honest answer).
    fn reload_if_changed(&self) -> Result<(), Error> {
        let now = stamp(&self.cfg.declaration);
        let changed = {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.as_ref().is_some_and(|u| u.stamp != now)
        };
        if !changed {
            return Ok(());
        }
        let decl = self.check()?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(u) = st.as_mut() else { return Ok(()) };
        if decl.store != u.decl.store {
            *st = None;
            return Err(Error::failure(format!(
                "the store of {} changed; the agent locked itself",
                self.cfg.declaration.display()
            ))
            .hint("restart it: `connapp agent stop`, then `connapp agent start`"));
        }
        for old in &u.decl.apps {
            if !decl.apps.iter().any(|a| a.name == old.name) {
                u.shared.tokens.forget(&old.name);
            }
        }
        u.decl = decl;
        u.stamp = now;
        Ok(())
    }

    fn token(&self, declaration: &Path, app: Option<&str>, margin: Option<u64>) -> Reply {
        let same = std::fs::canonicalize(declaration).ok() == std::fs::canonicalize(&self.cfg.declaration).ok();
        if !same {
            return Reply {
                error: Some(ReplyError {
                    kind: "other-declaration".into(),
                    message: format!("this agent serves {}", self.cfg.declaration.display()),
                    hint: None,
                }),
                ..Reply::default()
            };
        }
        if let Err(e) = self.reload_if_changed() {
            return failed(&e);
        }
        let (decl, shared) = {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match st.as_ref() {
                Some(u) => (u.decl.clone(), u.shared.clone()),
                None => {
                    return Reply {
                        locked: true,
                        ..Reply::default()
                    };
                }
            }
        };
        let served = AppCtx::load(self.engine.registry(), &decl, app, &shared).and_then(|mut c| {
            if let Some(m) = margin {
                c.set_margin(m);
            }
            let (rec, src) = c.token(&Silent)?;
            Ok((c.app.name.clone(), rec, src))
        });
        match served {
            Ok((app, rec, src)) => Reply {
                ok: true,
                token: Some(TokenReply {
                    app,
                    access_token: rec.access_token.expose_secret().to_string(),
                    expires_at: rec.expires_at,
                    scopes: rec.scopes.clone(),
                    api_url: rec.api_url.clone(),
                    source: crate::tokens::source_name(src).to_string(),
                }),
                ..Reply::default()
            },
            Err(e) => failed(&e),
        }
    }

    fn store_call(&self, store: &StoreRef, call: StoreCall) -> Reply {
        let held = {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match st.as_ref() {
                Some(u) => (
                    StoreRef::of(&u.decl.store, &self.engine.environment().data_dir),
                    u.shared.store.clone(),
                ),
                None => {
                    return Reply {
                        locked: true,
                        ..Reply::default()
                    };
                }
            }
        };
        if &held.0 != store {
            return Reply {
                error: Some(ReplyError {
                    kind: "other-declaration".into(),
                    message: "this agent holds another store".into(),
                    hint: None,
                }),
                ..Reply::default()
            };
        }
        let h = held.1;
        let err = |e: StoreError| StoreAnswer {
            error: Some((e.code.0, e.message, e.retryable)),
            ..StoreAnswer::default()
        };
        let answer = match call {
            StoreCall::Describe => match h.describe() {
                Ok(d) => StoreAnswer {
                    description: Some((
                        d.capabilities.persistent,
                        d.capabilities.shared_across_hosts,
                        d.capabilities.native_cas,
                        d.capabilities.max_value_size,
                        d.location,
                    )),
                    ..StoreAnswer::default()
                },
                Err(e) => err(e),
            },
            StoreCall::Get { key } => match h.get(&key) {
                Ok(r) => StoreAnswer {
                    record: r.map(|r| (crate::evidence::hex(&r.value), r.version)),
                    ..StoreAnswer::default()
                },
                Err(e) => err(e),
            },
            StoreCall::Put { key, value, expected } => {
                let Some(bytes) = crate::evidence::unhex(&value).map(connapp_plugin_api::zeroize::Zeroizing::new)
                else {
                    return failed(&Error::new(ErrorKind::Usage, "the value is not hex"));
                };
                match h.put(&key, &bytes, expected.into()) {
                    Ok(v) => StoreAnswer {
                        version: Some(v),
                        ..StoreAnswer::default()
                    },
                    Err(e) => err(e),
                }
            }
            StoreCall::Delete { key, expected } => match h.delete(&key, expected.into()) {
                Ok(b) => StoreAnswer {
                    removed: Some(b),
                    ..StoreAnswer::default()
                },
                Err(e) => err(e),
            },
            StoreCall::List { prefix } => match h.list(&prefix) {
                Ok(k) => StoreAnswer {
                    keys: Some(k),
                    ..StoreAnswer::default()
                },
                Err(e) => err(e),
            },
        };
        Reply {
            ok: true,
            store: Some(answer),
            ..Reply::default()
        }
    }

    fn status(&self) -> Reply {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let apps = st
            .as_ref()
            .map(|u| {
                u.decl
                    .apps
                    .iter()
                    .filter(|a| u.shared.tokens.get(&a.name, u.shared.now(), 0).is_some())
                    .map(|a| a.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        Reply {
            ok: true,
            locked: st.is_none(),
            status: Some(StatusReply {
                pid: std::process::id(),
                declaration: self.cfg.declaration.clone(),
                locked: st.is_none(),
                apps,
                idle_lock_secs: self.cfg.idle_lock.as_secs(),
                idle_secs: self
                    .last_use
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .elapsed()
                    .as_secs(),
            }),
            ..Reply::default()
        }
    }

    fn handle(&self, req: Request) -> Reply {
        match req {
            Request::Token {
                declaration,
                app,
                margin,
            } => {
                *self.last_use.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                self.token(&declaration, app.as_deref(), margin)
            }
            Request::Status => self.status(),
            Request::Store { store, call } => {
                *self.last_use.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                self.store_call(&store, call)
            }
            Request::Lock => {
                self.lock();
                Reply {
                    ok: true,
                    locked: true,
                    ..Reply::default()
                }
            }
            Request::Stop => {
                self.lock();
                self.stop.store(true, Ordering::SeqCst);
                Reply {
                    ok: true,
                    locked: true,
                    ..Reply::default()
                }
            }
        }
    }

    /// Renews what is due ahead of expiry, and locks after the idle time.
    fn tick(&self) {
        if self.locked() {
            return;
        }
        let idle = self.last_use.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
        if idle >= self.cfg.idle_lock {
            tracing::info!(idle_secs = idle.as_secs(), "idle: locking (dropping every secret)");
            self.lock();
            return;
        }
        let (decl, shared) = {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match st.as_ref() {
                Some(u) => (u.decl.clone(), u.shared.clone()),
                None => return,
            }
        };
        for app in shared.tokens.due(shared.now(), self.cfg.margin) {
            let renewed =
                AppCtx::load(self.engine.registry(), &decl, Some(&app), &shared).and_then(|c| c.renew(&Silent));
            match renewed {
                Ok(_) => tracing::info!(app, "renewed ahead of expiry"),
                Err(e) => {
                    // The entry is dropped: the next request renews (and reports) itself.
                    tracing::warn!(app, error = %e.message, "renewal ahead of expiry failed");
                    shared.tokens.forget(&app);
                }
            }
        }
    }
}

/// Prepares the socket's directory: created 0700, or refused when it exists
/// with looser permissions or another owner.
fn private_socket_dir(dir: &Path) -> Result<(), Error> {
    let bad = |why: String| {
        Error::failure(format!("the agent's directory {}: {why}", dir.display()))
            .hint("remove it, or choose another place with --socket")
    };
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).map_err(|e| bad(e.to_string()))?;
    }
    let m = std::fs::metadata(dir).map_err(|e| bad(e.to_string()))?;
    use std::os::unix::fs::MetadataExt;
    if m.uid() != uid() {
        return Err(bad(format!("it belongs to uid {}, not to this user", m.uid())));
    }
    if open_for_tests() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(|e| bad(e.to_string()))?;
    } else if m.permissions().mode() & 0o077 != 0 {
        return Err(bad(format!(
            "others may enter it (mode {:o})",
            m.permissions().mode() & 0o777
        )));
    }
    Ok(())
}

/// Test builds only: a socket others may reach, so that a test can show the
/// peer-uid check refusing them (`CONNAPP_FAULT_AGENT_OPEN=1`).
fn open_for_tests() -> bool {
    cfg!(feature = "fault-injection") && std::env::var("CONNAPP_FAULT_AGENT_OPEN").is_ok_and(|v| v == "1")
}

/// Runs the agent in the foreground until it is stopped (a `stop` request,
/// SIGTERM or SIGINT): opens the store, listens, serves. `ready` is called
/// once it listens (a parent that started it in the background waits for it).
pub fn serve(engine: &'static Engine, cfg: Config, ready: &dyn Fn()) -> Result<(), Error> {
    let dir = cfg
        .socket
        .parent()
        .ok_or_else(|| Error::invalid(format!("{} has no directory", cfg.socket.display())))?
        .to_path_buf();
    private_socket_dir(&dir)?;
    if cfg.socket.exists() {
        if std::os::unix::net::UnixStream::connect(&cfg.socket).is_ok() {
            return Err(
                Error::failure(format!("an agent already listens at {}", cfg.socket.display()))
                    .hint("use it (`connapp agent status`), or stop it first with `connapp agent stop`"),
            );
        }
        // Left by an agent that was killed.
        let _ = std::fs::remove_file(&cfg.socket);
    }
    let agent = Arc::new(Agent {
        engine,
        cfg: cfg.clone(),
        state: Mutex::new(None),
        last_use: Mutex::new(Instant::now()),
        stop: AtomicBool::new(false),
        uid: uid(),
    });
    agent.unlock()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failure(format!("cannot start the agent's runtime: {e}")))?;
    let result = rt.block_on(listen(agent.clone(), ready));
    agent.lock();
    let _ = std::fs::remove_file(&cfg.socket);
    result
}

async fn listen(agent: Arc<Agent>, ready: &dyn Fn()) -> Result<(), Error> {
    let socket = agent.cfg.socket.clone();
    let listener = tokio::net::UnixListener::bind(&socket)
        .map_err(|e| Error::failure(format!("cannot listen at {}: {e}", socket.display())))?;
    let mode = if open_for_tests() { 0o666 } else { 0o600 };
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::failure(format!("{}: {e}", socket.display())))?;
    tracing::info!(socket = %socket.display(), "agent listening");
    ready();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::failure(format!("cannot watch for SIGTERM: {e}")))?;
    let mut tick = tokio::time::interval(TICK);
    // At most this many connections are served at once; others wait to be accepted.
    let slots = Arc::new(tokio::sync::Semaphore::new(64));
    loop {
        if agent.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tick.tick() => {
                let a = agent.clone();
                let _ = tokio::task::spawn_blocking(move || a.tick()).await;
            }
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let Ok(permit) = slots.clone().acquire_owned().await else { continue };
                let a = agent.clone();
                tokio::spawn(async move {
                    connection(a, stream).await;
                    drop(permit);
                });
            }
        }
    }
}

async fn connection(agent: Arc<Agent>, stream: tokio::net::UnixStream) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let peer = stream.peer_cred().map(|c| c.uid());
    let (read, mut write) = stream.into_split();
    let reply = match peer {
        Ok(u) if u == agent.uid => {
            let mut line = Vec::new();
            let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST + 1));
            match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line)).await {
                Ok(Ok(_)) if line.len() as u64 <= MAX_REQUEST => match serde_json::from_slice::<Request>(&line) {
                    Ok(req) => {
                        let a = agent.clone();
                        match tokio::task::spawn_blocking(move || a.handle(req)).await {
                            Ok(r) => r,
                            Err(_) => failed(&Error::failure("the agent failed serving the request")),
                        }
                    }
                    Err(e) => failed(&Error::new(ErrorKind::Usage, format!("not a request: {e}"))),
                },
                Ok(Ok(_)) => failed(&Error::new(
                    ErrorKind::Usage,
                    format!("the request is longer than {MAX_REQUEST} bytes"),
                )),
                // A client that sends nothing in time, or goes away, gets nothing.
                _ => return,
            }
        }
        Ok(u) => {
            tracing::warn!(peer_uid = u, "refused a connection from another user");
            failed(&Error::new(
                ErrorKind::Usage,
                format!("refused: the agent serves uid {} only, not uid {u}", agent.uid),
            ))
        }
        Err(e) => failed(&Error::failure(format!("cannot read the peer's credentials: {e}"))),
    };
    let mut bytes = serde_json::to_vec(&reply).unwrap_or_default();
    bytes.push(b'\n');
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, write.write_all(&bytes)).await;
    // The reply held a token: overwrite the buffer before it is freed.
    connapp_plugin_api::zeroize::Zeroize::zeroize(&mut bytes);
}
