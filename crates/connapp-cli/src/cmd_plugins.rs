//! `connapp plugins list|info`.

use std::io::Write;

use connapp_host::{LoadedPlugin, Origin, Registry};
use serde::Serialize;

use crate::cli::{Global, PluginInfoArgs, PluginsArgs};
use crate::cmd_secrets::CapsJson;
use crate::ctx;
use crate::error::{CliError, Exit};

#[derive(Serialize)]
struct ProvidedJson {
    kind: &'static str,
    name: String,
    /// A store's capabilities; `null` for other kinds.
    capabilities: Option<CapsJson>,
    /// A store's settings (`[store.settings]`) as its plugin describes them;
    /// `null` for other kinds, or a store that does not describe them.
    settings: Option<Vec<SettingJson>>,
}

#[derive(Serialize)]
struct SettingJson {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    required: bool,
    secret: bool,
    /// Environment variables read when it is absent, in order.
    env: Vec<String>,
    default: Option<String>,
    help: String,
    /// One line: all of the above.
    #[serde(skip)]
    line: String,
}

#[derive(Serialize)]
struct PluginJson {
    name: String,
    version: String,
    description: String,
    origin: &'static str,
    path: Option<String>,
    api_version: String,
    provides: Vec<ProvidedJson>,
}

#[derive(Serialize)]
struct FailureJson {
    path: String,
    error: String,
}

#[derive(Serialize)]
struct ListJson {
    plugins: Vec<PluginJson>,
    failures: Vec<FailureJson>,
    search_path: Vec<String>,
}

fn to_json(p: &LoadedPlugin) -> PluginJson {
    PluginJson {
        name: p.info.name.clone(),
        version: p.info.version.clone(),
        description: p.info.description.clone(),
        origin: match p.origin {
            Origin::Builtin => "builtin",
            Origin::Dynamic(_) => "dynamic",
        },
        path: match &p.origin {
            Origin::Builtin => None,
            Origin::Dynamic(path) => Some(path.display().to_string()),
        },
        api_version: p.info.api_version.clone(),
        provides: p
            .info
            .provides
            .iter()
            .map(|x| ProvidedJson {
                kind: x.kind.name(),
                name: x.name.clone(),
                capabilities: x.store_capabilities.map(CapsJson::from),
                settings: settings_of(p, x),
            })
            .collect(),
    }
}

/// A store's settings as its plugin describes them (`None`: other kinds, or
/// not described; a plugin that fails to answer is logged and says nothing).
fn settings_of(p: &LoadedPlugin, x: &connapp_plugin_api::Provided) -> Option<Vec<SettingJson>> {
    if x.kind != connapp_plugin_api::PluginKind::STORE {
        return None;
    }
    let described = match p.store_settings(&x.name) {
        Ok(d) => d?,
        Err(e) => {
            tracing::warn!("{e}");
            return None;
        }
    };
    Some(
        described
            .into_iter()
            .map(|s| {
                let rule = connapp_engine::platform::setting_rule(s);
                SettingJson {
                    line: rule.describe(),
                    kind: rule.kind.name(),
                    name: rule.name,
                    required: rule.required,
                    secret: rule.secret,
                    env: rule.env,
                    default: rule.default,
                    help: rule.help,
                }
            })
            .collect(),
    )
}

fn failures_result(reg: &Registry) -> Result<(), CliError> {
    match reg.failures().len() {
        0 => Ok(()),
        n => Err(CliError::with_code(
            Exit::Plugin,
            format!(
                "{n} plugin librar{} could not be loaded",
                if n == 1 { "y" } else { "ies" }
            ),
        )),
    }
}

fn caps_text(c: &CapsJson) -> String {
    format!(
        "persistent: {}, shared across hosts: {}, native CAS: {}, max value: {}",
        yes(c.persistent),
        yes(c.shared_across_hosts),
        yes(c.native_cas),
        c.max_value_size.map_or("unlimited".into(), |v| format!("{v} bytes"))
    )
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

pub fn list(_g: &Global, a: PluginsArgs) -> Result<(), CliError> {
    let dirs = ctx::plugin_dirs();
    let reg = Registry::discover(&dirs);
    let plugins: Vec<PluginJson> = reg.plugins().iter().map(to_json).collect();
    let failures: Vec<FailureJson> = reg
        .failures()
        .iter()
        .map(|f| FailureJson {
            path: f.path.display().to_string(),
            error: f.error.to_string(),
        })
        .collect();
    if a.json {
        ctx::print_json(
            "plugins list",
            &ListJson {
                plugins,
                failures,
                search_path: dirs.iter().map(|d| d.display().to_string()).collect(),
            },
        )?;
        return failures_result(&reg);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<22} {:<9} {:<8} {:<26} ORIGIN",
        "NAME", "VERSION", "API", "PROVIDES"
    )?;
    for p in &plugins {
        let provides: Vec<String> = p.provides.iter().map(|x| format!("{} {}", x.kind, x.name)).collect();
        writeln!(
            out,
            "{:<22} {:<9} {:<8} {:<26} {}",
            p.name,
            p.version,
            p.api_version,
            provides.join(", "),
            p.path.as_deref().unwrap_or("built-in")
        )?;
    }
    drop(out);
    for f in &failures {
        eprintln!("error: {}", f.error);
    }
    failures_result(&reg)
}

pub fn info(_g: &Global, a: PluginInfoArgs) -> Result<(), CliError> {
    let reg = ctx::registry();
    let Some(p) = reg.plugin(&a.name) else {
        let known: Vec<&str> = reg.plugins().iter().map(|p| p.info.name.as_str()).collect();
        let hint = match connapp_core::nearest(&a.name, known.iter().copied()) {
            Some(near) => format!("did you mean `{near}`? Installed: {}", known.join(", ")),
            None => format!("installed: {}", known.join(", ")),
        };
        let mut err = CliError::with_code(Exit::Usage, format!("no plugin named {:?}", a.name)).hint(hint);
        if let Some(f) = reg.failures().first() {
            err.message
                .push_str(&format!(" (and a library failed to load: {})", f.error));
            err.code = Exit::Plugin;
        }
        return Err(err);
    };
    let j = to_json(p);
    if a.json {
        return ctx::print_json("plugins info", &j);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "name:        {}", j.name)?;
    writeln!(out, "version:     {}", j.version)?;
    writeln!(out, "description: {}", j.description)?;
    writeln!(out, "origin:      {}", j.path.as_deref().unwrap_or("built-in"))?;
    writeln!(
        out,
        "plugin API:  {} (this connapp: {})",
        j.api_version,
        connapp_plugin_api::PLUGIN_API_VERSION
    )?;
    for x in &j.provides {
        writeln!(out, "provides:    {} {}", x.kind, x.name)?;
        if let Some(c) = &x.capabilities {
            writeln!(out, "             {}", caps_text(c))?;
        }
        match &x.settings {
            Some(list) if list.is_empty() => writeln!(out, "             takes no [store.settings]")?,
            Some(list) => {
                writeln!(out, "             [store.settings]:")?;
                for s in list {
                    let text = format!("{}: {}", s.name, s.line);
                    // Continuation lines hang below the description.
                    for (i, line) in crate::render::wrap(&text, 17, crate::render::WIDTH).iter().enumerate() {
                        writeln!(out, "{}", if i == 0 { &line[2..] } else { line })?;
                    }
                }
            }
            None if x.kind == "store" => writeln!(out, "             [store.settings]: not described by the plugin")?,
            None => {}
        }
    }
    Ok(())
}
