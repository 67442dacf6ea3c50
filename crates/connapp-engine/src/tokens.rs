//! The token service: one place that gets an app a valid access token and
//! never loses its grant — refresh when due (under the lifecycle's lock,
//! single flight and journal, `connapp_oauth::lifecycle`), mint anew for apps
//! without a user (server-to-server, client credentials), renew at once after
//! a refused access token, log in (loopback or paste-back consent), revoke,
//! and report each app's state.
//!
//! What a platform does differently (an API path, why it refuses a refresh
//! token, what to say before a login) comes from its plugin's profile
//! ([`crate::platform`]); nothing here names a platform. Progress and
//! notices go to an [`Observer`]; nothing here prints.

use std::sync::Mutex;
use std::time::Duration;

use connapp_core::{App, ClientAuthStyle, Declaration, GrantKind, SecretKind};
use connapp_host::Registry;
/// "12 min ago": the words messages use for a past moment.
pub use connapp_oauth::ago;
use connapp_oauth::flows::{self, ClientAuth, Credentials, Provider};
use connapp_oauth::lifecycle::{Lifecycle, LifecycleError, Renew, Source, TokenStore};
use connapp_oauth::loopback::{ConsentError, Loopback, parse_pasted};
use connapp_oauth::record::TokenRecord;
use connapp_oauth::{EdgeError, TokenSet, check_endpoint};
use connapp_plugin_api::Platform;
use connapp_plugin_api::contract::PlatformProfile;
use connapp_plugin_api::zeroize::Zeroizing;
use secrecy::SecretString;

pub use crate::platform::Endpoints;
use crate::platform::{self, PlatformInfo};
use crate::secrets::{self, Secrets};
use crate::{Error, ErrorKind};
mod cache;
mod events;
mod rt;
mod shared;
mod status;

pub use cache::{JITTER_MAX_SECS, TokenCache};
pub use events::{Event, Observer, Silent};
pub use rt::Rt;
pub use shared::Shared;
pub use status::{AppStatus, Health, StoreStatus, status, status_of};

/// Everything the token service needs for one app.
pub struct AppCtx<'r> {
    /// The app.
    pub app: App,
    /// Its platform's endpoints and habits.
    pub platform: Platform,
    /// Its platform's profile.
    pub profile: PlatformProfile,
    provider: Provider,
    lifecycle: Lifecycle,
    /// A Client Secret to use instead of the stored one (a rotation's test step).
    client_secret: Option<Zeroizing<Vec<u8>>>,
    /// The open store, HTTP client and runtime.
    pub shared: Shared<'r>,
}

impl std::fmt::Debug for AppCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCtx")
            .field("app", &self.app.name)
            .field("platform", &self.platform.name)
            .finish_non_exhaustive()
    }
}

fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// The path of a platform's endpoint (`https://zoom.us/oauth/token` ->
/// `/oauth/token`), to re-base it on a declared `oauth_base`; `default` when
/// the platform names none.
fn path_of(url: &str, default: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if !url.is_empty() => u.path().to_string(),
        _ => default.to_string(),
    }
}

/// The provider of an app: the platform's endpoints, overridden by the
/// declaration (whole URLs, or a base the platform's paths are put under).
fn provider_of(app: &App, platform: &Platform) -> Result<Provider, Error> {
    let o = &app.oauth;
    let pick = |explicit: &Option<String>, platform_url: &str, default_path: &str| -> Option<String> {
        explicit
            .clone()
            .or_else(|| {
                o.oauth_base
                    .as_ref()
                    .map(|b| join(b, &path_of(platform_url, default_path)))
            })
            .or_else(|| (!platform_url.is_empty()).then(|| platform_url.to_string()))
    };
    let authorize = pick(&o.authorize_url, &platform.authorize_url, "/oauth/authorize");
    let token = pick(&o.token_url, &platform.token_url, "/oauth/token").ok_or_else(|| {
        Error::invalid(format!("{}: no token endpoint", app.name)).hint("set token_url in [apps.NAME.oauth]")
    })?;
    let revoke = pick(&o.revoke_url, &platform.revoke_url, "/oauth/revoke");
    let auth = match o.client_auth {
        Some(ClientAuthStyle::Body) => ClientAuth::Body,
        Some(ClientAuthStyle::Basic) => ClientAuth::Basic,
        None if platform.client_auth == "body" => ClientAuth::Body,
        None => ClientAuth::Basic,
    };
    let mut p = Provider::new(
        authorize.as_deref(),
        &token,
        revoke.as_deref(),
        auth,
        o.pkce && platform.pkce,
    )
    .map_err(|e| Error::invalid(format!("{}: {e}", app.name)))?;
    p.send_scopes = platform.send_scopes;
    p.scopes = app.scopes.iter().map(|s| s.scope.clone()).collect();
    p.extra_authorize_params = o.authorize_params.clone();
    Ok(p)
}

/// The installed platform `name`, or the error that says none provides it.
pub fn platform_of(reg: &Registry, name: &str) -> Result<PlatformInfo, Error> {
    platform::platform(reg, name)?.ok_or_else(|| {
        Error::invalid(format!("no installed plugin provides the platform {name:?}"))
            .hint("run `connapp plugins list` to see the installed platforms")
    })
}

impl<'r> AppCtx<'r> {
    /// The app `name` of `decl` (or its only app), on `shared`.
    pub fn load(reg: &Registry, decl: &Declaration, name: Option<&str>, shared: &Shared<'r>) -> Result<Self, Error> {
        let app = decl.app(name).map_err(|e| Error::invalid(e.to_string()))?.clone();
        let PlatformInfo { platform, profile } = platform_of(reg, &app.platform)?;
        let provider = provider_of(&app, &platform)?;
        let lifecycle = Lifecycle {
            app: app.name.clone(),
            lock_dir: shared.data_dir().join("locks").join(shared.store_id()),
            journal_dir: shared.data_dir().join("journal").join(shared.store_id()),
            legacy_journal_dir: Some(shared.data_dir().join("journal")),
            margin: 60,
            lock_timeout: Duration::from_secs(120),
            grant_type: app.oauth.grant.as_str().to_string(),
        };
        Ok(AppCtx {
            app,
            platform,
            profile,
            provider,
            lifecycle,
            client_secret: None,
            shared: shared.clone(),
        })
    }

    /// This app authenticating with `secret` instead of its stored Client
    /// Secret (a rotation's new one, before it becomes current): a refresh
    /// or a mint through it proves the provider accepts `secret`.
    pub fn with_client_secret(mut self, secret: Zeroizing<Vec<u8>>) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// Where this app's sealed journals live (one directory per store).
    pub fn journal_dir(&self) -> &std::path::Path {
        &self.lifecycle.journal_dir
    }

    /// The app's journal key (32 random bytes kept in the store, created on
    /// first use), which seals whatever must reach the disk before the store.
    pub fn journal_key(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        use connapp_oauth::lifecycle::TokenStore;
        Secrets::new(&self.shared.store)
            .token_records(&self.app.name)
            .journal_key()
            .map_err(|e| Error::failure(format!("{}: the store: {e}", self.app.name)))
    }

    /// Another app of the same declaration, on the same store, HTTP client and runtime.
    pub fn sibling(&self, reg: &Registry, decl: &Declaration, name: &str) -> Result<AppCtx<'r>, Error> {
        AppCtx::load(reg, decl, Some(name), &self.shared)
    }

    /// The provider's name in messages.
    pub fn display(&self) -> &str {
        platform::display(&self.platform.name, &self.profile)
    }

    /// The stored value of `app`'s secret `kind` (any app of the declaration: the store is shared).
    pub fn secret_of(&self, app: &str, kind: SecretKind) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        Ok(Secrets::new(&self.shared.store)
            .get(app, kind)
            .map_err(|e| self.shared.store_error(e))?
            .map(|r| r.value))
    }

    /// The stored value of this app's secret `kind`.
    pub fn stored(&self, kind: SecretKind) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        self.secret_of(&self.app.name, kind)
    }

    /// How early before expiry a token is renewed, in seconds (default 60).
    pub fn set_margin(&mut self, seconds: u64) {
        self.lifecycle.margin = seconds;
    }

    /// The provider's endpoints as a consumer must be told them.
    pub fn endpoints(&self) -> Endpoints {
        let p = &self.provider;
        let api = self
            .app
            .oauth
            .api_base
            .clone()
            .unwrap_or_else(|| self.platform.api_base.clone());
        Endpoints {
            authorize_url: p.authorize_url.as_ref().map(|u| u.to_string()),
            token_url: p.token_url.to_string(),
            revoke_url: p.revoke_url.as_ref().map(|u| u.to_string()),
            api_base: api.trim_end_matches('/').to_string(),
            client_auth: match p.client_auth {
                ClientAuth::Basic => "basic",
                ClientAuth::Body => "body",
            },
        }
    }

    /// The API root for calls with `rec`: the account's API base from the
    /// token, else the declaration's or the platform's, under the platform's
    /// API path.
    pub fn api_root(&self, rec: &TokenRecord) -> String {
        let base = rec
            .api_url
            .clone()
            .or_else(|| self.app.oauth.api_base.clone())
            .unwrap_or_else(|| self.platform.api_base.clone());
        let base = base.trim_end_matches('/');
        let path = self.profile.api_path.trim_end_matches('/');
        if path.is_empty() || base.ends_with(path) {
            base.to_string()
        } else {
            format!("{base}{path}")
        }
    }

    /// Whose grant `rec` is, as the provider names the user when asked with
    /// its access token (the profile's `user_path` and `user_fields`). An
    /// error says why not: no such call, a refusal (the scope may be
    /// missing) or an answer without any of the fields.
    pub fn grant_user(&self, rec: &TokenRecord) -> Result<String, String> {
        let p = &self.profile;
        if p.user_path.is_empty() || self.app.oauth.grant != GrantKind::AuthorizationCode {
            return Err(format!("{} does not say whose a grant is", self.display()));
        }
        let http = self.shared.http().map_err(|e| e.to_string())?;
        let api = connapp_oauth::api::Api::new(http, &self.api_root(rec), rec.access_token.clone())
            .map_err(|e| e.to_string())?;
        let me = self
            .shared
            .rt
            .block_on(api.get(&p.user_path, &[]))
            .map_err(|e| e.to_string())?;
        p.user_fields
            .iter()
            .find_map(|f| match me.get(f) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
            .ok_or_else(|| format!("GET {} named no user ({})", p.user_path, p.user_fields.join(", ")))
    }

    /// The authorize URL a consent with `redirect` would open (state, PKCE
    /// challenge, scopes and extra parameters as a login sends them), to ask
    /// the provider whether it accepts the redirect. Nothing is consented
    /// unless someone signs in there; the verifier is dropped.
    pub fn authorize_url(&self, redirect: &str) -> Result<String, Error> {
        let name = &self.app.name;
        let client_id = self
            .stored(SecretKind::ClientId)?
            .ok_or_else(|| secrets::missing(name, SecretKind::ClientId, None))?;
        let creds = Credentials {
            client_id: String::from_utf8_lossy(&client_id).into_owned(),
            client_secret: SecretString::from(String::new()),
        };
        let redirect = url::Url::parse(redirect).map_err(|e| Error::invalid(format!("{name}: {redirect:?}: {e}")))?;
        let req = flows::authorize(&self.provider, &creds, &redirect).map_err(|e| edge_error(name, e))?;
        Ok(req.url.to_string())
    }

    fn credentials(&self) -> Result<Credentials, Error> {
        let app = &self.app.name;
        let source = format!("copy it from {}", platform::credentials_source(&self.profile));
        let get = |kind: SecretKind| -> Result<Zeroizing<Vec<u8>>, Error> {
            self.stored(kind)?
                .ok_or_else(|| secrets::missing(app, kind, Some(&source)))
        };
        let id = get(SecretKind::ClientId)?;
        let secret = match &self.client_secret {
            Some(s) => s.clone(),
            None => get(SecretKind::ClientSecret)?,
        };
        Ok(Credentials {
            client_id: String::from_utf8_lossy(&id).into_owned(),
            client_secret: SecretString::from(String::from_utf8_lossy(&secret).into_owned()),
        })
    }

    /// A valid access token: the stored one while fresh; refreshed when due;
    /// for apps without a user, minted anew when due.
    pub fn token(&self, obs: &dyn Observer) -> Result<(TokenRecord, Source), Error> {
        self.valid_token(false, obs)
    }

    /// A new access token now (the stored one was refused, or a refresh is asked for), stored.
    pub fn renew(&self, obs: &dyn Observer) -> Result<(TokenRecord, Source), Error> {
        self.valid_token(true, obs)
    }

    /// A new token for an app that needs no user: account or client credentials.
    fn mint(&self, creds: &Credentials) -> Result<TokenSet, Error> {
        let name = &self.app.name;
        let s = &self.shared;
        match self.app.oauth.grant {
            GrantKind::AccountCredentials => {
                let account = self.app.oauth.account_id.clone().unwrap_or_default();
                let http = s.http().map_err(|e| edge_error(name, e))?;
                s.rt.block_on(flows::account_credentials(&http, &self.provider, creds, &account))
                    .map_err(|e| edge_error(name, e))
            }
            GrantKind::ClientCredentials => {
                let http = s.http().map_err(|e| edge_error(name, e))?;
                s.rt.block_on(flows::client_credentials(&http, &self.provider, creds))
                    .map_err(|e| edge_error(name, e))
            }
            GrantKind::AuthorizationCode => {
                Err(Error::failure(format!("{name} needs a user's consent"))
                    .hint(format!("run `connapp login {name}`")))
            }
        }
    }

    /// The memory tier first (a hit reads nothing), then the lifecycle,
    /// one flight per app in the process; what it serves is kept, and a
    /// failure drops the entry.
    fn valid_token(&self, force: bool, obs: &dyn Observer) -> Result<(TokenRecord, Source), Error> {
        let cache = &self.shared.tokens;
        let name = &self.app.name;
        if !force && let Some(rec) = cache.get(name, self.shared.now(), self.lifecycle.margin) {
            return Ok((rec, Source::Memory));
        }
        let flight = cache.flight(name);
        let _flight = flight.lock().unwrap_or_else(|p| p.into_inner());
        // Another caller renewed while this one waited for the flight.
        if !force && let Some(rec) = cache.get(name, self.shared.now(), self.lifecycle.margin) {
            return Ok((rec, Source::Memory));
        }
        match self.stored_or_renewed(force, obs) {
            Ok((rec, src)) => {
                cache.put(name, &rec);
                Ok((rec, src))
            }
            Err(e) => {
                cache.forget(name);
                Err(e)
            }
        }
    }

    fn stored_or_renewed(&self, force: bool, obs: &dyn Observer) -> Result<(TokenRecord, Source), Error> {
        let store = Secrets::new(&self.shared.store)
            .token_records(&self.app.name)
            .with_leases(&self.shared.leases);
        // The client credentials are read only when a refresh is due: serving
        // a fresh token stays one store read. Their own error (a missing
        // secret, a store failure) is the one reported.
        let creds_error = Mutex::new(None);
        let keep = |e: Error| {
            let msg = e.message.clone();
            *creds_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            EdgeError::Other(msg)
        };
        let refresh = |rt: &SecretString| match self.credentials() {
            Ok(creds) => {
                let http = self.shared.http()?;
                self.shared
                    .rt
                    .block_on(flows::refresh(&http, &self.provider, &creds, rt))
            }
            Err(e) => Err(keep(e)),
        };
        // Apps without a user get a new token from their own credentials,
        // under the same lock and single flight as a refresh.
        let mint = || self.credentials().and_then(|creds| self.mint(&creds)).map_err(keep);
        let renew = Renew {
            refresh: &refresh,
            mint: (self.app.oauth.grant != GrantKind::AuthorizationCode).then_some(&mint as &dyn Fn() -> _),
        };
        let name = &self.app.name;
        self.lifecycle
            .token(&store, &|| self.shared.now(), force, &renew, || {
                obs.event(Event::WaitingForRefresh { app: name })
            })
            .map_err(|e| {
                creds_error
                    .into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .unwrap_or_else(|| self.lifecycle_error(e))
            })
    }

    /// Explains a lifecycle failure in the user's terms, with the platform's
    /// reasons for a refused refresh token (RFC 6749's when it has none).
    fn lifecycle_error(&self, e: LifecycleError) -> Error {
        let app = &self.app.name;
        match e {
            LifecycleError::NoToken { .. } => Error::new(ErrorKind::Reauth, format!("no token is stored for {app}"))
                .hint(format!("run `connapp login {app}` first")),
            e @ LifecycleError::NoRefreshToken { .. } => Error::new(ErrorKind::Reauth, e.to_string()).hint(format!(
                "the provider gave this grant no refresh token, so only a new consent renews it: run `connapp login {app}` (for a provider that issues refresh tokens only on request, declare [apps.{app}.oauth] authorize_params, e.g. prompt = \"consent\" and scope offline_access)"
            )),
            LifecycleError::RefreshRejected { source, by, .. } if source.oauth_error() == Some("invalid_grant") => {
                let why = if self.profile.refresh_rejected.is_empty() {
                    "Per RFC 6749 this happens when the grant was revoked or expired, or when the provider rotates refresh tokens and another holder of this one refreshed first.".to_string()
                } else {
                    let lines: Vec<String> = self.profile.refresh_rejected.iter().map(|r| format!("  - {r}")).collect();
                    format!("At {} this happens when:\n{}", self.display(), lines.join("\n"))
                };
                let who = by
                    .map(|b| format!(" The refused tokens were obtained by {b} (unix time)."))
                    .unwrap_or_default();
                Error::new(
                    ErrorKind::Reauth,
                    format!("the provider no longer accepts the refresh token of {app} ({source}).{who} {why}"),
                )
                .hint(format!(
                    "run `connapp login {app}` to consent again{}",
                    self.one_grant_per_user()
                ))
            }
            e @ LifecycleError::GrantLost { .. } => {
                let who = match &e {
                    LifecycleError::GrantLost { by: Some(b), .. } => {
                        format!("; the refused tokens were obtained by {b} (unix time)")
                    }
                    _ => String::new(),
                };
                Error::new(ErrorKind::Reauth, format!("{e}{who}")).hint(format!(
                    "connapp serves none of its tokens any more: run `connapp login {app}` to consent again{}",
                    self.one_grant_per_user()
                ))
            }
            LifecycleError::HolderVanished { by, .. } => {
                let who = by
                    .as_deref()
                    .map(|b| format!(" (the tokens it refreshed were obtained by {b}, unix time)"))
                    .unwrap_or_default();
                Error::failure(format!(
                    "{app}: the provider refused the refresh token right after another host let the store's lease expire in the middle of its refresh{who}: that host may hold the new tokens in its journal"
                ))
                .hint(format!(
                    "run `connapp token {app}` on the host that refreshed last (it replays its journal and publishes the tokens), then try again here; consent again only if that host is gone for good"
                ))
            }
            e @ LifecycleError::LeaseOutlived { .. } => Error::failure(e.to_string()).hint(format!(
                "run `connapp token {app}` again: it serves the record the other host publishes; do not consent again, that would end the grant the other host just renewed"
            )),
            LifecycleError::RefreshRejected { source, .. } => edge_error(app, source),
            LifecycleError::Edge(e) => edge_error(app, e),
            other => Error::failure(format!("{app}: {other}")),
        }
    }

    /// The caution a consent needs when the app has a consumer that holds a
    /// grant of its own: which Zoom user consents matters.
    fn one_grant_per_user(&self) -> String {
        match &self.app.target {
            Some(t) => format!(
                " — as a different {} user than the one {} consented as, or {}'s grant ends too",
                self.display(),
                t.display,
                t.display
            ),
            None => String::new(),
        }
    }

    /// connapp's own token record for this app as stored: no network, no
    /// refresh, no lock. `None` when it holds none.
    pub fn stored_record(&self) -> Result<Option<TokenRecord>, Error> {
        match Secrets::new(&self.shared.store).token(&self.app.name) {
            Ok(Some(r)) => TokenRecord::from_bytes(&r.value)
                .map(Some)
                .map_err(|e| Error::failure(format!("{}: {e}", self.app.name))),
            Ok(None) => Ok(None),
            Err(e) => Err(self.shared.store_error(e)),
        }
    }

    /// Explains a failed code exchange; a redirect mismatch (in the
    /// platform's words) shows both redirect URLs and how they differ.
    pub fn exchange_error(&self, e: EdgeError, authorize_redirect: &str, token_redirect: &str) -> Error {
        let app = &self.app.name;
        let mismatch = match &e {
            EdgeError::Rejected { reason: Some(r), .. } => {
                let r = r.to_ascii_lowercase();
                self.profile
                    .redirect_mismatch
                    .iter()
                    .any(|m| !m.is_empty() && r.contains(&m.to_ascii_lowercase()))
            }
            _ => false,
        };
        if !mismatch {
            return edge_error(app, e);
        }
        Error::failure(format!(
            "{app}: {} refused the code exchange ({e}): the token request must repeat the authorize request's redirect_uri byte for byte.\n  authorize: {authorize_redirect:?}\n  token:     {token_redirect:?}\n  {}",
            self.display(),
            if authorize_redirect == token_redirect {
                "connapp sent the same URL both times, so something in between (a proxy, a rewritten URL) changed one of them".to_string()
            } else {
                connapp_core::urls::describe_difference(authorize_redirect, token_redirect)
            }
        ))
        .hint(format!(
            "run `connapp login {app}` again; a consumer must use one redirect URL in its OAuth profile for both requests"
        ))
    }

    /// Logs the app in: a user's consent for an authorization-code app (with
    /// `user_hint` as `login_hint`), the app's own credentials otherwise;
    /// stores the new grant.
    pub fn login(
        &mut self,
        user_hint: Option<&str>,
        consent: Consent<'_>,
        obs: &dyn Observer,
    ) -> Result<LoggedIn, Error> {
        if let Some(h) = user_hint {
            self.provider
                .extra_authorize_params
                .push(("login_hint".into(), h.to_string()));
        }
        let creds = self.credentials()?;
        let name = self.app.name.clone();
        let grant = self.app.oauth.grant;
        let set = match grant {
            GrantKind::AccountCredentials | GrantKind::ClientCredentials => self.mint(&creds)?,
            GrantKind::AuthorizationCode => self.consent(&creds, user_hint, consent, obs)?,
        };
        let mut rec = TokenRecord::from_set(set, grant.as_str(), self.shared.now());
        rec.by = Some(connapp_oauth::lifecycle::holder(rec.obtained_at));
        if grant == GrantKind::AuthorizationCode {
            obs.event(Event::Step {
                app: &name,
                what: &format!("asking {} whose grant this is", self.display()),
            });
            rec.user = self.grant_user(&rec).ok();
        }
        let store = Secrets::new(&self.shared.store).token_records(&name);
        self.shared.tokens.forget(&name);
        self.lifecycle
            .store_new(&store, &rec)
            .map_err(|e| self.lifecycle_error(e))?;
        self.shared.tokens.put(&name, &rec);
        let missing = match &rec.scopes {
            Some(granted) => self
                .app
                .scopes
                .iter()
                .map(|s| s.scope.clone())
                .filter(|s| !granted.contains(s))
                .collect(),
            None => Vec::new(),
        };
        let store = self.shared.store.describe().map(|d| d.location).unwrap_or_default();
        Ok(LoggedIn {
            record: rec,
            missing,
            store,
        })
    }

    fn consent(
        &self,
        creds: &Credentials,
        user_hint: Option<&str>,
        consent: Consent<'_>,
        obs: &dyn Observer,
    ) -> Result<TokenSet, Error> {
        let name = &self.app.name;
        let Some(lr) = &self.app.oauth.login_redirect else {
            return Err(Error::invalid(format!("{name} has no login redirect")).hint(format!(
                "add `login_redirect = \"http://127.0.0.1/callback\"` under [apps.NAME.oauth] and the same URL to allow_list (and to the app's allow list at {})",
                self.display()
            )));
        };
        let template = check_endpoint("login redirect", lr).map_err(|e| Error::invalid(e.to_string()))?;
        if let Some(note) = &self.profile.login_note {
            let who = user_hint
                .map(str::to_string)
                .unwrap_or_else(|| format!("the {} user you sign in with", self.display()));
            let note = note.replace("{who}", &who).replace("{app}", &self.app.display_name);
            obs.event(Event::Notice(&note));
        }
        let s = &self.shared;
        let (code, redirect, verifier) = match consent {
            Consent::Paste { show, paste } => {
                let mut fixed = template.clone();
                if fixed.port().is_none() {
                    let _ = fixed.set_port(Some(8400));
                }
                let req = flows::authorize(&self.provider, creds, &fixed).map_err(|e| edge_error(name, e))?;
                show(req.url.as_str());
                let pasted = paste()?;
                let code = parse_pasted(&pasted, &req.state).map_err(|e| consent_error(name, e))?;
                (code, req.redirect_uri, req.pkce_verifier)
            }
            Consent::Loopback { open, timeout } => s.rt.block_on(async {
                let lb = Loopback::bind(&template).await.map_err(|e| consent_error(name, e))?;
                let req = flows::authorize(&self.provider, creds, &lb.redirect_uri).map_err(|e| edge_error(name, e))?;
                open(req.url.as_str());
                let redirect = lb.redirect_uri.clone();
                let code = lb.wait(&req.state, timeout).await.map_err(|e| consent_error(name, e))?;
                Ok::<_, Error>((code, redirect, req.pkce_verifier))
            })?,
        };
        let http = s.http().map_err(|e| edge_error(name, e))?;
        s.rt.block_on(flows::exchange_code(
            &http,
            &self.provider,
            creds,
            &code,
            &redirect,
            verifier,
        ))
        .map_err(|e| self.exchange_error(e, redirect.as_str(), redirect.as_str()))
    }

    /// Revokes the app's grant at the provider (RFC 7009) and forgets its
    /// tokens. When the provider does not confirm, the tokens are kept —
    /// unless `forget`, which removes them anyway (with a warning).
    pub fn revoke(&self, forget: bool, obs: &dyn Observer) -> Result<(), Error> {
        let name = &self.app.name;
        // Whatever the provider says, this process serves the tokens no more.
        self.shared.tokens.forget(name);
        let store = Secrets::new(&self.shared.store).token_records(name);
        let Some((bytes, version)) = store.load().map_err(Error::failure)? else {
            return Err(Error::failure(format!(
                "no token is stored for {name}; nothing to revoke"
            )));
        };
        let rec = TokenRecord::from_bytes(&bytes).map_err(Error::failure)?;
        let creds = self.credentials()?;
        let token = rec.refresh_token.as_ref().unwrap_or(&rec.access_token);
        let s = &self.shared;
        // RFC 7009 §2.2: 200 means revoked (or already unknown to the
        // server); anything else is an error, and the tokens may well still
        // work, so they are kept unless the user asks to forget them all the same.
        let outcome = match s.http() {
            Ok(http) => s.rt.block_on(flows::revoke(&http, &self.provider, &creds, token)),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            if !forget {
                let err = edge_error(name, e);
                let kept = format!(
                    "the tokens of {name} are kept, since the provider may still honour them; fix what it said and run `connapp revoke` again, or `connapp revoke --forget --yes` to remove them here anyway"
                );
                let hint = match &err.hint {
                    Some(h) => format!("{h}; {kept}"),
                    None => kept,
                };
                return Err(err.hint(hint));
            }
            obs.event(Event::Warning(&format!(
                "the provider did not revoke the grant of {name} ({e}); forgetting its tokens here as asked (--forget), but they may stay valid at the provider until they expire"
            )));
        }
        Secrets::new(&s.store)
            .remove_token(name, version)
            .map_err(|e| s.store_error(e))?;
        self.lifecycle.forget_journal();
        Ok(())
    }
}

/// How a user consents at a login.
pub enum Consent<'a> {
    /// connapp listens on the loopback login redirect; `open` gets the
    /// authorize URL (to open a browser, and to show it in case that fails).
    Loopback {
        /// Opens or shows the URL.
        open: &'a dyn Fn(&str),
        /// How long to wait for the browser to come back.
        timeout: Duration,
    },
    /// The user opens the URL anywhere and pastes the address the browser
    /// was sent to: `show` gets the URL, `paste` returns what was pasted.
    Paste {
        /// Shows the URL.
        show: &'a dyn Fn(&str),
        /// Reads the pasted address.
        paste: &'a dyn Fn() -> Result<String, Error>,
    },
}

/// What a login got.
#[derive(Debug)]
pub struct LoggedIn {
    /// The stored token record.
    pub record: TokenRecord,
    /// Declared scopes the provider says it did not grant.
    pub missing: Vec<String>,
    /// Where the token is stored (the store's location).
    pub store: String,
}

/// Turns an edge error into what the user should know and do.
pub fn edge_error(app: &str, e: EdgeError) -> Error {
    match &e {
        EdgeError::Unreachable { host, .. } if is_loopback_host(host) => {
            Error::new(ErrorKind::Unreachable, format!("{app}: {e}")).hint(format!(
                "nothing answers on {host}, this machine: if the declaration points at a local sandbox (`connapp sandbox`), start it (or check its port against the declaration's endpoints); nothing was changed"
            ))
        }
        EdgeError::Unreachable { .. } => Error::new(ErrorKind::Unreachable, format!("{app}: {e}"))
            .hint("check the network and the endpoints in the declaration; nothing was changed"),
        EdgeError::Rejected { error, .. } if error == "invalid_client" => Error::failure(format!("{app}: {e}")).hint(
            format!(
                "the Client ID or Client Secret is wrong (was the secret rotated?): run `connapp secrets set client-secret --app {app}`"
            ),
        ),
        _ => Error::failure(format!("{app}: {e}")),
    }
}

/// Whether `host` (`name` or `name:port`, as `EdgeError` names it) is this
/// machine, by the edge's own loopback rule.
fn is_loopback_host(host: &str) -> bool {
    url::Url::parse(&format!("http://{host}/")).is_ok_and(|u| connapp_oauth::is_loopback(&u))
}

fn consent_error(app: &str, e: ConsentError) -> Error {
    match e {
        ConsentError::Timeout(s) => Error::failure(format!("{app}: no consent arrived within {s} s")).hint(
            "if the browser shows the provider's page about an invalid redirect URL, the login redirect is not on the app's allow list at the provider: add it exactly as declared in oauth.login_redirect",
        ),
        ConsentError::Denied { .. } => Error::new(ErrorKind::Reauth, format!("{app}: {e}"))
            .hint("run `connapp login` again and choose Allow; admin-managed apps need an account owner or admin"),
        other => Error::failure(format!("{app}: {other}")),
    }
}

/// The name of a token's source in `connapp token --json`.
pub fn source_name(s: Source) -> &'static str {
    match s {
        Source::Stored => "stored",
        Source::Memory => "memory",
        Source::RefreshedElsewhere => "refreshed-by-another-process",
        Source::Refreshed => "refreshed",
        Source::Replayed => "recovered-from-journal",
        Source::Minted => "minted",
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
