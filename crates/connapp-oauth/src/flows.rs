//! The OAuth 2.0 flows: authorization code with PKCE and state, refresh,
//! client credentials, Zoom's `account_credentials`, revocation.

use std::fmt;

use oauth2::basic::{BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, RevocationUrl,
    Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;
use zeroize::Zeroizing;

use crate::{EdgeError, check_endpoint, send};

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// Form fields (`client_secret_post`).
    Body,
}

/// A provider's endpoints and habits, from the platform plugin and the declaration.
#[derive(Clone, Debug)]
pub struct Provider {
    /// Authorization endpoint (authorization-code apps).
    pub authorize_url: Option<Url>,
    /// Token endpoint.
    pub token_url: Url,
    /// Revocation endpoint.
    pub revoke_url: Option<Url>,
    /// Client authentication style.
    pub client_auth: ClientAuth,
    /// Use PKCE (S256).
    pub pkce: bool,
    /// Send the `scope` parameter at authorize (Zoom: no; the app's scopes are granted).
    pub send_scopes: bool,
    /// Scopes to request when `send_scopes`.
    pub scopes: Vec<String>,
    /// Extra authorize parameters (e.g. `login_hint`).
    pub extra_authorize_params: Vec<(String, String)>,
}

impl Provider {
    /// Builds a provider, applying the endpoint policy to every URL.
    pub fn new(
        authorize_url: Option<&str>,
        token_url: &str,
        revoke_url: Option<&str>,
        client_auth: ClientAuth,
        pkce: bool,
    ) -> Result<Self, EdgeError> {
        Ok(Provider {
            authorize_url: authorize_url.map(|u| check_endpoint("authorize URL", u)).transpose()?,
            token_url: check_endpoint("token URL", token_url)?,
            revoke_url: revoke_url.map(|u| check_endpoint("revoke URL", u)).transpose()?,
            client_auth,
            pkce,
            send_scopes: false,
            scopes: Vec::new(),
            extra_authorize_params: Vec::new(),
        })
    }
}

/// The client's credentials. The secret is never printed: `SecretString`
/// redacts itself from `Debug`.
#[derive(Debug)]
pub struct Credentials {
    /// Client ID.
    pub client_id: String,
    /// Client Secret.
    pub client_secret: SecretString,
}

/// What a token endpoint returned. `Debug` shows no token: `SecretString`
/// redacts itself.
#[derive(Debug)]
pub struct TokenSet {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, if any.
    pub refresh_token: Option<SecretString>,
    /// Lifetime in seconds.
    pub expires_in: Option<u64>,
    /// Granted scopes, if the provider said.
    pub scopes: Option<Vec<String>>,
    /// Zoom's `api_url`.
    pub api_url: Option<String>,
}

/// A token-endpoint error body: RFC 6749 (`error_description`) or Zoom (`reason`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderError {
    /// OAuth error code.
    pub error: String,
    /// Zoom's explanation.
    pub reason: Option<String>,
    /// RFC 6749's explanation.
    pub error_description: Option<String>,
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error)
    }
}

impl oauth2::ErrorResponse for ProviderError {}

/// Extra token-response fields: Zoom's `api_url`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Extra {
    /// The API base for this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

impl ExtraTokenFields for Extra {}

type Response = StandardTokenResponse<Extra, BasicTokenType>;

type OClient = oauth2::Client<
    ProviderError,
    Response,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointMaybeSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

fn client(p: &Provider, c: &Credentials, redirect: Option<&Url>) -> Result<OClient, EdgeError> {
    let mut cl = oauth2::Client::new(ClientId::new(c.client_id.clone()))
        .set_client_secret(ClientSecret::new(c.client_secret.expose_secret().to_string()))
        .set_auth_type(match p.client_auth {
            ClientAuth::Basic => AuthType::BasicAuth,
            ClientAuth::Body => AuthType::RequestBody,
        })
        .set_auth_uri_option(p.authorize_url.as_ref().map(|u| AuthUrl::from_url(u.clone())))
        .set_token_uri_option(Some(TokenUrl::from_url(p.token_url.clone())))
        .set_revocation_url_option(p.revoke_url.as_ref().map(|u| RevocationUrl::from_url(u.clone())));
    if let Some(r) = redirect {
        cl = cl.set_redirect_uri(RedirectUrl::from_url(r.clone()));
    }
    Ok(cl)
}

fn to_set(r: Response) -> TokenSet {
    TokenSet {
        access_token: SecretString::from(r.access_token().secret().to_string()),
        refresh_token: r.refresh_token().map(|t| SecretString::from(t.secret().to_string())),
        expires_in: r.expires_in().map(|d| d.as_secs()),
        scopes: r.scopes().map(|s| s.iter().map(|x| x.to_string()).collect()),
        api_url: r.extra_fields().api_url.clone(),
    }
}

/// Maps the oauth2 crate's error, naming the HTTP status that really came
/// back (the crate's error does not carry it; [`Recorder`] does).
fn map_err(endpoint: &'static str, status: u16, e: RequestTokenError<EdgeError, ProviderError>) -> EdgeError {
    let ok = (200..300).contains(&status);
    match e {
        RequestTokenError::ServerResponse(p) => EdgeError::Rejected {
            endpoint,
            status,
            error: p.error,
            reason: p.reason.or(p.error_description),
        },
        RequestTokenError::Request(e) => e,
        RequestTokenError::Parse(e, _body) => EdgeError::BadResponse {
            endpoint,
            status,
            detail: if ok {
                format!("not a token response ({})", e.inner())
            } else {
                "not an OAuth error response".into()
            },
        },
        RequestTokenError::Other(s) => EdgeError::BadResponse {
            endpoint,
            status,
            detail: if s.contains("empty error response") {
                "an empty body".into()
            } else {
                s
            },
        },
    }
}

/// The transport the oauth2 crate's requests go through: connapp's HTTP
/// policy ([`send`]), remembering the status of the answer for the error.
struct Recorder<'a> {
    http: &'a reqwest::Client,
    status: std::sync::atomic::AtomicU16,
}

impl<'a> Recorder<'a> {
    fn new(http: &'a reqwest::Client) -> Self {
        Recorder {
            http,
            status: std::sync::atomic::AtomicU16::new(0),
        }
    }
    async fn send(&self, r: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, EdgeError> {
        let resp = send(self.http, r).await?;
        self.status
            .store(resp.status().as_u16(), std::sync::atomic::Ordering::Relaxed);
        Ok(resp)
    }
    fn finish(
        &self,
        endpoint: &'static str,
        r: Result<Response, RequestTokenError<EdgeError, ProviderError>>,
    ) -> Result<TokenSet, EdgeError> {
        let status = self.status.load(std::sync::atomic::Ordering::Relaxed);
        r.map(to_set).map_err(|e| map_err(endpoint, status, e))
    }
}

/// RFC 6749 §2.3.1: the client id and secret are each
/// `application/x-www-form-urlencoded` before they are joined with `:` and
/// base64-encoded. The oauth2 crate does the same for the requests it
/// sends; every request connapp sends itself uses this (a test compares
/// the two headers byte for byte).
pub fn basic_authorization(c: &Credentials) -> String {
    use base64::Engine;
    let id: String = form_urlencoded::byte_serialize(c.client_id.as_bytes()).collect();
    let secret =
        Zeroizing::new(form_urlencoded::byte_serialize(c.client_secret.expose_secret().as_bytes()).collect::<String>());
    let joined = Zeroizing::new(format!("{id}:{}", secret.as_str()));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(joined.as_bytes())
    )
}

/// A prepared consent: the URL to open, the `state` to expect back, the PKCE verifier.
pub struct AuthorizeRequest {
    /// Open this in a browser.
    pub url: Url,
    /// The `state` the redirect must carry.
    pub state: String,
    /// The PKCE verifier for the code exchange.
    pub pkce_verifier: Option<PkceCodeVerifier>,
    /// The redirect URI used.
    pub redirect_uri: Url,
}

/// Builds the authorization URL with a random `state` and, if the provider
/// uses it, a PKCE S256 challenge.
pub fn authorize(p: &Provider, c: &Credentials, redirect_uri: &Url) -> Result<AuthorizeRequest, EdgeError> {
    let cl = client(p, c, Some(redirect_uri))?;
    let mut req = cl
        .authorize_url(CsrfToken::new_random)
        .map_err(|e| EdgeError::Other(format!("no authorize URL configured: {e}")))?;
    let mut verifier = None;
    if p.pkce {
        let (challenge, v) = PkceCodeChallenge::new_random_sha256();
        req = req.set_pkce_challenge(challenge);
        verifier = Some(v);
    }
    if p.send_scopes {
        req = req.add_scopes(p.scopes.iter().map(|s| Scope::new(s.clone())));
    }
    for (k, v) in &p.extra_authorize_params {
        req = req.add_extra_param(k.clone(), v.clone());
    }
    let (url, state) = req.url();
    Ok(AuthorizeRequest {
        url,
        state: state.secret().to_string(),
        pkce_verifier: verifier,
        redirect_uri: redirect_uri.clone(),
    })
}

/// Exchanges an authorization code.
pub async fn exchange_code(
    http: &reqwest::Client,
    p: &Provider,
    c: &Credentials,
    code: &str,
    redirect_uri: &Url,
    verifier: Option<PkceCodeVerifier>,
) -> Result<TokenSet, EdgeError> {
    let cl = client(p, c, Some(redirect_uri))?;
    let mut req = cl
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|e| EdgeError::Other(e.to_string()))?;
    if let Some(v) = verifier {
        req = req.set_pkce_verifier(v);
    }
    let rec = Recorder::new(http);
    let caller = |r| rec.send(r);
    let r = req.request_async(&caller).await;
    rec.finish("token endpoint", r)
}

/// Refreshes: returns the new tokens (the old refresh token is dead at Zoom).
pub async fn refresh(
    http: &reqwest::Client,
    p: &Provider,
    c: &Credentials,
    refresh_token: &SecretString,
) -> Result<TokenSet, EdgeError> {
    let cl = client(p, c, None)?;
    let rt = RefreshToken::new(refresh_token.expose_secret().to_string());
    let req = cl
        .exchange_refresh_token(&rt)
        .map_err(|e| EdgeError::Other(e.to_string()))?;
    let rec = Recorder::new(http);
    let caller = |r| rec.send(r);
    let r = req.request_async(&caller).await;
    rec.finish("token endpoint", r)
}

/// The client-credentials grant. The declared scopes are sent as `scope`
/// where the platform sends scopes (RFC 6749 §4.4.2); what the provider
/// granted is what its answer says, never the request.
pub async fn client_credentials(http: &reqwest::Client, p: &Provider, c: &Credentials) -> Result<TokenSet, EdgeError> {
    let cl = client(p, c, None)?;
    let mut req = cl
        .exchange_client_credentials()
        .map_err(|e| EdgeError::Other(e.to_string()))?;
    if p.send_scopes {
        req = req.add_scopes(p.scopes.iter().map(|s| Scope::new(s.clone())));
    }
    let rec = Recorder::new(http);
    let caller = |r| rec.send(r);
    let r = req.request_async(&caller).await;
    rec.finish("token endpoint", r)
}

/// A token endpoint's answer (`status`, `Content-Type`, body) as connapp
/// reads it: the `oauth2` crate's own response handling (the same code the
/// code exchange, refresh and client credentials go through), then
/// connapp's mapping into a [`TokenSet`] or an [`EdgeError`]. No network:
/// the "transport" hands back the given answer. Tests and the fuzzer use it
/// to feed any bytes a server might send.
pub fn parse_token_answer(status: u16, content_type: Option<&str>, body: &[u8]) -> Result<TokenSet, EdgeError> {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let bad = |detail: String| EdgeError::Other(detail);
    let mut resp = http::Response::builder().status(status);
    if let Some(ct) = content_type {
        resp = resp.header(http::header::CONTENT_TYPE, ct);
    }
    let resp = resp.body(body.to_vec()).map_err(|e| bad(format!("bad answer: {e}")))?;
    let token_url = TokenUrl::new("https://token.invalid/".into()).map_err(|e| bad(e.to_string()))?;
    let cl: oauth2::Client<
        ProviderError,
        Response,
        BasicTokenIntrospectionResponse,
        StandardRevocableToken,
        BasicRevocationErrorResponse,
        EndpointNotSet,
        EndpointNotSet,
        EndpointNotSet,
        EndpointNotSet,
        oauth2::EndpointSet,
    > = oauth2::Client::new(ClientId::new("fuzz".into())).set_token_uri(token_url);
    let answer = std::cell::RefCell::new(Some(resp));
    let caller = |_req: oauth2::HttpRequest| {
        let r = answer.borrow_mut().take();
        async move { r.ok_or_else(|| EdgeError::Other("asked twice".into())) }
    };
    let req = cl.exchange_client_credentials();
    let fut = std::pin::pin!(req.request_async(&caller));
    let mut cx = Context::from_waker(Waker::noop());
    match fut.poll(&mut cx) {
        Poll::Ready(r) => r.map(to_set).map_err(|e| map_err("token endpoint", status, e)),
        Poll::Pending => Err(bad("the answer did not resolve at once".into())),
    }
}

/// POSTs a form with the provider's client authentication; returns the
/// status and body, or the provider's OAuth error for any other status than
/// those in `ok`.
async fn post_form(
    http: &reqwest::Client,
    p: &Provider,
    c: &Credentials,
    url: &Url,
    endpoint: &'static str,
    mut form: Vec<(&'static str, String)>,
    ok: &[u16],
) -> Result<(u16, Vec<u8>), EdgeError> {
    let mut rb = http.post(url.clone());
    match p.client_auth {
        ClientAuth::Basic => rb = rb.header(http::header::AUTHORIZATION, basic_authorization(c)),
        ClientAuth::Body => {
            form.push(("client_id", c.client_id.clone()));
            form.push(("client_secret", c.client_secret.expose_secret().to_string()));
        }
    }
    let unreachable = |e: reqwest::Error| EdgeError::Unreachable {
        host: crate::host_of(url.as_str()),
        detail: crate::without_url(&e),
    };
    let started = std::time::Instant::now();
    let resp = rb.form(&form).send().await.map_err(unreachable)?;
    let status = resp.status().as_u16();
    crate::log_request("POST", url.as_str(), status, started);
    let body = resp.bytes().await.map_err(unreachable)?.to_vec();
    if ok.contains(&status) {
        return Ok((status, body));
    }
    Err(match serde_json::from_slice::<ProviderError>(&body) {
        Ok(pe) if !pe.error.is_empty() => EdgeError::Rejected {
            endpoint,
            status,
            error: pe.error,
            reason: pe.reason.or(pe.error_description),
        },
        _ => EdgeError::BadResponse {
            endpoint,
            status,
            detail: "not an OAuth error response".into(),
        },
    })
}

/// Zoom's server-to-server `account_credentials` grant (not in the `oauth2`
/// crate): a form POST with the same client authentication.
pub async fn account_credentials(
    http: &reqwest::Client,
    p: &Provider,
    c: &Credentials,
    account_id: &str,
) -> Result<TokenSet, EdgeError> {
    tracing::debug!(endpoint = %p.token_url, grant = "account_credentials", "requesting a token");
    let form = vec![
        ("grant_type", "account_credentials".to_string()),
        ("account_id", account_id.to_string()),
    ];
    let (status, body) = post_form(http, p, c, &p.token_url, "token endpoint", form, &[200]).await?;
    let r: Response = serde_json::from_slice(&body).map_err(|e| EdgeError::BadResponse {
        endpoint: "token endpoint",
        status,
        detail: format!("not a token response ({e})"),
    })?;
    Ok(to_set(r))
}

/// Revokes a token (at Zoom: the whole grant).
pub async fn revoke(
    http: &reqwest::Client,
    p: &Provider,
    c: &Credentials,
    token: &SecretString,
) -> Result<(), EdgeError> {
    let Some(url) = &p.revoke_url else {
        return Err(EdgeError::Other("this provider has no revocation endpoint".into()));
    };
    tracing::debug!(endpoint = %url, "revoking");
    // Zoom wants exactly `token=...` with Basic auth; the oauth2 crate adds a
    // hint Zoom does not document, so post the form directly.
    let form = vec![("token", token.expose_secret().to_string())];
    post_form(http, p, c, url, "revoke endpoint", form, &[200, 204]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Authorization header the oauth2 crate sends for `c`.
    fn oauth2_header(c: &Credentials) -> String {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let p = Provider::new(None, "https://token.example/", None, ClientAuth::Basic, false).expect("provider");
        let cl = client(&p, c, None).expect("client");
        let seen = std::cell::RefCell::new(String::new());
        let caller = |req: oauth2::HttpRequest| {
            *seen.borrow_mut() = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            async {
                http::Response::builder()
                    .status(400)
                    .body(b"{\"error\":\"x\"}".to_vec())
                    .map_err(|e| EdgeError::Other(e.to_string()))
            }
        };
        let req = cl.exchange_client_credentials().expect("request");
        {
            let fut = std::pin::pin!(req.request_async(&caller));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(matches!(fut.poll(&mut cx), Poll::Ready(_)));
        }
        seen.borrow().clone()
    }

    /// RFC 6749 §2.3.1: one encoding for every request connapp makes, the
    /// same bytes as the oauth2 crate's, for secrets with reserved characters.
    #[test]
    fn basic_authentication_is_form_encoded_like_the_oauth2_crate() {
        for (id, secret) in [
            ("plain", "secret"),
            ("id with space", "a+b/c=d%e f:g&h"),
            ("ü:id", "ümlaut~!*'()"),
        ] {
            let c = Credentials {
                client_id: id.into(),
                client_secret: SecretString::from(secret.to_string()),
            };
            assert_eq!(basic_authorization(&c), oauth2_header(&c), "{id}");
        }
        let c = Credentials {
            client_id: "id".into(),
            client_secret: SecretString::from("a+b".to_string()),
        };
        // base64("id:a%2Bb")
        assert_eq!(basic_authorization(&c), "Basic aWQ6YSUyQmI=");
    }

    /// The status in an error is the status that came back.
    #[test]
    fn errors_name_the_status_that_came_back() {
        let status = |r: Result<TokenSet, EdgeError>| match r {
            Err(EdgeError::BadResponse { status, .. } | EdgeError::Rejected { status, .. }) => status,
            other => panic!("{other:?}"),
        };
        let html = b"<html>oops</html>".as_slice();
        assert_eq!(status(parse_token_answer(500, Some("text/html"), html)), 500);
        assert_eq!(status(parse_token_answer(200, Some("text/html"), html)), 200);
        assert_eq!(status(parse_token_answer(200, Some("application/json"), b"")), 200);
        assert_eq!(status(parse_token_answer(502, None, b"")), 502);
        let e = parse_token_answer(401, Some("application/json"), br#"{"error":"invalid_client"}"#).expect_err("401");
        assert!(
            matches!(e, EdgeError::Rejected { status: 401, ref error, .. } if error == "invalid_client"),
            "{e}"
        );
        assert!(e.to_string().contains("invalid_client"), "{e}");
        let e = parse_token_answer(503, Some("text/html"), html).expect_err("503");
        assert!(e.to_string().contains("HTTP 503"), "{e}");
        let ok = parse_token_answer(
            200,
            Some("application/json"),
            br#"{"access_token":"AT","token_type":"bearer","expires_in":60,"scope":"a b"}"#,
        )
        .expect("token");
        assert_eq!(ok.scopes.as_deref(), Some(&["a".to_string(), "b".to_string()][..]));
    }
}
