//! The Marketplace API (`/v2/marketplace/...`): create and read apps, export,
//! validate and replace manifests, rotate the client secret — with Zoom's
//! quirks: the validator answers HTTP 200 with an error list and is
//! permissive, unknown keys are dropped, PUT is a full replacement, only draft
//! General apps export.
//!
//! The manifest shape follows `docs/zoom-platform.md` §17. Event subscriptions are
//! not documented there; the sandbox reads them from
//! `features.event_subscriptions: [{"endpoint_url": ..., "events": [...]}]`
//! [inferred].

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::api::{Call, alternatives, ok};
use crate::data::iso;
use crate::random::random_alnum;
use crate::state::{App, AppKind, EventSubscription, Usage};
use crate::{Ctx, api_error};

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v2/marketplace/apps", post(create_app).get(list_apps))
        .route("/v2/marketplace/apps/manifest/validate", post(validate))
        .route("/v2/marketplace/apps/{app_id}", get(get_app).delete(delete_app))
        .route("/v2/marketplace/apps/{app_id}/manifest", get(export).put(replace))
        .route("/v2/marketplace/apps/{app_id}/rotate_client_secret", post(rotate))
}

const CATEGORY: &str = "Medium";

/// The manifest Zoom would export for `app`.
pub fn manifest_of(app: &App) -> Value {
    let mut oauth = Map::new();
    oauth.insert(
        "usage".into(),
        json!(match app.usage {
            Usage::AdminManagement => "ADMIN_MANAGEMENT",
            Usage::UserOperation => "USER_OPERATION",
        }),
    );
    oauth.insert(
        "development_redirect_uri".into(),
        json!(app.redirect_urls.first().cloned().unwrap_or_default()),
    );
    oauth.insert(
        "production_redirect_uri".into(),
        json!(
            app.redirect_urls
                .get(1)
                .or(app.redirect_urls.first())
                .cloned()
                .unwrap_or_default()
        ),
    );
    oauth.insert("oauth_allow_list".into(), json!(app.allow_list));
    oauth.insert("strict_mode".into(), json!(app.strict_mode));
    oauth.insert("subdomain_strict_mode".into(), json!(app.subdomain_check));
    oauth.insert(
        "scopes".into(),
        Value::Array(
            app.scopes
                .iter()
                .map(|s| json!({"scope": s, "optional": app.optional_scopes.contains(s)}))
                .collect(),
        ),
    );
    oauth.insert("scope_description".into(), json!(app.scope_description));
    let mut display = Map::new();
    display.insert("display_name".into(), json!(app.name));
    let mut features = Map::new();
    features.insert("products".into(), json!(app.products));
    if !app.event_subscriptions.is_empty() {
        features.insert("event_subscriptions".into(), json!(app.event_subscriptions));
    }
    for (k, v) in &app.manifest_extra {
        if let Some((section, key)) = k.split_once('.') {
            let target = match section {
                "display_information" => &mut display,
                "oauth_information" => &mut oauth,
                "features" => &mut features,
                _ => continue,
            };
            target.insert(key.to_string(), v.clone());
        }
    }
    json!({"display_information": display, "oauth_information": oauth, "features": features})
}

/// Settings the sandbox keeps but does not act on (dropped silently otherwise).
const EXTRA_KEYS: &[&str] = &[
    "display_information.description",
    "display_information.short_description",
    "oauth_information.enable_private_pkce_client",
    "oauth_information.enable_public_pkce_client",
];

/// The validator: `(errors, app fields)`; errors are `(setting, message)`.
fn check_manifest(m: &Value) -> (Vec<(String, String)>, Option<App>) {
    let mut errors = Vec::new();
    let oauth = m.get("oauth_information").cloned().unwrap_or(Value::Null);
    let display = m.get("display_information").cloned().unwrap_or(Value::Null);
    let features = m.get("features").cloned().unwrap_or(Value::Null);
    let usage = match oauth.get("usage").and_then(Value::as_str) {
        Some("ADMIN_MANAGEMENT") => Some(Usage::AdminManagement),
        Some("USER_OPERATION") => Some(Usage::UserOperation),
        Some(other) => {
            errors.push((
                "oauth_information.usage".into(),
                format!("{other} is not a valid usage; use ADMIN_MANAGEMENT or USER_OPERATION"),
            ));
            None
        }
        None => {
            errors.push(("oauth_information.usage".into(), "usage is required".into()));
            None
        }
    };
    let dev = oauth
        .get("development_redirect_uri")
        .and_then(Value::as_str)
        .unwrap_or("");
    if dev.is_empty() {
        errors.push((
            "oauth_information.development_redirect_uri".into(),
            "development_redirect_uri is required".into(),
        ));
    }
    let prod = oauth
        .get("production_redirect_uri")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = display.get("display_name").and_then(Value::as_str).unwrap_or("");
    if name.chars().count() >= 50 {
        errors.push((
            "display_information.display_name".into(),
            "display_name must be less than 50 characters".into(),
        ));
    }
    let mut scopes = Vec::new();
    let mut optional = Vec::new();
    if let Some(list) = oauth.get("scopes").and_then(Value::as_array) {
        for (i, s) in list.iter().enumerate() {
            let Some(scope) = s.get("scope").and_then(Value::as_str) else {
                errors.push((
                    format!("oauth_information.scopes[{i}].scope"),
                    "scope is required".into(),
                ));
                continue;
            };
            if usage == Some(Usage::UserOperation) && (scope.ends_with(":admin") || scope.ends_with(":master")) {
                errors.push((
                    format!("oauth_information.scopes[{i}].scope"),
                    format!("{scope} is not a valid scope name when usage is USER_OPERATION"),
                ));
            }
            if s.get("optional").and_then(Value::as_bool).unwrap_or(false) {
                optional.push(scope.to_string());
            }
            scopes.push(scope.to_string());
        }
        if !scopes.is_empty() && optional.len() == scopes.len() {
            errors.push((
                "oauth_information.scopes".into(),
                "at least one scope must be non-optional".into(),
            ));
        }
    }
    let allow: Vec<String> = oauth
        .get("oauth_allow_list")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let products: Vec<String> = features
        .get("products")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let subs: Vec<EventSubscription> = features
        .get("event_subscriptions")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let mut extra = Map::new();
    for key in EXTRA_KEYS {
        if let Some((section, k)) = key.split_once('.')
            && let Some(v) = m.get(section).and_then(|s| s.get(k))
        {
            extra.insert((*key).to_string(), v.clone());
        }
    }
    if !errors.is_empty() {
        return (errors, None);
    }
    let mut redirect_urls = vec![dev.to_string()];
    if !prod.is_empty() && prod != dev {
        redirect_urls.push(prod.to_string());
    }
    let app = App {
        name: name.to_string(),
        usage: usage.unwrap_or(Usage::AdminManagement),
        redirect_urls,
        allow_list: allow,
        strict_mode: oauth.get("strict_mode").and_then(Value::as_bool).unwrap_or(false),
        subdomain_check: oauth
            .get("subdomain_strict_mode")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        scopes,
        optional_scopes: optional,
        scope_description: oauth
            .get("scope_description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        products,
        event_subscriptions: subs,
        manifest_extra: extra,
        ..App::default()
    };
    (errors, Some(app))
}

fn errors_json(errors: &[(String, String)]) -> Value {
    Value::Array(
        errors
            .iter()
            .map(|(s, m)| json!({"setting": s, "message": m}))
            .collect(),
    )
}

/// 400 code 300 with the validator's errors (PUT and create refuse alike).
fn invalid_manifest(errors: &[(String, String)]) -> Response {
    let mut r = (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"code": 300, "message": "Invalid manifest.", "errors": errors_json(errors)})),
    )
        .into_response();
    crate::add_tracking_id(&mut r);
    r
}

fn body_json(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| api_error(400, 300, format!("Request body is not valid JSON: {e}")))
}

fn read_scopes() -> Vec<String> {
    alternatives("marketplace:read:app:admin", true)
}

fn write_scopes() -> Vec<String> {
    alternatives("marketplace:write:app:admin", true)
}

async fn validate(ctx: Call, body: Bytes) -> Result<Response, Response> {
    let (_, rl) = ctx.enter("POST /marketplace/apps/manifest/validate", &read_scopes(), CATEGORY)?;
    let v = body_json(&body)?;
    let Some(m) = v.get("manifest") else {
        return Err(api_error(400, 300, "manifest is required"));
    };
    let (errors, _) = check_manifest(m);
    Ok(
        // HTTP 200 even when the manifest is invalid.
        if errors.is_empty() {
            ok(json!({"ok": true, "errors": []}), CATEGORY, rl)
        } else {
            ok(
                json!({"ok": false, "error": "invalid_manifest", "errors": errors_json(&errors)}),
                CATEGORY,
                rl,
            )
        },
    )
}

fn find_app<'a>(s: &'a crate::state::State, app_id: &str) -> Option<&'a App> {
    s.apps.values().find(|a| a.app_id == app_id)
}

async fn get_app(ctx: Call, Path(app_id): Path<String>) -> Result<Response, Response> {
    let (_, rl) = ctx.enter("GET /marketplace/apps/{appId}", &read_scopes(), CATEGORY)?;
    let s = ctx.lock();
    let Some(app) = find_app(&s, &app_id) else {
        return Err(api_error(404, 1500, format!("App {app_id} does not exist.")));
    };
    Ok(ok(
        json!({
            "app_id": app.app_id,
            "app_name": app.name,
            "app_type": match app.kind { AppKind::General => "OAuthApp", AppKind::ServerToServer => "S2SOAuthApp" },
            "app_usage": match app.usage { Usage::AdminManagement => 1, Usage::UserOperation => 2 },
            "app_status": if app.status == "published" { "published" } else { "unpublished" },
            "app_scopes": app.scopes,
            "app_requirements": {},
        }),
        CATEGORY,
        rl,
    ))
}

async fn export(ctx: Call, Path(app_id): Path<String>) -> Result<Response, Response> {
    let (_, rl) = ctx.enter("GET /marketplace/apps/{appId}/manifest", &read_scopes(), CATEGORY)?;
    let s = ctx.lock();
    let Some(app) = find_app(&s, &app_id) else {
        return Err(api_error(404, 1500, format!("App {app_id} does not exist.")));
    };
    if app.kind != AppKind::General || app.status != "draft" {
        return Err(api_error(
            404,
            1500,
            "You can only export Draft General app's manifest now",
        ));
    }
    Ok(ok(json!({"manifest": manifest_of(app)}), CATEGORY, rl))
}

async fn replace(ctx: Call, Path(app_id): Path<String>, body: Bytes) -> Result<Response, Response> {
    let (_, _) = ctx.enter("PUT /marketplace/apps/{appId}/manifest", &write_scopes(), CATEGORY)?;
    let v = body_json(&body)?;
    let Some(m) = v.get("manifest") else {
        return Err(api_error(400, 300, "manifest is required"));
    };
    let (errors, new) = check_manifest(m);
    let Some(new) = new else {
        return Ok(invalid_manifest(&errors));
    };
    let mut s = ctx.lock();
    let status = s.knobs.manifest_put_status;
    let Some(app) = s.apps.values_mut().find(|a| a.app_id == app_id) else {
        return Err(api_error(404, 1500, format!("App {app_id} does not exist.")));
    };
    let old_endpoints: Vec<String> = app.event_subscriptions.iter().map(|e| e.endpoint_url.clone()).collect();
    // A full replacement: whatever the manifest omits is gone. Identity,
    // credentials and existing grants stay; new consents get the new scopes.
    *app = App {
        app_id: app.app_id.clone(),
        kind: app.kind,
        client_id: app.client_id.clone(),
        client_secret: app.client_secret.clone(),
        secret_token: app.secret_token.clone(),
        status: app.status.clone(),
        old_secret: app.old_secret.clone(),
        schedule_changes: app.schedule_changes.clone(),
        ..new
    };
    // New endpoints are validated with the url_validation challenge, as on save in Zoom.
    let client_id = app.client_id.clone();
    let new_endpoints: Vec<String> = app
        .event_subscriptions
        .iter()
        .map(|e| e.endpoint_url.clone())
        .filter(|u| !old_endpoints.contains(u))
        .collect();
    drop(s);
    for url in new_endpoints {
        tokio::spawn(crate::webhooks::validate_endpoint(ctx.clone(), client_id.clone(), url));
    }
    let mut r = StatusCode::from_u16(status)
        .unwrap_or(StatusCode::NO_CONTENT)
        .into_response();
    crate::add_tracking_id(&mut r);
    Ok(r)
}

/// `GET /marketplace/apps?type=account_created`: the apps this account
/// created, `page_size` (at most 300, default 30) at a time, the next page
/// behind `next_page_token` (empty on the last page). Other list types are
/// apps of other accounts, which the sandbox does not hold.
async fn list_apps(
    ctx: Call,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, Response> {
    let (_, rl) = ctx.enter("GET /marketplace/apps", &read_scopes(), CATEGORY)?;
    match q.get("type").map(String::as_str) {
        Some("account_created") => {}
        Some(
            t
            @ ("active_requests" | "past_requests" | "public" | "approved_apps" | "restricted_apps" | "account_added"),
        ) => {
            return Ok(ok(
                json!({"page_size": 0, "next_page_token": "", "apps": [], "type": t}),
                CATEGORY,
                rl,
            ));
        }
        _ => return Err(api_error(400, 300, "Invalid field: type.")),
    }
    let size = match q.get("page_size").map(|p| p.parse::<usize>()) {
        None => 30,
        Some(Ok(n)) if (1..=300).contains(&n) => n,
        Some(_) => {
            return Err(api_error(
                400,
                300,
                "Invalid field: page_size must be between 1 and 300.",
            ));
        }
    };
    let from = match q.get("next_page_token").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .strip_prefix("p")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| api_error(400, 300, "Invalid field: next_page_token."))?,
    };
    let s = ctx.lock();
    let mut all: Vec<&App> = s.apps.values().filter(|a| a.kind == AppKind::General).collect();
    all.sort_by(|a, b| a.app_id.cmp(&b.app_id));
    let page: Vec<Value> = all
        .iter()
        .skip(from)
        .take(size)
        .map(|app| {
            json!({
                "app_id": app.app_id,
                "app_name": app.name,
                "app_type": "OAuthApp",
                "app_usage": match app.usage { Usage::AdminManagement => 1, Usage::UserOperation => 2 },
                "app_status": if app.status == "published" { "PUBLISHED" } else { "UNPUBLISHED" },
            })
        })
        .collect();
    let next = if from + size < all.len() {
        format!("p{}", from + size)
    } else {
        String::new()
    };
    Ok(ok(
        json!({"page_size": size, "next_page_token": next, "apps": page}),
        CATEGORY,
        rl,
    ))
}

async fn create_app(ctx: Call, body: Bytes) -> Result<Response, Response> {
    let (_, rl) = ctx.enter("POST /marketplace/apps", &write_scopes(), CATEGORY)?;
    let v = body_json(&body)?;
    if v.get("app_type").and_then(Value::as_str) != Some("general") {
        return Err(api_error(400, 300, "app_type must be general."));
    }
    let Some(name) = v.get("app_name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
        return Err(api_error(400, 300, "app_name is required."));
    };
    let mut app = match v.get("manifest") {
        Some(m) => match check_manifest(m) {
            (_, Some(app)) => app,
            (errors, None) => return Ok(invalid_manifest(&errors)),
        },
        None => App::default(),
    };
    if app.name.is_empty() {
        app.name = name.to_string();
    }
    app.kind = AppKind::General;
    let mut s = ctx.lock();
    let created_at = iso(s.now());
    let status = s.knobs.create_app_status;
    let (app_id, client_id, client_secret) = (app.app_id.clone(), app.client_id.clone(), app.client_secret.clone());
    s.apps.insert(client_id.clone(), app);
    drop(s);
    let mut r = ok(
        json!({
            "app_id": app_id,
            "app_name": name,
            "app_type": "general",
            "created_at": created_at,
            "credentials": {"client_id": client_id, "client_secret": client_secret},
            "oauth_authorize_url": format!("{}/oauth/authorize?response_type=code&client_id={client_id}", ctx.base_url),
        }),
        CATEGORY,
        rl,
    );
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED);
    Ok(r)
}

async fn delete_app(ctx: Call, Path(app_id): Path<String>) -> Response {
    let accepted = alternatives("marketplace:delete:app:admin", true);
    if let Err(r) = ctx.enter("DELETE /marketplace/apps/{appId}", &accepted, CATEGORY) {
        return r;
    }
    let mut s = ctx.lock();
    let Some(client_id) = find_app(&s, &app_id).map(|a| a.client_id.clone()) else {
        return api_error(404, 1500, format!("App {app_id} does not exist."));
    };
    s.apps.remove(&client_id);
    let ids: Vec<u64> = s
        .grants
        .values()
        .filter(|g| g.client_id == client_id)
        .map(|g| g.id)
        .collect();
    for id in ids {
        s.revoke_grant(id);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// How far ahead a rotation may schedule the old secret's revocation.
const MAX_OVERLAP_SECS: u64 = 30 * 86_400;
/// Zoom allows about this many rotation schedule changes per app ...
const SCHEDULE_CHANGES: usize = 3;
/// ... in this many seconds.
const SCHEDULE_WINDOW_SECS: u64 = 15 * 60;

/// `POST /marketplace/apps/{appId}/rotate_client_secret` (changelog
/// 2025-09-22): `action: new` starts a rotation (the answer carries the new
/// secret; the old one keeps working until `revoke_old_secret_time`, `now`
/// or a UTC time at most 30 days ahead); `action: update` changes that time
/// of the rotation in progress. Both count against about 3 schedule changes
/// per 15 minutes. A request without a body is the old call: a new secret,
/// the old one revoked at once. The knob `rotate_revokes_at_once` revokes at
/// once whatever the request says.
async fn rotate(ctx: Call, Path(app_id): Path<String>, body: Bytes) -> Result<Response, Response> {
    let accepted = alternatives("marketplace:update:client_secret:admin", true);
    let (_, rl) = ctx.enter(
        "POST /marketplace/apps/{appId}/rotate_client_secret",
        &accepted,
        CATEGORY,
    )?;
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        json!({"action": "new", "revoke_old_secret_time": "now"})
    } else {
        body_json(&body)?
    };
    let action = req["action"].as_str().unwrap_or_default().to_string();
    if action != "new" && action != "update" {
        return Err(api_error(400, 300, "Invalid field: action must be new or update."));
    }
    let mut s = ctx.lock();
    let now = s.now();
    let at_once = s.knobs.rotate_revokes_at_once;
    let revoke_at = match req["revoke_old_secret_time"].as_str() {
        None => {
            return Err(api_error(
                400,
                300,
                "Invalid field: revoke_old_secret_time is required.",
            ));
        }
        Some("now") => now,
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(t) if t.timestamp() >= now as i64 && t.timestamp() as u64 <= now + MAX_OVERLAP_SECS => {
                t.timestamp() as u64
            }
            Ok(_) => {
                return Err(api_error(
                    400,
                    300,
                    "Invalid field: revoke_old_secret_time must be now or a time within the next 30 days.",
                ));
            }
            Err(_) => {
                return Err(api_error(
                    400,
                    300,
                    "Invalid field: revoke_old_secret_time must be now or a UTC time such as 2025-10-01T00:00:00Z.",
                ));
            }
        },
    };
    let Some(app) = s.apps.values_mut().find(|a| a.app_id == app_id) else {
        return Err(api_error(404, 1500, format!("App {app_id} does not exist.")));
    };
    let pending = app.old_secret.as_ref().is_some_and(|o| now < o.revoke_at);
    if action == "update" && !pending {
        return Err(api_error(
            400,
            300,
            "No client secret rotation is in progress for this app.",
        ));
    }
    if action == "new" && pending {
        return Err(api_error(
            400,
            300,
            "A client secret rotation is already in progress for this app; revoke the old secret first.",
        ));
    }
    app.schedule_changes.retain(|t| now < t + SCHEDULE_WINDOW_SECS);
    if app.schedule_changes.len() >= SCHEDULE_CHANGES {
        let again = app.schedule_changes[0] + SCHEDULE_WINDOW_SECS;
        let mut r = api_error(
            429,
            429,
            "You have reached the maximum number of client secret rotation changes for this app. Try again later.",
        );
        if let Ok(v) = axum::http::HeaderValue::from_str(&iso(again)) {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        return Err(r);
    }
    app.schedule_changes.push(now);
    let revoke_at = if at_once { now } else { revoke_at };
    let body = if action == "new" {
        let old = std::mem::replace(&mut app.client_secret, random_alnum(32));
        app.old_secret = (revoke_at > now).then_some(crate::state::OldSecret { secret: old, revoke_at });
        json!({
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "revoke_old_secret_time": iso(revoke_at),
        })
    } else {
        if revoke_at > now {
            if let Some(o) = app.old_secret.as_mut() {
                o.revoke_at = revoke_at;
            }
        } else {
            app.old_secret = None;
        }
        json!({"client_id": app.client_id, "revoke_old_secret_time": iso(revoke_at)})
    };
    drop(s);
    Ok(ok(body, CATEGORY, rl))
}
