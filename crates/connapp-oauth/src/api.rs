//! Calling a provider's REST API with an access token, and reading its
//! errors as a JSON object with a numeric `code`, a `message` and field
//! `errors` (Zoom's shape, `docs/zoom-platform.md` §13–§14, and a common one),
//! the rate-limit headers and, when the client names its header, the
//! provider's tracking id.
//!
//! The calls of one provider's API (Zoom's Marketplace manifests) live in
//! that provider's client crate (`connapp-zoom`), over [`Api::call`].

use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::{EdgeError, host_of, unreachable, without_url};

/// What a rate-limited or failed response said about the limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RateLimit {
    /// `X-RateLimit-Category`: Light, Medium, Heavy, Resource-intensive.
    pub category: Option<String>,
    /// `X-RateLimit-Type`: QPS or Daily-limit.
    pub kind: Option<String>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<String>,
    /// `Retry-After` (Zoom: an ISO-8601 time for daily limits).
    pub retry_after: Option<String>,
}

/// A refused API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error status.
    #[error("{method} {path} answered HTTP {status}{}: {message}", code.map(|c| format!(" code {c}")).unwrap_or_default())]
    Status {
        /// Method.
        method: String,
        /// Path (no query, which may hold parameters worth keeping private).
        path: String,
        /// HTTP status.
        status: u16,
        /// Zoom's numeric code, when the body has one.
        code: Option<i64>,
        /// The message (or the start of a body that is not a JSON error).
        message: String,
        /// Field-level errors (`errors: [{field|setting, message}]`).
        errors: Vec<(String, String)>,
        /// Rate-limit headers.
        rate: RateLimit,
        /// The provider's tracking id (the header [`Api::with_tracking_header`] names), for its support.
        tracking_id: Option<String>,
    },
    /// The network edge failed (unreachable, timeout, policy).
    #[error(transparent)]
    Edge(#[from] EdgeError),
}

impl ApiError {
    /// Zoom's numeric code, if any.
    pub fn code(&self) -> Option<i64> {
        match self {
            ApiError::Status { code, .. } => *code,
            ApiError::Edge(_) => None,
        }
    }
    /// The HTTP status, if the API answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::Edge(_) => None,
        }
    }
    /// The message, if the API answered.
    pub fn message(&self) -> &str {
        match self {
            ApiError::Status { message, .. } => message,
            ApiError::Edge(_) => "",
        }
    }
}

/// An authenticated client for one API base.
/// `Debug` shows no token: `SecretString` redacts itself.
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: SecretString,
    tracking_header: Option<&'static str>,
}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The JSON body (`Null` when empty).
    pub body: Value,
}

impl Api {
    /// A client for `base` (e.g. `https://api.zoom.us/v2`) sending `token` as a bearer token.
    pub fn new(http: reqwest::Client, base: &str, token: SecretString) -> Result<Self, EdgeError> {
        let base = crate::base_url("API base", base)?;
        Ok(Api {
            http,
            base,
            token,
            tracking_header: None,
        })
    }

    /// Reads the provider's tracking id from `header` of failed answers (Zoom: `x-zm-trackingid`).
    pub fn with_tracking_header(mut self, header: &'static str) -> Self {
        self.tracking_header = Some(header);
        self
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One call. `path` starts with `/` and may already be percent-encoded.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Answer, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut rb = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(self.token.expose_secret())
            .timeout(Duration::from_secs(30));
        if !query.is_empty() {
            rb = rb.query(query);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let started = std::time::Instant::now();
        let resp = rb.send().await.map_err(|e| unreachable(&url, &e))?;
        let status = resp.status().as_u16();
        crate::log_request(method.as_str(), &url, status, started);
        let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let rate = RateLimit {
            category: header("x-ratelimit-category"),
            kind: header("x-ratelimit-type"),
            remaining: header("x-ratelimit-remaining"),
            retry_after: header("retry-after"),
        };
        let tracking_id = self.tracking_header.and_then(header);
        tracing::debug!(%method, path, status, "api response");
        let bytes = resp.bytes().await.map_err(|e| EdgeError::Unreachable {
            host: host_of(&url),
            detail: without_url(&e),
        })?;
        let parsed: Option<Value> = if bytes.is_empty() {
            Some(Value::Null)
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        if (200..300).contains(&status) {
            return match parsed {
                Some(body) => Ok(Answer { status, body }),
                None => Err(EdgeError::BadResponse {
                    endpoint: "API",
                    status,
                    detail: "the body is not JSON".into(),
                }
                .into()),
            };
        }
        let (code, message, errors) = match &parsed {
            Some(v) if v.is_object() => (
                v.get("code").and_then(Value::as_i64),
                v.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
                v.get("errors")
                    .and_then(Value::as_array)
                    .map(|l| {
                        l.iter()
                            .map(|e| {
                                let f = e
                                    .get("field")
                                    .or_else(|| e.get("setting"))
                                    .and_then(Value::as_str)
                                    .unwrap_or("");
                                let m = e.get("message").and_then(Value::as_str).unwrap_or("");
                                (f.to_string(), m.to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => {
                let text = String::from_utf8_lossy(&bytes);
                let first: String = text.chars().take(120).collect();
                (None, format!("a body that is not a JSON error: {first:?}"), Vec::new())
            }
        };
        Err(ApiError::Status {
            method: method.to_string(),
            path: path.to_string(),
            status,
            code,
            message,
            errors,
            rate,
            tracking_id,
        })
    }

    /// `GET path` with query parameters.
    pub async fn get(&self, path: &str, query: &[(String, String)]) -> Result<Value, ApiError> {
        self.call(Method::GET, path, query, None).await.map(|a| a.body)
    }
}

/// Percent-encodes one path segment.
pub fn enc(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
