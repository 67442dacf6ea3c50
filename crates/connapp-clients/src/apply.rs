//! plan / apply / rollback composed: the provider end of each app (the
//! engine's `ProviderAdmin`, implemented by its platform's client: Zoom's
//! `connapp_zoom::admin`) and the consumer end (`connapp_servicenow::consumer`),
//! the provider first (the consumer needs its Client ID). What happens is
//! reported through the [`Observer`]; the front end prints the plans and
//! asks before anything changes.

use std::collections::BTreeMap;

use connapp_core::manifest::{self, Change};
use connapp_core::{App, Declaration};
pub use connapp_engine::manage::AppPlan;
use connapp_engine::manage::ConsumerEnd;
use connapp_engine::manage::ProviderAdmin;
pub use connapp_engine::manage::{Item, Mode, PlanAction, RecordAction, TargetPlan};
use connapp_engine::tokens::{AppCtx, Event, Observer, Shared};
use connapp_engine::{Error, history, platform};
use connapp_host::Registry;
use connapp_servicenow::consumer;
use connapp_zoom::admin::{self, not_managed};
use serde::Serialize;
use serde_json::{Value, json};

/// What one command works with: the plugins, the declaration, the shared
/// store, HTTP client and runtime, and where events go.
#[derive(Clone, Copy)]
pub struct Session<'a, 'r> {
    /// The plugins.
    pub reg: &'a Registry,
    /// The checked declaration.
    pub decl: &'a Declaration,
    /// The store, HTTP client and runtime its apps share.
    pub shared: &'a Shared<'r>,
    /// Where events go.
    pub obs: &'a dyn Observer,
}

/// One app's plan as `--json` prints it: the provider end and, when the app
/// has a target and the store holds the instance's credentials, the consumer
/// end under its target's kind (e.g. `"servicenow": {...}`).
#[derive(Serialize)]
pub struct PlanJson<'a> {
    #[serde(flatten)]
    provider: &'a AppPlan,
    #[serde(flatten)]
    consumer: BTreeMap<&'a str, &'a TargetPlan>,
}

/// The apps `plan`/`apply` act on.
pub fn targets<'d>(decl: &'d Declaration, name: Option<&str>) -> Result<Vec<&'d App>, Error> {
    if let Some(n) = name {
        let app = decl.app(Some(n)).map_err(|e| Error::invalid(e.to_string()))?;
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
        return Err(Error::invalid(
            "no app in the declaration has `managed_by` or a target, so there is nothing to plan",
        )
        .hint(format!(
            "declare a management app (Server-to-Server OAuth with `marketplace:` scopes) and set `managed_by` in [apps.{first}]; or follow `connapp guide` to set the app up by hand"
        )));
    }
    Ok(apps)
}

/// One app's work: the provider end (if managed) and the consumer end (if
/// targeted and the instance credentials are stored).
pub struct Work<'r, 'd> {
    /// The app.
    pub app: &'d App,
    provider: Option<Box<dyn ProviderAdmin + 'r>>,
    consumer: Option<Box<dyn ConsumerEnd + 'r>>,
    /// The provider end's plan (`unmanaged` without `managed_by`).
    pub plan: AppPlan,
    /// The consumer end's plan, when it can be reached.
    pub consumer_plan: Option<TargetPlan>,
}

impl Work<'_, '_> {
    /// Anything to do on either end.
    pub fn pending(&self) -> bool {
        self.plan.pending() || self.consumer_plan.as_ref().is_some_and(|t| t.pending)
    }

    /// Whether the consumer end can be reached (for `--write-secrets`).
    pub fn has_consumer(&self) -> bool {
        self.consumer.is_some()
    }

    /// The plan as `--json` prints it.
    pub fn json(&self) -> PlanJson<'_> {
        let kind = self.app.target.as_ref().map_or("", |t| t.kind.as_str());
        PlanJson {
            provider: &self.plan,
            consumer: self.consumer_plan.iter().map(|p| (kind, p)).collect(),
        }
    }
}

/// The provider end of `c`'s app: its platform's client over the management app.
pub(crate) fn provider_admin<'r>(
    reg: &Registry,
    decl: &Declaration,
    c: &AppCtx<'r>,
    obs: &dyn Observer,
) -> Result<Box<dyn ProviderAdmin + 'r>, Error> {
    let Some(name) = c.app.managed_by.as_deref() else {
        return Err(not_managed(&c.app));
    };
    let mgmt = c.sibling(reg, decl, name)?;
    match c.app.platform.as_str() {
        connapp_zoom::PLATFORM => Ok(Box::new(admin::manager(mgmt, obs)?)),
        other => Err(Error::invalid(format!(
            "{}: connapp manages no {other} apps through the provider's API",
            c.app.name
        ))
        .hint(format!(
            "remove `managed_by` from [apps.{}] and set the app up by hand",
            c.app.name
        ))),
    }
}

/// The consumer end of `c`'s app (its target's platform's client), or `None`
/// when the store holds no credentials for it.
pub(crate) fn consumer_end<'r>(reg: &Registry, c: AppCtx<'r>) -> Result<Option<Box<dyn ConsumerEnd + 'r>>, Error> {
    let kind = c.app.target.as_ref().map_or("", |t| t.kind.as_str());
    match kind {
        connapp_servicenow::PLATFORM => {
            // The platform's records are asked for only when the instance can be reached.
            let end = connapp_servicenow::consumer::End::load(c, |c| {
                platform::consumer_records(reg, &c.app, &c.endpoints())
            })?;
            Ok(end.map(|e| Box::new(e) as Box<dyn ConsumerEnd>))
        }
        other => Err(Error::invalid(format!(
            "{}: connapp knows no consumer of kind {other:?}",
            c.app.name
        ))),
    }
}

/// `None` when neither end can be reached (no `managed_by`, no instance credentials).
fn prepare<'r, 'd>(
    reg: &Registry,
    decl: &Declaration,
    app: &'d App,
    c: AppCtx<'r>,
    obs: &dyn Observer,
) -> Result<Option<Work<'r, 'd>>, Error> {
    let (provider, plan) = match app.managed_by {
        Some(_) => {
            let m = provider_admin(reg, decl, &c, obs)?;
            obs.event(Event::Step {
                app: &app.name,
                what: &format!("reading the {} app's settings", m.provider()),
            });
            let p = m.plan(app, &platform::provider_manifest(reg, app)?)?;
            (Some(m), p)
        }
        None => (None, AppPlan::unmanaged(c.display(), app)),
    };
    let mut consumer = None;
    let mut consumer_plan = None;
    if let Some(target) = &app.target {
        if let Some(mut end) = consumer_end(reg, c)? {
            obs.event(Event::Step {
                app: &app.name,
                what: &format!("reading {}'s records", target.display),
            });
            consumer_plan = Some(end.run(Mode::Plan)?);
            consumer = Some(end);
        } else {
            obs.event(Event::Notice(&format!(
                "{}: {} skipped: no instance credentials are stored ({})",
                app.name,
                target.display,
                consumer::credentials_hint(app)
            )));
        }
    }
    if provider.is_none() && consumer.is_none() {
        return Ok(None);
    }
    Ok(Some(Work {
        app,
        provider,
        consumer,
        plan,
        consumer_plan,
    }))
}

/// Plans every app of `apps` (from [`targets`]) on `shared`; when `named`
/// (the user named the app), it must be reachable.
pub fn prepare_all<'r, 'd>(s: &Session<'_, 'r>, apps: &[&'d App], named: bool) -> Result<Vec<Work<'r, 'd>>, Error> {
    let Session { reg, decl, shared, obs } = *s;
    let mut work = Vec::new();
    for app in apps {
        let c = AppCtx::load(reg, decl, Some(&app.name), shared)?;
        match prepare(reg, decl, app, c, obs)? {
            Some(w) => work.push(w),
            None if named => return Err(not_managed(app)),
            None => {}
        }
    }
    if work.is_empty() {
        return Err(apps.first().map_or_else(
            || Error::invalid("there is nothing connapp can plan"),
            |a| not_managed(a),
        ));
    }
    Ok(work)
}

/// Applies every plan: the provider end (create or update, then confirm by
/// exporting again), then the consumer end (`write_secrets`: write the
/// write-only fields of existing records again, after a secret rotation).
/// Each applied end is an [`Event::Done`].
pub fn apply(work: &mut [Work<'_, '_>], write_secrets: bool, obs: &dyn Observer) -> Result<(), Error> {
    for w in work {
        let (app, p) = (w.app, &mut w.plan);
        if let Some(m) = &w.provider {
            if p.pending() {
                obs.event(Event::Step {
                    app: &app.name,
                    what: &format!("writing the {} app's settings", m.provider()),
                });
            }
            m.apply(app, p, obs)?;
            if matches!(p.action, PlanAction::Create | PlanAction::Update | PlanAction::Adopt) {
                obs.event(Event::Done(&format!(
                    "{}: applied {} change(s) to {} app {}; the export matches.",
                    app.name,
                    p.changes.len(),
                    m.provider(),
                    p.app_id.as_deref().unwrap_or("")
                )));
                if p.action == PlanAction::Update
                    && let Some(note) = m.reconsent_note(app, &p.scopes_added)
                {
                    obs.event(Event::Notice(&note));
                }
            }
        }
        if let Some(end) = &mut w.consumer {
            let mode = if write_secrets {
                Mode::ApplyWithSecrets
            } else {
                Mode::Apply
            };
            if let Some(t) = &app.target {
                obs.event(Event::Step {
                    app: &app.name,
                    what: &format!("writing {}'s records", t.display),
                });
            }
            let done = end.run(mode)?;
            let changed = done.items.iter().filter(|i| i.action != RecordAction::None).count();
            if changed > 0 {
                obs.event(Event::Done(&format!(
                    "{}: {} {}: {changed} record(s) created, updated or removed; the chain is in place.",
                    app.name, done.consumer, done.instance
                )));
            }
            w.consumer_plan = Some(done);
        }
    }
    Ok(())
}

/// What one app's batch plan or apply found: a few words for the run's line,
/// the plan as `--json` prints it, and whether anything was pending.
pub struct OneApp {
    /// What was planned or done, in a few words.
    pub detail: String,
    /// The plan (after apply: what was applied), as `--json` prints it.
    pub plan: Value,
    /// Anything to do on either end (before apply).
    pub pending: bool,
    /// The consent the consumer still needs (after apply), as `--json` prints it.
    pub consent: Option<Value>,
}

/// Plans one app and, when `apply`, applies what is pending (a fleet's
/// batch step: one app's refusal or failure is its own, the plan's
/// refusal included). An app neither end of which can be reached is an
/// error naming why.
pub fn plan_or_apply_one(s: &Session<'_, '_>, app: &App, apply: bool, write_secrets: bool) -> Result<OneApp, Error> {
    let Session { reg, decl, shared, obs } = *s;
    let c = AppCtx::load(reg, decl, Some(&app.name), shared)?;
    let Some(mut w) = prepare(reg, decl, app, c, obs)? else {
        return Err(not_managed(app));
    };
    if let Some(b) = &w.plan.blocked {
        return Err(b.error());
    }
    let pending = w.pending() || (write_secrets && w.has_consumer());
    let said = |w: &Work<'_, '_>| {
        let mut parts = Vec::new();
        if w.plan.action != PlanAction::Unmanaged {
            parts.push(match w.plan.action {
                PlanAction::Update => format!("{} {} change(s)", w.plan.action, w.plan.changes.len()),
                PlanAction::None => "provider app unchanged".to_string(),
                other => format!("{other} the {} app", w.plan.provider),
            });
        }
        if let Some(t) = &w.consumer_plan {
            let n = t.items.iter().filter(|i| i.action != RecordAction::None).count();
            parts.push(format!("{n} {} record change(s)", t.consumer));
        }
        parts.join(", ")
    };
    let before = said(&w);
    if apply && pending {
        let mut one = [w];
        self::apply(&mut one, write_secrets, obs)?;
        let [done] = one;
        w = done;
    }
    let detail = match (apply, pending) {
        (true, true) => format!("applied: {before}"),
        (_, false) => "no changes".to_string(),
        (false, true) => format!("to do: {before}"),
    };
    let plan = serde_json::to_value(w.json()).unwrap_or(Value::Null);
    let consent = if apply {
        links_json(&consent_links(std::slice::from_ref(&w))?).into_iter().next()
    } else {
        None
    };
    Ok(OneApp {
        detail,
        plan,
        pending,
        consent,
    })
}

/// A consent the consumer still needs: its link and the note a person reads.
pub struct Consent<'d> {
    /// The app.
    pub app: &'d App,
    /// The link to open.
    pub link: String,
    /// What to do with it.
    pub note: String,
}

/// The consents of consumers that hold no live grant yet.
pub fn consent_links<'d>(work: &[Work<'_, 'd>]) -> Result<Vec<Consent<'d>>, Error> {
    let mut links = Vec::new();
    for w in work {
        if let Some(end) = &w.consumer
            && let Some(link) = end.consent_link()?
        {
            let note = end.consent_note(&link);
            links.push(Consent { app: w.app, link, note });
        }
    }
    Ok(links)
}

/// The links as `--json` prints them.
pub fn links_json(links: &[Consent<'_>]) -> Vec<Value> {
    links
        .iter()
        .map(|c| json!({"app": c.app.name, "consent_url": c.link}))
        .collect()
}

/// One manifest to restore.
pub struct Restore<'r, 'd> {
    /// The provider in messages.
    pub provider: &'static str,
    /// The app.
    pub app: &'d App,
    m: Box<dyn ProviderAdmin + 'r>,
    /// Where the saved manifest is (the shared store, or an older connapp's file).
    pub from: history::Saved,
    /// The Zoom app.
    pub app_id: String,
    saved: Value,
    /// What restoring changes on the live app.
    pub changes: Vec<Change>,
}

/// The newest manifest saved before an apply of each app, against the live
/// one; an app without one is skipped unless `named`.
pub fn rollback_plan<'r, 'd>(
    s: &Session<'_, 'r>,
    apps: &[&'d App],
    named: bool,
) -> Result<Vec<Restore<'r, 'd>>, Error> {
    let Session { reg, decl, shared, obs } = *s;
    let data_dir = shared.data_dir().to_path_buf();
    let none =
        "no manifest was saved before an apply (the shared store holds none, nor this machine); nothing to roll back";
    let mut work = Vec::new();
    for app in apps {
        let Some(from) = history::newest(&shared.store, &data_dir, &app.name)? else {
            if named {
                return Err(Error::failure(format!("{}: {none}", app.name)).hint(format!(
                    "apply saves the live manifest under {} in the store before it changes the app",
                    history::key_prefix(&app.name)
                )));
            }
            continue;
        };
        let (app_id, saved) = history::read(&shared.store, &app.name, &from)?;
        let c = AppCtx::load(reg, decl, Some(&app.name), shared)?;
        let m = provider_admin(reg, decl, &c, obs)?;
        let live = m.export(app, &app_id)?;
        let changes = manifest::diff(&live, &saved);
        work.push(Restore {
            provider: m.provider(),
            app,
            m,
            from,
            app_id,
            saved,
            changes,
        });
    }
    if work.is_empty() {
        return Err(Error::failure(none));
    }
    Ok(work)
}

/// Restores one saved manifest; the saved copy (in `store`), having done
/// its job, is removed (an older one is next).
pub fn restore(store: &connapp_plugin_api::StoreHandle, r: &Restore<'_, '_>) -> Result<(), Error> {
    if !r.changes.is_empty() {
        r.m.restore(r.app, &r.app_id, &r.saved)?;
    }
    history::remove(store, &r.app.name, &r.from)
}
