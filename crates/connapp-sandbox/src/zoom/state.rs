//! The sandbox's world: account, users, apps, grants, tokens, seeded data, the
//! controllable clock and the counters.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::random::{random_alnum, random_hex};

use crate::data::Data;

/// A role a simulated user has in the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Account owner.
    Owner,
    /// Account admin.
    Admin,
    /// Ordinary member.
    Member,
}

impl Role {
    /// Whether the user may authorize admin-managed apps.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
    /// Zoom's `role_name`.
    pub fn zoom_name(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::Admin => "Admin",
            Role::Member => "Member",
        }
    }
}

/// The account's plan, which decides what the APIs allow and the rate limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// Free (Basic).
    Free,
    /// Pro.
    Pro,
    /// Business, Education, Enterprise, API.
    Business,
}

/// A simulated user.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    /// Zoom user id.
    pub id: String,
    /// The short name used in the control API and on the consent page (`owner`, `admin`, `member`).
    pub login: String,
    /// E-mail.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Role in the account.
    pub role: Role,
    /// Department.
    pub dept: String,
}

/// What kind of app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppKind {
    /// General app (authorization code, refresh, client credentials).
    General,
    /// Server-to-Server OAuth app (account credentials).
    ServerToServer,
}

/// Zoom's app usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Usage {
    /// `ADMIN_MANAGEMENT`.
    #[serde(rename = "ADMIN_MANAGEMENT")]
    AdminManagement,
    /// `USER_OPERATION`.
    #[serde(rename = "USER_OPERATION")]
    UserOperation,
}

/// A registered app.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct App {
    /// Marketplace app id.
    pub app_id: String,
    /// Display name.
    pub name: String,
    /// General or server-to-server.
    pub kind: AppKind,
    /// Admin- or user-managed.
    pub usage: Usage,
    /// Client ID.
    pub client_id: String,
    /// Client Secret.
    pub client_secret: String,
    /// Secret Token (webhooks).
    pub secret_token: String,
    /// OAuth redirect URLs (development and production).
    pub redirect_urls: Vec<String>,
    /// OAuth allow list.
    pub allow_list: Vec<String>,
    /// Strict Mode URL.
    pub strict_mode: bool,
    /// Subdomain Check.
    pub subdomain_check: bool,
    /// The app's current scopes.
    pub scopes: Vec<String>,
    /// Scopes marked optional in the manifest.
    #[serde(default)]
    pub optional_scopes: Vec<String>,
    /// Why the app needs its scopes.
    #[serde(default)]
    pub scope_description: String,
    /// `features.products`.
    #[serde(default)]
    pub products: Vec<String>,
    /// Webhook subscriptions.
    #[serde(default)]
    pub event_subscriptions: Vec<EventSubscription>,
    /// Manifest settings the sandbox keeps but does not act on (PKCE flags, descriptions).
    #[serde(default)]
    pub manifest_extra: serde_json::Map<String, serde_json::Value>,
    /// `draft` or `published`; only drafts export their manifest.
    #[serde(default = "draft")]
    pub status: String,
    /// The Client Secret a rotation replaced, still accepted until its
    /// revoke time (`rotate_client_secret`, `action: new`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_secret: Option<OldSecret>,
    /// When the rotation schedule of this app was last set or changed
    /// (sandbox clock): Zoom allows about 3 changes per 15 minutes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule_changes: Vec<u64>,
}

/// A replaced Client Secret during its overlap with the new one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OldSecret {
    /// The secret.
    pub secret: String,
    /// When Zoom stops accepting it (sandbox clock, unix seconds).
    pub revoke_at: u64,
}

impl App {
    /// Whether `secret` is this app's Client Secret at `now`: the current
    /// one, or the one a rotation replaced until its revoke time.
    pub fn accepts_secret(&self, secret: &str, now: u64) -> bool {
        self.client_secret == secret
            || self
                .old_secret
                .as_ref()
                .is_some_and(|o| o.secret == secret && now < o.revoke_at)
    }
}

fn draft() -> String {
    "draft".into()
}

impl Default for App {
    fn default() -> Self {
        App {
            app_id: format!("sbxApp{}", random_alnum(16)),
            name: "Sandbox app".into(),
            kind: AppKind::General,
            usage: Usage::AdminManagement,
            client_id: random_alnum(22),
            client_secret: random_alnum(32),
            secret_token: random_alnum(22),
            redirect_urls: Vec::new(),
            allow_list: Vec::new(),
            strict_mode: false,
            subdomain_check: false,
            scopes: Vec::new(),
            optional_scopes: Vec::new(),
            scope_description: String::new(),
            products: Vec::new(),
            old_secret: None,
            schedule_changes: Vec::new(),
            event_subscriptions: Vec::new(),
            manifest_extra: serde_json::Map::new(),
            status: draft(),
        }
    }
}

/// Where and which events the sandbox delivers for an app.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventSubscription {
    /// The endpoint URL.
    pub endpoint_url: String,
    /// Event names, e.g. `meeting.ended`.
    pub events: Vec<String>,
}

/// How a grant came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// Authorization code (a user consented).
    AuthorizationCode,
    /// Server-to-server account credentials.
    AccountCredentials,
    /// Client credentials (app-level).
    ClientCredentials,
}

impl GrantType {
    /// The `grant_type` form value.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::AccountCredentials => "account_credentials",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

/// A grant: an app's authorization, with its frozen scopes and current tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Grant {
    /// Grant id.
    pub id: u64,
    /// The app's client id.
    pub client_id: String,
    /// The consenting user's id, if any.
    pub user_id: Option<String>,
    /// How it came to be.
    pub grant_type: GrantType,
    /// Scopes fixed at consent time.
    pub scopes: Vec<String>,
    /// The one valid refresh token, if any.
    pub refresh_token: Option<String>,
    /// When the refresh token expires (sandbox clock, unix seconds).
    pub refresh_expires_at: u64,
    /// Valid access tokens, newest last.
    pub access_tokens: Vec<String>,
    /// Whether the grant is dead (revoked, superseded).
    pub revoked: bool,
}

/// An access token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessToken {
    /// The grant it belongs to.
    pub grant_id: u64,
    /// Expiry (sandbox clock, unix seconds).
    pub expires_at: u64,
}

/// An authorization code.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Code {
    /// The app.
    pub client_id: String,
    /// The consenting user.
    pub user_id: String,
    /// The redirect URI given at authorize.
    pub redirect_uri: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// PKCE challenge and method.
    pub challenge: Option<(String, String)>,
    /// Expiry (sandbox clock).
    pub expires_at: u64,
}

/// A pagination token's meaning.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PageToken {
    /// Which listing (endpoint + fixed parameters).
    pub listing: String,
    /// Offset of the next page.
    pub offset: usize,
    /// When it was issued (sandbox clock).
    pub issued_at: u64,
}

/// Lifetimes and behaviour switches (see `docs/zoom-platform.md` §19).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Knobs {
    /// Access-token lifetime, seconds (`expires_in`).
    pub access_ttl: u64,
    /// Authorization-code lifetime, seconds.
    pub code_ttl: u64,
    /// Refresh-token lifetime, seconds.
    pub refresh_ttl: u64,
    /// Older access tokens of a grant kept valid after a new one is issued.
    pub access_tolerance: usize,
    /// Reject token/revoke parameters in the query string.
    pub reject_query_params: bool,
    /// HTTP status for `invalid_client`.
    pub invalid_client_status: u16,
    /// Next-page-token lifetime, seconds.
    pub page_token_ttl: u64,
    /// Auto-approve consents as this user login (`owner`, `admin`, `member`).
    pub auto_approve: Option<String>,
    /// HTTP status of a successful manifest PUT (Zoom documents 204; 200 was seen).
    pub manifest_put_status: u16,
    /// HTTP status of a successful app creation (200 and 201 were seen).
    pub create_app_status: u16,
    /// How long the token endpoint's answer takes to come back, in
    /// milliseconds, after Zoom has decided (and rotated): 0 by default.
    #[serde(default)]
    pub token_latency_ms: u64,
    /// `rotate_client_secret` with `action: new` revokes the old secret at
    /// once, whatever the request asks (Zoom before September 2025; for tests).
    #[serde(default)]
    pub rotate_revokes_at_once: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            access_ttl: 3599,
            code_ttl: 300,
            refresh_ttl: 90 * 24 * 3600,
            access_tolerance: 1,
            reject_query_params: true,
            invalid_client_status: 400,
            page_token_ttl: 15 * 60,
            auto_approve: None,
            manifest_put_status: 204,
            create_app_status: 201,
            token_latency_ms: 0,
            rotate_revokes_at_once: false,
        }
    }
}

/// Requests per second and per day for one rate-limit category.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Limit {
    /// Per second (for Resource-intensive: per minute).
    pub per_window: u64,
    /// Window length in seconds (1, or 60 for Resource-intensive).
    pub window_secs: u64,
    /// Per day.
    pub per_day: u64,
}

/// Rate-limit bookkeeping per category: (window start, count) and (day, count).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RateState {
    /// Current short window per category.
    pub windows: HashMap<String, (u64, u64)>,
    /// Current day per category.
    pub days: HashMap<String, (u64, u64)>,
}

/// Counters tests can read.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Token requests by grant type (including failures).
    pub token_requests: BTreeMap<String, u64>,
    /// Successful refreshes per grant id.
    pub refreshes: BTreeMap<u64, u64>,
    /// API calls per endpoint pattern.
    pub api_calls: BTreeMap<String, u64>,
    /// Consents given.
    pub consents: u64,
}

/// Everything the sandbox knows.
#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    /// Account id.
    pub account_id: String,
    /// Plan.
    pub plan: Plan,
    /// Whether the Dashboard feature is on.
    pub dashboard_enabled: bool,
    /// Users.
    pub users: Vec<User>,
    /// Apps by client id.
    pub apps: BTreeMap<String, App>,
    /// Grants by id.
    pub grants: BTreeMap<u64, Grant>,
    /// Access tokens.
    pub access_tokens: HashMap<String, AccessToken>,
    /// Refresh token → grant.
    pub refresh_tokens: HashMap<String, u64>,
    /// Outstanding authorization codes.
    pub codes: HashMap<String, Code>,
    /// Outstanding page tokens.
    pub page_tokens: HashMap<String, PageToken>,
    /// Next grant id.
    pub next_grant: u64,
    /// Clock offset added to the real time, seconds.
    pub clock_offset: i64,
    /// Knobs.
    pub knobs: Knobs,
    /// Rate limits by category name.
    pub limits: BTreeMap<String, Limit>,
    /// Counters.
    pub counters: Counters,
    /// Rate-limit windows.
    #[serde(default)]
    pub rate: RateState,
    /// Webhook delivery attempts.
    #[serde(default)]
    pub deliveries: Vec<crate::webhooks::Delivery>,
    /// Webhook retries not yet due.
    #[serde(default)]
    pub pending_retries: Vec<crate::webhooks::PendingRetry>,
    /// Endpoint URL validations run.
    #[serde(default)]
    pub validations: Vec<crate::webhooks::Validation>,
    /// Seeded API data.
    pub data: Data,
}

fn real_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// The default rate limits of a plan (`docs/zoom-platform.md` §14).
pub fn plan_limits(plan: Plan) -> BTreeMap<String, Limit> {
    let (light, medium, heavy, ri, heavy_day) = match plan {
        Plan::Free => ((4, 6000), (2, 2000), (1, 1000), (10, 30_000), 1000),
        Plan::Pro => ((30, u64::MAX), (20, u64::MAX), (10, 30_000), (10, 30_000), 30_000),
        Plan::Business => ((80, u64::MAX), (60, u64::MAX), (40, 60_000), (20, 60_000), 60_000),
    };
    let mut m = BTreeMap::new();
    m.insert(
        "Light".into(),
        Limit {
            per_window: light.0,
            window_secs: 1,
            per_day: light.1,
        },
    );
    m.insert(
        "Medium".into(),
        Limit {
            per_window: medium.0,
            window_secs: 1,
            per_day: medium.1,
        },
    );
    m.insert(
        "Heavy".into(),
        Limit {
            per_window: heavy.0,
            window_secs: 1,
            per_day: heavy_day.min(heavy.1),
        },
    );
    m.insert(
        "Resource-intensive".into(),
        Limit {
            per_window: ri.0,
            window_secs: 60,
            per_day: ri.1,
        },
    );
    m
}

impl State {
    /// The sandbox clock, unix seconds.
    pub fn now(&self) -> u64 {
        (real_now() as i64 + self.clock_offset).max(0) as u64
    }

    /// The user with this login or id.
    pub fn user(&self, login_or_id: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.login == login_or_id || u.id == login_or_id || u.email.eq_ignore_ascii_case(login_or_id))
    }

    /// Kills a grant and every token it holds.
    pub fn revoke_grant(&mut self, id: u64) {
        if let Some(g) = self.grants.get_mut(&id) {
            g.revoked = true;
            if let Some(rt) = g.refresh_token.take() {
                self.refresh_tokens.remove(&rt);
            }
            for at in g.access_tokens.drain(..) {
                self.access_tokens.remove(&at);
            }
        }
    }

    /// Issues a new access token on a grant, dropping ones beyond the tolerance.
    pub fn issue_access(&mut self, grant_id: u64) -> String {
        let token = format!("sbx.at.{}", random_hex(24));
        let expires_at = self.now() + self.knobs.access_ttl;
        let tolerance = self.knobs.access_tolerance;
        let mut dropped = Vec::new();
        if let Some(g) = self.grants.get_mut(&grant_id) {
            g.access_tokens.push(token.clone());
            while g.access_tokens.len() > tolerance + 1 {
                dropped.push(g.access_tokens.remove(0));
            }
        }
        for d in dropped {
            self.access_tokens.remove(&d);
        }
        self.access_tokens
            .insert(token.clone(), AccessToken { grant_id, expires_at });
        token
    }

    /// Issues a new refresh token on a grant; the previous one dies at once.
    pub fn issue_refresh(&mut self, grant_id: u64) -> String {
        let token = format!("sbx.rt.{}", random_hex(24));
        let expires_at = self.now() + self.knobs.refresh_ttl;
        if let Some(g) = self.grants.get_mut(&grant_id) {
            if let Some(old) = g.refresh_token.replace(token.clone()) {
                self.refresh_tokens.remove(&old);
            }
            g.refresh_expires_at = expires_at;
        }
        self.refresh_tokens.insert(token.clone(), grant_id);
        token
    }

    /// Creates a grant.
    pub fn new_grant(
        &mut self,
        client_id: &str,
        user_id: Option<String>,
        grant_type: GrantType,
        scopes: Vec<String>,
    ) -> u64 {
        let id = self.next_grant;
        self.next_grant += 1;
        self.grants.insert(
            id,
            Grant {
                id,
                client_id: client_id.to_string(),
                user_id,
                grant_type,
                scopes,
                refresh_token: None,
                refresh_expires_at: 0,
                access_tokens: Vec::new(),
                revoked: false,
            },
        );
        id
    }
}
