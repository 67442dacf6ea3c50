//! `verify`'s checks of the consumer end on a ServiceNow instance: the record
//! chain present and linked, the grant types, the redirect URL ServiceNow
//! sends against the provider's, and ServiceNow's own refresh token.

use connapp_core::urls;
use connapp_engine::Error;
use connapp_engine::tokens::AppCtx;
use connapp_engine::verify::{Check, Outcome, row, ymd};
use connapp_plugin_api::contract::ConsumerRecords;
use serde_json::Value;

use crate::consumer::{Mode, consent_link, consumer, credentials_hint, error, has_credentials, run, token_expiry};

/// The chain checks as the engine's `ConsumerChecks` for ServiceNow targets.
pub struct Chain;

/// The checks `connapp-clients` selects for ServiceNow targets.
pub static CHAIN: Chain = Chain;

impl connapp_engine::manage::ConsumerChecks for Chain {
    fn kind(&self) -> &'static str {
        crate::PLATFORM
    }
    fn checks(
        &self,
        c: &AppCtx<'_>,
        desired: &mut dyn FnMut() -> Result<ConsumerRecords, Error>,
        registered: &[String],
        checks: &mut Vec<Check>,
    ) -> Result<(), Error> {
        chain(c, desired, registered, checks)
    }
}

/// The ServiceNow record chain: present and linked, grant types, the redirect
/// URL ServiceNow sends versus the ones the provider has registered
/// (`registered`: the live app's, else the declared one), and a live refresh token.
pub fn chain(
    c: &AppCtx<'_>,
    desired: impl FnOnce() -> Result<ConsumerRecords, Error>,
    registered: &[String],
    checks: &mut Vec<Check>,
) -> Result<(), Error> {
    let Some(target) = &c.app.target else {
        return Ok(());
    };
    let base = target.instance_url.clone();
    if !has_credentials(c)? {
        checks.push(
            row("servicenow", base, "", Outcome::Skip)
                .detail("no instance credentials are stored, so the ServiceNow chain cannot be checked")
                .fix(credentials_hint(&c.app)),
        );
        return Ok(());
    }
    let failed = |checks: &mut Vec<Check>, e: Error| {
        checks.push(
            row("servicenow", base.clone(), "GET /api/now/table", Outcome::Fail)
                .detail(e.message)
                .fix(e.hint.unwrap_or_default()),
        );
    };
    let cons = match consumer(c, desired) {
        Ok(Some(k)) => k,
        Ok(None) => return Ok(()),
        Err(e) => {
            failed(checks, e);
            return Ok(());
        }
    };
    let (plan, ids) = match run(c, &cons, Mode::Plan) {
        Ok(r) => r,
        Err(e) => {
            failed(checks, e);
            return Ok(());
        }
    };
    for i in &plan.items {
        let (result, detail, fix) = match i.action {
            "none" => (Outcome::Ok, "present and linked".to_string(), String::new()),
            "create" | "created-by-instance" => (
                Outcome::Fail,
                match i.table.as_str() {
                    "oauth_entity_scope" => {
                        format!("missing scope record: ServiceNow has no {} for this provider", i.label)
                    }
                    "oauth_entity_profile_scope" => format!("the scope is not linked to the profile: {}", i.label),
                    _ => format!("missing: {}", i.label),
                },
                "connapp apply".to_string(),
            ),
            "update" => {
                let grant = i
                    .changes
                    .iter()
                    .any(|(f, _, _)| f == "grant_type" || f == "default_grant_type");
                let linked = i
                    .changes
                    .iter()
                    .any(|(f, _, _)| f == "oauth_entity_profile" || f == "credential" || f == "oauth_entity");
                let what: Vec<String> = i
                    .changes
                    .iter()
                    .map(|(f, b, a)| format!("{f}: {b:?} (wanted {a:?})"))
                    .collect();
                let head = if grant {
                    "Default grant type of the provider must be same as the profile's grant type".to_string()
                } else if linked {
                    "not linked as DEX needs it".to_string()
                } else {
                    "differs from the declaration".to_string()
                };
                (
                    Outcome::Fail,
                    format!("{head}: {}", what.join("; ")),
                    "connapp apply".to_string(),
                )
            }
            _ => (
                Outcome::Warn,
                format!("not declared: {} (apply removes it)", i.label),
                "connapp apply".to_string(),
            ),
        };
        checks.push(
            row("servicenow", i.label.clone(), i.table.clone(), result)
                .detail(detail)
                .fix(fix),
        );
    }
    // The redirect URL ServiceNow sends must be one Zoom has registered.
    if let Some(pid) = ids.get("provider") {
        let rows = c
            .shared
            .rt
            .block_on(
                cons.inst
                    .list("oauth_entity", &format!("sys_id={pid}"), &["redirect_url"]),
            )
            .map_err(|e| error(&c.app.name, e))?;
        let sn_redirect = rows
            .first()
            .and_then(|r| r.get("redirect_url"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let r = row("servicenow", "redirect URL", "oauth_entity.redirect_url", Outcome::Ok);
        checks.push(if registered.iter().any(|z| z == &sn_redirect) {
            r.detail(format!("ServiceNow sends {sn_redirect:?}, registered in Zoom"))
        } else {
            let z = registered.first().cloned().unwrap_or_default();
            r.result_of(Outcome::Fail)
                .detail(format!(
                    "ServiceNow sends {sn_redirect:?} but Zoom's redirect URL is {z:?}: {}; Zoom would answer 4700 at consent (or 4709 at the token exchange)",
                    urls::describe_difference(&z, &sn_redirect)
                ))
                .fix("connapp apply (it sets both ends to the declared redirect URL)")
        });
    }
    // ServiceNow's own grant: a refresh token that is still alive.
    let r = row("servicenow", "ServiceNow's token", "oauth_credential", Outcome::Ok);
    let link = consent_link(&cons, &ids).unwrap_or_default();
    checks.push(match token_expiry(c, &cons, &ids)? {
        None => r
            .result_of(Outcome::Fail)
            .detail("ServiceNow holds no OAuth token for the credential: nobody has pressed \"Get OAuth Token\" yet")
            .fix(format!("an admin opens {link} and allows access in Zoom")),
        Some(exp) if exp <= connapp_engine::tokens::now() => r
            .result_of(Outcome::Fail)
            .detail(format!(
                "ServiceNow's refresh token expired on {}; DEX gets no data",
                ymd(exp)
            ))
            .fix(format!("an admin opens {link} and allows access in Zoom again")),
        Some(exp) => r.detail(format!("a refresh token valid until {}", ymd(exp))),
    });
    Ok(())
}

/// A chain record row that passed.
fn is_ok_record(c: &Check) -> bool {
    c.check == "servicenow" && c.result == Outcome::Ok && c.detail == "present and linked"
}

/// The report for humans: the chain's passing record rows fold into one line
/// where the first of them stood (`--json` keeps every row).
pub fn for_humans(all: &[Check]) -> Vec<Check> {
    let ok_records = all.iter().filter(|c| is_ok_record(c)).count();
    let mut out = Vec::new();
    let mut folded = false;
    for c in all {
        if !is_ok_record(c) {
            out.push(c.clone());
        } else if !folded {
            folded = true;
            out.push(
                row(
                    "servicenow",
                    format!("{ok_records} records of the DEX chain"),
                    "Table API",
                    Outcome::Ok,
                )
                .detail("present and linked"),
            );
        }
    }
    out
}
