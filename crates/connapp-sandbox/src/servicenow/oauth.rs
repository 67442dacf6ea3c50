//! The instance's OAuth side (`docs/servicenow.md` §3.7, §5): `/oauth_token.do`
//! for connapp's own access (client credentials, password), the consent round
//! trip `oauth_initiator.do` → Zoom → `oauth_redirect.do` that stores tokens
//! in `oauth_credential`, refreshing as ServiceNow does, and the sandbox's
//! "DEX job" and control routes under `/_sandbox`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::table::hibernating;
use super::{Pending, Row, SnCtx, SnKnobs, SnState, glide_time, parse_glide_time};
use crate::random::random_hex;

pub(super) fn routes() -> axum::Router<SnCtx> {
    axum::Router::new()
        .route("/oauth_token.do", post(token))
        .route("/oauth_initiator.do", get(initiator))
        .route("/oauth_redirect.do", get(redirect))
        .route("/_sandbox/knobs", get(get_knobs).put(put_knobs))
        .route("/_sandbox/clock/advance", post(advance))
        .route("/_sandbox/dex/run", post(dex_run))
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    (
        status,
        Html(format!(
            "<!DOCTYPE html><html><head><title>{t}</title></head><body><h1 id=\"result\">{t}</h1><p id=\"detail\">{d}</p></body></html>",
            t = esc(title),
            d = esc(text)
        )),
    )
        .into_response()
}

/// `POST /oauth_token.do`: tokens for connapp itself (client credentials or password grant).
async fn token(State(ctx): State<SnCtx>, body: Bytes) -> Response {
    let p: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut s = ctx.lock();
    if s.knobs.asleep {
        return hibernating();
    }
    let denied = || {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error_description": "access_denied", "error": "server_error"})),
        )
            .into_response()
    };
    let client = p
        .get("client_id")
        .and_then(|id| s.clients.iter().find(|c| &c.client_id == id))
        .cloned();
    let Some(client) = client.filter(|c| p.get("client_secret") == Some(&c.client_secret)) else {
        return denied();
    };
    let user = match p.get("grant_type").map(String::as_str) {
        Some("client_credentials") if s.knobs.client_credentials_enabled => client.user_name.clone(),
        Some("password") => match (p.get("username"), p.get("password")) {
            (Some(u), Some(pw)) if s.users.iter().any(|x| &x.user_name == u && &x.password == pw) => u.clone(),
            _ => return denied(),
        },
        _ => return denied(),
    };
    let t = random_hex(32);
    let exp = s.now() + 1799;
    s.bearer.insert(t.clone(), (user, exp));
    Json(json!({"scope": "useraccount", "token_type": "Bearer", "expires_in": 1799, "access_token": t})).into_response()
}

/// `GET /oauth_initiator.do`: starts "Get OAuth Token" for a credential and profile.
async fn initiator(State(ctx): State<SnCtx>, Query(p): Query<HashMap<String, String>>) -> Response {
    let mut s = ctx.lock();
    if s.knobs.asleep {
        return hibernating();
    }
    let (Some(cred), Some(profile)) = (p.get("oauth_requestor"), p.get("oauth_provider_profile")) else {
        return page(
            StatusCode::BAD_REQUEST,
            "OAuth flow failed",
            "oauth_requestor and oauth_provider_profile are required",
        );
    };
    if p.get("response_type").map(String::as_str) != Some("code") {
        return page(
            StatusCode::BAD_REQUEST,
            "OAuth flow failed",
            "response_type must be code",
        );
    }
    let Some(prof) = s.row("oauth_entity_profile", profile).cloned() else {
        return page(
            StatusCode::BAD_REQUEST,
            "OAuth flow failed",
            "There is no OAuth Entity Profile with this sys_id",
        );
    };
    if s.row("oauth_2_0_credentials", cred).is_none() {
        return page(
            StatusCode::BAD_REQUEST,
            "OAuth flow failed",
            "There is no OAuth 2.0 credential with this sys_id",
        );
    }
    let entity_id = prof.get("oauth_entity").cloned().unwrap_or_default();
    let Some(entity) = s.row("oauth_entity", &entity_id).cloned() else {
        return page(
            StatusCode::BAD_REQUEST,
            "OAuth flow failed",
            "The profile names no OAuth provider",
        );
    };
    let redirect_uri = match entity.get("redirect_url").filter(|r| !r.is_empty()) {
        Some(r) => r.clone(),
        None => format!("{}/oauth_redirect.do", s.base_url),
    };
    let state = random_hex(16);
    let now = s.now();
    s.pending.insert(
        state.clone(),
        Pending {
            credential: cred.clone(),
            profile: profile.clone(),
            redirect_uri: redirect_uri.clone(),
            at: now,
        },
    );
    let auth = entity.get("auth_url").cloned().unwrap_or_default();
    let client_id = entity.get("client_id").cloned().unwrap_or_default();
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("state", &state)
        .finish();
    let sep = if auth.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{auth}{sep}{q}")).into_response()
}

/// Client authentication as the provider record says (`send_client_credentials_as`).
fn with_client_auth(
    rb: reqwest::RequestBuilder,
    form: &mut Vec<(String, String)>,
    entity: &Row,
    secret: &str,
) -> reqwest::RequestBuilder {
    let id = entity.get("client_id").cloned().unwrap_or_default();
    if entity.get("send_client_credentials_as").map(String::as_str) == Some("basic_auth_header") {
        rb.basic_auth(id, Some(secret))
    } else {
        form.push(("client_id".into(), id));
        form.push(("client_secret".into(), secret.to_string()));
        rb
    }
}

/// The client secret as the instance would send it; a secret written without
/// `sysparm_input_display_value=true` is stored malformed (`docs/servicenow.md` §3.8).
fn client_secret(s: &SnState, entity_id: &str) -> String {
    match s.secret("oauth_entity", entity_id, "client_secret") {
        Some(Some(v)) => v,
        Some(None) => "\u{fffd}malformed-password2-value".into(),
        None => String::new(),
    }
}

/// Records one outbound call in `sys_outbound_http_log`, as the instance does
/// for every outbound REST call at log level Basic: the method, the URL
/// without its query, the status (0: no answer) and the time it took.
fn log_outbound(ctx: &SnCtx, method: &str, url: &str, status: u16, started: std::time::Instant, source: (&str, &str)) {
    let parsed = url::Url::parse(url).ok();
    let hostname = parsed.as_ref().and_then(|u| u.host_str()).unwrap_or("").to_string();
    let path = parsed.as_ref().map(|u| u.path().to_string()).unwrap_or_default();
    let plain = url.split('?').next().unwrap_or(url);
    let elapsed = started.elapsed().as_millis().to_string();
    let status = status.to_string();
    let row: Row = [
        ("url", plain),
        ("http_method", method),
        ("hostname", hostname.as_str()),
        ("path", path.as_str()),
        ("response_status", status.as_str()),
        ("response_time", elapsed.as_str()),
        ("source_table", source.0),
        ("source_record", source.1),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    ctx.lock().insert("sys_outbound_http_log", row, "system");
}

/// POSTs to the provider's token endpoint; returns the JSON answer or the error text.
async fn provider_token(ctx: &SnCtx, entity_id: &str, mut form: Vec<(String, String)>) -> Result<Value, String> {
    let (entity, secret) = {
        let s = ctx.lock();
        let Some(e) = s.row("oauth_entity", entity_id).cloned() else {
            return Err("the OAuth provider is gone".into());
        };
        let secret = client_secret(&s, entity_id);
        (e, secret)
    };
    let url = entity.get("token_url").cloned().unwrap_or_default();
    let rb = ctx.http.post(&url);
    let rb = with_client_auth(rb, &mut form, &entity, &secret);
    let started = std::time::Instant::now();
    let source = ("oauth_entity", entity_id);
    let resp = match rb.form(&form).send().await {
        Ok(r) => r,
        Err(e) => {
            log_outbound(ctx, "POST", &url, 0, started, source);
            return Err(format!("cannot reach {url}: {}", e.without_url()));
        }
    };
    let status = resp.status().as_u16();
    log_outbound(ctx, "POST", &url, status, started, source);
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if status != 200 || v.get("access_token").is_none() {
        let err = v.get("error").and_then(Value::as_str).unwrap_or("unknown");
        let reason = v
            .get("reason")
            .or_else(|| v.get("error_description"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(format!("HTTP {status} {err} {reason}").trim().to_string());
    }
    Ok(v)
}

/// Replaces the tokens of a requestor profile with a token response.
fn store_tokens(s: &mut SnState, cred: &str, profile: &str, entity_id: &str, v: &Value) {
    let now = s.now();
    let rp = s
        .rows("oauth_requestor_profile")
        .into_iter()
        .find(|r| {
            r.get("requestor_id").is_some_and(|x| x == cred)
                && r.get("oauth_entity_profile").is_some_and(|x| x == profile)
        })
        .and_then(|r| r.get("sys_id").cloned());
    let rp = match rp {
        Some(id) => id,
        None => {
            let row: Row = [
                ("requestor_id", cred),
                ("requestor_context", "oauth_2_0_credentials"),
                ("oauth_entity_profile", profile),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            s.insert("oauth_requestor_profile", row, "system")
        }
    };
    let old: Vec<String> = s
        .rows("oauth_credential")
        .into_iter()
        .filter(|r| r.get("oauth_requestor_profile").is_some_and(|x| x == &rp))
        .filter_map(|r| r.get("sys_id").cloned())
        .collect();
    if let Some(t) = s.tables.get_mut("oauth_credential") {
        for id in &old {
            t.remove(id);
        }
    }
    let lifespan: u64 = s
        .row("oauth_entity", entity_id)
        .and_then(|e| e.get("refresh_token_lifespan"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(8_640_000);
    let scopes = v.get("scope").and_then(Value::as_str).unwrap_or("").to_string();
    let mut put = |kind: &str, token: &str, expires: u64| {
        let row: Row = [
            ("type", kind),
            ("expires", &glide_time(expires)),
            ("peer", entity_id),
            ("oauth_requestor_profile", rp.as_str()),
            ("token_received", "*"),
            ("scopes", scopes.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let id = s.insert("oauth_credential", row, "system");
        s.set_secret("oauth_credential", &id, "token_received", Some(token.to_string()));
    };
    if let Some(a) = v.get("access_token").and_then(Value::as_str) {
        let exp = now + v.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
        put("access_token", a, exp);
    }
    if let Some(r) = v.get("refresh_token").and_then(Value::as_str) {
        put("refresh_token", r, now + lifespan);
    }
}

/// `GET /oauth_redirect.do?code&state`: the provider's callback.
async fn redirect(State(ctx): State<SnCtx>, Query(p): Query<HashMap<String, String>>) -> Response {
    let pending = {
        let mut s = ctx.lock();
        if s.knobs.asleep {
            return hibernating();
        }
        p.get("state").and_then(|st| s.pending.remove(st))
    };
    let Some(pending) = pending else {
        return page(StatusCode::BAD_REQUEST, "OAuth flow failed", "Invalid state parameter");
    };
    if let Some(e) = p.get("error") {
        return page(
            StatusCode::OK,
            "OAuth flow failed",
            &format!("The provider answered: {e}"),
        );
    }
    let Some(code) = p.get("code") else {
        return page(StatusCode::BAD_REQUEST, "OAuth flow failed", "No authorization code");
    };
    let entity_id = ctx
        .lock()
        .row("oauth_entity_profile", &pending.profile)
        .and_then(|r| r.get("oauth_entity").cloned())
        .unwrap_or_default();
    let form = vec![
        ("grant_type".to_string(), "authorization_code".to_string()),
        ("code".to_string(), code.clone()),
        ("redirect_uri".to_string(), pending.redirect_uri.clone()),
    ];
    match provider_token(&ctx, &entity_id, form).await {
        Ok(v) => {
            store_tokens(&mut ctx.lock(), &pending.credential, &pending.profile, &entity_id, &v);
            page(
                StatusCode::OK,
                "OAuth token received",
                "OAuth token is available. You can close this window.",
            )
        }
        Err(e) => page(
            StatusCode::OK,
            "OAuth flow failed",
            &format!("Could not get an access token: {e}"),
        ),
    }
}

async fn get_knobs(State(ctx): State<SnCtx>) -> Json<SnKnobs> {
    Json(ctx.lock().knobs.clone())
}

async fn put_knobs(State(ctx): State<SnCtx>, Json(k): Json<SnKnobs>) -> Json<SnKnobs> {
    ctx.lock().knobs = k.clone();
    Json(k)
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance(State(ctx): State<SnCtx>, Json(a): Json<Advance>) -> Json<Value> {
    let mut s = ctx.lock();
    s.clock_offset += a.seconds;
    Json(json!({"now": s.now(), "offset": s.clock_offset}))
}

/// What the DEX job found, step by step.
fn step(name: &str, ok: bool, detail: impl Into<String>) -> Value {
    json!({"step": name, "ok": ok, "detail": detail.into()})
}

/// The runtime's connection lookup: alias → connection → credential → profile → provider.
fn resolve(s: &SnState) -> Result<(Row, Row, Row, Row), String> {
    let alias = s
        .rows("sys_alias")
        .into_iter()
        .find(|a| a.get("id") == Some(&s.dex_alias_id))
        .cloned()
        .ok_or("the DEX for Zoom connection & credential alias does not exist")?;
    let alias_id = alias.get("sys_id").cloned().unwrap_or_default();
    let conns: Vec<&Row> = s
        .rows("http_connection")
        .into_iter()
        .filter(|c| c.get("connection_alias") == Some(&alias_id) && c.get("active").is_some_and(|a| a == "true"))
        .collect();
    let conn = match conns.as_slice() {
        [] => return Err("There is no (active) connection associated with the alias".into()),
        [one] => (*one).clone(),
        _ => return Err("There are multiple connections associated with the alias".into()),
    };
    let cred = conn
        .get("credential")
        .and_then(|id| s.row("oauth_2_0_credentials", id))
        .filter(|c| c.get("active").is_some_and(|a| a == "true"))
        .cloned()
        .ok_or("There is no (active) credential associated with the connection")?;
    let profile = cred
        .get("oauth_entity_profile")
        .and_then(|id| s.row("oauth_entity_profile", id))
        .cloned()
        .ok_or("There is no OAuth Entity Profile associated with the credential")?;
    let entity = profile
        .get("oauth_entity")
        .and_then(|id| s.row("oauth_entity", id))
        .cloned()
        .ok_or("The OAuth Entity Profile names no OAuth provider")?;
    if entity.get("default_grant_type") != profile.get("grant_type") {
        return Err("Default grant type of the provider must be same as the profile's grant type".into());
    }
    Ok((conn, cred, profile, entity))
}

/// A stored token and when it expires.
type Stored = Option<(String, u64)>;

/// The stored (access, refresh) tokens of a credential.
fn tokens(s: &SnState, cred: &str, profile: &str) -> (Stored, Stored) {
    let Some(rp) = s
        .rows("oauth_requestor_profile")
        .into_iter()
        .find(|r| {
            r.get("requestor_id").is_some_and(|x| x == cred)
                && r.get("oauth_entity_profile").is_some_and(|x| x == profile)
        })
        .and_then(|r| r.get("sys_id").cloned())
    else {
        return (None, None);
    };
    let get = |kind: &str| {
        s.rows("oauth_credential")
            .into_iter()
            .find(|r| r.get("oauth_requestor_profile") == Some(&rp) && r.get("type").is_some_and(|t| t == kind))
            .and_then(|r| {
                let id = r.get("sys_id")?;
                let token = s.secret("oauth_credential", id, "token_received")??;
                let exp = parse_glide_time(r.get("expires")?)?;
                Some((token, exp))
            })
    };
    (get("access_token"), get("refresh_token"))
}

/// Runs the DEX job every `dex_every_secs` (read each time, so the knob can
/// change it), as the instance's scheduled job does; its outcome is what the
/// outbound HTTP log records.
pub(super) fn schedule_dex(ctx: &SnCtx) {
    tokio::spawn(dex_schedule(ctx.clone()));
}

/// The schedule of [`schedule_dex`], as work for the caller's runtime.
pub(super) async fn dex_schedule(ctx: SnCtx) {
    loop {
        let every = ctx.lock().knobs.dex_every_secs;
        tokio::time::sleep(std::time::Duration::from_secs(every.unwrap_or(5).max(1))).await;
        if every.is_some() && !ctx.lock().knobs.asleep {
            let _ = dex_run(State(ctx.clone())).await;
        }
    }
}

/// `POST /_sandbox/dex/run`: what DEX does on a schedule — find the connection
/// through the alias, get a valid token (refreshing it when due, as ServiceNow
/// does), and read the six Zoom endpoints.
async fn dex_run(State(ctx): State<SnCtx>) -> Response {
    let mut steps = Vec::new();
    let resolved = resolve(&ctx.lock());
    let (conn, cred, profile, entity) = match resolved {
        Ok(r) => r,
        Err(e) => {
            steps.push(step("connection", false, e));
            return Json(json!({"ok": false, "steps": steps})).into_response();
        }
    };
    let id = |r: &Row| r.get("sys_id").cloned().unwrap_or_default();
    steps.push(step(
        "connection",
        true,
        conn.get("connection_url").cloned().unwrap_or_default(),
    ));
    let (access, refresh) = {
        let s = ctx.lock();
        tokens(&s, &id(&cred), &id(&profile))
    };
    let (now, margin) = {
        let s = ctx.lock();
        (s.now(), s.knobs.refresh_margin)
    };
    let token = match (access, refresh) {
        (Some((a, exp)), _) if exp > now + margin => {
            steps.push(step("token", true, "stored access token"));
            a
        }
        (_, Some((r, rexp))) if rexp > now => {
            let form = vec![
                ("grant_type".to_string(), "refresh_token".to_string()),
                ("refresh_token".to_string(), r),
            ];
            match provider_token(&ctx, &id(&entity), form).await {
                Ok(v) => {
                    store_tokens(&mut ctx.lock(), &id(&cred), &id(&profile), &id(&entity), &v);
                    steps.push(step("token", true, "refreshed (the refresh token rotated)"));
                    v.get("access_token").and_then(Value::as_str).unwrap_or("").to_string()
                }
                Err(e) => {
                    steps.push(step("token", false, format!("refresh failed: {e}")));
                    return Json(json!({"ok": false, "steps": steps})).into_response();
                }
            }
        }
        (_, Some(_)) => {
            steps.push(step("token", false, "OAuth Token has expired"));
            return Json(json!({"ok": false, "steps": steps})).into_response();
        }
        (_, None) => {
            steps.push(step("token", false, "Please generate an OAuth Token"));
            return Json(json!({"ok": false, "steps": steps})).into_response();
        }
    };
    let base = format!(
        "{}/v2",
        conn.get("connection_url")
            .map(|u| u.trim_end_matches('/'))
            .unwrap_or("")
    );
    let today = chrono::DateTime::from_timestamp(now as i64, 0).map(|d| d.date_naive());
    let (from, to) = match today {
        Some(d) => (
            (d - chrono::Days::new(27)).format("%Y-%m-%d").to_string(),
            d.format("%Y-%m-%d").to_string(),
        ),
        None => (String::new(), String::new()),
    };
    let conn_id = id(&conn);
    let get = |path: String| {
        let http = ctx.http.clone();
        let url = format!("{base}{path}");
        let token = token.clone();
        let conn_id = conn_id.clone();
        let ctx = ctx.clone();
        async move {
            let started = std::time::Instant::now();
            let (status, v) = match http.get(&url).bearer_auth(&token).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    (status, v)
                }
                Err(e) => (0, json!({"message": e.without_url().to_string()})),
            };
            log_outbound(&ctx, "GET", &url, status, started, ("http_connection", &conn_id));
            (status, v)
        }
    };
    let record = |steps: &mut Vec<Value>, name: &str, status: u16, v: &Value| {
        let ok = status == 200;
        let detail = if ok {
            format!("HTTP {status}")
        } else {
            format!(
                "HTTP {status} code {} {}",
                v.get("code").map(Value::to_string).unwrap_or_default(),
                v.get("message").and_then(Value::as_str).unwrap_or("")
            )
        };
        steps.push(step(name, ok, detail));
    };
    let (st, v) = get("/users/me".into()).await;
    record(&mut steps, "GET /users/me", st, &v);
    let (st, report) = get(format!("/report/users/me/meetings?from={from}&to={to}&page_size=30")).await;
    record(&mut steps, "GET /report/users/me/meetings", st, &report);
    let meeting = report["meetings"]
        .as_array()
        .and_then(|l| l.iter().find_map(|m| m["uuid"].as_str()))
        .map(|u| {
            let once: String = url::form_urlencoded::byte_serialize(u.as_bytes()).collect();
            if u.starts_with('/') || u.contains("//") {
                url::form_urlencoded::byte_serialize(once.as_bytes()).collect()
            } else {
                once
            }
        });
    match meeting {
        Some(m) => {
            let (st, qos) = get(format!("/metrics/meetings/{m}/participants/qos?type=past&page_size=1")).await;
            record(
                &mut steps,
                "GET /metrics/meetings/{meetingId}/participants/qos",
                st,
                &qos,
            );
            let participant = qos["participants"].as_array().and_then(|l| {
                l.iter()
                    .find_map(|p| p["id"].as_str().filter(|s| !s.is_empty()).or(p["user_id"].as_str()))
            });
            match participant {
                Some(pid) => {
                    let (st, v) = get(format!("/metrics/meetings/{m}/participants/{pid}/qos?type=past")).await;
                    record(
                        &mut steps,
                        "GET /metrics/meetings/{meetingId}/participants/{participantId}/qos",
                        st,
                        &v,
                    );
                }
                None => steps.push(step(
                    "GET /metrics/meetings/{meetingId}/participants/{participantId}/qos",
                    false,
                    "no participant",
                )),
            }
        }
        None => {
            steps.push(step(
                "GET /metrics/meetings/{meetingId}/participants/qos",
                false,
                "no past meeting",
            ));
            steps.push(step(
                "GET /metrics/meetings/{meetingId}/participants/{participantId}/qos",
                false,
                "no past meeting",
            ));
        }
    }
    let (st, v) = get("/metrics/zoomrooms?page_size=30".into()).await;
    record(&mut steps, "GET /metrics/zoomrooms", st, &v);
    let (st, v) = get(format!("/metrics/zoomrooms/issues?from={from}&to={to}")).await;
    record(&mut steps, "GET /metrics/zoomrooms/issues", st, &v);
    let ok = steps.iter().all(|s| s["ok"] == true);
    (StatusCode::OK, Json(json!({"ok": ok, "steps": steps}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glide_times_round_trip() {
        assert_eq!(parse_glide_time(&glide_time(1_795_878_000)), Some(1_795_878_000));
        assert_eq!(parse_glide_time("yesterday"), None);
    }
}
