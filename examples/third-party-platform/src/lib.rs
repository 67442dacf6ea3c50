//! A third-party platform plugin for connapp, built out of tree against
//! `connapp-plugin-api` alone: **Acme ID**, a standards-following OAuth 2.0
//! provider (RFC 6749 code flow with PKCE, refresh, client credentials, RFC
//! 7009 revocation) with its own endpoints, scope grammar and wording.
//!
//! - Endpoints: `https://id.acme.example/{authorize,token,revoke}`; a
//!   declaration may re-base them (`oauth_base`) onto a test server, which
//!   keeps these paths.
//! - API: `https://api.acme.example`, every call under `/api`.
//! - Scopes: `resource.action`, with a known resource and `read` or
//!   `write`; connapp reports a scope that breaks this grammar at its place
//!   in the declaration, in Acme's words ([`check`]).
//! - A preset, `acme-profile`, whose scope connapp's `verify` proves with
//!   `GET /me`.
//! - A consumer platform, **Acme Desk** (`acme-desk`): a target kind whose
//!   instances live at `https://NAME.desk.acme.example`, take OAuth callbacks
//!   at `/oauth/callback` and name a `workspace` ([`desk_profile`],
//!   [`check_target`]). connapp checks such a target; it has no client that
//!   writes Acme Desk's records.
//!
//! Install: copy the library into a plugin directory connapp trusts
//! (`$CONNAPP_DATA_DIR/plugins/`, or one named in `CONNAPP_PLUGIN_PATH`).

use connapp_plugin_api::contract::{self, Finding, FindingSeverity, PlatformProfile};
use connapp_plugin_api::{
    Platform, Plugin, PluginInfo, PluginKind, Preset, PresetScope, Probe, Provided, StoreError, export_plugin,
    plugin_info,
};
use serde_json::Value;

/// The name declarations use.
pub const NAME: &str = "acme-id";

/// The consumer platform's name (`kind = "acme-desk"` in a target).
pub const DESK: &str = "acme-desk";

/// The resources Acme ID has scopes for.
pub const RESOURCES: &[&str] = &["profile", "calendar", "files"];

/// Acme ID's endpoints and habits.
pub fn platform() -> Platform {
    Platform {
        name: NAME.into(),
        description: "Acme ID (OAuth 2.0, resource.action scopes)".into(),
        authorize_url: "https://id.acme.example/authorize".into(),
        token_url: "https://id.acme.example/token".into(),
        revoke_url: "https://id.acme.example/revoke".into(),
        api_base: "https://api.acme.example".into(),
        client_auth: "basic".into(),
        pkce: true,
        send_scopes: true,
        api_base_field: String::new(),
        endpoints_from_declaration: false,
    }
}

/// Acme Desk as a platform: it consumes tokens, so it has no endpoints.
pub fn desk() -> Platform {
    Platform::consumer(DESK, "Acme Desk (consumer: a help desk that calls Acme ID's API)")
}

/// What an Acme Desk target is: its callback, its instances' URL, its one
/// setting.
pub fn desk_profile() -> PlatformProfile {
    PlatformProfile {
        display: "Acme Desk".into(),
        redirect_path: "/oauth/callback".into(),
        instance_url_template: "https://{instance}.desk.acme.example".into(),
        target_settings: vec!["workspace".into()],
        ..Default::default()
    }
}

/// Acme Desk's rule for a target (the app as connapp sends it): a
/// `workspace` is lower-case letters and digits.
pub fn check_target(app: &Value) -> Vec<Finding> {
    let workspace = app.pointer("/target/workspace").and_then(Value::as_str);
    match workspace {
        Some(w) if w.is_empty() || !w.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) => {
            vec![Finding {
                field: "target.workspace".into(),
                rule: "acme-desk-workspace".into(),
                message: format!("{w:?} is not an Acme Desk workspace: they are lower-case letters and digits"),
                fix: format!(
                    "write `workspace = {:?}`",
                    w.to_ascii_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "")
                ),
                severity: FindingSeverity::Error,
            }]
        }
        _ => Vec::new(),
    }
}

/// How Acme ID behaves and speaks beyond its endpoints.
pub fn profile() -> PlatformProfile {
    PlatformProfile {
        display: "Acme ID".into(),
        api_path: "/api".into(),
        credentials_source: "the client's page in the Acme ID console".into(),
        login_note: Some("Acme ID asks {who} to approve {app} once per device.".into()),
        refresh_rejected: vec![
            "an administrator revoked the client's grants in the Acme ID console".into(),
            "the refresh token was unused for 90 days".into(),
        ],
        redirect_mismatch: vec!["redirect_uri does not match".into()],
        // Fields later API versions append keep their defaults.
        ..Default::default()
    }
}

/// Acme ID's rules for an app (the app as connapp sends it): every scope is
/// `resource.action` with a known resource and `read` or `write`; a `write`
/// scope without its `read` is a warning.
pub fn check(app: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    let scopes: Vec<&str> = app
        .get("scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("scope").and_then(Value::as_str))
        .collect();
    for (i, scope) in scopes.iter().enumerate() {
        let field = format!("scopes[{i}]");
        match scope.split_once('.') {
            Some((resource, action)) if RESOURCES.contains(&resource) && matches!(action, "read" | "write") => {
                if action == "write" && !scopes.contains(&format!("{resource}.read").as_str()) {
                    out.push(Finding {
                        field,
                        rule: "acme-write-without-read".into(),
                        message: format!("Acme ID grants {scope:?} only together with {resource}.read"),
                        fix: format!("add \"{resource}.read\" to the scopes"),
                        severity: FindingSeverity::Warning,
                    });
                }
            }
            Some((resource, _)) if !RESOURCES.contains(&resource) => out.push(Finding {
                field,
                rule: "acme-scope-resource".into(),
                message: format!("Acme ID has no resource {resource:?} (scope {scope:?})"),
                fix: format!("use one of: {}", RESOURCES.join(", ")),
                severity: FindingSeverity::Error,
            }),
            _ => out.push(Finding {
                field,
                rule: "acme-scope-grammar".into(),
                message: format!("{scope:?} is not an Acme ID scope: they are resource.action, e.g. profile.read"),
                fix: "write the scope as resource.read or resource.write".into(),
                severity: FindingSeverity::Error,
            }),
        }
    }
    out
}

/// The plugin: provides the platforms `acme-id` and `acme-desk` and the
/// preset `acme-profile`.
pub struct AcmeId;

impl Plugin for AcmeId {
    fn info() -> PluginInfo {
        plugin_info![
            Provided::named(PluginKind::PLATFORM, NAME),
            Provided::named(PluginKind::PLATFORM, DESK),
            Provided::named(PluginKind::PRESET, "acme-profile"),
        ]
    }
    fn platforms() -> Vec<Platform> {
        vec![platform(), desk()]
    }
    fn presets() -> Vec<Preset> {
        vec![Preset {
            name: "acme-profile".into(),
            platform: NAME.into(),
            description: "read the signed-in user's Acme profile".into(),
            scopes: vec![PresetScope {
                scope: "profile.read".into(),
                reason: "shows who connected the app".into(),
                probe: Probe {
                    method: "GET".into(),
                    path: "/me".into(),
                    query: vec![],
                },
            }],
        }]
    }
    fn platform_profile(platform: &str) -> Result<Option<String>, StoreError> {
        match platform {
            DESK => contract::answer(&desk_profile()),
            _ => contract::answer_for(platform, NAME, || Ok(profile())),
        }
    }
    fn check_app(platform: &str, app: &str) -> Result<Option<String>, StoreError> {
        match platform {
            DESK => contract::answer(&check_target(&contract::parse_input(app)?)),
            _ => contract::answer_for(platform, NAME, || Ok(check(&contract::parse_input(app)?))),
        }
    }
}

export_plugin!(AcmeId);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(scopes: &[&str]) -> Value {
        json!({"scopes": scopes.iter().map(|s| json!({"scope": s, "optional": false})).collect::<Vec<_>>()})
    }

    #[test]
    fn scopes_follow_acme_grammar() {
        assert!(check(&app(&["profile.read", "files.read", "files.write"])).is_empty());
        let f = check(&app(&["profile.read", "Profile", "billing.read", "calendar.write"]));
        let rules: Vec<(&str, &str)> = f.iter().map(|f| (f.field.as_str(), f.rule.as_str())).collect();
        assert_eq!(
            rules,
            [
                ("scopes[1]", "acme-scope-grammar"),
                ("scopes[2]", "acme-scope-resource"),
                ("scopes[3]", "acme-write-without-read"),
            ]
        );
        assert_eq!(f[2].severity, FindingSeverity::Warning);
    }

    #[test]
    fn the_answers_fit_the_contract() {
        let p = AcmeId::platform_profile(NAME).expect("ok").expect("a profile");
        assert_eq!(
            connapp_plugin_api::contract::parse_platform_profile(&p).expect("parses"),
            profile()
        );
        let f = AcmeId::check_app(NAME, &app(&["x"]).to_string())
            .expect("ok")
            .expect("findings");
        assert_eq!(
            connapp_plugin_api::contract::parse_findings(&f).expect("parses").len(),
            1
        );
        assert_eq!(AcmeId::platform_profile("zoom").expect("ok"), None);
        let d = AcmeId::platform_profile(DESK).expect("ok").expect("a profile");
        assert_eq!(
            connapp_plugin_api::contract::parse_platform_profile(&d).expect("parses"),
            desk_profile()
        );
    }

    #[test]
    fn a_desk_workspace_is_lower_case() {
        assert!(check_target(&json!({"target": {"workspace": "sales2"}})).is_empty());
        assert!(check_target(&json!({"scopes": []})).is_empty());
        let f = check_target(&json!({"target": {"workspace": "Sales Team"}}));
        assert_eq!(f[0].field, "target.workspace");
        assert_eq!(f[0].fix, "write `workspace = \"salesteam\"`");
    }
}
