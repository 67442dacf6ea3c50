//! connapp's ServiceNow client: one instance's Table API (`docs/servicenow.md` §3) as connapp uses it:
//! list / create / patch / delete, and the Attachment API's upload; basic or bearer authentication (bearer from
//! client credentials at `/oauth_token.do`), and the instance's failures told
//! apart: bad credentials (401), missing role (403), missing record (404),
//! rate-limit rule (429 + Retry-After seconds) and a hibernating instance (HTML
//! instead of JSON).
//!
//! On top of it: [`consumer`] executes what a consumer platform plugin wants
//! (lookups, records in order, write-only secrets, prunes, the consent link)
//! (and hands the provider record a rotated Client Secret), [`verify`] checks
//! the chain for `connapp verify`, and [`change`] files a change's evidence
//! on a change request.
//!
//! What it is **not**: the DEX record chain (which records, which fields: that
//! is data from the `platform-servicenow` plugin) or an HTTP policy of its own
//! (the client and the endpoint rules come from `connapp-oauth`).

/// The consumer platform connapp's ServiceNow plugin provides (`kind = "servicenow"`).
pub const PLATFORM: &str = "servicenow";

pub mod change;
pub mod consumer;
pub mod records;
pub mod verify;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use connapp_oauth::flows::{self, ClientAuth, Credentials, Provider};
use connapp_oauth::{EdgeError, unreachable};

/// How connapp signs in.
pub enum Auth {
    /// Basic authentication.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: SecretString,
    },
    /// A bearer token (from `/oauth_token.do`).
    Bearer(SecretString),
}

/// A refused Table API call.
#[derive(Debug, thiserror::Error)]
pub enum SnError {
    /// 401.
    #[error("the instance refused the credentials (HTTP 401: {message})")]
    Unauthorized {
        /// ServiceNow's message.
        message: String,
    },
    /// 403.
    #[error("ServiceNow refused to {op} {table} (HTTP 403: {detail})")]
    Forbidden {
        /// read, create, update, delete.
        op: &'static str,
        /// The table.
        table: String,
        /// ServiceNow's detail.
        detail: String,
    },
    /// 404.
    #[error("{table} has no record {id} (or an ACL hides it)")]
    NotFound {
        /// The table.
        table: String,
        /// The sys_id.
        id: String,
    },
    /// 429.
    #[error("the instance's rate-limit rule refused the call (HTTP 429); retry in {retry_after} s")]
    RateLimited {
        /// Seconds.
        retry_after: u64,
    },
    /// HTML instead of JSON.
    #[error(
        "{base} answered with an HTML page instead of JSON: the instance is hibernating (a developer instance asleep) or this is not a ServiceNow instance"
    )]
    Asleep {
        /// The instance URL.
        base: String,
    },
    /// Any other failure status.
    #[error("ServiceNow answered HTTP {status} to {op} {table}: {message}{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Status {
        /// Status.
        status: u16,
        /// Operation.
        op: &'static str,
        /// Table.
        table: String,
        /// Message.
        message: String,
        /// Detail.
        detail: Option<String>,
    },
    /// The network.
    #[error(transparent)]
    Edge(#[from] EdgeError),
}

/// What a request carries.
enum Body<'a> {
    None,
    Json(&'a Value),
    Raw { content_type: &'a str, bytes: &'a [u8] },
}

/// One instance.
pub struct Instance {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("base", &self.base)
            .field("auth", &"<redacted>")
            .finish()
    }
}

/// A row as the Table API returns it with `sysparm_exclude_reference_link=true`
/// (every value a string).
pub type Record = Map<String, Value>;

impl Instance {
    /// An instance at `base` (e.g. `https://acme.service-now.com`).
    pub fn new(http: reqwest::Client, base: &str, auth: Auth) -> Result<Self, EdgeError> {
        let base = connapp_oauth::base_url("ServiceNow instance URL", base)?;
        Ok(Instance { http, base, auth })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A bearer token for connapp's own OAuth client (client credentials).
    pub async fn client_credentials(
        http: &reqwest::Client,
        base: &str,
        client_id: &str,
        client_secret: &SecretString,
    ) -> Result<SecretString, SnError> {
        let url = format!("{}/oauth_token.do", base.trim_end_matches('/'));
        // The one OAuth client path (flows): ServiceNow takes the client's
        // credentials in the body (client_secret_post).
        let provider = Provider::new(None, &url, None, ClientAuth::Body, false)?;
        let creds = Credentials {
            client_id: client_id.to_string(),
            client_secret: client_secret.clone(),
        };
        match flows::client_credentials(http, &provider, &creds).await {
            Ok(set) => Ok(set.access_token),
            // A hibernating instance answers its HTML wake-up page.
            Err(EdgeError::BadResponse { .. }) => Err(SnError::Asleep { base: base.to_string() }),
            Err(EdgeError::Rejected { error, reason, .. }) => Err(SnError::Unauthorized {
                message: format!(
                    "{error} {} from /oauth_token.do; is client_credentials enabled (glide.oauth.inbound.client.credential.grant_type.enabled)?",
                    reason.unwrap_or_default()
                ),
            }),
            Err(e) => Err(SnError::Edge(e)),
        }
    }

    async fn send(
        &self,
        method: Method,
        op: &'static str,
        table: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Value, SnError> {
        let url = format!("{}{path}", self.base);
        let mut rb = self
            .http
            .request(method.clone(), &url)
            .header("accept", "application/json");
        rb = match &self.auth {
            Auth::Basic { user, password } => rb.basic_auth(user, Some(password.expose_secret())),
            Auth::Bearer(t) => rb.bearer_auth(t.expose_secret()),
        };
        if !query.is_empty() {
            rb = rb.query(query);
        }
        match body {
            Body::None => {}
            Body::Json(b) => rb = rb.json(b),
            Body::Raw { content_type, bytes } => {
                rb = rb.header("content-type", content_type).body(bytes.to_vec());
            }
        }
        let started = std::time::Instant::now();
        let r = rb.send().await.map_err(|e| unreachable(&url, &e))?;
        let status = r.status().as_u16();
        connapp_oauth::log_request(method.as_str(), &url, status, started);
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        tracing::debug!(op, table, status, "servicenow response");
        let bytes = r.bytes().await.map_err(|e| unreachable(&url, &e))?;
        if status == 204 {
            return Ok(Value::Null);
        }
        let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
            return Err(SnError::Asleep {
                base: self.base.clone(),
            });
        };
        if (200..300).contains(&status) {
            return Ok(v.get("result").cloned().unwrap_or(Value::Null));
        }
        let message = v
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let detail = v.pointer("/error/detail").and_then(Value::as_str).map(str::to_string);
        Err(match status {
            401 => SnError::Unauthorized { message },
            403 => SnError::Forbidden {
                op,
                table: table.to_string(),
                detail: detail.unwrap_or(message),
            },
            404 => SnError::NotFound {
                table: table.to_string(),
                id: path.rsplit('/').next().unwrap_or("").to_string(),
            },
            429 => SnError::RateLimited { retry_after },
            _ => SnError::Status {
                status,
                op,
                table: table.to_string(),
                message,
                detail,
            },
        })
    }

    /// Rows of `table` matching the encoded `query`, references as plain sys_ids.
    pub async fn list(&self, table: &str, query: &str, fields: &[&str]) -> Result<Vec<Record>, SnError> {
        self.list_first(table, query, fields, None).await
    }

    /// The first `limit` rows of `table` matching `query` (its `ORDERBY` says
    /// which come first); all of them (the instance's default limit) with `None`.
    pub async fn list_first(
        &self,
        table: &str,
        query: &str,
        fields: &[&str],
        limit: Option<usize>,
    ) -> Result<Vec<Record>, SnError> {
        let fields = fields.join(",");
        let limit = limit.map(|n| n.to_string());
        let mut q = vec![("sysparm_query", query), ("sysparm_exclude_reference_link", "true")];
        if !fields.is_empty() {
            q.push(("sysparm_fields", fields.as_str()));
        }
        if let Some(n) = &limit {
            q.push(("sysparm_limit", n.as_str()));
        }
        let v = self
            .send(
                Method::GET,
                "read",
                table,
                &format!("/api/now/table/{table}"),
                &q,
                Body::None,
            )
            .await?;
        Ok(v.as_array()
            .map(|l| l.iter().filter_map(|r| r.as_object().cloned()).collect())
            .unwrap_or_default())
    }

    /// Creates a row; returns it.
    pub async fn create(&self, table: &str, fields: &Value) -> Result<Record, SnError> {
        let v = self
            .send(
                Method::POST,
                "create",
                table,
                &format!("/api/now/table/{table}"),
                &[("sysparm_exclude_reference_link", "true")],
                Body::Json(fields),
            )
            .await?;
        Ok(v.as_object().cloned().unwrap_or_default())
    }

    /// Updates fields of a row. `display_input` sends
    /// `sysparm_input_display_value=true`, the only way encrypted (password2)
    /// fields are stored correctly; keep reference fields out of such a call.
    pub async fn patch(&self, table: &str, id: &str, fields: &Value, display_input: bool) -> Result<(), SnError> {
        let mut q = vec![("sysparm_exclude_reference_link", "true")];
        if display_input {
            q.push(("sysparm_input_display_value", "true"));
            // The answer would hold the encrypted field's placeholder: not needed.
            q.push(("sysparm_fields", "sys_id"));
        }
        self.send(
            Method::PATCH,
            "update",
            table,
            &format!("/api/now/table/{table}/{id}"),
            &q,
            Body::Json(fields),
        )
        .await
        .map(|_| ())
    }

    /// Deletes a row.
    /// Attaches a file to the record `id` of `table` (the Attachment API:
    /// `POST /api/now/attachment/file`, the file as the raw body); returns
    /// the attachment's metadata.
    pub async fn attach(
        &self,
        table: &str,
        id: &str,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<Record, SnError> {
        let v = self
            .send(
                Method::POST,
                "attach a file to",
                table,
                "/api/now/attachment/file",
                &[("table_name", table), ("table_sys_id", id), ("file_name", file_name)],
                Body::Raw { content_type, bytes },
            )
            .await?;
        Ok(v.as_object().cloned().unwrap_or_default())
    }

    pub async fn delete(&self, table: &str, id: &str) -> Result<(), SnError> {
        self.send(
            Method::DELETE,
            "delete",
            table,
            &format!("/api/now/table/{table}/{id}"),
            &[],
            Body::None,
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests;
