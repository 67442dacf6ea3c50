//! An app's consumer `[target]` (the instance that uses the app).

use super::*;
use crate::consumer::{ServicenowSettings, servicenow_instance_url};

pub(super) fn check_target(cx: &mut Ctx<'_>, app: &str, t: &Spanned<RawTarget>) -> Option<Target> {
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
