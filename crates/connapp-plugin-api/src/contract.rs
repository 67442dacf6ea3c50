//! The platform contract's JSON answers as types (feature `contract`): what
//! a platform plugin returns from `platform_profile` ([`PlatformProfile`]),
//! `check_app` ([`Finding`]) and `consumer_records` ([`ConsumerRecords`]),
//! checked strictly on the host side. A missing, mistyped or unknown field is
//! an error naming the field's path — never a silent empty string.
//!
//! A plugin builds these types and serialises them with `serde_json`; the
//! host parses them back with the `parse_*` functions.
//!
//! Placeholders in values: `$ref:KEY` (the sys_id of an earlier record or
//! lookup) and `$secret:KIND` (a stored secret).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything a consumer platform wants for one app.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerRecords {
    /// Records found (never written) before the others, e.g. an alias.
    #[serde(default)]
    pub lookups: Vec<Lookup>,
    /// Records to find by `find` and create or update with `fields`, in order.
    pub records: Vec<RecordSpec>,
    /// Records to delete when no record above keeps them.
    #[serde(default)]
    pub prune: Vec<Prune>,
    /// The consumer's own consent link, if it consents itself.
    #[serde(default)]
    pub consent: Option<Consent>,
    /// The redirect URL the consumer will send to the provider.
    #[serde(default)]
    pub redirect_url: Option<String>,
}

/// A record looked up, not written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// The name `$ref:` uses.
    pub key: String,
    /// The table.
    pub table: String,
    /// The consumer's query.
    pub query: String,
    /// For humans.
    pub label: String,
    /// A match to skip (e.g. another product's alias).
    #[serde(default)]
    pub not: Option<String>,
}

/// A record to create or update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// The name `$ref:` uses.
    pub key: String,
    /// The table.
    pub table: String,
    /// For humans.
    pub label: String,
    /// The fields that identify it.
    pub find: BTreeMap<String, String>,
    /// The fields it must have.
    pub fields: BTreeMap<String, String>,
    /// Fields written once, never read back (secrets).
    #[serde(default)]
    pub write_only: BTreeMap<String, String>,
    /// The key of the record whose creation also creates this one.
    #[serde(default)]
    pub created_by: Option<String>,
}

/// Records of a table to delete unless a record above has their key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prune {
    /// The table.
    pub table: String,
    /// Which of its records are candidates.
    pub find: BTreeMap<String, String>,
    /// Keys with this prefix keep theirs.
    pub keep_prefix: String,
}

/// The consumer's consent link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// The path on the consumer.
    pub path: String,
    /// Its query.
    pub query: BTreeMap<String, String>,
}

/// How a platform behaves and speaks, beyond its endpoints (API 1.3; the
/// consumer's fields since 1.5): what the host needs to run the same token service, login, verify
/// and declaration checks for every platform without naming any. Every field
/// has a default, so a platform states only where it differs from plain
/// RFC 6749. Later API versions append fields: build it with
/// `..Default::default()` so that a newer API crate still compiles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlatformProfile {
    /// The provider's name in messages (`Zoom`); empty: the platform's name.
    pub display: String,
    /// A path every API call sits under, below the API base (Zoom: `/v2`).
    pub api_path: String,
    /// Where a user copies the Client ID and Client Secret from, for hints
    /// (`the app's page in the Zoom Marketplace`).
    pub credentials_source: String,
    /// Shown before a login: `{who}` is the user hint or "the user you sign
    /// in with", `{app}` the app's display name. `None`: nothing to say.
    pub login_note: Option<String>,
    /// Why the provider refuses a refresh token (`invalid_grant`), one reason
    /// per line; empty: RFC 6749's reasons.
    pub refresh_rejected: Vec<String>,
    /// Text in a refused code exchange that means "the redirect URL differs
    /// from the authorize request's" (Zoom: `4709`), matched case-insensitively.
    pub redirect_mismatch: Vec<String>,
    /// Text in the authorize endpoint's answer that means "this redirect URL
    /// is not registered" (Zoom: `4700`), matched case-insensitively in an
    /// HTTP 4xx answer; empty: RFC 6749 §4.1.2.1's `redirect_uri` in the error.
    pub redirect_refused: Vec<String>,
    /// Apps must say whether they are admin- or user-managed (`usage`; API 1.4).
    pub requires_usage: bool,
    /// The platform offers `account_credentials`: a token without a user for
    /// an account id (Zoom's Server-to-Server OAuth; API 1.4).
    pub account_grant: bool,
    /// A management app (`managed_by`) must request a scope starting with
    /// this (Zoom: `marketplace:`); empty: no such rule (API 1.4).
    pub management_scope_prefix: String,
    /// The longest display name the platform takes, in characters; 0: no
    /// limit (Zoom: 49, "under 50"; API 1.4).
    pub display_name_max_chars: u32,
    /// A consumer's OAuth callback below a target's base URL (ServiceNow:
    /// `/oauth_redirect.do`): an app whose target is of this kind must
    /// redirect there. Empty: the consumer has no fixed callback (API 1.5).
    pub redirect_path: String,
    /// A consumer's base URL for a target named by `instance = "NAME"`, with
    /// `{instance}` where the name goes (ServiceNow:
    /// `https://{instance}.service-now.com`). Empty: targets give
    /// `instance_url` only (API 1.5).
    pub instance_url_template: String,
    /// The settings a target of this consumer takes beyond `kind`,
    /// `instance`, `instance_url` and `auth`, all strings (ServiceNow:
    /// `alias`, `entity_name`, `connection_name`). They reach the plugin in
    /// the target view; their values are its to check (`check_app` with
    /// findings at `target.NAME`). Any other key is an unknown field (API 1.5).
    pub target_settings: Vec<String>,
    /// Where a user's grant says whose it is: a GET below the API base and
    /// `api_path` answered as that user (Zoom: `/users/me`). Empty: the
    /// provider has no such call, and connapp names no user (API 1.6).
    pub user_path: String,
    /// The fields of that answer that name the user, the first one present
    /// wins (Zoom: `email`, then `id`) (API 1.6).
    pub user_fields: Vec<String>,
}

/// One problem a platform finds in an app (`check_app`, API 1.3), reported
/// by `connapp check` like its own diagnostics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// The field below the app, e.g. `scopes[1]` or `display_name`; empty:
    /// the app as a whole.
    pub field: String,
    /// A stable rule id, e.g. `acme-scope-grammar`.
    pub rule: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
    /// `error` (the default) or `warning`.
    #[serde(default)]
    pub severity: FindingSeverity,
}

/// How bad a [`Finding`] is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingSeverity {
    /// The declaration cannot be used.
    #[default]
    Error,
    /// It can, but probably not as meant.
    Warning,
}

/// Plugin side: the JSON the host sent (an app, a consumer's input), or the
/// error that says it is not JSON.
pub fn parse_input(json: &str) -> Result<serde_json::Value, crate::StoreError> {
    parse_input_as(json)
}

/// Plugin side: the parts of the host's JSON that `T` names; the rest is
/// skipped without being built (a fleet's check sends thousands of apps).
pub fn parse_input_as<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, crate::StoreError> {
    serde_json::from_str(json).map_err(|e| {
        crate::StoreError::new(
            crate::ErrorCode::INVALID_INPUT,
            format!("the host sent input that is not JSON: {e}"),
        )
    })
}

/// Plugin side: an answer (a profile, findings, records) as the JSON the
/// host parses back.
pub fn answer<T: Serialize>(value: &T) -> Result<Option<String>, crate::StoreError> {
    serde_json::to_string(value)
        .map(Some)
        .map_err(|e| crate::StoreError::new(crate::ErrorCode::OTHER, e.to_string()))
}

/// A platform entry point's answer (`platform_profile`, `check_app`): `f`'s
/// value as JSON when the host asks about `platform` and it is `mine`;
/// `None` (not this plugin's platform) otherwise, without calling `f`
/// (API 1.5).
pub fn answer_for<T: Serialize>(
    platform: &str,
    mine: &str,
    f: impl FnOnce() -> Result<T, crate::StoreError>,
) -> Result<Option<String>, crate::StoreError> {
    if platform != mine {
        return Ok(None);
    }
    answer(&f()?)
}

/// A plugin answer that does not fit the contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractError {
    /// The field, e.g. `records[3].table` (`.` for the whole answer).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for ContractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ContractError {}

/// Parses a `consumer_records` answer strictly.
pub fn parse_consumer_records(json: &str) -> Result<ConsumerRecords, ContractError> {
    parse(json)
}

/// Parses a `platform_profile` answer strictly.
pub fn parse_platform_profile(json: &str) -> Result<PlatformProfile, ContractError> {
    parse(json)
}

/// Parses a `check_app` answer (a JSON array of findings) strictly.
pub fn parse_findings(json: &str) -> Result<Vec<Finding>, ContractError> {
    parse(json)
}

fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, ContractError> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        // serde's message names the field itself; keep it short.
        let message = e.inner().to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        ContractError { path, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"records":[{"key":"p","table":"t","label":"l","find":{"name":"n"},"fields":{"name":"n"}}]}"#;

    #[test]
    fn a_good_answer_parses_and_a_bad_one_names_the_field() {
        let r = parse_consumer_records(GOOD).expect("good");
        assert_eq!(r.records[0].table, "t");
        let e = parse_consumer_records(r#"{"records":[{"key":"p","label":"l","find":{},"fields":{}}]}"#)
            .expect_err("no table");
        assert_eq!(e.path, "records[0]");
        assert!(e.message.contains("table"), "{e}");
        let e = parse_consumer_records(r#"{"records":[{"key":"p","table":3,"label":"l","find":{},"fields":{}}]}"#)
            .expect_err("not a string");
        assert_eq!(e.path, "records[0].table");
        let e = parse_consumer_records(r#"{"records":[],"recrods":[]}"#).expect_err("unknown");
        assert!(e.message.contains("recrods"), "{e}");
        assert!(parse_consumer_records("not json").is_err());
    }

    #[test]
    fn a_profile_defaults_every_field_and_refuses_unknown_ones() {
        let p = parse_platform_profile("{}").expect("empty");
        assert_eq!(p, PlatformProfile::default());
        let p = parse_platform_profile(r#"{"display":"Acme","api_path":"/v1"}"#).expect("some");
        assert_eq!((p.display.as_str(), p.api_path.as_str()), ("Acme", "/v1"));
        let e = parse_platform_profile(r#"{"api_pth":"/v1"}"#).expect_err("typo");
        assert!(e.message.contains("api_pth"), "{e}");
        let e = parse_platform_profile(r#"{"refresh_rejected":"one"}"#).expect_err("not a list");
        assert_eq!(e.path, "refresh_rejected");
    }

    #[test]
    fn findings_default_to_errors_and_name_a_bad_field() {
        let f = parse_findings(r#"[{"field":"scopes[0]","rule":"r","message":"m","fix":"x"}]"#).expect("one");
        assert_eq!(f[0].severity, FindingSeverity::Error);
        let f = parse_findings(r#"[{"field":"","rule":"r","message":"m","fix":"x","severity":"warning"}]"#)
            .expect("warning");
        assert_eq!(f[0].severity, FindingSeverity::Warning);
        let e = parse_findings(r#"[{"field":"","rule":"r","message":"m","fix":"x","severity":"fatal"}]"#)
            .expect_err("unknown severity");
        assert_eq!(e.path, "[0].severity");
        let e = parse_findings(r#"[{"field":"","rule":"r","message":"m"}]"#).expect_err("no fix");
        assert!(e.message.contains("fix"), "{e}");
    }

    #[test]
    fn an_answer_is_for_its_own_platform_only() {
        let asked = std::cell::Cell::new(0);
        let f = || {
            asked.set(asked.get() + 1);
            Ok(PlatformProfile {
                display: "Acme".into(),
                ..Default::default()
            })
        };
        assert_eq!(answer_for("other", "acme", f).expect("ok"), None);
        assert_eq!(asked.get(), 0, "not asked for another platform");
        let got = answer_for("acme", "acme", f).expect("ok").expect("some");
        assert_eq!(parse_platform_profile(&got).expect("fits").display, "Acme");
        let failed = answer_for::<PlatformProfile>("acme", "acme", || {
            Err(crate::StoreError::new(crate::ErrorCode::INVALID_INPUT, "bad input"))
        });
        assert!(failed.is_err());
    }
}
