//! What `verify` checks and reports: one row per check, each with its
//! outcome, what was found and what to do. The provider-independent checks
//! live here (the secrets, the redirect URLs the provider must accept,
//! connapp's own grant and one probe per scope); a platform's client says
//! what its API's failures mean ([`ApiHabits`], e.g. `connapp_zoom::habits`),
//! a consumer's client checks its own end (`connapp_servicenow::verify`).

use connapp_core::{App, SecretKind, urls};
use connapp_host::Registry;
use connapp_oauth::api::{Api, ApiError};
use connapp_oauth::record::TokenRecord;
use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::tokens::{AppCtx, Observer};

/// How one check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Proven.
    Ok,
    /// Works, but something deserves attention.
    Warn,
    /// Broken; `fix` says what to do.
    Fail,
    /// Could not be checked; `detail` says why.
    Skip,
}

impl Outcome {
    /// The word the report prints.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Warn => "warn",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        }
    }
}

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What kind of check: declaration, secret, drift, redirect, grant, scope.
    pub check: &'static str,
    /// The subject: a secret, a URL, a scope.
    pub item: String,
    /// The endpoint called, if any.
    pub endpoint: String,
    /// The outcome.
    pub result: Outcome,
    /// What was found.
    pub detail: String,
    /// What to do (empty when nothing).
    pub fix: String,
}

/// A check of kind `check` on `item` (calling `endpoint`, if any) that ended `result`.
pub fn row(check: &'static str, item: impl Into<String>, endpoint: impl Into<String>, result: Outcome) -> Check {
    Check {
        check,
        item: item.into(),
        endpoint: endpoint.into(),
        result,
        detail: String::new(),
        fix: String::new(),
    }
}

impl Check {
    /// What was found.
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = d.into();
        self
    }
    /// What to do.
    pub fn fix(mut self, f: impl Into<String>) -> Self {
        self.fix = f.into();
        self
    }
    /// Another outcome.
    pub fn result_of(mut self, o: Outcome) -> Self {
        self.result = o;
        self
    }
}

/// `YYYY-MM-DD` of a unix time.
pub fn ymd(t: u64) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// What a provider's API failures mean for the scope a probe proves, and
/// what a probe's answer teaches the probes after it.
pub trait ApiHabits: Send + Sync {
    /// The outcome, what was found and what to do, for a failed probe of `scope`.
    fn diagnose(&self, scope: &str, app: &App, e: &ApiError) -> (Outcome, String, String);
    /// Whether the failure means the access token itself was refused.
    fn token_refused(&self, e: &ApiError) -> bool;
    /// Values later probes' `{placeholders}` need, from a probe's answer.
    fn learn(&self, body: &Value, vars: &mut Vec<(String, String)>) {
        let _ = (body, vars);
    }
}

/// An API that follows RFC 6750 §3.1: 401 is a refused token, 403 a scope
/// the token does not hold.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rfc6750;

impl ApiHabits for Rfc6750 {
    fn diagnose(&self, scope: &str, app: &App, e: &ApiError) -> (Outcome, String, String) {
        let name = &app.name;
        match e.status() {
            None => (
                Outcome::Fail,
                format!("the API could not be reached: {e}"),
                "check the network and api_base".into(),
            ),
            Some(401) => (
                Outcome::Fail,
                format!("the API refused the access token ({})", e.message()),
                format!("run `connapp refresh {name}`; if that fails with invalid_grant, `connapp login {name}`"),
            ),
            Some(403) => (
                Outcome::Fail,
                format!("the token does not hold {scope} ({})", e.message()),
                format!("add {scope} to the app at the provider, then consent again (`connapp login {name}`)"),
            ),
            Some(429) => (
                Outcome::Warn,
                format!("rate-limited ({})", e.message()),
                "retry later".into(),
            ),
            Some(status) => (
                Outcome::Fail,
                format!("HTTP {status}: {}", e.message()),
                "see the provider's API reference for this endpoint".into(),
            ),
        }
    }
    fn token_refused(&self, e: &ApiError) -> bool {
        e.status() == Some(401)
    }
}

/// One row per secret the app needs: stored, or what to run. The Secret
/// Token only matters for an app with a webhook; without one, it gets a row
/// only when it is stored (a row that says "ok" about something nobody uses
/// would claim a check that was not made).
pub fn secrets(c: &AppCtx<'_>, checks: &mut Vec<Check>) -> Result<(), Error> {
    for kind in SecretKind::ALL {
        let present = c.stored(kind)?.is_some();
        let needed = kind != SecretKind::SecretToken || c.app.webhook.is_some();
        if !present && !needed {
            continue;
        }
        let r = row(
            "secret",
            kind.label(),
            "",
            if present { Outcome::Ok } else { Outcome::Fail },
        );
        checks.push(if present {
            r.detail("stored")
        } else {
            r.detail("not stored")
                .fix(format!("connapp secrets set {} --app {}", kind.as_str(), c.app.name))
        });
    }
    Ok(())
}

/// How long before a deadline (the Client Secret's maximum age, the end of
/// a rotation's overlap, a consumer's refresh token) `verify` warns.
pub const LOOK_AHEAD_SECS: u64 = 14 * 86_400;

/// The rows that look ahead at the app's Client Secret: its age against the
/// declared maximum (`client_secret_max_age_days`), and a rotation left
/// open, aborted with the provider's overlap still running, or stale (the
/// old secret's end passed while connapp still uses it).
pub fn secret_lifecycle(c: &AppCtx<'_>, checks: &mut Vec<Check>) -> Result<(), Error> {
    let app = &c.app.name;
    let now = c.shared.now();
    let store = &c.shared.store;
    let rotate = format!("`connapp rotate client-secret {app}`");
    let since = crate::secrets::Secrets::new(store)
        .since(app, SecretKind::ClientSecret)
        .map_err(|e| c.shared.store_error(e))?;
    let r = row("rotation", "Client Secret age", "", Outcome::Ok);
    match (since, c.app.client_secret_max_age_days) {
        (Some(t), Some(days)) => {
            let age = now.saturating_sub(t);
            let due = t + days * 86_400;
            let base = format!(
                "stored {} days ago ({}); the declared maximum is {days} days",
                age / 86_400,
                ymd(t)
            );
            checks.push(if now >= due {
                r.result_of(Outcome::Fail)
                    .detail(format!("{base}: it was due for rotation on {}", ymd(due)))
                    .fix(format!("rotate it now with {rotate}"))
            } else if now + LOOK_AHEAD_SECS >= due {
                r.result_of(Outcome::Warn)
                    .detail(format!("{base}: due for rotation on {}", ymd(due)))
                    .fix(format!("rotate it before then with {rotate}"))
            } else {
                r.detail(format!("{base}: due for rotation on {}", ymd(due)))
            });
        }
        (None, Some(_)) if c.stored(SecretKind::ClientSecret)?.is_some() => checks.push(
            r.result_of(Outcome::Skip)
                .detail("connapp has no date for the stored Client Secret (stored before connapp dated secrets, or by other means), so its age is unknown")
                .fix(format!("rotate it with {rotate}: the new one is dated")),
        ),
        // No maximum declared: nothing is judged, so no row claims "ok".
        _ => {}
    }
    let Some((rot, _)) = crate::rotation::Rotations::new(store).get(app)? else {
        return Ok(());
    };
    use crate::rotation::Step;
    let r = row("rotation", "Client Secret rotation", "", Outcome::Ok);
    let started = ymd(rot.started_at);
    let end = ymd(rot.revoke_old_at);
    let pending = crate::rotation::Rotations::new(store).pending(app)?.is_some();
    checks.push(match rot.step {
        Step::Finished => r.detail(format!(
            "last rotated on {} ({} replaced {}; the old one: {})",
            ymd(rot.history.last().map_or(rot.started_at, |h| h.at)),
            rot.new_fingerprint.as_deref().unwrap_or("?"),
            rot.old_fingerprint,
            rot.old_revoked.as_deref().unwrap_or("?")
        )),
        Step::Aborted if !pending => r.detail(format!("the rotation started on {started} was aborted; nothing is left open")),
        Step::Aborted | Step::Creating | Step::Created | Step::Set | Step::Tested
            if now >= rot.revoke_old_at =>
        {
            r.result_of(Outcome::Fail)
                .detail(format!(
                    "the rotation started on {started} stands at step {}, and the provider stopped accepting the old Client Secret on {end}; connapp still holds the old one as current",
                    rot.step.as_str()
                ))
                .fix(format!("finish it with {rotate} --resume"))
        }
        Step::Aborted => r
            .result_of(Outcome::Warn)
            .detail(format!(
                "the rotation started on {started} was aborted, but the provider cannot cancel one: the old Client Secret stops working on {end}"
            ))
            .fix(format!("finish it before then with {rotate} --resume")),
        step => r
            .result_of(Outcome::Warn)
            .detail(format!(
                "a rotation started on {started} by {} stands at step {}; the old Client Secret works until {end}",
                rot.by,
                step.as_str()
            ))
            .fix(format!("continue it with {rotate} --resume, or undo it with --abort")),
    });
    Ok(())
}

/// Asks the provider's authorize endpoint whether it accepts `redirect`
/// (no consent happens: the answer is a sign-in or consent page, a redirect,
/// or the provider's page about an unregistered redirect URL). `registered`:
/// the redirect URLs the provider's live app settings list, to name the
/// closest when it refuses.
pub fn redirect_probe(c: &AppCtx<'_>, redirect: &str, registered: &[String], what: &str) -> Check {
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
    // Only the start of the answer is read: the markers sit in the error page.
    const MAX_PROBE_BYTES: usize = 64 * 1024;
    let http = match c.shared.http() {
        Ok(h) => h,
        Err(e) => {
            return row("redirect", redirect, &endpoint, Outcome::Skip).detail(e.to_string());
        }
    };
    let resp = c.shared.rt.block_on(async {
        let mut r = http.get(&probe).send().await?;
        let status = r.status().as_u16();
        let mut body = Vec::new();
        while body.len() < MAX_PROBE_BYTES {
            match r.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        Ok::<_, reqwest::Error>((status, String::from_utf8_lossy(&body).into_owned()))
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
            let closest = registered
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

/// One API call per scope, with the preset's probes; whether the provider
/// refused the access token itself.
fn probes(
    reg: &Registry,
    c: &AppCtx<'_>,
    api: &Api,
    rec: &TokenRecord,
    habits: &dyn ApiHabits,
    checks: &mut Vec<Check>,
) -> bool {
    let known = crate::platform::preset_scopes(reg, &c.app);
    let now = c.shared.now();
    let mut vars: Vec<(String, String)> = vec![
        ("{from}".into(), ymd(now.saturating_sub(27 * 86_400))),
        ("{to}".into(), ymd(now)),
    ];
    // Whether the provider refused the access token itself.
    let mut refused = false;
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
                habits.learn(&body, &mut vars);
                checks.push(
                    row("scope", &s.scope, &endpoint, Outcome::Ok).detail(match granted(&s.scope) {
                        Some(true) => "granted, and the call succeeded",
                        Some(false) => "the call succeeded through an alternative scope",
                        None => "the call succeeded (the provider did not report the granted scopes)",
                    }),
                );
            }
            Err(e) => {
                refused |= habits.token_refused(&e);
                let (o, detail, fix) = habits.diagnose(&s.scope, &c.app, &e);
                checks.push(row("scope", &s.scope, &endpoint, o).detail(detail).fix(fix));
            }
        }
    }
    refused
}

/// connapp's own grant: a valid token (refreshed or minted when due), the
/// scopes it holds against the declared ones, one probe per scope, and —
/// when the provider refused the stored access token — whether a refresh
/// still works.
pub fn own_grant(reg: &Registry, c: &AppCtx<'_>, habits: &dyn ApiHabits, obs: &dyn Observer, checks: &mut Vec<Check>) {
    let app = &c.app;
    let provider = c.display().to_string();
    let token = c.token(obs).map(|(rec, _)| rec);
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
            // Whose grant: asked live with the token, or as the provider named the user at login.
            let whose = match c.grant_user(&rec) {
                Ok(u) => format!("; the grant is {u}'s"),
                Err(_) => match &rec.user {
                    Some(u) => format!("; the grant is {u}'s (at login)"),
                    None => String::new(),
                },
            };
            checks.push(if rec.scopes.is_none() {
                r.detail(format!(
                    "the provider did not report which scopes it granted; the probes below decide{whose}"
                ))
            } else if missing.is_empty() {
                r.detail(format!(
                    "{} of {} declared scopes granted{whose}",
                    app.scopes.len(),
                    app.scopes.len()
                ))
            } else {
                r.detail(format!("the grant lacks {}{whose}", missing.join(", "))).fix(format!(
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
            let api = c
                .shared
                .http()
                .map_err(|e| e.to_string())
                .and_then(|h| Api::new(h, &root, rec.access_token.clone()).map_err(|e| e.to_string()));
            match api {
                Err(e) => checks.push(row("grant", "API base", root.as_str(), Outcome::Fail).detail(e.to_string())),
                Ok(api) => {
                    if probes(reg, c, &api, &rec, habits, checks) {
                        // The stored token was refused: is the grant still alive?
                        checks.push(match c.renew(obs) {
                            Ok(_) => row("grant", "refresh", "POST /oauth/token", Outcome::Warn)
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
}

#[cfg(test)]
mod tests;
