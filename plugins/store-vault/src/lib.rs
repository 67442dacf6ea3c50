//! connapp store plugin `store-vault`: secrets in Vault or OpenBao, KV
//! version 2, with the engine's own check-and-set, so several hosts can share
//! one store safely.
//!
//! Layout: each connapp key is one KV secret at `<mount>/data/<prefix>/<key>`
//! holding `{"value": "<base64>"}`. Versions are KV versions. A delete writes
//! a tombstone version with check-and-set and then soft-deletes it, so a
//! delete is atomic against concurrent writers and versions never repeat.
//!
//! Settings (`[store.settings]`): `addr` (else `VAULT_ADDR` / `BAO_ADDR`),
//! `fallback_addrs` (a cluster's other nodes), `lease` (default true), `mount` (default `secret`), `prefix` (default `connapp`), `namespace`,
//! `token_file` (else `VAULT_TOKEN` / `BAO_TOKEN`), AppRole with `role_id` and
//! `secret_id_file` (or `VAULT_SECRET_ID`), `ca_cert` (a PEM file).
//!
//! What it is **not**: a Vault administration tool; it never creates mounts
//! or policies, it tells you which capability is missing.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use connapp_plugin_api::{
    Capabilities, ErrorCode, Expected, Lease, Plugin, PluginInfo, Provided, Record, SettingType, Store, StoreContext,
    StoreDescription, StoreError, StoreSetting, Taken, bounded, export_plugin, plugin_info,
};
use reqwest::blocking::{Client, Response};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// What the Vault store can do: persistent, shared, native check-and-set.
pub const CAPABILITIES: Capabilities = Capabilities {
    persistent: true,
    shared_across_hosts: true,
    native_cas: true,
    max_value_size: 512 * 1024,
};

fn err(code: ErrorCode, msg: impl Into<String>) -> StoreError {
    StoreError::new(code, msg)
}

/// Connection settings.
pub struct VaultConfig {
    /// Base address, e.g. `https://vault.example:8200`.
    pub addr: String,
    /// Other nodes of the same cluster, tried in turn when `addr` does not
    /// answer (`fallback_addrs`).
    pub fallback: Vec<String>,
    /// KV v2 mount.
    pub mount: String,
    /// Path prefix under the mount.
    pub prefix: String,
    /// Enterprise/OpenBao namespace.
    pub namespace: Option<String>,
    /// The token.
    pub token: Zeroizing<String>,
    /// Extra CA certificate (PEM).
    pub ca_cert: Option<Vec<u8>>,
}

impl VaultConfig {
    /// The server addresses: `addr`, then the fallbacks.
    pub fn addrs(&self) -> Vec<&str> {
        std::iter::once(self.addr.as_str())
            .chain(self.fallback.iter().map(String::as_str))
            .collect()
    }
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultConfig")
            .field("addr", &self.addr)
            .field("fallback", &self.fallback)
            .field("mount", &self.mount)
            .field("prefix", &self.prefix)
            .field("namespace", &self.namespace)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// The Vault / OpenBao store.
pub struct VaultStore {
    cfg: VaultConfig,
    http: Client,
    /// The address that answered last (an index into `cfg.addrs()`).
    preferred: std::sync::atomic::AtomicUsize,
}

/// How long a request waits out a cluster without an active node (a leader
/// election takes a few seconds on OpenBao's Raft; 9-14 s with its default
/// timing) before it reports Vault unavailable.
pub const ELECTION_PATIENCE: Duration = Duration::from_secs(30);

/// The newest `X-Vault-Index` this process has seen from each server
/// address: `(cluster, raft index, the header as sent)`.
///
/// A Raft standby answers reads from its own copy, which can lag the active
/// node (OpenBao >= 2.5 serves standby reads by default). Sending the newest
/// index back with `X-Vault-Inconsistent: forward-active-node` makes a
/// standby that has not applied it yet forward the read to the active node
/// (OpenBao >= 2.7), so a read after this process's own write (a lease taken
/// after another host's publish) sees that write. A server that sends no
/// index (a `-dev` server, an older OpenBao, Vault without Enterprise) is
/// read as before. Shared by the store and its lease, which are separate
/// clients of the same server.
fn indexes() -> &'static std::sync::Mutex<std::collections::HashMap<String, SeenIndex>> {
    static INDEXES: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, SeenIndex>>> =
        std::sync::OnceLock::new();
    INDEXES.get_or_init(Default::default)
}

/// `(cluster, raft index, the header as the server sent it)`.
type SeenIndex = (String, u64, String);

/// `(cluster, index)` of an `X-Vault-Index` header: base64 of
/// `{"cluster": "...", "value": "37"}` (OpenBao 2.7).
fn parse_index(raw: &str) -> Option<(String, u64)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(raw.trim()))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let cluster = v["cluster"].as_str()?.to_string();
    let value = match &v["value"] {
        Value::String(s) => s.parse().ok()?,
        n => n.as_u64()?,
    };
    Some((cluster, value))
}

fn transport(addr: &str, e: &reqwest::Error) -> StoreError {
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    err(ErrorCode::UNAVAILABLE, format!("cannot reach Vault at {addr}: {what}")).retryable()
}

/// Every HTTP client this plugin builds starts here. A dynamic plugin has
/// its own copy of rustls, so it installs its own provider; a test that
/// builds a client alone must not depend on a store having been built first.
pub(crate) fn client_builder() -> reqwest::blocking::ClientBuilder {
    connapp_plugin_api::tls::install_provider();
    Client::builder()
}

impl VaultStore {
    /// Connects (builds the client; no request yet).
    pub fn new(cfg: VaultConfig) -> Result<Self, StoreError> {
        let mut b = client_builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &cfg.ca_cert {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| {
                err(
                    ErrorCode::INVALID_INPUT,
                    format!("store.settings.ca_cert is not a PEM certificate: {e}"),
                )
            })?;
            b = b.tls_certs_merge([cert]);
        } else if cfg.addrs().iter().all(|a| a.starts_with("http://")) {
            // Plain HTTP (a loopback or dev server): no TLS, so none of the
            // system's CA certificates are read (300 files on Debian).
            b = b.tls_certs_only(Vec::<reqwest::Certificate>::new());
        }
        let http = b
            .build()
            .map_err(|e| err(ErrorCode::OTHER, format!("cannot build the HTTP client: {e}")))?;
        Ok(VaultStore {
            cfg,
            http,
            preferred: Default::default(),
        })
    }

    /// Keeps the response's index if it is the newest seen from this server.
    fn saw_index(&self, r: &Response) {
        let Some(raw) = r.headers().get("x-vault-index").and_then(|h| h.to_str().ok()) else {
            return;
        };
        let Some((cluster, value)) = parse_index(raw) else {
            return;
        };
        let mut map = indexes().lock().unwrap_or_else(|p| p.into_inner());
        let e = map
            .entry(self.cfg.addr.clone())
            .or_insert_with(|| (cluster.clone(), 0, String::new()));
        // A different cluster at the same address (rebuilt): start over.
        if e.0 != cluster || value >= e.1 {
            *e = (cluster, value, raw.to_string());
        }
    }

    /// The newest index seen from this server, to send back.
    fn known_index(&self) -> Option<String> {
        let map = indexes().lock().unwrap_or_else(|p| p.into_inner());
        map.get(&self.cfg.addr).map(|(_, _, raw)| raw.clone())
    }

    /// The request path (`/v1/<mount>/<kind>/<prefix>/<key>`), without the address.
    fn path(&self, kind: &str, key: &str) -> String {
        let prefix = self.cfg.prefix.trim_matches('/');
        let key = key.trim_start_matches('/');
        let rel = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}/{key}")
        };
        format!("/v1/{}/{kind}/{rel}", self.cfg.mount.trim_matches('/'))
    }

    /// One request. The addresses are tried in turn, starting with the one
    /// that answered last: a node that does not answer at all (down,
    /// unreachable) is passed over at once. An answer that says "no active
    /// node right now" — 307/308 from a standby, 503, 502, 504, 429 — is a
    /// leader election or an overload: tried again with backoff (capped at
    /// 1 s) for up to [`ELECTION_PATIENCE`]. Other server errors and
    /// addresses that all refuse get three tries. The redirect is never
    /// followed: the token would go wherever it points.
    fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(StatusCode, Value), StoreError> {
        let addrs = self.cfg.addrs();
        let start = std::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        let (mut refused_rounds, mut other_errors) = (0, 0);
        loop {
            let first = self.preferred.load(std::sync::atomic::Ordering::Relaxed) % addrs.len();
            let mut last = None;
            let mut reached = false;
            for i in 0..addrs.len() {
                let at = (first + i) % addrs.len();
                let addr = addrs[at];
                let url = format!("{}{path}", addr.trim_end_matches('/'));
                let mut rb = self
                    .http
                    .request(method.clone(), &url)
                    .header("X-Vault-Token", self.cfg.token.as_str())
                    .header("X-Vault-Request", "true");
                if let Some(ns) = &self.cfg.namespace {
                    rb = rb.header("X-Vault-Namespace", ns);
                }
                if let Some(index) = self.known_index() {
                    rb = rb
                        .header("X-Vault-Index", index)
                        .header("X-Vault-Inconsistent", "forward-active-node");
                }
                if let Some(b) = body {
                    rb = rb.json(b);
                }
                let r = match rb.send() {
                    Ok(r) => r,
                    Err(e) => {
                        last = Some(transport(addr, &e));
                        continue;
                    }
                };
                reached = true;
                self.preferred.store(at, std::sync::atomic::Ordering::Relaxed);
                self.saw_index(&r);
                let status = r.status();
                let electing = matches!(
                    status,
                    StatusCode::TEMPORARY_REDIRECT
                        | StatusCode::PERMANENT_REDIRECT
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::BAD_GATEWAY
                        | StatusCode::GATEWAY_TIMEOUT
                        | StatusCode::TOO_MANY_REQUESTS
                );
                if electing {
                    last = Some(
                        err(
                            ErrorCode::UNAVAILABLE,
                            format!(
                                "Vault at {addr} answered HTTP {status} for {:?}s (no active node: a leader election, or an overload)",
                                start.elapsed().as_secs()
                            ),
                        )
                        .retryable(),
                    );
                    if start.elapsed() >= ELECTION_PATIENCE {
                        return Err(last.unwrap_or_else(|| err(ErrorCode::UNAVAILABLE, "Vault did not answer")));
                    }
                    // Another node may know the new leader already.
                    continue;
                }
                if status.is_server_error() {
                    other_errors += 1;
                    last = Some(
                        err(
                            ErrorCode::UNAVAILABLE,
                            format!("Vault at {addr} answered HTTP {status}"),
                        )
                        .retryable(),
                    );
                    if other_errors >= 3 {
                        return Err(last.unwrap_or_else(|| err(ErrorCode::UNAVAILABLE, "Vault did not answer")));
                    }
                    break;
                }
                return Ok((status, json_of(r)));
            }
            if !reached {
                refused_rounds += 1;
                if refused_rounds >= 3 {
                    return Err(last.unwrap_or_else(|| err(ErrorCode::UNAVAILABLE, "Vault did not answer")));
                }
            }
            if start.elapsed() >= ELECTION_PATIENCE {
                return Err(last.unwrap_or_else(|| err(ErrorCode::UNAVAILABLE, "Vault did not answer")));
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    fn denied(&self, path: &str, capability: &str) -> StoreError {
        let path = path.trim_start_matches("/v1/");
        err(
            ErrorCode::PERMISSION_DENIED,
            format!(
                "Vault denied access to {path}: the token's policy needs the \"{capability}\" capability on path \"{path}\" (check the token, its policies, and the namespace)"
            ),
        )
    }

    fn unexpected(&self, what: &str, status: StatusCode, body: &Value) -> StoreError {
        let errors = body["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "));
        err(
            ErrorCode::OTHER,
            format!(
                "Vault refused to {what}: HTTP {status}{}",
                errors.map(|e| format!(" ({e})")).unwrap_or_default()
            ),
        )
    }

    /// (current version, whether that version holds a live value). (0, false) when missing.
    fn current(&self, key: &str) -> Result<(u64, bool), StoreError> {
        let url = self.path("metadata", key);
        let (status, body) = self.call(Method::GET, &url, None)?;
        match status {
            StatusCode::OK => {
                let cur = body["data"]["current_version"].as_u64().unwrap_or(0);
                let v = &body["data"]["versions"][cur.to_string()];
                let live = cur > 0
                    && v["deletion_time"].as_str().unwrap_or("").is_empty()
                    && !v["destroyed"].as_bool().unwrap_or(false);
                Ok((cur, live))
            }
            StatusCode::NOT_FOUND => Ok((0, false)),
            StatusCode::FORBIDDEN => Err(self.denied(&url, "read")),
            s => Err(self.unexpected("read metadata", s, &body)),
        }
    }

    fn write(&self, key: &str, data: Value, cas: Option<u64>) -> Result<u64, StoreError> {
        let written = self.write_answer(key, data, cas)?;
        written["version"]
            .as_u64()
            .ok_or_else(|| err(ErrorCode::CORRUPT, "Vault's write answer has no version"))
    }

    /// A write's answer: the new version's metadata (`version`,
    /// `created_time`, `deletion_time`).
    fn write_answer(&self, key: &str, data: Value, cas: Option<u64>) -> Result<Value, StoreError> {
        let url = self.path("data", key);
        let mut body = json!({"data": data});
        if let Some(c) = cas {
            body["options"] = json!({"cas": c});
        }
        let (status, resp) = self.call(Method::POST, &url, Some(&body))?;
        match status {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(resp["data"].clone()),
            StatusCode::BAD_REQUEST
                if resp["errors"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|e| e.as_str().is_some_and(|s| s.contains("check-and-set")))
                }) =>
            {
                Err(StoreError::conflict(format!(
                    "{key}: changed by someone else (check-and-set)"
                )))
            }
            StatusCode::FORBIDDEN => Err(self.denied(&url, "update")),
            StatusCode::NOT_FOUND => Err(err(
                ErrorCode::INVALID_INPUT,
                format!(
                    "no KV version 2 engine at mount {:?}: enable it (`bao secrets enable -version=2 -path={} kv`) or set store.settings.mount",
                    self.cfg.mount, self.cfg.mount
                ),
            )),
            s => Err(self.unexpected("write", s, &resp)),
        }
    }

    fn list_dir(&self, dir: &str, out: &mut Vec<String>) -> Result<(), StoreError> {
        let url = self.path("metadata", dir);
        let url = if dir.is_empty() {
            format!("{}/", url.trim_end_matches('/'))
        } else {
            url
        };
        let (status, body) = self.call(Method::from_bytes(b"LIST").unwrap_or(Method::GET), &url, None)?;
        match status {
            StatusCode::OK => {
                for k in body["data"]["keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    let full = format!("{dir}{k}");
                    if k.ends_with('/') {
                        self.list_dir(&full, out)?;
                    } else {
                        out.push(full);
                    }
                }
                Ok(())
            }
            StatusCode::NOT_FOUND => Ok(()),
            StatusCode::FORBIDDEN => Err(self.denied(&url, "list")),
            s => Err(self.unexpected("list", s, &body)),
        }
    }
}

fn json_of(r: Response) -> Value {
    r.json().unwrap_or(Value::Null)
}

fn conflict(key: &str, expected: Expected, version: u64, live: bool) -> StoreError {
    let found = if live {
        format!("version {version}")
    } else {
        "absent".into()
    };
    StoreError::conflict(format!("{key}: expected {expected:?}, found {found}"))
}

impl Store for VaultStore {
    fn describe(&self) -> Result<StoreDescription, StoreError> {
        Ok(StoreDescription {
            capabilities: CAPABILITIES,
            // Everything that tells one store from another on the same server:
            // connapp keys its locks and journals by it.
            location: match &self.cfg.namespace {
                Some(ns) => format!(
                    "{} (namespace {ns}, kv-v2 mount {}, prefix {})",
                    self.cfg.addr, self.cfg.mount, self.cfg.prefix
                ),
                None => format!(
                    "{} (kv-v2 mount {}, prefix {})",
                    self.cfg.addr, self.cfg.mount, self.cfg.prefix
                ),
            },
        })
    }

    fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let url = self.path("data", key);
        let (status, body) = self.call(Method::GET, &url, None)?;
        match status {
            StatusCode::OK => {
                let data = &body["data"]["data"];
                if data["tombstone"].as_bool().unwrap_or(false) {
                    return Ok(None);
                }
                let version = body["data"]["metadata"]["version"].as_u64().unwrap_or(0);
                let b64 = data["value"].as_str().ok_or_else(|| {
                    err(
                        ErrorCode::CORRUPT,
                        format!("{key}: the Vault secret has no `value` field; was it written by connapp?"),
                    )
                })?;
                let value = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| err(ErrorCode::CORRUPT, format!("{key}: the stored value is not base64")))?;
                Ok(Some(Record {
                    value: Zeroizing::new(value),
                    version,
                }))
            }
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::FORBIDDEN => Err(self.denied(&url, "read")),
            s => Err(self.unexpected("read", s, &body)),
        }
    }

    fn put(&self, key: &str, value: &[u8], expected: Expected) -> Result<u64, StoreError> {
        let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(value));
        let data = json!({"value": encoded.as_str()});
        let cas = match expected {
            Expected::Any => None,
            Expected::Version(v) => {
                // KV accepts cas on a deleted version; connapp does not.
                let (cur, live) = self.current(key)?;
                if !(live && cur == v) {
                    return Err(conflict(key, expected, cur, live));
                }
                Some(v)
            }
            Expected::Absent => {
                let (cur, live) = self.current(key)?;
                if live {
                    return Err(conflict(key, expected, cur, live));
                }
                Some(cur)
            }
        };
        self.write(key, data, cas)
    }

    fn delete(&self, key: &str, expected: Expected) -> Result<bool, StoreError> {
        let (cur, live) = self.current(key)?;
        let ok = match expected {
            Expected::Any => true,
            Expected::Absent => !live,
            Expected::Version(v) => live && cur == v,
        };
        if !ok {
            return Err(conflict(key, expected, cur, live));
        }
        if !live {
            return Ok(false);
        }
        // A tombstone version, written with check-and-set, makes the delete atomic.
        let v = self.write(key, json!({"tombstone": true}), Some(cur))?;
        let url = self.path("data", key);
        let (status, body) = self.call(Method::DELETE, &url, None)?;
        if !(status.is_success() || status == StatusCode::NOT_FOUND) {
            return Err(self.unexpected(&format!("delete (tombstone version {v} written)"), status, &body));
        }
        Ok(true)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // List the deepest directory the prefix names, then filter.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..=i],
            None => "",
        };
        let mut all = Vec::new();
        self.list_dir(dir, &mut all)?;
        let mut out = Vec::new();
        for k in all.into_iter().filter(|k| k.starts_with(prefix)) {
            if self.current(&k)?.1 {
                out.push(k);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Reads a secret from a file, trimmed; the file's content is never echoed.
fn read_secret_file(setting: &str, path: &str) -> Result<Zeroizing<String>, StoreError> {
    // A token or secret id is well under a KiB; the limit keeps a wrong path
    // (a device, a huge file) from costing memory.
    let bytes = Zeroizing::new(
        bounded::read_file("the secret file", std::path::Path::new(path), 64 * 1024)
            .map_err(|e| err(ErrorCode::INVALID_INPUT, format!("store.settings.{setting}: {e}")))?,
    );
    let s = std::str::from_utf8(&bytes).map_err(|_| {
        err(
            ErrorCode::INVALID_INPUT,
            format!("store.settings.{setting}: {path} is not UTF-8 text"),
        )
    })?;
    Ok(Zeroizing::new(s.trim().to_string()))
}

fn env_secret(names: &[&str]) -> Option<Zeroizing<String>> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        .map(Zeroizing::new)
}

/// AppRole login: role id + secret id → a client token.
fn approle_login(
    cfg: &VaultConfig,
    http: &Client,
    role_id: &str,
    secret_id: &str,
) -> Result<Zeroizing<String>, StoreError> {
    // The first node that answers (a standby forwards the login).
    let mut answer = Err(err(ErrorCode::UNAVAILABLE, "Vault did not answer"));
    for addr in cfg.addrs() {
        let url = format!("{}/v1/auth/approle/login", addr.trim_end_matches('/'));
        let mut rb = http
            .post(&url)
            .json(&json!({"role_id": role_id, "secret_id": secret_id}));
        if let Some(ns) = &cfg.namespace {
            rb = rb.header("X-Vault-Namespace", ns);
        }
        answer = rb.send().map_err(|e| transport(addr, &e));
        if answer.is_ok() {
            break;
        }
    }
    let r = answer?;
    let status = r.status();
    let body = json_of(r);
    match body["auth"]["client_token"].as_str() {
        Some(t) if status.is_success() => Ok(Zeroizing::new(t.to_string())),
        _ => Err(err(
            ErrorCode::AUTH_FAILED,
            format!("AppRole login failed (HTTP {status}): check store.settings.role_id and the secret id"),
        )),
    }
}

/// The settings the vault store takes (`[store.settings]`), as `connapp
/// check`, `init` and `plugins info` describe them.
pub fn settings() -> Vec<StoreSetting> {
    use SettingType as T;
    vec![
        StoreSetting::new("addr", T::URL, "the server's address, e.g. https://vault.example:8200")
            .required()
            .env(&["VAULT_ADDR", "BAO_ADDR"]),
        StoreSetting::new(
            "fallback_addrs",
            T::TEXT,
            "other nodes of the same cluster, comma-separated, tried in turn when addr does not answer",
        ),
        StoreSetting::new("mount", T::TEXT, "the KV version 2 engine's mount").default_value("secret"),
        StoreSetting::new(
            "prefix",
            T::TEXT,
            "the path below the mount that connapp's keys go under",
        )
        .default_value("connapp"),
        StoreSetting::new("namespace", T::TEXT, "the Vault Enterprise or OpenBao namespace").env(&["VAULT_NAMESPACE"]),
        StoreSetting::new(
            "token_file",
            T::PATH,
            "a file holding the token (else the token itself from the environment)",
        )
        .secret()
        .env(&["VAULT_TOKEN", "BAO_TOKEN"]),
        StoreSetting::new(
            "role_id",
            T::TEXT,
            "log in with AppRole as this role (with secret_id_file)",
        ),
        StoreSetting::new(
            "secret_id_file",
            T::PATH,
            "a file holding the AppRole secret id (else the secret id itself from the environment)",
        )
        .secret()
        .env(&["VAULT_SECRET_ID", "BAO_SECRET_ID"]),
        StoreSetting::new(
            "lease",
            T::BOOLEAN,
            "take turns with the other hosts that share this store through a lease under <prefix>/locks, so one refresh serves them all (false: one host only; its local lock is enough)",
        )
        .default_value("true"),
        StoreSetting::new(
            "ca_cert",
            T::PATH,
            "a PEM file with the CA certificate the server's is signed by",
        ),
    ]
}

/// Builds a store from `[store.settings]` and the environment.
pub fn from_settings(ctx: &StoreContext<'_>) -> Result<VaultStore, StoreError> {
    let described = settings();
    let known: Vec<&str> = described.iter().map(|s| s.name.as_str()).collect();
    for (k, _) in ctx.settings() {
        if !known.contains(&k) {
            return Err(err(
                ErrorCode::INVALID_INPUT,
                format!(
                    "store.settings.{k}: unknown setting for the vault store (known: {})",
                    known.join(", ")
                ),
            ));
        }
    }
    let addr = ctx
        .setting("addr")
        .map(str::to_string)
        .or_else(|| std::env::var("VAULT_ADDR").ok())
        .or_else(|| std::env::var("BAO_ADDR").ok())
        .ok_or_else(|| {
            err(
                ErrorCode::INVALID_INPUT,
                "the vault store needs an address: set store.settings.addr, VAULT_ADDR or BAO_ADDR",
            )
        })?;
    let ca_cert = match ctx.setting("ca_cert") {
        Some(p) => Some(
            bounded::read_file("the CA certificate", std::path::Path::new(p), 1024 * 1024)
                .map_err(|e| err(ErrorCode::INVALID_INPUT, format!("store.settings.ca_cert: {e}")))?,
        ),
        None => None,
    };
    let fallback = match ctx.setting("fallback_addrs") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| {
                if a.starts_with("http://") || a.starts_with("https://") {
                    Ok(a.to_string())
                } else {
                    Err(err(
                        ErrorCode::INVALID_INPUT,
                        format!(
                            "store.settings.fallback_addrs: {a:?} is not an http:// or https:// address (write the nodes comma-separated, e.g. \"https://vault-2:8200, https://vault-3:8200\")"
                        ),
                    ))
                }
            })
            .collect::<Result<_, _>>()?,
    };
    let mut cfg = VaultConfig {
        addr,
        fallback,
        mount: ctx.setting("mount").unwrap_or("secret").to_string(),
        prefix: ctx.setting("prefix").unwrap_or("connapp").to_string(),
        namespace: ctx
            .setting("namespace")
            .map(str::to_string)
            .or_else(|| std::env::var("VAULT_NAMESPACE").ok()),
        token: Zeroizing::new(String::new()),
        ca_cert,
    };
    let store = VaultStore::new(VaultConfig {
        token: Zeroizing::new(String::new()),
        addr: cfg.addr.clone(),
        fallback: cfg.fallback.clone(),
        mount: cfg.mount.clone(),
        prefix: cfg.prefix.clone(),
        namespace: cfg.namespace.clone(),
        ca_cert: cfg.ca_cert.clone(),
    })?;
    cfg.token = if let Some(role) = ctx.setting("role_id") {
        let secret_id = match ctx.setting("secret_id_file") {
            Some(p) => read_secret_file("secret_id_file", p)?,
            None => env_secret(&["VAULT_SECRET_ID", "BAO_SECRET_ID"]).ok_or_else(|| {
                err(
                    ErrorCode::AUTH_FAILED,
                    "AppRole needs a secret id: set store.settings.secret_id_file or VAULT_SECRET_ID",
                )
            })?,
        };
        approle_login(&cfg, &store.http, role, &secret_id)?
    } else if let Some(p) = ctx.setting("token_file") {
        read_secret_file("token_file", p)?
    } else {
        env_secret(&["VAULT_TOKEN", "BAO_TOKEN"]).ok_or_else(|| {
            err(
                ErrorCode::AUTH_FAILED,
                "the vault store needs a token: set VAULT_TOKEN or BAO_TOKEN, store.settings.token_file, or AppRole (role_id + secret_id_file)",
            )
        })?
    };
    Ok(VaultStore {
        cfg,
        http: store.http,
        preferred: Default::default(),
    })
}

/// Leases under `<prefix>/locks/<name>` (API 1.7), built from KV v2 alone:
/// `delete_version_after` on the key's metadata makes every version expire
/// by the **server's** clock; taking is a write with `cas` on the version a
/// read found (absent, deleted or expired); giving back soft-deletes only the
/// version taken, so it never touches a successor's.
pub struct VaultLease {
    store: VaultStore,
    /// Lease names whose metadata (the expiry) this process has set.
    prepared: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl VaultLease {
    fn key(name: &str) -> String {
        format!("locks/{name}")
    }

    /// Whether this process has set, or seen, the lease key's expiry.
    fn is_prepared(&self, name: &str) -> bool {
        self.prepared.lock().unwrap_or_else(|p| p.into_inner()).contains(name)
    }

    fn mark_prepared(&self, name: &str) {
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
    }

    /// Sets the lease key's expiry: every version it gets from now on is
    /// deleted by the server `ttl_secs` after its creation.
    fn prepare(&self, name: &str, ttl_secs: u64) -> Result<(), StoreError> {
        let url = self.store.path("metadata", &Self::key(name));
        let body = json!({"delete_version_after": format!("{ttl_secs}s"), "max_versions": 5});
        let (status, resp) = self.store.call(Method::POST, &url, Some(&body))?;
        match status {
            StatusCode::OK | StatusCode::NO_CONTENT => {
                self.mark_prepared(name);
                Ok(())
            }
            StatusCode::FORBIDDEN => Err(self.store.denied(&url, "update")),
            s => Err(self.store.unexpected("set the lease's expiry", s, &resp)),
        }
    }
}

/// Whether a version's metadata (a write's answer) says the server deletes
/// it `ttl_secs` after its creation: the lease key's expiry is set.
fn expires_after(meta: &Value, ttl_secs: u64) -> bool {
    match (time_of(meta, "created_time"), time_of(meta, "deletion_time")) {
        (Some(created), Some(deleted)) => (deleted - created).num_seconds().abs_diff(ttl_secs as i64) <= 1,
        _ => false,
    }
}

fn time_of(meta: &Value, field: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    meta[field]
        .as_str()
        .filter(|t| !t.is_empty())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
}

/// Whether the lease version `meta` describes ended by expiring (deleted at
/// its creation plus `ttl_secs`, by the server) rather than by being given
/// back (deleted earlier).
fn expired(meta: &Value, ttl_secs: u64) -> bool {
    match (time_of(meta, "created_time"), time_of(meta, "deletion_time")) {
        (Some(created), Some(deleted)) => (deleted - created).num_seconds() >= ttl_secs as i64 - 1,
        _ => false,
    }
}

impl Lease for VaultLease {
    /// Two round trips when the key exists: its expiry is set once, before
    /// the key's first version, and otherwise checked in the taking write's
    /// own answer (a version the server will not delete by itself is given
    /// back, the expiry set, and the lease taken again).
    fn try_take(&self, name: &str, holder: &str, ttl_secs: u64) -> Result<Option<Taken>, StoreError> {
        let key = Self::key(name);
        let url = self.store.path("data", &key);
        let mut after_expiry = None;
        loop {
            let (status, body) = self.store.call(Method::GET, &url, None)?;
            let meta = &body["data"]["metadata"];
            let current = match status {
                // A live version: someone holds it.
                StatusCode::OK if !body["data"]["data"].is_null() => return Ok(None),
                StatusCode::OK | StatusCode::NOT_FOUND => meta["version"].as_u64().unwrap_or(0),
                StatusCode::FORBIDDEN => return Err(self.store.denied(&url, "read")),
                s => return Err(self.store.unexpected("read the lease", s, &body)),
            };
            // Whether the previous holder's turn ended by expiring: known
            // from the first read (a retake below follows this host's own
            // give-back).
            let after_expiry = *after_expiry.get_or_insert_with(|| expired(meta, ttl_secs));
            if current == 0 && !self.is_prepared(name) {
                self.prepare(name, ttl_secs)?;
            }
            let written = match self.store.write_answer(&key, json!({"holder": holder}), Some(current)) {
                Ok(w) => w,
                Err(e) if e.code == ErrorCode::CONFLICT => return Ok(None),
                Err(e) => return Err(e),
            };
            let version = written["version"]
                .as_u64()
                .ok_or_else(|| err(ErrorCode::CORRUPT, "Vault's write answer has no version"))?;
            if self.is_prepared(name) || expires_after(&written, ttl_secs) {
                self.mark_prepared(name);
                return Ok(Some(Taken { version, after_expiry }));
            }
            // The key predates its expiry or has another one: this version
            // would outlive the turn. Given back, and taken again once set.
            self.prepare(name, ttl_secs)?;
            self.give_back(name, version)?;
        }
    }

    fn give_back(&self, name: &str, version: u64) -> Result<(), StoreError> {
        let url = self.store.path("delete", &Self::key(name));
        let (status, resp) = self
            .store
            .call(Method::POST, &url, Some(&json!({"versions": [version]})))?;
        match status {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            StatusCode::FORBIDDEN => Err(self.store.denied(&url, "update")),
            s => Err(self.store.unexpected("give the lease back", s, &resp)),
        }
    }
}

/// The plugin: provides the store kind `vault`.
pub struct VaultStorePlugin;

impl Plugin for VaultStorePlugin {
    fn info() -> PluginInfo {
        plugin_info![Provided::store("vault", CAPABILITIES)]
    }

    fn open_store(_name: &str, ctx: &StoreContext<'_>) -> Result<Box<dyn Store>, StoreError> {
        Ok(Box::new(from_settings(ctx)?))
    }

    fn store_settings(_kind: &str) -> Option<Vec<StoreSetting>> {
        Some(settings())
    }

    fn open_lease(_kind: &str, ctx: &StoreContext<'_>) -> Result<Option<Box<dyn Lease>>, StoreError> {
        if ctx.setting("lease") == Some("false") {
            return Ok(None);
        }
        Ok(Some(Box::new(VaultLease {
            store: from_settings(ctx)?,
            prepared: Default::default(),
        })))
    }
}

export_plugin!(VaultStorePlugin);

#[cfg(test)]
mod tests;
