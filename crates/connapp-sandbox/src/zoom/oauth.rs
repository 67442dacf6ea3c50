//! The "zoom.us" side: `/oauth/authorize`, `/oauth/token`, `/oauth/revoke`.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::json;
use sha2::Digest;

use crate::pages::{consent_page, error_page};
use crate::random::random_hex;
use crate::state::{App, AppKind, Code, GrantType, State, Usage};
use crate::{Ctx, redirect, token_error};

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/oauth/authorize", get(authorize).post(decide))
        .route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
}

fn wants_json(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json") && !v.contains("text/html"))
}

fn invalid_redirect(h: &HeaderMap) -> Response {
    if wants_json(h) {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"status": false, "errorCode": 4700, "errorMessage": "Invalid redirect url", "result": null}),
            ),
        )
            .into_response();
    }
    error_page(
        StatusCode::BAD_REQUEST,
        4700,
        "Invalid redirect url",
        "The redirect URL is not on this app's redirect URL or OAuth allow list. It must match exactly, including case and trailing slashes.",
    )
}

/// Checks authorize parameters; returns the granted scopes or an error page.
fn check_authorize(ctx: &Ctx, p: &HashMap<String, String>, h: &HeaderMap) -> Result<Vec<String>, Response> {
    let s = ctx.lock();
    let Some(app) = p.get("client_id").and_then(|c| s.apps.get(c)) else {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            4700,
            "Invalid client_id",
            "No app has this client ID.",
        ));
    };
    if app.kind != AppKind::General {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            4700,
            "Invalid client_id",
            "Server-to-Server OAuth apps do not use the authorization page.",
        ));
    }
    match p.get("redirect_uri") {
        Some(r) if redirect::allowed(app, r) => {}
        _ => return Err(invalid_redirect(h)),
    }
    if p.get("response_type").map(String::as_str) != Some("code") {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            4700,
            "Invalid response_type",
            "response_type must be code.",
        ));
    }
    if let Some(m) = p.get("code_challenge_method")
        && m != "S256"
        && m != "plain"
    {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            4700,
            "Invalid code_challenge_method",
            "code_challenge_method must be S256 or plain.",
        ));
    }
    match p.get("scope").filter(|s| !s.is_empty()) {
        None => Ok(app.scopes.clone()),
        Some(req) => {
            // Zoom accepts a comma-separated subset; space-separated lists fail.
            let wanted: Vec<String> = req.split(',').map(|x| x.trim().to_string()).collect();
            if wanted.iter().any(|w| w.contains(' ') || !app.scopes.contains(w)) {
                return Err(error_page(
                    StatusCode::BAD_REQUEST,
                    4700,
                    "Invalid scope",
                    "The requested scopes are not all configured on this app (separate several with commas).",
                ));
            }
            Ok(wanted)
        }
    }
}

async fn authorize(
    AxState(ctx): AxState<Ctx>,
    h: HeaderMap,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Response, Response> {
    let scopes = check_authorize(&ctx, &p, &h)?;
    let auto = ctx.lock().knobs.auto_approve.clone();
    if let Some(user) = auto {
        // A `login_hint` naming a sandbox user picks who "signed in" (so two
        // consents by different admins can be simulated); otherwise the knob's user.
        let hinted = p.get("login_hint").filter(|h| ctx.lock().user(h).is_some()).cloned();
        return Ok(decision(&ctx, &p, &hinted.unwrap_or(user), true, scopes));
    }
    let s = ctx.lock();
    let Some(app) = p.get("client_id").and_then(|c| s.apps.get(c)) else {
        return Ok(error_page(
            StatusCode::BAD_REQUEST,
            4700,
            "Invalid client_id",
            "No app has this client ID.",
        ));
    };
    let hidden: Vec<(String, String)> = p.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(consent_page(app, &s.users, &scopes, &hidden))
}

async fn decide(AxState(ctx): AxState<Ctx>, h: HeaderMap, body: Bytes) -> Result<Response, Response> {
    let p: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let scopes = check_authorize(&ctx, &p, &h)?;
    let user = p.get("user").cloned().unwrap_or_default();
    let allow = p.get("decision").map(String::as_str) == Some("allow");
    Ok(decision(&ctx, &p, &user, allow, scopes))
}

fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = uri.to_string();
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    out.push(if uri.contains('?') { '&' } else { '?' });
    out.push_str(&ser.finish());
    out
}

fn decision(ctx: &Ctx, p: &HashMap<String, String>, user: &str, allow: bool, scopes: Vec<String>) -> Response {
    let redirect_uri = p.get("redirect_uri").cloned().unwrap_or_default();
    let state_param = p.get("state").cloned();
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if !allow {
        extra.push(("error", "access_denied"));
        if let Some(st) = &state_param {
            extra.push(("state", st));
        }
        return Redirect::to(&with_query(&redirect_uri, &extra)).into_response();
    }
    let mut s = ctx.lock();
    let Some(u) = s.user(user).cloned() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            4700,
            "Unknown user",
            "Choose one of the sandbox users.",
        );
    };
    let client_id = p.get("client_id").cloned().unwrap_or_default();
    let Some(app) = s.apps.get(&client_id) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            4700,
            "Invalid client_id",
            "No app has this client ID.",
        );
    };
    if app.usage == Usage::AdminManagement && !u.role.is_admin() {
        return error_page(
            StatusCode::FORBIDDEN,
            4700,
            "An account admin is required to install this type of app.",
            "This app is admin-managed: only an account owner or admin can authorize it.",
        );
    }
    let challenge = p.get("code_challenge").filter(|c| !c.is_empty()).map(|c| {
        (
            c.clone(),
            p.get("code_challenge_method")
                .cloned()
                .unwrap_or_else(|| "plain".into()),
        )
    });
    let code = random_hex(16);
    let expires_at = s.now() + s.knobs.code_ttl;
    s.codes.insert(
        code.clone(),
        Code {
            client_id,
            user_id: u.id.clone(),
            redirect_uri: redirect_uri.clone(),
            scopes,
            challenge,
            expires_at,
        },
    );
    s.counters.consents += 1;
    drop(s);
    extra.push(("code", &code));
    if let Some(st) = &state_param {
        extra.push(("state", st));
    }
    Redirect::to(&with_query(&redirect_uri, &extra)).into_response()
}

/// Client authentication: Basic header, else body fields.
fn client_auth(h: &HeaderMap, form: &HashMap<String, String>) -> Option<(String, String)> {
    if let Some(v) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(b64) = v.strip_prefix("Basic ")
    {
        let decoded = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        return Some((id.to_string(), secret.to_string()));
    }
    Some((form.get("client_id")?.clone(), form.get("client_secret")?.clone()))
}

fn token_response(ctx: &Ctx, access: String, refresh: Option<String>, scopes: &[String], expires_in: u64) -> Response {
    let mut body = json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": expires_in,
        "scope": scopes.join(" "),
        "api_url": &*ctx.base_url,
    });
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn pkce_ok(challenge: &Option<(String, String)>, verifier: Option<&String>) -> bool {
    match (challenge, verifier) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some((c, m)), Some(v)) => {
            if m == "S256" {
                let digest = sha2::Sha256::digest(v.as_bytes());
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest) == *c
            } else {
                v == c
            }
        }
    }
}

/// The app a token or revoke request authenticates as, or Zoom's answer:
/// parameters in the query (when the knob refuses them), no credentials
/// (4706), or an unknown client or a wrong secret.
fn client_of(s: &State, h: &HeaderMap, query: Option<&str>, form: &HashMap<String, String>) -> Result<App, Response> {
    if s.knobs.reject_query_params && query.is_some_and(|q| !q.is_empty()) {
        return Err(token_error(
            400,
            "Parameters must be sent in the request body, not the URL query string",
            "invalid_request",
        ));
    }
    let Some((client_id, secret)) = client_auth(h, form) else {
        return Err(token_error(
            400,
            "Missing client_id or client_secret (4706)",
            "invalid_request",
        ));
    };
    match s.apps.get(&client_id) {
        Some(app) if app.accepts_secret(&secret, s.now()) => Ok(app.clone()),
        _ => Err(token_error(
            s.knobs.invalid_client_status,
            "Invalid client_id or client_secret",
            "invalid_client",
        )),
    }
}

/// The token endpoint: Zoom decides (and rotates) at once; the answer takes
/// `token_latency_ms` to come back, as it does across a continent.
async fn token(AxState(ctx): AxState<Ctx>, h: HeaderMap, q: RawQuery, body: Bytes) -> Response {
    let delay = ctx.lock().knobs.token_latency_ms;
    let answer = token_now(&ctx, &h, q, body);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    answer
}

fn token_now(ctx: &Ctx, h: &HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    let mut s = ctx.lock();
    *s.counters
        .token_requests
        .entry(if grant_type.is_empty() {
            "(none)".into()
        } else {
            grant_type.clone()
        })
        .or_default() += 1;
    let app = match client_of(&s, h, q.as_deref(), &form) {
        Ok(app) => app,
        Err(refused) => return refused,
    };
    let client_id = app.client_id.clone();
    let now = s.now();
    match grant_type.as_str() {
        "authorization_code" => {
            if app.kind != AppKind::General {
                return token_error(400, "unsupported grant type", "unsupported_grant_type");
            }
            let code_str = form.get("code").cloned().unwrap_or_default();
            // Single use: the code is gone whatever happens next.
            let Some(code) = s.codes.remove(&code_str) else {
                return token_error(400, format!("Invalid authorization code {code_str}"), "invalid_request");
            };
            if code.client_id != client_id || code.expires_at < now {
                return token_error(400, format!("Invalid authorization code {code_str}"), "invalid_request");
            }
            if form.get("redirect_uri") != Some(&code.redirect_uri) {
                return token_error(400, "Redirect URI mismatch (4709)", "invalid_request");
            }
            if !pkce_ok(&code.challenge, form.get("code_verifier")) {
                return token_error(400, "Invalid code_verifier", "invalid_grant");
            }
            // One grant per (app, user): a new consent kills the previous grant.
            let old: Vec<u64> = s
                .grants
                .values()
                .filter(|g| {
                    !g.revoked
                        && g.client_id == client_id
                        && g.grant_type == GrantType::AuthorizationCode
                        && g.user_id.as_deref() == Some(code.user_id.as_str())
                })
                .map(|g| g.id)
                .collect();
            for id in old {
                s.revoke_grant(id);
            }
            let gid = s.new_grant(
                &client_id,
                Some(code.user_id.clone()),
                GrantType::AuthorizationCode,
                code.scopes.clone(),
            );
            let access = s.issue_access(gid);
            let refresh = s.issue_refresh(gid);
            let ttl = s.knobs.access_ttl;
            drop(s);
            token_response(ctx, access, Some(refresh), &code.scopes, ttl)
        }
        "refresh_token" => {
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            let Some(gid) = s.refresh_tokens.get(&rt).copied() else {
                return token_error(400, "Invalid Token!", "invalid_grant");
            };
            let Some(g) = s.grants.get(&gid).cloned() else {
                return token_error(400, "Invalid Token!", "invalid_grant");
            };
            if g.revoked || g.client_id != client_id || g.refresh_expires_at < now {
                return token_error(400, "Invalid Token!", "invalid_grant");
            }
            let access = s.issue_access(gid);
            let refresh = s.issue_refresh(gid);
            *s.counters.refreshes.entry(gid).or_default() += 1;
            let ttl = s.knobs.access_ttl;
            drop(s);
            // Scopes stay what they were at consent.
            token_response(ctx, access, Some(refresh), &g.scopes, ttl)
        }
        "account_credentials" => {
            if app.kind != AppKind::ServerToServer {
                return token_error(400, "unsupported grant type", "unsupported_grant_type");
            }
            if form.get("account_id") != Some(&s.account_id) {
                return token_error(400, "Invalid account_id", "invalid_request");
            }
            let gid = s.new_grant(&client_id, None, GrantType::AccountCredentials, app.scopes.clone());
            let access = s.issue_access(gid);
            let ttl = s.knobs.access_ttl;
            drop(s);
            token_response(ctx, access, None, &app.scopes, ttl)
        }
        "client_credentials" => {
            if app.kind != AppKind::General {
                return token_error(400, "unsupported grant type", "unsupported_grant_type");
            }
            let gid = s.new_grant(&client_id, None, GrantType::ClientCredentials, app.scopes.clone());
            let access = s.issue_access(gid);
            let ttl = s.knobs.access_ttl;
            drop(s);
            token_response(ctx, access, None, &app.scopes, ttl)
        }
        "" => token_error(400, "Missing grant_type (4706)", "invalid_request"),
        _ => token_error(400, "unsupported grant type", "unsupported_grant_type"),
    }
}

async fn revoke(AxState(ctx): AxState<Ctx>, h: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut s = ctx.lock();
    let client_id = match client_of(&s, &h, q.as_deref(), &form) {
        Ok(app) => app.client_id,
        Err(refused) => return refused,
    };
    let token = form.get("token").cloned().unwrap_or_default();
    let gid = s
        .access_tokens
        .get(&token)
        .map(|t| t.grant_id)
        .or_else(|| s.refresh_tokens.get(&token).copied());
    match gid {
        Some(gid) if s.grants.get(&gid).is_some_and(|g| g.client_id == client_id) => {
            let user_id = s.grants.get(&gid).and_then(|g| g.user_id.clone());
            s.revoke_grant(gid);
            let now = s.now();
            drop(s);
            // Revoking a user's grant uninstalls the app for them.
            if let Some(user_id) = user_id {
                crate::webhooks::emit(
                    &ctx,
                    &client_id,
                    "app_deauthorized",
                    json!({"user_id": user_id, "client_id": client_id, "deauthorization_time": crate::data::iso(now), "signature": "", "user_data_retention": "false"}),
                );
            }
            (StatusCode::OK, axum::Json(json!({"status": "success"}))).into_response()
        }
        _ => token_error(400, "Invalid Token!", "invalid_request"),
    }
}
