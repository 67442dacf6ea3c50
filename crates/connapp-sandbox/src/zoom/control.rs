//! The control API for tests, under `/_sandbox/` and clearly apart from the
//! Zoom-compatible routes: clock, knobs, grants, secrets, plan, counters, apps.

use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Ctx;
use crate::random::random_alnum;
use crate::state::{App, Knobs, Limit, Plan, plan_limits};

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/_sandbox/state", get(state))
        .route("/_sandbox/clock/advance", post(advance))
        .route("/_sandbox/knobs", get(get_knobs).put(put_knobs))
        .route("/_sandbox/grants", get(grants))
        .route("/_sandbox/grants/{id}/revoke", post(revoke_grant))
        .route("/_sandbox/apps", get(apps).post(add_app))
        .route("/_sandbox/apps/{client_id}", put(replace_app))
        .route("/_sandbox/apps/{client_id}/rotate-secret", post(rotate_secret))
        .route("/_sandbox/account/plan", put(set_plan))
        .route("/_sandbox/rate-limits", get(get_limits).put(put_limits))
        .route("/_sandbox/counters", get(counters))
        .route("/_sandbox/events", post(emit_event))
        .route(
            "/_sandbox/apps/{client_id}/validate-endpoints",
            post(validate_endpoints),
        )
        .route("/_sandbox/deliveries", get(deliveries))
        .route("/_sandbox/validations", get(validations))
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()}))).into_response()
}

async fn state(AxState(ctx): AxState<Ctx>) -> Json<Value> {
    let s = ctx.lock();
    Json(json!({
        "base_url": &*ctx.base_url,
        "oauth": {
            "authorize": format!("{}/oauth/authorize", ctx.base_url),
            "token": format!("{}/oauth/token", ctx.base_url),
            "revoke": format!("{}/oauth/revoke", ctx.base_url),
        },
        "api_base": format!("{}/v2", ctx.base_url),
        "now": s.now(),
        "account_id": s.account_id,
        "plan": s.plan,
        "dashboard_enabled": s.dashboard_enabled,
        "users": s.users,
        "apps": s.apps.values().collect::<Vec<_>>(),
        "meetings": s.data.meetings.iter().map(|m| json!({"uuid": m.uuid, "id": m.id, "host_id": m.host_id, "start_time": crate::data::iso(m.start_time), "participants": m.participants.iter().map(|p| p.id.clone()).collect::<Vec<_>>()})).collect::<Vec<_>>(),
        "rooms": s.data.rooms.iter().map(|r| json!({"id": r.id, "room_name": r.room_name})).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance(AxState(ctx): AxState<Ctx>, Json(a): Json<Advance>) -> Json<Value> {
    let (now, offset) = {
        let mut s = ctx.lock();
        s.clock_offset += a.seconds;
        (s.now(), s.clock_offset)
    };
    // Retries that just became due go out now.
    crate::webhooks::run_due_retries(&ctx);
    Json(json!({"now": now, "offset": offset}))
}

async fn get_knobs(AxState(ctx): AxState<Ctx>) -> Json<Knobs> {
    Json(ctx.lock().knobs.clone())
}

async fn put_knobs(AxState(ctx): AxState<Ctx>, Json(k): Json<Knobs>) -> Response {
    let mut s = ctx.lock();
    if let Some(u) = &k.auto_approve
        && s.user(u).is_none()
    {
        return bad(format!("no user {u:?}"));
    }
    s.knobs = k;
    Json(s.knobs.clone()).into_response()
}

async fn grants(AxState(ctx): AxState<Ctx>) -> Json<Value> {
    let s = ctx.lock();
    Json(json!(s.grants.values().collect::<Vec<_>>()))
}

async fn revoke_grant(AxState(ctx): AxState<Ctx>, Path(id): Path<u64>) -> Response {
    let mut s = ctx.lock();
    if !s.grants.contains_key(&id) {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "no such grant"}))).into_response();
    }
    s.revoke_grant(id);
    Json(json!({"revoked": id})).into_response()
}

async fn apps(AxState(ctx): AxState<Ctx>) -> Json<Value> {
    Json(json!(ctx.lock().apps.values().collect::<Vec<_>>()))
}

async fn add_app(AxState(ctx): AxState<Ctx>, Json(app): Json<App>) -> Response {
    let mut s = ctx.lock();
    if s.apps.contains_key(&app.client_id) {
        return bad("an app with this client_id exists");
    }
    s.apps.insert(app.client_id.clone(), app.clone());
    (StatusCode::CREATED, Json(app)).into_response()
}

/// Replaces an app's configuration. Existing grants keep their scopes.
async fn replace_app(AxState(ctx): AxState<Ctx>, Path(client_id): Path<String>, Json(app): Json<App>) -> Response {
    let mut s = ctx.lock();
    if app.client_id != client_id {
        return bad("client_id in the body must match the path");
    }
    if !s.apps.contains_key(&client_id) {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "no such app"}))).into_response();
    }
    s.apps.insert(client_id, app.clone());
    Json(app).into_response()
}

/// A person's rotation on the app's App Credentials page: a new secret; with
/// `{"overlap_secs": N}` the old one keeps working N more seconds (the
/// overlap Zoom offers since September 2025), else it dies at once.
async fn rotate_secret(AxState(ctx): AxState<Ctx>, Path(client_id): Path<String>, body: axum::body::Bytes) -> Response {
    let overlap = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("overlap_secs").and_then(Value::as_u64))
        .unwrap_or(0);
    let mut s = ctx.lock();
    let now = s.now();
    let Some(app) = s.apps.get_mut(&client_id) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "no such app"}))).into_response();
    };
    let old = std::mem::replace(&mut app.client_secret, random_alnum(32));
    app.old_secret = (overlap > 0).then(|| crate::state::OldSecret {
        secret: old,
        revoke_at: now + overlap,
    });
    Json(json!({"client_id": client_id, "client_secret": app.client_secret})).into_response()
}

#[derive(Deserialize)]
struct SetPlan {
    plan: Plan,
    #[serde(default = "yes")]
    dashboard_enabled: bool,
}

fn yes() -> bool {
    true
}

async fn set_plan(AxState(ctx): AxState<Ctx>, Json(p): Json<SetPlan>) -> Json<Value> {
    let mut s = ctx.lock();
    s.plan = p.plan;
    s.dashboard_enabled = p.dashboard_enabled;
    s.limits = plan_limits(p.plan);
    Json(json!({"plan": s.plan, "dashboard_enabled": s.dashboard_enabled}))
}

async fn get_limits(AxState(ctx): AxState<Ctx>) -> Json<Value> {
    Json(json!(ctx.lock().limits))
}

async fn put_limits(AxState(ctx): AxState<Ctx>, Json(l): Json<std::collections::BTreeMap<String, Limit>>) -> Response {
    let known = ["Light", "Medium", "Heavy", "Resource-intensive"];
    if let Some(k) = l.keys().find(|k| !known.contains(&k.as_str())) {
        return bad(format!("unknown category {k:?}; use {}", known.join(", ")));
    }
    let mut s = ctx.lock();
    for (k, v) in l {
        s.limits.insert(k, v);
    }
    s.rate = Default::default();
    Json(json!(s.limits)).into_response()
}

async fn counters(AxState(ctx): AxState<Ctx>) -> Json<Value> {
    Json(json!(ctx.lock().counters))
}

#[derive(Deserialize)]
struct EmitEvent {
    client_id: String,
    event: String,
    #[serde(default)]
    payload: Value,
}

async fn emit_event(AxState(ctx): AxState<Ctx>, Json(e): Json<EmitEvent>) -> Response {
    if !ctx.lock().apps.contains_key(&e.client_id) {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "no such app"}))).into_response();
    }
    let payload = if e.payload.is_null() { json!({}) } else { e.payload };
    let n = crate::webhooks::emit(&ctx, &e.client_id, &e.event, payload);
    Json(json!({"deliveries": n})).into_response()
}

async fn validate_endpoints(AxState(ctx): AxState<Ctx>, Path(client_id): Path<String>) -> Response {
    let urls: Vec<String> = match ctx.lock().apps.get(&client_id) {
        Some(a) => a.event_subscriptions.iter().map(|e| e.endpoint_url.clone()).collect(),
        None => return (StatusCode::NOT_FOUND, Json(json!({"error": "no such app"}))).into_response(),
    };
    let mut out = Vec::new();
    for url in urls {
        out.push(crate::webhooks::validate_endpoint(ctx.clone(), client_id.clone(), url).await);
    }
    Json(json!(out)).into_response()
}

async fn deliveries(AxState(ctx): AxState<Ctx>) -> Json<Value> {
    let s = ctx.lock();
    Json(json!({"deliveries": s.deliveries, "pending_retries": s.pending_retries}))
}

async fn validations(AxState(ctx): AxState<Ctx>) -> Json<Value> {
    Json(json!(ctx.lock().validations))
}
