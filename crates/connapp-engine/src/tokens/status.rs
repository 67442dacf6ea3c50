//! Every app's token state as stored, for `connapp status`: read only.

use connapp_core::{Declaration, GrantKind};
use connapp_oauth::record::TokenRecord;
use connapp_plugin_api::Capabilities;

use super::Shared;
use crate::Error;
use crate::secrets::Secrets;

/// One app's token state, as `connapp status` reports it.
#[derive(Clone, Debug)]
pub struct AppStatus {
    /// The app.
    pub app: String,
    /// Its platform.
    pub platform: String,
    /// Its grant type.
    pub grant_type: String,
    /// Whether a token is stored.
    pub logged_in: bool,
    /// Seconds since it was obtained.
    pub token_age_secs: Option<u64>,
    /// Seconds until it expires (negative: expired).
    pub expires_in_secs: Option<i64>,
    /// Whether it carries a refresh token.
    pub refresh_token: bool,
    /// The declared scopes.
    pub declared_scopes: Vec<String>,
    /// What the provider said it granted; `None`: not logged in, or its answer did not say.
    pub granted_scopes: Option<Vec<String>>,
    /// Declared but not granted.
    pub missing_scopes: Vec<String>,
    /// Granted but not declared.
    pub extra_scopes: Vec<String>,
    /// Why the state could not be read.
    pub error: Option<String>,
    /// When the grant began (consent or first mint), if the record says.
    pub granted_at: Option<u64>,
    /// The provider refused the grant for good: when connapp learned it, and what it said.
    pub lost: Option<(u64, String)>,
    /// Whose grant it is, as the provider named the user at login.
    pub user: Option<String>,
    /// What it all means.
    pub health: Health,
}

/// Whether an app can get a token now, as `status` judges it from what is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// A token is stored and the grant is not known to be lost.
    Usable,
    /// No token yet, and the app gets one from its own credentials on first use.
    RenewsOnUse,
    /// A user's consent is needed: no token stored yet.
    NeedsLogin,
    /// The provider refused the grant for good: consent again.
    Lost,
    /// The access token expired and the grant has no refresh token.
    Expired,
    /// The store or the record could not be read.
    Unreadable,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// Serialized as its word (`ok`, `lost`, ...), as `status --json` carries it.
impl serde::Serialize for Health {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.word())
    }
}

impl Health {
    /// Whether the app can get a token without a person.
    pub fn usable(self) -> bool {
        matches!(self, Health::Usable | Health::RenewsOnUse)
    }

    /// The word `status` prints and `--json` carries.
    pub fn word(self) -> &'static str {
        match self {
            Health::Usable => "ok",
            Health::RenewsOnUse => "renews-on-use",
            Health::NeedsLogin => "needs-login",
            Health::Lost => "lost",
            Health::Expired => "expired",
            Health::Unreadable => "unreadable",
        }
    }
}

/// The store every app's tokens are in: its kind, location and capabilities.
#[derive(Clone, Debug)]
pub struct StoreStatus {
    /// `kind (location)`.
    pub store: String,
    /// What it can do.
    pub capabilities: Capabilities,
}

/// The token state of every app of `decl` in `shared`'s store. Reads only.
pub fn status(decl: &Declaration, shared: &Shared<'_>) -> Result<(StoreStatus, Vec<AppStatus>), Error> {
    status_of(&decl.apps.iter().collect::<Vec<_>>(), decl, shared)
}

/// [`status`] of `apps` only (those whose secrets `shared`'s store holds).
pub fn status_of(
    apps: &[&connapp_core::App],
    decl: &Declaration,
    shared: &Shared<'_>,
) -> Result<(StoreStatus, Vec<AppStatus>), Error> {
    let described = shared.store.describe().map_err(|e| shared.store_error(e))?;
    let store = StoreStatus {
        store: format!("{} ({})", decl.store.kind, described.location),
        capabilities: described.capabilities,
    };
    let mut out = Vec::new();
    for app in apps {
        let declared: Vec<String> = app.scopes.iter().map(|s| s.scope.clone()).collect();
        let mut s = AppStatus {
            app: app.name.clone(),
            platform: app.platform.clone(),
            grant_type: app.oauth.grant.as_str().to_string(),
            logged_in: false,
            token_age_secs: None,
            expires_in_secs: None,
            refresh_token: false,
            declared_scopes: declared.clone(),
            granted_scopes: None,
            missing_scopes: vec![],
            extra_scopes: vec![],
            error: None,
            granted_at: None,
            lost: None,
            user: None,
            health: if app.oauth.grant == GrantKind::AuthorizationCode {
                Health::NeedsLogin
            } else {
                Health::RenewsOnUse
            },
        };
        match Secrets::new(&shared.store).token(&app.name) {
            Ok(Some(r)) => match TokenRecord::from_bytes(&r.value) {
                Ok(rec) => {
                    let t = shared.now();
                    s.health = if rec.lost.is_some() {
                        Health::Lost
                    } else if rec.refresh_token.is_none()
                        && app.oauth.grant == GrantKind::AuthorizationCode
                        && !rec.is_fresh(t, 0)
                    {
                        Health::Expired
                    } else {
                        Health::Usable
                    };
                    s.granted_at = rec.granted_at;
                    s.user = rec.user.clone();
                    s.lost = rec.lost.as_ref().map(|l| (l.at, l.reason.clone()));
                    s.logged_in = true;
                    s.token_age_secs = Some(t.saturating_sub(rec.obtained_at));
                    s.expires_in_secs = Some(rec.expires_at as i64 - t as i64);
                    s.refresh_token = rec.refresh_token.is_some();
                    if let Some(granted) = &rec.scopes {
                        s.missing_scopes = declared.iter().filter(|x| !granted.contains(x)).cloned().collect();
                        s.extra_scopes = granted.iter().filter(|x| !declared.contains(x)).cloned().collect();
                    }
                    s.granted_scopes = rec.scopes.clone();
                }
                Err(e) => {
                    s.error = Some(e);
                    s.health = Health::Unreadable;
                }
            },
            Ok(None) => {}
            Err(e) => {
                s.error = Some(shared.store_error(e).message);
                s.health = Health::Unreadable;
            }
        }
        out.push(s);
    }
    Ok((store, out))
}
