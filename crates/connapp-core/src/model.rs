//! The validated connected-app model. Values of these types only come out of
//! [`crate::check`], so holding one means every rule held.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::consumer::Target;

/// Who manages the app on the provider side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Usage {
    /// Installed once per account by an admin; may hold `:admin` scopes.
    AdminManaged,
    /// Each user authorizes for themselves; user-level scopes only.
    UserManaged,
}

impl Usage {
    /// The word used in declarations.
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::AdminManaged => "admin-managed",
            Usage::UserManaged => "user-managed",
        }
    }
}

/// Where a scope of an app came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "name")]
pub enum ScopeSource {
    /// From the named preset.
    Preset(String),
    /// Listed explicitly in `scopes`.
    Explicit,
}

/// One scope an app requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Scope {
    /// The scope string.
    pub scope: String,
    /// Where it came from.
    pub source: ScopeSource,
    /// Marked optional on the provider (Zoom lets users decline it).
    pub optional: bool,
}

/// `[apps.NAME.webhook]`: the event subscription of an app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Webhook {
    /// Where the provider sends events.
    pub endpoint_url: String,
    /// The event types, e.g. `meeting.ended`.
    pub events: Vec<String>,
}

/// How connapp itself obtains tokens for an app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    /// A user consents in a browser (`connapp login`).
    AuthorizationCode,
    /// Zoom server-to-server apps: no browser, no refresh token.
    AccountCredentials,
    /// App-level tokens: no browser, no refresh token.
    ClientCredentials,
}

impl GrantKind {
    /// The `grant_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::AuthorizationCode => "authorization_code",
            GrantKind::AccountCredentials => "account_credentials",
            GrantKind::ClientCredentials => "client_credentials",
        }
    }
}

/// Client authentication at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthStyle {
    /// HTTP Basic.
    Basic,
    /// Form body.
    Body,
}

/// `[apps.NAME.oauth]`: how connapp gets tokens, and endpoint overrides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OAuth {
    /// The grant connapp uses.
    pub grant: GrantKind,
    /// The loopback redirect `connapp login` listens on (must be on the allow list).
    pub login_redirect: Option<String>,
    /// Zoom: base of the OAuth endpoints (default `https://zoom.us`).
    pub oauth_base: Option<String>,
    /// Base of the API (Zoom default `https://api.zoom.us`).
    pub api_base: Option<String>,
    /// Authorization endpoint (generic platform; overrides the platform's).
    pub authorize_url: Option<String>,
    /// Token endpoint (generic platform; overrides the platform's).
    pub token_url: Option<String>,
    /// Revocation endpoint.
    pub revoke_url: Option<String>,
    /// Client authentication (default: the platform's).
    pub client_auth: Option<ClientAuthStyle>,
    /// PKCE (default: on).
    pub pkce: bool,
    /// Zoom account id (account_credentials).
    pub account_id: Option<String>,
    /// Extra parameters sent to the authorization endpoint (e.g. `prompt`,
    /// `access_type`, `audience`), validated: never one connapp sets itself
    /// or one that carries a secret.
    pub authorize_params: Vec<(String, String)>,
}

impl Default for OAuth {
    fn default() -> Self {
        OAuth {
            grant: GrantKind::AuthorizationCode,
            login_redirect: None,
            oauth_base: None,
            api_base: None,
            authorize_url: None,
            token_url: None,
            revoke_url: None,
            client_auth: None,
            pkce: true,
            account_id: None,
            authorize_params: Vec::new(),
        }
    }
}

/// One connected app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct App {
    /// The key under `[apps]`; names the app in commands and the store.
    pub name: String,
    /// The name shown on the provider's consent page.
    pub display_name: String,
    /// The provider platform, e.g. `zoom`.
    pub platform: String,
    /// Admin- or user-managed.
    pub usage: Usage,
    /// The OAuth redirect URL (none for server-to-server apps).
    pub redirect_url: Option<String>,
    /// The OAuth allow list.
    pub allow_list: Vec<String>,
    /// Zoom's "Strict Mode URL".
    pub strict_mode: bool,
    /// Zoom's "Subdomain Check".
    pub subdomain_check: bool,
    /// Presets the scopes came from.
    pub presets: Vec<String>,
    /// Every scope, presets first, in declaration order.
    pub scopes: Vec<Scope>,
    /// The consumer, if any.
    pub target: Option<Target>,
    /// How connapp gets tokens.
    pub oauth: OAuth,
    /// The provider's id of the app (Zoom: the Marketplace app id), when the
    /// declaration names it; otherwise `connapp apply` keeps it in the store.
    pub app_id: Option<String>,
    /// Another app of the declaration whose token may manage this one on the
    /// provider (Zoom: holds the `marketplace:` scopes). Without it, `plan` and
    /// `apply` cannot reach the provider and `guide` is the way.
    pub managed_by: Option<String>,
    /// The event subscription, if any.
    pub webhook: Option<Webhook>,
    /// The security policy's longest life of the Client Secret, in days:
    /// `verify` warns two weeks before and fails after (rotate with
    /// `connapp rotate client-secret`).
    pub client_secret_max_age_days: Option<u64>,
}

impl App {
    /// Where the field `field` of this app (as a platform plugin names it
    /// in the app view: `scopes[i]` indexes the resolved scopes, presets
    /// first) is written in the declaration: `scopes[j]` for a listed scope,
    /// `presets[k]` for one a preset brings; other fields as they are.
    pub fn declared_field(&self, field: &str) -> String {
        let index = field
            .strip_prefix("scopes[")
            .and_then(|r| r.split_once(']'))
            .and_then(|(n, rest)| n.parse::<usize>().ok().map(|n| (n, rest)));
        let Some((i, rest)) = index else {
            return field.to_string();
        };
        let Some(scope) = self.scopes.get(i) else {
            return "scopes".to_string();
        };
        match &scope.source {
            ScopeSource::Preset(p) => match self.presets.iter().position(|x| x == p) {
                Some(k) => format!("presets[{k}]"),
                None => "presets".to_string(),
            },
            ScopeSource::Explicit => {
                let j = self.scopes[..i]
                    .iter()
                    .filter(|s| s.source == ScopeSource::Explicit)
                    .count();
                format!("scopes[{j}]{rest}")
            }
        }
    }
}

/// The credential store and its settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoreDecl {
    /// The store kind a plugin provides, e.g. `file`.
    pub kind: String,
    /// Settings handed to the store plugin.
    pub settings: Vec<(String, String)>,
}

impl StoreDecl {
    /// These settings with `over` in their place (a fleet row's store).
    pub fn with(&self, over: &[(String, String)]) -> StoreDecl {
        let mut settings: Vec<(String, String)> = self
            .settings
            .iter()
            .filter(|(k, _)| !over.iter().any(|(o, _)| o == k))
            .cloned()
            .collect();
        settings.extend(over.iter().cloned());
        settings.sort();
        StoreDecl {
            kind: self.kind.clone(),
            settings,
        }
    }
}

/// A whole, valid declaration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Declaration {
    /// Format version (1).
    pub version: i64,
    /// The store.
    pub store: StoreDecl,
    /// The apps, sorted by name: those of `[apps]` and those the fleet's
    /// template made for each row of its inventory.
    pub apps: Vec<App>,
    /// The fleet's inventory, when the declaration has a `[fleet]`.
    pub fleet: Option<Fleet>,
}

impl Declaration {
    /// The app called `name`, or the only app when `name` is `None`.
    pub fn app(&self, name: Option<&str>) -> Result<&App, AppLookupError> {
        match name {
            Some(n) => self
                .apps
                .iter()
                .find(|a| a.name == n)
                .ok_or_else(|| AppLookupError::Unknown {
                    name: n.to_string(),
                    known: self.apps.iter().map(|a| a.name.clone()).collect(),
                }),
            None => {
                // Management apps (named by another app's `managed_by`) are
                // never the default: `connapp token` means the app itself.
                let managers: Vec<&str> = self.apps.iter().filter_map(|a| a.managed_by.as_deref()).collect();
                let mut candidates = self.apps.iter().filter(|a| !managers.contains(&a.name.as_str()));
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Ok(only),
                    _ => Err(AppLookupError::Ambiguous {
                        known: self.apps.iter().map(|a| a.name.clone()).collect(),
                    }),
                }
            }
        }
    }
}

/// Why an app could not be picked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AppLookupError {
    /// No app has that name.
    #[error("no app named {name:?} in the declaration (apps: {})", some_of(known))]
    Unknown {
        /// What was asked for.
        name: String,
        /// What exists.
        known: Vec<String>,
    },
    /// Several apps and none named.
    #[error("the declaration has several apps ({}); name one", some_of(known))]
    Ambiguous {
        /// What exists.
        known: Vec<String>,
    },
}

/// The first ten names, and how many more (a fleet has thousands).
fn some_of(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s = names
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(", and {} more", names.len() - SHOWN));
    }
    s
}

/// The secrets connapp keeps for an app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretKind {
    /// OAuth Client ID (not secret, but kept with the others).
    ClientId,
    /// OAuth Client Secret.
    ClientSecret,
    /// Zoom's Secret Token (webhook signing).
    SecretToken,
    /// The provider's app id (Zoom Marketplace), kept by `connapp apply`. Not secret.
    AppId,
    /// The ServiceNow user connapp signs in as (basic authentication).
    InstanceUser,
    /// That user's password.
    InstancePassword,
    /// The ServiceNow OAuth client connapp signs in with (client credentials).
    InstanceClientId,
    /// That client's secret.
    InstanceClientSecret,
}

impl SecretKind {
    /// All kinds, in display order.
    pub const ALL: [SecretKind; 3] = [SecretKind::ClientId, SecretKind::ClientSecret, SecretKind::SecretToken];
    /// Everything kept per app: the three credentials and the app id.
    pub const KEPT: [SecretKind; 8] = [
        SecretKind::ClientId,
        SecretKind::ClientSecret,
        SecretKind::SecretToken,
        SecretKind::AppId,
        SecretKind::InstanceUser,
        SecretKind::InstancePassword,
        SecretKind::InstanceClientId,
        SecretKind::InstanceClientSecret,
    ];

    /// The name used on the command line and in store keys.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::ClientId => "client-id",
            SecretKind::ClientSecret => "client-secret",
            SecretKind::SecretToken => "secret-token",
            SecretKind::AppId => "app-id",
            SecretKind::InstanceUser => "instance-user",
            SecretKind::InstancePassword => "instance-password",
            SecretKind::InstanceClientId => "instance-client-id",
            SecretKind::InstanceClientSecret => "instance-client-secret",
        }
    }

    /// The label the provider's or the instance's pages use.
    pub fn label(self) -> &'static str {
        match self {
            SecretKind::ClientId => "Client ID",
            SecretKind::ClientSecret => "Client Secret",
            SecretKind::SecretToken => "Secret Token",
            SecretKind::AppId => "App ID",
            SecretKind::InstanceUser => "instance user",
            SecretKind::InstancePassword => "instance password",
            SecretKind::InstanceClientId => "instance OAuth client ID",
            SecretKind::InstanceClientSecret => "instance OAuth client secret",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::KEPT.into_iter().find(|k| k.as_str() == s)
    }

    /// Checks a value's shape; returns why it looks wrong. The value itself is
    /// never part of the message.
    pub fn check_value(self, value: &[u8]) -> Result<(), String> {
        if value.is_empty() {
            return Err(format!("the {} is empty", self.label()));
        }
        if value.len() > 4096 {
            return Err(format!(
                "the {} is longer than 4096 bytes; is this the right value?",
                self.label()
            ));
        }
        let Ok(text) = std::str::from_utf8(value) else {
            return Err(format!("the {} is not valid UTF-8 text", self.label()));
        };
        match self {
            // RFC 6749 Appendix A: client_id and client_secret are *VSCHAR,
            // printable ASCII from space to `~`. A space is allowed; a line
            // break, a tab or a non-ASCII character cannot be part of one.
            SecretKind::ClientId
            | SecretKind::ClientSecret
            | SecretKind::InstanceClientId
            | SecretKind::InstanceClientSecret => {
                if let Some(c) = text.chars().find(|c| !(' '..='~').contains(c)) {
                    let what = if c.is_control() {
                        "a control character (a line break or tab?)"
                    } else {
                        "a character outside printable ASCII"
                    };
                    return Err(format!(
                        "the {} contains {what}, which OAuth 2.0 client credentials cannot hold (RFC 6749 allows printable ASCII, space to ~); copy it again",
                        self.label()
                    ));
                }
            }
            // A password may hold anything printable.
            SecretKind::InstancePassword => {
                if text.chars().any(char::is_control) {
                    return Err(format!(
                        "the {} contains control characters (a line break?); copy it again",
                        self.label()
                    ));
                }
            }
            // Values Zoom and ServiceNow generate: never whitespace.
            SecretKind::SecretToken | SecretKind::AppId | SecretKind::InstanceUser => {
                if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(format!(
                        "the {} contains whitespace or control characters, which the values providers and consumers generate never do; copy it again without spaces or line breaks",
                        self.label()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The store key of an app's secret: `apps/<app>/<kind>`.
pub fn secret_key(app: &str, kind: SecretKind) -> String {
    format!("apps/{app}/{}", kind.as_str())
}

/// The store key prefix of everything belonging to an app.
pub fn app_prefix(app: &str) -> String {
    format!("apps/{app}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_checked_without_echoing_them() {
        let err = SecretKind::ClientSecret
            .check_value(b"abc\ndef")
            .expect_err("has a line break");
        assert!(!err.contains("abc"));
        assert!(err.contains("RFC 6749"), "{err}");
        // OAuth allows spaces and every printable ASCII character in a client secret.
        assert!(SecretKind::ClientSecret.check_value(b"a b+/=%~!").is_ok());
        assert!(SecretKind::ClientSecret.check_value("\u{e9}".as_bytes()).is_err());
        assert!(SecretKind::SecretToken.check_value(b"abc def").is_err());
        assert!(SecretKind::ClientId.check_value(b"").is_err());
        assert!(SecretKind::ClientId.check_value(b"AbC123_x").is_ok());
        assert!(SecretKind::ClientId.check_value(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn keys_are_namespaced_per_app() {
        assert_eq!(secret_key("dex", SecretKind::SecretToken), "apps/dex/secret-token");
        assert!(secret_key("dex", SecretKind::ClientId).starts_with(&app_prefix("dex")));
    }
}

/// `[fleet]`: the rows of the inventory a template of apps was expanded
/// over, so front ends can show and select apps by what a row says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Fleet {
    /// Where the rows were read: the inventory file, or the declaration for rows written inline.
    pub source: String,
    /// The columns every row has, in the order first written.
    pub columns: Vec<String>,
    /// The app name patterns of the template (`dex-{customer}`).
    pub patterns: Vec<String>,
    /// The rows, in file order.
    pub rows: Vec<FleetRow>,
}

/// One row of an inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FleetRow {
    /// The line it is written on in [`Fleet::source`].
    pub line: usize,
    /// Its cells by column (empty for an empty cell).
    pub values: BTreeMap<String, String>,
    /// The apps it made, in the template's order.
    pub apps: Vec<String>,
    /// `[fleet.store]` filled in for this row: the store settings its apps
    /// use over `[store.settings]` (empty: the declaration's store).
    pub store: Vec<(String, String)>,
}

impl Fleet {
    /// The row that made the app `name`, if a row did.
    pub fn row_of(&self, name: &str) -> Option<&FleetRow> {
        self.rows.iter().find(|r| r.apps.iter().any(|a| a == name))
    }
}

/// Why a selection of a fleet's rows cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// Not `COLUMN=VALUE`.
    #[error("{0:?} is not COLUMN=VALUE")]
    Shape(String),
    /// The declaration has no `[fleet]`, so there are no rows to select.
    #[error("the declaration has no [fleet], so there are no rows to select by {0:?}")]
    NoFleet(String),
    /// No such column.
    #[error("the inventory has no column {column:?} (its columns: {})", known.join(", "))]
    Column {
        /// The column asked for.
        column: String,
        /// The columns there are.
        known: Vec<String>,
    },
}

impl Declaration {
    /// The store `app`'s secrets live in: the declaration's, with its fleet
    /// row's `[fleet.store]` settings over it when it has them.
    pub fn store_of(&self, app: &str) -> StoreDecl {
        match self
            .fleet
            .as_ref()
            .and_then(|f| f.row_of(app))
            .filter(|r| !r.store.is_empty())
        {
            Some(row) => self.store.with(&row.store),
            None => self.store.clone(),
        }
    }

    /// The apps by the store they live in (the declaration's first, then one
    /// per distinct `[fleet.store]` of the rows), each in declaration order.
    pub fn store_groups(&self) -> Vec<(StoreDecl, Vec<&str>)> {
        let mut own: std::collections::HashMap<&str, &FleetRow> = std::collections::HashMap::new();
        for r in self.fleet.iter().flat_map(|f| &f.rows).filter(|r| !r.store.is_empty()) {
            for a in &r.apps {
                own.insert(a.as_str(), r);
            }
        }
        let mut groups: Vec<(StoreDecl, Vec<&str>)> = vec![(self.store.clone(), Vec::new())];
        let mut index: BTreeMap<Vec<(String, String)>, usize> = BTreeMap::new();
        for app in &self.apps {
            let Some(row) = own.get(app.name.as_str()) else {
                groups[0].1.push(&app.name);
                continue;
            };
            let g = *index.entry(row.store.clone()).or_insert_with(|| {
                groups.push((self.store.with(&row.store), Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(&app.name);
        }
        groups.retain(|(_, apps)| !apps.is_empty());
        groups
    }

    /// Whether some app's store differs from the declaration's (`[fleet.store]`).
    pub fn has_row_stores(&self) -> bool {
        self.fleet
            .as_ref()
            .is_some_and(|f| f.rows.iter().any(|r| !r.store.is_empty()))
    }

    /// The apps the fleet's rows matching every `COLUMN=VALUE` filter made;
    /// with no filter, every app. A value may end in `*` to match a prefix.
    pub fn select(&self, filters: &[String]) -> Result<Vec<&App>, SelectError> {
        if filters.is_empty() {
            return Ok(self.apps.iter().collect());
        }
        let mut parsed = Vec::new();
        for f in filters {
            let Some((c, v)) = f.split_once('=').filter(|(c, _)| !c.trim().is_empty()) else {
                return Err(SelectError::Shape(f.clone()));
            };
            parsed.push((c.trim(), v.trim()));
        }
        let Some(fleet) = &self.fleet else {
            return Err(SelectError::NoFleet(filters[0].clone()));
        };
        if let Some((c, _)) = parsed.iter().find(|(c, _)| !fleet.columns.iter().any(|k| k == c)) {
            return Err(SelectError::Column {
                column: c.to_string(),
                known: fleet.columns.clone(),
            });
        }
        let matches = |value: &str, want: &str| match want.strip_suffix('*') {
            Some(prefix) => value.starts_with(prefix),
            None => value == want,
        };
        let chosen: std::collections::HashSet<&str> = fleet
            .rows
            .iter()
            .filter(|r| {
                parsed
                    .iter()
                    .all(|(c, v)| matches(r.values.get(*c).map(String::as_str).unwrap_or_default(), v))
            })
            .flat_map(|r| r.apps.iter().map(String::as_str))
            .collect();
        Ok(self.apps.iter().filter(|a| chosen.contains(a.name.as_str())).collect())
    }
}
