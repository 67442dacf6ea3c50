//! Parsing and validating `connapp.toml`: the raw shapes serde reads, the
//! checks that locate every problem, and the model they produce. One module
//! per section of an app (`app`, `oauth`, `scopes`, `target`, `webhook`);
//! the declaration as a whole (version, store, `managed_by`) is checked here.

mod app;
mod fleet;
mod oauth;
mod scopes;
mod store;
mod target;
mod webhook;

use app::*;
pub use fleet::{Inventory, MAX_INVENTORY_BYTES, ROW_REPORTS, inventory_path};
use oauth::*;
use scopes::*;
pub use store::{SettingKind, SettingRule, StoreRules};
use target::*;
use webhook::*;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::consumer::{ConsumerRules, InstanceAuth, Target};
use crate::diag::{Diagnostic, Severity, SourceMap};
use crate::model::{
    App, ClientAuthStyle, Declaration, GrantKind, OAuth, Scope, ScopeSource, StoreDecl, Usage, Webhook,
};
use crate::scope;
use crate::urls::{self, check_url, describe_difference};

/// The largest declaration connapp reads, in bytes.
pub const MAX_DECLARATION_BYTES: usize = 256 * 1024;

/// The declaration format version this build understands.
pub const DECLARATION_VERSION: i64 = 1;

/// What validation needs to know that only plugins can tell.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Presets that are installed.
    pub presets: Vec<PresetInfo>,
    /// Store kinds that are installed; empty = don't check.
    pub store_kinds: Vec<String>,
    /// The provider platforms the installed plugins provide, with their
    /// rules (core knows none of its own); an app naming another is an error.
    pub platforms: Vec<PlatformRules>,
    /// The consumer platforms (target kinds) the installed plugins provide,
    /// with their rules; a target of another kind is an error.
    pub consumers: Vec<ConsumerRules>,
    /// The settings of the store kinds whose plugins describe them; a store
    /// kind not listed here has its settings judged when it opens.
    pub stores: Vec<StoreRules>,
}

impl Catalog {
    /// The rules of `platform`, if a plugin provides it.
    pub fn platform(&self, platform: &str) -> Option<&PlatformRules> {
        self.platforms.iter().find(|p| p.name == platform)
    }

    /// The rules of the consumer platform `kind`, if a plugin provides it.
    pub fn consumer(&self, kind: &str) -> Option<&ConsumerRules> {
        self.consumers.iter().find(|c| c.name == kind)
    }
}

/// Where a user copies an app's ids from when the platform does not say.
pub const DEFAULT_CREDENTIALS_SOURCE: &str = "the app's page at the provider";

/// What the core's generic rules need to know of a platform (from its
/// plugin's platform description and profile).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformRules {
    /// The platform's name (`platform = "..."`).
    pub name: String,
    /// Its name in messages; empty: [`PlatformRules::name`].
    pub display: String,
    /// Where a user copies an app's ids from, for fixes; empty: [`DEFAULT_CREDENTIALS_SOURCE`].
    pub credentials_source: String,
    /// Apps must say whether they are admin- or user-managed (`usage`).
    pub requires_usage: bool,
    /// The platform offers `account_credentials`, a grant without a user for an account id.
    pub account_grant: bool,
    /// The endpoints come from the declaration (`authorize_url`, `token_url`).
    pub endpoints_from_declaration: bool,
    /// A management app (`managed_by`) must request a scope starting with
    /// this; empty: no such rule.
    pub management_scope_prefix: String,
    /// The longest display name the platform takes, in characters; 0: no limit.
    pub display_name_max_chars: u32,
}

impl PlatformRules {
    /// A platform with no rules beyond RFC 6749's.
    pub fn named(name: &str) -> Self {
        PlatformRules {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Its name in messages.
    pub fn display(&self) -> &str {
        crate::consumer::shown(&self.display, &self.name)
    }

    /// Where a user copies an app's ids from.
    pub fn credentials_source(&self) -> &str {
        if self.credentials_source.is_empty() {
            DEFAULT_CREDENTIALS_SOURCE
        } else {
            &self.credentials_source
        }
    }
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
    fleet: Option<Spanned<fleet::RawFleet>>,
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
    client_secret_max_age_days: Option<Spanned<i64>>,
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

const TOP_FIELDS: &[&str] = &["version", "store", "apps", "fleet"];
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
    "client_secret_max_age_days",
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
/// contents. Pure: no IO. A declaration with a `[fleet]` inventory file
/// needs [`check_with`] (here the inventory is reported as not read).
pub fn check(file: &str, text: &str, catalog: &Catalog) -> Report {
    check_with(file, text, Inventory::NotRead, catalog)
}

/// Checks a declaration and the fleet inventory it names in
/// `fleet.inventory` ([`inventory_path`]), read by the caller. Pure: no IO.
pub fn check_with(file: &str, text: &str, inventory: Inventory<'_>, catalog: &Catalog) -> Report {
    let mut cx = Ctx {
        map: SourceMap::new(file, text),
        diags: Vec::new(),
    };
    let declaration = check_inner(&mut cx, text, inventory, catalog);
    let mut diagnostics = cx.diags;
    // The declaration's own problems first, then the inventory's, each in file order.
    diagnostics
        .sort_by(|a, b| (a.file != file, &a.file, a.line, a.column).cmp(&(b.file != file, &b.file, b.line, b.column)));
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
        ["apps", _, "oauth"] => OAUTH_FIELDS,
        ["apps", _, "webhook"] => WEBHOOK_FIELDS,
        ["fleet"] => fleet::FLEET_FIELDS,
        ["fleet", "apps", _] => APP_FIELDS,
        ["fleet", "apps", _, "oauth"] => OAUTH_FIELDS,
        ["fleet", "apps", _, "webhook"] => WEBHOOK_FIELDS,
        _ => &[],
    }
}

/// The name among `known` closest to a misspelt `name` (at most three edits
/// away), for "did you mean" hints.
pub fn nearest<'k>(name: &str, known: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(name, k), k))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The fix for an unknown field `name` where `expected` are allowed: the
/// nearest allowed name, if one is close.
fn unknown_field_fix(name: &str, expected: &[&str]) -> String {
    match nearest(name, expected.iter().copied()) {
        Some(s) => format!("did you mean `{s}`? Allowed here: {}", expected.join(", ")),
        None if !expected.is_empty() => format!("remove it; allowed here: {}", expected.join(", ")),
        None => "remove it".to_string(),
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
        let fix = unknown_field_fix(name, expected);
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

fn check_inner(cx: &mut Ctx<'_>, text: &str, inventory: Inventory<'_>, catalog: &Catalog) -> Option<Declaration> {
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
            "run `connapp init` to write one",
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

    if raw.version.is_none() && raw.store.is_none() && raw.apps.is_none() && raw.fleet.is_none() {
        cx.err(
            0..0,
            "(document)",
            "file-empty",
            "the declaration declares nothing (only comments or whitespace)",
            "run `connapp init` to write one",
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
    let has_fleet = raw.fleet.is_some();
    match &raw.apps {
        None if !has_fleet => cx.err(
            0..0,
            "apps",
            "no-apps",
            "the declaration has no apps",
            "add an app table, e.g. `[apps.NAME]`, or run `connapp init`",
        ),
        Some(map) if map.get_ref().is_empty() && !has_fleet => cx.err(
            map.span(),
            "apps",
            "no-apps",
            "the declaration has no apps",
            "add an app table, e.g. `[apps.NAME]`",
        ),
        _ => {}
    }
    let empty = BTreeMap::new();
    let declared = raw.apps.as_ref().map_or(&empty, |m| m.get_ref());
    let mut all: BTreeMap<&str, &Spanned<RawApp>> = BTreeMap::new();
    for (name, app) in declared {
        if let Some(a) = check_app(cx, name, app, catalog) {
            apps.push(a);
        }
        all.insert(name, app);
    }
    let from = cx.diags.len();
    let store_rules = store
        .as_ref()
        .and_then(|s| catalog.stores.iter().find(|r| r.kind == s.kind));
    let expansion = raw
        .fleet
        .as_ref()
        .and_then(|f| fleet::expand(cx, f, inventory, store_rules));
    let mut fleet = None;
    if let Some(x) = &expansion {
        let skip = x.check_names(cx, declared);
        for (i, e) in x.expanded.iter().enumerate() {
            for (name, app, _) in &e.apps {
                if skip.contains(&(i, name.clone())) {
                    continue;
                }
                if let Some(a) = check_app(cx, name, app, catalog) {
                    apps.push(a);
                }
                all.insert(name, app);
            }
        }
        fleet = Some(x.fleet());
    }
    check_managed_by(cx, &all, &apps, catalog);
    if let Some(x) = &expansion {
        x.relocate(cx, from);
    }
    Some(Declaration {
        version,
        store: store?,
        apps: by_name(apps),
        fleet,
    })
}

/// `apps` in order of their names. The order is found on the names alone
/// and each app then moved once: sorting the apps themselves moves large
/// values many times (a fleet has tens of thousands).
fn by_name(apps: Vec<App>) -> Vec<App> {
    let mut order: Vec<usize> = (0..apps.len()).collect();
    order.sort_by(|&a, &b| apps[a].name.cmp(&apps[b].name));
    let mut slots: Vec<Option<App>> = apps.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// `managed_by` names another app of the declaration that can manage this one.
fn check_managed_by(cx: &mut Ctx<'_>, raw: &BTreeMap<&str, &Spanned<RawApp>>, apps: &[App], catalog: &Catalog) {
    let by_name: HashMap<&str, &App> = apps.iter().map(|a| (a.name.as_str(), a)).collect();
    for (&name, app) in raw {
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
        let Some(other) = raw.get(target.as_str()) else {
            let names: Vec<&str> = raw.keys().copied().filter(|n| *n != name).collect();
            let none = "declare the management app as another [apps.NAME] table (grant = \"account_credentials\", `marketplace:` scopes)";
            let fix = match nearest(target, names.iter().copied()) {
                Some(n) if names.len() > 10 => format!("did you mean {n:?}?"),
                _ if names.len() > 10 => none.to_string(),
                _ => one_of(&names, none),
            };
            cx.err(
                m.span(),
                &field,
                "managed-by-unknown",
                format!("there is no app {target:?} in this declaration"),
                fix,
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
        let (Some(this), Some(mgr)) = (by_name.get(name), by_name.get(target.as_str())) else {
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
        } else if let Some(rules) = catalog.platform(&this.platform)
            && let prefix = rules.management_scope_prefix.as_str()
            && !prefix.is_empty()
            && !mgr.scopes.iter().any(|s| s.scope.starts_with(prefix))
        {
            cx.err(
                m.span(),
                &field,
                "managed-by-scopes",
                format!(
                    "the management app {target:?} requests no `{prefix}` scopes, so {} would refuse every call that manages the app",
                    rules.display()
                ),
                format!("add the `{prefix}` scopes that read and write apps to [apps.{target}] scopes"),
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
    if let Some(rules) = catalog.stores.iter().find(|r| &r.kind == kind.get_ref()) {
        let given = raw.get_ref().settings.as_ref();
        store::check_settings(cx, rules, raw.span(), given.map(|s| s.get_ref()));
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

/// The fix naming the `known` choices, or `none` when there are none.
fn one_of(known: &[&str], none: &str) -> String {
    if known.is_empty() {
        none.to_string()
    } else {
        format!("use one of: {}", known.join(", "))
    }
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

/// Whether an instance name is valid: a DNS label, lower case.
pub fn valid_instance_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}
