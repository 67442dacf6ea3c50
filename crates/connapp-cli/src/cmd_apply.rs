//! `connapp plan` and `connapp apply [--rollback]`: the provider app as code.
//!
//! apply = export the live manifest → merge the platform's desired settings
//! (settings connapp does not manage survive) → validate with the provider →
//! keep the live manifest for `--rollback` → write (a full replacement) →
//! export again and compare. Without an app id the app is created and its
//! Client ID / Client Secret go straight into the store.

use std::collections::HashMap;
use std::io::Write;

use connapp_core::manifest::Change;
use connapp_core::{App, Declaration};
use connapp_engine::history;
use connapp_engine::tokens::AppCtx;
use connapp_host::Registry;
use connapp_zoom::admin::{self, AppPlan, Manager, not_managed};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::{ApplyArgs, Global, PlanArgs};
use crate::cmd_target::{self, Consumer, TargetPlan};
use crate::cmd_token::{self, Terminal};
use crate::ctx;
use crate::error::{CliError, Exit};

/// One app's plan as `--json` prints it: the Zoom end and, when the app has
/// a target and the store holds the instance's credentials, the consumer end.
#[derive(Serialize)]
struct PlanJson<'a> {
    #[serde(flatten)]
    zoom: &'a AppPlan,
    #[serde(skip_serializing_if = "Option::is_none")]
    servicenow: Option<&'a TargetPlan>,
}

/// The apps `plan`/`apply` act on.
fn targets<'d>(decl: &'d Declaration, name: Option<&str>) -> Result<Vec<&'d App>, CliError> {
    if let Some(n) = name {
        let app = ctx::app(decl, Some(n))?;
        if app.managed_by.is_none() && app.target.is_none() {
            return Err(not_managed(app).into());
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

fn summary(work: &[Work<'_, '_>]) -> String {
    let n = |a: &str| work.iter().filter(|w| w.plan.action == a).count();
    let mut s = format!(
        "Plan: {} Zoom app(s) to create, {} to update, {} unchanged.",
        n("create"),
        n("update"),
        n("none")
    );
    let sn: Vec<&TargetPlan> = work.iter().filter_map(|w| w.consumer_plan.as_ref()).collect();
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

/// The management connection of `c`'s app, on the same store and runtime.
fn manager<'r>(reg: &'r Registry, decl: &Declaration, c: &AppCtx<'r>, g: &Global) -> Result<Manager<'r>, CliError> {
    let Some(name) = c.app.managed_by.as_deref() else {
        return Err(not_managed(&c.app).into());
    };
    Ok(admin::manager(
        c.sibling(reg, decl, name)?,
        &Terminal { quiet: g.quiet },
    )?)
}

/// One app's work: the Zoom end (if managed) and the ServiceNow end (if targeted
/// and the instance credentials are stored).
struct Work<'r, 'd> {
    app: &'d App,
    zoom: Option<Manager<'r>>,
    sn: Option<(AppCtx<'r>, Consumer, HashMap<String, String>)>,
    plan: AppPlan,
    consumer_plan: Option<TargetPlan>,
}

impl Work<'_, '_> {
    /// Anything to do on either end.
    fn pending(&self) -> bool {
        self.plan.pending() || self.consumer_plan.as_ref().is_some_and(|t| t.pending)
    }

    fn json(&self) -> PlanJson<'_> {
        PlanJson {
            zoom: &self.plan,
            servicenow: self.consumer_plan.as_ref(),
        }
    }
}

/// `None` when neither end can be reached (no `managed_by`, no instance credentials).
fn prepare<'r, 'd>(
    reg: &'r Registry,
    decl: &Declaration,
    app: &'d App,
    c: AppCtx<'r>,
    g: &Global,
) -> Result<Option<Work<'r, 'd>>, CliError> {
    let (zoom, plan) = match app.managed_by {
        Some(_) => {
            let m = manager(reg, decl, &c, g)?;
            let p = admin::plan(&m, app, &connapp_engine::platform::provider_manifest(reg, app)?)?;
            (Some(m), p)
        }
        None => (None, AppPlan::unmanaged(app)),
    };
    let mut sn = None;
    let mut consumer_plan = None;
    if app.target.is_some() {
        if let Some(cons) = cmd_target::consumer(reg, &c)? {
            let (tp, ids) = cmd_target::run(&c, &cons, cmd_target::Mode::Plan)?;
            consumer_plan = Some(tp);
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
    Ok(Some(Work {
        app,
        zoom,
        sn,
        plan,
        consumer_plan,
    }))
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
            None if name.is_some() => return Err(not_managed(app).into()),
            None => {}
        }
    }
    if work.is_empty() {
        return Err(apps.first().map_or_else(not_managed_any, |a| not_managed(a).into()));
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
    if let Some(t) = &w.consumer_plan {
        cmd_target::print(out, w.app, t)?;
    }
    Ok(())
}

pub fn plan(g: &Global, a: PlanArgs) -> Result<(), CliError> {
    let (reg, _, decl) = ctx::declared(g)?;
    let work = prepare_all(&reg, &decl, a.app.as_deref(), g)?;
    let pending = work.iter().any(Work::pending);
    if a.json {
        let plans: Vec<PlanJson<'_>> = work.iter().map(Work::json).collect();
        ctx::print_json(&json!({"pending": pending, "apps": plans}))?;
    } else if !g.quiet {
        let mut out = std::io::stdout().lock();
        for w in &work {
            print_work(&mut out, w)?;
        }
        writeln!(out, "{}", summary(&work))?;
        if pending {
            writeln!(out, "Run `connapp apply` to make these changes.")?;
        }
    }
    if pending {
        return Err(CliError::with_code(Exit::Changes, String::new()));
    }
    Ok(())
}

pub fn apply(g: &Global, a: ApplyArgs) -> Result<(), CliError> {
    let (reg, _, decl) = ctx::declared(g)?;
    if a.rollback {
        let apps = targets(&decl, a.app.as_deref())?;
        let zoom_apps: Vec<&App> = apps.into_iter().filter(|a| a.managed_by.is_some()).collect();
        return rollback(g, &a, &reg, &decl, &zoom_apps);
    }
    let mut work = prepare_all(&reg, &decl, a.app.as_deref(), g)?;
    let pending = work
        .iter()
        .filter(|w| w.pending() || (a.write_secrets && w.sn.is_some()))
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
            let plans: Vec<PlanJson<'_>> = work.iter().map(Work::json).collect();
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
                    let id = admin::create(m, app, &p.merged, &Terminal { quiet: g.quiet })?;
                    admin::confirm_written(m, app, &id, &p.merged)?;
                    p.app_id = Some(id);
                }
                "update" => {
                    let id = p.app_id.clone().unwrap_or_default();
                    admin::update(m, p, app, &id)?;
                    admin::confirm_written(m, app, &id, &p.merged)?;
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
                    eprintln!("{}", admin::reconsent_note(app, &p.scopes_added));
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
            w.consumer_plan = Some(done);
        }
    }
    let links = consent_links(&work)?;
    if a.json {
        let plans: Vec<PlanJson<'_>> = work.iter().map(Work::json).collect();
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
    let data_dir = ctx::data_dir()?;
    for app in apps {
        let Some(path) = history::newest(&data_dir, &app.name) else {
            if a.app.is_some() {
                return Err(CliError::failure(format!(
                    "{}: no manifest was saved before an apply on this machine; nothing to roll back",
                    app.name
                ))
                .hint(format!(
                    "saved manifests live in {}",
                    history::dir(&data_dir, &app.name).display()
                )));
            }
            continue;
        };
        let (id, saved) = history::read(&path)?;
        let c = cmd_token::load(reg, decl, Some(&app.name))?;
        let m = manager(reg, decl, &c, g)?;
        let live = admin::export(&m, app, &id)?;
        let changes = connapp_core::manifest::diff(&live, &saved);
        work.push((*app, m, path, id, saved, changes));
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
        if !changes.is_empty() {
            admin::restore(&m, app, &id, &saved)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use connapp_core::manifest::ChangeKind;

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
