//! The "api.zoom.us/v2" side: the endpoints behind the six DEX scopes, with
//! Zoom's token, scope, plan, date-range, pagination and rate-limit rules.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};

use crate::data::{Meeting, iso, participant_json};
use crate::random::random_hex;
use crate::state::{Limit, PageToken, Plan, State, User};
use crate::{Ctx, add_tracking_id, api_error};

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v2/users/{user_id}", get(get_user))
        .route("/v2/report/users/{user_id}/meetings", get(report_meetings))
        .route("/v2/metrics/meetings/{meeting_id}/participants/qos", get(list_qos))
        .route(
            "/v2/metrics/meetings/{meeting_id}/participants/qos_summary",
            get(qos_summary),
        )
        .route(
            "/v2/metrics/meetings/{meeting_id}/participants/{participant_id}/qos",
            get(participant_qos),
        )
        .route("/v2/metrics/zoomrooms", get(list_rooms))
        .route("/v2/metrics/zoomrooms/issues", get(top_issues))
        .route("/v2/metrics/zoomrooms/{room_id}", get(get_room))
        .route("/v2/metrics/issues/zoomrooms", get(rooms_with_issues))
        .route("/v2/metrics/issues/zoomrooms/{room_id}", get(room_issues))
}

type Q = Query<HashMap<String, String>>;

/// Who is calling: the grant's scopes and user.
pub(crate) struct Caller {
    scopes: Vec<String>,
    user_id: Option<String>,
}

/// Alternatives for a scope: the `:admin` form plus its `:master` sibling,
/// and for user-level reads the plain user scope.
pub(crate) fn alternatives(admin_scope: &str, user_level: bool) -> Vec<String> {
    let base = admin_scope.trim_end_matches(":admin");
    let mut v = Vec::new();
    if user_level {
        v.push(base.to_string());
    }
    v.push(admin_scope.to_string());
    v.push(format!("{base}:master"));
    v
}

fn rate_headers(r: &mut Response, category: &str, limit: &Limit, kind: &str, remaining: u64) {
    let h = r.headers_mut();
    let lim = if kind == "QPS" { limit.per_window } else { limit.per_day };
    for (k, v) in [
        ("x-ratelimit-category", category.to_string()),
        ("x-ratelimit-type", kind.to_string()),
        ("x-ratelimit-limit", lim.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
}

/// Applies the rate limit of `category`; on success returns the header values to attach.
fn rate_check(s: &mut State, category: &str) -> Result<(Limit, &'static str, u64), Response> {
    let Some(limit) = s.limits.get(category).copied() else {
        return Ok((
            Limit {
                per_window: u64::MAX,
                window_secs: 1,
                per_day: u64::MAX,
            },
            "QPS",
            u64::MAX,
        ));
    };
    let now = s.now();
    let window = now / limit.window_secs.max(1);
    let day = now / 86_400;
    let w = s.rate.windows.entry(category.to_string()).or_insert((window, 0));
    if w.0 != window {
        *w = (window, 0);
    }
    let d = s.rate.days.entry(category.to_string()).or_insert((day, 0));
    if d.0 != day {
        *d = (day, 0);
    }
    if d.1 >= limit.per_day {
        let mut r = api_error(
            429,
            429,
            "You have reached the maximum daily rate limit for this API. Refer to the response header for details on when you can make another request.",
        );
        rate_headers(&mut r, category, &limit, "Daily-limit", 0);
        let midnight = (day + 1) * 86_400;
        if let Ok(v) = HeaderValue::from_str(&iso(midnight)) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(r);
    }
    let w = s.rate.windows.get_mut(category).map(|w| w.1).unwrap_or(0);
    if w >= limit.per_window {
        let mut r = api_error(
            429,
            429,
            "You have reached the maximum per-second rate limit for this API. Try again later.",
        );
        rate_headers(&mut r, category, &limit, "QPS", 0);
        let reset = (window + 1) * limit.window_secs.max(1);
        if let Ok(v) = HeaderValue::from_str(&reset.to_string()) {
            r.headers_mut().insert("x-ratelimit-reset", v);
        }
        return Err(r);
    }
    if let Some(w) = s.rate.windows.get_mut(category) {
        w.1 += 1;
    }
    let used = s.rate.days.get_mut(category).map(|d| {
        d.1 += 1;
        d.1
    });
    if limit.per_day == u64::MAX {
        let used_w = s.rate.windows.get(category).map_or(0, |w| w.1);
        Ok((limit, "QPS", limit.per_window.saturating_sub(used_w)))
    } else {
        Ok((limit, "Daily-limit", limit.per_day.saturating_sub(used.unwrap_or(0))))
    }
}

/// What an API handler takes from every request: the sandbox, and the
/// headers and raw query [`enter`] judges the call by. Derefs to the sandbox.
pub(crate) struct Call {
    ctx: Ctx,
    headers: HeaderMap,
    query: Option<String>,
}

impl axum::extract::FromRequestParts<Ctx> for Call {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, ctx: &Ctx) -> Result<Self, Self::Rejection> {
        Ok(Call {
            ctx: ctx.clone(),
            headers: parts.headers.clone(),
            query: parts.uri.query().map(str::to_string),
        })
    }
}

impl std::ops::Deref for Call {
    type Target = Ctx;

    fn deref(&self) -> &Ctx {
        &self.ctx
    }
}

impl Call {
    /// [`enter`] for this request.
    pub(crate) fn enter(
        &self,
        endpoint: &str,
        accepted: &[String],
        category: &str,
    ) -> Result<(Caller, (Limit, &'static str, u64)), Response> {
        enter(&self.ctx, &self.headers, &self.query, endpoint, accepted, category)
    }
}

/// Authenticates the caller, checks scopes and rate limit, counts the call.
fn enter(
    ctx: &Ctx,
    h: &HeaderMap,
    raw_query: &Option<String>,
    endpoint: &str,
    accepted: &[String],
    category: &str,
) -> Result<(Caller, (Limit, &'static str, u64)), Response> {
    let mut s = ctx.lock();
    *s.counters.api_calls.entry(endpoint.to_string()).or_default() += 1;
    if raw_query
        .as_deref()
        .is_some_and(|q| url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token"))
    {
        return Err(api_error(
            401,
            124,
            "Invalid access token, this access token is not supported as query parameter string.",
        ));
    }
    let token = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .unwrap_or("");
    let Some(at) = s.access_tokens.get(token).cloned() else {
        return Err(api_error(401, 124, "Invalid access token."));
    };
    if at.expires_at <= s.now() {
        return Err(api_error(401, 124, "Access token is expired."));
    }
    let Some(grant) = s.grants.get(&at.grant_id).cloned() else {
        return Err(api_error(401, 124, "Invalid access token."));
    };
    if grant.revoked {
        return Err(api_error(401, 124, "Invalid access token."));
    }
    if !accepted.iter().any(|a| grant.scopes.contains(a)) {
        return Err(api_error(
            400,
            4711,
            format!(
                "Invalid access token, does not contain scopes:[{}].",
                accepted.join(", ")
            ),
        ));
    }
    let rl = rate_check(&mut s, category)?;
    Ok((
        Caller {
            scopes: grant.scopes,
            user_id: grant.user_id,
        },
        rl,
    ))
}

pub(crate) fn ok(v: Value, category: &str, rl: (Limit, &'static str, u64)) -> Response {
    let mut r = (StatusCode::OK, axum::Json(v)).into_response();
    add_tracking_id(&mut r);
    rate_headers(&mut r, category, &rl.0, rl.1, rl.2);
    r
}

/// Resolves `me`, an id or an e-mail.
fn resolve_user<'a>(s: &'a State, caller: &Caller, id: &str) -> Option<&'a User> {
    if id == "me" {
        return match &caller.user_id {
            Some(u) => s.users.iter().find(|x| &x.id == u),
            // App-level tokens act as the account owner.
            None => s.users.iter().find(|x| x.role == crate::state::Role::Owner),
        };
    }
    s.users.iter().find(|u| u.id == id || u.email.eq_ignore_ascii_case(id))
}

fn user_json(s: &State, u: &User) -> Value {
    json!({
        "id": u.id,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "display_name": format!("{} {}", u.first_name, u.last_name),
        "email": u.email,
        "type": 2,
        "role_name": u.role.zoom_name(),
        "role_id": match u.role { crate::state::Role::Owner => "0", crate::state::Role::Admin => "1", crate::state::Role::Member => "2" },
        "pmi": 5_550_000_000u64 + u.id.len() as u64,
        "use_pmi": false,
        "personal_meeting_url": format!("https://sandbox.example/j/{}", 5_550_000_000u64 + u.id.len() as u64),
        "timezone": "Europe/Amsterdam",
        "dept": u.dept,
        "created_at": "2024-01-15T09:00:00Z",
        "last_login_time": iso(s.now() - 3600),
        "last_client_version": "6.2.11.5069(win)",
        "language": "en-US",
        "status": "active",
        "verified": 1,
        "account_id": s.account_id,
        "account_number": 100_200_300,
        "cluster": "sbx01",
        "group_ids": [],
        "im_group_ids": [],
        "jid": format!("{}@xmpp.sandbox.example", u.id.to_lowercase()),
    })
}

async fn get_user(ctx: Call, Path(user_id): Path<String>) -> Result<Response, Response> {
    let accepted = alternatives("user:read:user:admin", true);
    let (caller, rl) = ctx.enter("GET /users/{userId}", &accepted, "Light")?;
    let s = ctx.lock();
    let Some(u) = resolve_user(&s, &caller, &user_id) else {
        return Err(api_error(404, 1001, format!("User does not exist: {user_id}.")));
    };
    // A user-level scope reads only the token's own user.
    let admin = caller
        .scopes
        .iter()
        .any(|x| x == "user:read:user:admin" || x == "user:read:user:master");
    if !admin && caller.user_id.as_deref() != Some(u.id.as_str()) {
        return Err(api_error(
            400,
            4711,
            "Invalid access token, does not contain scopes:[user:read:user:admin, user:read:user:master].",
        ));
    }
    Ok(ok(user_json(&s, u), "Light", rl))
}

fn validation(field: &str, message: &str) -> Response {
    let mut r = (
        StatusCode::BAD_REQUEST,
        axum::Json(
            json!({"code": 300, "message": "Validation Failed.", "errors": [{"field": field, "message": message}]}),
        ),
    )
        .into_response();
    add_tracking_id(&mut r);
    r
}

/// Checks `from`/`to`: present, `yyyy-mm-dd`, ordered, at most one month, within the last six months.
fn date_range(s: &State, q: &HashMap<String, String>) -> Result<(u64, u64, String, String), Response> {
    let parse = |k: &str| -> Result<NaiveDate, Response> {
        let v = q
            .get(k)
            .ok_or_else(|| validation(k, &format!("{k} is required (yyyy-mm-dd)")))?;
        NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| validation(k, &format!("{k} must be yyyy-mm-dd")))
    };
    let from = parse("from")?;
    let to = parse("to")?;
    let today = chrono::DateTime::from_timestamp(s.now() as i64, 0)
        .map(|d| d.date_naive())
        .unwrap_or(from);
    if to < from {
        return Err(api_error(400, 300, "The 'to' date must be later than the 'from' date."));
    }
    let one_month_later = from.checked_add_months(chrono::Months::new(1)).unwrap_or(from);
    if to > one_month_later {
        return Err(api_error(400, 300, "The date range can be at most one month."));
    }
    let six_months_ago = today.checked_sub_months(chrono::Months::new(6)).unwrap_or(today);
    if from < six_months_ago {
        return Err(api_error(400, 300, "You can only query data from the last 6 months."));
    }
    let start = from.and_hms_opt(0, 0, 0).map_or(0, |d| d.and_utc().timestamp() as u64);
    let end = to.and_hms_opt(23, 59, 59).map_or(0, |d| d.and_utc().timestamp() as u64);
    let fmt = |d: NaiveDate| format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
    Ok((start, end, fmt(from), fmt(to)))
}

fn page_size(q: &HashMap<String, String>, default: usize, max: usize) -> Result<usize, Response> {
    match q.get("page_size") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(max)),
            _ => Err(validation("page_size", "page_size must be a positive number")),
        },
    }
}

/// Resolves `next_page_token` for `listing`; returns the offset.
fn page_start(s: &mut State, listing: &str, q: &HashMap<String, String>) -> Result<usize, Response> {
    match q.get("next_page_token").filter(|t| !t.is_empty()) {
        None => Ok(0),
        Some(t) => {
            let now = s.now();
            let ttl = s.knobs.page_token_ttl;
            match s.page_tokens.get(t) {
                Some(p) if p.listing == listing && now <= p.issued_at + ttl => Ok(p.offset),
                _ => Err(api_error(
                    400,
                    300,
                    "The next page token is either invalid or has expired.",
                )),
            }
        }
    }
}

/// A next-page token for `offset`, or "" at the end.
fn next_token(s: &mut State, listing: &str, offset: usize, total: usize) -> String {
    if offset >= total {
        return String::new();
    }
    let t = random_hex(16);
    let issued_at = s.now();
    s.page_tokens.insert(
        t.clone(),
        PageToken {
            listing: listing.to_string(),
            offset,
            issued_at,
        },
    );
    t
}

fn plan_allows_reports(s: &State) -> Result<(), Response> {
    if s.plan == Plan::Free {
        return Err(api_error(400, 200, "No permission."));
    }
    Ok(())
}

fn plan_allows_dashboard(s: &State) -> Result<(), Response> {
    if s.plan != Plan::Business || !s.dashboard_enabled {
        return Err(api_error(400, 200, "No permission."));
    }
    Ok(())
}

async fn report_meetings(ctx: Call, Path(user_id): Path<String>, Query(q): Q) -> Result<Response, Response> {
    let accepted = alternatives("report:read:user:admin", false);
    let (caller, rl) = ctx.enter("GET /report/users/{userId}/meetings", &accepted, "Heavy")?;
    let mut s = ctx.lock();
    plan_allows_reports(&s)?;
    let Some(u) = resolve_user(&s, &caller, &user_id).cloned() else {
        return Err(api_error(
            404,
            1001,
            format!("User {user_id} not exist or not belong to this account."),
        ));
    };
    let (start, end, from, to) = date_range(&s, &q)?;
    let kind = q.get("type").map_or("past", String::as_str);
    if !["past", "pastOne", "pastJoined"].contains(&kind) {
        return Err(validation("type", "type must be past, pastOne or pastJoined"));
    }
    let size = page_size(&q, 30, 300)?;
    let listing = format!("report:{}:{from}:{to}:{kind}:{size}", u.id);
    let offset = page_start(&mut s, &listing, &q)?;
    let matching: Vec<&Meeting> = s
        .data
        .meetings
        .iter()
        .filter(|m| m.start_time >= start && m.start_time <= end)
        .filter(|m| match kind {
            "pastJoined" => m.participants.iter().any(|p| p.user_id == u.id),
            _ => m.host_id == u.id,
        })
        .collect();
    let total = matching.len();
    let meetings: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(size)
        .map(|m| {
            json!({
                "uuid": m.uuid, "id": m.id, "type": 2, "topic": m.topic,
                "user_name": format!("{} {}", u.first_name, u.last_name), "user_email": u.email,
                "start_time": iso(m.start_time), "end_time": iso(m.start_time + m.duration * 60),
                "duration": m.duration, "total_minutes": m.duration * m.participants.len() as u64,
                "participants_count": m.participants.len(), "source": "Zoom", "custom_keys": [],
                "has_screen_share": m.duration % 2 == 0, "has_recording": false, "has_chat": true,
                "meeting_encryption_status": 1, "participants_count_my_account": m.participants.len(),
            })
        })
        .collect();
    let next = next_token(&mut s, &listing, offset + size, total);
    Ok(ok(
        json!({
            "from": from, "to": to, "page_count": total.div_ceil(size), "page_size": size,
            "total_records": total, "next_page_token": next, "meetings": meetings,
        }),
        "Heavy",
        rl,
    ))
}

/// Finds a meeting by numeric id (latest instance) or UUID. Axum decodes the
/// path once; a UUID with `/` must arrive double-encoded, as on Zoom.
fn find_meeting<'a>(s: &'a State, raw: &str) -> Option<&'a Meeting> {
    if raw.contains('/') {
        // Single-encoded '/': Zoom does not find it either.
        return None;
    }
    let decoded = url::form_urlencoded::parse(format!("x={}", raw.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if let Ok(id) = decoded.parse::<u64>() {
        return s
            .data
            .meetings
            .iter()
            .filter(|m| m.id == id)
            .max_by_key(|m| m.start_time);
    }
    s.data.meetings.iter().find(|m| m.uuid == decoded)
}

fn meeting_or_404<'a>(s: &'a State, q: &HashMap<String, String>, raw: &str) -> Result<&'a Meeting, Response> {
    let kind = q.get("type").map_or("live", String::as_str);
    if kind != "live" && kind != "past" {
        return Err(validation("type", "type must be live or past"));
    }
    let not_found = || api_error(404, 3001, format!("Meeting {raw} is not found or has expired."));
    // Every seeded meeting has ended, so `type=live` (the default) finds none.
    if kind == "live" {
        return Err(not_found());
    }
    let m = find_meeting(s, raw).ok_or_else(not_found)?;
    if m.start_time + 365 * 86_400 < s.now() {
        return Err(api_error(400, 12702, "Can not access a meeting a year ago."));
    }
    Ok(m)
}

async fn list_qos(ctx: Call, Path(meeting_id): Path<String>, Query(q): Q) -> Result<Response, Response> {
    let accepted = alternatives("dashboard:read:list_meeting_participants_qos:admin", false);
    let endpoint = "GET /metrics/meetings/{meetingId}/participants/qos";
    let (_, rl) = ctx.enter(endpoint, &accepted, "Heavy")?;
    let mut s = ctx.lock();
    plan_allows_dashboard(&s)?;
    let m = meeting_or_404(&s, &q, &meeting_id)?.clone();
    let size = page_size(&q, 1, 10)?;
    let listing = format!("qos:{}:{size}", m.uuid);
    let offset = page_start(&mut s, &listing, &q)?;
    let total = m.participants.len();
    let participants: Vec<Value> = m
        .participants
        .iter()
        .skip(offset)
        .take(size)
        .map(|p| participant_json(p, true))
        .collect();
    let next = next_token(&mut s, &listing, offset + size, total);
    Ok(ok(
        json!({
            "page_count": total.div_ceil(size), "page_size": size, "total_records": total,
            "next_page_token": next, "participants": participants,
        }),
        "Heavy",
        rl,
    ))
}

async fn qos_summary(ctx: Call, Path(meeting_id): Path<String>, Query(q): Q) -> Result<Response, Response> {
    let accepted = alternatives("dashboard:read:list_meeting_participants_qos:admin", false);
    let endpoint = "GET /metrics/meetings/{meetingId}/participants/qos_summary";
    let (_, rl) = ctx.enter(endpoint, &accepted, "Heavy")?;
    let s = ctx.lock();
    plan_allows_dashboard(&s)?;
    let m = meeting_or_404(&s, &q, &meeting_id)?;
    let participants: Vec<Value> = m
        .participants
        .iter()
        .map(|p| {
            let n = p.qos.len().max(1) as u32;
            let lat = p.qos.iter().map(|x| x.1).sum::<u32>() / n;
            let jit = p.qos.iter().map(|x| x.2).sum::<u32>() / n;
            json!({
                "id": p.id, "user_id": p.user_id, "user_name": p.user_name,
                "audio_input": {"avg_latency": format!("{lat} ms"), "avg_jitter": format!("{jit} ms")},
            })
        })
        .collect();
    Ok(ok(
        json!({"page_size": participants.len(), "total_records": participants.len(), "next_page_token": "", "participants": participants}),
        "Heavy",
        rl,
    ))
}

async fn participant_qos(
    ctx: Call,
    Path((meeting_id, participant_id)): Path<(String, String)>,
    Query(q): Q,
) -> Result<Response, Response> {
    let accepted = alternatives("dashboard:read:meeting_participant_qos:admin", false);
    let endpoint = "GET /metrics/meetings/{meetingId}/participants/{participantId}/qos";
    let (_, rl) = ctx.enter(endpoint, &accepted, "Heavy")?;
    let s = ctx.lock();
    plan_allows_dashboard(&s)?;
    let m = meeting_or_404(&s, &q, &meeting_id)?;
    Ok(
        match m
            .participants
            .iter()
            .find(|p| p.id == participant_id || p.user_id == participant_id)
        {
            Some(p) => ok(participant_json(p, true), "Heavy", rl),
            None => api_error(
                404,
                3001,
                format!("Participant {participant_id} does not exist in meeting {meeting_id}."),
            ),
        },
    )
}

async fn list_rooms(ctx: Call, Query(q): Q) -> Result<Response, Response> {
    let accepted = alternatives("dashboard:read:list_zoomrooms:admin", false);
    let (_, rl) = ctx.enter("GET /metrics/zoomrooms", &accepted, "Resource-intensive")?;
    let mut s = ctx.lock();
    plan_allows_dashboard(&s)?;
    let size = page_size(&q, 30, 300)?;
    let listing = format!("rooms:{size}");
    let mut offset = page_start(&mut s, &listing, &q)?;
    let page_number = q
        .get("page_number")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    if !q.contains_key("next_page_token") && page_number > 1 {
        offset = (page_number - 1) * size;
    }
    let total = s.data.rooms.len();
    let rooms: Vec<Value> = s
        .data
        .rooms
        .iter()
        .skip(offset)
        .take(size)
        .map(|r| {
            json!({
                "id": r.id, "room_name": r.room_name, "calender_name": format!("{}@rooms.sandbox.example", r.room_name.to_lowercase().replace(' ', "-")),
                "email": format!("{}@rooms.sandbox.example", r.room_name.to_lowercase().replace(' ', "-")),
                "account_type": "Work Email", "status": r.status, "device_ip": "Computer : 10.1.0.20",
                "camera": "Logitech Rally", "microphone": "Logitech Rally Mic Pod", "speaker": "Logitech Rally",
                "last_start_time": iso(s.now() - 7200), "location": r.location, "location_id": "",
                "health": r.health, "issues": r.issues.iter().map(|i| i.0.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let next = next_token(&mut s, &listing, offset + size, total);
    Ok(ok(
        json!({
            "page_count": total.div_ceil(size), "page_number": offset / size + 1, "page_size": size,
            "total_records": total, "next_page_token": next, "zoom_rooms": rooms,
        }),
        "Resource-intensive",
        rl,
    ))
}

async fn get_room(ctx: Call, Path(room_id): Path<String>) -> Result<Response, Response> {
    // Needs dashboard:read:zoomroom:admin, which is not among the six DEX scopes.
    let accepted = alternatives("dashboard:read:zoomroom:admin", false);
    let (_, rl) = ctx.enter("GET /metrics/zoomrooms/{zoomroomId}", &accepted, "Heavy")?;
    let s = ctx.lock();
    Ok(match s.data.rooms.iter().find(|r| r.id == room_id) {
        Some(r) => ok(
            json!({"id": r.id, "room_name": r.room_name, "status": r.status, "health": r.health}),
            "Heavy",
            rl,
        ),
        None => api_error(404, 3301, format!("Zoom Room {room_id} does not exist.")),
    })
}

async fn top_issues(ctx: Call, Query(q): Q) -> Result<Response, Response> {
    let accepted = alternatives("dashboard:read:issues_zoomroom:admin", false);
    let (_, rl) = ctx.enter("GET /metrics/zoomrooms/issues", &accepted, "Heavy")?;
    let s = ctx.lock();
    plan_allows_dashboard(&s)?;
    let (start, end, from, to) = date_range(&s, &q)?;
    let mut counts: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> = Default::default();
    for r in &s.data.rooms {
        for (issue, t) in &r.issues {
            if *t >= start && *t <= end {
                counts.entry(issue.as_str()).or_default().insert(r.id.as_str());
            }
        }
    }
    let mut issues: Vec<(&str, usize)> = counts.into_iter().map(|(k, v)| (k, v.len())).collect();
    issues.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    issues.truncate(25);
    let list: Vec<Value> = issues
        .iter()
        .map(|(n, c)| json!({"issue_name": n, "zoom_rooms_count": c}))
        .collect();
    Ok(ok(
        json!({"from": from, "to": to, "total_records": list.len(), "issues": list}),
        "Heavy",
        rl,
    ))
}

async fn rooms_with_issues(ctx: Call, Query(q): Q) -> Result<Response, Response> {
    let accepted = alternatives("dashboard:read:list_zoomrooms:admin", false);
    let (_, rl) = ctx.enter("GET /metrics/issues/zoomrooms", &accepted, "Heavy")?;
    let s = ctx.lock();
    plan_allows_dashboard(&s)?;
    let (start, end, from, to) = date_range(&s, &q)?;
    let mut rooms: Vec<(&str, &str, usize)> = s
        .data
        .rooms
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                r.room_name.as_str(),
                r.issues.iter().filter(|(_, t)| *t >= start && *t <= end).count(),
            )
        })
        .filter(|r| r.2 > 0)
        .collect();
    rooms.sort_by_key(|r| std::cmp::Reverse(r.2));
    rooms.truncate(25);
    let list: Vec<Value> = rooms
        .iter()
        .map(|(id, n, c)| json!({"id": id, "room_name": n, "issues_count": c}))
        .collect();
    Ok(ok(
        json!({"from": from, "to": to, "total_records": list.len(), "zoom_rooms": list}),
        "Heavy",
        rl,
    ))
}

async fn room_issues(ctx: Call, Path(room_id): Path<String>, Query(q): Q) -> Result<Response, Response> {
    let accepted = alternatives("dashboard:read:issues_zoomroom:admin", false);
    let (_, rl) = ctx.enter("GET /metrics/issues/zoomrooms/{zoomroomId}", &accepted, "Heavy")?;
    let mut s = ctx.lock();
    plan_allows_dashboard(&s)?;
    let (start, end, from, to) = date_range(&s, &q)?;
    let Some(room) = s.data.rooms.iter().find(|r| r.id == room_id).cloned() else {
        return Err(api_error(404, 3301, format!("Zoom Room {room_id} does not exist.")));
    };
    let size = page_size(&q, 30, 300)?;
    let listing = format!("roomissues:{room_id}:{from}:{to}:{size}");
    let offset = page_start(&mut s, &listing, &q)?;
    let all: Vec<&(String, u64)> = room.issues.iter().filter(|(_, t)| *t >= start && *t <= end).collect();
    let total = all.len();
    let details: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(size)
        .map(|(i, t)| json!({"issue": i, "time": iso(*t)}))
        .collect();
    let next = next_token(&mut s, &listing, offset + size, total);
    Ok(ok(
        json!({
            "from": from, "to": to, "page_count": total.div_ceil(size), "page_size": size,
            "total_records": total, "next_page_token": next, "issue_details": details,
        }),
        "Heavy",
        rl,
    ))
}
