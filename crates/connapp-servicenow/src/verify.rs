//! `verify`'s checks of the consumer end on a ServiceNow instance: the record
//! chain present and linked, the grant types, the redirect URL ServiceNow
//! sends against the provider's, and ServiceNow's own refresh token.

use connapp_core::urls;
use connapp_engine::Error;
use connapp_engine::manage::{ConsumerGrant, GrantHeld, RecordAction};
use connapp_engine::tokens::AppCtx;
use connapp_engine::verify::{Check, Outcome, row, ymd};
use connapp_oauth::ago;
use connapp_plugin_api::contract::ConsumerRecords;
use serde_json::Value;

use crate::consumer::{
    Mode, OutboundCall, consent_link, consumer, credentials_hint, error, has_credentials, held_grant, outbound_calls,
    record_field, run,
};

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
    fn grant(&self, c: &AppCtx<'_>, desired: &mut dyn FnMut() -> Result<ConsumerRecords, Error>) -> ConsumerGrant {
        grant(c, desired)
    }
}

/// What ServiceNow holds of its grant, read from the instance (`status`):
/// the record chain looked up as `plan` does, its tokens
/// (`oauth_credential`), and — for a grant that looks valid — the
/// instance's own log of using it, judged as `verify` judges it.
pub fn grant(c: &AppCtx<'_>, desired: impl FnOnce() -> Result<ConsumerRecords, Error>) -> ConsumerGrant {
    let grant = |held: GrantHeld, fix: Option<String>| ConsumerGrant {
        consumer: "ServiceNow".into(),
        held,
        fix,
    };
    let looked = (|| {
        if !has_credentials(c)? {
            return Ok(None);
        }
        let Some(cons) = consumer(c, desired)? else {
            return Ok(None);
        };
        let (_, ids) = run(c, &cons, Mode::Plan)?;
        let link = consent_link(&cons, &ids).unwrap_or_default();
        let held = held_grant(c, &cons, &ids)?.filter(|h| h.refresh_expires.is_some());
        let again =
            format!("an admin opens {link} and allows access in Zoom again, as a Zoom user other than connapp's own");
        let used = match &held {
            Some(h) if h.refresh_expires.is_some_and(|e| e > c.shared.now()) => {
                Some(use_of(c, &cons, &ids, h.obtained, &again)?)
            }
            _ => None,
        };
        Ok::<_, Error>(Some((held, used, link, again)))
    })();
    let (held, used, link, again) = match looked {
        Ok(Some(found)) => found,
        Ok(None) => {
            return grant(
                GrantHeld::Unknown(
                    "no instance credentials are stored, so connapp cannot read ServiceNow's grant".into(),
                ),
                Some(credentials_hint(&c.app)),
            );
        }
        Err(e) => return grant(GrantHeld::Unknown(e.message), e.hint),
    };
    let Some(h) = held else {
        return grant(
            GrantHeld::Nothing,
            Some(format!("an admin opens {link} and allows access in Zoom")),
        );
    };
    let until = h.refresh_expires.unwrap_or(0);
    let missing: Vec<String> = match &h.scopes {
        Some(granted) => c
            .app
            .scopes
            .iter()
            .map(|s| s.scope.clone())
            .filter(|d| !granted.contains(d))
            .collect(),
        None => Vec::new(),
    };
    if until <= c.shared.now() {
        return grant(GrantHeld::Expired { at: until }, Some(again));
    }
    if !missing.is_empty() {
        return grant(GrantHeld::LacksScopes { until, missing }, Some(again));
    }
    match used {
        Some(row) if row.result == Outcome::Ok => grant(GrantHeld::Valid { until }, None),
        Some(row) if row.result == Outcome::Fail => grant(GrantHeld::Refused(row.detail), Some(row.fix)),
        Some(row) => grant(GrantHeld::Unproven { until, why: row.detail }, None),
        None => grant(
            GrantHeld::Unproven {
                until,
                why: "its use was not read".into(),
            },
            None,
        ),
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
            RecordAction::None => (Outcome::Ok, "present and linked".to_string(), String::new()),
            RecordAction::Create | RecordAction::CreatedByInstance => (
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
            RecordAction::Update => {
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
    grant_rows(c, &cons, &ids, checks)
}

/// ServiceNow's own grant, judged by what the instance holds and by what it
/// saw when it used it: its tokens (present, unexpired, with every declared
/// scope), then its own record of calling the provider with them
/// (`sys_outbound_http_log`). A grant nobody has used yet is `skip`, never `ok`.
fn grant_rows(
    c: &AppCtx<'_>,
    cons: &crate::consumer::Consumer,
    ids: &std::collections::HashMap<String, String>,
    checks: &mut Vec<Check>,
) -> Result<(), Error> {
    let r = row("servicenow", "ServiceNow's token", "oauth_credential", Outcome::Ok);
    let link = consent_link(cons, ids).unwrap_or_default();
    let again =
        format!("an admin opens {link} and allows access in Zoom again, as a Zoom user other than connapp's own");
    let now = c.shared.now();
    let held = held_grant(c, cons, ids)?;
    let Some(held) = held.filter(|h| h.refresh_expires.is_some()) else {
        checks.push(
            r.result_of(Outcome::Fail)
                .detail(
                    "ServiceNow holds no OAuth token for the credential: nobody has pressed \"Get OAuth Token\" yet",
                )
                .fix(format!("an admin opens {link} and allows access in Zoom")),
        );
        return Ok(());
    };
    let expires = held.refresh_expires.unwrap_or(0);
    if expires <= now {
        checks.push(
            r.result_of(Outcome::Fail)
                .detail(format!(
                    "ServiceNow's refresh token expired on {}; DEX gets no data",
                    ymd(expires)
                ))
                .fix(again),
        );
        return Ok(());
    }
    let declared: Vec<&str> = c.app.scopes.iter().map(|s| s.scope.as_str()).collect();
    let missing: Vec<&str> = match &held.scopes {
        Some(granted) => declared
            .iter()
            .filter(|d| !granted.iter().any(|g| g == *d))
            .copied()
            .collect(),
        None => Vec::new(),
    };
    checks.push(if missing.is_empty() && expires < now + connapp_engine::verify::LOOK_AHEAD_SECS {
        // Each refresh brings a new refresh token with a full lifetime: one
        // this close to its end means ServiceNow has not refreshed for long.
        r.result_of(Outcome::Warn)
            .detail(format!(
                "ServiceNow's refresh token expires on {} (in {} days): it gets a new one only when it refreshes, so its refreshes have stopped or fail; DEX gets no data after that",
                ymd(expires),
                (expires - now) / 86_400
            ))
            .fix(format!(
                "run the DEX job in ServiceNow and read its outbound HTTP log; if its refreshes fail, {again}"
            ))
    } else if missing.is_empty() {
        r.detail(format!("a refresh token valid until {}", ymd(expires)))
    } else {
        r.result_of(Outcome::Fail)
            .detail(format!(
                "ServiceNow's grant lacks {} scope(s) the app has now: {} (they were added after its consent, and a grant keeps the scopes it was given); DEX's calls that need them fail",
                missing.len(),
                missing.join(", ")
            ))
            .fix(again.clone())
    });
    checks.push(use_of(c, cons, ids, held.obtained, &again)?);
    Ok(())
}

/// The row for what the instance saw when it used the grant it obtained at
/// `obtained`: its own log of calls to the provider, judged by [`judge_use`].
fn use_of(
    c: &AppCtx<'_>,
    cons: &crate::consumer::Consumer,
    ids: &std::collections::HashMap<String, String>,
    obtained: Option<u64>,
    again: &str,
) -> Result<Check, Error> {
    let token_url = record_field(c, cons, ids, "provider", "oauth_entity", "token_url")?.unwrap_or_default();
    let api_base = record_field(c, cons, ids, "connection", "http_connection", "connection_url")?.unwrap_or_default();
    let calls = outbound_calls(c, cons, &[token_url.clone(), api_base])?;
    // connapp's own consent, if it came later, may have ended ServiceNow's grant.
    let own = match c.app.oauth.grant {
        connapp_core::GrantKind::AuthorizationCode => c.stored_record()?.and_then(|r| r.granted_at),
        _ => None,
    };
    let evidence = Evidence {
        token_url: &token_url,
        obtained,
        own_consent: own,
        now: c.shared.now(),
    };
    Ok(judge_use(&calls, &evidence, again))
}

/// Calls closer together than this belong to one run of the consumer's job.
const RUN_GAP_SECS: u64 = 600;

/// Evidence older than this says little about today.
const STALE_SECS: u64 = 2 * 86_400;

/// What the calls are judged against.
pub struct Evidence<'a> {
    /// The provider's token endpoint as the consumer's records name it.
    pub token_url: &'a str,
    /// When the consumer stored the tokens it holds now.
    pub obtained: Option<u64>,
    /// When connapp's own grant of the same app began (a consent by the same
    /// provider user ends the consumer's grant).
    pub own_consent: Option<u64>,
    /// Now.
    pub now: u64,
}

/// The row for ServiceNow's use of its grant: its newest run of calls to the
/// provider (`calls`, newest first) made with the tokens it holds now.
/// Refusals fail the row; no evidence skips it; evidence older than a later
/// consent of connapp's own, or than two days, only warns.
pub fn judge_use(calls: &[OutboundCall], e: &Evidence<'_>, again: &str) -> Check {
    let (token_url, obtained, now) = (e.token_url, e.obtained, e.now);
    let r = row(
        "servicenow",
        "ServiceNow's calls to Zoom",
        "sys_outbound_http_log",
        Outcome::Skip,
    );
    let Some(newest) = calls.first() else {
        return r
            .detail("ServiceNow has not called Zoom with this grant yet (no row in its outbound HTTP log), so nothing proves that it works")
            .fix("let DEX's scheduled job run (or run it now), then run connapp verify again");
    };
    let run: Vec<&OutboundCall> = calls
        .iter()
        .take_while(|c| newest.at.saturating_sub(c.at) <= RUN_GAP_SECS)
        .filter(|c| obtained.is_none_or(|o| c.at >= o))
        .collect();
    if run.is_empty() {
        return r
            .detail(format!(
                "ServiceNow has not used the tokens it holds since it obtained them ({}); its last calls ({}) were made with earlier ones",
                ago(obtained.unwrap_or(0), now),
                ago(newest.at, now)
            ))
            .fix("let DEX's scheduled job run (or run it now), then run connapp verify again");
    }
    let at = ago(run[0].at, now);
    let show = |c: &OutboundCall| {
        let path = url::Url::parse(&c.url)
            .map(|u| u.path().to_string())
            .unwrap_or_else(|_| c.url.clone());
        format!(
            "{} {path} -> {}",
            c.method,
            if c.status == 0 {
                "no answer".to_string()
            } else {
                c.status.to_string()
            }
        )
    };
    let is_token = |c: &&&OutboundCall| !token_url.is_empty() && c.url.starts_with(token_url);
    let refused = |c: &&&OutboundCall| (400..500).contains(&c.status) && c.status != 429;
    if let Some(t) = run.iter().filter(is_token).find(refused) {
        return r
            .result_of(Outcome::Fail)
            .detail(format!(
                "Zoom refused ServiceNow's refresh token {at} ({}): the grant is gone (revoked, expired, or ended when the same Zoom user consented again); DEX gets no data",
                show(t)
            ))
            .fix(again.to_string());
    }
    let bad: Vec<&&OutboundCall> = run.iter().filter(refused).collect();
    if let Some(u) = bad.iter().find(|c| c.status == 401) {
        return r
            .result_of(Outcome::Fail)
            .detail(format!(
                "Zoom refused ServiceNow's access token {at} ({}): the grant was revoked or ended (Zoom keeps one grant per user per app, so a new consent by the same Zoom user ends the old one); DEX gets no data",
                show(u)
            ))
            .fix(again.to_string());
    }
    if !bad.is_empty() {
        let list: Vec<String> = bad.iter().take(3).map(|c| show(c)).collect();
        return r
            .result_of(Outcome::Fail)
            .detail(format!(
                "Zoom refused {} of ServiceNow's {} calls {at} ({}): usually a scope its grant lacks or a feature the account's plan lacks",
                bad.len(),
                run.len(),
                list.join("; ")
            ))
            .fix(again.to_string());
    }
    // A token answered is no proof that the grant reads anything: that takes an API call.
    if run.iter().all(|c| is_token(&c)) {
        return r
            .detail(format!(
                "ServiceNow obtained tokens from Zoom {at} but has not called Zoom's API with them yet, so nothing proves that the grant reads data"
            ))
            .fix("let DEX's scheduled job run (or run it now), then run connapp verify again");
    }
    let failed: Vec<&&OutboundCall> = run.iter().filter(|c| !(200..300).contains(&c.status)).collect();
    if let Some(f) = failed.first() {
        return r.result_of(Outcome::Warn).detail(format!(
            "{} of ServiceNow's {} calls {at} got no usable answer ({}): rate limits or an outage at Zoom, not a refusal of the grant",
            failed.len(),
            run.len(),
            show(f)
        ));
    }
    let used = r.result_of(Outcome::Ok).detail(format!(
        "Zoom answered all {} of ServiceNow's calls {at} (its outbound HTTP log)",
        run.len()
    ));
    if let Some(own) = e.own_consent
        && own > run[0].at
    {
        return used.result_of(Outcome::Warn).detail(format!(
            "ServiceNow last called Zoom {at}, successfully, but connapp's own consent came later ({}); if that was the same Zoom user as ServiceNow's, it ended ServiceNow's grant (one grant per user per app)",
            ago(own, now)
        )).fix("let DEX's scheduled job run (or run it now), then run connapp verify again");
    }
    if now.saturating_sub(run[0].at) > STALE_SECS {
        return used.result_of(Outcome::Warn).detail(format!(
            "ServiceNow last called Zoom {at}, successfully; nothing newer proves the grant still works (is DEX's job running?)"
        ));
    }
    used
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

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "https://zoom.us/oauth/token";
    const NOW: u64 = 1_800_000_000;

    fn call(method: &str, url: &str, status: u16, ago: u64) -> OutboundCall {
        OutboundCall {
            method: method.into(),
            url: url.into(),
            status,
            at: NOW - ago,
        }
    }

    fn judged(calls: &[OutboundCall], obtained: Option<u64>, own: Option<u64>) -> Check {
        let e = Evidence {
            token_url: TOKEN,
            obtained,
            own_consent: own,
            now: NOW,
        };
        judge_use(calls, &e, "consent again")
    }

    fn api(path: &str, status: u16, ago: u64) -> OutboundCall {
        call("GET", &format!("https://api.zoom.us/v2{path}"), status, ago)
    }

    #[test]
    fn no_call_is_not_exercised_never_ok() {
        let c = judged(&[], Some(NOW - 100), None);
        assert_eq!(c.result, Outcome::Skip);
        assert!(c.detail.contains("not called Zoom"), "{}", c.detail);
        // Calls made before the tokens it holds now prove nothing about them.
        let c = judged(&[api("/users/me", 200, 500)], Some(NOW - 100), None);
        assert_eq!(c.result, Outcome::Skip);
        assert!(c.detail.contains("since it obtained them"), "{}", c.detail);
        // The consent's own code exchange answered: no API call proves the grant yet.
        let c = judged(&[call("POST", TOKEN, 200, 5)], Some(NOW - 5), None);
        assert_eq!(c.result, Outcome::Skip);
        assert!(c.detail.contains("not called Zoom's API"), "{}", c.detail);
    }

    #[test]
    fn a_run_zoom_answered_is_ok_and_counts_only_the_newest_run() {
        let calls = [
            api("/metrics/zoomrooms", 200, 60),
            api("/users/me", 200, 61),
            // An earlier run, an hour before, failed: it is not the newest run.
            api("/users/me", 401, 3_700),
        ];
        let c = judged(&calls, None, None);
        assert_eq!(c.result, Outcome::Ok, "{}", c.detail);
        assert!(c.detail.contains("all 2"), "{}", c.detail);
    }

    #[test]
    fn refusals_fail_with_what_zoom_said() {
        // The refresh token refused: the grant is gone.
        let c = judged(&[call("POST", TOKEN, 400, 10)], None, None);
        assert_eq!(c.result, Outcome::Fail);
        assert!(
            c.detail.contains("refresh token") && c.detail.contains("POST /oauth/token -> 400"),
            "{}",
            c.detail
        );
        assert_eq!(c.fix, "consent again");
        // The access token refused (the same Zoom user consented again).
        let c = judged(
            &[api("/users/me", 401, 10), api("/report/users/me/meetings", 401, 10)],
            None,
            None,
        );
        assert_eq!(c.result, Outcome::Fail);
        assert!(
            c.detail.contains("access token") && c.detail.contains("401"),
            "{}",
            c.detail
        );
        // One call refused for a scope.
        let c = judged(
            &[api("/metrics/zoomrooms", 400, 10), api("/users/me", 200, 11)],
            None,
            None,
        );
        assert_eq!(c.result, Outcome::Fail);
        assert!(
            c.detail.contains("1 of ServiceNow's 2 calls") && c.detail.contains("scope"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn rate_limits_outages_and_old_or_superseded_evidence_only_warn() {
        let c = judged(&[api("/users/me", 429, 10)], None, None);
        assert_eq!(c.result, Outcome::Warn);
        let c = judged(&[api("/users/me", 0, 10)], None, None);
        assert_eq!(c.result, Outcome::Warn);
        let c = judged(&[api("/users/me", 200, 3 * 86_400)], None, None);
        assert_eq!(c.result, Outcome::Warn);
        assert!(c.detail.contains("days ago"), "{}", c.detail);
        // connapp's own consent came after ServiceNow's last success.
        let c = judged(&[api("/users/me", 200, 600)], None, Some(NOW - 60));
        assert_eq!(c.result, Outcome::Warn);
        assert!(c.detail.contains("same Zoom user"), "{}", c.detail);
        let c = judged(&[api("/users/me", 200, 60)], None, Some(NOW - 600));
        assert_eq!(c.result, Outcome::Ok);
    }
}
