//! One app: display name, platform, usage, redirect URL, allow list, login
//! redirect, app id, and its optional scopes.

use super::*;

pub(super) fn check_app(cx: &mut Ctx<'_>, name: &str, app: &Spanned<RawApp>, catalog: &Catalog) -> Option<App> {
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
                "`display_name` is missing: it is the name admins see on the provider's consent page",
                "add e.g. `display_name = \"Reporting sync\"`",
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
                    "write a name such as \"Reporting sync\"",
                );
            } else if let Some((max, platform)) = max_display_name(catalog, raw)
                && chars > max
            {
                let short: String = s.chars().take(max).collect();
                cx.err(
                    d.span(),
                    &f("display_name"),
                    "display-name-length",
                    format!("the display name has {chars} characters; {platform} takes at most {max}"),
                    format!("shorten it to at most {max} characters, e.g. {:?}", short.trim_end()),
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
                one_of(
                    &catalog.platforms.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
                    "install a platform plugin (see `connapp plugins list`), then name it in `platform`",
                ),
            );
            String::new()
        }
        Some(p) => {
            let known: Vec<&str> = catalog.platforms.iter().map(|p| p.name.as_str()).collect();
            if !known.contains(&p.get_ref().as_str()) {
                cx.err(
                    p.span(),
                    &f("platform"),
                    "platform-unknown",
                    format!("no installed plugin provides the platform {:?}", p.get_ref()),
                    one_of(
                        &known,
                        "no platform plugin is installed: install one (see `connapp plugins list`)",
                    ),
                );
            }
            p.get_ref().clone()
        }
    };
    let unknown = PlatformRules::named(&platform);
    let rules = catalog.platform(&platform).unwrap_or(&unknown);

    // How connapp gets tokens (decides whether a redirect URL is needed).
    let oauth = check_oauth(cx, n, raw.oauth.as_ref(), rules, app_span.clone());
    let needs_redirect = oauth.as_ref().is_none_or(|o| o.grant != GrantKind::AccountCredentials);

    // Usage.
    let usage = match &raw.usage {
        None if !rules.requires_usage => Some(Usage::UserManaged),
        None => {
            cx.err(
                app_span.clone(),
                &f("usage"),
                "missing-field",
                format!(
                    "`usage` is missing: {} apps are admin- or user-managed",
                    rules.display()
                ),
                "add `usage = \"admin-managed\"` (installed for the whole account) or `usage = \"user-managed\"`",
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
    let target = raw.target.as_ref().and_then(|t| check_target(cx, n, t, catalog));

    // Redirect URL.
    let redirect_url = match &raw.redirect_url {
        None if !needs_redirect => None,
        None => {
            let fix = match target.as_ref().and_then(|t| t.redirect_url.as_ref()) {
                Some(r) => format!("add `redirect_url = {r:?}`"),
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
                    if let Some(expected) = target.as_ref().and_then(|t| t.redirect_url.as_ref())
                        && raw_url != expected
                    {
                        cx.err(
                            r.span(),
                            &f("redirect_url"),
                            "redirect-target",
                            format!(
                                "the target instance calls back to {expected:?}, but redirect_url is {raw_url:?}: {}",
                                describe_difference(expected, raw_url)
                            ),
                            format!("write `redirect_url = {expected:?}`"),
                        );
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
            format!(
                "`allow_list` is missing: {} only redirects to URLs on the app's allow list",
                rules.display()
            ),
            match &redirect_url {
                Some(r) => format!("add `allow_list = [{r:?}]`"),
                None => "add `allow_list = [\"https://...\"]` with the redirect URL in it".to_string(),
            },
        ),
        Some(list) if list.get_ref().is_empty() => cx.err(
            list.span(),
            &f("allow_list"),
            "allow-list-empty",
            format!(
                "the allow list is empty: {} would refuse every redirect",
                rules.display()
            ),
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
                        if let Some(t) = &target {
                            check_allow_entry_host(cx, &field, entry.span(), s, &url, t);
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
                        "the redirect URL {r:?} is not in the allow list; the entry {e:?} is close but {}: {} would refuse the redirect",
                        describe_difference(r, e),
                        rules.display()
                    ),
                    None => format!(
                        "the redirect URL {r:?} is not in the allow list: {} would refuse the redirect",
                        rules.display()
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

    // connapp login's loopback redirect must be one the provider accepts.
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
                format!(
                    "the login redirect {lr:?} is not on the allow list, so {} would refuse it",
                    rules.display()
                ),
                format!("add {lr:?} to allow_list (the port does not matter for loopback addresses)"),
            );
        }
    }

    let strict_mode = raw.strict_mode.as_ref().is_some_and(|s| *s.get_ref());
    let subdomain_check = raw.subdomain_check.as_ref().is_some_and(|s| *s.get_ref());

    // Scopes.
    let (presets, mut scopes) = check_scopes(cx, n, raw, app_span.clone(), &platform, catalog);
    check_optional_scopes(cx, n, raw, &mut scopes);

    // Provider app id, management app (checked against the other apps later), webhook.
    let app_id = raw.app_id.as_ref().and_then(|id| {
        let v = id.get_ref();
        if v.is_empty() || v.len() > 64 || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            cx.err(
                id.span(),
                &f("app_id"),
                "app-id",
                format!("{v:?} is not an app id: app ids are up to 64 letters, digits, `_` and `-`"),
                format!(
                    "copy the app id from {}, or remove `app_id` and let `connapp apply` create the app",
                    rules.credentials_source()
                ),
            );
            return None;
        }
        Some(v.clone())
    });
    let managed_by = raw.managed_by.as_ref().map(|m| m.get_ref().clone());
    let webhook = raw.webhook.as_ref().and_then(|w| check_webhook(cx, n, w));
    let client_secret_max_age_days = raw.client_secret_max_age_days.as_ref().and_then(|d| {
        let v = *d.get_ref();
        if !(1..=3650).contains(&v) {
            cx.err(
                d.span(),
                &f("client_secret_max_age_days"),
                "secret-max-age",
                format!("{v} is not a maximum age: it is a whole number of days from 1 to 3650"),
                "give your security policy's rotation interval in days, e.g. `client_secret_max_age_days = 90`",
            );
            return None;
        }
        Some(v as u64)
    });

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
        client_secret_max_age_days,
    })
}

pub(super) fn check_optional_scopes(cx: &mut Ctx<'_>, app: &str, raw: &RawApp, scopes: &mut [Scope]) {
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
            "every scope is optional; an app needs at least one required scope",
            "remove at least one scope from optional_scopes",
        );
    }
}

/// The display-name limit of the app's platform, if it has one, and the
/// platform's name in messages.
fn max_display_name<'c>(catalog: &'c Catalog, raw: &RawApp) -> Option<(usize, &'c str)> {
    let rules = catalog.platform(raw.platform.as_ref()?.get_ref())?;
    let max = rules.display_name_max_chars;
    (max > 0).then(|| (max as usize, rules.display()))
}

pub(super) fn same_ignoring_port(a: &str, b: &str) -> bool {
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
