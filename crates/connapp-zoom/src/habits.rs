//! Zoom's API habits as `verify` meets them: what a failed call's code means
//! for the scope it was meant to prove (`docs/zoom-platform.md` §13–§14),
//! meeting UUIDs as path segments, and the ids a probe learns for the next.

use connapp_core::App;
use connapp_engine::verify::Outcome;
use connapp_oauth::api::{ApiError, enc};
use serde_json::Value;

/// What a failed API call means for the scope it was meant to prove.
pub fn diagnose(scope: &str, app: &App, e: &ApiError) -> (Outcome, String, String) {
    let name = &app.name;
    let reconsent = if app.target.is_some() {
        format!(
            "then consent again: in ServiceNow press \"Get OAuth Token\" on the DEX OAuth profile, and for connapp's own grant run `connapp login {name}`"
        )
    } else {
        format!("then consent again (`connapp login {name}`)")
    };
    match e {
        ApiError::Edge(e) => (
            Outcome::Fail,
            format!("Zoom could not be reached: {e}"),
            "check the network and api_base; nothing else can be proven until Zoom answers".into(),
        ),
        ApiError::Status { code: Some(4711), message, .. } => (
            Outcome::Fail,
            format!("the token does not hold {scope} (4711: {message})"),
            format!(
                "add {scope} to the Zoom app (`connapp apply`, or Scopes in the Marketplace), {reconsent}; grants keep the scopes they were issued with"
            ),
        ),
        ApiError::Status { code: Some(124), message, .. } if message.to_ascii_lowercase().contains("expired") => (
            Outcome::Fail,
            format!("Zoom says the access token expired (124: {message}) while connapp's copy says it is still valid"),
            format!("check this machine's clock, then run `connapp refresh {name}`"),
        ),
        ApiError::Status { code: Some(124), message, .. } => (
            Outcome::Fail,
            format!(
                "Zoom refused the access token (124: {message}): it was revoked, superseded by a newer token of the same grant, or belongs to another environment"
            ),
            format!("run `connapp refresh {name}`; if that fails with invalid_grant, `connapp login {name}`"),
        ),
        ApiError::Status { status: 429, rate, message, .. } => {
            let category = rate.category.as_deref().unwrap_or("unknown");
            let kind = rate.kind.as_deref().unwrap_or("per-second");
            let when = match (&rate.retry_after, kind) {
                (Some(t), _) => format!("retry after {t}"),
                (None, "Daily-limit") => "retry after midnight UTC".to_string(),
                (None, _) => "retry in a few seconds".to_string(),
            };
            (
                Outcome::Warn,
                format!("rate-limited: category {category}, {kind} limit ({message})"),
                format!(
                    "{when}; the limits are per account and shared with DEX and every other app, so avoid running verify in a loop"
                ),
            )
        }
        ApiError::Status { code: Some(200), message, .. } => (
            Outcome::Fail,
            format!("no Dashboard access (code 200: {message})"),
            "Dashboard APIs need a Business plan or higher, with Dashboard enabled for the account and for the consenting admin's role (Account Management > Account Settings / Role Management)".into(),
        ),
        ApiError::Status { code: Some(300), message, .. } => (
            Outcome::Fail,
            format!("Zoom refused the request parameters (300: {message})"),
            "report date ranges must be at most one month long and within the last six months".into(),
        ),
        ApiError::Status { code: Some(3001), message, .. } => (
            Outcome::Skip,
            format!("the meeting used for the probe is gone (3001: {message})"),
            "run verify again; it picks a recent past meeting from the report".into(),
        ),
        ApiError::Status { code: Some(12702), message, .. } => (
            Outcome::Skip,
            format!("the meeting is older than a year (12702: {message})"),
            "run verify again after a meeting has taken place".into(),
        ),
        ApiError::Status { status, code, message, .. } => (
            Outcome::Fail,
            format!(
                "HTTP {status}{}: {message}",
                code.map(|c| format!(" code {c}")).unwrap_or_default()
            ),
            "see Zoom's API reference for this endpoint".into(),
        ),
    }
}

/// A meeting UUID as a path segment: Zoom wants it double-encoded when it
/// starts with `/` or contains `//`.
pub fn meeting_segment(uuid: &str) -> String {
    if uuid.starts_with('/') || uuid.contains("//") {
        enc(&enc(uuid))
    } else {
        enc(uuid)
    }
}

/// Picks up `{meetingId}` / `{participantId}` from probe answers.
pub fn learn(body: &Value, vars: &mut Vec<(String, String)>) {
    let has = |vars: &Vec<(String, String)>, k: &str| vars.iter().any(|(x, _)| x == k);
    if !has(vars, "{meetingId}")
        && let Some(uuid) = body["meetings"]
            .as_array()
            .and_then(|l| l.iter().find_map(|m| m["uuid"].as_str()))
    {
        vars.push(("{meetingId}".into(), meeting_segment(uuid)));
    }
    if !has(vars, "{participantId}")
        && let Some(id) = body["participants"].as_array().and_then(|l| {
            l.iter()
                .find_map(|p| p["id"].as_str().filter(|s| !s.is_empty()).or(p["user_id"].as_str()))
        })
    {
        vars.push(("{participantId}".into(), enc(id)));
    }
}

#[cfg(test)]
mod tests {
    use connapp_oauth::api::RateLimit;

    use super::*;

    #[test]
    fn uuids_are_double_encoded_only_when_zoom_needs_it() {
        assert_eq!(meeting_segment("abc=="), "abc%3D%3D");
        assert_eq!(meeting_segment("/ab//c"), "%252Fab%252F%252Fc");
    }

    #[test]
    fn probes_learn_the_meeting_and_participant() {
        let mut vars = Vec::new();
        learn(&serde_json::json!({"meetings": [{"uuid": "u1=="}]}), &mut vars);
        learn(
            &serde_json::json!({"participants": [{"id": "", "user_id": "p1"}]}),
            &mut vars,
        );
        assert_eq!(
            vars,
            vec![
                ("{meetingId}".to_string(), "u1%3D%3D".to_string()),
                ("{participantId}".to_string(), "p1".to_string())
            ]
        );
    }

    fn status(status: u16, code: Option<i64>, message: &str, rate: RateLimit) -> ApiError {
        ApiError::Status {
            method: "GET".into(),
            path: "/users".into(),
            status,
            code,
            message: message.into(),
            errors: vec![],
            rate,
            tracking_id: None,
        }
    }

    #[test]
    fn zoom_codes_become_outcomes_with_a_fix() {
        let app: App = crate::tests::an_app();
        let daily = RateLimit {
            kind: Some("Daily-limit".into()),
            ..RateLimit::default()
        };
        // (HTTP status, Zoom code, message, rate limits) -> outcome, words in the detail, words in the fix
        let cases = [
            (
                400,
                Some(4711),
                "Invalid access token, does not contain scopes",
                RateLimit::default(),
                Outcome::Fail,
                "does not hold user:read:list_users:admin",
                "Get OAuth Token",
            ),
            (
                401,
                Some(124),
                "Access token is expired.",
                RateLimit::default(),
                Outcome::Fail,
                "expired",
                "clock",
            ),
            (
                401,
                Some(124),
                "Invalid access token.",
                RateLimit::default(),
                Outcome::Fail,
                "revoked",
                "connapp refresh dex-zoom",
            ),
            (429, None, "limit", daily, Outcome::Warn, "Daily-limit", "midnight UTC"),
            (
                404,
                Some(3001),
                "Meeting does not exist",
                RateLimit::default(),
                Outcome::Skip,
                "gone",
                "run verify again",
            ),
            (
                400,
                Some(300),
                "bad range",
                RateLimit::default(),
                Outcome::Fail,
                "parameters",
                "one month",
            ),
        ];
        for (http, code, message, rate, outcome, detail_has, fix_has) in cases {
            let (o, detail, fix) = diagnose("user:read:list_users:admin", &app, &status(http, code, message, rate));
            assert_eq!(o, outcome, "{http} {code:?}: {detail}");
            assert!(detail.contains(detail_has), "{http} {code:?}: {detail}");
            assert!(fix.contains(fix_has), "{http} {code:?}: {fix}");
        }
    }
}

/// Zoom's API habits as `verify` meets them ([`diagnose`], [`learn`]; code
/// 124 is a refused access token).
#[derive(Clone, Copy, Debug, Default)]
pub struct Zoom;

impl connapp_engine::verify::ApiHabits for Zoom {
    fn diagnose(&self, scope: &str, app: &App, e: &ApiError) -> (Outcome, String, String) {
        diagnose(scope, app, e)
    }
    fn token_refused(&self, e: &ApiError) -> bool {
        e.code() == Some(124)
    }
    fn learn(&self, body: &Value, vars: &mut Vec<(String, String)>) {
        learn(body, vars)
    }
}

/// Zoom's habits for an app of the platform `name` (`zoom`); `None` for any other.
pub fn of_platform(name: &str) -> Option<&'static dyn connapp_engine::verify::ApiHabits> {
    (name == "zoom").then_some(&Zoom as &dyn connapp_engine::verify::ApiHabits)
}
