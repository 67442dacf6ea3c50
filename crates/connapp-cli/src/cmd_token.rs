//! `connapp login | token | refresh | revoke | status`: getting tokens and
//! never losing them. The lifecycle itself lives in `connapp_oauth::lifecycle`.

use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use connapp_core::{App, ClientAuthStyle, Declaration, GrantKind, SecretKind};
use connapp_engine::secrets::Secrets;
use connapp_host::{LoadedPlugin, Registry};
use connapp_oauth::flows::{self, ClientAuth, Credentials, Provider};
use connapp_oauth::lifecycle::{Lifecycle, LifecycleError, Renew, Source, TokenStore};
use connapp_oauth::loopback::{ConsentError, Loopback, parse_pasted};
use connapp_oauth::record::TokenRecord;
use connapp_oauth::{EdgeError, check_endpoint};
use connapp_plugin_api::zeroize::Zeroizing;
use connapp_plugin_api::{Platform, StoreHandle};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::cli::{Global, LoginArgs, RefreshArgs, RevokeArgs, StatusArgs, TokenArgs};
use crate::ctx::{self, now};
use crate::error::{CliError, Exit};

/// Everything a token command needs for one app.
/// Apps of one command share the store, the HTTP client and the runtime.
pub(crate) struct AppCtx<'r> {
    pub app: App,
    pub store: Rc<StoreHandle>,
    pub store_plugin: &'r LoadedPlugin,
    provider: Provider,
    lifecycle: Lifecycle,
    pub http: reqwest::Client,
    pub rt: Rc<tokio::runtime::Runtime>,
    pub platform: Platform,
}

pub(crate) fn platform_of(reg: &Registry, name: &str) -> Result<Platform, CliError> {
    let (platforms, _) = reg.platforms();
    platforms
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| p.name == name)
        .ok_or_else(|| {
            CliError::with_code(
                Exit::Invalid,
                format!("no installed plugin provides the platform {name:?}"),
            )
            .hint("run `connapp plugins list` to see the installed platforms")
        })
}

fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// The provider of an app: the platform's endpoints, overridden by the declaration.
fn provider_of(app: &App, platform: &Platform) -> Result<Provider, CliError> {
    let o = &app.oauth;
    let pick = |explicit: &Option<String>, path: &str, default: &str| -> Option<String> {
        explicit
            .clone()
            .or_else(|| o.oauth_base.as_ref().map(|b| join(b, path)))
            .or_else(|| (!default.is_empty()).then(|| default.to_string()))
    };
    let authorize = pick(&o.authorize_url, "/oauth/authorize", &platform.authorize_url);
    let token = pick(&o.token_url, "/oauth/token", &platform.token_url).ok_or_else(|| {
        CliError::with_code(Exit::Invalid, format!("{}: no token endpoint", app.name))
            .hint("set token_url in [apps.NAME.oauth]")
    })?;
    let revoke = pick(&o.revoke_url, "/oauth/revoke", &platform.revoke_url);
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
    .map_err(|e| CliError::with_code(Exit::Invalid, format!("{}: {e}", app.name)))?;
    p.send_scopes = platform.send_scopes;
    p.scopes = app.scopes.iter().map(|s| s.scope.clone()).collect();
    p.extra_authorize_params = o.authorize_params.clone();
    Ok(p)
}

fn credentials(c: &AppCtx<'_>) -> Result<Credentials, CliError> {
    let app = &c.app.name;
    let get = |kind: SecretKind| -> Result<Zeroizing<Vec<u8>>, CliError> {
        c.stored(kind)?
            .ok_or_else(|| ctx::missing_secret(app, kind, Some("copy it from the app's page at the provider")))
    };
    let id = get(SecretKind::ClientId)?;
    let secret = get(SecretKind::ClientSecret)?;
    Ok(Credentials {
        client_id: String::from_utf8_lossy(&id).into_owned(),
        client_secret: SecretString::from(String::from_utf8_lossy(&secret).into_owned()),
    })
}

pub(crate) fn load<'r>(reg: &'r Registry, decl: &Declaration, name: Option<&str>) -> Result<AppCtx<'r>, CliError> {
    load_with(reg, decl, name, None)
}

impl<'r> AppCtx<'r> {
    /// The stored value of `app`'s secret `kind` (any app of the declaration: the store is shared).
    pub(crate) fn secret_of(&self, app: &str, kind: SecretKind) -> Result<Option<Zeroizing<Vec<u8>>>, CliError> {
        Ok(Secrets::new(&self.store)
            .get(app, kind)
            .map_err(|e| connapp_host::plugin_error(self.store_plugin, e))?
            .map(|r| r.value))
    }

    /// The stored value of this app's secret `kind`.
    pub(crate) fn stored(&self, kind: SecretKind) -> Result<Option<Zeroizing<Vec<u8>>>, CliError> {
        self.secret_of(&self.app.name, kind)
    }

    /// Another app of the same declaration, on the same open store, HTTP
    /// client and runtime (a store open can cost a key derivation).
    pub(crate) fn sibling(&self, reg: &'r Registry, decl: &Declaration, name: &str) -> Result<AppCtx<'r>, CliError> {
        load_with(reg, decl, Some(name), Some(self))
    }
}

fn load_with<'r>(
    reg: &'r Registry,
    decl: &Declaration,
    name: Option<&str>,
    shared: Option<&AppCtx<'r>>,
) -> Result<AppCtx<'r>, CliError> {
    let app = ctx::app(decl, name)?.clone();
    let platform = platform_of(reg, &app.platform)?;
    let provider = provider_of(&app, &platform)?;
    let data = ctx::data_dir()?;
    let lifecycle = Lifecycle {
        app: app.name.clone(),
        lock_dir: data.join("locks"),
        journal_dir: data.join("journal"),
        margin: 60,
        lock_timeout: Duration::from_secs(120),
        grant_type: app.oauth.grant.as_str().to_string(),
    };
    let (store, store_plugin, http, rt) = match shared {
        Some(c) => (c.store.clone(), c.store_plugin, c.http.clone(), c.rt.clone()),
        None => {
            let (store, plugin) = ctx::open_store(reg, decl)?;
            let http = connapp_oauth::http_client().map_err(|e| CliError::failure(e.to_string()))?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::failure(format!("cannot start the runtime: {e}")))?;
            (Rc::new(store), plugin, http, Rc::new(rt))
        }
    };
    Ok(AppCtx {
        app,
        store,
        store_plugin,
        provider,
        lifecycle,
        http,
        rt,
        platform,
    })
}

/// Turns an edge error into what the user should know and do.
fn edge_error(app: &str, e: EdgeError) -> CliError {
    match &e {
        EdgeError::Unreachable { .. } => CliError::with_code(Exit::Unreachable, format!("{app}: {e}"))
            .hint("check the network and the endpoints in the declaration; nothing was changed"),
        EdgeError::Rejected { error, .. } if error == "invalid_client" => CliError::failure(format!("{app}: {e}"))
            .hint(format!(
                "the Client ID or Client Secret is wrong (was the secret rotated?): run `connapp secrets set client-secret --app {app}`"
            )),
        _ => CliError::failure(format!("{app}: {e}")),
    }
}

/// Explains a failed code exchange; Zoom's 4709 shows both redirect URLs.
pub(crate) fn exchange_error(app: &str, e: EdgeError, authorize_redirect: &str, token_redirect: &str) -> CliError {
    let is_4709 = matches!(&e, EdgeError::Rejected { reason: Some(r), .. } if r.contains("4709") || r.to_ascii_lowercase().contains("redirect uri mismatch"));
    if !is_4709 {
        return edge_error(app, e);
    }
    CliError::failure(format!(
        "{app}: Zoom refused the code exchange with 4709 \"Redirect URI mismatch\": the token request must repeat the authorize request's redirect_uri byte for byte.\n  authorize: {authorize_redirect:?}\n  token:     {token_redirect:?}\n  {}",
        if authorize_redirect == token_redirect {
            "connapp sent the same URL both times, so something in between (a proxy, a rewritten URL) changed one of them".to_string()
        } else {
            connapp_core::urls::describe_difference(authorize_redirect, token_redirect)
        }
    ))
    .hint(format!("run `connapp login {app}` again; a consumer (ServiceNow) must use one redirect URL in its OAuth profile for both requests"))
}

/// Explains a lifecycle failure in the user's terms. `zoom`: the provider is
/// Zoom, whose habits (rotation on every use, one grant per user per app)
/// explain a refused refresh token; other providers get RFC 6749's reasons.
// Platform wording still lives here until the platform contract carries it (issue 12).
fn lifecycle_error(app: &str, zoom: bool, e: LifecycleError) -> CliError {
    match e {
        LifecycleError::NoToken { .. } => CliError::with_code(Exit::Reauth, format!("no token is stored for {app}"))
            .hint(format!("run `connapp login {app}` first")),
        e @ LifecycleError::NoRefreshToken { .. } => CliError::with_code(Exit::Reauth, e.to_string()).hint(format!(
            "the provider gave this grant no refresh token, so only a new consent renews it: run `connapp login {app}` (for a provider that issues refresh tokens only on request, declare [apps.{app}.oauth] authorize_params, e.g. prompt = \"consent\" and scope offline_access)"
        )),
        LifecycleError::RefreshRejected { source, .. } if source.oauth_error() == Some("invalid_grant") && !zoom => {
            CliError::with_code(
                Exit::Reauth,
                format!(
                    "the provider no longer accepts the refresh token of {app} ({source}). Per RFC 6749 this happens when the grant was revoked or expired, or when the provider rotates refresh tokens and another holder of this one refreshed first."
                ),
            )
            .hint(format!("run `connapp login {app}` to consent again"))
        }
        LifecycleError::RefreshRejected { source, .. } if source.oauth_error() == Some("invalid_grant") => {
            CliError::with_code(
                Exit::Reauth,
                format!(
                    "the provider no longer accepts the refresh token of {app} ({source}). Zoom rotates refresh tokens on every use and keeps one grant per user per app, so this happens when:\n  - another holder refreshed first (another machine or a copy of this token), which rotated it away;\n  - the same user consented again elsewhere (for example ServiceNow's \"Get OAuth Token\"), which ended this grant;\n  - the app was uninstalled or the grant revoked;\n  - the refresh token expired after long disuse."
                ),
            )
            .hint(format!("run `connapp login {app}` to consent again"))
        }
        LifecycleError::RefreshRejected { source, .. } => edge_error(app, source),
        LifecycleError::Edge(e) => edge_error(app, e),
        other => CliError::failure(format!("{app}: {other}")),
    }
}

#[derive(Serialize)]
struct TokenJson<'a> {
    app: &'a str,
    access_token: &'a str,
    token_type: &'static str,
    expires_at: u64,
    expires_in: u64,
    /// What the provider said it granted; `null`: its answer did not say.
    scopes: Option<&'a [String]>,
    api_url: Option<&'a str>,
    source: &'static str,
}

fn source_name(s: Source) -> &'static str {
    match s {
        Source::Stored => "stored",
        Source::RefreshedElsewhere => "refreshed-by-another-process",
        Source::Refreshed => "refreshed",
        Source::Replayed => "recovered-from-journal",
        Source::Minted => "minted",
    }
}

/// A valid access token for any app: refreshed when due; for apps without
/// a user (server-to-server, client credentials) minted anew when due.
pub(crate) fn api_token(c: &AppCtx<'_>, g: &Global) -> Result<TokenRecord, CliError> {
    valid_token(c, false, g.quiet).map(|(rec, _)| rec)
}

/// A new server-to-server token now (the stored one was refused), stored.
pub(crate) fn renew_server_to_server(c: &AppCtx<'_>) -> Result<TokenRecord, CliError> {
    valid_token(c, true, true).map(|(rec, _)| rec)
}

/// A new token for an app that needs no user: account or client credentials.
fn mint(c: &AppCtx<'_>) -> Result<connapp_oauth::TokenSet, CliError> {
    let creds = credentials(c)?;
    let name = &c.app.name;
    match c.app.oauth.grant {
        GrantKind::AccountCredentials => {
            let account = c.app.oauth.account_id.clone().unwrap_or_default();
            c.rt.block_on(flows::account_credentials(&c.http, &c.provider, &creds, &account))
                .map_err(|e| edge_error(name, e))
        }
        GrantKind::ClientCredentials => {
            c.rt.block_on(flows::client_credentials(&c.http, &c.provider, &creds))
                .map_err(|e| edge_error(name, e))
        }
        GrantKind::AuthorizationCode => {
            Err(CliError::failure(format!("{name} needs a user's consent")).hint(format!("run `connapp login {name}`")))
        }
    }
}

/// The provider's endpoints as a consumer must be told them: authorize,
/// token, revoke, API base and client authentication (`basic` or `body`).
pub(crate) fn provider_endpoints(c: &AppCtx<'_>) -> serde_json::Value {
    let p = &c.provider;
    let api = c
        .app
        .oauth
        .api_base
        .clone()
        .unwrap_or_else(|| c.platform.api_base.clone());
    serde_json::json!({
        "authorize_url": p.authorize_url.as_ref().map(|u| u.to_string()),
        "token_url": p.token_url.to_string(),
        "revoke_url": p.revoke_url.as_ref().map(|u| u.to_string()),
        "api_base": api.trim_end_matches('/'),
        "client_auth": match p.client_auth { ClientAuth::Basic => "basic", ClientAuth::Body => "body" },
    })
}

/// The API root for calls with `rec`: the account's `api_url` from the token,
/// else the declaration's or the platform's API base (Zoom's paths sit under `/v2`).
pub(crate) fn api_root(c: &AppCtx<'_>, rec: &TokenRecord) -> String {
    let base = rec
        .api_url
        .clone()
        .or_else(|| c.app.oauth.api_base.clone())
        .unwrap_or_else(|| c.platform.api_base.clone());
    let base = base.trim_end_matches('/').to_string();
    if c.platform.name == "zoom" && !base.ends_with("/v2") {
        format!("{base}/v2")
    } else {
        base
    }
}

/// Refreshes now (for `verify`, after Zoom refused the stored token).
pub(crate) fn force_refresh(c: &AppCtx<'_>, g: &Global) -> Result<(), CliError> {
    valid_token(c, true, g.quiet).map(|_| ())
}

/// Gets a valid token (refreshing if needed) for a loaded app.
fn valid_token(c: &AppCtx<'_>, force: bool, quiet: bool) -> Result<(TokenRecord, Source), CliError> {
    let store = Secrets::new(&c.store).token_records(&c.app.name);
    // The client credentials are read only when a refresh is due: serving a
    // fresh token stays one store read.
    let creds_error = std::cell::RefCell::new(None);
    let refresh = |rt: &SecretString| match credentials(c) {
        Ok(creds) => c.rt.block_on(flows::refresh(&c.http, &c.provider, &creds, rt)),
        Err(e) => {
            let msg = e.message.clone();
            *creds_error.borrow_mut() = Some(e);
            Err(EdgeError::Other(msg))
        }
    };
    // Apps without a user get a new token from their own credentials,
    // under the same lock and single flight as a refresh.
    let mint = || match mint(c) {
        Ok(set) => Ok(set),
        Err(e) => {
            let msg = e.message.clone();
            *creds_error.borrow_mut() = Some(e);
            Err(EdgeError::Other(msg))
        }
    };
    let renew = Renew {
        refresh: &refresh,
        mint: (c.app.oauth.grant != GrantKind::AuthorizationCode).then_some(&mint as &dyn Fn() -> _),
    };
    let name = c.app.name.clone();
    c.lifecycle
        .token(&store, &now, force, &renew, move || {
            if !quiet {
                eprintln!("waiting for another connapp process that is refreshing {name}...");
            }
        })
        .map_err(|e| {
            creds_error
                .take()
                .unwrap_or_else(|| lifecycle_error(&c.app.name, c.platform.name == "zoom", e))
        })
}

pub fn token(g: &Global, a: TokenArgs) -> Result<(), CliError> {
    let reg = ctx::registry();
    ctx::warn_failures(&reg, g);
    let (_, decl) = ctx::load_declaration(g, &reg)?;
    let mut c = load(&reg, &decl, a.app.as_deref())?;
    if let Some(m) = a.margin {
        c.lifecycle.margin = m;
    }
    let (rec, src) = valid_token(&c, false, g.quiet)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        drop(out);
        return ctx::print_json(&TokenJson {
            app: &c.app.name,
            access_token: rec.access_token.expose_secret(),
            token_type: "bearer",
            expires_at: rec.expires_at,
            expires_in: rec.expires_at.saturating_sub(now()),
            scopes: rec.scopes.as_deref(),
            api_url: rec.api_url.as_deref(),
            source: source_name(src),
        });
    }
    writeln!(out, "{}", rec.access_token.expose_secret())?;
    Ok(())
}

#[derive(Serialize)]
struct RefreshJson {
    app: String,
    ok: bool,
    expires_at: Option<u64>,
    error: Option<String>,
}

pub fn refresh(g: &Global, a: RefreshArgs) -> Result<(), CliError> {
    let reg = ctx::registry();
    ctx::warn_failures(&reg, g);
    let (_, decl) = ctx::load_declaration(g, &reg)?;
    let names: Vec<String> = if a.all {
        decl.apps
            .iter()
            .filter(|x| x.oauth.grant == GrantKind::AuthorizationCode)
            .map(|x| x.name.clone())
            .collect()
    } else {
        vec![ctx::app(&decl, a.app.as_deref())?.name.clone()]
    };
    let mut results = Vec::new();
    let mut first_err: Option<CliError> = None;
    let total = names.len();
    for (i, name) in names.iter().enumerate() {
        if a.all && !g.quiet && !a.json {
            eprintln!("[{}/{total}] refreshing {name}", i + 1);
        }
        let r = load(&reg, &decl, Some(name)).and_then(|c| valid_token(&c, true, g.quiet));
        match r {
            Ok((rec, _)) => {
                if !a.json && !g.quiet {
                    println!(
                        "{name}: refreshed, expires in {} min",
                        rec.expires_at.saturating_sub(now()) / 60
                    );
                }
                results.push(RefreshJson {
                    app: name.clone(),
                    ok: true,
                    expires_at: Some(rec.expires_at),
                    error: None,
                });
            }
            Err(e) => {
                results.push(RefreshJson {
                    app: name.clone(),
                    ok: false,
                    expires_at: None,
                    error: Some(e.message.clone()),
                });
                if first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
    }
    if a.json {
        ctx::print_json(&results)?;
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[derive(Serialize)]
struct LoginJson<'a> {
    app: &'a str,
    grant_type: &'static str,
    /// What the provider said it granted; `null`: its answer did not say.
    scopes: Option<&'a [String]>,
    expires_at: u64,
    refresh_token: bool,
    store: String,
}

fn read_paste() -> Result<String, CliError> {
    eprint!("After you allowed access, paste the full address of the page the browser was sent to: ");
    let _ = std::io::stderr().flush();
    let line = connapp_plugin_api::bounded::read_line(&mut std::io::stdin().lock(), ctx::MAX_ANSWER_BYTES)
        .map_err(|e| CliError::failure(format!("cannot read the pasted URL: {e}")))?;
    if line.trim().is_empty() {
        return Err(CliError::failure("nothing was pasted; no token").hint("run `connapp login` again"));
    }
    Ok(line)
}

fn consent_error(app: &str, e: ConsentError) -> CliError {
    match e {
        ConsentError::Timeout(s) => CliError::failure(format!("{app}: no consent arrived within {s} s")).hint(
            "if the browser shows Zoom's \"Invalid redirect url\" (4700) page, the login redirect is not on the app's allow list in Zoom: add it exactly as declared in oauth.login_redirect",
        ),
        ConsentError::Denied { .. } => CliError::with_code(Exit::Reauth, format!("{app}: {e}"))
            .hint("run `connapp login` again and choose Allow; admin-managed apps need an account owner or admin"),
        other => CliError::failure(format!("{app}: {other}")),
    }
}

pub fn login(g: &Global, a: LoginArgs) -> Result<(), CliError> {
    let reg = ctx::registry();
    ctx::warn_failures(&reg, g);
    let (_, decl) = ctx::load_declaration(g, &reg)?;
    let mut c = load(&reg, &decl, a.app.as_deref())?;
    if let Some(h) = &a.user_hint {
        c.provider.extra_authorize_params.push(("login_hint".into(), h.clone()));
    }
    let creds = credentials(&c)?;
    let name = c.app.name.clone();
    let grant = c.app.oauth.grant;
    let set = match grant {
        GrantKind::AccountCredentials | GrantKind::ClientCredentials => {
            drop(creds);
            mint(&c)?
        }
        GrantKind::AuthorizationCode => {
            let Some(lr) = &c.app.oauth.login_redirect else {
                return Err(CliError::with_code(Exit::Invalid, format!("{name} has no login redirect")).hint(
                    "add `login_redirect = \"http://127.0.0.1/callback\"` under [apps.NAME.oauth] and the same URL to allow_list (and to the app's allow list in Zoom)",
                ));
            };
            let template =
                check_endpoint("login redirect", lr).map_err(|e| CliError::with_code(Exit::Invalid, e.to_string()))?;
            if !g.quiet && c.platform.name == "zoom" {
                let who = a
                    .user_hint
                    .as_deref()
                    .map_or("the Zoom user you sign in with".to_string(), |h| h.to_string());
                eprintln!(
                    "note: Zoom keeps one grant per user per app. If {who} has already authorized {} elsewhere (for example ServiceNow's \"Get OAuth Token\"), consenting here ends that grant and the other side must consent again. Sign in with a different admin than the one ServiceNow used.",
                    c.app.display_name
                );
            }
            let timeout = Duration::from_secs(a.timeout);
            let (code, redirect, verifier) = if a.no_browser {
                let mut fixed = template.clone();
                if fixed.port().is_none() {
                    let _ = fixed.set_port(Some(8400));
                }
                let req = flows::authorize(&c.provider, &creds, &fixed).map_err(|e| edge_error(&name, e))?;
                eprintln!(
                    "Open this URL in a browser on any machine and allow access:\n\n  {}\n",
                    req.url
                );
                let pasted = read_paste()?;
                let code = parse_pasted(&pasted, &req.state).map_err(|e| consent_error(&name, e))?;
                (code, req.redirect_uri, req.pkce_verifier)
            } else {
                let (code, redirect, verifier) = c.rt.block_on(async {
                    let lb = Loopback::bind(&template).await.map_err(|e| consent_error(&name, e))?;
                    let req =
                        flows::authorize(&c.provider, &creds, &lb.redirect_uri).map_err(|e| edge_error(&name, e))?;
                    eprintln!(
                        "Opening the browser to authorize {}. If it does not open, visit:\n\n  {}\n",
                        c.app.display_name, req.url
                    );
                    // Some browsers (and $BROWSER commands) block until closed:
                    // open from another thread so the listener keeps serving.
                    let url = req.url.to_string();
                    std::thread::spawn(move || {
                        if let Err(e) = webbrowser::open(&url) {
                            eprintln!("(could not open a browser: {e}; open the URL above by hand)");
                        }
                    });
                    let redirect = lb.redirect_uri.clone();
                    let code = lb
                        .wait(&req.state, timeout)
                        .await
                        .map_err(|e| consent_error(&name, e))?;
                    Ok::<_, CliError>((code, redirect, req.pkce_verifier))
                })?;
                (code, redirect, verifier)
            };
            c.rt.block_on(flows::exchange_code(
                &c.http,
                &c.provider,
                &creds,
                &code,
                &redirect,
                verifier,
            ))
            .map_err(|e| exchange_error(&name, e, redirect.as_str(), redirect.as_str()))?
        }
    };
    let declared: Vec<String> = c.app.scopes.iter().map(|s| s.scope.clone()).collect();
    let rec = TokenRecord::from_set(set, grant.as_str(), now());
    let store = Secrets::new(&c.store).token_records(&name);
    c.lifecycle
        .store_new(&store, &rec)
        .map_err(|e| lifecycle_error(&name, c.platform.name == "zoom", e))?;
    let missing: Vec<&String> = match &rec.scopes {
        Some(granted) => declared.iter().filter(|s| !granted.contains(s)).collect(),
        None => Vec::new(),
    };
    let desc = c.store.describe().map(|d| d.location).unwrap_or_default();
    if a.json {
        return ctx::print_json(&LoginJson {
            app: &name,
            grant_type: grant.as_str(),
            scopes: rec.scopes.as_deref(),
            expires_at: rec.expires_at,
            refresh_token: rec.refresh_token.is_some(),
            store: desc,
        });
    }
    if !g.quiet {
        println!(
            "Logged in: {name} ({}), {}, expires in {} min; stored in {}",
            grant.as_str(),
            match &rec.scopes {
                Some(s) => format!("{} scopes granted", s.len()),
                None => "granted scopes not reported by the provider".to_string(),
            },
            rec.expires_at.saturating_sub(now()) / 60,
            desc
        );
        if !missing.is_empty() {
            eprintln!(
                "warning: the grant lacks declared scopes: {} (add them to the app in Zoom, then log in again)",
                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(())
}

pub fn revoke(g: &Global, a: RevokeArgs) -> Result<(), CliError> {
    let reg = ctx::registry();
    ctx::warn_failures(&reg, g);
    let (_, decl) = ctx::load_declaration(g, &reg)?;
    let c = load(&reg, &decl, a.app.as_deref())?;
    let name = c.app.name.clone();
    ctx::confirm(
        &ctx::Confirm {
            question: &format!("Revoke the grant of {name} at the provider and forget its tokens?"),
            action: "revoke",
            review: "",
            strict: false,
        },
        a.yes,
    )?;
    let store = Secrets::new(&c.store).token_records(&name);
    let Some((bytes, version)) = store.load().map_err(CliError::failure)? else {
        return Err(CliError::failure(format!(
            "no token is stored for {name}; nothing to revoke"
        )));
    };
    let rec = TokenRecord::from_bytes(&bytes).map_err(CliError::failure)?;
    let creds = credentials(&c)?;
    let token = rec.refresh_token.as_ref().unwrap_or(&rec.access_token);
    // RFC 7009 §2.2: 200 means revoked (or already unknown to the server);
    // anything else is an error, and the tokens may well still work, so they
    // are kept unless the user asks to forget them all the same.
    if let Err(e) = c.rt.block_on(flows::revoke(&c.http, &c.provider, &creds, token)) {
        if !a.forget {
            let err = edge_error(&name, e);
            let kept = format!(
                "the tokens of {name} are kept, since the provider may still honour them; fix what it said and run `connapp revoke` again, or `connapp revoke --forget --yes` to remove them here anyway"
            );
            let hint = match &err.hint {
                Some(h) => format!("{h}; {kept}"),
                None => kept,
            };
            return Err(err.hint(hint));
        }
        eprintln!(
            "warning: the provider did not revoke the grant of {name} ({e}); forgetting its tokens here as asked (--forget), but they may stay valid at the provider until they expire"
        );
    }
    Secrets::new(&c.store)
        .remove_token(&name, version)
        .map_err(|e| connapp_host::plugin_error(c.store_plugin, e))?;
    c.lifecycle.forget_journal();
    if !g.quiet {
        println!("Revoked the grant of {name} and removed its tokens");
    }
    Ok(())
}

#[derive(Serialize)]
struct StatusApp {
    app: String,
    platform: String,
    grant_type: String,
    store: String,
    store_capabilities: crate::cmd_secrets::CapsJson,
    logged_in: bool,
    token_age_secs: Option<u64>,
    expires_in_secs: Option<i64>,
    refresh_token: bool,
    declared_scopes: Vec<String>,
    /// What the provider said it granted; `null`: not logged in, or its answer did not say.
    granted_scopes: Option<Vec<String>>,
    missing_scopes: Vec<String>,
    extra_scopes: Vec<String>,
    error: Option<String>,
}

pub fn status(g: &Global, a: StatusArgs) -> Result<(), CliError> {
    let reg = ctx::registry();
    ctx::warn_failures(&reg, g);
    let (_, decl) = ctx::load_declaration(g, &reg)?;
    let (store, plugin) = ctx::open_store(&reg, &decl)?;
    let described = store.describe().map_err(|e| connapp_host::plugin_error(plugin, e))?;
    let location = described.location.clone();
    let mut out = Vec::new();
    for app in &decl.apps {
        let declared: Vec<String> = app.scopes.iter().map(|s| s.scope.clone()).collect();
        let mut s = StatusApp {
            app: app.name.clone(),
            platform: app.platform.clone(),
            grant_type: app.oauth.grant.as_str().to_string(),
            store: format!("{} ({location})", decl.store.kind),
            store_capabilities: described.capabilities.into(),
            logged_in: false,
            token_age_secs: None,
            expires_in_secs: None,
            refresh_token: false,
            declared_scopes: declared.clone(),
            granted_scopes: None,
            missing_scopes: vec![],
            extra_scopes: vec![],
            error: None,
        };
        match Secrets::new(&store).token(&app.name) {
            Ok(Some(r)) => match TokenRecord::from_bytes(&r.value) {
                Ok(rec) => {
                    let t = now();
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
                Err(e) => s.error = Some(e),
            },
            Ok(None) => {}
            Err(e) => s.error = Some(connapp_host::plugin_error(plugin, e).to_string()),
        }
        out.push(s);
    }
    if a.json {
        return ctx::print_json(&out);
    }
    let mut w = std::io::stdout().lock();
    writeln!(
        w,
        "{:<18} {:<20} {:<10} {:<12} {:<16} STORE",
        "APP", "GRANT", "TOKEN", "EXPIRES", "SCOPES"
    )?;
    for s in &out {
        let token = if s.logged_in { "yes" } else { "none" };
        let expires = match s.expires_in_secs {
            Some(e) if e > 0 => format!("in {} min", e / 60),
            // Apps without a user get a new token from `connapp token` (or any command) when due.
            Some(_) if s.grant_type != "authorization_code" => "renews on use".into(),
            Some(_) => "expired".into(),
            None => "-".into(),
        };
        let scopes = if !s.logged_in {
            format!("{} declared", s.declared_scopes.len())
        } else if s.granted_scopes.is_none() {
            "not reported".into()
        } else if s.missing_scopes.is_empty() {
            format!("{}/{} ok", s.declared_scopes.len(), s.declared_scopes.len())
        } else {
            format!("{} missing", s.missing_scopes.len())
        };
        writeln!(
            w,
            "{:<18} {:<20} {:<10} {:<12} {:<16} {}",
            s.app, s.grant_type, token, expires, scopes, s.store
        )?;
        if !s.missing_scopes.is_empty() && !g.quiet {
            writeln!(
                w,
                "  missing: {} (consent again after adding them to the app)",
                s.missing_scopes.join(", ")
            )?;
        }
        if let Some(e) = &s.error {
            writeln!(w, "  error: {e}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_4709_shows_both_redirects_and_their_difference() {
        let e = EdgeError::Rejected {
            endpoint: "token",
            status: 400,
            error: "invalid_request".into(),
            reason: Some("Redirect URI mismatch (4709)".into()),
        };
        let r = "https://acme.service-now.com/oauth_redirect.do";
        let err = exchange_error("dex-zoom", e, r, &format!("{r}/"));
        assert!(err.message.contains("4709"), "{}", err.message);
        assert!(err.message.contains(&format!("{r:?}")) && err.message.contains(&format!("\"{r}/\"")));
        assert!(err.message.contains("trailing slash"), "{}", err.message);
        let other = EdgeError::Rejected {
            endpoint: "token",
            status: 400,
            error: "invalid_client".into(),
            reason: None,
        };
        assert!(
            exchange_error("dex-zoom", other, r, r)
                .hint
                .unwrap_or_default()
                .contains("rotated")
        );
    }
}
