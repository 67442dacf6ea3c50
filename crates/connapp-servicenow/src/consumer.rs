//! The consumer end of `plan` / `apply` / `verify` on a ServiceNow
//! instance: the records a consumer platform plugin describes
//! (`platform-servicenow`), looked up, created or updated in order through
//! the instance's Table API, pruned, and checked.
//!
//! The plugin's description is data (`contract::ConsumerRecords`, parsed
//! strictly by the host): records with a `key`, a `table`, the fields that
//! `find` them, the `fields` they should have, `write_only` fields (written
//! once, never read back) and `created_by` (rows the instance makes itself).
//! Values `$ref:KEY` are the sys_id of another record or lookup;
//! `$secret:KIND` a value from the store.

use std::collections::HashMap;

use connapp_core::{App, InstanceAuth, SecretKind, Target};
use connapp_engine::manage::RecordAction;
use connapp_engine::tokens::AppCtx;
use connapp_engine::{Error, ErrorKind};
use connapp_plugin_api::contract::{ConsumerRecords, Lookup, RecordSpec};
use connapp_plugin_api::zeroize::{Zeroize, Zeroizing};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use crate::records::{diff, find_query, resolve, row_str, wanted};
use crate::{Auth, Instance, Record, SnError};

pub use connapp_engine::manage::{Item, Mode, TargetPlan};

/// The consumer's connection for one app: the signed-in instance and what
/// the platform wants there.
pub struct Consumer {
    /// The instance.
    pub inst: Instance,
    /// What the consumer platform wants.
    pub desired: ConsumerRecords,
}

/// The rows of `table` matching the encoded `query` (only `fields`, when named).
fn list(c: &AppCtx<'_>, inst: &Instance, table: &str, query: &str, fields: &[&str]) -> Result<Vec<Record>, Error> {
    c.shared
        .rt
        .block_on(inst.list(table, query, fields))
        .map_err(|e| error(&c.app.name, e))
}

/// Turns an instance failure into what the user should know and do.
pub fn error(app: &str, e: SnError) -> Error {
    let hint = match &e {
        SnError::Unauthorized { .. } => format!(
            "check the stored instance credentials: instance-user / instance-password, or instance-client-id / instance-client-secret with `auth = \"oauth\"` (`connapp secrets set KIND --app {app}`)"
        ),
        SnError::Forbidden { table, .. } => format!(
            "the ServiceNow user needs the admin role ({} suffices for {table})",
            if table.starts_with("oauth_") { "oauth_admin" } else { "connection_admin" }
        ),
        SnError::Asleep { .. } => {
            "wake the developer instance (developer.servicenow.com), or check instance / instance_url in the declaration".into()
        }
        SnError::RateLimited { retry_after } => format!("wait {retry_after} s; a rate-limit rule on the instance counts requests per user per hour"),
        SnError::NotFound { .. } => "run `connapp plan` to see the records connapp expects".into(),
        SnError::Status { .. } => "see the instance's system log for the business rule or data policy that refused it".into(),
        SnError::Edge(_) => "check the network and the instance URL; nothing was changed".into(),
    };
    let kind = if matches!(e, SnError::Edge(_)) {
        ErrorKind::Unreachable
    } else {
        ErrorKind::Failure
    };
    Error::new(kind, format!("{app}: {e}")).hint(hint)
}

fn text(v: Zeroizing<Vec<u8>>) -> String {
    String::from_utf8_lossy(&v).into_owned()
}

/// The commands that store the instance's credentials for the app's `auth`.
pub fn credentials_hint(app: &App) -> String {
    let (a, b) = match app.target.as_ref().map(|t| t.auth) {
        Some(InstanceAuth::Oauth) => ("instance-client-id", "instance-client-secret"),
        _ => ("instance-user", "instance-password"),
    };
    format!(
        "`connapp secrets set {a} --app {0}` and `connapp secrets set {b} --app {0}`",
        app.name
    )
}

/// Whether the store holds credentials for the app's instance.
pub fn has_credentials(c: &AppCtx<'_>) -> Result<bool, Error> {
    let Some(target) = &c.app.target else {
        return Ok(false);
    };
    let kind = match target.auth {
        InstanceAuth::Basic => SecretKind::InstanceUser,
        InstanceAuth::Oauth => SecretKind::InstanceClientId,
    };
    Ok(c.stored(kind)?.is_some())
}

/// The app's ServiceNow instance.
fn servicenow(app: &App) -> Result<&Target, Error> {
    app.target
        .as_ref()
        .ok_or_else(|| Error::invalid(format!("{} has no ServiceNow target", app.name)))
}

/// Signs in to the app's instance with the credentials in the store.
pub fn instance(c: &AppCtx<'_>) -> Result<Instance, Error> {
    let target = servicenow(&c.app)?;
    let instance_url = &target.instance_url;
    let name = &c.app.name;
    let http = c.shared.http().map_err(|e| Error::failure(format!("{name}: {e}")))?;
    let need = |k: SecretKind| -> Result<Zeroizing<Vec<u8>>, Error> {
        c.stored(k)?
            .ok_or_else(|| connapp_engine::secrets::missing(name, k, None))
    };
    let auth = match target.auth {
        InstanceAuth::Basic => Auth::Basic {
            user: text(need(SecretKind::InstanceUser)?),
            password: SecretString::from(text(need(SecretKind::InstancePassword)?)),
        },
        InstanceAuth::Oauth => {
            let id = text(need(SecretKind::InstanceClientId)?);
            let secret = SecretString::from(text(need(SecretKind::InstanceClientSecret)?));
            let token = c
                .shared
                .rt
                .block_on(Instance::client_credentials(&http, instance_url, &id, &secret))
                .map_err(|e| error(name, e))?;
            Auth::Bearer(token)
        }
    };
    Instance::new(http, instance_url, auth).map_err(|e| Error::invalid(format!("{name}: {e}")))
}

fn lookup(c: &AppCtx<'_>, inst: &Instance, l: &Lookup) -> Result<(String, String), Error> {
    let name = &c.app.name;
    let rows = list(c, inst, &l.table, &l.query, &["sys_id", "id", "name"])?;
    let rows: Vec<&Record> = rows
        .iter()
        .filter(|r| l.not.is_none() || r.get("id").and_then(Value::as_str) != l.not.as_deref())
        .collect();
    match rows.as_slice() {
        [one] => Ok((
            row_str(one, "sys_id"),
            row_str(one, "id"),
        )),
        // The instance hides rows a user may not read: a user without a role
        // that reads aliases sees none, installed or not.
        [] => Err(match roleless_user(c, inst)? {
            Some(user) => Error::failure(format!(
                "{name}: the ServiceNow user {user:?} has none of the roles that may read {} (admin, connection_admin, credential_admin), so the instance hides it",
                l.label
            ))
            .hint(format!(
                "store the credentials of a ServiceNow admin: `connapp secrets set instance-user --app {name}` and `connapp secrets set instance-password --app {name}`"
            )),
            None => Error::failure(format!(
                "{name}: the instance has no {} (query {})",
                l.label, l.query
            ))
            .hint(format!(
                "install DEX for Zoom on the instance, or set `alias = \"SCOPE.NAME\"` in [apps.{name}.target] to the alias it uses"
            )),
        }),
        many => {
            let ids: Vec<String> = many
                .iter()
                .map(|r| r.get("id").and_then(Value::as_str).unwrap_or("").to_string())
                .collect();
            Err(
                Error::failure(format!("{name}: several aliases could be DEX's: {}", ids.join(", "))).hint(format!(
                    "set `alias = \"...\"` in [apps.{name}.target] to the one DEX for Zoom uses"
                )),
            )
        }
    }
}

/// The instance user connapp signs in as, when the instance says it has no
/// role that may read aliases and connections (`None` when it has one, or
/// when connapp signs in with an OAuth client and cannot tell).
fn roleless_user(c: &AppCtx<'_>, inst: &Instance) -> Result<Option<String>, Error> {
    let target = servicenow(&c.app)?;
    if target.auth != InstanceAuth::Basic {
        return Ok(None);
    }
    let Some(user) = c.stored(SecretKind::InstanceUser)?.map(text) else {
        return Ok(None);
    };
    let query = format!("user_name={user}");
    let rows = list(c, inst, "sys_user", &query, &["roles"])?;
    let roles = rows.first().map(|r| row_str(r, "roles")).unwrap_or_default();
    let may_read = roles
        .split(',')
        .map(str::trim)
        .any(|r| matches!(r, "admin" | "connection_admin" | "credential_admin"));
    Ok((!may_read && !rows.is_empty()).then_some(user))
}

/// The consumer half of a plan or of an apply.
pub fn run(c: &AppCtx<'_>, cons: &Consumer, mode: Mode) -> Result<(TargetPlan, HashMap<String, String>), Error> {
    let execute = mode != Mode::Plan;
    let name = &c.app.name;
    let inst = &cons.inst;
    // Before `apply` creates the Zoom app there is no Client ID yet: a plan shows a placeholder.
    let client_id = match c.stored(SecretKind::ClientId)?.map(text) {
        Some(id) => id,
        None if !execute => "(the new Zoom app's Client ID)".to_string(),
        None => {
            return Err(connapp_engine::secrets::missing(
                name,
                SecretKind::ClientId,
                Some("run `connapp apply` for the provider app first (it stores the new app's Client ID), or copy it"),
            ));
        }
    };
    let mut ids: HashMap<String, String> = HashMap::new();
    for l in &cons.desired.lookups {
        let (sys_id, _) = lookup(c, inst, l)?;
        ids.insert(l.key.clone(), sys_id);
    }
    let mut items = Vec::new();
    let mut created_now = std::collections::HashSet::new();
    for spec in &cons.desired.records {
        let (key, table) = (spec.key.clone(), spec.table.clone());
        let mut found: Option<Record> = None;
        if let Some(q) = find_query(&spec.find, &ids, &client_id) {
            let rows = list(c, inst, &table, &q, &[])?;
            found = rows.into_iter().next();
        }
        let created_by = spec.created_by.is_some();
        // A row the instance made itself because this run created its parent:
        // counted as created, as the plan announced it.
        let appeared = execute && spec.created_by.as_ref().is_some_and(|p| created_now.contains(p));
        if found.is_none() && execute && created_by {
            // The instance creates it with its parent; give the business rule a moment.
            for _ in 0..20 {
                if let Some(q) = find_query(&spec.find, &ids, &client_id) {
                    let rows = list(c, inst, &table, &q, &[])?;
                    found = rows.into_iter().next();
                }
                if found.is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        let want = wanted(spec, &ids, &client_id);
        let label = match want.iter().find(|(f, _)| f == "name") {
            Some((_, n)) if !spec.label.contains(n.as_str()) => format!("{n} ({})", spec.label),
            _ => spec.label.clone(),
        };
        let item = match found {
            Some(row) => {
                let id = row.get("sys_id").and_then(Value::as_str).unwrap_or("").to_string();
                ids.insert(key.clone(), id.clone());
                let mut changes = diff(&row, &want);
                if execute && !changes.is_empty() {
                    let body: Map<String, Value> = changes.iter().map(|(f, _, v)| (f.clone(), json!(v))).collect();
                    c.shared
                        .rt
                        .block_on(inst.patch(&table, &id, &Value::Object(body), false))
                        .map_err(|e| error(name, e))?;
                }
                if mode == Mode::ApplyWithSecrets {
                    for field in write_only(c, inst, spec, &table, &id)? {
                        changes.push((field, "(write-only)".into(), "(written again)".into()));
                    }
                } else {
                    // A write-only field that reads empty was never written: an apply
                    // stopped between creating the record and writing its secret.
                    let unwritten = spec
                        .write_only
                        .iter()
                        .filter(|(f, v)| v.starts_with("$secret:") && row_str(&row, f).is_empty());
                    for (field, _) in unwritten {
                        if execute {
                            write_only_field(c, inst, spec, &table, &id, field)?;
                        }
                        changes.push((field.clone(), "(never written)".into(), "(from the store)".into()));
                    }
                }
                Item {
                    key,
                    table,
                    label,
                    action: if appeared {
                        RecordAction::CreatedByInstance
                    } else if changes.is_empty() {
                        RecordAction::None
                    } else {
                        RecordAction::Update
                    },
                    sys_id: Some(id),
                    changes,
                }
            }
            None if !execute => Item {
                key,
                table,
                label,
                action: if created_by {
                    RecordAction::CreatedByInstance
                } else {
                    RecordAction::Create
                },
                sys_id: None,
                changes: want
                    .iter()
                    .map(|(f, v)| (f.clone(), String::new(), v.clone()))
                    .collect(),
            },
            None => {
                let body: Map<String, Value> = want.iter().map(|(f, v)| (f.clone(), json!(v))).collect();
                let row = c
                    .shared
                    .rt
                    .block_on(inst.create(&table, &Value::Object(body)))
                    .map_err(|e| error(name, e))?;
                let id = row.get("sys_id").and_then(Value::as_str).unwrap_or("").to_string();
                ids.insert(key.clone(), id.clone());
                created_now.insert(key.clone());
                write_only(c, inst, spec, &table, &id)?;
                Item {
                    key,
                    table,
                    label,
                    action: RecordAction::Create,
                    sys_id: Some(id),
                    changes: want
                        .iter()
                        .map(|(f, v)| (f.clone(), String::new(), v.clone()))
                        .collect(),
                }
            }
        };
        items.push(item);
    }
    // Rows the platform no longer wants (a scope removed from the declaration).
    for p in &cons.desired.prune {
        let Some(q) = find_query(&p.find, &ids, &client_id) else {
            continue;
        };
        let table = p.table.clone();
        let prefix = &p.keep_prefix;
        let keep: Vec<String> = items
            .iter()
            .filter(|i| i.key.starts_with(prefix.as_str()))
            .filter_map(|i| i.sys_id.clone())
            .collect();
        let rows = list(c, inst, &table, &q, &[])?;
        for row in rows {
            let id = row.get("sys_id").and_then(Value::as_str).unwrap_or("").to_string();
            if keep.contains(&id) {
                continue;
            }
            if execute {
                c.shared
                    .rt
                    .block_on(inst.delete(&table, &id))
                    .map_err(|e| error(name, e))?;
            }
            let label = ["oauth_entity_scope", "name"]
                .iter()
                .find_map(|f| row.get(*f).and_then(Value::as_str).filter(|s| !s.is_empty()))
                .unwrap_or(&id)
                .to_string();
            items.push(Item {
                key: format!("prune:{id}"),
                table: table.clone(),
                label,
                action: RecordAction::Delete,
                sys_id: Some(id),
                changes: Vec::new(),
            });
        }
    }
    let pending = items.iter().any(|i| i.action != RecordAction::None);
    Ok((
        TargetPlan {
            consumer: "ServiceNow",
            instance: inst.base().to_string(),
            items,
            pending,
        },
        ids,
    ))
}

/// Writes the write-only fields of a just-created record, each in its own
/// request with `sysparm_input_display_value=true` (`docs/servicenow.md` §3.8).
fn write_only(c: &AppCtx<'_>, inst: &Instance, spec: &RecordSpec, table: &str, id: &str) -> Result<Vec<String>, Error> {
    let mut written = Vec::new();
    for field in spec.write_only.keys() {
        if write_only_field(c, inst, spec, table, id, field)? {
            written.push(field.clone());
        }
    }
    Ok(written)
}

/// Writes the write-only `field` of a record from the store, when its value
/// is `$secret:KIND`; returns whether it wrote.
fn write_only_field(
    c: &AppCtx<'_>,
    inst: &Instance,
    spec: &RecordSpec,
    table: &str,
    id: &str,
    field: &str,
) -> Result<bool, Error> {
    let Some(kind) = spec
        .write_only
        .get(field)
        .and_then(|v| v.strip_prefix("$secret:"))
        .and_then(SecretKind::parse)
    else {
        return Ok(false);
    };
    let value = c
        .stored(kind)?
        .ok_or_else(|| connapp_engine::secrets::missing(&c.app.name, kind, None))?;
    patch_secret(c, inst, table, id, field, &value)?;
    Ok(true)
}

/// Writes `value` into the write-only `field` of one record, in a request of its own.
fn patch_secret(
    c: &AppCtx<'_>,
    inst: &Instance,
    table: &str,
    id: &str,
    field: &str,
    value: &[u8],
) -> Result<(), Error> {
    let plain = Zeroizing::new(String::from_utf8_lossy(value).into_owned());
    let mut body = Map::new();
    body.insert(field.to_string(), Value::String(plain.to_string()));
    let body = Value::Object(body);
    let r = c.shared.rt.block_on(inst.patch(table, id, &body, true));
    // The JSON copy held the secret: overwrite it before it is dropped.
    if let Value::Object(mut m) = body
        && let Some(Value::String(s)) = m.get_mut(field)
    {
        s.zeroize();
    }
    r.map_err(|e| error(&c.app.name, e))?;
    Ok(())
}

/// Writes `value` into every write-only field of the records found (`ids`)
/// that holds the app's secret of `kind`; returns `table.field` of each.
pub fn set_secret(
    c: &AppCtx<'_>,
    cons: &Consumer,
    ids: &HashMap<String, String>,
    kind: SecretKind,
    value: &[u8],
) -> Result<Vec<String>, Error> {
    let mut written = Vec::new();
    for spec in &cons.desired.records {
        for (field, v) in &spec.write_only {
            if v.strip_prefix("$secret:").and_then(SecretKind::parse) != Some(kind) {
                continue;
            }
            let Some(id) = ids.get(&spec.key) else {
                return Err(Error::failure(format!(
                    "{}: {} has no {} record to hold the {}",
                    c.app.name,
                    cons.inst.base(),
                    spec.label,
                    kind.label()
                ))
                .hint(format!(
                    "run `connapp apply {}` first: it creates the record chain",
                    c.app.name
                )));
            };
            patch_secret(c, &cons.inst, &spec.table, id, field, value)?;
            written.push(format!("{}.{field}", spec.table));
        }
    }
    Ok(written)
}

/// The link the admin opens for ServiceNow's "Get OAuth Token".
pub fn consent_link(cons: &Consumer, ids: &HashMap<String, String>) -> Option<String> {
    let consent = cons.desired.consent.as_ref()?;
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &consent.query {
        q.append_pair(k, &resolve(v, ids, "")?);
    }
    Some(format!("{}{}?{}", cons.inst.base(), consent.path, q.finish()))
}

/// Whether the instance holds an unexpired refresh token for the credential
/// (someone already pressed "Get OAuth Token").
pub fn has_token(c: &AppCtx<'_>, cons: &Consumer, ids: &HashMap<String, String>) -> Result<bool, Error> {
    Ok(token_expiry(c, cons, ids)?.is_some_and(|exp| exp > c.shared.now()))
}

/// The expiry (unix time) of the refresh token ServiceNow holds for the credential.
pub fn token_expiry(c: &AppCtx<'_>, cons: &Consumer, ids: &HashMap<String, String>) -> Result<Option<u64>, Error> {
    Ok(held_grant(c, cons, ids)?.and_then(|g| g.refresh_expires))
}

/// What ServiceNow holds of its grant for the credential (`oauth_credential`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldGrant {
    /// When its refresh token expires.
    pub refresh_expires: Option<u64>,
    /// When it stored the tokens it holds now (its consent, or its last refresh).
    pub obtained: Option<u64>,
    /// The scopes the provider said it granted; `None` when the rows do not say.
    pub scopes: Option<Vec<String>>,
}

/// A `YYYY-MM-DD HH:MM:SS` (UTC) date-time as unix seconds.
pub fn glide_time(t: &str) -> Option<u64> {
    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|d| d.and_utc().timestamp().max(0) as u64)
}

/// ServiceNow's tokens for the credential: `None` when it holds none.
pub fn held_grant(c: &AppCtx<'_>, cons: &Consumer, ids: &HashMap<String, String>) -> Result<Option<HeldGrant>, Error> {
    let (Some(cred), Some(profile)) = (ids.get("credential"), ids.get("profile")) else {
        return Ok(None);
    };
    let rps = list(
        c,
        &cons.inst,
        "oauth_requestor_profile",
        &format!("requestor_id={cred}^oauth_entity_profile={profile}"),
        &["sys_id"],
    )?;
    let Some(rp) = rps.first().and_then(|r| r.get("sys_id")).and_then(Value::as_str) else {
        return Ok(None);
    };
    let tokens = list(
        c,
        &cons.inst,
        "oauth_credential",
        &format!("oauth_requestor_profile={rp}"),
        &["type", "expires", "scopes", "sys_created_on"],
    )?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let field = |t: &Record, f: &str| t.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let refresh: Vec<&Record> = tokens.iter().filter(|t| field(t, "type") == "refresh_token").collect();
    let scopes = tokens
        .iter()
        .map(|t| field(t, "scopes"))
        .find(|s| !s.trim().is_empty())
        .map(|s| {
            s.split([' ', ','])
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        });
    Ok(Some(HeldGrant {
        refresh_expires: refresh.iter().filter_map(|t| glide_time(&field(t, "expires"))).max(),
        obtained: tokens
            .iter()
            .filter_map(|t| glide_time(&field(t, "sys_created_on")))
            .max(),
        scopes,
    }))
}

/// One outbound call the instance made, from `sys_outbound_http_log`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundCall {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The URL called (without its query).
    pub url: String,
    /// The HTTP status; 0 when no answer came.
    pub status: u16,
    /// When (unix seconds).
    pub at: u64,
}

/// How many of the newest outbound calls `verify` reads.
pub const OUTBOUND_CALLS_READ: usize = 50;

/// The newest calls the instance made to any of `prefixes` (the provider's
/// token URL and API base, as ServiceNow's own records name them), newest first.
pub fn outbound_calls(c: &AppCtx<'_>, cons: &Consumer, prefixes: &[String]) -> Result<Vec<OutboundCall>, Error> {
    let prefixes: Vec<&String> = prefixes.iter().filter(|p| !p.is_empty()).collect();
    if prefixes.is_empty() {
        return Ok(Vec::new());
    }
    let query = prefixes
        .iter()
        .map(|p| format!("urlSTARTSWITH{p}"))
        .collect::<Vec<_>>()
        .join("^OR");
    let rows = c
        .shared
        .rt
        .block_on(cons.inst.list_first(
            "sys_outbound_http_log",
            &format!("{query}^ORDERBYDESCsys_created_on"),
            &["url", "http_method", "response_status", "sys_created_on"],
            Some(OUTBOUND_CALLS_READ),
        ))
        .map_err(|e| error(&c.app.name, e))?;
    let field = |t: &Record, f: &str| t.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let mut calls: Vec<OutboundCall> = rows
        .iter()
        .filter_map(|r| {
            Some(OutboundCall {
                method: field(r, "http_method"),
                url: field(r, "url"),
                status: field(r, "response_status").parse().unwrap_or(0),
                at: glide_time(&field(r, "sys_created_on"))?,
            })
        })
        // An invalid query part matches more rows, not fewer (docs/servicenow.md §3.2).
        .filter(|call| prefixes.iter().any(|p| call.url.starts_with(p.as_str())))
        .collect();
    calls.sort_by_key(|c| std::cmp::Reverse(c.at));
    Ok(calls)
}

/// A field of one of the consumer's own records (`key` as the plan's ids name it).
pub fn record_field(
    c: &AppCtx<'_>,
    cons: &Consumer,
    ids: &HashMap<String, String>,
    key: &str,
    table: &str,
    field: &str,
) -> Result<Option<String>, Error> {
    let Some(id) = ids.get(key) else { return Ok(None) };
    let rows = list(c, &cons.inst, table, &format!("sys_id={id}"), &[field])?;
    Ok(rows
        .first()
        .and_then(|r| r.get(field))
        .and_then(Value::as_str)
        .map(str::to_string))
}

/// Loads what the consumer needs, or `None` when the app has no target or the
/// store holds no instance credentials (then only the provider is planned).
pub fn consumer(
    c: &AppCtx<'_>,
    desired: impl FnOnce() -> Result<ConsumerRecords, Error>,
) -> Result<Option<Consumer>, Error> {
    if c.app.target.is_none() || !has_credentials(c)? {
        return Ok(None);
    }
    Ok(Some(Consumer {
        inst: instance(c)?,
        desired: desired()?,
    }))
}

/// The note after an apply: the consent only the admin can give.
pub fn consent_note(app: &App, link: &str) -> String {
    format!(
        "Last step, in ServiceNow: an admin opens\n  {link}\nsigns in to Zoom as an account admin and allows access (this is ServiceNow's \"Get OAuth Token\").\nconnapp does not do this itself: Zoom keeps one grant per user per app, so a consent by connapp with the same Zoom user would end the grant ServiceNow holds (or the other way round). Use a different Zoom admin for `connapp login {}`.",
        app.name
    )
}

/// The consumer end of one app for the engine's `ConsumerEnd`: the app's
/// context, the signed-in instance with what the platform wants there, and
/// the sys_ids the last run found.
pub struct End<'r> {
    c: AppCtx<'r>,
    cons: Consumer,
    ids: HashMap<String, String>,
}

impl<'r> End<'r> {
    /// The consumer end of `c`'s app, or `None` when it has no target or the
    /// store holds no instance credentials.
    pub fn load(
        c: AppCtx<'r>,
        desired: impl FnOnce(&AppCtx<'r>) -> Result<ConsumerRecords, Error>,
    ) -> Result<Option<Self>, Error> {
        Ok(consumer(&c, || desired(&c))?.map(|cons| End {
            c,
            cons,
            ids: HashMap::new(),
        }))
    }
}

impl connapp_engine::manage::ConsumerEnd for End<'_> {
    fn run(&mut self, mode: Mode) -> Result<TargetPlan, Error> {
        let (plan, ids) = run(&self.c, &self.cons, mode)?;
        self.ids = ids;
        Ok(plan)
    }
    fn consent_link(&self) -> Result<Option<String>, Error> {
        if has_token(&self.c, &self.cons, &self.ids)? {
            return Ok(None);
        }
        Ok(consent_link(&self.cons, &self.ids))
    }
    fn consent_note(&self, link: &str) -> String {
        consent_note(&self.c.app, link)
    }
    fn set_secret(&mut self, kind: SecretKind, value: &[u8]) -> Result<Vec<String>, Error> {
        if self.ids.is_empty() {
            let (_, ids) = run(&self.c, &self.cons, Mode::Plan)?;
            self.ids = ids;
        }
        set_secret(&self.c, &self.cons, &self.ids, kind, value)
    }
    fn last_exchange(&self) -> Result<Option<u64>, Error> {
        let ids = if self.ids.is_empty() {
            run(&self.c, &self.cons, Mode::Plan)?.1
        } else {
            self.ids.clone()
        };
        Ok(held_grant(&self.c, &self.cons, &ids)?.and_then(|g| g.obtained))
    }
}
