//! `connapp verify` (alias `doctor`): proves the app works and explains every
//! failure in the user's terms. Checks, in order: the declaration, the stored
//! secrets, drift between the provider's live app settings and the
//! declaration, the redirect URLs the provider will accept, connapp's own
//! grant, the scopes it holds, one API call per scope (the preset's probe),
//! and the consumer's end. The checks are the engine's and the clients'
//! (`connapp_engine::verify`, `connapp_servicenow::verify`); this file
//! composes them and prints the report.

use std::io::Write;

use connapp_core::GrantKind;
use connapp_engine::verify::{self, ApiHabits, Check, Outcome, Rfc6750, row};
use serde::Serialize;

use crate::cli::{Global, VerifyArgs};
use crate::cmd_token::{self, Terminal};
use crate::ctx;
use crate::error::{CliError, Exit};

#[derive(Serialize)]
struct VerifyJson<'a> {
    app: &'a str,
    ok: bool,
    checks: &'a [Check],
}

/// A ServiceNow record row that passed (shown as one summary line for humans).
fn is_ok_record(c: &Check) -> bool {
    c.check == "servicenow" && c.result == Outcome::Ok && c.detail == "present and linked"
}

fn print_table(out: &mut impl Write, all: &[Check]) -> std::io::Result<()> {
    // The record chain's passing rows fold into one line; `--json` keeps every row.
    let ok_records = all.iter().filter(|c| is_ok_record(c)).count();
    let mut summary = None;
    if ok_records > 0 {
        summary = Some(
            row(
                "servicenow",
                format!("{ok_records} records of the DEX chain"),
                "Table API",
                Outcome::Ok,
            )
            .detail("present and linked"),
        );
    }
    let mut checks: Vec<&Check> = Vec::new();
    let mut folded = false;
    for c in all {
        if is_ok_record(c) {
            if !folded {
                checks.extend(summary.as_ref());
                folded = true;
            }
            continue;
        }
        checks.push(c);
    }
    let w_item = checks.iter().map(|c| c.item.len()).max().unwrap_or(4).clamp(4, 56);
    let w_ep = checks.iter().map(|c| c.endpoint.len()).max().unwrap_or(8).clamp(8, 64);
    writeln!(
        out,
        "{:<6} {:<11} {:<w_item$} {:<w_ep$} WHAT TO DO",
        "RESULT", "CHECK", "ITEM", "ENDPOINT"
    )?;
    for c in &checks {
        writeln!(
            out,
            "{:<6} {:<11} {:<w_item$} {:<w_ep$} {}",
            c.result.word(),
            c.check,
            c.item,
            c.endpoint,
            if c.fix.is_empty() { "-" } else { c.fix.as_str() }
        )?;
        if !c.detail.is_empty() && c.result != Outcome::Ok {
            writeln!(out, "       {}", c.detail)?;
        }
    }
    Ok(())
}

pub fn run(g: &Global, a: VerifyArgs) -> Result<(), CliError> {
    let (reg, path, decl) = ctx::declared(g)?;
    let c = cmd_token::load(&reg, &decl, a.app.as_deref())?;
    let app = c.app.clone();
    let provider = c.display().to_string();
    let settings = format!("{provider} app settings");
    let mut checks =
        vec![row("declaration", path.display().to_string(), "", Outcome::Ok).detail("valid (`connapp check`)")];
    verify::secrets(&c, &mut checks)?;

    // Drift: only when connapp can reach the Marketplace API.
    let mut live = None;
    if app.managed_by.is_some() && app.redirect_url.is_some() {
        match crate::cmd_apply::drift(&reg, &decl, &c, g) {
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
            .provider_manifest(
                &app.platform,
                &connapp_engine::platform::app_view(&reg, &app).to_string(),
            )?
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
        if let Some(t) = &app.target {
            checks.push(verify::redirect_probe(&c, &t.redirect_url(), &allowed, "ServiceNow"));
        } else if let Some(r) = &app.redirect_url {
            checks.push(verify::redirect_probe(&c, r, &allowed, "the consumer"));
        }
        if let Some(l) = &app.oauth.login_redirect {
            checks.push(verify::redirect_probe(&c, l, &allowed, "`connapp login`"));
        }
    }

    // connapp's own grant and the scopes it holds, in the provider's terms.
    let habits: &dyn ApiHabits = connapp_zoom::habits::of_platform(&app.platform).unwrap_or(&Rfc6750);
    verify::own_grant(&reg, &c, habits, &Terminal { quiet: g.quiet }, &mut checks);

    // The consumer chain, when connapp can sign in to the instance.
    if app.target.is_some() {
        let registered = match &live {
            Some(m) => connapp_zoom::redirect_urls(m),
            None => app.redirect_url.clone().into_iter().collect(),
        };
        connapp_servicenow::verify::chain(
            &c,
            || connapp_engine::platform::consumer_records(&reg, &c),
            &registered,
            &mut checks,
        )?;
    }

    let ok = !checks.iter().any(|c| c.result == Outcome::Fail);
    if a.json {
        ctx::print_json(&VerifyJson {
            app: &app.name,
            ok,
            checks: &checks,
        })?;
    } else {
        let mut out = std::io::stdout().lock();
        print_table(&mut out, &checks)?;
        let failed = checks.iter().filter(|c| c.result == Outcome::Fail).count();
        if ok {
            writeln!(out, "{}: everything declared works.", app.name)?;
        } else {
            writeln!(out, "{}: {failed} check(s) failed; see WHAT TO DO.", app.name)?;
        }
    }
    if ok {
        Ok(())
    } else {
        Err(CliError::with_code(Exit::Failure, String::new()))
    }
}
