//! connapp's network edge: one HTTP client policy for the whole program and
//! the OAuth 2.0 flows over it (the `oauth2` crate driving our `reqwest`
//! client), the one-shot loopback listener for consent, and the token
//! lifecycle that never loses a rotated refresh token.
//!
//! Policy: redirects are never followed, every request has a timeout, and
//! every endpoint must be https unless its host is a loopback address.
//!
//! What it is **not**: a store (tokens are persisted through the
//! [`lifecycle::TokenStore`] the caller provides) or a provider model (the
//! endpoints and quirks come in an [`Provider`] described by a platform
//! plugin and the declaration).

pub mod api;
pub mod flows;
pub mod lifecycle;
pub mod loopback;
pub mod record;

use std::time::Duration;

use url::Url;

pub use flows::{Provider, TokenSet};

/// Errors of the network edge. Messages never contain tokens or secrets.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// An endpoint URL breaks the policy.
    #[error("{what} {url:?} is not allowed: {why}")]
    Policy {
        /// Which endpoint.
        what: &'static str,
        /// The URL.
        url: String,
        /// The rule.
        why: &'static str,
    },
    /// The server could not be reached or did not answer in time.
    #[error("cannot reach {host}: {detail}")]
    Unreachable {
        /// Host (never the full URL with a query).
        host: String,
        /// What happened.
        detail: String,
    },
    /// The provider refused the request with an OAuth error.
    #[error("{endpoint} refused the request: {error}{}", reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Rejected {
        /// Which endpoint.
        endpoint: &'static str,
        /// HTTP status.
        status: u16,
        /// OAuth `error` code (e.g. `invalid_grant`).
        error: String,
        /// Zoom's `reason` or the standard `error_description`.
        reason: Option<String>,
    },
    /// The provider answered something connapp cannot read.
    #[error("{endpoint} answered HTTP {status} with a body connapp cannot read: {detail}")]
    BadResponse {
        /// Which endpoint.
        endpoint: &'static str,
        /// HTTP status.
        status: u16,
        /// Why (never the body itself, which may hold tokens).
        detail: String,
    },
    /// Something else.
    #[error("{0}")]
    Other(String),
}

impl EdgeError {
    /// The OAuth error code, if the provider refused.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            EdgeError::Rejected { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Logs one request connapp made, at `-v`: the method, the host and path
/// (never the query, which may carry parameters, nor a header or body), the
/// status and how long it took.
pub fn log_request(method: &str, url: &str, status: u16, started: std::time::Instant) {
    let path = Url::parse(url).map(|u| u.path().to_string()).unwrap_or_default();
    tracing::info!(
        "{method} {}{path} -> {status} ({} ms)",
        host_of(url),
        started.elapsed().as_millis()
    );
}

/// "12 min ago": how long before `now` the moment `at` was, in the words
/// connapp's messages use (both unix seconds).
pub fn ago(at: u64, now: u64) -> String {
    match now.saturating_sub(at) {
        s @ 0..120 => format!("{s} s ago"),
        s @ 120..7_200 => format!("{} min ago", s / 60),
        s @ 7_200..172_800 => format!("{} h ago", s / 3_600),
        s => format!("{} days ago", s / 86_400),
    }
}

/// Checks an endpoint URL: https, or http on a loopback host; no userinfo, no fragment.
pub fn check_endpoint(what: &'static str, raw: &str) -> Result<Url, EdgeError> {
    let policy = |why| EdgeError::Policy {
        what,
        url: raw.to_string(),
        why,
    };
    let url = Url::parse(raw).map_err(|_| policy("not an absolute URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(policy("credentials in URLs are refused"));
    }
    if url.fragment().is_some() {
        return Err(policy("fragments are refused"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(policy("plain http is only allowed for loopback addresses")),
        _ => Err(policy("only https (or http on loopback) is allowed")),
    }
}

/// A base URL that passes [`check_endpoint`], without trailing slashes, for
/// joining paths to.
pub fn base_url(what: &'static str, raw: &str) -> Result<String, EdgeError> {
    check_endpoint(what, raw)?;
    Ok(raw.trim_end_matches('/').to_string())
}

/// Whether a URL's host is a loopback address.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// Every reqwest client connapp's edge builds starts here: the TLS provider
/// is installed first, so no caller depends on another having done it.
pub fn client_builder() -> reqwest::ClientBuilder {
    connapp_plugin_api::tls::install_provider();
    reqwest::Client::builder()
}

/// The one HTTP client policy: no redirects, timeouts, rustls with ring.
pub fn http_client() -> Result<reqwest::Client, EdgeError> {
    client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("connapp/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| EdgeError::Other(format!("cannot build the HTTP client: {e}")))
}

fn host_of(url: &str) -> String {
    Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| "the server".into())
}

/// Adapts our reqwest client to the `oauth2` crate's HTTP interface.
pub(crate) async fn send(
    client: &reqwest::Client,
    req: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, EdgeError> {
    let (parts, body) = req.into_parts();
    let url = parts.uri.to_string();
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
        .map_err(|e| EdgeError::Other(format!("bad method: {e}")))?;
    let mut rb = client.request(method, &url).body(body);
    for (k, v) in &parts.headers {
        rb = rb.header(k.as_str(), v.as_bytes());
    }
    let started = std::time::Instant::now();
    let resp = rb.send().await.map_err(|e| unreachable(&url, &e))?;
    let status = resp.status().as_u16();
    log_request(parts.method.as_str(), &url, status, started);
    let mut builder = http::Response::builder().status(status);
    for (k, v) in resp.headers() {
        builder = builder.header(k.as_str(), v.as_bytes());
    }
    let bytes = resp.bytes().await.map_err(|e| EdgeError::Unreachable {
        host: host_of(&url),
        detail: without_url(&e),
    })?;
    builder
        .body(bytes.to_vec())
        .map_err(|e| EdgeError::Other(format!("bad response: {e}")))
}

/// A failed request as the user should read it: the host, a timeout or the cause.
pub fn unreachable(url: &str, e: &reqwest::Error) -> EdgeError {
    EdgeError::Unreachable {
        host: host_of(url),
        detail: if e.is_timeout() {
            "timed out".into()
        } else {
            without_url(e)
        },
    }
}

/// A reqwest error's text without the URL (which may carry parameters).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        // reqwest says "error sending request for url (URL)": the host is
        // named elsewhere, and the URL's path and query may carry parameters.
        s = s.replace(&format!(" for url ({})", u.as_str()), "");
        s = s.replace(u.as_str(), "the URL");
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod sandbox_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_errors_name_the_host_and_no_url() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let url = format!("http://127.0.0.1:{port}/oauth/token?client_id=x");
        let e = rt
            .block_on(async { http_client().expect("client").get(&url).send().await })
            .expect_err("nothing listens");
        let text = unreachable(&url, &e).to_string();
        assert!(text.starts_with(&format!("cannot reach 127.0.0.1:{port}")), "{text}");
        assert!(
            !text.contains("<url>") && !text.contains("client_id") && !text.contains("for url"),
            "{text}"
        );
    }

    #[test]
    fn endpoint_policy() {
        assert!(check_endpoint("token URL", "https://zoom.us/oauth/token").is_ok());
        assert!(check_endpoint("token URL", "http://127.0.0.1:8700/oauth/token").is_ok());
        assert!(check_endpoint("token URL", "http://[::1]/t").is_ok());
        assert!(check_endpoint("token URL", "http://zoom.us/oauth/token").is_err());
        assert!(check_endpoint("token URL", "https://u:p@zoom.us/").is_err());
        assert!(check_endpoint("token URL", "ftp://zoom.us/").is_err());
        assert!(check_endpoint("token URL", "zoom.us/oauth").is_err());
    }
}
