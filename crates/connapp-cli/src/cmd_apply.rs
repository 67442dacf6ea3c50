//! `connapp plan` and `connapp apply [--rollback]`: the provider app as code.
//!
//! apply = export the live manifest → merge the platform's desired settings
//! (settings connapp does not manage survive) → validate with the provider →
//! keep the live manifest for `--rollback` → write (a full replacement) →
//! export again and compare. Without an app id the app is created and its
//! Client ID / Client Secret go straight into the store.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use connapp_core::manifest::{self, Change};
use connapp_core::{App, Declaration, GrantKind, SecretKind};
use connapp_engine::secrets::Secrets;
use connapp_host::Registry;
use connapp_oauth::api::{Api, ApiError};
use connapp_plugin_api::Expected;
use connapp_plugin_api::zeroize::Zeroizing;
use connapp_zoom::Marketplace;
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::{ApplyArgs, Global, PlanArgs};
use crate::cmd_target::{self, Consumer, TargetPlan};
use connapp_engine::tokens::AppCtx;

use crate::cmd_token;
use crate::ctx;
use crate::error::{CliError, Exit};

/// One app's plan.
#[derive(Serialize)]
pub struct AppPlan {
    /// The declaration's app name.
    pub app: String,
    /// The provider's app id (none before creation).
    pub app_id: Option<String>,
    /// The management app whose token is used.
    pub managed_by: String,
    /// `create`, `update` or `none`.
    pub action: &'static str,
    /// Every setting that changes.
    pub changes: Vec<Change>,
    /// Scopes the app gains.
    pub scopes_added: Vec<String>,
    /// Scopes the app loses.
    pub scopes_removed: Vec<String>,
    /// The consumer end (ServiceNow), when the app has a target and the
    /// store holds the instance's credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servicenow: Option<TargetPlan>,
    #[serde(skip)]
    live: Value,
    #[serde(skip)]
    merged: Value,
}

impl AppPlan {
    /// The plan of an app connapp does not manage on Zoom (no `managed_by`).
    fn unmanaged(app: &App) -> AppPlan {
        AppPlan {
            app: app.name.clone(),
            app_id: app.app_id.clone(),
            managed_by: String::new(),
            action: "unmanaged",
            changes: Vec::new(),
            scopes_added: Vec::new(),
            scopes_removed: Vec::new(),
            servicenow: None,
            live: Value::Null,
            merged: Value::Null,
        }
    }

    /// Anything to do on either end.
    fn pending(&self) -> bool {
        !matches!(self.action, "none" | "unmanaged") || self.servicenow.as_ref().is_some_and(|t| t.pending)
    }
}

/// The apps `plan`/`apply` act on.
fn targets<'d>(decl: &'d Declaration, name: Option<&str>) -> Result<Vec<&'d App>, CliError> {
    if let Some(n) = name {
        let app = ctx::app(decl, Some(n))?;
        if app.managed_by.is_none() && app.target.is_none() {
            return Err(not_managed(app));
        }
        return Ok(vec![app]);
    }
    let apps: Vec<&App> = decl
        .apps
        .iter()
        .filter(|a| a.managed_by.is_some() || a.target.is_some())
        .collect();
    if apps.is_empty() {
        let first = decl.apps.first().map_or("APP", |a| a.name.as_str());
        return Err(CliError::with_code(
            Exit::Invalid,
            "no app in the declaration has `managed_by` or a target, so there is nothing to plan",
        )
        .hint(format!(
            "declare a management app (Server-to-Server OAuth with `marketplace:` scopes) and set `managed_by` in [apps.{first}]; or follow `connapp guide` to set the app up by hand"
        )));
    }
    Ok(apps)
}

fn not_managed(app: &App) -> CliError {
    CliError::with_code(
        Exit::Invalid,
        format!(
            "{} has no `managed_by`, so connapp cannot reach its Marketplace settings{}",
            app.name,
            if app.target.is_some() { ", and no ServiceNow credentials are stored" } else { "" }
        ),
    )
    .hint(format!(
        "set `managed_by = \"NAME\"` in [apps.{0}] to a Server-to-Server app with `marketplace:` scopes, or follow `connapp guide {0}`; for ServiceNow, `connapp secrets set instance-user --app {0}` and instance-password",
        app.name
    ))
}

/// Turns an API failure into what the user should know and do.
pub(crate) fn api_error(what: &str, mgr: &str, e: ApiError) -> CliError {
    match &e {
        ApiError::Edge(_) => CliError::with_code(Exit::Unreachable, format!("{what}: {e}"))
            .hint("check the network and the API base in the declaration; nothing was changed"),
        ApiError::Status { code: Some(4711), .. } => CliError::failure(format!("{what}: {e}")).hint(format!(
            "the token of {mgr} lacks a Marketplace scope: add it to that app in Zoom, then run `connapp refresh {mgr}` (server-to-server apps get the new scopes on the next token)"
        )),
        ApiError::Status { status: 401, .. } => CliError::failure(format!("{what}: {e}"))
            .hint(format!("the token of {mgr} was refused: run `connapp login {mgr}`")),
        ApiError::Status { code: Some(1500), .. } | ApiError::Status { status: 404, .. } => {
            CliError::failure(format!("{what}: {e}")).hint(
                "check app_id (the id in the app's Marketplace URL); Zoom exports manifests of draft General apps only",
            )
        }
        ApiError::Status { status: 429, rate, .. } => {
            CliError::failure(format!("{what}: {e}")).hint(match &rate.retry_after {
                Some(t) => format!("Zoom rate-limited the Marketplace API; try again after {t}"),
                None => "Zoom rate-limited the Marketplace API; try again in a minute".into(),
            })
        }
        _ => CliError::failure(format!("{what}: {e}")),
    }
}

/// The management connection of one app.
struct Manager<'r> {
    ctx: AppCtx<'r>,
    api: std::cell::RefCell<Api>,
}

impl Manager<'_> {
    /// One Marketplace call. A server-to-server token Zoom refuses (124:
    /// expired or superseded, e.g. Zoom's clock runs ahead of ours) is minted
    /// again and the call repeated once.
    // ApiError carries Zoom's whole answer (code, message, rate limits, tracking
    // id) for the diagnoses; one call per command, so its size does not matter.
    #[allow(clippy::result_large_err)]
    fn call<T, F, Fut>(&self, f: F) -> Result<T, ApiError>
    where
        F: Fn(Api) -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        let current = self.api.borrow().clone();
        match self.ctx.shared.rt.block_on(f(current)) {
            Err(e) if e.code() == Some(124) && self.ctx.app.oauth.grant != GrantKind::AuthorizationCode => {
                let Ok(rec) = self.ctx.renew(&connapp_engine::tokens::Silent).map(|(r, _)| r) else {
                    return Err(e);
                };
                let root = self.ctx.api_root(&rec);
                let Ok(api) = Api::new(self.ctx.shared.http.clone(), &root, rec.access_token.clone()) else {
                    return Err(e);
                };
                *self.api.borrow_mut() = api.clone();
                self.ctx.shared.rt.block_on(f(api))
            }
            r => r,
        }
    }
}

/// The management app of `base`'s app, sharing its store and runtime.
fn manager<'r>(reg: &'r Registry, decl: &Declaration, base: &AppCtx<'r>, g: &Global) -> Result<Manager<'r>, CliError> {
    let app = &base.app;
    let Some(name) = app.managed_by.as_deref() else {
        return Err(not_managed(app));
    };
    let c = base.sibling(reg, decl, name)?;
    let rec = cmd_token::api_token(&c, g)?;
    let root = c.api_root(&rec);
    let api = Api::new(c.shared.http.clone(), &root, rec.access_token.clone())
        .map_err(|e| CliError::with_code(Exit::Invalid, format!("{name}: {e}")))?;
    Ok(Manager {
        ctx: c,
        api: std::cell::RefCell::new(api),
    })
}

fn desired(reg: &Registry, app: &App) -> Result<Value, CliError> {
    let text = reg.provider_manifest(&app.platform, &connapp_engine::platform::app_view(reg, app).to_string())?;
    let Some(text) = text else {
        return Err(CliError::with_code(
            Exit::Invalid,
            format!(
                "the platform {:?} has no app manifest for {} (server-to-server apps have none)",
                app.platform, app.name
            ),
        ));
    };
    serde_json::from_str(&text).map_err(|e| {
        CliError::with_code(
            Exit::Plugin,
            format!("the platform plugin sent a manifest that is not JSON: {e}"),
        )
    })
}

/// The provider's app id: the declaration's, else the one `apply` stored.
fn app_id(m: &Manager<'_>, app: &App) -> Result<Option<String>, CliError> {
    if let Some(id) = &app.app_id {
        return Ok(Some(id.clone()));
    }
    let rec = m.ctx.secret_of(&app.name, SecretKind::AppId)?;
    Ok(rec.map(|v| String::from_utf8_lossy(&v).into_owned()))
}

fn scope_delta(before: &Value, after: &Value) -> (Vec<String>, Vec<String>) {
    let (b, a) = (manifest::zoom_scopes(before), manifest::zoom_scopes(after));
    (
        a.iter().filter(|s| !b.contains(s)).cloned().collect(),
        b.iter().filter(|s| !a.contains(s)).cloned().collect(),
    )
}

fn plan_app(reg: &Registry, m: &Manager<'_>, app: &App) -> Result<AppPlan, CliError> {
    let want = desired(reg, app)?;
    let id = app_id(m, app)?;
    let mgr = app.managed_by.clone().unwrap_or_default();
    let live = match &id {
        Some(id) => m
            .call(|api| async move { Marketplace::new(&api).export_manifest(id).await })
            .map_err(|e| api_error(&format!("{}: export the manifest of Zoom app {id}", app.name), &mgr, e))?,
        None => json!({}),
    };
    let merged = manifest::merge(&live, &want);
    let changes = manifest::diff(&live, &merged);
    let (scopes_added, scopes_removed) = scope_delta(&live, &merged);
    let action = match (&id, changes.is_empty()) {
        (None, _) => "create",
        (Some(_), true) => "none",
        (Some(_), false) => "update",
    };
    Ok(AppPlan {
        app: app.name.clone(),
        app_id: id,
        managed_by: mgr,
        action,
        changes,
        scopes_added,
        scopes_removed,
        servicenow: None,
        live,
        merged,
    })
}

fn print_plan(out: &mut impl Write, p: &AppPlan, display: &str) -> std::io::Result<()> {
    match p.action {
        "create" => writeln!(
            out,
            "{}: create the Zoom app {display:?} (managed by {}):",
            p.app, p.managed_by
        )?,
        "none" => {
            return writeln!(
                out,
                "{}: Zoom app {} matches the declaration",
                p.app,
                p.app_id.as_deref().unwrap_or("")
            );
        }
        _ => writeln!(
            out,
            "{}: Zoom app {} (managed by {}):",
            p.app,
            p.app_id.as_deref().unwrap_or(""),
            p.managed_by
        )?,
    }
    for c in &p.changes {
        writeln!(out, "  {}", c.line())?;
    }
    Ok(())
}

fn summary(plans: &[&AppPlan]) -> String {
    let n = |a: &str| plans.iter().filter(|p| p.action == a).count();
    let mut s = format!(
        "Plan: {} Zoom app(s) to create, {} to update, {} unchanged.",
        n("create"),
        n("update"),
        n("none")
    );
    let sn: Vec<&TargetPlan> = plans.iter().filter_map(|p| p.servicenow.as_ref()).collect();
    if !sn.is_empty() {
        let count = |act: &[&str]| {
            sn.iter()
                .flat_map(|t| &t.items)
                .filter(|i| act.contains(&i.action))
                .count()
        };
        s.push_str(&format!(
            " ServiceNow: {} record(s) to create, {} to update, {} to delete.",
            count(&["create", "created-by-instance"]),
            count(&["update"]),
            count(&["delete"])
        ));
    }
    s
}

/// The live manifest of a managed app and how it differs from the declaration
/// (for `verify`).
pub(crate) fn drift<'r>(
    reg: &'r Registry,
    decl: &Declaration,
    c: &AppCtx<'r>,
    g: &Global,
) -> Result<(Value, Vec<Change>), CliError> {
    let m = manager(reg, decl, c, g)?;
    let p = plan_app(reg, &m, &c.app)?;
    if p.app_id.is_none() {
        return Err(CliError::failure("the Zoom app does not exist yet").hint("run `connapp apply` to create it"));
    }
    Ok((p.live, p.changes))
}

/// One app's work: the Zoom end (if managed) and the ServiceNow end (if targeted
/// and the instance credentials are stored).
struct Work<'r, 'd> {
    app: &'d App,
    zoom: Option<Manager<'r>>,
    sn: Option<(AppCtx<'r>, Consumer, HashMap<String, String>)>,
    plan: AppPlan,
}

/// `None` when neither end can be reached (no `managed_by`, no instance credentials).
fn prepare<'r, 'd>(
    reg: &'r Registry,
    decl: &Declaration,
    app: &'d App,
    c: AppCtx<'r>,
    g: &Global,
) -> Result<Option<Work<'r, 'd>>, CliError> {
    let (zoom, mut plan) = match app.managed_by {
        Some(_) => {
            let m = manager(reg, decl, &c, g)?;
            let p = plan_app(reg, &m, app)?;
            (Some(m), p)
        }
        None => (None, AppPlan::unmanaged(app)),
    };
    let mut sn = None;
    if app.target.is_some() {
        if let Some(cons) = cmd_target::consumer(reg, &c)? {
            let (tp, ids) = cmd_target::run(&c, &cons, cmd_target::Mode::Plan)?;
            plan.servicenow = Some(tp);
            sn = Some((c, cons, ids));
        } else if !g.quiet {
            eprintln!(
                "{}: ServiceNow skipped: no instance credentials are stored ({})",
                app.name,
                cmd_target::credentials_hint(app)
            );
        }
    }
    if zoom.is_none() && sn.is_none() {
        return Ok(None);
    }
    Ok(Some(Work { app, zoom, sn, plan }))
}

/// Prepares every app; an app named on the command line must be reachable.
fn prepare_all<'r, 'd>(
    reg: &'r Registry,
    decl: &'d Declaration,
    name: Option<&str>,
    g: &Global,
) -> Result<Vec<Work<'r, 'd>>, CliError> {
    let mut work = Vec::new();
    let apps = targets(decl, name)?;
    // One store open, HTTP client and runtime for every app of the command.
    let mut base: Option<AppCtx<'r>> = None;
    for app in &apps {
        let c = match &base {
            Some(b) => b.sibling(reg, decl, &app.name)?,
            None => {
                let c = cmd_token::load(reg, decl, Some(&app.name))?;
                base = Some(c.sibling(reg, decl, &app.name)?);
                c
            }
        };
        match prepare(reg, decl, app, c, g)? {
            Some(w) => work.push(w),
            None if name.is_some() => return Err(not_managed(app)),
            None => {}
        }
    }
    if work.is_empty() {
        return Err(apps.first().map_or_else(not_managed_any, |a| not_managed(a)));
    }
    Ok(work)
}

fn not_managed_any() -> CliError {
    CliError::with_code(Exit::Invalid, "there is nothing connapp can plan")
}

fn print_work(out: &mut impl Write, w: &Work<'_, '_>) -> std::io::Result<()> {
    if w.plan.action != "unmanaged" {
        print_plan(out, &w.plan, &w.app.display_name)?;
    }
    if let Some(t) = &w.plan.servicenow {
        cmd_target::print(out, w.app, t)?;
    }
    Ok(())
}

pub fn plan(g: &Global, a: PlanArgs) -> Result<(), CliError> {
    let reg = ctx::registry();
    ctx::warn_failures(&reg, g);
    let (_, decl) = ctx::load_declaration(g, &reg)?;
    let work = prepare_all(&reg, &decl, a.app.as_deref(), g)?;
    let pending = work.iter().any(|w| w.plan.pending());
    if a.json {
        let plans: Vec<&AppPlan> = work.iter().map(|w| &w.plan).collect();
        ctx::print_json(&json!({"pending": pending, "apps": plans}))?;
    } else if !g.quiet {
        let mut out = std::io::stdout().lock();
        for w in &work {
            print_work(&mut out, w)?;
        }
        let plans: Vec<&AppPlan> = work.iter().map(|w| &w.plan).collect();
        writeln!(out, "{}", summary(&plans))?;
        if pending {
            writeln!(out, "Run `connapp apply` to make these changes.")?;
        }
    }
    if pending {
        return Err(CliError::with_code(Exit::Changes, String::new()));
    }
    Ok(())
}

/// Where the manifests from before each apply are kept, newest last.
fn history_dir(app: &str) -> Result<PathBuf, CliError> {
    Ok(ctx::data_dir()?.join("manifests").join(app))
}

fn save_history(app: &str, app_id: &str, live: &Value) -> Result<PathBuf, CliError> {
    let dir = history_dir(app)?;
    std::fs::create_dir_all(&dir).map_err(|e| CliError::failure(format!("cannot create {}: {e}", dir.display())))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = dir.join(format!("{nanos:024}.json"));
    let doc = json!({"app_id": app_id, "saved_at": ctx::now(), "manifest": live});
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    ctx::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

fn newest_history(app: &str) -> Result<Option<PathBuf>, CliError> {
    let dir = history_dir(app)?;
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files.pop())
}

fn validate(m: &Manager<'_>, app: &App, manifest: &Value, id: Option<&str>) -> Result<(), CliError> {
    let mgr = app.managed_by.clone().unwrap_or_default();
    let problems = m
        .call(|api| async move { Marketplace::new(&api).validate_manifest(manifest, id).await })
        .map_err(|e| api_error(&format!("{}: validate the manifest", app.name), &mgr, e))?;
    if problems.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = problems.iter().map(|(s, msg)| format!("  {s}: {msg}")).collect();
    Err(CliError::with_code(
        Exit::Invalid,
        format!(
            "Zoom refused the manifest of {} (nothing was changed):\n{}",
            app.name,
            lines.join("\n")
        ),
    )
    .hint("fix the declaration (`connapp check`), then run `connapp plan` again"))
}

/// Exports again and checks that Zoom kept everything that was written.
fn confirm_written(m: &Manager<'_>, app: &App, id: &str, written: &Value) -> Result<(), CliError> {
    let mgr = app.managed_by.clone().unwrap_or_default();
    let after = m
        .call(|api| async move { Marketplace::new(&api).export_manifest(id).await })
        .map_err(|e| api_error(&format!("{}: export the manifest again", app.name), &mgr, e))?;
    // Settings Zoom adds on its own (defaults) are fine; dropped or changed ones are not.
    let lost: Vec<Change> = manifest::diff(written, &after)
        .into_iter()
        .filter(|c| c.kind != manifest::ChangeKind::Add)
        .collect();
    if lost.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = lost.iter().map(|c| format!("  {}", c.line())).collect();
    Err(CliError::failure(format!(
        "{}: Zoom accepted the manifest but exports it differently (written -> exported):\n{}",
        app.name,
        lines.join("\n")
    ))
    .hint("Zoom drops settings it does not know; check these in the Marketplace, then run `connapp plan`"))
}

fn create(m: &Manager<'_>, app: &App, merged: &Value, g: &Global) -> Result<String, CliError> {
    let mgr = app.managed_by.clone().unwrap_or_default();
    let store = &m.ctx.shared.store;
    let plugin = m.ctx.shared.store_plugin;
    for kind in [SecretKind::ClientId, SecretKind::ClientSecret] {
        if m.ctx.secret_of(&app.name, kind)?.is_some() {
            return Err(CliError::failure(format!(
                "{}: a {} is stored but no app id: this app seems to exist already",
                app.name,
                kind.label()
            ))
            .hint(format!(
                "set `app_id = \"...\"` in [apps.{}] (the id in the app's Marketplace URL); or remove the stored secrets (`connapp secrets rm`) to create a new app",
                app.name
            )));
        }
    }
    validate(m, app, merged, None)?;
    let mut answer = m
        .call(|api| async move { Marketplace::new(&api).create_app(&app.display_name, merged).await })
        .map_err(|e| api_error(&format!("{}: create the Zoom app", app.name), &mgr, e))?;
    let id = answer
        .get("app_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| CliError::failure(format!("{}: Zoom created the app but sent no app_id", app.name)))?;
    Secrets::new(store)
        .put(&app.name, SecretKind::AppId, id.as_bytes(), Expected::Any)
        .map_err(|e| connapp_host::plugin_error(plugin, e))?;
    // Zoom answers with `credentials` or `development_credentials`.
    let creds = ["credentials", "development_credentials"]
        .into_iter()
        .find_map(|k| answer.get_mut(k).map(Value::take).filter(Value::is_object));
    let mut stored = Vec::new();
    if let Some(mut c) = creds {
        for (field, kind) in [
            ("client_id", SecretKind::ClientId),
            ("client_secret", SecretKind::ClientSecret),
        ] {
            if let Some(Value::String(v)) = c.get_mut(field).map(Value::take) {
                let v = Zeroizing::new(v);
                Secrets::new(store)
                    .put(&app.name, kind, v.as_bytes(), Expected::Absent)
                    .map_err(|e| connapp_host::plugin_error(plugin, e))?;
                stored.push(kind.label());
            }
        }
    }
    drop(answer);
    if !g.quiet {
        let location = store.describe().map(|d| d.location).unwrap_or_default();
        if stored.is_empty() {
            eprintln!(
                "Zoom sent no credentials with the new app: copy the Client ID and Client Secret from its App Credentials page and run `connapp secrets set client-id --app {0}` and `connapp secrets set client-secret --app {0}`",
                app.name
            );
        } else {
            eprintln!(
                "Created Zoom app {id}; its {} went straight into {location} (never printed).",
                stored.join(" and ")
            );
        }
        eprintln!(
            "Next: copy the Secret Token from the app's Features > Access page in the Marketplace and run `connapp secrets set secret-token --app {}`",
            app.name
        );
    }
    Ok(id)
}

fn update(m: &Manager<'_>, p: &AppPlan, app: &App, id: &str) -> Result<(), CliError> {
    let mgr = app.managed_by.clone().unwrap_or_default();
    validate(m, app, &p.merged, Some(id))?;
    save_history(&app.name, id, &p.live)?;
    m.call(|api| async move { Marketplace::new(&api).replace_manifest(id, &p.merged).await })
        .map_err(|e| api_error(&format!("{}: write the manifest", app.name), &mgr, e))
}

fn reconsent_note(app: &App, added: &[String]) -> String {
    let who = if app.target.is_some() {
        "In ServiceNow, open the OAuth profile of this app and press \"Get OAuth Token\" (the admin who connected DEX)."
    } else {
        "Whoever consented must consent again."
    };
    format!(
        "note: {} gained {}: existing grants keep their old scopes until someone consents again (calls needing the new scopes fail with 4711 until then). {who} For connapp's own grant: `connapp login {}`.",
        app.name,
        added.join(", "),
        app.name
    )
}

pub fn apply(g: &Global, a: ApplyArgs) -> Result<(), CliError> {
    let reg = ctx::registry();
    ctx::warn_failures(&reg, g);
    let (_, decl) = ctx::load_declaration(g, &reg)?;
    if a.rollback {
        let apps = targets(&decl, a.app.as_deref())?;
        let zoom_apps: Vec<&App> = apps.into_iter().filter(|a| a.managed_by.is_some()).collect();
        return rollback(g, &a, &reg, &decl, &zoom_apps);
    }
    let mut work = prepare_all(&reg, &decl, a.app.as_deref(), g)?;
    let pending = work
        .iter()
        .filter(|w| w.plan.pending() || (a.write_secrets && w.sn.is_some()))
        .count();
    if !a.json && !g.quiet {
        let mut out = std::io::stdout().lock();
        for w in &work {
            print_work(&mut out, w)?;
        }
    }
    if pending == 0 {
        let links = consent_links(&work)?;
        if a.json {
            let plans: Vec<&AppPlan> = work.iter().map(|w| &w.plan).collect();
            return ctx::print_json(&json!({"apps": plans, "applied": false, "consent": links_json(&links)}));
        }
        if !g.quiet {
            println!("No changes.");
            print_links(&links);
        }
        return Ok(());
    }
    ctx::confirm(
        &ctx::Confirm {
            question: &format!("Apply these changes to {pending} app(s)?"),
            action: "change anything",
            review: "review with `connapp plan`, then ",
            strict: true,
        },
        a.yes,
    )?;
    for w in &mut work {
        let (app, p) = (w.app, &mut w.plan);
        if let Some(m) = &w.zoom {
            match p.action {
                "create" => {
                    let id = create(m, app, &p.merged, g)?;
                    confirm_written(m, app, &id, &p.merged)?;
                    p.app_id = Some(id);
                }
                "update" => {
                    let id = p.app_id.clone().unwrap_or_default();
                    update(m, p, app, &id)?;
                    confirm_written(m, app, &id, &p.merged)?;
                }
                _ => {}
            }
            if matches!(p.action, "create" | "update") {
                if !g.quiet && !a.json {
                    println!(
                        "{}: applied {} change(s) to Zoom app {}; the export matches.",
                        app.name,
                        p.changes.len(),
                        p.app_id.as_deref().unwrap_or("")
                    );
                }
                if !p.scopes_added.is_empty() && p.action == "update" && !g.quiet {
                    eprintln!("{}", reconsent_note(app, &p.scopes_added));
                }
            }
        }
        // The consumer end, after the provider (it needs the Client ID).
        if let Some((c, cons, ids)) = &mut w.sn {
            let mode = if a.write_secrets {
                cmd_target::Mode::ApplyWithSecrets
            } else {
                cmd_target::Mode::Apply
            };
            let (done, new_ids) = cmd_target::run(c, cons, mode)?;
            *ids = new_ids;
            let changed = done.items.iter().filter(|i| i.action != "none").count();
            if changed > 0 && !g.quiet && !a.json {
                println!(
                    "{}: ServiceNow {}: {changed} record(s) created, updated or removed; the chain is in place.",
                    app.name, done.instance
                );
            }
            p.servicenow = Some(done);
        }
    }
    let links = consent_links(&work)?;
    if a.json {
        let plans: Vec<&AppPlan> = work.iter().map(|w| &w.plan).collect();
        return ctx::print_json(&json!({"apps": plans, "applied": true, "consent": links_json(&links)}));
    }
    if !g.quiet {
        print_links(&links);
    }
    Ok(())
}

/// The "Get OAuth Token" links of chains that hold no live refresh token yet.
fn consent_links<'d>(work: &[Work<'_, 'd>]) -> Result<Vec<(&'d App, String)>, CliError> {
    let mut links = Vec::new();
    for w in work {
        if let Some((c, cons, ids)) = &w.sn
            && !cmd_target::has_token(c, cons, ids)?
            && let Some(link) = cmd_target::consent_link(cons, ids)
        {
            links.push((w.app, link));
        }
    }
    Ok(links)
}

fn links_json(links: &[(&App, String)]) -> Vec<Value> {
    links
        .iter()
        .map(|(app, l)| json!({"app": app.name, "consent_url": l}))
        .collect()
}

fn print_links(links: &[(&App, String)]) {
    for (app, link) in links {
        println!("\n{}", cmd_target::consent_note(app, link));
    }
}

#[derive(Serialize)]
struct RollbackJson {
    app: String,
    app_id: String,
    restored_from: String,
    changes: Vec<Change>,
}

fn rollback(g: &Global, a: &ApplyArgs, reg: &Registry, decl: &Declaration, apps: &[&App]) -> Result<(), CliError> {
    let mut work = Vec::new();
    for app in apps {
        let Some(path) = newest_history(&app.name)? else {
            if a.app.is_some() {
                return Err(CliError::failure(format!(
                    "{}: no manifest was saved before an apply on this machine; nothing to roll back",
                    app.name
                ))
                .hint(format!("saved manifests live in {}", history_dir(&app.name)?.display())));
            }
            continue;
        };
        let text = connapp_plugin_api::bounded::read_text("the saved manifest", &path, MAX_SAVED_MANIFEST_BYTES)
            .map_err(|e| CliError::failure(e.to_string()))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| CliError::failure(format!("{} is not a saved manifest: {e}", path.display())))?;
        let (Some(id), Some(saved)) = (doc.get("app_id").and_then(Value::as_str), doc.get("manifest")) else {
            return Err(CliError::failure(format!("{} is not a saved manifest", path.display())));
        };
        let c = cmd_token::load(reg, decl, Some(&app.name))?;
        let m = manager(reg, decl, &c, g)?;
        let mgr = app.managed_by.clone().unwrap_or_default();
        let live = m
            .call(|api| async move { Marketplace::new(&api).export_manifest(id).await })
            .map_err(|e| api_error(&format!("{}: export the manifest of Zoom app {id}", app.name), &mgr, e))?;
        let changes = manifest::diff(&live, saved);
        work.push((*app, m, path, id.to_string(), saved.clone(), changes));
    }
    if work.is_empty() {
        return Err(CliError::failure(
            "no manifest was saved before an apply on this machine; nothing to roll back",
        ));
    }
    if !a.json && !g.quiet {
        let mut out = std::io::stdout().lock();
        for (app, _, path, id, _, changes) in &work {
            writeln!(out, "{}: restore Zoom app {id} to {}:", app.name, path.display())?;
            for c in changes {
                writeln!(out, "  {}", c.line())?;
            }
            if changes.is_empty() {
                writeln!(out, "  (the live manifest already equals it)")?;
            }
        }
    }
    ctx::confirm(
        &ctx::Confirm {
            question: "Restore these manifests?",
            action: "change anything",
            review: "review with `connapp plan`, then ",
            strict: true,
        },
        a.yes,
    )?;
    let mut report = Vec::new();
    for (app, m, path, id, saved, changes) in work {
        let mgr = app.managed_by.clone().unwrap_or_default();
        if !changes.is_empty() {
            validate(&m, app, &saved, Some(&id))?;
            let (id_ref, saved_ref) = (&id, &saved);
            m.call(|api| async move { Marketplace::new(&api).replace_manifest(id_ref, saved_ref).await })
                .map_err(|e| api_error(&format!("{}: write the manifest", app.name), &mgr, e))?;
            confirm_written(&m, app, &id, &saved)?;
        }
        // Restored: the saved copy has done its job (an older one is next).
        let _ = std::fs::remove_file(&path);
        if !a.json && !g.quiet {
            println!("{}: restored Zoom app {id} ({} change(s)).", app.name, changes.len());
        }
        report.push(RollbackJson {
            app: app.name.clone(),
            app_id: id,
            restored_from: path.display().to_string(),
            changes,
        });
    }
    if a.json {
        return ctx::print_json(&report);
    }
    Ok(())
}

/// The largest saved manifest `rollback` reads (Zoom's manifests are a few KiB).
const MAX_SAVED_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use connapp_core::manifest::ChangeKind;

    #[test]
    fn scope_delta_names_added_and_removed() {
        let b = json!({"oauth_information": {"scopes": [{"scope": "a"}, {"scope": "b"}]}});
        let a = json!({"oauth_information": {"scopes": [{"scope": "b"}, {"scope": "c"}]}});
        assert_eq!(scope_delta(&b, &a), (vec!["c".to_string()], vec!["a".to_string()]));
    }

    #[test]
    fn change_kinds_serialize_in_lower_case() {
        let c = Change {
            path: "p".into(),
            kind: ChangeKind::Add,
            before: None,
            after: Some(json!(1)),
        };
        assert_eq!(serde_json::to_value(&c).unwrap_or_default()["kind"], "add");
    }
}
