//! Parsing and validating `connapp.toml`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Diagnostic, Severity, SourceMap};
use crate::model::{
    App, ClientAuthStyle, Declaration, GrantKind, InstanceAuth, OAuth, Scope, ScopeSource, ServicenowSettings,
    StoreDecl, Target, Usage, Webhook, servicenow_instance_url, servicenow_redirect,
};
use crate::scope::{self, ScopeLevel, ScopeProblem};
use crate::urls::{self, check_url, describe_difference};

/// The largest declaration connapp reads, in bytes.
pub const MAX_DECLARATION_BYTES: usize = 256 * 1024;

/// Longest Zoom display name: "under 50 characters".
pub const MAX_DISPLAY_NAME_CHARS: usize = 49;

/// The declaration format version this build understands.
pub const DECLARATION_VERSION: i64 = 1;

/// What validation needs to know that only plugins can tell.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Presets that are installed.
    pub presets: Vec<PresetInfo>,
    /// Store kinds that are installed; empty = don't check.
    pub store_kinds: Vec<String>,
    /// Platforms that are installed; empty = the built-in list.
    pub platforms: Vec<String>,
}

/// A preset as validation sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresetInfo {
    /// The preset name.
    pub name: String,
    /// The platform its scopes belong to.
    pub platform: String,
    /// Its scopes.
    pub scopes: Vec<String>,
}

/// Platforms connapp knows, with their scope catalogue.
pub const KNOWN_PLATFORMS: &[&str] = &["zoom", "generic"];

/// The result of checking a declaration.
#[derive(Clone, Debug)]
pub struct Report {
    /// The declaration, when there are no errors.
    pub declaration: Option<Declaration>,
    /// Every problem found, errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDecl {
    version: Option<Spanned<i64>>,
    store: Option<Spanned<RawStore>>,
    apps: Option<Spanned<BTreeMap<String, Spanned<RawApp>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    kind: Option<Spanned<String>>,
    settings: Option<Spanned<BTreeMap<String, Spanned<SettingValue>>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SettingValue {
    String(String),
    Integer(i64),
    Bool(bool),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    display_name: Option<Spanned<String>>,
    platform: Option<Spanned<String>>,
    usage: Option<Spanned<String>>,
    redirect_url: Option<Spanned<String>>,
    allow_list: Option<Spanned<Vec<Spanned<String>>>>,
    strict_mode: Option<Spanned<bool>>,
    subdomain_check: Option<Spanned<bool>>,
    presets: Option<Spanned<Vec<Spanned<String>>>>,
    scopes: Option<Spanned<Vec<Spanned<String>>>>,
    target: Option<Spanned<RawTarget>>,
    oauth: Option<Spanned<RawOAuth>>,
    optional_scopes: Option<Spanned<Vec<Spanned<String>>>>,
    app_id: Option<Spanned<String>>,
    managed_by: Option<Spanned<String>>,
    webhook: Option<Spanned<RawWebhook>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    endpoint_url: Option<Spanned<String>>,
    events: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth {
    grant: Option<Spanned<String>>,
    login_redirect: Option<Spanned<String>>,
    oauth_base: Option<Spanned<String>>,
    api_base: Option<Spanned<String>>,
    authorize_url: Option<Spanned<String>>,
    token_url: Option<Spanned<String>>,
    revoke_url: Option<Spanned<String>>,
    client_auth: Option<Spanned<String>>,
    pkce: Option<Spanned<bool>>,
    account_id: Option<Spanned<String>>,
    authorize_params: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    kind: Option<Spanned<String>>,
    instance: Option<Spanned<String>>,
    instance_url: Option<Spanned<String>>,
    auth: Option<Spanned<String>>,
    alias: Option<Spanned<String>>,
    entity_name: Option<Spanned<String>>,
    connection_name: Option<Spanned<String>>,
}

const TOP_FIELDS: &[&str] = &["version", "store", "apps"];
const STORE_FIELDS: &[&str] = &["kind", "settings"];
const APP_FIELDS: &[&str] = &[
    "display_name",
    "platform",
    "usage",
    "redirect_url",
    "allow_list",
    "strict_mode",
    "subdomain_check",
    "presets",
    "scopes",
    "target",
    "oauth",
    "optional_scopes",
    "app_id",
    "managed_by",
    "webhook",
];
const WEBHOOK_FIELDS: &[&str] = &["endpoint_url", "events"];
const OAUTH_FIELDS: &[&str] = &[
    "grant",
    "login_redirect",
    "oauth_base",
    "api_base",
    "authorize_url",
    "token_url",
    "revoke_url",
    "client_auth",
    "pkce",
    "account_id",
    "authorize_params",
];
const TARGET_FIELDS: &[&str] = &[
    "kind",
    "instance",
    "instance_url",
    "auth",
    "alias",
    "entity_name",
    "connection_name",
];

struct Ctx<'a> {
    map: SourceMap<'a>,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn err(
        &mut self,
        span: Range<usize>,
        field: &str,
        rule: &'static str,
        msg: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let d = self.map.diag(Severity::Error, span, field, rule, msg, fix);
        self.diags.push(d);
    }
    fn warn(
        &mut self,
        span: Range<usize>,
        field: &str,
        rule: &'static str,
        msg: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let d = self.map.diag(Severity::Warning, span, field, rule, msg, fix);
        self.diags.push(d);
    }
}

fn too_large_diag(cx: &mut Ctx<'_>, size: Option<u64>) {
    let message = match size {
        Some(n) => format!("the declaration is {n} bytes; the limit is {MAX_DECLARATION_BYTES} bytes"),
        None => format!("the declaration holds more than the limit of {MAX_DECLARATION_BYTES} bytes"),
    };
    cx.err(
        0..0,
        "(document)",
        "file-too-large",
        message,
        "a declaration holds a few apps and is a few kilobytes; check that this is the right file",
    );
}

/// The report for a declaration too large to read: its caller knows the
/// file's true `size` (`None` for a device or pipe, read only up to the
/// limit) and never hands the text over.
pub fn too_large(file: &str, size: Option<u64>) -> Report {
    let mut cx = Ctx {
        map: SourceMap::new(file, ""),
        diags: Vec::new(),
    };
    too_large_diag(&mut cx, size);
    Report {
        declaration: None,
        diagnostics: cx.diags,
    }
}

/// Checks a declaration. `file` is the name to put in diagnostics, `text` its
/// contents. Pure: no IO.
pub fn check(file: &str, text: &str, catalog: &Catalog) -> Report {
    let mut cx = Ctx {
        map: SourceMap::new(file, text),
        diags: Vec::new(),
    };
    let declaration = check_inner(&mut cx, text, catalog);
    let mut diagnostics = cx.diags;
    diagnostics.sort_by_key(|d| (d.line, d.column));
    let has_errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
    Report {
        declaration: if has_errors { None } else { declaration },
        diagnostics,
    }
}

fn expected_fields_for(path: &str) -> &'static [&'static str] {
    let parts: Vec<&str> = path.split('.').collect();
    match parts.as_slice() {
        [] | [""] => TOP_FIELDS,
        ["store"] => STORE_FIELDS,
        ["apps", _] => APP_FIELDS,
        ["apps", _, "target"] => TARGET_FIELDS,
        ["apps", _, "oauth"] => OAUTH_FIELDS,
        ["apps", _, "webhook"] => WEBHOOK_FIELDS,
        _ => &[],
    }
}

fn toml_error_to_diag(cx: &mut Ctx<'_>, path: &str, err: &toml::de::Error, text: &str) {
    let span = err.span().unwrap_or(0..0);
    let path = path
        .split('.')
        .filter(|seg| !seg.starts_with("$__serde_spanned"))
        .collect::<Vec<_>>()
        .join(".");
    let path = path.as_str();
    let message = err.message().trim().to_string();
    let field = if path.is_empty() || path == "." {
        "(document)".to_string()
    } else {
        path.to_string()
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected = expected_fields_for(path.rsplit_once('.').map_or("", |(p, _)| p));
        let expected = if expected.is_empty() {
            expected_fields_for(path)
        } else {
            expected
        };
        let suggestion = expected
            .iter()
            .map(|f| (strsim::damerau_levenshtein(name, f), *f))
            .filter(|(d, _)| *d <= 3)
            .min_by_key(|(d, _)| *d)
            .map(|(_, f)| f);
        let fix = match suggestion {
            Some(s) => format!("did you mean `{s}`? Allowed here: {}", expected.join(", ")),
            None if !expected.is_empty() => format!("remove it; allowed here: {}", expected.join(", ")),
            None => "remove it".to_string(),
        };
        cx.err(span, &field, "unknown-field", format!("unknown field `{name}`"), fix);
        return;
    }
    let is_syntax = path.is_empty() || path == ".";
    if is_syntax && !message.contains("invalid type") && !message.contains("missing field") {
        let (line, _) = cx.map.line_col(span.start);
        let line_text = text.lines().nth(line.saturating_sub(1)).unwrap_or("").trim();
        cx.err(
            span,
            "(document)",
            "toml-syntax",
            format!("TOML syntax error: {message} (in `{line_text}`)"),
            "fix the TOML syntax on this line; strings need double quotes, tables `[name]`, arrays `[\"a\", \"b\"]`",
        );
        return;
    }
    let fix = if message.contains("invalid type") {
        match field.rsplit('.').next().unwrap_or("") {
            "strict_mode" | "subdomain_check" => "write true or false (without quotes)".to_string(),
            "allow_list" | "presets" | "scopes" | "optional_scopes" | "events" => {
                "write an array of strings, e.g. [\"a\", \"b\"]".to_string()
            }
            "version" => "write version = 1".to_string(),
            "apps" => "declare each app as a table: [apps.my-app]".to_string(),
            "target" => "declare the target as a table: [apps.NAME.target]".to_string(),
            "store" => "declare the store as a table: [store]".to_string(),
            _ => "use the type shown in `connapp init`'s output for this field".to_string(),
        }
    } else {
        "see `connapp init` for a complete, valid declaration".to_string()
    };
    cx.err(span, &field, "toml-type", message, fix);
}

fn check_inner(cx: &mut Ctx<'_>, text: &str, catalog: &Catalog) -> Option<Declaration> {
    if text.len() > MAX_DECLARATION_BYTES {
        too_large_diag(cx, Some(text.len() as u64));
        return None;
    }
    if text.trim().is_empty() {
        cx.err(
            0..0,
            "(document)",
            "file-empty",
            "the declaration is empty",
            "run `connapp init --preset servicenow-dex-zoom --instance NAME` to write one",
        );
        return None;
    }
    let de = match toml::Deserializer::parse(text) {
        Ok(de) => de,
        Err(e) => {
            toml_error_to_diag(cx, "", &e, text);
            return None;
        }
    };
    let raw: RawDecl = match serde_path_to_error::deserialize(de) {
        Ok(r) => r,
        Err(e) => {
            let path = e.path().to_string();
            toml_error_to_diag(cx, &path, e.inner(), text);
            return None;
        }
    };

    if raw.version.is_none() && raw.store.is_none() && raw.apps.is_none() {
        cx.err(
            0..0,
            "(document)",
            "file-empty",
            "the declaration declares nothing (only comments or whitespace)",
            "run `connapp init --preset servicenow-dex-zoom --instance NAME` to write one",
        );
        return None;
    }
    let version = match &raw.version {
        None => {
            cx.err(
                0..0,
                "version",
                "missing-field",
                "`version` is missing",
                "add `version = 1` at the top",
            );
            DECLARATION_VERSION
        }
        Some(v) if *v.get_ref() != DECLARATION_VERSION => {
            cx.err(
                v.span(),
                "version",
                "version",
                format!(
                    "declaration version {} is not supported; this connapp reads version {DECLARATION_VERSION}",
                    v.get_ref()
                ),
                "write `version = 1`, or upgrade connapp",
            );
            DECLARATION_VERSION
        }
        Some(v) => *v.get_ref(),
    };

    let store = check_store(cx, raw.store.as_ref(), catalog);

    let mut apps = Vec::new();
    match &raw.apps {
        None => cx.err(
            0..0,
            "apps",
            "no-apps",
            "the declaration has no apps",
            "add an app table, e.g. `[apps.dex-zoom]`, or run `connapp init`",
        ),
        Some(map) if map.get_ref().is_empty() => cx.err(
            map.span(),
            "apps",
            "no-apps",
            "the declaration has no apps",
            "add an app table, e.g. `[apps.dex-zoom]`",
        ),
        Some(map) => {
            for (name, app) in map.get_ref() {
                if let Some(a) = check_app(cx, name, app, catalog) {
                    apps.push(a);
                }
            }
            check_managed_by(cx, map.get_ref(), &apps);
        }
    }
    Some(Declaration {
        version,
        store: store?,
        apps,
    })
}

/// `managed_by` names another app of the declaration that can manage this one.
fn check_managed_by(cx: &mut Ctx<'_>, raw: &BTreeMap<String, Spanned<RawApp>>, apps: &[App]) {
    for (name, app) in raw {
        let Some(m) = &app.get_ref().managed_by else { continue };
        let target = m.get_ref();
        let field = format!("apps.{name}.managed_by");
        if target == name {
            cx.err(
                m.span(),
                &field,
                "managed-by-self",
                "an app cannot manage itself: its own token lacks the Marketplace scopes",
                "name a separate management app (Server-to-Server OAuth, `marketplace:` scopes)",
            );
            continue;
        }
        let Some(other) = raw.get(target) else {
            let names: Vec<&str> = raw.keys().map(String::as_str).filter(|n| n != name).collect();
            cx.err(
                m.span(),
                &field,
                "managed-by-unknown",
                format!("there is no app {target:?} in this declaration"),
                if names.is_empty() {
                    "declare the management app as another [apps.NAME] table (grant = \"account_credentials\", `marketplace:` scopes)".to_string()
                } else {
                    format!("use one of: {}", names.join(", "))
                },
            );
            continue;
        };
        if other.get_ref().managed_by.is_some() {
            cx.err(
                m.span(),
                &field,
                "managed-by-chain",
                format!("{target:?} is itself managed by another app; connapp follows one step only"),
                format!("remove `managed_by` from [apps.{target}], or point this app at the final management app"),
            );
            continue;
        }
        // Only when both apps are valid: their platforms and scopes are known.
        let (Some(this), Some(mgr)) = (
            apps.iter().find(|a| &a.name == name),
            apps.iter().find(|a| &a.name == target),
        ) else {
            continue;
        };
        if this.platform != mgr.platform {
            cx.err(
                m.span(),
                &field,
                "managed-by-platform",
                format!(
                    "{target:?} is a {} app but {name:?} is a {} app",
                    mgr.platform, this.platform
                ),
                "name a management app on the same platform",
            );
        } else if this.platform == "zoom" && !mgr.scopes.iter().any(|s| s.scope.starts_with("marketplace:")) {
            cx.err(
                m.span(),
                &field,
                "managed-by-scopes",
                format!("the management app {target:?} requests no `marketplace:` scopes, so Zoom would refuse every Marketplace call"),
                format!(
                    "add to [apps.{target}] scopes = [\"marketplace:read:app:admin\", \"marketplace:write:app:admin\", \"marketplace:delete:app:admin\"]"
                ),
            );
        }
    }
}

fn check_store(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawStore>>, catalog: &Catalog) -> Option<StoreDecl> {
    let Some(raw) = raw else {
        cx.err(
            0..0,
            "store",
            "missing-field",
            "the declaration has no `[store]` table: connapp needs to know where to keep secrets",
            "add `[store]` with `kind = \"file\"` (encrypted file), or another installed store kind",
        );
        return None;
    };
    let kind = match &raw.get_ref().kind {
        None => {
            cx.err(
                raw.span(),
                "store.kind",
                "missing-field",
                "`store.kind` is missing",
                "add `kind = \"file\"`",
            );
            return None;
        }
        Some(k) => k,
    };
    if !catalog.store_kinds.is_empty() && !catalog.store_kinds.iter().any(|s| s == kind.get_ref()) {
        cx.err(
            kind.span(),
            "store.kind",
            "store-kind",
            format!("no installed plugin provides the store kind {:?}", kind.get_ref()),
            format!(
                "use one of: {} (see `connapp plugins list`)",
                catalog.store_kinds.join(", ")
            ),
        );
    }
    let mut settings = Vec::new();
    if let Some(s) = &raw.get_ref().settings {
        for (k, v) in s.get_ref() {
            let value = match v.get_ref() {
                SettingValue::String(s) => s.clone(),
                SettingValue::Integer(i) => i.to_string(),
                SettingValue::Bool(b) => b.to_string(),
            };
            settings.push((k.clone(), value));
        }
    }
    Some(StoreDecl {
        kind: kind.get_ref().clone(),
        settings,
    })
}

fn slug(name: &str) -> String {
    let mut s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "my-app".to_string()
    } else {
        s.chars().take(40).collect()
    }
}

fn valid_app_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 40
        && matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

/// Whether a ServiceNow instance name is valid: a DNS label, lower case.
pub fn valid_instance_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn check_app(cx: &mut Ctx<'_>, name: &str, app: &Spanned<RawApp>, catalog: &Catalog) -> Option<App> {
    let n = name;
    let f = |field: &str| format!("apps.{n}.{field}");
    let before = cx.diags.iter().filter(|d| d.severity == Severity::Error).count();
    if !valid_app_name(n) {
        cx.err(
            app.span(),
            &format!("apps.{n}"),
            "app-name",
            format!("the app name {n:?} is not allowed: it names the app in commands and store keys"),
            format!(
                "use 1-40 lower-case letters, digits and hyphens, starting with a letter, e.g. [apps.{}]",
                slug(n)
            ),
        );
    }
    let raw = app.get_ref();
    let app_span = app.span();

    // Display name.
    let display_name = match &raw.display_name {
        None => {
            cx.err(
                app_span.clone(),
                &f("display_name"),
                "missing-field",
                "`display_name` is missing: it is the name admins see on Zoom's consent page",
                "add e.g. `display_name = \"DEX for Zoom\"`",
            );
            String::new()
        }
        Some(d) => {
            let s = d.get_ref();
            let chars = s.chars().count();
            if s.trim().is_empty() {
                cx.err(
                    d.span(),
                    &f("display_name"),
                    "display-name-empty",
                    "the display name is empty",
                    "write a name such as \"DEX for Zoom\"",
                );
            } else if chars > MAX_DISPLAY_NAME_CHARS {
                let short: String = s.chars().take(MAX_DISPLAY_NAME_CHARS).collect();
                cx.err(
                    d.span(),
                    &f("display_name"),
                    "display-name-length",
                    format!("the display name has {chars} characters; Zoom requires fewer than 50"),
                    format!(
                        "shorten it to at most {MAX_DISPLAY_NAME_CHARS} characters, e.g. {:?}",
                        short.trim_end()
                    ),
                );
            }
            if s.chars().any(char::is_control) {
                cx.err(
                    d.span(),
                    &f("display_name"),
                    "display-name-characters",
                    "the display name contains control characters (tabs, line breaks, ...)",
                    "use printable characters only",
                );
            } else if s.trim() != s {
                cx.err(
                    d.span(),
                    &f("display_name"),
                    "display-name-characters",
                    "the display name starts or ends with whitespace",
                    format!("write {:?}", s.trim()),
                );
            }
            s.clone()
        }
    };

    // Platform.
    let platform = match &raw.platform {
        None => {
            cx.err(
                app_span.clone(),
                &f("platform"),
                "missing-field",
                "`platform` is missing",
                "add `platform = \"zoom\"`",
            );
            String::new()
        }
        Some(p) => {
            let known: Vec<&str> = if catalog.platforms.is_empty() {
                KNOWN_PLATFORMS.to_vec()
            } else {
                catalog.platforms.iter().map(String::as_str).collect()
            };
            if !known.contains(&p.get_ref().as_str()) {
                cx.err(
                    p.span(),
                    &f("platform"),
                    "platform-unknown",
                    format!("no installed plugin provides the platform {:?}", p.get_ref()),
                    format!("use one of: {}", known.join(", ")),
                );
            }
            p.get_ref().clone()
        }
    };
    let is_zoom = platform == "zoom";

    // How connapp gets tokens (decides whether a redirect URL is needed).
    let oauth = check_oauth(cx, n, raw.oauth.as_ref(), &platform, app_span.clone());
    let needs_redirect = oauth.as_ref().is_none_or(|o| o.grant != GrantKind::AccountCredentials);

    // Usage.
    let usage = match &raw.usage {
        None if !is_zoom => Some(Usage::UserManaged),
        None => {
            cx.err(
                app_span.clone(),
                &f("usage"),
                "missing-field",
                "`usage` is missing",
                "add `usage = \"admin-managed\"` (DEX for Zoom) or `usage = \"user-managed\"`",
            );
            None
        }
        Some(u) => match u.get_ref().as_str() {
            "admin-managed" => Some(Usage::AdminManaged),
            "user-managed" => Some(Usage::UserManaged),
            other => {
                let fix = match other.to_ascii_lowercase().as_str() {
                    "admin_management" | "admin" | "admin_managed" | "adminmanaged" => {
                        "write `usage = \"admin-managed\"`"
                    }
                    "user_operation" | "user" | "user_managed" | "usermanaged" => "write `usage = \"user-managed\"`",
                    _ => "write \"admin-managed\" or \"user-managed\"",
                };
                cx.err(u.span(), &f("usage"), "usage", format!("unknown usage {other:?}"), fix);
                None
            }
        },
    };

    // Target.
    let target = raw.target.as_ref().and_then(|t| check_target(cx, n, t));

    // Redirect URL.
    let redirect_url = match &raw.redirect_url {
        None if !needs_redirect => None,
        None => {
            let fix = match &target {
                Some(t) => format!("add `redirect_url = {:?}`", t.redirect_url()),
                None => "add `redirect_url = \"https://...\"`".to_string(),
            };
            cx.err(
                app_span.clone(),
                &f("redirect_url"),
                "missing-field",
                "`redirect_url` is missing",
                fix,
            );
            None
        }
        Some(r) => {
            let raw_url = r.get_ref();
            match check_url(raw_url) {
                Err(p) => {
                    cx.err(r.span(), &f("redirect_url"), p.rule, p.message, p.fix);
                    None
                }
                Ok(_) => {
                    if let Some(t) = &target {
                        let expected = t.redirect_url();
                        if raw_url != &expected {
                            cx.err(
                                r.span(),
                                &f("redirect_url"),
                                "redirect-servicenow",
                                format!(
                                    "the ServiceNow instance calls back to {expected:?}, but redirect_url is {raw_url:?}: {}",
                                    describe_difference(&expected, raw_url)
                                ),
                                format!("write `redirect_url = {expected:?}`"),
                            );
                        }
                    }
                    Some(raw_url.clone())
                }
            }
        }
    };

    // Allow list.
    let mut allow_list = Vec::new();
    match &raw.allow_list {
        None if !needs_redirect => {}
        None => cx.err(
            app_span.clone(),
            &f("allow_list"),
            "missing-field",
            "`allow_list` is missing: Zoom only redirects to URLs on the OAuth allow list",
            match &redirect_url {
                Some(r) => format!("add `allow_list = [{r:?}]`"),
                None => "add `allow_list = [\"https://...\"]` with the redirect URL in it".to_string(),
            },
        ),
        Some(list) if list.get_ref().is_empty() => cx.err(
            list.span(),
            &f("allow_list"),
            "allow-list-empty",
            "the allow list is empty: Zoom would refuse every redirect (error 4700)",
            match &redirect_url {
                Some(r) => format!("write `allow_list = [{r:?}]`"),
                None => "add the redirect URL to it".to_string(),
            },
        ),
        Some(list) => {
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (i, entry) in list.get_ref().iter().enumerate() {
                let field = format!("apps.{n}.allow_list[{i}]");
                let s = entry.get_ref();
                if let Some(first) = seen.insert(s.as_str(), i) {
                    cx.warn(
                        entry.span(),
                        &field,
                        "allow-list-duplicate",
                        format!("{s:?} is listed twice (also at allow_list[{first}])"),
                        "remove the duplicate",
                    );
                    continue;
                }
                match check_url(s) {
                    Err(p) => cx.err(entry.span(), &field, p.rule, p.message, p.fix),
                    Ok(url) => {
                        if let Some(Target::Servicenow { instance_url, .. }) = &target {
                            check_allow_entry_host(cx, &field, entry.span(), s, &url, instance_url);
                        }
                        allow_list.push(s.clone());
                    }
                }
            }
            if let Some(r) = &redirect_url
                && !list.get_ref().iter().any(|e| e.get_ref() == r)
            {
                let near = list
                    .get_ref()
                    .iter()
                    .map(|e| e.get_ref())
                    .find(|e| e.eq_ignore_ascii_case(r) || e.trim_end_matches('/') == r.trim_end_matches('/'));
                let message = match near {
                    Some(e) => format!(
                        "the redirect URL {r:?} is not in the allow list; the entry {e:?} is close but {}: Zoom would show \"Invalid redirect url\" (4700)",
                        describe_difference(r, e)
                    ),
                    None => format!(
                        "the redirect URL {r:?} is not in the allow list: Zoom would show \"Invalid redirect url\" (4700)"
                    ),
                };
                cx.err(
                    list.span(),
                    &f("allow_list"),
                    "allow-list-missing-redirect",
                    message,
                    format!("add {r:?} to allow_list exactly as written in redirect_url"),
                );
            }
        }
    }

    // connapp login's loopback redirect must be one Zoom accepts.
    if let (Some(o), Some(raw_o)) = (&oauth, raw.oauth.as_ref())
        && let (Some(lr), Some(span)) = (
            &o.login_redirect,
            raw_o.get_ref().login_redirect.as_ref().map(|s| s.span()),
        )
    {
        let ok = allow_list.iter().any(|e| e == lr || same_ignoring_port(e, lr));
        if !ok {
            cx.err(
                span,
                &f("oauth.login_redirect"),
                "login-redirect-allow-list",
                format!("the login redirect {lr:?} is not on the allow list, so Zoom would refuse it (4700)"),
                format!("add {lr:?} to allow_list (the port does not matter for loopback addresses)"),
            );
        }
    }

    let strict_mode = raw.strict_mode.as_ref().is_some_and(|s| *s.get_ref());
    let subdomain_check = raw.subdomain_check.as_ref().is_some_and(|s| *s.get_ref());

    // Scopes.
    let (presets, mut scopes) = check_scopes(cx, n, raw, app_span.clone(), &platform, is_zoom, usage, catalog);
    check_optional_scopes(cx, n, raw, &mut scopes);

    // Provider app id, management app (checked against the other apps later), webhook.
    let app_id = raw.app_id.as_ref().and_then(|id| {
        let v = id.get_ref();
        if v.is_empty() || v.len() > 64 || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            cx.err(
                id.span(),
                &f("app_id"),
                "app-id",
                format!("{v:?} is not an app id: Zoom's are 20-30 letters and digits"),
                "copy the app id from the app's Marketplace URL, or remove `app_id` and let `connapp apply` create the app",
            );
            return None;
        }
        Some(v.clone())
    });
    let managed_by = raw.managed_by.as_ref().map(|m| m.get_ref().clone());
    let webhook = raw.webhook.as_ref().and_then(|w| check_webhook(cx, n, w));

    let after = cx.diags.iter().filter(|d| d.severity == Severity::Error).count();
    if after > before {
        return None;
    }
    Some(App {
        name: n.to_string(),
        display_name,
        platform,
        usage: usage?,
        redirect_url,
        allow_list,
        strict_mode,
        subdomain_check,
        presets,
        scopes,
        target,
        oauth: oauth?,
        app_id,
        managed_by,
        webhook,
    })
}

/// Zoom's event names: `product.event` in lower case, e.g. `meeting.ended`,
/// `endpoint.url_validation`, `app_deauthorized`.
fn valid_event_name(e: &str) -> bool {
    !e.is_empty()
        && e.len() <= 100
        && e.starts_with(|c: char| c.is_ascii_lowercase())
        && e.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_')
        && !e.ends_with('.')
        && !e.contains("..")
}

/// Zoom allows at most 20 event subscriptions per app (docs/zoom-platform.md §16).
const MAX_EVENTS: usize = 20;

fn check_webhook(cx: &mut Ctx<'_>, app: &str, w: &Spanned<RawWebhook>) -> Option<Webhook> {
    let f = |field: &str| format!("apps.{app}.webhook.{field}");
    let raw = w.get_ref();
    let before = cx.diags.len();
    let endpoint_url = match &raw.endpoint_url {
        None => {
            cx.err(
                w.span(),
                &f("endpoint_url"),
                "missing-field",
                "`webhook.endpoint_url` is missing: Zoom needs to know where to send events",
                "add e.g. `endpoint_url = \"https://hooks.example.com/zoom\"`, or remove [webhook]",
            );
            String::new()
        }
        Some(u) => {
            let s = u.get_ref();
            // https, or http on loopback (a local receiver such as `connapp webhook serve`).
            if let Err(p) = check_url(s) {
                cx.err(u.span(), &f("endpoint_url"), p.rule, p.message, p.fix);
            }
            s.clone()
        }
    };
    let mut events = Vec::new();
    match &raw.events {
        None => cx.err(
            w.span(),
            &f("events"),
            "missing-field",
            "`webhook.events` is missing",
            "add the events to receive, e.g. `events = [\"meeting.ended\"]`",
        ),
        Some(list) if list.get_ref().is_empty() => cx.err(
            list.span(),
            &f("events"),
            "webhook-events-empty",
            "the webhook subscribes to no events",
            "add the events to receive, e.g. `events = [\"meeting.ended\"]`, or remove [webhook]",
        ),
        Some(list) => {
            if list.get_ref().len() > MAX_EVENTS {
                cx.err(
                    list.span(),
                    &f("events"),
                    "webhook-events-count",
                    format!(
                        "{} events; Zoom allows at most {MAX_EVENTS} per app",
                        list.get_ref().len()
                    ),
                    "drop the events nobody consumes",
                );
            }
            for (i, e) in list.get_ref().iter().enumerate() {
                let name = e.get_ref();
                if !valid_event_name(name) {
                    cx.err(
                        e.span(),
                        &format!("apps.{app}.webhook.events[{i}]"),
                        "webhook-event-name",
                        format!("{name:?} is not a Zoom event name"),
                        "write it as Zoom's event reference does, lower case with dots, e.g. \"meeting.ended\"",
                    );
                } else if events.contains(name) {
                    cx.err(
                        e.span(),
                        &format!("apps.{app}.webhook.events[{i}]"),
                        "webhook-event-duplicate",
                        format!("the event {name:?} is listed twice"),
                        "remove the duplicate",
                    );
                } else {
                    events.push(name.clone());
                }
            }
        }
    }
    if cx.diags.len() > before {
        return None;
    }
    Some(Webhook { endpoint_url, events })
}

fn check_optional_scopes(cx: &mut Ctx<'_>, app: &str, raw: &RawApp, scopes: &mut [Scope]) {
    let Some(list) = &raw.optional_scopes else { return };
    for (i, s) in list.get_ref().iter().enumerate() {
        let name = s.get_ref();
        match scopes.iter_mut().find(|x| &x.scope == name) {
            Some(x) if x.optional => cx.err(
                s.span(),
                &format!("apps.{app}.optional_scopes[{i}]"),
                "scope-duplicate",
                format!("{name:?} is listed twice in optional_scopes"),
                "remove the duplicate",
            ),
            Some(x) => x.optional = true,
            None => cx.err(
                s.span(),
                &format!("apps.{app}.optional_scopes[{i}]"),
                "optional-scope-unknown",
                format!("{name:?} is marked optional but the app does not request it"),
                "list it in `scopes` (or a preset) too, or remove it from optional_scopes",
            ),
        }
    }
    if !scopes.is_empty() && scopes.iter().all(|s| s.optional) {
        cx.err(
            list.span(),
            &format!("apps.{app}.optional_scopes"),
            "optional-scope-all",
            "every scope is optional; Zoom requires at least one required scope",
            "remove at least one scope from optional_scopes",
        );
    }
}

fn same_ignoring_port(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(x), Ok(y)) => {
            urls::is_loopback(&x)
                && x.scheme() == y.scheme()
                && x.host_str() == y.host_str()
                && x.path() == y.path()
                && x.query() == y.query()
        }
        _ => false,
    }
}

/// Authorize parameters connapp sets itself, or that would put a secret in
/// a URL the browser shows and logs: never from the declaration.
const RESERVED_AUTHORIZE_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "client_secret",
    "redirect_uri",
    "state",
    "scope",
    "code",
    "code_challenge",
    "code_challenge_method",
    "code_verifier",
    "grant_type",
    "refresh_token",
    "access_token",
    "password",
    "assertion",
    "client_assertion",
    "client_assertion_type",
];

/// Extra authorize parameters (`prompt`, `access_type`, `audience`,
/// `resource`, ...): RFC 6749 parameter names, printable values.
fn check_authorize_params(cx: &mut Ctx<'_>, field: &str, params: &BTreeMap<String, Spanned<String>>, o: &mut OAuth) {
    for (name, value) in params {
        let at = format!("{field}.{name}");
        let lower = name.to_ascii_lowercase();
        if RESERVED_AUTHORIZE_PARAMS.contains(&lower.as_str()) || lower.contains("secret") {
            let fix = if lower == "scope" {
                "declare scopes in the app's `scopes` list (e.g. \"offline_access\"); connapp sends them"
            } else {
                "remove it: connapp sets this parameter itself, or it would put a secret into the authorize URL"
            };
            cx.err(
                value.span(),
                &at,
                "oauth-authorize-param",
                format!("{name:?} cannot be an extra authorize parameter"),
                fix,
            );
            continue;
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            cx.err(
                value.span(),
                &at,
                "oauth-authorize-param",
                format!("{name:?} is not a parameter name (letters, digits, `_`, `-`, `.`)"),
                "use the name the provider documents, e.g. prompt, access_type, audience, resource",
            );
            continue;
        }
        let v = value.get_ref();
        if v.chars().any(char::is_control) || v.len() > 2048 {
            cx.err(
                value.span(),
                &at,
                "oauth-authorize-param",
                "the value has control characters or is longer than 2048 bytes",
                "use the value the provider documents (it is URL-encoded by connapp)",
            );
            continue;
        }
        o.authorize_params.push((name.clone(), v.clone()));
    }
}

fn check_oauth(
    cx: &mut Ctx<'_>,
    app: &str,
    raw: Option<&Spanned<RawOAuth>>,
    platform: &str,
    app_span: Range<usize>,
) -> Option<OAuth> {
    let f = |field: &str| format!("apps.{app}.oauth.{field}");
    let mut o = OAuth::default();
    let Some(raw) = raw else {
        if platform == "generic" {
            cx.err(
                app_span,
                &f("token_url"),
                "missing-field",
                "a generic OAuth 2.0 app needs its endpoints",
                "add [apps.NAME.oauth] with token_url (and authorize_url for logins)",
            );
            return None;
        }
        return Some(o);
    };
    let r = raw.get_ref();
    let before = cx.diags.iter().filter(|d| d.severity == Severity::Error).count();
    if let Some(g) = &r.grant {
        o.grant = match g.get_ref().as_str() {
            "authorization_code" => GrantKind::AuthorizationCode,
            "account_credentials" => GrantKind::AccountCredentials,
            "client_credentials" => GrantKind::ClientCredentials,
            other => {
                cx.err(
                    g.span(),
                    &f("grant"),
                    "oauth-grant",
                    format!("unknown grant {other:?}"),
                    "use authorization_code, account_credentials (Zoom server-to-server) or client_credentials",
                );
                GrantKind::AuthorizationCode
            }
        };
    }
    let url_field = |cx: &mut Ctx<'_>, v: &Option<Spanned<String>>, name: &str| -> Option<String> {
        let s = v.as_ref()?;
        match check_url(s.get_ref()) {
            Ok(_) => Some(s.get_ref().clone()),
            Err(p) => {
                cx.err(s.span(), &f(name), p.rule, p.message, p.fix);
                None
            }
        }
    };
    o.oauth_base = url_field(cx, &r.oauth_base, "oauth_base");
    o.api_base = url_field(cx, &r.api_base, "api_base");
    o.authorize_url = url_field(cx, &r.authorize_url, "authorize_url");
    o.token_url = url_field(cx, &r.token_url, "token_url");
    o.revoke_url = url_field(cx, &r.revoke_url, "revoke_url");
    if let Some(lr) = &r.login_redirect {
        match check_url(lr.get_ref()) {
            Ok(u) if urls::is_loopback(&u) && u.scheme() == "http" => o.login_redirect = Some(lr.get_ref().clone()),
            Ok(_) => cx.err(
                lr.span(),
                &f("login_redirect"),
                "login-redirect-loopback",
                format!(
                    "{:?} is not a loopback address; connapp login listens on this machine",
                    lr.get_ref()
                ),
                "use e.g. \"http://127.0.0.1/callback\" (and add it to allow_list)",
            ),
            Err(p) => cx.err(lr.span(), &f("login_redirect"), p.rule, p.message, p.fix),
        }
    }
    if let Some(ca) = &r.client_auth {
        o.client_auth = match ca.get_ref().as_str() {
            "basic" => Some(ClientAuthStyle::Basic),
            "body" => Some(ClientAuthStyle::Body),
            other => {
                cx.err(
                    ca.span(),
                    &f("client_auth"),
                    "oauth-client-auth",
                    format!("unknown client_auth {other:?}"),
                    "use \"basic\" or \"body\"",
                );
                None
            }
        };
    }
    if let Some(p) = &r.pkce {
        o.pkce = *p.get_ref();
    }
    if let Some(params) = &r.authorize_params {
        check_authorize_params(cx, &f("authorize_params"), params.get_ref(), &mut o);
    }
    if let Some(a) = &r.account_id {
        let v = a.get_ref();
        if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            cx.err(
                a.span(),
                &f("account_id"),
                "oauth-account-id",
                "the account id is empty or has whitespace",
                "copy the Account ID from the app's page in the Zoom Marketplace",
            );
        } else {
            o.account_id = Some(v.clone());
        }
    }
    if o.grant == GrantKind::AccountCredentials {
        if platform != "zoom" {
            cx.err(
                raw.span(),
                &f("grant"),
                "oauth-grant",
                "account_credentials is Zoom's server-to-server grant",
                "use client_credentials for other providers",
            );
        }
        if o.account_id.is_none() && r.account_id.is_none() {
            cx.err(
                raw.span(),
                &f("account_id"),
                "missing-field",
                "account_credentials needs the Zoom account id",
                "add `account_id = \"...\"` (from the app's page in the Zoom Marketplace)",
            );
        }
    }
    if platform == "generic" {
        if o.token_url.is_none() && r.token_url.is_none() {
            cx.err(
                raw.span(),
                &f("token_url"),
                "missing-field",
                "a generic OAuth 2.0 app needs token_url",
                "add `token_url = \"https://provider.example/oauth/token\"`",
            );
        }
        if o.grant == GrantKind::AuthorizationCode && o.authorize_url.is_none() && r.authorize_url.is_none() {
            cx.err(
                raw.span(),
                &f("authorize_url"),
                "missing-field",
                "logging in needs authorize_url",
                "add `authorize_url = \"https://provider.example/oauth/authorize\"`",
            );
        }
    }
    let after = cx.diags.iter().filter(|d| d.severity == Severity::Error).count();
    (after == before).then_some(o)
}

fn check_allow_entry_host(
    cx: &mut Ctx<'_>,
    field: &str,
    span: Range<usize>,
    raw: &str,
    url: &url::Url,
    instance_url: &str,
) {
    if urls::is_loopback(url) {
        return;
    }
    let instance_host = url::Url::parse(instance_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let host = url.host_str().unwrap_or("");
    if host == instance_host {
        return;
    }
    if raw.contains(&instance_host) {
        cx.err(
            span,
            field,
            "allow-list-look-alike",
            format!(
                "{raw:?} mentions the instance {instance_host:?} but its host is {host:?}: a look-alike that would send authorization codes elsewhere"
            ),
            format!("allow only the instance itself: {:?}", servicenow_redirect(instance_url)),
        );
    } else {
        cx.warn(
            span,
            field,
            "allow-list-foreign-host",
            format!(
                "{raw:?} is on {host:?}, which is neither the ServiceNow instance nor a loopback address; whoever runs it can receive authorization codes"
            ),
            "remove it unless you control that host",
        );
    }
}

fn check_target(cx: &mut Ctx<'_>, app: &str, t: &Spanned<RawTarget>) -> Option<Target> {
    let raw = t.get_ref();
    let f = |field: &str| format!("apps.{app}.target.{field}");
    let mut settings = ServicenowSettings::default();
    if let Some(a) = &raw.auth {
        match a.get_ref().as_str() {
            "basic" => settings.auth = InstanceAuth::Basic,
            "oauth" => settings.auth = InstanceAuth::Oauth,
            other => cx.err(
                a.span(),
                &f("auth"),
                "target-auth",
                format!("{other:?} is not a way to sign in to ServiceNow"),
                "write `auth = \"basic\"` (instance-user / instance-password) or `auth = \"oauth\"` (client credentials)",
            ),
        }
    }
    if let Some(a) = &raw.alias {
        let id = a.get_ref();
        let ok = !id.is_empty()
            && id.split('.').count() <= 2
            && id
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        if ok {
            settings.alias = Some(id.clone());
        } else {
            cx.err(
                a.span(),
                &f("alias"),
                "target-alias",
                format!("{id:?} is not a connection & credential alias ID"),
                "write the alias ID as ServiceNow shows it: SCOPE.NAME (letters, digits, underscores), e.g. \"sn_zoom_spoke.Zoom\"",
            );
        }
    }
    for (field, value, slot) in [
        ("entity_name", &raw.entity_name, &mut settings.entity_name),
        ("connection_name", &raw.connection_name, &mut settings.connection_name),
    ] {
        if let Some(v) = value {
            let name = v.get_ref();
            if name.trim().is_empty() || name.len() > 80 || name.chars().any(char::is_control) {
                cx.err(
                    v.span(),
                    &f(field),
                    "target-name",
                    format!("{name:?} is not a usable record name"),
                    "use 1-80 printable characters",
                );
            } else {
                *slot = Some(name.clone());
            }
        }
    }
    match &raw.kind {
        None => {
            cx.err(
                t.span(),
                &f("kind"),
                "missing-field",
                "`target.kind` is missing",
                "add `kind = \"servicenow\"`",
            );
            return None;
        }
        Some(k) if k.get_ref() != "servicenow" => {
            cx.err(
                k.span(),
                &f("kind"),
                "target-kind",
                format!("unknown target kind {:?}", k.get_ref()),
                "use `kind = \"servicenow\"`",
            );
            return None;
        }
        Some(_) => {}
    }
    match (&raw.instance, &raw.instance_url) {
        (Some(_), Some(u)) => {
            cx.err(
                u.span(),
                &f("instance_url"),
                "target-instance",
                "both `instance` and `instance_url` are set",
                "keep `instance` for *.service-now.com instances, `instance_url` only for custom domains",
            );
            None
        }
        (None, None) => {
            cx.err(
                t.span(),
                &f("instance"),
                "missing-field",
                "the ServiceNow target names no instance",
                "add `instance = \"acme\"` (for https://acme.service-now.com)",
            );
            None
        }
        (Some(i), None) => {
            let name = i.get_ref();
            if valid_instance_name(name) {
                if name.contains('-') {
                    cx.warn(
                        i.span(),
                        &f("instance"),
                        "target-instance-hyphen",
                        format!("the instance name {name:?} contains a hyphen; ServiceNow instance names rarely do"),
                        "check the name against the instance's URL",
                    );
                }
                return Some(Target::Servicenow {
                    instance_url: servicenow_instance_url(name),
                    instance: Some(name.clone()),
                    settings,
                });
            }
            let fix = if let Some(host) = name
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .strip_suffix(".service-now.com")
                .or_else(|| {
                    name.trim_start_matches("https://")
                        .trim_start_matches("http://")
                        .strip_suffix(".service-now.com/")
                }) {
                format!("write only the instance name: `instance = {host:?}`")
            } else if valid_instance_name(&name.to_ascii_lowercase()) {
                format!("write it in lower case: `instance = {:?}`", name.to_ascii_lowercase())
            } else {
                "write the name from https://NAME.service-now.com (letters, digits, hyphens), or use `instance_url` for a custom domain".to_string()
            };
            cx.err(
                i.span(),
                &f("instance"),
                "target-instance",
                format!("{name:?} is not a valid ServiceNow instance name"),
                fix,
            );
            None
        }
        (None, Some(u)) => {
            let s = u.get_ref();
            match check_url(s) {
                Err(p) => {
                    cx.err(u.span(), &f("instance_url"), p.rule, p.message, p.fix);
                    None
                }
                Ok(url) if url.path() != "/" || url.query().is_some() => {
                    cx.err(
                        u.span(),
                        &f("instance_url"),
                        "target-instance-url",
                        format!("the instance URL {s:?} has a path or query"),
                        format!("write only the base URL: {:?}", url.origin().ascii_serialization()),
                    );
                    None
                }
                Ok(url) => Some(Target::Servicenow {
                    instance_url: url.origin().ascii_serialization(),
                    instance: None,
                    settings,
                }),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_scopes(
    cx: &mut Ctx<'_>,
    app: &str,
    raw: &RawApp,
    app_span: Range<usize>,
    platform: &str,
    is_zoom: bool,
    usage: Option<Usage>,
    catalog: &Catalog,
) -> (Vec<String>, Vec<Scope>) {
    let f = |field: &str| format!("apps.{app}.{field}");
    let mut presets = Vec::new();
    let mut scopes: Vec<Scope> = Vec::new();
    // scope -> where it was first declared, for duplicate messages
    let mut seen: HashMap<String, String> = HashMap::new();

    if let Some(list) = &raw.presets {
        for (i, p) in list.get_ref().iter().enumerate() {
            let field = format!("apps.{app}.presets[{i}]");
            let name = p.get_ref();
            let Some(preset) = catalog.presets.iter().find(|x| &x.name == name) else {
                let known: Vec<&str> = catalog.presets.iter().map(|x| x.name.as_str()).collect();
                cx.err(
                    p.span(),
                    &field,
                    "preset-unknown",
                    format!("no installed plugin provides the preset {name:?}"),
                    if known.is_empty() {
                        "no presets are installed; list the scopes in `scopes` instead".to_string()
                    } else {
                        format!("use one of: {}", known.join(", "))
                    },
                );
                continue;
            };
            if !platform.is_empty() && preset.platform != platform {
                cx.err(
                    p.span(),
                    &field,
                    "preset-platform",
                    format!(
                        "the preset {name:?} is for {:?}, but this app's platform is {platform:?}",
                        preset.platform
                    ),
                    "use a preset for this platform, or change `platform`",
                );
                continue;
            }
            if presets.contains(name) {
                cx.err(
                    p.span(),
                    &field,
                    "preset-duplicate",
                    format!("the preset {name:?} is listed twice"),
                    "remove the duplicate",
                );
                continue;
            }
            presets.push(name.clone());
            for s in &preset.scopes {
                if let Some(prev) = seen.get(s) {
                    cx.err(
                        p.span(),
                        &field,
                        "scope-duplicate",
                        format!("the scope {s:?} of preset {name:?} is already requested by {prev}"),
                        "remove one of the presets, or drop the duplicate from `scopes`",
                    );
                    continue;
                }
                seen.insert(s.clone(), format!("preset {name:?}"));
                scopes.push(Scope {
                    scope: s.clone(),
                    source: ScopeSource::Preset(name.clone()),
                    optional: false,
                });
            }
        }
    }

    if let Some(list) = &raw.scopes {
        for (i, s) in list.get_ref().iter().enumerate() {
            let field = format!("apps.{app}.scopes[{i}]");
            let scope = s.get_ref();
            if let Some(prev) = seen.get(scope) {
                cx.err(
                    s.span(),
                    &field,
                    "scope-duplicate",
                    format!("the scope {scope:?} is already requested by {prev}"),
                    "remove this entry",
                );
                continue;
            }
            if !check_one_scope(cx, &field, s.span(), scope, is_zoom, usage) {
                continue;
            }
            seen.insert(scope.clone(), format!("scopes[{i}]"));
            scopes.push(Scope {
                scope: scope.clone(),
                source: ScopeSource::Explicit,
                optional: false,
            });
        }
    }

    // Preset scopes go through the same level rules as explicit ones.
    if is_zoom && usage == Some(Usage::UserManaged) {
        for s in scopes.iter().filter(|s| matches!(s.source, ScopeSource::Preset(_))) {
            if let Ok(z) = scope::parse_zoom_scope(&s.scope)
                && z.level != ScopeLevel::User
                && let ScopeSource::Preset(p) = &s.source
            {
                let span = raw.usage.as_ref().map_or(app_span.clone(), |u| u.span());
                cx.err(
                    span,
                    &f("usage"),
                    "scope-admin-usage",
                    format!(
                        "the preset {p:?} requests {:?}, an account-level scope, but usage = \"user-managed\"; Zoom refuses: \"{} is not a valid scope name when usage is USER_OPERATION\"",
                        s.scope, s.scope
                    ),
                    "set `usage = \"admin-managed\"`",
                );
                break;
            }
        }
    }

    if scopes.is_empty()
        && !cx
            .diags
            .iter()
            .any(|d| d.rule == "preset-unknown" && d.field.starts_with(&f("presets")))
    {
        let span = raw
            .scopes
            .as_ref()
            .map(|s| s.span())
            .or(raw.presets.as_ref().map(|p| p.span()))
            .unwrap_or(app_span);
        cx.err(
            span,
            &f("scopes"),
            "scope-empty",
            "the app requests no scopes",
            "add `presets = [\"servicenow-dex-zoom\"]` or list scopes in `scopes`",
        );
    }
    (presets, scopes)
}

fn check_one_scope(
    cx: &mut Ctx<'_>,
    field: &str,
    span: Range<usize>,
    scope: &str,
    is_zoom: bool,
    usage: Option<Usage>,
) -> bool {
    if !is_zoom {
        if !scope::is_rfc6749_scope_token(scope) {
            cx.err(
                span,
                field,
                "scope-grammar",
                format!("{scope:?} is not a valid OAuth scope token (no spaces, quotes or backslashes)"),
                "write one scope per array entry",
            );
            return false;
        }
        return true;
    }
    match scope::parse_zoom_scope(scope) {
        Err(ScopeProblem::Empty) => {
            cx.err(
                span,
                field,
                "scope-grammar",
                "the scope is empty",
                "remove the empty entry",
            );
            false
        }
        Err(ScopeProblem::UpperCase) => {
            cx.err(
                span,
                field,
                "scope-grammar",
                format!("{scope:?} has upper-case letters; Zoom scopes are lower case"),
                format!("write {:?}", scope.to_ascii_lowercase()),
            );
            false
        }
        Err(ScopeProblem::BadCharacters) => {
            let fix = if scope.contains([' ', ',']) {
                "write one scope per array entry: [\"a:read:b:admin\", \"c:read:d:admin\"]".to_string()
            } else {
                "use only lower-case letters, digits, `_` and `:`".to_string()
            };
            cx.err(
                span,
                field,
                "scope-grammar",
                format!("{scope:?} is not a Zoom scope: <product>:<action>:<resource>[:admin|:master]"),
                fix,
            );
            false
        }
        Err(ScopeProblem::Classic) => {
            cx.warn(
                span,
                field,
                "scope-classic",
                format!("{scope:?} is a classic scope; new General apps use granular scopes"),
                "use the granular equivalent (see Zoom's granular scopes table)",
            );
            true
        }
        Err(ScopeProblem::Shape(why)) => {
            let fix = match scope::suggest(scope, scope::ZOOM_KNOWN_SCOPES) {
                Some(s) => format!("did you mean {s:?}?"),
                None => {
                    "write <product>:<action>:<resource>[:admin|:master], e.g. \"user:read:user:admin\"".to_string()
                }
            };
            cx.err(
                span,
                field,
                "scope-grammar",
                format!("{scope:?} does not follow Zoom's granular scope grammar: {why}"),
                fix,
            );
            false
        }
        Ok(z) => {
            match (z.level, usage) {
                (ScopeLevel::Admin | ScopeLevel::Master, Some(Usage::UserManaged)) => {
                    let user_level = scope.rsplit_once(':').map_or(scope, |(a, _)| a);
                    cx.err(
                        span.clone(),
                        field,
                        "scope-admin-usage",
                        format!(
                            "{scope:?} is an account-level scope but the app is user-managed; Zoom refuses: \"{scope} is not a valid scope name when usage is USER_OPERATION\""
                        ),
                        format!("set `usage = \"admin-managed\"`, or request the user-level scope {user_level:?}"),
                    );
                    return false;
                }
                (ScopeLevel::User, Some(Usage::AdminManaged)) => {
                    cx.warn(
                        span.clone(),
                        field,
                        "scope-level-mix",
                        format!("{scope:?} is a user-level scope in an admin-managed app; Zoom does not let apps mix user and admin levels"),
                        format!("request {:?} instead", format!("{scope}:admin")),
                    );
                }
                (ScopeLevel::Master, _) => {
                    cx.warn(
                        span.clone(),
                        field,
                        "scope-master",
                        format!("{scope:?} is a master-account scope; only master account owners can grant it"),
                        format!(
                            "use {:?} unless this is a master account",
                            scope.replace(":master", ":admin")
                        ),
                    );
                }
                _ => {}
            }
            if !scope::ZOOM_KNOWN_SCOPES.contains(&scope) {
                let fix = match scope::suggest(scope, scope::ZOOM_KNOWN_SCOPES) {
                    Some(s) => format!("did you mean {s:?}? If not, check the name in Zoom's granular scopes table"),
                    None => "check the name in Zoom's granular scopes table".to_string(),
                };
                cx.warn(
                    span,
                    field,
                    "scope-unknown",
                    format!("{scope:?} is not a Zoom scope connapp knows"),
                    fix,
                );
            }
            true
        }
    }
}
