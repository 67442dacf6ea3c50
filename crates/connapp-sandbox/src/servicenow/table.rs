//! The Table API (`docs/servicenow.md` §3): `/api/now/table/{table}[/{sys_id}]`
//! with the result wrapper, string values, references as link/value, 201 +
//! `Location`, 204, ServiceNow's error bodies, encoded queries (invalid parts
//! silently ignored), `X-Total-Count` and `Link` paging, write-only password2
//! fields, the business rule that gives every OAuth provider a default
//! profile, roles, a per-user hourly rate-limit rule and hibernation.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::query::{self, Query as Encoded};
use super::{Kind, Row, SnCtx, SnState, SnUser, kind_of, may_read, may_write, schema};

pub(super) fn routes() -> axum::Router<SnCtx> {
    let list = get(list).post(create);
    let one = get(get_one).put(update).patch(update).delete(delete);
    axum::Router::new()
        .route("/api/now/table/{table}", list.clone())
        .route("/api/now/v1/table/{table}", list.clone())
        .route("/api/now/v2/table/{table}", list)
        .route("/api/now/table/{table}/{sys_id}", one.clone())
        .route("/api/now/v1/table/{table}/{sys_id}", one.clone())
        .route("/api/now/v2/table/{table}/{sys_id}", one)
}

type Params = Query<HashMap<String, String>>;

/// `{"error":{"message","detail"},"status":"failure"}`.
pub(super) fn sn_error(status: u16, message: &str, detail: Option<&str>) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        Json(json!({"error": {"message": message, "detail": detail}, "status": "failure"})),
    )
        .into_response()
}

/// The page a hibernating developer instance shows for every URL.
pub(super) fn hibernating() -> Response {
    Html(
        "<!DOCTYPE html><html><head><title>Instance Hibernating page</title></head><body>\
         <h1>Your instance is hibernating</h1><p>Sign in to the developer portal to wake it up.</p></body></html>",
    )
    .into_response()
}

/// Authentication, the rate-limit rule and hibernation, for every Table API call.
pub(super) fn enter(ctx: &SnCtx, h: &HeaderMap) -> Result<(SnUser, Option<(u64, u64)>), Response> {
    let mut s = ctx.lock();
    if s.knobs.asleep {
        return Err(hibernating());
    }
    let auth = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(user) = s.authenticate(auth) else {
        let msg = if s.knobs.new_401_text {
            "User is not authenticated"
        } else {
            "User Not Authenticated"
        };
        return Err(sn_error(401, msg, Some("Required to provide Auth information")));
    };
    if let Some(limit) = s.knobs.rate_limit_per_hour {
        let now = s.now();
        let hour = now / 3600;
        let e = s.hourly.entry(user.user_name.clone()).or_insert((hour, 0));
        if e.0 != hour {
            *e = (hour, 0);
        }
        let reset = (hour + 1) * 3600;
        if e.1 >= limit {
            let mut r = sn_error(
                429,
                "Rate limit exceeded",
                Some(&format!(
                    "Rate limit of {limit} requests per hour for Table API exceeded"
                )),
            );
            let hd = r.headers_mut();
            hd.insert("retry-after", HeaderValue::from(reset.saturating_sub(now)));
            hd.insert("x-ratelimit-limit", HeaderValue::from(limit));
            hd.insert("x-ratelimit-reset", HeaderValue::from(reset));
            return Err(r);
        }
        e.1 += 1;
        return Ok((user, Some((limit, reset))));
    }
    Ok((user, None))
}

fn rate_headers(r: &mut Response, rl: Option<(u64, u64)>) {
    if let Some((limit, reset)) = rl {
        r.headers_mut().insert("x-ratelimit-limit", HeaderValue::from(limit));
        r.headers_mut().insert("x-ratelimit-reset", HeaderValue::from(reset));
    }
}

fn check_accept(h: &HeaderMap) -> Result<(), Response> {
    match h.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        Some(a) if !(a.contains("json") || a.contains("*/*")) => Err(sn_error(
            406,
            "Not Acceptable",
            Some("the Table API answers application/json (or XML)"),
        )),
        _ => Ok(()),
    }
}

/// Every Table API handler's preamble: who is calling (401, 429), whether the
/// answer can be JSON (406, when there is an answer) and the table exists (400).
fn admit(ctx: &SnCtx, h: &HeaderMap, table: &str, answers: bool) -> Result<(SnUser, Option<(u64, u64)>), Response> {
    let entered = enter(ctx, h)?;
    if answers {
        check_accept(h)?;
    }
    known_table(table)?;
    Ok(entered)
}

fn known_table(table: &str) -> Result<(), Response> {
    if schema(table).is_none() {
        return Err(sn_error(400, &format!("Invalid table {table}"), None));
    }
    Ok(())
}

/// The display value of a row: its name (or user name, or id).
fn display(row: &Row) -> String {
    ["name", "user_name", "id", "sys_id"]
        .iter()
        .find_map(|k| row.get(*k).filter(|v| !v.is_empty()).cloned())
        .unwrap_or_default()
}

/// A field's value, following one dot-walk step.
fn field_value(s: &SnState, table: &str, row: &Row, field: &str) -> String {
    if let Some((r, rest)) = field.split_once('.')
        && let Some(Kind::Ref(t)) = kind_of(table, r)
    {
        return row
            .get(r)
            .and_then(|id| s.row(t, id))
            .map(|target| field_value(s, t, target, rest))
            .unwrap_or_default();
    }
    row.get(field).cloned().unwrap_or_default()
}

fn known_field(table: &str, field: &str) -> bool {
    match field.split_once('.') {
        Some((r, rest)) => match kind_of(table, r) {
            Some(Kind::Ref(t)) => kind_of(t, rest).is_some(),
            _ => false,
        },
        None => kind_of(table, field).is_some(),
    }
}

struct Render {
    display: String,
    exclude_links: bool,
    fields: Option<Vec<String>>,
}

impl Render {
    fn from(p: &HashMap<String, String>) -> Render {
        Render {
            display: p
                .get("sysparm_display_value")
                .cloned()
                .unwrap_or_else(|| "false".into()),
            exclude_links: p.get("sysparm_exclude_reference_link").is_some_and(|v| v == "true"),
            fields: p.get("sysparm_fields").map(|f| {
                f.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            }),
        }
    }

    fn row(&self, s: &SnState, table: &str, row: &Row) -> Value {
        let mut out = Map::new();
        let names: Vec<String> = match &self.fields {
            // Unknown names are silently ignored.
            Some(f) => f.iter().filter(|x| known_field(table, x)).cloned().collect(),
            None => super::SYS
                .iter()
                .chain(schema(table).unwrap_or(&[]).iter())
                .map(|(f, _)| f.to_string())
                .collect(),
        };
        for name in names {
            let value = if name.contains('.') {
                Value::String(field_value(s, table, row, &name))
            } else {
                self.value(s, table, row, &name)
            };
            out.insert(name, value);
        }
        Value::Object(out)
    }

    fn value(&self, s: &SnState, table: &str, row: &Row, field: &str) -> Value {
        let raw = row.get(field).cloned().unwrap_or_default();
        match kind_of(table, field) {
            // Encrypted fields never come back in the clear.
            Some(Kind::Password2) => {
                let id = row.get("sys_id").map(String::as_str).unwrap_or("");
                match s.secret(table, id, field) {
                    Some(_) => Value::String(SnState::opaque()),
                    None => Value::String(String::new()),
                }
            }
            Some(Kind::Ref(t)) if !raw.is_empty() => {
                let link = format!("{}/api/now/table/{t}/{raw}", s.base_url);
                let shown = s.row(t, &raw).map(display).unwrap_or_default();
                match (self.display.as_str(), self.exclude_links) {
                    ("true", true) => Value::String(shown),
                    ("true", false) => json!({"display_value": shown, "link": link}),
                    ("all", true) => json!({"display_value": shown, "value": raw}),
                    ("all", false) => json!({"display_value": shown, "value": raw, "link": link}),
                    (_, true) => Value::String(raw),
                    _ => json!({"link": link, "value": raw}),
                }
            }
            _ if self.display == "all" => json!({"display_value": raw, "value": raw}),
            _ => Value::String(raw),
        }
    }
}

fn ok(status: StatusCode, body: Value, rl: Option<(u64, u64)>) -> Response {
    let mut r = (status, Json(body)).into_response();
    rate_headers(&mut r, rl);
    r
}

async fn list(
    State(ctx): State<SnCtx>,
    h: HeaderMap,
    Path(table): Path<String>,
    Query(p): Params,
) -> Result<Response, Response> {
    let (user, rl) = admit(&ctx, &h, &table, true)?;
    let s = ctx.lock();
    let render = Render::from(&p);
    let mut q = p.get("sysparm_query").map(String::as_str).unwrap_or("").to_string();
    // Plain `field=value` pairs act as conditions too.
    for (k, v) in &p {
        if !k.starts_with("sysparm_") && known_field(&table, k) {
            q.push_str(&format!("^{k}={v}"));
        }
    }
    let parsed: Encoded = query::parse(&q, &|f| known_field(&table, f));
    // ACL-hidden rows are simply not there.
    let mut rows: Vec<&Row> = if may_read(&table, &user.roles) {
        s.rows(&table)
            .into_iter()
            .filter(|r| parsed.matches(&|f| field_value(&s, &table, r, f)))
            .collect()
    } else {
        Vec::new()
    };
    rows.sort_by(|a, b| {
        a.get("sys_created_on")
            .cmp(&b.get("sys_created_on"))
            .then(a.get("sys_id").cmp(&b.get("sys_id")))
    });
    for (f, desc) in parsed.order.iter().rev() {
        rows.sort_by(|a, b| {
            let (x, y) = (field_value(&s, &table, a, f), field_value(&s, &table, b, f));
            if *desc { y.cmp(&x) } else { x.cmp(&y) }
        });
    }
    let total = rows.len();
    let limit: usize = p.get("sysparm_limit").and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let offset: usize = p.get("sysparm_offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| render.row(&s, &table, r))
        .collect();
    let mut resp = ok(StatusCode::OK, json!({"result": page}), rl);
    if p.get("sysparm_no_count").is_none_or(|v| v != "true") {
        resp.headers_mut().insert("x-total-count", HeaderValue::from(total));
    }
    if p.get("sysparm_suppress_pagination_header").is_none_or(|v| v != "true") && limit > 0 {
        let url = |o: usize| {
            format!(
                "<{}/api/now/table/{table}?sysparm_offset={o}&sysparm_limit={limit}>",
                s.base_url
            )
        };
        let last = if total == 0 { 0 } else { (total - 1) / limit * limit };
        let mut links = vec![format!("{};rel=\"first\"", url(0))];
        if offset > 0 {
            links.push(format!("{};rel=\"prev\"", url(offset.saturating_sub(limit))));
        }
        if offset + limit < total {
            links.push(format!("{};rel=\"next\"", url(offset + limit)));
        }
        links.push(format!("{};rel=\"last\"", url(last)));
        if let Ok(v) = HeaderValue::from_str(&links.join(",")) {
            resp.headers_mut().insert("link", v);
        }
    }
    Ok(resp)
}

async fn get_one(
    State(ctx): State<SnCtx>,
    h: HeaderMap,
    Path((table, id)): Path<(String, String)>,
    Query(p): Params,
) -> Result<Response, Response> {
    let (user, rl) = admit(&ctx, &h, &table, true)?;
    let s = ctx.lock();
    Ok(match s.row(&table, &id).filter(|_| may_read(&table, &user.roles)) {
        Some(row) => ok(
            StatusCode::OK,
            json!({"result": Render::from(&p).row(&s, &table, row)}),
            rl,
        ),
        None => not_found(),
    })
}

fn not_found() -> Response {
    sn_error(
        404,
        "No Record found",
        Some("Record doesn't exist or ACL restricts the record retrieval"),
    )
}

fn acl(op: &str) -> Response {
    sn_error(
        403,
        "Operation Failed",
        Some(&format!("ACL Exception {op} Failed due to security constraints")),
    )
}

/// Parses a write body: known fields only (others are ignored, as on an instance).
fn body_fields(table: &str, h: &HeaderMap, body: &Bytes) -> Result<Vec<(String, String)>, Response> {
    let ct = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.contains("json") {
        return Err(sn_error(
            400,
            "Content-Type is not supported",
            Some("send the body as application/json"),
        ));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        sn_error(
            400,
            "Exception while reading request",
            Some(&format!("The payload is not valid JSON: {e}")),
        )
    })?;
    let Some(obj) = v.as_object() else {
        return Err(sn_error(
            400,
            "Exception while reading request",
            Some("The payload is not a JSON object"),
        ));
    };
    let mut out = Vec::new();
    for (k, v) in obj {
        if kind_of(table, k).is_none() || k.starts_with("sys_") && k != "sys_scope" {
            continue;
        }
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => String::new(),
            Value::Object(o) => o.get("value").and_then(Value::as_str).unwrap_or("").to_string(),
            Value::Array(_) => continue,
        };
        out.push((k.clone(), s));
    }
    Ok(out)
}

/// Applies written fields to a row: references by sys_id (or, with
/// `sysparm_input_display_value=true`, by display value), password2 fields
/// into the secret store (plain only with `sysparm_input_display_value=true`).
fn apply_fields(
    s: &mut SnState,
    table: &str,
    id: &str,
    row: &mut Row,
    fields: Vec<(String, String)>,
    display_input: bool,
) {
    for (k, v) in fields {
        match kind_of(table, &k) {
            Some(Kind::Password2) => {
                s.set_secret(table, id, &k, display_input.then_some(v));
                row.insert(k, "*".into());
            }
            Some(Kind::Ref(t)) if display_input && !v.is_empty() => {
                let found = s
                    .rows(t)
                    .into_iter()
                    .find(|r| display(r) == v)
                    .and_then(|r| r.get("sys_id").cloned())
                    .unwrap_or_default();
                row.insert(k, found);
            }
            Some(Kind::Bool) => {
                row.insert(k, (v == "true" || v == "1").to_string());
            }
            _ => {
                row.insert(k, v);
            }
        }
    }
}

async fn create(
    State(ctx): State<SnCtx>,
    h: HeaderMap,
    Path(table): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> Result<Response, Response> {
    let (user, rl) = admit(&ctx, &h, &table, true)?;
    if !may_write(&table, &user.roles) {
        return Err(acl("Insert"));
    }
    let fields = body_fields(&table, &h, &body)?;
    let display_input = p.get("sysparm_input_display_value").is_some_and(|v| v == "true");
    let mut s = ctx.lock();
    // Business rule "Validate OAuth entity profile": one default profile per provider.
    if table == "oauth_entity_profile" {
        let entity = fields.iter().find(|(k, _)| k == "oauth_entity").map(|(_, v)| v.clone());
        let default = fields.iter().any(|(k, v)| k == "default" && v == "true");
        if default
            && s.rows("oauth_entity_profile")
                .iter()
                .any(|r| r.get("oauth_entity") == entity.as_ref() && r.get("default").is_some_and(|d| d == "true"))
        {
            return Ok(sn_error(
                403,
                "Operation Failed",
                Some("Data Policy Exception: the OAuth provider already has a default profile"),
            ));
        }
    }
    let id = s.insert(&table, Row::new(), &user.user_name);
    let mut row = s.row(&table, &id).cloned().unwrap_or_default();
    apply_fields(&mut s, &table, &id, &mut row, fields, display_input);
    if let Some(t) = s.tables.get_mut(&table) {
        t.insert(id.clone(), row.clone());
    }
    // Saving a provider creates its default profile with the provider's grant type.
    if table == "oauth_entity" {
        let name = format!("{} default_profile", row.get("name").cloned().unwrap_or_default());
        let grant = row
            .get("default_grant_type")
            .cloned()
            .unwrap_or_else(|| "authorization_code".into());
        let profile: Row = [
            ("name", name.as_str()),
            ("oauth_entity", id.as_str()),
            ("grant_type", grant.as_str()),
            ("default", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        s.insert("oauth_entity_profile", profile, &user.user_name);
    }
    let location = format!("{}/api/now/table/{table}/{id}", s.base_url);
    let out = Render::from(&p).row(&s, &table, &row);
    drop(s);
    let no_body = h
        .get("x-no-response-body")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "true");
    let mut r = if no_body {
        StatusCode::CREATED.into_response()
    } else {
        ok(StatusCode::CREATED, json!({"result": out}), rl)
    };
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

async fn update(
    State(ctx): State<SnCtx>,
    h: HeaderMap,
    Path((table, id)): Path<(String, String)>,
    Query(p): Params,
    body: Bytes,
) -> Result<Response, Response> {
    let (user, rl) = admit(&ctx, &h, &table, true)?;
    let fields = body_fields(&table, &h, &body)?;
    let display_input = p.get("sysparm_input_display_value").is_some_and(|v| v == "true");
    let mut s = ctx.lock();
    let Some(mut row) = s.row(&table, &id).cloned().filter(|_| may_read(&table, &user.roles)) else {
        return Ok(not_found());
    };
    if !may_write(&table, &user.roles) {
        return Err(acl("Update"));
    }
    apply_fields(&mut s, &table, &id, &mut row, fields, display_input);
    let n: u64 = row.get("sys_mod_count").and_then(|v| v.parse().ok()).unwrap_or(0);
    row.insert("sys_mod_count".into(), (n + 1).to_string());
    row.insert("sys_updated_on".into(), super::glide_time(s.now()));
    if let Some(t) = s.tables.get_mut(&table) {
        t.insert(id.clone(), row.clone());
    }
    let out = Render::from(&p).row(&s, &table, &row);
    Ok(ok(StatusCode::OK, json!({"result": out}), rl))
}

async fn delete(
    State(ctx): State<SnCtx>,
    h: HeaderMap,
    Path((table, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    // 204 without a body: no Accept check.
    let (user, rl) = admit(&ctx, &h, &table, false)?;
    let mut s = ctx.lock();
    if s.row(&table, &id).is_none() || !may_read(&table, &user.roles) {
        return Ok(not_found());
    }
    if !may_write(&table, &user.roles) {
        return Err(acl("Delete"));
    }
    if let Some(t) = s.tables.get_mut(&table) {
        t.remove(&id);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    rate_headers(&mut r, rl);
    Ok(r)
}
