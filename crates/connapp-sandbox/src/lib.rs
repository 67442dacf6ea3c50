//! A faithful local Zoom for connapp's tests, its demo, and people without a
//! Zoom account: the OAuth server (`zoom.us` side), the APIs behind the six DEX
//! scopes (`api.zoom.us/v2` side) and a control API for tests (`/_sandbox`).
//! [`servicenow`] is the other end: a local ServiceNow instance with the Table
//! API, the consent round trip against this Zoom and a DEX job.
//!
//! `docs/zoom-platform.md` is the specification, including the unpleasant parts:
//! exact redirect matching with 4700 pages that never redirect, single-use
//! codes, refresh-token rotation with immediate death of the old token, one
//! grant per (app, user), scopes frozen at consent, 4711 naming the accepted
//! scopes, 124 for bad tokens, rate limits with Zoom's headers, expiring page
//! tokens.
//!
//! What it is **not**: secure. Secrets are printed, state is in memory, and
//! the control API lets anyone on loopback rewrite the world. Bind it to
//! 127.0.0.1 only.

// Handlers return early with a ready HTTP response; boxing every `Err(Response)`
// would only add noise on this cold path.
#![allow(clippy::result_large_err)]

pub mod browser;
pub mod fleet;
pub mod random;
mod server;
pub mod servicenow;
pub mod zoom;

// The Zoom modules keep their paths (`connapp_sandbox::state`, ...).
use zoom::{api, control, marketplace, oauth, pages};
pub use zoom::{data, redirect, state, webhooks};

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::random::random_alnum;
use crate::server::Running;
use crate::state::{App, AppKind, Counters, Knobs, Plan, Role, State, Usage, User, plan_limits};

/// The six scopes DEX for Zoom needs.
pub const DEX_SCOPES: [&str; 6] = [
    "report:read:user:admin",
    "dashboard:read:list_meeting_participants_qos:admin",
    "dashboard:read:meeting_participant_qos:admin",
    "dashboard:read:list_zoomrooms:admin",
    "dashboard:read:issues_zoomroom:admin",
    "user:read:user:admin",
];

/// The scopes of the management app that drives the Marketplace API.
pub const MARKETPLACE_SCOPES: [&str; 4] = [
    "marketplace:read:app:admin",
    "marketplace:write:app:admin",
    "marketplace:update:client_secret:admin",
    "marketplace:delete:app:admin",
];

/// What the sandbox starts with. Every field has a default; a seed file
/// (`connapp sandbox --seed FILE`, TOML) overrides what it names.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seed {
    /// Account id.
    pub account_id: String,
    /// Plan.
    pub plan: Plan,
    /// Dashboard feature on.
    pub dashboard_enabled: bool,
    /// Users.
    pub users: Vec<User>,
    /// Apps.
    pub apps: Vec<App>,
    /// Lifetimes and switches.
    pub knobs: Knobs,
}

fn user(id: &str, login: &str, first: &str, last: &str, role: Role, dept: &str) -> User {
    User {
        id: id.into(),
        login: login.into(),
        email: format!("{login}@sandbox.example"),
        first_name: first.into(),
        last_name: last.into(),
        role,
        dept: dept.into(),
    }
}

impl Default for Seed {
    fn default() -> Self {
        Seed {
            account_id: "sbxAccount0000000000001".into(),
            plan: Plan::Business,
            dashboard_enabled: true,
            users: vec![
                user("sbxUserOwner0000000001", "owner", "Olivia", "Owner", Role::Owner, "IT"),
                user("sbxUserAdmin0000000002", "admin", "Adam", "Admin", Role::Admin, "IT"),
                user(
                    "sbxUserMember000000003",
                    "member",
                    "Mia",
                    "Member",
                    Role::Member,
                    "Sales",
                ),
                user(
                    "sbxUserMember000000004",
                    "dana",
                    "Dana",
                    "Reyes",
                    Role::Member,
                    "Finance",
                ),
                user("sbxUserMember000000005", "li", "Li", "Wei", Role::Member, "Engineering"),
                user(
                    "sbxUserMember000000006",
                    "sam",
                    "Sam",
                    "Okafor",
                    Role::Member,
                    "Support",
                ),
            ],
            apps: vec![
                App {
                    app_id: "sbxAppDex0000000000001".into(),
                    name: "DEX for Zoom".into(),
                    kind: AppKind::General,
                    usage: Usage::AdminManagement,
                    client_id: "sbxDexClientId00000001".into(),
                    client_secret: random_alnum(32),
                    secret_token: random_alnum(22),
                    redirect_urls: vec!["https://acme.service-now.com/oauth_redirect.do".into()],
                    allow_list: vec!["https://acme.service-now.com/oauth_redirect.do".into()],
                    strict_mode: false,
                    subdomain_check: false,
                    scopes: DEX_SCOPES.iter().map(|s| s.to_string()).collect(),
                    ..App::default()
                },
                App {
                    app_id: "sbxAppMgmt000000000003".into(),
                    name: "connapp marketplace management".into(),
                    kind: AppKind::ServerToServer,
                    usage: Usage::AdminManagement,
                    client_id: "sbxMgmtClientId0000003".into(),
                    scopes: MARKETPLACE_SCOPES.iter().map(|s| s.to_string()).collect(),
                    ..App::default()
                },
                App {
                    app_id: "sbxAppS2S0000000000002".into(),
                    name: "connapp server-to-server".into(),
                    kind: AppKind::ServerToServer,
                    usage: Usage::AdminManagement,
                    client_id: "sbxS2SClientId00000002".into(),
                    client_secret: random_alnum(32),
                    secret_token: random_alnum(22),
                    redirect_urls: vec![],
                    allow_list: vec![],
                    strict_mode: false,
                    subdomain_check: false,
                    scopes: DEX_SCOPES.iter().map(|s| s.to_string()).collect(),
                    ..App::default()
                },
            ],
            knobs: Knobs::default(),
        }
    }
}

/// Errors starting the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The seed file is wrong.
    #[error("invalid seed: {0}")]
    Seed(String),
    /// The runtime could not start.
    #[error("cannot start the sandbox runtime: {0}")]
    Runtime(std::io::Error),
}

/// Shared state behind every handler.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub state: Arc<Mutex<State>>,
    pub base_url: Arc<str>,
    pub http: reqwest::Client,
}

impl Ctx {
    /// Locks the state (a poisoned lock means a handler panicked; keep serving).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Builds the world from a seed.
pub fn build_state(seed: Seed, now: u64) -> Result<State, SandboxError> {
    if seed.users.is_empty() {
        return Err(SandboxError::Seed("at least one user is needed".into()));
    }
    let mut apps = BTreeMap::new();
    for a in seed.apps {
        if apps.insert(a.client_id.clone(), a).is_some() {
            return Err(SandboxError::Seed("two apps share a client_id".into()));
        }
    }
    let people: Vec<(String, String)> = seed
        .users
        .iter()
        .map(|u| (u.id.clone(), format!("{} {}", u.first_name, u.last_name)))
        .collect();
    let state = State {
        account_id: seed.account_id,
        plan: seed.plan,
        dashboard_enabled: seed.dashboard_enabled,
        users: seed.users,
        apps,
        grants: BTreeMap::new(),
        access_tokens: HashMap::new(),
        refresh_tokens: HashMap::new(),
        codes: HashMap::new(),
        page_tokens: HashMap::new(),
        next_grant: 1,
        clock_offset: 0,
        knobs: seed.knobs,
        limits: plan_limits(seed.plan),
        counters: Counters::default(),
        rate: Default::default(),
        deliveries: Vec::new(),
        pending_retries: Vec::new(),
        validations: Vec::new(),
        data: data::seed(now, &people),
    };
    Ok(state)
}

/// The router: Zoom-compatible routes plus the control API.
pub(crate) fn router(ctx: Ctx) -> Router {
    Router::new()
        .merge(oauth::routes())
        .merge(api::routes())
        .merge(marketplace::routes())
        .merge(control::routes())
        .with_state(ctx)
}

/// A running sandbox on its own thread and runtime. Dropping it stops it.
pub struct Sandbox {
    server: Running<State>,
}

impl Sandbox {
    /// Starts on 127.0.0.1 with an ephemeral port.
    pub fn start(seed: Seed) -> Result<Sandbox, SandboxError> {
        Self::start_on(seed, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts on `addr`.
    pub fn start_on(seed: Seed, addr: SocketAddr) -> Result<Sandbox, SandboxError> {
        let server = Running::start(
            "connapp-sandbox",
            addr,
            |_| build_state(seed, real_now()),
            |state, base| {
                router(Ctx {
                    state,
                    base_url: base.into(),
                    http: webhooks::client(),
                })
            },
        )?;
        Ok(Sandbox { server })
    }

    /// Many Zoom accounts in one process, for fleets: one sandbox per seed
    /// (give each its own `account_id`), each on a port of its own with its
    /// users, apps, grants and rate limits, all served by one thread pool. The
    /// last one dropped stops them all.
    pub fn start_many(seeds: Vec<Seed>) -> Result<Vec<Sandbox>, SandboxError> {
        let http = webhooks::client();
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let servers = Running::start_many(
            "connapp-sandbox",
            seeds.into_iter().map(|s| (any, s)).collect(),
            |seed, _| build_state(seed, real_now()),
            |state, base| {
                router(Ctx {
                    state,
                    base_url: base.into(),
                    http: http.clone(),
                })
            },
            |_| None,
        )?;
        Ok(servers.into_iter().map(|server| Sandbox { server }).collect())
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Base URL of both the OAuth (`/oauth/...`) and the API (`/v2/...`) sides.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// A copy of the app with this client id or name.
    pub fn app(&self, client_id_or_name: &str) -> Option<App> {
        let s = self.server.lock();
        s.apps
            .values()
            .find(|a| a.client_id == client_id_or_name || a.name == client_id_or_name)
            .cloned()
    }

    /// Every app.
    pub fn apps(&self) -> Vec<App> {
        self.server.lock().apps.values().cloned().collect()
    }

    /// The account id.
    pub fn account_id(&self) -> String {
        self.server.lock().account_id.clone()
    }

    /// Runs `f` on the state (tests read counters and break things with it).
    pub fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.server.lock())
    }
}

/// Where the sandbox's world comes from.
pub enum Start {
    /// A fresh world from a seed.
    Seed(Seed),
    /// The world saved in this file, or a fresh one from the seed if the file
    /// does not exist yet; saved back every few seconds and on shutdown.
    StateFile(std::path::PathBuf, Seed),
}

/// The largest seed or state file the sandbox reads.
pub const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a state file written by [`save_state`].
pub fn load_state(path: &std::path::Path) -> Result<State, SandboxError> {
    let text = connapp_plugin_api::bounded::read_text("the state file", path, MAX_STATE_BYTES)
        .map_err(|e| SandboxError::Seed(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| {
        SandboxError::Seed(format!(
            "{} is not a sandbox state file ({e}); move it away to start fresh",
            path.display()
        ))
    })
}

/// Writes the state atomically, readable only by the owner (it holds secrets).
pub fn save_state<T: Serialize>(state: &T, path: &std::path::Path) -> std::io::Result<()> {
    let text = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    connapp_plugin_api::atomic::write_file(path, &text, 0o600)
}

/// Serves the sandbox on `listener` until `shutdown` resolves (for callers
/// that own a runtime, like `connapp sandbox`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    start: Start,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), SandboxError> {
    let addr = listener.local_addr().map_err(SandboxError::Runtime)?;
    let (state, file) = match start {
        Start::Seed(seed) => (build_state(seed, real_now())?, None),
        Start::StateFile(path, seed) => {
            let state = if path.exists() {
                load_state(&path)?
            } else {
                build_state(seed, real_now())?
            };
            (state, Some(path))
        }
    };
    let ctx = Ctx {
        state: Arc::new(Mutex::new(state)),
        base_url: format!("http://{addr}").into(),
        http: webhooks::client(),
    };
    tokio::spawn(webhooks::ticker(ctx.clone()));
    if let Some(path) = &file {
        save_state(&*ctx.lock(), path).map_err(SandboxError::Runtime)?;
        let (ctx, path) = (ctx.clone(), path.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
            loop {
                tick.tick().await;
                let _ = save_state(&*ctx.lock(), &path);
            }
        });
    }
    let result = axum::serve(listener, router(ctx.clone()))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(SandboxError::Runtime);
    if let Some(path) = &file {
        save_state(&*ctx.lock(), path).map_err(SandboxError::Runtime)?;
    }
    result
}

pub(crate) fn real_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Zoom's token-endpoint error: `{"reason": ..., "error": ...}`.
pub(crate) fn token_error(status: u16, reason: impl Into<String>, error: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(json!({ "reason": reason.into(), "error": error }))).into_response()
}

/// Zoom's API error: `{"code": ..., "message": ...}` with a tracking id.
pub(crate) fn api_error(status: u16, code: u32, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = (status, axum::Json(json!({ "code": code, "message": message.into() }))).into_response();
    add_tracking_id(&mut r);
    r
}

pub(crate) fn add_tracking_id(r: &mut Response) {
    if let Ok(v) = HeaderValue::from_str(&format!("v=2.0;clid=sbx;rid={}", random::random_hex(8))) {
        r.headers_mut().insert("x-zm-trackingid", v);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod browser_test;
