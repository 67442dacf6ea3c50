//! The Zoom app as code: plan, create, update, validate, confirm and
//! restore an app's Marketplace manifest through its management app
//! (`managed_by`: a Server-to-Server app with `marketplace:` scopes).
//!
//! apply = export the live manifest -> merge the platform's desired settings
//! (settings connapp does not manage survive) -> validate with Zoom -> keep
//! the live manifest for `--rollback` (`connapp_engine::history`) -> write (a
//! full replacement) -> export again and compare. Without an app id the app
//! is created and its Client ID / Client Secret go straight into the store.

use connapp_core::manifest::{self, Change};
use connapp_core::{App, GrantKind, SecretKind};
use connapp_engine::history;
use connapp_engine::manage::{AppPlan, Blocked, CreateIntent, Intents, PlanAction, Revoked, Started};
use connapp_engine::secrets::Secrets;
use connapp_engine::tokens::{AppCtx, Event, Observer, Silent};
use connapp_engine::{Error, ErrorKind, Retry};
use connapp_oauth::api::{Api, ApiError};
use connapp_oauth::lifecycle::{fault, host_name};
use connapp_plugin_api::Expected;
use connapp_plugin_api::zeroize::Zeroizing;
use serde_json::{Value, json};

use crate::Marketplace;

/// The provider's name in messages.
pub const PROVIDER: &str = "Zoom";

/// The error for an app connapp cannot reach at Zoom (no `managed_by`).
pub fn not_managed(app: &App) -> Error {
    Error::invalid(
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
pub fn api_error(what: &str, mgr: &str, e: ApiError) -> Error {
    match &e {
        ApiError::Edge(_) => Error::new(ErrorKind::Unreachable, format!("{what}: {e}"))
            .hint("check the network and the API base in the declaration; nothing was changed"),
        ApiError::Status { code: Some(4711), .. } => Error::failure(format!("{what}: {e}")).hint(format!(
            "the token of {mgr} lacks a Marketplace scope: add it to that app in Zoom, then run `connapp refresh {mgr}` (server-to-server apps get the new scopes on the next token)"
        )),
        ApiError::Status { status: 401, .. } => Error::failure(format!("{what}: {e}"))
            .hint(format!("the token of {mgr} was refused: run `connapp login {mgr}`")),
        ApiError::Status { code: Some(1500), .. } | ApiError::Status { status: 404, .. } => {
            Error::failure(format!("{what}: {e}")).hint(
                "check app_id (the id in the app's Marketplace URL); Zoom exports manifests of draft General apps only",
            )
        }
        ApiError::Status { status: 429, rate, .. } => {
            let e2 = Error::failure(format!("{what}: {e}")).hint(match &rate.retry_after {
                Some(t) => format!("Zoom rate-limited the Marketplace API; try again after {t}"),
                None => "Zoom rate-limited the Marketplace API; try again in a minute".into(),
            });
            // Typed, so a batch run pauses this account until then (a QPS
            // refusal without the header: a second).
            let retry = rate
                .retry_after
                .as_deref()
                .and_then(Retry::parse)
                .unwrap_or(Retry::After(1));
            e2.retry(retry)
        }
        _ => Error::failure(format!("{what}: {e}")),
    }
}

/// The management connection of one app.
pub struct Manager<'r> {
    /// The management app (its token is the one used).
    pub ctx: AppCtx<'r>,
    api: std::sync::Mutex<Api>,
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
        let current = self.api.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match self.ctx.shared.rt.block_on(f(current)) {
            Err(e) if e.code() == Some(124) && self.ctx.app.oauth.grant != GrantKind::AuthorizationCode => {
                let Ok(rec) = self.ctx.renew(&Silent).map(|(r, _)| r) else {
                    return Err(e);
                };
                let root = self.ctx.api_root(&rec);
                let Ok(http) = self.ctx.shared.http() else {
                    return Err(e);
                };
                let Ok(api) = crate::api(&http, &root, &rec.access_token) else {
                    return Err(e);
                };
                *self.api.lock().unwrap_or_else(|p| p.into_inner()) = api.clone();
                self.ctx.shared.rt.block_on(f(api))
            }
            r => r,
        }
    }
}

/// A management connection over `mgmt`, the management app (loaded on the
/// same store and runtime as the app it manages): its token now, renewed when
/// Zoom refuses it.
impl connapp_engine::manage::ProviderAdmin for Manager<'_> {
    fn provider(&self) -> &'static str {
        PROVIDER
    }
    fn plan(&self, app: &App, desired: &Value) -> Result<AppPlan, Error> {
        plan(self, app, desired)
    }
    fn apply(&self, app: &App, p: &mut AppPlan, obs: &dyn Observer) -> Result<(), Error> {
        match p.action {
            PlanAction::Create => {
                let id = create(self, app, &p.merged, obs)?;
                confirm_written(self, app, &id, &p.merged)?;
                p.app_id = Some(id);
            }
            PlanAction::Adopt => {
                let id = p.app_id.clone().unwrap_or_default();
                adopt(self, app, &id, obs)?;
                if !p.changes.is_empty() {
                    update(self, p, app, &id)?;
                    confirm_written(self, app, &id, &p.merged)?;
                }
                Intents::new(&self.ctx.shared.store).clear(&app.name)?;
            }
            PlanAction::Update => {
                let id = p.app_id.clone().unwrap_or_default();
                update(self, p, app, &id)?;
                confirm_written(self, app, &id, &p.merged)?;
            }
            _ => {}
        }
        Ok(())
    }
    fn export(&self, app: &App, app_id: &str) -> Result<Value, Error> {
        export(self, app, app_id)
    }
    fn restore(&self, app: &App, app_id: &str, saved: &Value) -> Result<(), Error> {
        restore(self, app, app_id, saved)
    }
    fn reconsent_note(&self, app: &App, added: &[String]) -> Option<String> {
        (!added.is_empty()).then(|| reconsent_note(app, added))
    }
    fn start_secret_rotation(&self, app: &App, revoke_old_at: u64) -> Result<Started, Error> {
        let mgr = app.managed_by.clone().unwrap_or_default();
        let id = rotation_app_id(self, app)?;
        let started = self.call(|api| {
            let id = id.clone();
            async move {
                Marketplace::new(&api)
                    .start_secret_rotation(&id, crate::Revoke::At(revoke_old_at))
                    .await
            }
        });
        match started {
            Ok(Some(r)) => Ok(Started::Issued(r.client_secret)),
            Ok(None) => Ok(Started::NoSecretInAnswer),
            // 300 "already in progress": a rotation whose new secret connapp never saw.
            Err(ApiError::Status {
                status: 400,
                code: Some(300),
                ref message,
                ..
            }) if message.contains("already in progress") => Ok(Started::AlreadyInProgress(message.clone())),
            Err(e) => Err(rotation_error(
                &format!("{}: start the Client Secret rotation", app.name),
                &mgr,
                e,
            )),
        }
    }
    fn revoke_old_secret(&self, app: &App, at: Option<u64>) -> Result<Revoked, Error> {
        let mgr = app.managed_by.clone().unwrap_or_default();
        let id = rotation_app_id(self, app)?;
        let when = at.map_or(crate::Revoke::Now, crate::Revoke::At);
        match self.call(|api| {
            let id = id.clone();
            async move { Marketplace::new(&api).reschedule_secret_revocation(&id, when).await }
        }) {
            Ok(()) => Ok(Revoked::Done),
            // 300 "No client secret rotation is in progress": the overlap is over.
            Err(ApiError::Status {
                status: 400,
                code: Some(300),
                ref message,
                ..
            }) if message.contains("No client secret rotation") => Ok(Revoked::AlreadyRevoked),
            Err(e) => Err(rotation_error(
                &format!("{}: move the old Client Secret's revocation", app.name),
                &mgr,
                e,
            )),
        }
    }
}

/// The app id a rotation needs: without one, nothing at Zoom can be rotated.
fn rotation_app_id(m: &Manager<'_>, app: &App) -> Result<String, Error> {
    app_id(m, app)?.ok_or_else(|| {
        Error::failure(format!("{}: connapp knows no Zoom app id for it", app.name)).hint(format!(
            "run `connapp apply {0}` first (it creates the app and keeps its id), or set app_id in [apps.{0}]",
            app.name
        ))
    })
}

/// A refused rotation call, with Zoom's own words and what to do: the
/// schedule's rate limit says when to try again.
fn rotation_error(what: &str, mgr: &str, e: ApiError) -> Error {
    match &e {
        ApiError::Status { status: 429, rate, .. } => Error::failure(format!("{what}: {e}")).hint(match &rate.retry_after {
            Some(t) => format!(
                "Zoom allows about 3 rotation schedule changes per app in 15 minutes; nothing was changed: run the same command again after {t}"
            ),
            None => "Zoom allows about 3 rotation schedule changes per app in 15 minutes; nothing was changed: run the same command again in 15 minutes".into(),
        }),
        _ => api_error(what, mgr, e),
    }
}

pub fn manager<'r>(mgmt: AppCtx<'r>, obs: &dyn Observer) -> Result<Manager<'r>, Error> {
    let (rec, _) = mgmt.token(obs)?;
    let root = mgmt.api_root(&rec);
    let http = mgmt
        .shared
        .http()
        .map_err(|e| Error::failure(format!("{}: {e}", mgmt.app.name)))?;
    let api =
        crate::api(&http, &root, &rec.access_token).map_err(|e| Error::invalid(format!("{}: {e}", mgmt.app.name)))?;
    Ok(Manager {
        ctx: mgmt,
        api: std::sync::Mutex::new(api),
    })
}

/// The provider's app id: the declaration's, else the one `apply` stored.
pub fn app_id(m: &Manager<'_>, app: &App) -> Result<Option<String>, Error> {
    if let Some(id) = &app.app_id {
        return Ok(Some(id.clone()));
    }
    let rec = m.ctx.secret_of(&app.name, SecretKind::AppId)?;
    Ok(rec.map(|v| String::from_utf8_lossy(&v).into_owned()))
}

pub fn scope_delta(before: &Value, after: &Value) -> (Vec<String>, Vec<String>) {
    let (b, a) = (crate::manifest_scopes(before), crate::manifest_scopes(after));
    (
        a.iter().filter(|s| !b.contains(s)).cloned().collect(),
        b.iter().filter(|s| !a.contains(s)).cloned().collect(),
    )
}

/// What applying the declaration (`want`: the platform's desired settings)
/// would change on the app's Zoom app, read from its live manifest.
pub fn plan(m: &Manager<'_>, app: &App, want: &Value) -> Result<AppPlan, Error> {
    let mut id = app_id(m, app)?;
    let mgr = app.managed_by.clone().unwrap_or_default();
    // A create begun and never finished: find what Zoom made of it.
    let mut adopt = false;
    let mut blocked = None;
    if app.app_id.is_none()
        && let Some(intent) = Intents::new(&m.ctx.shared.store).get(&app.name)?
    {
        match &id {
            // The id reached the store; the credentials may not have.
            Some(_) => adopt = true,
            None => match made_by(m, app, &intent)?.as_slice() {
                // The create never reached Zoom: create again.
                [] => {}
                [one] => {
                    id = Some(one.clone());
                    adopt = true;
                }
                many => {
                    blocked = Some(Blocked {
                        message: format!(
                            "{}: a create begun on {} never finished, and Zoom now has {} apps called {:?} that were not there before it: {}",
                            app.name,
                            intent.host,
                            many.len(),
                            intent.display_name,
                            many.join(", ")
                        ),
                        fix: format!(
                            "set `app_id = \"...\"` in [apps.{0}] to the one to keep (and delete the others in the Marketplace), then run `connapp apply {0}` again",
                            app.name
                        ),
                    })
                }
            },
        }
    }
    let live = match &id {
        Some(id) => m
            .call(|api| async move { Marketplace::new(&api).export_manifest(id).await })
            .map_err(|e| api_error(&format!("{}: export the manifest of Zoom app {id}", app.name), &mgr, e))?,
        None => json!({}),
    };
    let merged = manifest::merge(&live, want);
    let changes = manifest::diff(&live, &merged);
    let (scopes_added, scopes_removed) = scope_delta(&live, &merged);
    let action = match (&id, changes.is_empty()) {
        _ if adopt => PlanAction::Adopt,
        (None, _) => PlanAction::Create,
        (Some(_), true) => PlanAction::None,
        (Some(_), false) => PlanAction::Update,
    };
    if action == PlanAction::Create && blocked.is_none() {
        blocked = create_blocker(m, app)?;
    }
    Ok(AppPlan {
        blocked,
        provider: PROVIDER.to_string(),
        app: app.name.clone(),
        app_id: id,
        managed_by: mgr,
        action,
        changes,
        scopes_added,
        scopes_removed,
        live,
        merged,
    })
}

/// Asks Zoom whether it would accept `manifest`; its objections, by setting, are the error.
pub fn validate(m: &Manager<'_>, app: &App, manifest: &Value, id: Option<&str>) -> Result<(), Error> {
    let mgr = app.managed_by.clone().unwrap_or_default();
    let problems = m
        .call(|api| async move { Marketplace::new(&api).validate_manifest(manifest, id).await })
        .map_err(|e| api_error(&format!("{}: validate the manifest", app.name), &mgr, e))?;
    if problems.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = problems.iter().map(|(s, msg)| format!("  {s}: {msg}")).collect();
    Err(Error::invalid(format!(
        "Zoom refused the manifest of {} (nothing was changed):\n{}",
        app.name,
        lines.join("\n")
    ))
    .hint("fix the declaration (`connapp check`), then run `connapp plan` again"))
}

/// Exports again and checks that Zoom kept everything that was written.
pub fn confirm_written(m: &Manager<'_>, app: &App, id: &str, written: &Value) -> Result<(), Error> {
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
    Err(Error::failure(format!(
        "{}: Zoom accepted the manifest but exports it differently (written -> exported):\n{}",
        app.name,
        lines.join("\n")
    ))
    .hint("Zoom drops settings it does not know; check these in the Marketplace, then run `connapp plan`"))
}

/// Why creating `app` would be refused: its credentials are stored but no
/// app id is known, so the app seems to exist already (a second one would
/// strand the first's credentials). `plan` reports it; `create` refuses.
pub fn create_blocker(m: &Manager<'_>, app: &App) -> Result<Option<Blocked>, Error> {
    for kind in [SecretKind::ClientId, SecretKind::ClientSecret] {
        if m.ctx.secret_of(&app.name, kind)?.is_some() {
            return Ok(Some(Blocked {
                message: format!(
                    "{}: a {} is stored but no app id: this app seems to exist already, so apply will not create another",
                    app.name,
                    kind.label()
                ),
                fix: format!(
                    "set `app_id = \"...\"` in [apps.{0}] (the id in the app's Marketplace URL) to manage that app; or remove the stored secrets (`connapp secrets rm client-id --app {0}`, and client-secret) to let apply create a new one",
                    app.name
                ),
            }));
        }
    }
    Ok(None)
}

/// Creates the Zoom app; its app id and credentials go straight into the
/// store (never printed). Returns the app id.
pub fn create(m: &Manager<'_>, app: &App, merged: &Value, obs: &dyn Observer) -> Result<String, Error> {
    let mgr = app.managed_by.clone().unwrap_or_default();
    let store = &m.ctx.shared.store;
    if let Some(b) = create_blocker(m, app)? {
        return Err(b.error());
    }
    validate(m, app, merged, None)?;
    // The intent first: a run that dies before the id is stored leaves it,
    // and the next run adopts the app instead of creating a second one.
    let existing = m
        .call(|api| async move { Marketplace::new(&api).apps_called(&app.display_name).await })
        .map_err(|e| api_error(&format!("{}: list the account's apps", app.name), &mgr, e))?;
    let intent = CreateIntent {
        display_name: app.display_name.clone(),
        existing,
        host: host_name(),
        at: m.ctx.shared.now(),
    };
    Intents::new(store).put(&app.name, &intent)?;
    fault("create-after-intent");
    let mut answer = m
        .call(|api| async move { Marketplace::new(&api).create_app(&app.display_name, merged).await })
        .map_err(|e| api_error(&format!("{}: create the Zoom app", app.name), &mgr, e))?;
    fault("create-after-answer");
    let id = answer
        .get("app_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::failure(format!("{}: Zoom created the app but sent no app_id", app.name)))?;
    Secrets::new(store)
        .put(&app.name, SecretKind::AppId, id.as_bytes(), Expected::Any)
        .map_err(|e| m.ctx.shared.store_error(e))?;
    fault("create-after-app-id");
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
                    .put_dated(&app.name, kind, v.as_bytes(), Expected::Absent, m.ctx.shared.now())
                    .map_err(|e| m.ctx.shared.store_error(e))?;
                stored.push(kind.label());
            }
        }
    }
    drop(answer);
    Intents::new(store).clear(&app.name)?;
    let location = store.describe().map(|d| d.location).unwrap_or_default();
    if stored.is_empty() {
        obs.event(Event::Notice(&format!(
            "Zoom sent no credentials with the new app: copy the Client ID and Client Secret from its App Credentials page and run `connapp secrets set client-id --app {0}` and `connapp secrets set client-secret --app {0}`",
            app.name
        )));
    } else {
        obs.event(Event::Notice(&format!(
            "Created Zoom app {id}; its {} went straight into {location} (never printed).",
            stored.join(" and ")
        )));
    }
    obs.event(Event::Notice(&format!(
        "Next: copy the Secret Token from the app's Features > Access page in the Marketplace and run `connapp secrets set secret-token --app {}`",
        app.name
    )));
    Ok(id)
}

/// The apps Zoom now has under the intent's name that it did not have before it.
fn made_by(m: &Manager<'_>, app: &App, intent: &CreateIntent) -> Result<Vec<String>, Error> {
    let mgr = app.managed_by.clone().unwrap_or_default();
    let name = intent.display_name.as_str();
    let found = m
        .call(|api| async move { Marketplace::new(&api).apps_called(name).await })
        .map_err(|e| api_error(&format!("{}: list the account's apps", app.name), &mgr, e))?;
    Ok(found.into_iter().filter(|id| !intent.existing.contains(id)).collect())
}

/// Takes over the Zoom app `id` that an interrupted create made: its id
/// goes into the store and, when the credentials never got there, a new
/// Client Secret is issued (the old one revoked at once: nobody holds it)
/// and stored with the Client ID.
pub fn adopt(m: &Manager<'_>, app: &App, id: &str, obs: &dyn Observer) -> Result<(), Error> {
    let mgr = app.managed_by.clone().unwrap_or_default();
    let store = &m.ctx.shared.store;
    let secrets = Secrets::new(store);
    secrets
        .put(&app.name, SecretKind::AppId, id.as_bytes(), Expected::Any)
        .map_err(|e| m.ctx.shared.store_error(e))?;
    let has = |kind| secrets.get(&app.name, kind).map(|r| r.is_some());
    let complete = has(SecretKind::ClientId).map_err(|e| m.ctx.shared.store_error(e))?
        && has(SecretKind::ClientSecret).map_err(|e| m.ctx.shared.store_error(e))?;
    if complete {
        obs.event(Event::Notice(&format!(
            "{}: finished the create of Zoom app {id} that an interrupted run began.",
            app.name
        )));
        return Ok(());
    }
    let issued = m
        .call(|api| async move {
            Marketplace::new(&api)
                .start_secret_rotation(id, crate::Revoke::Now)
                .await
        })
        .map_err(|e| {
            api_error(
                &format!("{}: issue a Client Secret for the adopted app", app.name),
                &mgr,
                e,
            )
        })?;
    let Some(rotated) = issued.filter(|r| r.client_id.is_some()) else {
        return Err(Error::failure(format!(
            "{}: adopted Zoom app {id}, but Zoom's answer to a new Client Secret held no credentials",
            app.name
        ))
        .hint(format!(
            "copy the Client ID and Client Secret from the app's App Credentials page and run `connapp secrets set client-id --app {0}` and `connapp secrets set client-secret --app {0}`",
            app.name
        )));
    };
    let client_id = rotated.client_id.clone().unwrap_or_default();
    let now = m.ctx.shared.now();
    for (kind, value) in [
        (SecretKind::ClientId, client_id.as_bytes()),
        (SecretKind::ClientSecret, rotated.client_secret.as_bytes()),
    ] {
        secrets
            .put_dated(&app.name, kind, value, Expected::Any, now)
            .map_err(|e| m.ctx.shared.store_error(e))?;
    }
    obs.event(Event::Notice(&format!(
        "{}: adopted Zoom app {id}, which an interrupted run created; its Client Secret never reached the store, so Zoom issued a new one (the lost one is revoked) and both credentials went into the store.",
        app.name
    )));
    Ok(())
}

/// Writes the plan's merged manifest to the Zoom app `id` after Zoom
/// validated it; the live one is saved first for `--rollback`.
pub fn update(m: &Manager<'_>, p: &AppPlan, app: &App, id: &str) -> Result<(), Error> {
    let mgr = app.managed_by.clone().unwrap_or_default();
    validate(m, app, &p.merged, Some(id))?;
    history::save(
        &m.ctx.shared.store,
        &app.name,
        id,
        &p.live,
        m.ctx.shared.now(),
        &host_name(),
    )?;
    m.call(|api| async move { Marketplace::new(&api).replace_manifest(id, &p.merged).await })
        .map_err(|e| api_error(&format!("{}: write the manifest", app.name), &mgr, e))
}

/// The live manifest of the Zoom app `id`.
pub fn export(m: &Manager<'_>, app: &App, id: &str) -> Result<Value, Error> {
    let mgr = app.managed_by.clone().unwrap_or_default();
    m.call(|api| async move { Marketplace::new(&api).export_manifest(id).await })
        .map_err(|e| api_error(&format!("{}: export the manifest of Zoom app {id}", app.name), &mgr, e))
}

/// Writes a saved manifest back to the Zoom app `id` (validated first,
/// confirmed by exporting again).
pub fn restore(m: &Manager<'_>, app: &App, id: &str, saved: &Value) -> Result<(), Error> {
    let mgr = app.managed_by.clone().unwrap_or_default();
    validate(m, app, saved, Some(id))?;
    m.call(|api| async move { Marketplace::new(&api).replace_manifest(id, saved).await })
        .map_err(|e| api_error(&format!("{}: write the manifest", app.name), &mgr, e))?;
    confirm_written(m, app, id, saved)
}

/// The note after an update that added scopes: who must consent again.
pub fn reconsent_note(app: &App, added: &[String]) -> String {
    let who = if app.target.is_some() {
        "In ServiceNow, open the OAuth profile of this app and press \"Get OAuth Token\" (the admin who connected DEX)."
    } else {
        "Whoever consented must consent again."
    };
    format!(
        "{} gained {}: existing grants keep their old scopes until someone consents again (calls needing the new scopes fail with 4711 until then). {who} For connapp's own grant: `connapp login {}`.",
        app.name,
        added.join(", "),
        app.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_delta_names_added_and_removed() {
        let b = json!({"oauth_information": {"scopes": [{"scope": "a"}, {"scope": "b"}]}});
        let a = json!({"oauth_information": {"scopes": [{"scope": "b"}, {"scope": "c"}]}});
        assert_eq!(scope_delta(&b, &a), (vec!["c".to_string()], vec!["a".to_string()]));
    }
}
