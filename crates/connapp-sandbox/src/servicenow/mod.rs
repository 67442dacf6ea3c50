//! A faithful local ServiceNow instance (`docs/servicenow.md` §8): the Table API
//! for the tables of the DEX for Zoom record chain with its conventions, basic
//! and OAuth authentication with roles, `oauth_initiator.do` /
//! `oauth_redirect.do` doing a real consent against the Zoom sandbox and
//! keeping the tokens in `oauth_credential` (refreshed as ServiceNow does),
//! and a "DEX job" that reads the six Zoom endpoints with those tokens.
//!
//! What it is **not**: secure or complete. It knows the tables connapp needs;
//! password2 values are kept in memory in plain text (never returned).

mod attachment;
mod oauth;
pub mod query;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use serde::{Deserialize, Serialize};

use crate::SandboxError;
use crate::random::{random_alnum, random_hex};

/// The kind of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    Str,
    /// `"true"` / `"false"`.
    Bool,
    /// A number.
    Int,
    /// `YYYY-MM-DD HH:MM:SS` UTC.
    DateTime,
    /// A reference to a row of the named table (a sys_id).
    Ref(&'static str),
    /// Encrypted (password2): write-only through the Table API.
    Password2,
}

const SYS: &[(&str, Kind)] = &[
    ("sys_id", Kind::Str),
    ("sys_created_on", Kind::DateTime),
    ("sys_updated_on", Kind::DateTime),
    ("sys_created_by", Kind::Str),
    ("sys_mod_count", Kind::Int),
    ("sys_class_name", Kind::Str),
];

/// The columns of each table the sandbox knows (besides the `sys_*` ones).
pub fn schema(table: &str) -> Option<&'static [(&'static str, Kind)]> {
    use Kind::*;
    Some(match table {
        "sys_user" => &[
            ("user_name", Str),
            ("name", Str),
            ("email", Str),
            ("roles", Str),
            ("active", Bool),
        ],
        "sys_alias" => &[
            ("name", Str),
            ("id", Str),
            ("type", Str),
            ("connection_type", Str),
            ("multiple_connections", Bool),
            ("configuration_template", Str),
            ("sys_scope", Str),
            ("parent", Ref("sys_alias")),
        ],
        "http_connection" => &[
            ("name", Str),
            ("credential", Ref("oauth_2_0_credentials")),
            ("connection_alias", Ref("sys_alias")),
            ("connection_url", Str),
            ("host", Str),
            ("port", Str),
            ("protocol", Str),
            ("use_mid", Bool),
            ("connection_timeout", Int),
            ("active", Bool),
            ("order", Int),
        ],
        "oauth_2_0_credentials" => &[
            ("name", Str),
            ("active", Bool),
            ("oauth_entity_profile", Ref("oauth_entity_profile")),
            ("order", Int),
            ("applies_to", Str),
            ("type", Str),
            ("integration_type", Str),
        ],
        "oauth_entity" => &[
            ("name", Str),
            ("client_id", Str),
            ("client_secret", Password2),
            ("type", Str),
            ("default_grant_type", Str),
            ("auth_url", Str),
            ("token_url", Str),
            ("revoke_token_url", Str),
            ("redirect_url", Str),
            ("refresh_token_lifespan", Int),
            ("access_token_lifespan", Int),
            ("send_client_credentials_as", Str),
            ("public_client", Bool),
            ("code_challenge_method", Str),
            ("use_mutual_auth", Bool),
            ("active", Bool),
            ("logo_url", Str),
            ("comments", Str),
        ],
        "oauth_entity_profile" => &[
            ("name", Str),
            ("oauth_entity", Ref("oauth_entity")),
            ("grant_type", Str),
            ("default", Bool),
        ],
        "oauth_entity_scope" => &[
            ("name", Str),
            ("oauth_entity_scope", Str),
            ("oauth_entity", Ref("oauth_entity")),
        ],
        "oauth_entity_profile_scope" => &[
            ("oauth_entity_profile", Ref("oauth_entity_profile")),
            ("oauth_entity_scope", Ref("oauth_entity_scope")),
        ],
        "oauth_requestor_profile" => &[
            ("requestor_id", Str),
            ("requestor_context", Str),
            ("oauth_entity_profile", Ref("oauth_entity_profile")),
        ],
        "oauth_credential" => &[
            ("type", Str),
            ("expires", DateTime),
            ("token_received", Password2),
            ("peer", Ref("oauth_entity")),
            ("oauth_requestor_profile", Ref("oauth_requestor_profile")),
            ("user", Str),
            ("scopes", Str),
        ],
        // System Logs > Outbound HTTP Requests: one row per outbound REST call
        // the instance makes, at log level Basic (no headers, no bodies).
        "sys_outbound_http_log" => &[
            ("url", Str),
            ("http_method", Str),
            ("hostname", Str),
            ("path", Str),
            ("response_status", Int),
            ("response_time", Int),
            ("source_table", Str),
            ("source_record", Str),
        ],
        // Change Management (`docs/operations.md` §5): the fields a change
        // request carries for its plan and evidence.
        "change_request" => &[
            ("number", Str),
            ("short_description", Str),
            ("description", Str),
            ("justification", Str),
            ("implementation_plan", Str),
            ("backout_plan", Str),
            ("test_plan", Str),
            ("risk", Str),
            ("impact", Str),
            ("state", Str),
            ("start_date", DateTime),
            ("end_date", DateTime),
            ("close_code", Str),
            ("close_notes", Str),
        ],
        "sys_choice" => &[("name", Str), ("element", Str), ("value", Str), ("label", Str)],
        "sys_properties" => &[("name", Str), ("value", Str)],
        _ => return None,
    })
}

/// The kind of a column of `table` (including `sys_*`), if it exists.
pub fn kind_of(table: &str, field: &str) -> Option<Kind> {
    SYS.iter()
        .chain(schema(table)?.iter())
        .find(|(f, _)| *f == field)
        .map(|(_, k)| *k)
}

/// Who may read and write a table (`docs/servicenow.md` §1.5).
pub fn may_write(table: &str, roles: &[String]) -> bool {
    let has = |r: &str| roles.iter().any(|x| x == r);
    if has("admin") {
        return true;
    }
    match table {
        t if t.starts_with("oauth_") => has("oauth_admin"),
        "http_connection" => has("connection_admin"),
        "change_request" => has("itil"),
        _ => false,
    }
}

/// Reads follow writes, except that any authenticated user may read users and
/// choices, and connection/credential admins may read aliases (`docs/servicenow.md` §1.5).
pub fn may_read(table: &str, roles: &[String]) -> bool {
    let has = |r: &str| roles.iter().any(|x| x == r);
    may_write(table, roles)
        || matches!(table, "sys_choice" | "sys_user")
        || (table == "sys_alias" && (has("connection_admin") || has("credential_admin")))
}

/// A row: every value a string (references hold the sys_id).
pub type Row = BTreeMap<String, String>;

/// A user of the instance.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnUser {
    /// `user_name`.
    pub user_name: String,
    /// Password for basic authentication.
    pub password: String,
    /// Roles, e.g. `admin`, `oauth_admin`, `itil`.
    pub roles: Vec<String>,
}

/// An inbound OAuth client (for `connapp` itself: client credentials at `/oauth_token.do`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnClient {
    /// Client ID.
    pub client_id: String,
    /// Client Secret.
    pub client_secret: String,
    /// The user its tokens act as.
    pub user_name: String,
}

/// Switches for failure tests.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SnKnobs {
    /// The instance is hibernating: every request gets the HTML page.
    pub asleep: bool,
    /// Use the newer 401 text ("User is not authenticated").
    pub new_401_text: bool,
    /// Table API requests per user per hour (none = no rate-limit rule).
    pub rate_limit_per_hour: Option<u64>,
    /// Inbound client-credentials grant enabled.
    pub client_credentials_enabled: bool,
    /// Refresh an access token this many seconds before it expires.
    pub refresh_margin: u64,
    /// Run the DEX job on its own every this many seconds, as the real
    /// instance's scheduled job does (`connapp sandbox` sets it; tests run
    /// it on demand with `POST /_sandbox/dex/run`).
    pub dex_every_secs: Option<u64>,
}

impl Default for SnKnobs {
    fn default() -> Self {
        SnKnobs {
            asleep: false,
            new_401_text: false,
            rate_limit_per_hour: None,
            client_credentials_enabled: true,
            refresh_margin: 60,
            dex_every_secs: None,
        }
    }
}

/// What the instance starts with.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnSeed {
    /// Users (default: `admin`/`admin-password` with role admin, `oauthadmin`
    /// with oauth_admin, `connadmin` with connection_admin, `itil` with itil;
    /// each password is the name plus `-password`).
    pub users: Vec<SnUser>,
    /// Inbound OAuth clients.
    pub clients: Vec<SnClient>,
    /// The ID of the connection & credential alias DEX for Zoom uses (not published
    /// by ServiceNow; configurable so connapp must discover it).
    pub dex_alias_id: String,
    /// Knobs.
    pub knobs: SnKnobs,
}

impl Default for SnSeed {
    fn default() -> Self {
        let user = |u: &str, p: &str, r: &[&str]| SnUser {
            user_name: u.into(),
            password: p.into(),
            roles: r.iter().map(|s| s.to_string()).collect(),
        };
        SnSeed {
            users: vec![
                user("admin", "admin-password", &["admin"]),
                user("oauthadmin", "oauthadmin-password", &["oauth_admin"]),
                user("connadmin", "connadmin-password", &["connection_admin"]),
                user("itil", "itil-password", &["itil"]),
            ],
            clients: vec![SnClient {
                client_id: "sbxSnClient0000000000000000000001".into(),
                client_secret: "sbx-sn-client-secret".into(),
                user_name: "admin".into(),
            }],
            dex_alias_id: "sn_dex_zoom.DEX_for_Zoom".into(),
            knobs: SnKnobs::default(),
        }
    }
}

/// A pending `oauth_initiator.do` → `oauth_redirect.do` round trip.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pending {
    /// The OAuth 2.0 credential that asked.
    pub credential: String,
    /// Its profile.
    pub profile: String,
    /// The redirect sent at authorize.
    pub redirect_uri: String,
    /// When it was started.
    pub at: u64,
}

/// The instance's state.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnState {
    /// Base URL (e.g. `http://127.0.0.1:PORT`).
    pub base_url: String,
    /// Rows per table.
    pub tables: BTreeMap<String, BTreeMap<String, Row>>,
    /// password2 values by (table, sys_id, field): `Some(plain)` or `None` = malformed.
    pub secrets: HashMap<String, Option<String>>,
    /// Users.
    pub users: Vec<SnUser>,
    /// Inbound OAuth clients.
    pub clients: Vec<SnClient>,
    /// Bearer tokens the instance issued: token → (user, expires).
    pub bearer: HashMap<String, (String, u64)>,
    /// Pending consents by `state`.
    pub pending: HashMap<String, Pending>,
    /// Knobs.
    pub knobs: SnKnobs,
    /// Requests per user in the current hour (for the rate-limit rule).
    pub hourly: HashMap<String, (u64, u64)>,
    /// Clock offset (seconds), moved by the control API.
    pub clock_offset: i64,
    /// The ID of the DEX for Zoom alias.
    pub dex_alias_id: String,
    /// Files attached to records (the Attachment API), in upload order.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

/// A file attached to a record: ServiceNow's `sys_attachment` metadata
/// (every value a string) and the bytes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attachment {
    /// `sys_id`, `file_name`, `table_name`, `table_sys_id`, `content_type`,
    /// `size_bytes`, `hash` (SHA-256), `sys_created_on`, `sys_created_by`, `download_link`.
    pub meta: Row,
    /// The file.
    pub bytes: Vec<u8>,
}

fn secret_key(table: &str, id: &str, field: &str) -> String {
    format!("{table}/{id}/{field}")
}

/// `YYYY-MM-DD HH:MM:SS` UTC.
pub fn glide_time(t: u64) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Parses `YYYY-MM-DD HH:MM:SS` UTC.
pub fn parse_glide_time(s: &str) -> Option<u64> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|d| d.and_utc().timestamp().max(0) as u64)
}

impl SnState {
    /// Seconds since the epoch on the instance's clock.
    pub fn now(&self) -> u64 {
        (crate::real_now() as i64 + self.clock_offset).max(0) as u64
    }

    /// A fresh instance.
    pub fn new(seed: SnSeed, base_url: &str) -> SnState {
        let mut s = SnState {
            base_url: base_url.trim_end_matches('/').to_string(),
            tables: BTreeMap::new(),
            secrets: HashMap::new(),
            users: seed.users.clone(),
            clients: seed.clients,
            bearer: HashMap::new(),
            pending: HashMap::new(),
            knobs: seed.knobs,
            hourly: HashMap::new(),
            clock_offset: 0,
            dex_alias_id: seed.dex_alias_id.clone(),
            attachments: Vec::new(),
        };
        for u in &seed.users {
            let r: Row = [
                ("user_name", u.user_name.as_str()),
                ("name", u.user_name.as_str()),
                ("roles", &u.roles.join(",")),
                ("active", "true"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            s.insert("sys_user", r, "system");
        }
        let (scope, name) = seed
            .dex_alias_id
            .split_once('.')
            .unwrap_or(("global", &seed.dex_alias_id));
        for (id, name, scope) in [
            ("sn_zoom_spoke.Zoom", "Zoom", "sn_zoom_spoke"),
            (seed.dex_alias_id.as_str(), name, scope),
        ] {
            let r: Row = [
                ("name", name),
                ("id", id),
                ("type", "connection"),
                ("connection_type", "http_connection"),
                ("multiple_connections", "false"),
                ("sys_scope", scope),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            s.insert("sys_alias", r, "system");
        }
        for (element, values) in [
            ("type", &["oauth_provider", "client", "consumer"][..]),
            (
                "default_grant_type",
                &[
                    "authorization_code",
                    "client_credentials",
                    "password",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer",
                ][..],
            ),
            (
                "send_client_credentials_as",
                &["request_body_parameter", "basic_auth_header", "private_key_jwt"][..],
            ),
        ] {
            for v in values {
                let r: Row = [
                    ("name", "oauth_entity"),
                    ("element", element),
                    ("value", v),
                    ("label", v),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
                s.insert("sys_choice", r, "system");
            }
        }
        s
    }

    /// Inserts a row (sys fields filled in); returns its sys_id.
    pub fn insert(&mut self, table: &str, mut row: Row, by: &str) -> String {
        let id = random_hex(16);
        let now = glide_time(self.now());
        row.insert("sys_id".into(), id.clone());
        row.insert("sys_created_on".into(), now.clone());
        row.insert("sys_updated_on".into(), now);
        row.insert("sys_created_by".into(), by.to_string());
        row.insert("sys_mod_count".into(), "0".into());
        row.insert("sys_class_name".into(), table.to_string());
        // The instance numbers change requests itself (CHG and 7 digits).
        if table == "change_request" && row.get("number").is_none_or(String::is_empty) {
            let n = 30_001 + self.tables.get(table).map_or(0, BTreeMap::len);
            row.insert("number".into(), format!("CHG{n:07}"));
        }
        self.tables
            .entry(table.to_string())
            .or_default()
            .insert(id.clone(), row);
        id
    }

    /// A row.
    pub fn row(&self, table: &str, id: &str) -> Option<&Row> {
        self.tables.get(table)?.get(id)
    }

    /// Every row of a table.
    pub fn rows(&self, table: &str) -> Vec<&Row> {
        self.tables.get(table).map(|t| t.values().collect()).unwrap_or_default()
    }

    /// The plain value of a password2 field, if it was written correctly.
    pub fn secret(&self, table: &str, id: &str, field: &str) -> Option<Option<String>> {
        self.secrets.get(&secret_key(table, id, field)).cloned()
    }

    /// Stores a password2 value (`None` = written without
    /// `sysparm_input_display_value=true`, i.e. malformed).
    pub fn set_secret(&mut self, table: &str, id: &str, field: &str, value: Option<String>) {
        self.secrets.insert(secret_key(table, id, field), value);
    }

    /// The user a request authenticates as (basic or bearer), if any.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<SnUser> {
        use base64::Engine;
        let a = authorization?;
        if let Some(b) = a.strip_prefix("Basic ") {
            let raw = base64::engine::general_purpose::STANDARD.decode(b.trim()).ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (u, p) = text.split_once(':')?;
            return self.users.iter().find(|x| x.user_name == u && x.password == p).cloned();
        }
        if let Some(t) = a.strip_prefix("Bearer ") {
            let (user, exp) = self.bearer.get(t.trim())?;
            if *exp <= self.now() {
                return None;
            }
            return self.users.iter().find(|x| &x.user_name == user).cloned();
        }
        None
    }

    /// A new opaque value for a password2 field's GET (never the secret).
    pub fn opaque() -> String {
        random_alnum(24)
    }
}

/// Shared state behind the instance's handlers.
#[derive(Clone)]
pub(crate) struct SnCtx {
    pub state: Arc<Mutex<SnState>>,
    pub http: reqwest::Client,
}

impl SnCtx {
    pub fn lock(&self) -> MutexGuard<'_, SnState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn router(ctx: SnCtx) -> Router {
    Router::new()
        .merge(table::routes())
        .merge(attachment::routes())
        .merge(oauth::routes())
        .with_state(ctx)
}

/// A running ServiceNow sandbox on its own thread and runtime. Dropping it stops it.
pub struct Instance {
    server: crate::server::Running<SnState>,
}

impl Instance {
    /// Starts on 127.0.0.1 with an ephemeral port (see [`Instance::start_many`]).
    pub fn start(seed: SnSeed) -> Result<Instance, SandboxError> {
        Self::start_many(vec![seed])?
            .pop()
            .ok_or_else(|| SandboxError::Seed("no instance was started".into()))
    }

    /// Many instances in one process, for fleets: one per seed, each on a
    /// port of its own (a real instance has a host of its own) with records,
    /// users, tokens and a clock of its own, all served by one thread pool
    /// instead of a runtime each. The last one dropped stops them all. An
    /// instance whose seed sets `knobs.dex_every_secs` runs DEX's job on
    /// that schedule, as `connapp sandbox` does.
    pub fn start_many(seeds: Vec<SnSeed>) -> Result<Vec<Instance>, SandboxError> {
        let http = crate::webhooks::client();
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let ctx = |state| SnCtx {
            state,
            http: http.clone(),
        };
        let servers = crate::server::Running::start_many(
            "connapp-sandbox-servicenow",
            seeds.into_iter().map(|s| (any, s)).collect(),
            |seed, base| Ok(SnState::new(seed, base)),
            |state, _| router(ctx(state)),
            |state| {
                let scheduled = state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .knobs
                    .dex_every_secs
                    .is_some();
                scheduled.then(|| Box::pin(oauth::dex_schedule(ctx(state.clone()))) as crate::server::Background)
            },
        )?;
        Ok(servers.into_iter().map(|server| Instance { server }).collect())
    }

    /// The instance's base URL.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Runs `f` on the state (tests inspect and break things with it).
    pub fn with_state<T>(&self, f: impl FnOnce(&mut SnState) -> T) -> T {
        f(&mut self.server.lock())
    }
}

/// Serves the instance on `listener` until `shutdown` resolves (for `connapp
/// sandbox`). With `state_file`, the instance's records and tokens are loaded
/// from it when it exists and saved to it every two seconds and at the end.
pub async fn serve(
    listener: tokio::net::TcpListener,
    seed: SnSeed,
    state_file: Option<std::path::PathBuf>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let state = match &state_file {
        Some(p) if p.exists() => {
            let text = connapp_plugin_api::bounded::read_text("the state file", p, crate::MAX_STATE_BYTES)
                .map_err(std::io::Error::other)?;
            let mut s: SnState = serde_json::from_str(&text).map_err(|e| {
                std::io::Error::other(format!(
                    "{} is not a ServiceNow sandbox state file ({e}); move it away to start fresh",
                    p.display()
                ))
            })?;
            // Links and redirects follow the address it listens on now.
            s.base_url = base;
            s
        }
        _ => SnState::new(seed, &base),
    };
    let ctx = SnCtx {
        state: Arc::new(Mutex::new(state)),
        http: crate::webhooks::client(),
    };
    if let Some(path) = &state_file {
        crate::save_state(&*ctx.lock(), path)?;
        let (ctx, path) = (ctx.clone(), path.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
            loop {
                tick.tick().await;
                let _ = crate::save_state(&*ctx.lock(), &path);
            }
        });
    }
    oauth::schedule_dex(&ctx);
    let result = axum::serve(listener, router(ctx.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    if let Some(path) = &state_file {
        crate::save_state(&*ctx.lock(), path)?;
    }
    result
}

#[cfg(test)]
mod tests;
