//! URL rules for redirect URLs and allow-list entries.
//!
//! Zoom compares redirect URLs as strings, byte for byte, so connapp insists
//! that what the user writes is exactly what a browser would send: absolute,
//! https (http only on loopback), no userinfo, no fragment, ASCII only, and
//! already in canonical form.

use std::net::IpAddr;

use url::{Host, Url};

/// A rule a URL broke, with the message and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlProblem {
    /// Stable rule id.
    pub rule: &'static str,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

fn problem(rule: &'static str, message: impl Into<String>, fix: impl Into<String>) -> UrlProblem {
    UrlProblem {
        rule,
        message: message.into(),
        fix: fix.into(),
    }
}

/// Whether a parsed URL's host is a loopback address (`127.0.0.0/8`, `[::1]`, `localhost`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// The authority part of a raw URL string (between `//` and the next `/`, `?` or `#`).
fn raw_authority(raw: &str) -> Option<&str> {
    let rest = &raw[raw.find("//")? + 2..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Checks one URL string. Returns the parsed URL when every rule holds.
pub fn check_url(raw: &str) -> Result<Url, UrlProblem> {
    if raw.is_empty() {
        return Err(problem(
            "url-empty",
            "the URL is empty",
            "write an absolute https URL, e.g. \"https://app.example.com/oauth/callback\"",
        ));
    }
    if let Some(c) = raw.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(problem(
            "url-characters",
            format!("the URL {raw:?} contains whitespace or a control character ({c:?})"),
            "remove it; providers compare redirect URLs exactly as written",
        ));
    }
    if raw.contains('\\') {
        return Err(problem(
            "url-characters",
            format!("the URL {raw:?} contains a backslash, which browsers treat as `/`"),
            "use `/` and write the URL exactly as the browser will send it",
        ));
    }
    if !raw.is_ascii() {
        let hint = Url::parse(raw)
            .map(|u| format!("if this is really meant, write its ASCII form {:?}", u.as_str()))
            .unwrap_or_else(|_| "use only ASCII characters".to_string());
        return Err(problem(
            "url-non-ascii",
            format!("the URL {raw:?} contains non-ASCII characters; look-alike letters can point it at another host"),
            hint,
        ));
    }
    let url = Url::parse(raw).map_err(|e| {
        let fix = if !raw.contains("://") {
            format!("write an absolute URL with its scheme, e.g. \"https://{raw}\"")
        } else {
            "write an absolute https URL such as \"https://app.example.com/oauth/callback\"".to_string()
        };
        problem("url-parse", format!("{raw:?} is not a valid absolute URL ({e})"), fix)
    })?;
    let authority = raw_authority(raw).unwrap_or("");
    if !url.username().is_empty() || url.password().is_some() || authority.contains('@') {
        return Err(problem(
            "url-userinfo",
            format!(
                "the URL {raw:?} has user information before `@`, so its real host is {:?}",
                url.host_str().unwrap_or("")
            ),
            "remove everything between `//` and `@`; a redirect URL never carries credentials",
        ));
    }
    if authority.contains('%') {
        return Err(problem(
            "url-encoded-host",
            format!("the host of {raw:?} is percent-encoded, which hides the real host"),
            format!("write the host in plain form: {:?}", url.host_str().unwrap_or("")),
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(problem(
                "url-https",
                format!("the URL {raw:?} uses http; only loopback addresses may use http"),
                format!("use https: {:?}", raw.replacen("http://", "https://", 1)),
            ));
        }
        other => {
            return Err(problem(
                "url-https",
                format!("the URL {raw:?} uses the scheme `{other}`; redirect URLs must use https"),
                "write an https URL",
            ));
        }
    }
    if url.host().is_none() {
        return Err(problem(
            "url-host",
            format!("the URL {raw:?} has no host"),
            "add the host",
        ));
    }
    if url.fragment().is_some() {
        return Err(problem(
            "url-fragment",
            format!("the URL {raw:?} has a fragment (`#...`), which OAuth forbids in redirect URLs"),
            format!("remove the fragment: {:?}", raw.split('#').next().unwrap_or(raw)),
        ));
    }
    let canonical = url.as_str();
    let bare_base = url.path() == "/" && url.query().is_none() && format!("{raw}/") == canonical;
    if raw != canonical && !bare_base {
        return Err(problem(
            "url-canonical",
            format!(
                "the URL {raw:?} is not written the way browsers send it ({canonical:?}); providers compare exactly"
            ),
            format!("write {canonical:?}"),
        ));
    }
    Ok(url)
}

/// Describes how two URL strings differ, for "expected X, got Y" messages.
pub fn describe_difference(expected: &str, actual: &str) -> String {
    if expected == actual {
        return "they are identical".to_string();
    }
    if expected.eq_ignore_ascii_case(actual) {
        return "they differ only in letter case; redirect URLs compare case-sensitively".to_string();
    }
    if expected.trim_end_matches('/') == actual.trim_end_matches('/') {
        return "they differ only by a trailing slash, which makes it a different URL".to_string();
    }
    match (Url::parse(expected), Url::parse(actual)) {
        (Ok(e), Ok(a)) => {
            if e.scheme() != a.scheme() {
                format!("the scheme differs (`{}` vs `{}`)", e.scheme(), a.scheme())
            } else if e.host_str() != a.host_str() {
                format!(
                    "the host differs ({:?} vs {:?})",
                    e.host_str().unwrap_or(""),
                    a.host_str().unwrap_or("")
                )
            } else if e.port() != a.port() {
                "the port differs".to_string()
            } else if e.path() != a.path() {
                format!("the path differs ({:?} vs {:?})", e.path(), a.path())
            } else {
                "the query differs".to_string()
            }
        }
        _ => "they are different strings".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(raw: &str) -> &'static str {
        check_url(raw).err().map_or("ok", |p| p.rule)
    }

    #[test]
    fn good_urls_pass() {
        for url in [
            "https://acme.service-now.com/oauth_redirect.do",
            "https://acme.service-now.com",
            "http://127.0.0.1:8400/callback",
            "http://[::1]/cb",
            "http://localhost/cb",
        ] {
            assert_eq!(rule(url), "ok", "{url}");
        }
    }

    #[test]
    fn hostile_and_malformed_urls_fail_with_their_rule() {
        let cases: &[(&str, &[&str])] = &[
            ("url-empty", &[""]),
            (
                "url-parse",
                &["acme.service-now.com/oauth_redirect.do", "/oauth_redirect.do"],
            ),
            (
                "url-https",
                &[
                    "http://acme.service-now.com/oauth_redirect.do",
                    "ftp://acme.service-now.com/x",
                    "http://127.0.0.1.evil.example/cb",
                ],
            ),
            (
                "url-userinfo",
                &[
                    "https://acme.service-now.com@evil.example/oauth_redirect.do",
                    "https://user:pw@acme.service-now.com/",
                ],
            ),
            (
                "url-fragment",
                &[
                    "https://acme.service-now.com/oauth_redirect.do#x",
                    "https://acme.service-now.com/oauth_redirect.do#",
                ],
            ),
            (
                "url-canonical",
                &[
                    "https://ACME.service-now.com/oauth_redirect.do",
                    "https://acme.service-now.com:443/oauth_redirect.do",
                    "https://acme.service-now.com/a/../oauth_redirect.do",
                ],
            ),
            (
                "url-encoded-host",
                &["https://acme%2eservice-now.com/oauth_redirect.do"],
            ),
            ("url-non-ascii", &["https://аcme.service-now.com/oauth_redirect.do"]),
            (
                "url-characters",
                &[
                    "https://acme.service-now.com\\@evil.example/",
                    "https://acme.service-now.com/oauth redirect.do",
                ],
            ),
        ];
        for (want, urls) in cases {
            for url in *urls {
                assert_eq!(rule(url), *want, "{url}");
            }
        }
    }

    #[test]
    fn differences_are_explained() {
        let e = "https://acme.service-now.com/oauth_redirect.do";
        assert!(describe_difference(e, &format!("{e}/")).contains("trailing slash"));
        assert!(describe_difference(e, &e.to_uppercase()).contains("case"));
        assert!(describe_difference(e, "https://evil.example/oauth_redirect.do").contains("host"));
    }
}
