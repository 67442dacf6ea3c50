//! `connapp login | token | refresh | revoke | status`: the token service
//! (`connapp_engine::tokens`) for a terminal: arguments in, words and JSON out.

use std::io::Write;
use std::time::Duration;

use connapp_core::{Declaration, GrantKind};
use connapp_engine::tokens::{self, AppCtx, Consent, Event, Observer, Shared, now, source_name};
use connapp_host::Registry;
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::cli::{Global, LoginArgs, RefreshArgs, RevokeArgs, StatusArgs, TokenArgs};
use crate::ctx;
use crate::error::CliError;

/// Prints the engine's events: notices and warnings on stderr (only
/// warnings with `--quiet`), the work's own output (`Done`) on stdout unless
/// quiet or the answer is JSON.
pub(crate) struct Terminal {
    pub quiet: bool,
    pub json: bool,
}

impl Terminal {
    /// For a command without `--json` output of its own.
    pub(crate) fn of(g: &Global) -> Terminal {
        Terminal {
            quiet: g.quiet,
            json: false,
        }
    }
}

impl Observer for Terminal {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::Warning(w) => eprintln!("warning: {w}"),
            _ if self.quiet => {}
            Event::WaitingForRefresh { app } => {
                eprintln!("waiting for another connapp process that is refreshing {app}...")
            }
            Event::Notice(n) => eprintln!("note: {n}"),
            Event::Done(_) if self.json => {}
            Event::Done(d) => println!("{d}"),
        }
    }
}

/// The declaration's store, HTTP client and runtime, shared by its apps.
pub(crate) fn shared<'r>(reg: &'r Registry, decl: &Declaration) -> Result<Shared<'r>, CliError> {
    let (store, plugin) = ctx::open_store(reg, decl)?;
    Ok(Shared::new(store, plugin, ctx::data_dir()?)?)
}

/// The app `name` (or the only one) with a new shared store, client and runtime.
pub(crate) fn load<'r>(reg: &'r Registry, decl: &Declaration, name: Option<&str>) -> Result<AppCtx<'r>, CliError> {
    // The app is checked first: a wrong name fails before the store is opened.
    ctx::app(decl, name)?;
    Ok(AppCtx::load(reg, decl, name, &shared(reg, decl)?)?)
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

pub fn token(g: &Global, a: TokenArgs) -> Result<(), CliError> {
    let (reg, _, decl) = ctx::declared(g)?;
    let mut c = load(&reg, &decl, a.app.as_deref())?;
    if let Some(m) = a.margin {
        c.set_margin(m);
    }
    let (rec, src) = c.token(&Terminal::of(g))?;
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
    let (reg, _, decl) = ctx::declared(g)?;
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
        let r = load(&reg, &decl, Some(name)).and_then(|c| Ok(c.renew(&Terminal::of(g))?));
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

fn read_paste() -> Result<String, connapp_engine::Error> {
    use connapp_engine::Error;
    eprint!("After you allowed access, paste the full address of the page the browser was sent to: ");
    let _ = std::io::stderr().flush();
    let line = connapp_plugin_api::bounded::read_line(&mut std::io::stdin().lock(), ctx::MAX_ANSWER_BYTES)
        .map_err(|e| Error::failure(format!("cannot read the pasted URL: {e}")))?;
    if line.trim().is_empty() {
        return Err(Error::failure("nothing was pasted; no token").hint("run `connapp login` again"));
    }
    Ok(line)
}

pub fn login(g: &Global, a: LoginArgs) -> Result<(), CliError> {
    let (reg, _, decl) = ctx::declared(g)?;
    let mut c = load(&reg, &decl, a.app.as_deref())?;
    let display_name = c.app.display_name.clone();
    let show = |url: &str| eprintln!("Open this URL in a browser on any machine and allow access:\n\n  {url}\n");
    let open = |url: &str| {
        eprintln!("Opening the browser to authorize {display_name}. If it does not open, visit:\n\n  {url}\n");
        // Some browsers (and $BROWSER commands) block until closed: open
        // from another thread so the listener keeps serving.
        let url = url.to_string();
        std::thread::spawn(move || {
            if let Err(e) = webbrowser::open(&url) {
                eprintln!("(could not open a browser: {e}; open the URL above by hand)");
            }
        });
    };
    let consent = if a.no_browser {
        Consent::Paste {
            show: &show,
            paste: &read_paste,
        }
    } else {
        Consent::Loopback {
            open: &open,
            timeout: Duration::from_secs(a.timeout),
        }
    };
    let done = c.login(a.user_hint.as_deref(), consent, &Terminal::of(g))?;
    let name = &c.app.name;
    let grant = c.app.oauth.grant;
    let rec = &done.record;
    if a.json {
        return ctx::print_json(&LoginJson {
            app: name,
            grant_type: grant.as_str(),
            scopes: rec.scopes.as_deref(),
            expires_at: rec.expires_at,
            refresh_token: rec.refresh_token.is_some(),
            store: done.store.clone(),
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
            done.store
        );
        if !done.missing.is_empty() {
            eprintln!(
                "warning: the grant lacks declared scopes: {} (add them to the app at {}, then log in again)",
                done.missing.join(", "),
                c.display()
            );
        }
    }
    Ok(())
}

pub fn revoke(g: &Global, a: RevokeArgs) -> Result<(), CliError> {
    let (reg, _, decl) = ctx::declared(g)?;
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
    c.revoke(a.forget, &Terminal::of(g))?;
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
    let (reg, _, decl) = ctx::declared(g)?;
    let (store, apps) = tokens::status(&decl, &shared(&reg, &decl)?)?;
    let out: Vec<StatusApp> = apps
        .into_iter()
        .map(|s| StatusApp {
            app: s.app,
            platform: s.platform,
            grant_type: s.grant_type,
            store: store.store.clone(),
            store_capabilities: store.capabilities.into(),
            logged_in: s.logged_in,
            token_age_secs: s.token_age_secs,
            expires_in_secs: s.expires_in_secs,
            refresh_token: s.refresh_token,
            declared_scopes: s.declared_scopes,
            granted_scopes: s.granted_scopes,
            missing_scopes: s.missing_scopes,
            extra_scopes: s.extra_scopes,
            error: s.error,
        })
        .collect();
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
