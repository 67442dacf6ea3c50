//! An app's consumer `[target]` (the instance that uses the app): the
//! fields every target has (`kind`, `instance` or `instance_url`, `auth`)
//! and the settings its consumer platform's profile names. The values of
//! those settings are the platform plugin's to check.

use super::*;
use crate::consumer::ConsumerRules;

/// The target table as written: every key with its place in the file.
pub(super) type RawTarget = BTreeMap<String, Spanned<toml::Value>>;

/// The fix when no installed plugin provides a consumer platform.
const NO_CONSUMER: &str = "install a consumer platform plugin (`connapp plugins list` shows what is installed)";

/// The fields every target has, whatever its kind.
const CORE_FIELDS: &[&str] = &["kind", "instance", "instance_url", "auth"];

pub(super) fn check_target(cx: &mut Ctx<'_>, app: &str, t: &Spanned<RawTarget>, catalog: &Catalog) -> Option<Target> {
    let raw = t.get_ref();
    let f = |field: &str| format!("apps.{app}.target.{field}");
    let kind = match raw.get("kind") {
        None => {
            let fix = match catalog.consumers.first() {
                Some(c) => format!("add `kind = {:?}`", c.name),
                None => NO_CONSUMER.into(),
            };
            cx.err(t.span(), &f("kind"), "missing-field", "`target.kind` is missing", fix);
            return None;
        }
        Some(k) => string_of(cx, &f("kind"), k)?,
    };
    let Some(rules) = catalog.consumer(kind) else {
        let known: Vec<String> = catalog
            .consumers
            .iter()
            .map(|c| format!("`kind = {:?}`", c.name))
            .collect();
        let fix = match known.as_slice() {
            [] => NO_CONSUMER.to_string(),
            [one] => format!("use {one}"),
            _ => format!("use one of {}", known.join(", ")),
        };
        let span = raw.get("kind").map_or(t.span(), Spanned::span);
        cx.err(
            span,
            &f("kind"),
            "target-kind",
            format!("unknown target kind {kind:?}"),
            fix,
        );
        return None;
    };
    let display = rules.display();

    let expected: Vec<&str> = CORE_FIELDS
        .iter()
        .copied()
        .chain(rules.settings.iter().map(String::as_str))
        .collect();
    let mut settings = BTreeMap::new();
    for (key, value) in raw {
        if CORE_FIELDS.contains(&key.as_str()) {
            continue;
        }
        if !expected.contains(&key.as_str()) {
            // At the key (TOML gives the value's place).
            let at = cx.map.locate(&f(key)).map_or(value.span(), |k| k..k);
            cx.err(
                at,
                &f(key),
                "unknown-field",
                format!("unknown field `{key}`"),
                unknown_field_fix(key, &expected),
            );
            continue;
        }
        if let Some(v) = string_of(cx, &f(key), value) {
            settings.insert(key.clone(), v.to_string());
        }
    }

    let mut auth = InstanceAuth::Basic;
    if let Some(a) = raw.get("auth") {
        match string_of(cx, &f("auth"), a) {
            Some("basic") => auth = InstanceAuth::Basic,
            Some("oauth") => auth = InstanceAuth::Oauth,
            Some(other) => cx.err(
                a.span(),
                &f("auth"),
                "target-auth",
                format!("{other:?} is not a way to sign in to {display}"),
                "write `auth = \"basic\"` (instance-user / instance-password) or `auth = \"oauth\"` (client credentials)",
            ),
            None => {}
        }
    }

    let instance = raw.get("instance");
    let instance_url = raw.get("instance_url");
    let (instance_url, instance) = match (instance, instance_url) {
        (Some(_), Some(u)) => {
            let fix = match rules.instance_url("NAME") {
                Some(n) => format!("keep `instance` for instances at {n}, `instance_url` only for custom domains"),
                None => format!("keep `instance_url`: {display} instances have no name of their own"),
            };
            cx.err(
                u.span(),
                &f("instance_url"),
                "target-instance",
                "both `instance` and `instance_url` are set",
                fix,
            );
            return None;
        }
        (None, None) => {
            let fix = match rules.instance_url("acme") {
                Some(u) => format!("add `instance = \"acme\"` (for {u})"),
                None => "add `instance_url = \"https://...\"` (the instance's base URL)".to_string(),
            };
            cx.err(
                t.span(),
                &f("instance"),
                "missing-field",
                format!("the {display} target names no instance"),
                fix,
            );
            return None;
        }
        (Some(i), None) => {
            let name = string_of(cx, &f("instance"), i)?;
            (
                check_instance_name(cx, &f("instance"), i.span(), name, rules)?,
                Some(name.to_string()),
            )
        }
        (None, Some(u)) => {
            let s = string_of(cx, &f("instance_url"), u)?;
            match check_url(s) {
                Err(p) => {
                    cx.err(u.span(), &f("instance_url"), p.rule, p.message, p.fix);
                    return None;
                }
                Ok(url) if url.path() != "/" || url.query().is_some() => {
                    cx.err(
                        u.span(),
                        &f("instance_url"),
                        "target-instance-url",
                        format!("the instance URL {s:?} has a path or query"),
                        format!("write only the base URL: {:?}", url.origin().ascii_serialization()),
                    );
                    return None;
                }
                Ok(url) => (url.origin().ascii_serialization(), None),
            }
        }
    };
    Some(Target {
        kind: rules.name.clone(),
        display: display.to_string(),
        redirect_url: rules.redirect_url(&instance_url),
        instance_url,
        instance,
        auth,
        settings,
    })
}

/// The base URL of the instance `name`, or an error saying how to write it.
fn check_instance_name(
    cx: &mut Ctx<'_>,
    field: &str,
    span: Range<usize>,
    name: &str,
    rules: &ConsumerRules,
) -> Option<String> {
    let display = rules.display();
    let Some(template) = rules.instance_url("NAME") else {
        cx.err(
            span,
            field,
            "target-instance",
            format!("{display} instances are not named: a target gives its base URL"),
            format!("write `instance_url = \"https://...\"` instead of `instance = {name:?}`"),
        );
        return None;
    };
    if valid_instance_name(name) {
        return rules.instance_url(name);
    }
    // The instance's host around the name, e.g. ("", ".service-now.com").
    let host = template.split_once("://").map_or(template.as_str(), |(_, h)| h);
    let (before, after) = host.split_once("NAME").unwrap_or(("", ""));
    let bare = name.trim_start_matches("https://").trim_start_matches("http://");
    let given = bare
        .trim_end_matches('/')
        .strip_prefix(before)
        .and_then(|h| h.strip_suffix(after));
    let fix = match given {
        Some(n) if !n.is_empty() && (!after.is_empty() || !before.is_empty()) => {
            format!("write only the instance name: `instance = {n:?}`")
        }
        _ if valid_instance_name(&name.to_ascii_lowercase()) => {
            format!("write it in lower case: `instance = {:?}`", name.to_ascii_lowercase())
        }
        _ => format!(
            "write the name from {template} (letters, digits, hyphens), or use `instance_url` for a custom domain"
        ),
    };
    cx.err(
        span,
        field,
        "target-instance",
        format!("{name:?} is not a valid {display} instance name"),
        fix,
    );
    None
}

/// The string value of a target field, or a type error at it.
fn string_of<'v>(cx: &mut Ctx<'_>, field: &str, v: &'v Spanned<toml::Value>) -> Option<&'v str> {
    match v.get_ref() {
        toml::Value::String(s) => Some(s),
        other => {
            cx.err(
                v.span(),
                field,
                "toml-type",
                format!("invalid type: {}, expected a string", other.type_str()),
                "write the value as a string in double quotes",
            );
            None
        }
    }
}
