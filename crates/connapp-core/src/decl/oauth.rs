//! An app's `[oauth]` table: grant, endpoints, client authentication, extra
//! authorize parameters, and the allow list's hosts.

use super::*;

/// Authorize parameters connapp sets itself, or that would put a secret in
/// a URL the browser shows and logs: never from the declaration.
pub(super) const RESERVED_AUTHORIZE_PARAMS: &[&str] = &[
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
pub(super) fn check_authorize_params(
    cx: &mut Ctx<'_>,
    field: &str,
    params: &BTreeMap<String, Spanned<String>>,
    o: &mut OAuth,
) {
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

pub(super) fn check_oauth(
    cx: &mut Ctx<'_>,
    app: &str,
    raw: Option<&Spanned<RawOAuth>>,
    rules: &PlatformRules,
    app_span: Range<usize>,
) -> Option<OAuth> {
    let f = |field: &str| format!("apps.{app}.oauth.{field}");
    let mut o = OAuth::default();
    let Some(raw) = raw else {
        if rules.endpoints_from_declaration {
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
                    "use authorization_code, client_credentials or, where the platform offers it, account_credentials",
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
                format!("copy the Account ID from {}", rules.credentials_source()),
            );
        } else {
            o.account_id = Some(v.clone());
        }
    }
    if o.grant == GrantKind::AccountCredentials {
        if !rules.account_grant {
            cx.err(
                raw.span(),
                &f("grant"),
                "oauth-grant",
                format!("{} offers no account_credentials grant", rules.display()),
                "use client_credentials for a token without a user",
            );
        }
        if o.account_id.is_none() && r.account_id.is_none() {
            cx.err(
                raw.span(),
                &f("account_id"),
                "missing-field",
                format!("account_credentials needs the {} account id", rules.display()),
                format!("add `account_id = \"...\"` (from {})", rules.credentials_source()),
            );
        }
    }
    if rules.endpoints_from_declaration {
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

pub(super) fn check_allow_entry_host(
    cx: &mut Ctx<'_>,
    field: &str,
    span: Range<usize>,
    raw: &str,
    url: &url::Url,
    target: &Target,
) {
    if urls::is_loopback(url) {
        return;
    }
    let instance_host = url::Url::parse(&target.instance_url)
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
            format!(
                "allow only the instance itself: {:?}",
                target.redirect_url.as_deref().unwrap_or(&target.instance_url)
            ),
        );
    } else {
        cx.warn(
            span,
            field,
            "allow-list-foreign-host",
            format!(
                "{raw:?} is on {host:?}, which is neither the target instance nor a loopback address; whoever runs it can receive authorization codes"
            ),
            "remove it unless you control that host",
        );
    }
}
