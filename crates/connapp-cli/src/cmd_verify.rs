//! `connapp verify` (alias `doctor`): proves the app works and explains every
//! failure in the user's terms. Checks, in order: the declaration, the stored
//! secrets, drift between the live Zoom app and the declaration, the redirect
//! URLs Zoom will accept (4700), connapp's own grant, the scopes it holds, and
//! one API call per scope (the preset's probe).

use std::io::Write;

use connapp_core::{GrantKind, SecretKind, urls};
use connapp_engine::verify::{Check, Outcome, row};
use connapp_oauth::api::Api;
use connapp_oauth::record::TokenRecord;
use connapp_zoom::habits::{diagnose, learn};
use serde::Serialize;
use serde_json::Value;

use crate::cli::{Global, VerifyArgs};
use connapp_engine::tokens::AppCtx;

use crate::cmd_token;
use crate::ctx;
use crate::error::{CliError, Exit};

#[derive(Serialize)]
struct VerifyJson<'a> {
    app: &'a str,
    ok: bool,
    checks: &'a [Check],
}

/// `YYYY-MM-DD` of a unix time.
fn ymd(t: u64) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn secrets(c: &AppCtx<'_>, checks: &mut Vec<Check>) -> Result<(), CliError> {
    for kind in SecretKind::ALL {
        let present = c.stored(kind)?.is_some();
        let needed = kind != SecretKind::SecretToken || c.app.webhook.is_some();
        let r = row(
            "secret",
            kind.label(),
            "",
            if present {
                Outcome::Ok
            } else if needed {
                Outcome::Fail
            } else {
                Outcome::Warn
            },
        );
        checks.push(if present {
            r.detail("stored")
        } else {
            r.detail(if needed {
                "not stored".to_string()
            } else {
                "not stored (only needed to verify webhooks)".to_string()
            })
            .fix(format!("connapp secrets set {} --app {}", kind.as_str(), c.app.name))
        });
    }
    Ok(())
}

/// Asks the provider's authorize endpoint whether it accepts `redirect`
/// (no consent happens: the answer is a sign-in or consent page, a redirect,
/// or the provider's page about an unregistered redirect URL).
fn redirect_probe(c: &AppCtx<'_>, redirect: &str, live: Option<&Value>, what: &str) -> Check {
    let provider = c.display().to_string();
    let Some(authorize) = c.endpoints().authorize_url else {
        return row("redirect", redirect, "", Outcome::Skip).detail("the provider has no authorize endpoint");
    };
    let endpoint = format!(
        "GET {}",
        url::Url::parse(&authorize)
            .map(|u| u.path().to_string())
            .unwrap_or_default()
    );
    let probe = match c.authorize_url(redirect) {
        Ok(u) => u,
        Err(e) => {
            return row("redirect", redirect, &endpoint, Outcome::Skip)
                .detail(e.message)
                .fix(e.hint.unwrap_or_default());
        }
    };
    let resp = c.shared.rt.block_on(async {
        let r = c.shared.http.get(&probe).send().await?;
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        Ok::<_, reqwest::Error>((status, body))
    });
    let base = row("redirect", redirect, &endpoint, Outcome::Ok);
    let refused = |status: u16, body: &str| {
        let body = body.to_ascii_lowercase();
        let markers = &c.profile.redirect_refused;
        (400..500).contains(&status)
            && if markers.is_empty() {
                body.contains("redirect_uri")
            } else {
                markers
                    .iter()
                    .any(|m| !m.is_empty() && body.contains(&m.to_ascii_lowercase()))
            }
    };
    match resp {
        Err(e) => base
            .result_of(Outcome::Fail)
            .detail(format!("{provider} could not be reached: {}", e.without_url()))
            .fix("check the network and oauth_base"),
        Ok((status, body)) if refused(status, &body) => {
            let candidates: Vec<String> = live
                .map(|m| {
                    let o = &m["oauth_information"];
                    let mut v: Vec<String> = ["development_redirect_uri", "production_redirect_uri"]
                        .iter()
                        .filter_map(|k| o[*k].as_str().map(str::to_string))
                        .collect();
                    v.extend(
                        o["oauth_allow_list"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|x| x.as_str().map(str::to_string)),
                    );
                    v
                })
                .unwrap_or_default();
            let closest = candidates
                .iter()
                .min_by_key(|c| strsim::levenshtein(c, redirect))
                .cloned();
            let why = match c.profile.redirect_refused.first() {
                Some(code) => format!("{provider} refuses it ({code}: the redirect URL is not registered)"),
                None => format!("{provider} refuses it (the redirect URL is not registered)"),
            };
            let detail = match &closest {
                Some(z) => format!(
                    "{why}. {what} sends {redirect:?}; {provider}'s closest entry is {z:?}: {}",
                    urls::describe_difference(redirect, z)
                ),
                None => format!("{why}. {what} sends {redirect:?}"),
            };
            base.result_of(Outcome::Fail).detail(detail).fix(format!(
                "put {redirect:?} exactly on the {provider} app's redirect URL / allow list (`connapp apply`, or the app's OAuth settings at {provider})"
            ))
        }
        Ok((status, _)) if status < 500 => base.detail(format!("{provider} accepts it as {what}'s redirect")),
        Ok((status, _)) => base
            .result_of(Outcome::Skip)
            .detail(format!("{provider}'s authorize page answered HTTP {status}")),
    }
}

/// One API call per scope, with the preset's probes.
fn probes(reg: &connapp_host::Registry, c: &AppCtx<'_>, api: &Api, rec: &TokenRecord, checks: &mut Vec<Check>) -> bool {
    let known = connapp_engine::platform::preset_scopes(reg, &c.app);
    let now = ctx::now();
    let mut vars: Vec<(String, String)> = vec![
        ("{from}".into(), ymd(now.saturating_sub(27 * 86_400))),
        ("{to}".into(), ymd(now)),
    ];
    let mut saw_124 = false;
    // `None`: the provider's answer did not say what it granted.
    let granted = |scope: &str| rec.scopes.as_ref().map(|g| g.iter().any(|x| x == scope));
    for s in &c.app.scopes {
        let Some(p) = known.iter().find(|k| k.scope == s.scope) else {
            checks.push(
                row(
                    "scope",
                    &s.scope,
                    "",
                    match granted(&s.scope) {
                        Some(true) => Outcome::Ok,
                        Some(false) => Outcome::Fail,
                        None => Outcome::Skip,
                    },
                )
                .detail(match granted(&s.scope) {
                    Some(true) => "granted (no preset probe for this scope)",
                    Some(false) => "not granted, and no preset probe for this scope",
                    None => "the provider did not report the granted scopes, and no preset probe for this scope",
                }),
            );
            continue;
        };
        let endpoint = format!("{} {}", p.probe.method, p.probe.path);
        let fill = |t: &str| {
            let mut t = t.to_string();
            for (k, v) in &vars {
                t = t.replace(k.as_str(), v);
            }
            t
        };
        let path = fill(&p.probe.path);
        let query: Vec<(String, String)> = p.probe.query.iter().map(|(k, v)| (k.clone(), fill(v))).collect();
        if path.contains('{') || query.iter().any(|(_, v)| v.contains('{')) {
            checks.push(
                row("scope", &s.scope, &endpoint, Outcome::Skip)
                    .detail("no past meeting was found through the report to probe with")
                    .fix("hold a short meeting, then run verify again"),
            );
            continue;
        }
        if p.probe.method != "GET" {
            checks.push(row("scope", &s.scope, &endpoint, Outcome::Skip).detail("only GET probes are run"));
            continue;
        }
        match c.shared.rt.block_on(api.get(&path, &query)) {
            Ok(body) => {
                learn(&body, &mut vars);
                checks.push(
                    row("scope", &s.scope, &endpoint, Outcome::Ok).detail(match granted(&s.scope) {
                        Some(true) => "granted, and the call succeeded",
                        Some(false) => "the call succeeded through an alternative scope",
                        None => "the call succeeded (the provider did not report the granted scopes)",
                    }),
                );
            }
            Err(e) => {
                saw_124 |= e.code() == Some(124);
                let (o, detail, fix) = diagnose(&s.scope, &c.app, &e);
                checks.push(row("scope", &s.scope, &endpoint, o).detail(detail).fix(fix));
            }
        }
    }
    saw_124
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

/// The ServiceNow record chain: present and linked, grant types, the redirect
/// URL ServiceNow sends versus Zoom's, and a live refresh token.
fn servicenow(
    reg: &connapp_host::Registry,
    c: &AppCtx<'_>,
    live: Option<&Value>,
    checks: &mut Vec<Check>,
) -> Result<(), CliError> {
    use crate::cmd_target;
    let Some(target) = &c.app.target else {
        return Ok(());
    };
    let base = match target {
        connapp_core::Target::Servicenow { instance_url, .. } => instance_url.clone(),
    };
    if !cmd_target::has_credentials(c)? {
        checks.push(
            row("servicenow", base, "", Outcome::Skip)
                .detail("no instance credentials are stored, so the ServiceNow chain cannot be checked")
                .fix(cmd_target::credentials_hint(&c.app)),
        );
        return Ok(());
    }
    let failed = |checks: &mut Vec<Check>, e: CliError| {
        checks.push(
            row("servicenow", base.clone(), "GET /api/now/table", Outcome::Fail)
                .detail(e.message)
                .fix(e.hint.unwrap_or_default()),
        );
    };
    let cons = match cmd_target::consumer(reg, c) {
        Ok(Some(k)) => k,
        Ok(None) => return Ok(()),
        Err(e) => {
            failed(checks, e);
            return Ok(());
        }
    };
    let (plan, ids) = match cmd_target::run(c, &cons, cmd_target::Mode::Plan) {
        Ok(r) => r,
        Err(e) => {
            failed(checks, e.into());
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
            .map_err(|e| connapp_servicenow::consumer::error(&c.app.name, e))?;
        let sn_redirect = rows
            .first()
            .and_then(|r| r.get("redirect_url"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let zoom: Vec<String> = match live {
            Some(m) => ["development_redirect_uri", "production_redirect_uri"]
                .iter()
                .filter_map(|k| m["oauth_information"][*k].as_str().map(str::to_string))
                .collect(),
            None => c.app.redirect_url.clone().into_iter().collect(),
        };
        let r = row("servicenow", "redirect URL", "oauth_entity.redirect_url", Outcome::Ok);
        checks.push(if zoom.iter().any(|z| z == &sn_redirect) {
            r.detail(format!("ServiceNow sends {sn_redirect:?}, registered in Zoom"))
        } else {
            let z = zoom.first().cloned().unwrap_or_default();
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
    let link = cmd_target::consent_link(&cons, &ids).unwrap_or_default();
    checks.push(match cmd_target::token_expiry(c, &cons, &ids)? {
        None => r
            .result_of(Outcome::Fail)
            .detail("ServiceNow holds no OAuth token for the credential: nobody has pressed \"Get OAuth Token\" yet")
            .fix(format!("an admin opens {link} and allows access in Zoom")),
        Some(exp) if exp <= ctx::now() => r
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

pub fn run(g: &Global, a: VerifyArgs) -> Result<(), CliError> {
    let reg = ctx::registry();
    ctx::warn_failures(&reg, g);
    let (path, decl) = ctx::load_declaration(g, &reg)?;
    let c = cmd_token::load(&reg, &decl, a.app.as_deref())?;
    let app = c.app.clone();
    let provider = c.display().to_string();
    let settings = format!("{provider} app settings");
    let mut checks =
        vec![row("declaration", path.display().to_string(), "", Outcome::Ok).detail("valid (`connapp check`)")];
    secrets(&c, &mut checks)?;

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

    // The redirect URLs Zoom must accept.
    if app.oauth.grant == GrantKind::AuthorizationCode {
        if let Some(t) = &app.target {
            checks.push(redirect_probe(&c, &t.redirect_url(), live.as_ref(), "ServiceNow"));
        } else if let Some(r) = &app.redirect_url {
            checks.push(redirect_probe(&c, r, live.as_ref(), "the consumer"));
        }
        if let Some(l) = &app.oauth.login_redirect {
            checks.push(redirect_probe(&c, l, live.as_ref(), "`connapp login`"));
        }
    }

    // connapp's own grant and the scopes it holds.
    let token = cmd_token::api_token(&c, g);
    match token {
        Err(e) => {
            checks.push(
                row("grant", "connapp's token", "POST /oauth/token", Outcome::Fail)
                    .detail(e.message)
                    .fix(e.hint.unwrap_or_default()),
            );
            for s in &app.scopes {
                checks.push(row("scope", &s.scope, "", Outcome::Skip).detail("no usable token"));
            }
        }
        Ok(rec) => {
            let missing: Vec<&str> = app
                .scopes
                .iter()
                .map(|s| s.scope.as_str())
                .filter(|s| rec.scopes.as_ref().is_some_and(|g| !g.iter().any(|x| x == s)))
                .collect();
            let r = row(
                "grant",
                "connapp's token",
                "",
                if missing.is_empty() { Outcome::Ok } else { Outcome::Fail },
            );
            checks.push(if rec.scopes.is_none() {
                r.detail("the provider did not report which scopes it granted; the probes below decide")
            } else if missing.is_empty() {
                r.detail(format!(
                    "{} of {} declared scopes granted",
                    app.scopes.len(),
                    app.scopes.len()
                ))
            } else {
                r.detail(format!("the grant lacks {}", missing.join(", "))).fix(format!(
                    "make sure the {provider} app has them (`connapp plan`), then consent again: `connapp login {}`{}",
                    app.name,
                    if app.target.is_some() {
                        " (and the consumer's own consent for its grant)"
                    } else {
                        ""
                    }
                ))
            });
            let root = c.api_root(&rec);
            match Api::new(c.shared.http.clone(), &root, rec.access_token.clone()) {
                Err(e) => checks.push(row("grant", "API base", root.as_str(), Outcome::Fail).detail(e.to_string())),
                Ok(api) => {
                    if probes(&reg, &c, &api, &rec, &mut checks) {
                        // The stored token was refused: is the grant still alive?
                        checks.push(match cmd_token::force_refresh(&c, g) {
                            Ok(()) => row("grant", "refresh", "POST /oauth/token", Outcome::Warn)
                                .detail(format!("{provider} refused the stored access token, but the refresh token still works; connapp now holds a new access token"))
                                .fix("run verify again"),
                            Err(e) => row("grant", "refresh", "POST /oauth/token", Outcome::Fail)
                                .detail(e.message)
                                .fix(e.hint.unwrap_or_default()),
                        });
                    }
                }
            }
        }
    }

    // The consumer chain (ServiceNow), when connapp can sign in to the instance.
    servicenow(&reg, &c, live.as_ref(), &mut checks)?;

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
