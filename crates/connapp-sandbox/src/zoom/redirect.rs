//! Zoom's redirect URL matching (`docs/zoom-platform.md` §9): exact and
//! case-sensitive; loopback ports ignored; base-URL allow-list entries act as
//! prefixes unless Strict Mode is on; Subdomain Check limits prefixes to the
//! entry's own host.

use crate::state::App;

fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let i = s.find("://")?;
    Some((&s[..i + 3], &s[i + 3..]))
}

/// (host, port, rest starting at the path) of the part after `scheme://`.
fn split_authority(rest: &str) -> (&str, Option<&str>, &str) {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(end);
    if let Some(stripped) = auth.strip_prefix('[') {
        // [::1]:port
        if let Some(close) = stripped.find(']') {
            let host = &auth[..close + 2];
            let port = auth[close + 2..].strip_prefix(':');
            return (host, port, tail);
        }
    }
    match auth.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, Some(p), tail),
        _ => (auth, None, tail),
    }
}

fn is_loopback_host(h: &str) -> bool {
    h == "127.0.0.1" || h == "[::1]" || h == "localhost"
}

fn loopback_equal(a: &str, b: &str) -> bool {
    let (Some((sa, ra)), Some((sb, rb))) = (split_scheme(a), split_scheme(b)) else {
        return false;
    };
    let (ha, _, ta) = split_authority(ra);
    let (hb, _, tb) = split_authority(rb);
    sa == sb && ha == hb && is_loopback_host(ha) && ta == tb
}

fn base_prefix_match(uri: &str, entry: &str, subdomain_check: bool) -> bool {
    let (Some((su, ru)), Some((se, re))) = (split_scheme(uri), split_scheme(entry)) else {
        return false;
    };
    if su != se {
        return false;
    }
    let (he, pe, te) = split_authority(re);
    // Only base URLs (no path beyond "/", no query) act as prefixes.
    if !(te.is_empty() || te == "/") {
        return false;
    }
    let (hu, pu, tu) = split_authority(ru);
    if pu != pe {
        return false;
    }
    let host_ok = hu == he || (!subdomain_check && hu.ends_with(&format!(".{he}")) && !hu.contains('@'));
    host_ok && (tu.is_empty() || tu.starts_with('/') || tu.starts_with('?'))
}

/// Whether Zoom would accept `uri` as the `redirect_uri` of `app` at authorize.
pub fn allowed(app: &App, uri: &str) -> bool {
    if uri.contains('#') || uri.contains('@') || uri.chars().any(|c| c.is_whitespace() || c == '\\') {
        return false;
    }
    let candidates = app.redirect_urls.iter().chain(app.allow_list.iter());
    for c in candidates {
        if c == uri || loopback_equal(c, uri) {
            return true;
        }
    }
    !app.strict_mode
        && app
            .allow_list
            .iter()
            .any(|e| base_prefix_match(uri, e, app.subdomain_check))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AppKind, Usage};

    fn app(allow: &[&str], strict: bool, sub: bool) -> App {
        App {
            app_id: "a".into(),
            name: "a".into(),
            kind: AppKind::General,
            usage: Usage::AdminManagement,
            client_id: "c".into(),
            client_secret: "s".into(),
            secret_token: "t".into(),
            redirect_urls: vec!["https://acme.service-now.com/oauth_redirect.do".into()],
            allow_list: allow.iter().map(|s| s.to_string()).collect(),
            strict_mode: strict,
            subdomain_check: sub,
            scopes: vec![],
            ..App::default()
        }
    }

    const R: &str = "https://acme.service-now.com/oauth_redirect.do";

    /// Every URL of `ok` is allowed for `a`, every URL of `refused` is not.
    fn judge(a: &App, ok: &[&str], refused: &[&str]) {
        for url in ok {
            assert!(allowed(a, url), "{url} should be allowed");
        }
        for url in refused {
            assert!(!allowed(a, url), "{url} should be refused");
        }
    }

    #[test]
    fn exact_and_case_sensitive() {
        let slash = format!("{R}/");
        judge(
            &app(&[R], false, false),
            &[R],
            &[
                &slash,
                "https://ACME.service-now.com/oauth_redirect.do",
                "http://acme.service-now.com/oauth_redirect.do",
                "https://acme.service-now.com.evil.example/oauth_redirect.do",
                "https://acme.service-now.com@evil.example/oauth_redirect.do",
            ],
        );
    }

    #[test]
    fn loopback_ignores_the_port() {
        judge(
            &app(&["http://127.0.0.1/callback"], true, false),
            &["http://127.0.0.1:53123/callback", "http://127.0.0.1/callback"],
            &["http://127.0.0.1:53123/other", "http://127.0.0.2:53123/callback"],
        );
    }

    #[test]
    fn base_urls_are_prefixes_unless_strict() {
        let base = ["https://example.com"];
        judge(
            &app(&base, false, false),
            &["https://example.com/any/path?x=1", "https://sub.example.com/cb"],
            &["https://example.com.evil.example/cb", "https://evilexample.com/cb"],
        );
        judge(
            &app(&base, false, true),
            &["https://example.com/cb"],
            &["https://sub.example.com/cb"],
        );
        judge(&app(&base, true, false), &[R], &["https://example.com/cb"]);
    }
}
