//! The platforms as the engine sees them: what validation needs from the
//! installed plugins, the app as a platform plugin receives it, a
//! declaration checked by connapp's rules and then by each app's platform's
//! own, and the platform's profile (how it behaves and speaks).
//!
//! Nothing here names a platform: what differs between them comes from
//! their plugins, through the registry.

use std::collections::HashMap;

use connapp_core::{
    App, Catalog, ConsumerRules, Diagnostic, Inventory, PlatformRules, PresetInfo, Report, SettingKind, SettingRule,
    Severity, SourceMap, StoreRules,
};
use connapp_host::{HostError, LoadedPlugin, Registry};
use connapp_plugin_api::contract::{ConsumerRecords, Finding, FindingSeverity, PlatformProfile};
use connapp_plugin_api::{Platform, Preset, PresetScope};
use serde_json::Value;

use crate::{Error, ErrorKind};

/// What validation needs from the plugins: presets, store kinds, the
/// provider platforms and the consumer platforms (target kinds: no token
/// endpoint, no app's platform), each with its rules. A platform whose
/// profile breaks the contract is an error naming its plugin.
pub fn catalog(reg: &Registry) -> Result<Catalog, HostError> {
    let (presets, _errors) = reg.presets();
    let mut platforms = Vec::new();
    let mut consumers = Vec::new();
    for (p, _) in reg.platforms().0 {
        let profile = reg.platform_profile(&p.name)?;
        if is_consumer(&p) {
            consumers.push(ConsumerRules {
                display: profile.display,
                redirect_path: profile.redirect_path,
                instance_url_template: profile.instance_url_template,
                settings: profile.target_settings,
                name: p.name,
            });
            continue;
        }
        platforms.push(PlatformRules {
            // The core falls back to the name itself.
            display: profile.display,
            credentials_source: profile.credentials_source,
            requires_usage: profile.requires_usage,
            account_grant: profile.account_grant,
            endpoints_from_declaration: p.endpoints_from_declaration,
            management_scope_prefix: profile.management_scope_prefix,
            display_name_max_chars: profile.display_name_max_chars,
            name: p.name,
        });
    }
    Ok(Catalog {
        presets: presets
            .into_iter()
            .map(|(p, _)| PresetInfo {
                name: p.name,
                platform: p.platform,
                scopes: p.scopes.into_iter().map(|s| s.scope).collect(),
            })
            .collect(),
        stores: store_rules(reg)?,
        store_kinds: reg.store_kinds(),
        platforms,
        consumers,
    })
}

/// The settings of every installed store kind whose plugin describes them.
fn store_rules(reg: &Registry) -> Result<Vec<StoreRules>, HostError> {
    let mut out = Vec::new();
    for kind in reg.store_kinds() {
        if let Some(settings) = reg.store_settings(&kind)? {
            out.push(StoreRules {
                kind,
                settings: settings.into_iter().map(setting_rule).collect(),
            });
        }
    }
    Ok(out)
}

/// A store setting as its plugin describes it, as the core's rules take it.
pub fn setting_rule(s: connapp_plugin_api::StoreSetting) -> SettingRule {
    use connapp_plugin_api::SettingType as T;
    SettingRule {
        kind: match s.kind {
            T::TEXT => SettingKind::Text,
            T::INTEGER => SettingKind::Integer,
            T::BOOLEAN => SettingKind::Boolean,
            T::PATH => SettingKind::Path,
            T::URL => SettingKind::Url,
            _ => SettingKind::Other,
        },
        name: s.name,
        required: s.required,
        env: s.env,
        default: s.default,
        secret: s.secret,
        help: s.help,
    }
}

/// A consumer platform issues no tokens: it has no token endpoint of its
/// own and takes none from the declaration.
fn is_consumer(p: &Platform) -> bool {
    p.token_url.is_empty() && !p.endpoints_from_declaration
}

/// What the installed presets say about each of an app's scopes: the reason
/// and the probe, for the scopes a preset of the app's platform knows.
pub fn preset_scopes(reg: &Registry, app: &App) -> Vec<PresetScope> {
    scopes_in(&reg.presets().0, app)
}

fn scopes_in(presets: &[(Preset, &LoadedPlugin)], app: &App) -> Vec<PresetScope> {
    app.scopes
        .iter()
        .filter_map(|s| {
            presets
                .iter()
                .filter(|(p, _)| p.platform == app.platform)
                .flat_map(|(p, _)| p.scopes.iter())
                .find(|ps| ps.scope == s.scope)
                .cloned()
        })
        .collect()
}

/// The app as a platform plugin receives it (`provider_manifest`,
/// `check_app`): the model as `connapp check --json` prints it, plus
/// `scope_reasons`, an object from scope to its one-line reason.
pub fn app_view(reg: &Registry, app: &App) -> Value {
    view_with(&reg.presets().0, app)
}

fn view_with(presets: &[(Preset, &LoadedPlugin)], app: &App) -> Value {
    let mut v = serde_json::to_value(app).unwrap_or(Value::Null);
    let reasons: serde_json::Map<String, Value> = scopes_in(presets, app)
        .into_iter()
        .map(|p| (p.scope, Value::String(p.reason)))
        .collect();
    v["scope_reasons"] = Value::Object(reasons);
    v
}

/// [`view_with`] as the JSON text a plugin is sent, written straight from
/// the app: no value tree is built (a fleet's check sends thousands).
fn view_text(presets: &[(Preset, &LoadedPlugin)], app: &App) -> String {
    #[derive(serde::Serialize)]
    struct View<'a> {
        #[serde(flatten)]
        app: &'a App,
        scope_reasons: std::collections::BTreeMap<String, String>,
    }
    let view = View {
        app,
        scope_reasons: scopes_in(presets, app)
            .into_iter()
            .map(|p| (p.scope, p.reason))
            .collect(),
    };
    // Sized for a typical view: growing the text is most of the cost.
    let mut text = Vec::with_capacity(4096);
    match serde_json::to_writer(&mut text, &view).map(|()| String::from_utf8(text)) {
        Ok(Ok(text)) => text,
        _ => view_with(presets, app).to_string(),
    }
}

/// The provider's name in messages: the profile's, else the platform's name.
pub fn display<'a>(name: &'a str, profile: &'a PlatformProfile) -> &'a str {
    if profile.display.is_empty() {
        name
    } else {
        &profile.display
    }
}

/// Where a user copies an app's credentials from, for hints.
pub fn credentials_source(profile: &PlatformProfile) -> &str {
    if profile.credentials_source.is_empty() {
        connapp_core::DEFAULT_CREDENTIALS_SOURCE
    } else {
        &profile.credentials_source
    }
}

/// Checks the declaration `text` (read from `file`): connapp's own rules
/// first; when they pass, each app's platform plugin and then its target's
/// consumer platform plugin add their findings (located at the field they
/// name). Any error leaves no declaration.
pub fn check(file: &str, text: &str, reg: &Registry) -> Result<Report, HostError> {
    check_with(file, text, Inventory::NotRead, reg)
}

/// [`check`] with the fleet inventory the declaration names, as the owner
/// read it. A plugin's finding about an app a row made is said at the
/// template's field, once, with the rows that have it.
pub fn check_with(file: &str, text: &str, inventory: Inventory<'_>, reg: &Registry) -> Result<Report, HostError> {
    let mut report = connapp_core::check_with(file, text, inventory, &catalog(reg)?);
    let Some(decl) = &report.declaration else {
        return Ok(report);
    };
    let map = SourceMap::new(file, text);
    // Read once for every app's view.
    let (presets, _) = reg.presets();
    let mut found = Vec::new();
    // A fleet's finding, by (pattern, field, rule, words): its first place and its rows.
    let mut fleet_found: Vec<(Diagnostic, Vec<usize>)> = Vec::new();
    let mut fleet_index: HashMap<(String, String, String, String), usize> = HashMap::new();
    // The plugins' findings for every app, asked on a few threads (a fleet
    // has thousands of apps), each thread asking once per distinct view.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    let chunk = decl.apps.len().div_ceil(threads).max(1);
    let asked: Vec<Result<Vec<Vec<Finding>>, HostError>> = std::thread::scope(|s| {
        let handles: Vec<_> = decl
            .apps
            .chunks(chunk)
            .map(|apps| {
                let presets = &presets;
                s.spawn(move || {
                    let mut seen: HashMap<String, Vec<Finding>> = HashMap::new();
                    apps.iter()
                        .map(|app| {
                            let view = view_text(presets, app);
                            if let Some(f) = seen.get(&view) {
                                return Ok(f.clone());
                            }
                            // The app's platform, then its target's consumer platform.
                            let mut findings = reg.check_app(&app.platform, &view)?;
                            if let Some(t) = &app.target {
                                findings.extend(reg.check_app(&t.kind, &view)?);
                            }
                            seen.insert(view, findings.clone());
                            Ok(findings)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut all_findings = Vec::with_capacity(decl.apps.len());
    for part in asked {
        all_findings.extend(part?);
    }
    let rows: HashMap<&str, _> = decl
        .fleet
        .iter()
        .flat_map(|f| {
            f.rows
                .iter()
                .flat_map(move |r| r.apps.iter().map(move |a| (a.as_str(), (f, r))))
        })
        .collect();
    for (app, findings) in decl.apps.iter().zip(all_findings) {
        let row = rows.get(app.name.as_str()).copied();
        for f in findings {
            let severity = match f.severity {
                FindingSeverity::Error => Severity::Error,
                FindingSeverity::Warning => Severity::Warning,
            };
            // The plugin names fields of the app view; the user needs the
            // place in the file (a preset's scope is its preset's entry).
            let field = if f.field.is_empty() {
                String::new()
            } else {
                format!(".{}", app.declared_field(&f.field))
            };
            let Some((fleet, row)) = row else {
                let path = format!("apps.{}{field}", app.name);
                found.push(map.diag_at(severity, &path, f.rule, f.message, f.fix));
                continue;
            };
            let pattern = fleet
                .patterns
                .iter()
                .zip(&row.apps)
                .find(|(_, a)| **a == app.name)
                .map_or_else(|| app.name.clone(), |(p, _)| p.clone());
            let message = f.message.replace(&app.name, &pattern);
            let key = (pattern.clone(), field.clone(), f.rule.clone(), message.clone());
            let at = *fleet_index.entry(key).or_insert_with(|| {
                let path = format!("fleet.apps.{pattern}{field}");
                fleet_found.push((
                    map.diag_at(severity, &path, f.rule, message, f.fix.replace(&app.name, &pattern)),
                    Vec::new(),
                ));
                fleet_found.len() - 1
            });
            fleet_found[at].1.push(row.line);
        }
    }
    if let Some(fleet) = &decl.fleet {
        for (mut d, lines) in fleet_found {
            if lines.len() < fleet.rows.len() {
                let shown: Vec<String> = lines
                    .iter()
                    .take(connapp_core::ROW_REPORTS)
                    .map(usize::to_string)
                    .collect();
                let more = lines.len().saturating_sub(connapp_core::ROW_REPORTS);
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                d.message = format!(
                    "{} (the rows on lines {}{more} of {})",
                    d.message,
                    shown.join(", "),
                    fleet.source
                );
            }
            found.push(d);
        }
    }
    if found.is_empty() {
        return Ok(report);
    }
    report.diagnostics.extend(found);
    report
        .diagnostics
        .sort_by(|a, b| (a.file != file, &a.file, a.line, a.column).cmp(&(b.file != file, &b.file, b.line, b.column)));
    if report.has_errors() {
        report.declaration = None;
    }
    Ok(report)
}

/// An installed provider platform with its profile.
#[derive(Clone, Debug)]
pub struct PlatformInfo {
    /// Endpoints and habits.
    pub platform: Platform,
    /// How it behaves and speaks beyond its endpoints.
    pub profile: PlatformProfile,
}

impl PlatformInfo {
    /// The provider's name in messages.
    pub fn display(&self) -> &str {
        display(&self.platform.name, &self.profile)
    }
}

/// The platform `name` and its profile; `None` when no installed plugin provides it.
pub fn platform(reg: &Registry, name: &str) -> Result<Option<PlatformInfo>, HostError> {
    let (platforms, _) = reg.platforms();
    let Some(platform) = platforms.into_iter().map(|(p, _)| p).find(|p| p.name == name) else {
        return Ok(None);
    };
    let profile = reg.platform_profile(name)?;
    Ok(Some(PlatformInfo { platform, profile }))
}

/// How a consumer must be told the provider's endpoints.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Endpoints {
    /// Authorization endpoint.
    pub authorize_url: Option<String>,
    /// Token endpoint.
    pub token_url: String,
    /// Revocation endpoint.
    pub revoke_url: Option<String>,
    /// The API base, without a trailing slash.
    pub api_base: String,
    /// `basic` or `body`.
    pub client_auth: &'static str,
}

/// What the consumer platform of the app's target wants (records, lookups,
/// prunes, consent), from its plugin; the input is the app, the provider's
/// endpoints as a consumer must be told them, and the target.
pub fn consumer_records(reg: &Registry, app: &App, endpoints: &Endpoints) -> Result<ConsumerRecords, Error> {
    let Some(target) = &app.target else {
        return Err(Error::invalid(format!("{} has no consumer target", app.name)));
    };
    let input = serde_json::json!({
        "app": serde_json::to_value(app).unwrap_or(Value::Null),
        "provider": serde_json::to_value(endpoints).unwrap_or(Value::Null),
        "target": target.view(),
    });
    let platform = &target.kind;
    // Strictly (in the host): a missing, mistyped or unknown field is the
    // plugin's error, named, never an empty string further down.
    reg.consumer_records(platform, &input.to_string())?.ok_or_else(|| {
        Error::new(
            ErrorKind::Plugin,
            format!("no installed plugin describes the records of the consumer platform {platform:?}"),
        )
        .hint("run `connapp plugins list`")
    })
}

/// The provider-side configuration the app's platform wants (e.g. the part
/// of Zoom's app manifest connapp manages), from its plugin.
pub fn provider_manifest(reg: &Registry, app: &App) -> Result<Value, Error> {
    let text = reg.provider_manifest(&app.platform, &app_view(reg, app).to_string())?;
    let Some(text) = text else {
        return Err(Error::invalid(format!(
            "the platform {:?} has no app manifest for {} (server-to-server apps have none)",
            app.platform, app.name
        )));
    };
    serde_json::from_str(&text).map_err(|e| {
        Error::new(
            ErrorKind::Plugin,
            format!("the platform plugin sent a manifest that is not JSON: {e}"),
        )
    })
}

#[cfg(test)]
mod tests;
