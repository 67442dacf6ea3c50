//! connapp's Zoom client: the Marketplace manifest calls `connapp plan` and
//! `apply` use (`docs/zoom-platform.md` §17) — export, validate, replace,
//! create — over the REST caller of `connapp-oauth` (which reads Zoom's error
//! bodies, rate-limit headers and tracking ids); the Marketplace setup
//! procedure a person follows by hand ([`guide`]); the Zoom app as code
//! through its management app — plan, create, update, confirm, restore
//! ([`admin`]); what Zoom's API answers mean when `verify` proves a scope
//! ([`habits`]); and how Zoom signs webhook events ([`webhook`]).
//!
//! What it is **not**: the OAuth flows or the HTTP policy (those are
//! `connapp-oauth`'s), or Zoom's declaration rules (the `platform-zoom` plugin
//! checks scopes and manifests; this crate only sends them).

use connapp_oauth::api::{Api, ApiError, enc};
use connapp_plugin_api::zeroize::Zeroizing;
use reqwest::Method;
use serde_json::{Value, json};

pub mod admin;
pub mod guide;
pub mod habits;
pub mod webhook;

/// The platform connapp's Zoom plugin provides (`platform = "zoom"`).
pub const PLATFORM: &str = "zoom";

/// Zoom's tracking id header, which Zoom support asks for.
pub const TRACKING_HEADER: &str = "x-zm-trackingid";

/// A REST caller for Zoom's API at `root` with `token`, reading Zoom's tracking id.
pub fn api(http: &reqwest::Client, root: &str, token: &secrecy::SecretString) -> Result<Api, connapp_oauth::EdgeError> {
    Ok(Api::new(http.clone(), root, token.clone())?.with_tracking_header(TRACKING_HEADER))
}

/// The scopes a Zoom app manifest lists under `oauth_information.scopes`.
pub fn manifest_scopes(manifest: &Value) -> Vec<String> {
    manifest
        .pointer("/oauth_information/scopes")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|s| s.get("scope").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The redirect URLs a Zoom app manifest registers (development and production).
pub fn redirect_urls(manifest: &serde_json::Value) -> Vec<String> {
    let o = &manifest["oauth_information"];
    ["development_redirect_uri", "production_redirect_uri"]
        .iter()
        .filter_map(|k| o[*k].as_str().map(str::to_string))
        .collect()
}

/// Every URL a Zoom app manifest lets a consent return to: the redirect URLs
/// and the allow list.
pub fn allowed_redirects(manifest: &serde_json::Value) -> Vec<String> {
    let mut v = redirect_urls(manifest);
    v.extend(
        manifest["oauth_information"]["oauth_allow_list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string)),
    );
    v
}

/// When Zoom stops accepting the old Client Secret of a rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoke {
    /// At once.
    Now,
    /// At this time (unix seconds; at most 30 days ahead).
    At(u64),
}

impl Revoke {
    fn wire(self) -> String {
        match self {
            Revoke::Now => "now".into(),
            Revoke::At(t) => chrono::DateTime::from_timestamp(t as i64, 0)
                .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "now".into()),
        }
    }
}

/// A rotation started: the new Client Secret (wrapped) and when Zoom said
/// the old one stops working.
pub struct Rotated {
    /// The new Client Secret.
    pub client_secret: Zeroizing<String>,
    /// The old secret's revocation time, as Zoom wrote it.
    pub revoke_old_at: Option<String>,
    /// The app's Client ID, when the answer carries it.
    pub client_id: Option<String>,
}

impl std::fmt::Debug for Rotated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotated")
            .field("client_secret", &"<redacted>")
            .field("revoke_old_at", &self.revoke_old_at)
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// The Marketplace calls, made with a management app's token.
#[derive(Debug, Clone, Copy)]
pub struct Marketplace<'a> {
    api: &'a Api,
}

impl<'a> Marketplace<'a> {
    /// The Marketplace of `api`'s base (e.g. `https://api.zoom.us/v2`).
    pub fn new(api: &'a Api) -> Self {
        Marketplace { api }
    }

    /// Exports an app's manifest (`GET /marketplace/apps/{appId}/manifest`).
    pub async fn export_manifest(&self, app_id: &str) -> Result<Value, ApiError> {
        let v = self
            .api
            .get(&format!("/marketplace/apps/{}/manifest", enc(app_id)), &[])
            .await?;
        Ok(v.get("manifest").cloned().unwrap_or(Value::Null))
    }

    /// Validates a manifest. Zoom answers 200 even when it is invalid: the
    /// result is the list of `(setting, message)` problems, empty when valid.
    pub async fn validate_manifest(
        &self,
        manifest: &Value,
        app_id: Option<&str>,
    ) -> Result<Vec<(String, String)>, ApiError> {
        let mut body = json!({ "manifest": manifest });
        if let Some(id) = app_id {
            body["app_id"] = json!(id);
        }
        let v = self
            .api
            .call(Method::POST, "/marketplace/apps/manifest/validate", &[], Some(&body))
            .await?
            .body;
        if v.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(Vec::new());
        }
        let mut problems: Vec<(String, String)> = v
            .get("errors")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .map(|e| {
                        (
                            e.get("setting").and_then(Value::as_str).unwrap_or("").to_string(),
                            e.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if problems.is_empty() {
            problems.push((
                String::new(),
                "Zoom did not accept the manifest and gave no reason".into(),
            ));
        }
        Ok(problems)
    }

    /// Replaces an app's configuration with `manifest` (a full replacement).
    pub async fn replace_manifest(&self, app_id: &str, manifest: &Value) -> Result<(), ApiError> {
        self.api
            .call(
                Method::PUT,
                &format!("/marketplace/apps/{}/manifest", enc(app_id)),
                &[],
                Some(&json!({ "manifest": manifest })),
            )
            .await
            .map(|_| ())
    }

    /// Starts a rotation of the app's Client Secret (`action: new`): the
    /// answer carries the new secret, and the old one keeps working until
    /// `revoke_old`. The new secret comes back wrapped: never logged.
    /// `None`: Zoom started the rotation but its answer held no secret (copy
    /// it from the app's credentials page).
    pub async fn start_secret_rotation(&self, app_id: &str, revoke_old: Revoke) -> Result<Option<Rotated>, ApiError> {
        let body = json!({"action": "new", "revoke_old_secret_time": revoke_old.wire()});
        let mut answer = self
            .api
            .call(
                Method::POST,
                &format!("/marketplace/apps/{}/rotate_client_secret", enc(app_id)),
                &[],
                Some(&body),
            )
            .await?
            .body;
        let secret = match answer.get_mut("client_secret").map(Value::take) {
            Some(Value::String(s)) => Zeroizing::new(s),
            _ => return Ok(None),
        };
        Ok(Some(Rotated {
            client_secret: secret,
            revoke_old_at: answer
                .get("revoke_old_secret_time")
                .and_then(Value::as_str)
                .map(str::to_string),
            client_id: answer.get("client_id").and_then(Value::as_str).map(str::to_string),
        }))
    }

    /// Moves the revocation of the old secret of the rotation in progress
    /// (`action: update`); [`Revoke::Now`] ends the overlap.
    pub async fn reschedule_secret_revocation(&self, app_id: &str, revoke_old: Revoke) -> Result<(), ApiError> {
        let body = json!({"action": "update", "revoke_old_secret_time": revoke_old.wire()});
        self.api
            .call(
                Method::POST,
                &format!("/marketplace/apps/{}/rotate_client_secret", enc(app_id)),
                &[],
                Some(&body),
            )
            .await
            .map(|_| ())
    }

    /// Creates a General app from a manifest. The answer holds `app_id` and
    /// (usually) `credentials.client_id` / `client_secret`: handle with care.
    pub async fn create_app(&self, name: &str, manifest: &Value) -> Result<Value, ApiError> {
        let body = json!({"app_type": "general", "app_name": name, "manifest": manifest});
        self.api
            .call(Method::POST, "/marketplace/apps", &[], Some(&body))
            .await
            .map(|a| a.body)
    }

    /// The ids of the apps this account created that are called `name`
    /// (`GET /marketplace/apps?type=account_created`, every page of 300).
    pub async fn apps_called(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let mut ids = Vec::new();
        let mut next = String::new();
        // Pages are bounded: 100 pages of 300 apps is more than an account holds.
        for _ in 0..100 {
            let mut query = vec![
                ("type".to_string(), "account_created".to_string()),
                ("page_size".to_string(), "300".to_string()),
            ];
            if !next.is_empty() {
                query.push(("next_page_token".to_string(), next.clone()));
            }
            let page = self.api.get("/marketplace/apps", &query).await?;
            for app in page.get("apps").and_then(Value::as_array).into_iter().flatten() {
                if app.get("app_name").and_then(Value::as_str) == Some(name)
                    && let Some(id) = app.get("app_id").and_then(Value::as_str)
                {
                    ids.push(id.to_string());
                }
            }
            next = page
                .get("next_page_token")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if next.is_empty() {
                break;
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests;
