//! `connapp plan` and `connapp apply [--rollback]`: the provider app and its
//! consumer as code, for a terminal. The work is `connapp_clients::apply`'s
//! (the Zoom end through `connapp_zoom::admin`, the consumer end through
//! `connapp_servicenow::consumer`); this file prints the plans, asks before
//! a change and renders the outcome.

use std::io::Write;

use connapp_clients::apply::{self as work, AppPlan, PlanAction, RecordAction, Restore, Work};
use connapp_core::manifest::Change;
use connapp_core::{App, Declaration};
use connapp_engine::tokens::Shared;
use connapp_host::Registry;
use serde::Serialize;
use serde_json::json;

use crate::cli::{ApplyArgs, Global, PlanArgs};
use crate::cmd_evidence;
use crate::cmd_target::{self, TargetPlan};
use crate::cmd_token::{self, Terminal};
use crate::ctx;
use crate::error::{CliError, Exit};
use crate::render;

fn print_plan(out: &mut impl Write, p: &AppPlan, display: &str) -> std::io::Result<()> {
    match p.action {
        PlanAction::Create => writeln!(
            out,
            "{}: create the {} app {display:?} (managed by {}):",
            p.app, p.provider, p.managed_by
        )?,
        PlanAction::Adopt => writeln!(
            out,
            "{}: adopt the {} app {} that an interrupted apply created (its id or credentials never reached the store; managed by {}):",
            p.app,
            p.provider,
            p.app_id.as_deref().unwrap_or(""),
            p.managed_by
        )?,
        PlanAction::None => {
            return writeln!(
                out,
                "{}: {} app {} matches the declaration",
                p.app,
                p.provider,
                p.app_id.as_deref().unwrap_or("")
            );
        }
        _ => writeln!(
            out,
            "{}: {} app {} (managed by {}):",
            p.app,
            p.provider,
            p.app_id.as_deref().unwrap_or(""),
            p.managed_by
        )?,
    }
    for c in &p.changes {
        writeln!(out, "  {}", render::diff_line(&c.line(), render::WIDTH - 2))?;
    }
    Ok(())
}

fn summary(work: &[Work<'_, '_>]) -> String {
    let n = |a: PlanAction| work.iter().filter(|w| w.plan.action == a).count();
    let provider = work.first().map_or("provider", |w| w.plan.provider.as_str());
    let adopt = match n(PlanAction::Adopt) {
        0 => String::new(),
        k => format!(", {k} to adopt"),
    };
    let mut s = format!(
        "Plan: {} {provider} app(s) to create, {} to update{adopt}, {} unchanged.",
        n(PlanAction::Create),
        n(PlanAction::Update),
        n(PlanAction::None)
    );
    let sn: Vec<&TargetPlan> = work.iter().filter_map(|w| w.consumer_plan.as_ref()).collect();
    if !sn.is_empty() {
        let count = |act: &[RecordAction]| {
            sn.iter()
                .flat_map(|t| &t.items)
                .filter(|i| act.contains(&i.action))
                .count()
        };
        s.push_str(&format!(
            "\n      {}: {} record(s) to create, {} to update, {} to delete.",
            sn[0].consumer,
            count(&[RecordAction::Create, RecordAction::CreatedByInstance]),
            count(&[RecordAction::Update]),
            count(&[RecordAction::Delete])
        ));
    }
    s
}

/// The first refusal `apply` would make, known from the plans.
fn blocked<'w>(work: &'w [Work<'_, '_>]) -> Option<&'w connapp_engine::manage::Blocked> {
    work.iter().find_map(|w| w.plan.blocked.as_ref())
}

fn print_work(out: &mut impl Write, w: &Work<'_, '_>) -> std::io::Result<()> {
    if w.plan.action != PlanAction::Unmanaged {
        print_plan(out, &w.plan, &w.app.display_name)?;
    }
    if let Some(t) = &w.consumer_plan {
        cmd_target::print(out, w.app, t)?;
    }
    Ok(())
}

/// Every app `plan`/`apply` acts on, planned, on one shared store.
fn prepare_all<'r, 'd>(
    reg: &'r Registry,
    decl: &'d Declaration,
    name: Option<&str>,
    g: &Global,
) -> Result<(Vec<Work<'r, 'd>>, Shared<'r>), CliError> {
    let apps = work::targets(decl, name)?;
    let shared: Shared<'r> = one_store(decl, name)?;
    let session = work::Session {
        reg,
        decl,
        shared: &shared,
        obs: &Terminal::of(g),
    };
    let work = work::prepare_all(&session, &apps, name.is_some())?;
    Ok((work, shared))
}

/// The one store a command over `name` (or every app) works on: the app's,
/// or the declaration's when no fleet row has a store of its own.
fn one_store(decl: &Declaration, name: Option<&str>) -> Result<Shared<'static>, CliError> {
    match name {
        Some(n) => cmd_token::shared_of(decl, n),
        None if decl.has_row_stores() => Err(CliError::with_code(
            Exit::Usage,
            "the fleet's rows keep their apps in stores of their own ([fleet.store]), so one command cannot plan them all on one store",
        )
        .hint("use `--all` (each app on its own store), or name the app")),
        None => cmd_token::shared(decl),
    }
}

/// `plan --all` / `apply --all`: every managed or targeted app (or the
/// selected rows'), each planned — and applied — on its own, `--jobs` at a
/// time, on one store; one app's refusal or failure is its own.
fn batch(
    g: &Global,
    step: &'static str,
    b: &crate::cli::BatchArgs,
    json_out: bool,
    write_secrets: bool,
) -> Result<(), CliError> {
    use connapp_engine::batch::Outcome;
    let (reg, path, decl) = ctx::declared(g)?;
    let apps: Vec<&App> = crate::batch::select(&decl, b)?
        .into_iter()
        .filter(|a| a.managed_by.is_some() || a.target.is_some())
        .collect();
    if apps.is_empty() {
        return Err(CliError::with_code(
            Exit::Usage,
            "none of these apps has `managed_by` or a target: nothing to plan",
        )
        .hint("check the selection, or the template's managed_by and target"));
    }
    let apply = step == "apply";
    let stores = cmd_token::Stores::new(&decl);
    let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
    let plans = std::sync::Mutex::new(std::collections::HashMap::new());
    let (report, record) = crate::batch::run(g, &decl, &path, step, b, json_out, &names, |name| {
        let app = decl
            .app(Some(name))
            .map_err(|e| connapp_engine::Error::invalid(e.to_string()))?;
        // Each app on its own store: the declaration's, or its fleet row's.
        let session = work::Session {
            reg,
            decl: &decl,
            shared: stores.of(name)?,
            obs: &connapp_engine::tokens::Silent,
        };
        let one = work::plan_or_apply_one(&session, app, apply, write_secrets)?;
        plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), (one.plan, one.pending, one.consent));
        Ok(one.detail)
    })?;
    let plans = plans.into_inner().unwrap_or_else(|p| p.into_inner());
    let pending = plans.values().any(|(_, p, _)| *p);
    if json_out {
        let apps: Vec<&serde_json::Value> = report
            .results
            .iter()
            .filter_map(|r| plans.get(&r.app).map(|(v, _, _)| v))
            .collect();
        let consent: Vec<&serde_json::Value> = report
            .results
            .iter()
            .filter_map(|r| plans.get(&r.app).and_then(|(_, _, c)| c.as_ref()))
            .collect();
        let errors: Vec<serde_json::Value> = report
            .results
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Failed { message, hint, .. } => Some(json!({"app": r.app, "error": message, "hint": hint})),
                Outcome::Skipped { reason } => Some(json!({"app": r.app, "error": reason, "hint": null})),
                Outcome::Ok { .. } => None,
            })
            .collect();
        let out = if apply {
            json!({"apps": apps, "applied": true, "consent": consent, "errors": errors})
        } else {
            json!({"pending": pending, "apps": apps, "errors": errors})
        };
        ctx::print_json(step, &out)?;
    }
    // Each instance still needs an admin's consent: the links, by app.
    let links: Vec<(&str, &str)> = report
        .results
        .iter()
        .filter_map(|r| {
            let (_, _, c) = plans.get(&r.app)?;
            Some((r.app.as_str(), c.as_ref()?.get("consent_url")?.as_str()?))
        })
        .collect();
    if apply && b.jsonl {
        for (app, link) in &links {
            crate::batch::json_line(&json!({"event": "consent", "step": step, "app": app, "consent_url": link}));
        }
    } else if apply && !json_out && !g.quiet && !links.is_empty() {
        println!(
            "{} app(s) wait for an admin's consent on their instance; open each link once:",
            links.len()
        );
        for (app, link) in links {
            println!("  {app}: {link}");
        }
    }
    let done = if apply {
        "applied (or already matching)"
    } else {
        "planned"
    };
    crate::batch::conclude(g, json_out, b.jsonl, &report, done, &record)?;
    if !apply && pending {
        return Err(CliError::with_code(Exit::Changes, String::new()));
    }
    Ok(())
}

pub fn plan(g: &Global, a: PlanArgs) -> Result<(), CliError> {
    if a.all || !a.batch.select.is_empty() {
        return batch(g, "plan", &a.batch, a.json, false);
    }
    let (reg, _, decl) = ctx::declared(g)?;
    let (work, _) = prepare_all(reg, &decl, a.app.as_deref(), g)?;
    let pending = work.iter().any(Work::pending);
    if a.json {
        let plans: Vec<_> = work.iter().map(Work::json).collect();
        ctx::print_json("plan", &json!({"pending": pending, "apps": plans}))?;
    } else if !g.quiet {
        let mut out = render::stdout().lock();
        for w in &work {
            print_work(&mut out, w)?;
        }
        writeln!(out, "{}", summary(&work))?;
        if pending && blocked(&work).is_none() {
            writeln!(out, "Run `connapp apply` to make these changes.")?;
        }
    }
    // A refusal apply would make is plan's failure too, said first here.
    if let Some(b) = blocked(&work) {
        return Err(b.error().into());
    }
    if pending {
        return Err(CliError::with_code(Exit::Changes, String::new()));
    }
    Ok(())
}

pub fn apply(g: &Global, a: ApplyArgs) -> Result<(), CliError> {
    if a.all || !a.batch.select.is_empty() {
        ctx::confirm(
            &ctx::Confirm {
                question: "Plan and apply the declaration to every selected app, one by one?",
                action: "change anything",
                review: "review with `connapp plan --all`, then ",
                strict: true,
            },
            a.yes,
        )?;
        return batch(g, "apply", &a.batch, a.json, a.write_secrets);
    }
    let (reg, path, decl) = ctx::declared(g)?;
    if a.rollback {
        let apps = work::targets(&decl, a.app.as_deref())?;
        let managed: Vec<&App> = apps.into_iter().filter(|a| a.managed_by.is_some()).collect();
        return rollback(g, &a, reg, &decl, &managed);
    }
    let (mut work, shared) = prepare_all(reg, &decl, a.app.as_deref(), g)?;
    if let Some(b) = blocked(&work) {
        return Err(b.error().into());
    }
    let pending = work
        .iter()
        .filter(|w| w.pending() || (a.write_secrets && w.has_consumer()))
        .count();
    if !a.json && !g.quiet {
        let mut out = render::stdout().lock();
        for w in &work {
            print_work(&mut out, w)?;
        }
    }
    if pending == 0 {
        let links = work::consent_links(&work)?;
        if a.json {
            let plans: Vec<_> = work.iter().map(Work::json).collect();
            return ctx::print_json(
                "apply",
                &json!({"apps": plans, "applied": false, "consent": work::links_json(&links)}),
            );
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
    let term = Terminal::new(g.quiet, a.json);
    work::apply(&mut work, a.write_secrets, &term)?;
    let mut evidence = Vec::new();
    if a.evidence.evidence.is_some() {
        let session = work::Session {
            reg,
            decl: &decl,
            shared: &shared,
            obs: &term,
        };
        let (subjects, predicate) = connapp_clients::evidence::of_apply(
            &session,
            &work,
            &path.display().to_string(),
            &ctx::declaration_bytes(&path)?,
        )?;
        if let Some(written) = cmd_evidence::write(&a.evidence, &subjects, predicate.clone())? {
            evidence.push(written.line.clone());
            if let Some(number) = &a.evidence.change {
                let targeted: Vec<&Work<'_, '_>> = work.iter().filter(|w| w.app.target.is_some()).collect();
                let [w] = targeted.as_slice() else {
                    return Err(CliError::with_code(
                        Exit::Usage,
                        format!(
                            "--change files the evidence on one app's instance, and this apply covers {} apps with a target",
                            targeted.len()
                        ),
                    )
                    .hint("name the app: `connapp apply APP --evidence FILE --change CHG`"));
                };
                let plans = connapp_clients::evidence::apply_plans(&work, &predicate, &written.name);
                let report = connapp_clients::evidence::verify_report(&predicate, &w.app.name);
                evidence.push(cmd_evidence::file_on_change(
                    &session, w.app, number, &plans, &written, &subjects, &report,
                )?);
            }
        }
    }
    drop(term);
    let links = work::consent_links(&work)?;
    if a.json {
        let plans: Vec<_> = work.iter().map(Work::json).collect();
        return ctx::print_json(
            "apply",
            &json!({"apps": plans, "applied": true, "consent": work::links_json(&links)}),
        );
    }
    if !g.quiet {
        for line in evidence {
            println!("{line}");
        }
        print_links(&links);
    }
    Ok(())
}

fn print_links(links: &[work::Consent<'_>]) {
    let mut out = render::stdout().lock();
    for c in links {
        let _ = writeln!(out);
        for line in render::wrap_lines(&c.note, render::WIDTH) {
            let _ = writeln!(out, "{line}");
        }
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
    // The history is in the shared store: any host that opens it can roll back.
    let shared = one_store(decl, a.app.as_deref())?;
    let session = work::Session {
        reg,
        decl,
        shared: &shared,
        obs: &Terminal::of(g),
    };
    let restores = work::rollback_plan(&session, apps, a.app.is_some())?;
    if !a.json && !g.quiet {
        let mut out = render::stdout().lock();
        for r in &restores {
            writeln!(
                out,
                "{}: restore {} app {} to {}:",
                r.app.name, r.provider, r.app_id, r.from
            )?;
            for c in &r.changes {
                writeln!(out, "  {}", c.line())?;
            }
            if r.changes.is_empty() {
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
    for r in restores {
        work::restore(&shared.store, &r)?;
        if !a.json && !g.quiet {
            println!(
                "{}: restored {} app {} ({} change(s)).",
                r.app.name,
                r.provider,
                r.app_id,
                r.changes.len()
            );
        }
        let Restore {
            app,
            from,
            app_id,
            changes,
            ..
        } = r;
        report.push(RollbackJson {
            app: app.name.clone(),
            app_id,
            restored_from: from.to_string(),
            changes,
        });
    }
    if a.json {
        return ctx::print_json("rollback", &serde_json::json!({ "apps": report }));
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
