//! `connapp login | token | refresh | revoke | status`: the token service
//! (`connapp_engine::tokens`) for a terminal: arguments in, words and JSON out.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use connapp_core::{Declaration, GrantKind};
use connapp_engine::batch::Outcome;
use connapp_engine::tokens::{self, AppCtx, Consent, Event, Health, Observer, Shared, Silent, now, source_name};
use connapp_host::Registry;
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::cli::{Global, LoginArgs, RefreshArgs, RevokeArgs, StatusArgs, TokenArgs};
use crate::ctx;
use crate::error::{CliError, Exit};
use crate::render;

/// Prints the engine's events: notices and warnings on stderr (only
/// warnings with `--quiet`), the work's own output (`Done`) on stdout unless
/// quiet or the answer is JSON. Steps are a spinner on stderr when it is a
/// terminal (cleared when the work ends) and a log line at `-v` otherwise.
pub(crate) struct Terminal {
    pub quiet: bool,
    pub json: bool,
    spinner: std::sync::Mutex<Option<indicatif::ProgressBar>>,
}

impl Terminal {
    /// For a command without `--json` output of its own.
    pub(crate) fn of(g: &Global) -> Terminal {
        Terminal::new(g.quiet, false)
    }

    pub(crate) fn new(quiet: bool, json: bool) -> Terminal {
        Terminal {
            quiet,
            json,
            spinner: std::sync::Mutex::new(None),
        }
    }

    /// Runs `f` with the spinner's line cleared, so printed lines never
    /// interleave with it.
    fn printing(&self, f: impl FnOnce()) {
        match self.spinner.lock().ok().as_deref().and_then(Option::as_ref) {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    fn step(&self, app: &str, what: &str) {
        tracing::info!("{app}: {what}");
        // A spinner redraws its line with escape sequences: only on a terminal
        // that may have them (not with NO_COLOR or --color never).
        let stderr = std::io::stderr();
        if self.quiet || !stderr.is_terminal() || anstream::AutoStream::choice(&stderr) == anstream::ColorChoice::Never
        {
            return;
        }
        let Ok(mut slot) = self.spinner.lock() else { return };
        let bar = slot.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed:.dim}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        bar.reset_elapsed();
        bar.set_message(format!("{app}: {what}"));
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.spinner.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Terminal {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::Warning(w) => self.printing(|| eprintln!("warning: {w}")),
            _ if self.quiet => {}
            Event::Step { app, what } => self.step(app, what),
            Event::WaitingForRefresh { app } => {
                self.printing(|| eprintln!("waiting for another connapp process that is refreshing {app}..."))
            }
            Event::Notice(n) => self.printing(|| eprintln!("note: {n}")),
            Event::Done(_) if self.json => {}
            Event::Done(d) => self.printing(|| {
                let mut out = render::stdout().lock();
                for line in render::wrap_hanging(d, render::WIDTH) {
                    let _ = writeln!(out, "{line}");
                }
            }),
        }
    }
}

/// The declaration's store, HTTP client and runtime, shared by its apps
/// (opened by this process's engine).
pub(crate) fn shared(decl: &Declaration) -> Result<Shared<'static>, CliError> {
    ctx::engine()?.open(decl).map_err(|e| ctx::store_error(e, decl))
}

/// The store, HTTP client and runtime of `app`: its fleet row's store when
/// the row has one (`[fleet.store]`), else the declaration's.
pub(crate) fn shared_of(decl: &Declaration, app: &str) -> Result<Shared<'static>, CliError> {
    ctx::engine()?
        .open_store(&decl.store_of(app))
        .map_err(|e| ctx::store_error(e, decl))
}

/// The stores a command's apps live in — the declaration's, and each fleet
/// row's own (`[fleet.store]`) —, each opened when an app first needs it,
/// from any thread.
pub(crate) struct Stores {
    group_of: std::collections::HashMap<String, usize>,
    groups: Vec<(connapp_core::StoreDecl, std::sync::OnceLock<Shared<'static>>)>,
}

impl Stores {
    pub(crate) fn new(decl: &Declaration) -> Stores {
        let mut group_of = std::collections::HashMap::new();
        let mut groups = Vec::new();
        for (i, (store, apps)) in decl.store_groups().into_iter().enumerate() {
            for a in apps {
                group_of.insert(a.to_string(), i);
            }
            groups.push((store, std::sync::OnceLock::new()));
        }
        Stores { group_of, groups }
    }

    /// The store of `app` (opened now if no app of its store opened it yet).
    pub(crate) fn of(&self, app: &str) -> Result<&Shared<'static>, connapp_engine::Error> {
        let Some((store, cell)) = self.group_of.get(app).and_then(|g| self.groups.get(*g)) else {
            return Err(connapp_engine::Error::invalid(format!(
                "there is no app {app:?} in the declaration"
            )));
        };
        if let Some(s) = cell.get() {
            return Ok(s);
        }
        let opened = ctx::engine()
            .map_err(|e| connapp_engine::Error::failure(e.message))?
            .open_store(store)?;
        Ok(cell.get_or_init(|| opened))
    }
}

/// The app `name` (or the only one) with a new shared store, client and runtime.
pub(crate) fn load<'r>(reg: &'r Registry, decl: &Declaration, name: Option<&str>) -> Result<AppCtx<'r>, CliError> {
    // The app is checked first: a wrong name fails before the store is opened.
    let app = ctx::app(decl, name)?;
    Ok(AppCtx::load(reg, decl, name, &shared_of(decl, &app.name)?)?)
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

/// One app's token in `token --select --json`.
#[derive(Serialize)]
struct TokenOf {
    app: String,
    access_token: Option<String>,
    expires_at: Option<u64>,
    error: Option<String>,
}

/// `token --select`: a token for each selected app, on each app's store,
/// `--jobs` at a time; an app without one is its own failure.
fn tokens_of(g: &Global, a: &TokenArgs) -> Result<(), CliError> {
    let (reg, path, decl) = ctx::declared(g)?;
    // Tokens are wanted now, every time: an interrupted run is never resumed.
    let b = crate::cli::BatchArgs {
        jobs: a.jobs,
        select: a.select.clone(),
        fresh: true,
        jsonl: false,
    };
    let names: Vec<String> = crate::batch::select(&decl, &b)?
        .into_iter()
        .map(|x| x.name.clone())
        .collect();
    let apps: Vec<&str> = names.iter().map(String::as_str).collect();
    let stores = Stores::new(&decl);
    let got = std::sync::Mutex::new(std::collections::HashMap::new());
    // Nothing but the tokens on stdout: the run is shown as with --json.
    let (report, record) = crate::batch::run(g, &decl, &path, "token", &b, true, &apps, |name| {
        let mut c = AppCtx::load(reg, &decl, Some(name), stores.of(name)?)?;
        if let Some(m) = a.margin {
            c.set_margin(m);
        }
        let (rec, _) = c.token(&Silent)?;
        got.lock().unwrap_or_else(|p| p.into_inner()).insert(
            name.to_string(),
            (rec.access_token.expose_secret().to_string(), rec.expires_at),
        );
        Ok("a token".to_string())
    })?;
    let mut got = got.into_inner().unwrap_or_else(|p| p.into_inner());
    let error_of = |r: &connapp_engine::batch::AppResult| match &r.outcome {
        connapp_engine::batch::Outcome::Failed { message, .. } => Some(message.clone()),
        connapp_engine::batch::Outcome::Skipped { reason } => Some(reason.clone()),
        connapp_engine::batch::Outcome::Ok { .. } => None,
    };
    if a.json {
        let apps: Vec<TokenOf> = report
            .results
            .iter()
            .map(|r| {
                let t = got.remove(&r.app);
                TokenOf {
                    app: r.app.clone(),
                    expires_at: t.as_ref().map(|t| t.1),
                    access_token: t.map(|t| t.0),
                    error: error_of(r),
                }
            })
            .collect();
        ctx::print_json("token", &serde_json::json!({ "apps": apps }))?;
    } else {
        let mut out = std::io::stdout().lock();
        for r in &report.results {
            match got.remove(&r.app) {
                Some((token, _)) => writeln!(out, "{}\t{token}", r.app)?,
                None => eprintln!("{}: {}", r.app, error_of(r).unwrap_or_default()),
            }
        }
    }
    crate::batch::conclude(g, true, false, &report, "with a token", &record)
}

pub fn token(g: &Global, a: TokenArgs) -> Result<(), CliError> {
    if !a.select.is_empty() {
        return tokens_of(g, &a);
    }
    // A running agent for this declaration answers from memory; without
    // one (or locked) connapp works as it always has.
    if let Some(t) = crate::cmd_agent::token_via_agent(g, a.app.as_deref(), a.margin)? {
        if a.json {
            return ctx::print_json(
                "token",
                &TokenJson {
                    app: &t.app,
                    access_token: &t.access_token,
                    token_type: "bearer",
                    expires_at: t.expires_at,
                    expires_in: t.expires_at.saturating_sub(now()),
                    scopes: t.scopes.as_deref(),
                    api_url: t.api_url.as_deref(),
                    source: "agent",
                },
            );
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", t.access_token)?;
        return Ok(());
    }
    let (reg, _, decl) = ctx::declared(g)?;
    let mut c = load(reg, &decl, a.app.as_deref())?;
    if let Some(m) = a.margin {
        c.set_margin(m);
    }
    let (rec, src) = c.token(&Terminal::of(g))?;
    let mut out = std::io::stdout().lock();
    if a.json {
        drop(out);
        return ctx::print_json(
            "token",
            &TokenJson {
                app: &c.app.name,
                access_token: rec.access_token.expose_secret(),
                token_type: "bearer",
                expires_at: rec.expires_at,
                expires_in: rec.expires_at.saturating_sub(now()),
                scopes: rec.scopes.as_deref(),
                api_url: rec.api_url.as_deref(),
                source: source_name(src),
            },
        );
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
    let (reg, path, decl) = ctx::declared(g)?;
    let all = a.all || !a.batch.select.is_empty();
    let names: Vec<String> = if all {
        crate::batch::select(&decl, &a.batch)?
            .into_iter()
            .filter(|x| x.oauth.grant == GrantKind::AuthorizationCode)
            .map(|x| x.name.clone())
            .collect()
    } else {
        vec![ctx::app(&decl, a.app.as_deref())?.name.clone()]
    };
    if !all {
        // One app: its own events (the spinner, the lease) and its own error.
        let name = &names[0];
        let r = load(reg, &decl, Some(name)).and_then(|c| Ok(c.renew(&Terminal::of(g))?));
        let (ok, expires_at, error) = match &r {
            Ok((rec, _)) => (true, Some(rec.expires_at), None),
            Err(e) => (false, None, Some(e.message.clone())),
        };
        if a.json {
            let one = RefreshJson {
                app: name.clone(),
                ok,
                expires_at,
                error,
            };
            ctx::print_json("refresh", &serde_json::json!({ "apps": [one] }))?;
        } else if let (Ok((rec, _)), false) = (&r, g.quiet) {
            println!(
                "{name}: refreshed, expires in {} min",
                rec.expires_at.saturating_sub(now()) / 60
            );
        }
        return r.map(|_| ());
    }
    // Every app: one store and runtime, `--jobs` at once, each app's failure its own.
    let stores = Stores::new(&decl);
    let expiries = std::sync::Mutex::new(std::collections::HashMap::new());
    let apps: Vec<&str> = names.iter().map(String::as_str).collect();
    let (report, record) = crate::batch::run(g, &decl, &path, "refresh", &a.batch, a.json, &apps, |name| {
        let app = AppCtx::load(reg, &decl, Some(name), stores.of(name)?)?;
        let (rec, _) = app.renew(&Silent)?;
        expiries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), rec.expires_at);
        Ok(format!(
            "refreshed, expires in {} min",
            rec.expires_at.saturating_sub(now()) / 60
        ))
    })?;
    let expiries = expiries.into_inner().unwrap_or_else(|p| p.into_inner());
    if a.json {
        let results: Vec<RefreshJson> = report
            .results
            .iter()
            .map(|r| RefreshJson {
                app: r.app.clone(),
                ok: r.outcome.is_ok(),
                expires_at: expiries.get(&r.app).copied(),
                error: match &r.outcome {
                    Outcome::Ok { .. } => None,
                    Outcome::Failed { message, .. } => Some(message.clone()),
                    Outcome::Skipped { reason } => Some(reason.clone()),
                },
            })
            .collect();
        ctx::print_json("refresh", &serde_json::json!({ "apps": results }))?;
    }
    crate::batch::conclude(g, a.json, a.batch.jsonl, &report, "refreshed", &record)
}

#[derive(Serialize)]
struct LoginJson<'a> {
    app: &'a str,
    grant_type: &'static str,
    /// What the provider said it granted; `null`: its answer did not say.
    scopes: Option<&'a [String]>,
    expires_at: u64,
    refresh_token: bool,
    /// Whose grant it is, as the provider named the user; `null`: not a user's grant, or it did not say.
    user: Option<&'a str>,
    store: ctx::StoreJson,
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
    let mut c = load(reg, &decl, a.app.as_deref())?;
    let display_name = c.app.display_name.clone();
    let show = |url: &str| eprintln!("Open this URL in a browser on any machine and allow access:\n\n  {url}\n");
    let timeout = a.timeout;
    let open = |url: &str| {
        eprintln!("Opening the browser to authorize {display_name}. If it does not open, visit:\n\n  {url}\n");
        eprintln!(
            "Waiting up to {timeout} s for the consent (Ctrl-C stops); against `connapp sandbox`, `connapp sandbox consent URL --as USER` consents without a browser."
        );
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
        return ctx::print_json(
            "login",
            &LoginJson {
                app: name,
                grant_type: grant.as_str(),
                scopes: rec.scopes.as_deref(),
                expires_at: rec.expires_at,
                refresh_token: rec.refresh_token.is_some(),
                user: rec.user.as_deref(),
                store: ctx::StoreJson::of(&decl.store.kind, c.shared.store_plugin, &c.shared.store)?,
            },
        );
    }
    if !g.quiet {
        println!(
            "Logged in: {name} ({}){}, {}, expires in {} min; stored in {}",
            grant.as_str(),
            match &rec.user {
                Some(u) => format!(" as {u} at {}", c.display()),
                None => String::new(),
            },
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
    // Destructive: with several apps the app is named, never picked.
    if a.app.is_none() && decl.apps.len() > 1 {
        let names: Vec<&str> = decl.apps.iter().map(|x| x.name.as_str()).collect();
        return Err(CliError::with_code(
            Exit::Usage,
            format!(
                "the declaration has several apps ({}); name the one to revoke",
                names.join(", ")
            ),
        )
        .hint(format!("connapp revoke {} --yes", names[0])));
    }
    let c = load(reg, &decl, a.app.as_deref())?;
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
    if a.json {
        return ctx::print_json("revoke", &serde_json::json!({ "app": name, "revoked": true }));
    }
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
    /// `ok`, `renews-on-use`, `needs-login`, `lost`, `expired` or `unreadable`.
    health: Health,
    /// Whether the app can get a token without a person.
    usable: bool,
    logged_in: bool,
    token_age_secs: Option<u64>,
    expires_in_secs: Option<i64>,
    refresh_token: bool,
    granted_at: Option<u64>,
    /// When the provider refused the grant for good (`invalid_grant`); `null`: it has not.
    lost_at: Option<u64>,
    lost_reason: Option<String>,
    /// Whose grant it is, as the provider named the user at login; `null`: not a user's grant, or not known.
    user: Option<String>,
    declared_scopes: Vec<String>,
    /// What the provider said it granted; `null`: not logged in, or its answer did not say.
    granted_scopes: Option<Vec<String>>,
    missing_scopes: Vec<String>,
    extra_scopes: Vec<String>,
    error: Option<String>,
    /// What to run, when a person must act.
    fix: Option<String>,
    /// What the app's consumer (its target) holds of its own grant, read from
    /// the instance; `null`: no target, or `--offline`.
    consumer: Option<ConsumerJson>,
}

#[derive(Serialize)]
struct ConsumerJson {
    /// The consumer, e.g. `ServiceNow`.
    name: String,
    /// `ok` (held, and the consumer's newest calls with it succeeded), `unproven` (held, but its
    /// use proves nothing yet: see `detail`), `refused` (the provider refused its calls),
    /// `lacks-scopes`, `expired`, `none` (nobody consented) or `unknown` (not read: see `detail`).
    state: &'static str,
    /// Whether it can use its grant; `null` when connapp could not tell (unknown, unproven).
    usable: Option<bool>,
    /// When its refresh token expires (or expired).
    expires_at: Option<u64>,
    missing_scopes: Vec<String>,
    /// What its log shows (unproven, refused) or why connapp could not read it (unknown).
    detail: Option<String>,
    /// What a person does when it is not usable.
    fix: Option<String>,
    /// The same, for the table.
    #[serde(skip)]
    held: connapp_engine::manage::GrantHeld,
}

impl ConsumerJson {
    fn of(g: connapp_engine::manage::ConsumerGrant) -> Self {
        use connapp_engine::manage::GrantHeld;
        let (expires_at, missing_scopes, detail) = match &g.held {
            GrantHeld::Valid { until } => (Some(*until), Vec::new(), None),
            GrantHeld::Unproven { until, why } => (Some(*until), Vec::new(), Some(why.clone())),
            GrantHeld::Refused(why) => (None, Vec::new(), Some(why.clone())),
            GrantHeld::LacksScopes { until, missing } => (Some(*until), missing.clone(), None),
            GrantHeld::Expired { at } => (Some(*at), Vec::new(), None),
            GrantHeld::Nothing => (None, Vec::new(), None),
            GrantHeld::Unknown(why) => (None, Vec::new(), Some(why.clone())),
        };
        ConsumerJson {
            name: g.consumer,
            state: g.held.word(),
            usable: g.held.known().then(|| g.held.usable()),
            expires_at,
            missing_scopes,
            detail,
            fix: g.fix,
            held: g.held,
        }
    }

    /// The line under the app in `status`.
    fn line(&self) -> String {
        use connapp_engine::manage::GrantHeld;
        let when = self.expires_at.map(connapp_engine::verify::ymd).unwrap_or_default();
        let what = match &self.held {
            GrantHeld::Valid { .. } => format!("ok, in use; refresh token valid until {when}"),
            GrantHeld::Unproven { why, .. } => format!("held until {when}, not proven by use: {why}"),
            GrantHeld::Refused(why) => format!("REFUSED: {why}"),
            GrantHeld::LacksScopes { missing, .. } => format!("lacks {} (added after its consent)", missing.join(", ")),
            GrantHeld::Expired { .. } => format!("EXPIRED on {when}: it gets no data"),
            GrantHeld::Nothing => "none: nobody has consented in the instance yet".into(),
            GrantHeld::Unknown(why) => format!("not checked: {why}"),
        };
        match &self.fix {
            Some(f) if self.usable == Some(false) => format!("{}'s grant: {what} -> {f}", self.name),
            _ => format!("{}'s grant: {what}", self.name),
        }
    }
}

#[derive(Serialize)]
struct StatusJson {
    store: ctx::StoreJson,
    /// Every app can get a token without a person.
    usable: bool,
    apps: Vec<StatusApp>,
}

/// What a person runs to make the app usable again.
fn status_fix(health: Health, app: &str) -> Option<String> {
    match health {
        Health::Usable | Health::RenewsOnUse => None,
        Health::NeedsLogin | Health::Lost | Health::Expired => Some(format!("connapp login {app}")),
        Health::Unreadable => Some("fix the store (see the error), then connapp status".into()),
    }
}

/// `connapp status`: every app's grant as stored; exit 5 when an app needs a
/// person's consent (none yet, lost, expired), 1 when its state cannot be
/// read, as `gh auth status` fails when an account is not usable.
pub fn status(g: &Global, a: StatusArgs) -> Result<(), CliError> {
    let (reg, _, decl) = ctx::declared(g)?;
    let chosen = crate::batch::select_rows(&decl, &a.select)?;
    let wanted: std::collections::HashSet<&str> = chosen.iter().map(|x| x.name.as_str()).collect();
    // Each store the apps live in (a fleet's rows may have their own), in turn.
    let stores = Stores::new(&decl);
    let mut by_app = std::collections::HashMap::new();
    let mut store = None;
    let mut store_json = None;
    let by_name: std::collections::HashMap<&str, &connapp_core::App> =
        decl.apps.iter().map(|a| (a.name.as_str(), a)).collect();
    for (_, group) in decl.store_groups() {
        let group: Vec<&str> = group.into_iter().filter(|n| wanted.contains(n)).collect();
        let Some(first) = group.first() else { continue };
        let shared = stores.of(first)?;
        let apps: Vec<&connapp_core::App> = group.iter().filter_map(|n| by_name.get(n).copied()).collect();
        let (s, found) = tokens::status_of(&apps, &decl, shared)?;
        if store.is_none() {
            store_json = Some(ctx::StoreJson::of(
                &decl.store.kind,
                shared.store_plugin,
                &shared.store,
            )?);
            store = Some(s);
        }
        by_app.extend(found.into_iter().map(|s| (s.app.clone(), s)));
    }
    let Some(store) = store else {
        return Err(CliError::with_code(Exit::Invalid, "the declaration has no apps"));
    };
    let apps: Vec<tokens::AppStatus> = chosen.iter().filter_map(|a| by_app.remove(&a.name)).collect();
    let healths: Vec<Health> = apps.iter().map(|s| s.health).collect();
    // Each target's own grant, as its instance records it, `--jobs` instances at a time.
    let obs = Terminal::of(g);
    let read = |app: &connapp_core::App| -> Option<ConsumerJson> {
        let t = app.target.as_ref().filter(|_| !a.offline)?;
        obs.event(Event::Step {
            app: &app.name,
            what: &format!("reading {}'s own grant", t.display),
        });
        match stores
            .of(&app.name)
            .and_then(|shared| AppCtx::load(reg, &decl, Some(&app.name), shared))
        {
            Ok(c) => connapp_clients::verify::consumer_grant(reg, &c).map(ConsumerJson::of),
            Err(e) => Some(ConsumerJson::of(connapp_engine::manage::ConsumerGrant {
                consumer: t.display.clone(),
                held: connapp_engine::manage::GrantHeld::Unknown(e.message),
                fix: e.hint,
            })),
        }
    };
    let slots: Vec<std::sync::Mutex<Option<ConsumerJson>>> =
        chosen.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..usize::from(a.jobs).min(chosen.len()).max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(app) = chosen.get(i) else { break };
                    let found = read(app);
                    *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = found;
                }
            });
        }
    });
    let consumers: Vec<Option<ConsumerJson>> = slots
        .into_iter()
        .map(|s| s.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect();
    drop(obs);
    let consumer_usable: Vec<bool> = consumers
        .iter()
        .map(|c| c.as_ref().and_then(|c| c.usable) != Some(false))
        .collect();
    let out: Vec<StatusApp> = apps
        .into_iter()
        .zip(consumers)
        .zip(consumer_usable.iter().copied())
        .map(|((s, consumer), consumer_ok)| StatusApp {
            fix: status_fix(s.health, &s.app),
            health: s.health,
            usable: s.health.usable() && consumer_ok,
            consumer,
            granted_at: s.granted_at,
            lost_at: s.lost.as_ref().map(|(at, _)| *at),
            lost_reason: s.lost.map(|(_, r)| r),
            user: s.user,
            app: s.app,
            platform: s.platform,
            grant_type: s.grant_type,
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
    let verdict = status_verdict(&healths, consumer_usable.iter().all(|ok| *ok));
    if a.json {
        let Some(store) = store_json else {
            return Err(CliError::with_code(Exit::Invalid, "the declaration has no apps"));
        };
        let usable = out.iter().all(|s| s.usable);
        ctx::print_json(
            "status",
            &StatusJson {
                store,
                usable,
                apps: out,
            },
        )?;
    } else {
        print_status(&mut crate::render::stdout().lock(), &out, &store.store, g.quiet)?;
    }
    match verdict {
        None => Ok(()),
        Some(code) => Err(CliError::with_code(code, String::new())),
    }
}

/// The exit code of `status`: `None` when every app is usable (and every
/// consumer that could be read holds a usable grant).
fn status_verdict(healths: &[Health], consumers_usable: bool) -> Option<Exit> {
    if healths.contains(&Health::Unreadable) {
        Some(Exit::Failure)
    } else if healths.iter().any(|h| !h.usable()) || !consumers_usable {
        Some(Exit::Reauth)
    } else {
        None
    }
}

fn print_status(w: &mut impl Write, out: &[StatusApp], store: &str, quiet: bool) -> std::io::Result<()> {
    let width = out.iter().map(|s| s.app.len()).max().unwrap_or(3).clamp(3, 32);
    writeln!(
        w,
        "{:<width$} {:<19} {:<10} {:<13} SCOPES",
        "APP", "GRANT", "TOKEN", "EXPIRES"
    )?;
    for s in out {
        let token = match s.health {
            Health::Lost => "LOST",
            Health::Expired => "expired",
            Health::Unreadable => "unreadable",
            _ if s.logged_in => "yes",
            _ => "none",
        };
        let expires = match s.expires_in_secs {
            _ if s.health == Health::Lost => "-".into(),
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
        let token = match s.health {
            Health::Lost | Health::Expired | Health::Unreadable => render::paint(render::BAD, &format!("{token:<10}")),
            _ if !s.usable => render::paint(render::WARN, &format!("{token:<10}")),
            _ => format!("{token:<10}"),
        };
        writeln!(
            w,
            "{:<width$} {:<19} {token} {:<13} {}",
            s.app, s.grant_type, expires, scopes
        )?;
        let mut notes = Vec::new();
        if let Some(u) = &s.user
            && !quiet
        {
            notes.push(format!("granted by {u}"));
        }
        if !s.missing_scopes.is_empty() && !quiet {
            notes.push(format!(
                "missing: {} (consent again after adding them to the app)",
                s.missing_scopes.join(", ")
            ));
        }
        if let Some(e) = &s.error {
            notes.push(format!("error: {e}"));
        }
        match (&s.fix, s.lost_at, &s.lost_reason) {
            (Some(fix), Some(at), Some(reason)) => {
                notes.push(format!("lost {}: {reason}", tokens::ago(at, now())));
                notes.push(format!("-> {fix}"));
            }
            (Some(fix), _, _) => notes.push(format!("{} -> {fix}", s.health)),
            _ => {}
        }
        if let Some(c) = &s.consumer {
            notes.push(c.line());
        }
        for note in notes {
            for line in render::wrap(&note, 2, render::WIDTH) {
                writeln!(w, "{line}")?;
            }
        }
    }
    writeln!(w, "store: {store}")?;
    let usable = out.iter().filter(|s| s.usable).count();
    // Short: a consumer's fix (a consent link) is printed in full under its app.
    let fixes: Vec<String> = out
        .iter()
        .flat_map(|s| {
            let theirs = s
                .consumer
                .as_ref()
                .filter(|c| c.usable == Some(false))
                .map(|c| format!("{}'s grant for {} (see above)", c.name, s.app));
            s.fix.clone().into_iter().chain(theirs)
        })
        .collect();
    let unread = out
        .iter()
        .filter(|s| s.consumer.as_ref().is_some_and(|c| c.usable.is_none()))
        .count();
    if fixes.is_empty() && unread > 0 {
        // What was not read never counts toward "all usable".
        writeln!(
            w,
            "{}",
            render::paint(
                render::WARN,
                &format!(
                    "{} app(s) usable by connapp; the consumer's own grant is not proven for {unread}.",
                    out.len()
                )
            )
        )?;
    } else if fixes.is_empty() {
        writeln!(
            w,
            "{}",
            render::paint(render::GOOD, &format!("{} app(s), all usable.", out.len()))
        )?;
    } else {
        let line = format!(
            "{} app(s): {usable} usable, {} not: {}",
            out.len(),
            out.len() - usable,
            fixes.join("; ")
        );
        writeln!(w, "{}", render::paint(render::BAD, &line))?;
    }
    Ok(())
}
