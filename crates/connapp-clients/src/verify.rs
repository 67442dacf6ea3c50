//! `verify` composed: the checks of the engine (secrets, redirect URLs,
//! connapp's own grant, one probe per scope), the provider's drift (Zoom's
//! live manifest through `connapp_zoom::admin`) and the consumer's chain
//! (`connapp_servicenow::verify`), in the order a report reads them.

use connapp_core::manifest::Change;
use connapp_core::{Declaration, GrantKind};
use connapp_engine::manage::ConsumerChecks;
use connapp_engine::tokens::{AppCtx, Event, Observer};
use connapp_engine::verify::{self, ApiHabits, Check, Outcome, Rfc6750, row};
use connapp_engine::{Error, platform};
use connapp_host::Registry;
pub use connapp_servicenow::verify::for_humans;
use serde_json::Value;

/// Every check of `c`'s app, in report order; `file` names the declaration
/// (already checked by the caller).
pub fn run(
    reg: &Registry,
    decl: &Declaration,
    file: &str,
    c: &AppCtx<'_>,
    obs: &dyn Observer,
) -> Result<Vec<Check>, Error> {
    let app = c.app.clone();
    let provider = c.display().to_string();
    let settings = format!("{provider} app settings");
    let mut checks = vec![row("declaration", file, "", Outcome::Ok).detail("valid (`connapp check`)")];
    verify::secrets(c, &mut checks)?;
    verify::secret_lifecycle(c, &mut checks)?;

    // Drift: only when connapp can reach the Marketplace API.
    let mut live = None;
    let step = |what: &str| obs.event(Event::Step { app: &app.name, what });
    if app.managed_by.is_some() && app.redirect_url.is_some() {
        step(&format!("reading the live {provider} app's settings"));
        match drift(reg, decl, c, obs) {
            Ok((manifest, changes)) if changes.is_empty() => {
                checks.push(
                    row(
                        "drift",
                        settings.as_str(),
                        "GET /marketplace/apps/{appId}/manifest",
                        Outcome::Ok,
                    )
                    .detail("the live app matches the declaration"),
                );
                live = Some(manifest);
            }
            Ok((manifest, changes)) => {
                let lines: Vec<String> = changes.iter().map(|c| c.line()).collect();
                checks.push(
                    row(
                        "drift",
                        settings.as_str(),
                        "GET /marketplace/apps/{appId}/manifest",
                        Outcome::Fail,
                    )
                    .detail(format!(
                        "the live app differs from the declaration: {}",
                        lines.join("; ")
                    ))
                    .fix("review with `connapp plan`, then `connapp apply`"),
                );
                live = Some(manifest);
            }
            Err(e) => checks.push(
                row(
                    "drift",
                    settings.as_str(),
                    "GET /marketplace/apps/{appId}/manifest",
                    Outcome::Skip,
                )
                .detail(e.message)
                .fix(e.hint.unwrap_or_default()),
            ),
        }
    } else if app.redirect_url.is_some()
        && reg
            .provider_manifest(&app.platform, &platform::app_view(reg, &app).to_string())?
            .is_some()
    {
        // Only a platform whose app settings connapp manages has any to compare.
        checks.push(
            row("drift", settings.as_str(), "", Outcome::Skip)
                .detail("no `managed_by`: connapp cannot read the app's Marketplace settings")
                .fix("compare by hand with `connapp guide`, or declare a management app"),
        );
    }

    // The redirect URLs the provider must accept (its live settings name the closest).
    let allowed = live.as_ref().map(connapp_zoom::allowed_redirects).unwrap_or_default();
    if app.oauth.grant == GrantKind::AuthorizationCode {
        step(&format!("asking {provider} whether it accepts the redirect URLs"));
        if let Some(t) = &app.target
            && let Some(r) = &t.redirect_url
        {
            checks.push(verify::redirect_probe(c, r, &allowed, &t.display));
        } else if let Some(r) = &app.redirect_url {
            checks.push(verify::redirect_probe(c, r, &allowed, "the consumer"));
        }
        if let Some(l) = &app.oauth.login_redirect {
            checks.push(verify::redirect_probe(c, l, &allowed, "`connapp login`"));
        }
    }

    // connapp's own grant and the scopes it holds, in the provider's terms.
    let habits: &dyn ApiHabits = connapp_zoom::habits::of_platform(&app.platform).unwrap_or(&Rfc6750);
    step(&format!("calling {provider} with connapp's own token"));
    verify::own_grant(reg, c, habits, obs, &mut checks);

    // The consumer chain, when connapp can sign in to the instance.
    if app.target.is_some() {
        let registered = match &live {
            Some(m) => connapp_zoom::redirect_urls(m),
            None => app.redirect_url.clone().into_iter().collect(),
        };
        if let Some(t) = &app.target
            && let Some(chain) = consumer_checks(&t.kind)
        {
            step(&format!("reading {}'s token, records and call log", t.display));
            chain.checks(
                c,
                &mut || platform::consumer_records(reg, &c.app, &c.endpoints()),
                &registered,
                &mut checks,
            )?;
        }
    }

    Ok(checks)
}

/// The live manifest of a managed app and how it differs from the declaration.
pub fn drift(
    reg: &Registry,
    decl: &Declaration,
    c: &AppCtx<'_>,
    obs: &dyn Observer,
) -> Result<(Value, Vec<Change>), Error> {
    let m = crate::apply::provider_admin(reg, decl, c, obs)?;
    let p = m.plan(&c.app, &platform::provider_manifest(reg, &c.app)?)?;
    if p.app_id.is_none() {
        return Err(Error::failure(format!("the {} app does not exist yet", m.provider()))
            .hint("run `connapp apply` to create it"));
    }
    Ok((p.live, p.changes))
}

/// What the consumer of `c`'s app holds of its own grant, read from the
/// instance (`None`: no target, or connapp knows no consumer of its kind).
pub fn consumer_grant(reg: &Registry, c: &AppCtx<'_>) -> Option<connapp_engine::manage::ConsumerGrant> {
    let kind = &c.app.target.as_ref()?.kind;
    let checks = consumer_checks(kind)?;
    Some(checks.grant(c, &mut || platform::consumer_records(reg, &c.app, &c.endpoints())))
}

/// Every consumer's checks a client provides.
const CONSUMER_CHECKS: &[&'static dyn ConsumerChecks] = &[&connapp_servicenow::verify::CHAIN];

/// `verify`'s checks for targets of `kind`, if connapp has them.
fn consumer_checks(kind: &str) -> Option<&'static dyn ConsumerChecks> {
    CONSUMER_CHECKS.iter().copied().find(|c| c.kind() == kind)
}
