//! connapp platform plugin `platform-zoom`: Zoom's OAuth endpoints and habits
//! (`docs/zoom-platform.md` §2–§7): Basic client authentication, PKCE for
//! connapp's own logins, no `scope` parameter at authorize (the app's
//! configured scopes are granted), the account's API base in `api_url`.
//!
//! It also maps a declared app to the part of Zoom's app manifest connapp
//! manages ([`manifest`]; the host merges that into the live manifest), and
//! checks an app's scopes against Zoom's granular grammar, its levels and the
//! scopes connapp knows ([`scopes`], answered through `check_app`).
//!
//! What it is **not**: an HTTP client. It describes; the host executes.

use connapp_plugin_api::contract::{self, PlatformProfile};

pub mod scopes;
use connapp_plugin_api::{Platform, Plugin, PluginInfo, PluginKind, Provided, StoreError, export_plugin, plugin_info};
use serde_json::{Value, json};

/// Zoom as connapp talks to it.
pub fn zoom() -> Platform {
    Platform {
        name: "zoom".into(),
        description: "Zoom (General and Server-to-Server OAuth apps)".into(),
        authorize_url: "https://zoom.us/oauth/authorize".into(),
        token_url: "https://zoom.us/oauth/token".into(),
        revoke_url: "https://zoom.us/oauth/revoke".into(),
        api_base: "https://api.zoom.us".into(),
        client_auth: "basic".into(),
        pkce: true,
        send_scopes: false,
        api_base_field: "api_url".into(),
        endpoints_from_declaration: false,
    }
}

/// How Zoom behaves and speaks beyond its endpoints (`docs/zoom-platform.md`
/// §2–§7): API paths under `/v2`, one grant per user per app, refresh tokens
/// rotated on every use, 4709 for a token request whose redirect URL differs.
pub fn profile() -> PlatformProfile {
    PlatformProfile {
        display: "Zoom".into(),
        api_path: "/v2".into(),
        credentials_source: "the app's page in the Zoom Marketplace".into(),
        login_note: Some(
            "Zoom keeps one grant per user per app. If {who} has already authorized {app} elsewhere (for example ServiceNow's \"Get OAuth Token\"), consenting here ends that grant and the other side must consent again. Sign in with a different admin than the one ServiceNow used.".into(),
        ),
        refresh_rejected: vec![
            "another holder refreshed first (another machine or a copy of this token): Zoom rotates refresh tokens on every use, so that rotated it away".into(),
            "the same user consented again elsewhere (for example ServiceNow's \"Get OAuth Token\"): Zoom keeps one grant per user per app, so that ended this grant".into(),
            "the app was uninstalled or the grant revoked".into(),
            "the refresh token expired after long disuse".into(),
        ],
        redirect_mismatch: vec!["4709".into(), "redirect uri mismatch".into()],
        redirect_refused: vec!["4700".into(), "invalid redirect url".into()],
        requires_usage: true,
        account_grant: true,
        management_scope_prefix: "marketplace:".into(),
        display_name_max_chars: 49,
        // Answered as the user whose grant the token is (any `user:read` scope).
        user_path: "/users/me".into(),
        user_fields: vec!["email".into(), "id".into()],
        // A provider: the consumer's fields keep their defaults.
        ..Default::default()
    }
}

/// The plugin: provides the platform `zoom`.
pub struct ZoomPlatform;

impl Plugin for ZoomPlatform {
    fn info() -> PluginInfo {
        plugin_info![Provided::named(PluginKind::PLATFORM, "zoom")]
    }
    fn platforms() -> Vec<Platform> {
        vec![zoom()]
    }
    fn platform_profile(platform: &str) -> Result<Option<String>, StoreError> {
        contract::answer_for(platform, "zoom", || Ok(profile()))
    }
    fn check_app(platform: &str, app: &str) -> Result<Option<String>, StoreError> {
        contract::answer_for(platform, "zoom", || {
            Ok(scopes::check(
                &contract::parse_input_as::<scopes::CheckedParts>(app)?.into(),
            ))
        })
    }
    fn provider_manifest(platform: &str, app: &str) -> Result<Option<String>, StoreError> {
        if platform != "zoom" {
            return Ok(None);
        }
        Ok(manifest(&contract::parse_input(app)?).map(|m| m.to_string()))
    }
}

/// The part of a Zoom app manifest (`docs/zoom-platform.md` §17) that connapp
/// manages for `app` (the app as `connapp check --json` prints it, plus
/// `scope_reasons`). `null` values mean "remove this setting". Server-to-server
/// apps (no redirect URL) have no manifest: `None`.
pub fn manifest(app: &Value) -> Option<Value> {
    let redirect = app.get("redirect_url")?.as_str()?;
    let str_of = |k: &str| app.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let usage = match app.get("usage").and_then(Value::as_str) {
        Some("user-managed") => "USER_OPERATION",
        _ => "ADMIN_MANAGEMENT",
    };
    let empty = Vec::new();
    let scopes = app.get("scopes").and_then(Value::as_array).unwrap_or(&empty);
    let reasons = app.get("scope_reasons").cloned().unwrap_or(Value::Null);
    let display = str_of("display_name");
    let mut description = format!("{display} needs these scopes:");
    for s in scopes {
        let name = s.get("scope").and_then(Value::as_str).unwrap_or("");
        match reasons.get(name).and_then(Value::as_str) {
            Some(r) if !r.is_empty() => description.push_str(&format!("\n- {name}: {r}")),
            _ => description.push_str(&format!("\n- {name}")),
        }
    }
    let event_subscriptions = match app.get("webhook") {
        Some(w) if w.is_object() => json!([{
            "endpoint_url": w.get("endpoint_url").cloned().unwrap_or(Value::Null),
            "events": w.get("events").cloned().unwrap_or(json!([])),
        }]),
        _ => Value::Null,
    };
    Some(json!({
        "display_information": {"display_name": display},
        "oauth_information": {
            "usage": usage,
            "development_redirect_uri": redirect,
            "production_redirect_uri": redirect,
            "oauth_allow_list": app.get("allow_list").cloned().unwrap_or(json!([])),
            "strict_mode": app.get("strict_mode").and_then(Value::as_bool).unwrap_or(false),
            "subdomain_strict_mode": app.get("subdomain_check").and_then(Value::as_bool).unwrap_or(false),
            "scopes": scopes.iter().map(|s| json!({
                "scope": s.get("scope").cloned().unwrap_or(Value::Null),
                "optional": s.get("optional").and_then(Value::as_bool).unwrap_or(false),
            })).collect::<Vec<_>>(),
            "scope_description": description,
        },
        "features": {"event_subscriptions": event_subscriptions},
    }))
}

export_plugin!(ZoomPlatform);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_app_becomes_the_managed_part_of_its_manifest() {
        let app = json!({
            "display_name": "DEX for Zoom", "usage": "admin-managed",
            "redirect_url": "https://acme.service-now.com/oauth_redirect.do",
            "allow_list": ["https://acme.service-now.com/oauth_redirect.do"],
            "strict_mode": true, "subdomain_check": false,
            "scopes": [{"scope": "user:read:user:admin", "optional": false},
                       {"scope": "report:read:user:admin", "optional": true}],
            "scope_reasons": {"user:read:user:admin": "resolve users"},
            "webhook": {"endpoint_url": "https://hooks.example.com/z", "events": ["meeting.ended"]},
        });
        let m = manifest(&app).expect("a general app");
        let o = &m["oauth_information"];
        assert_eq!(o["usage"], "ADMIN_MANAGEMENT");
        assert_eq!(
            o["production_redirect_uri"],
            "https://acme.service-now.com/oauth_redirect.do"
        );
        assert_eq!(o["subdomain_strict_mode"], false);
        assert_eq!(o["strict_mode"], true);
        assert_eq!(
            o["scopes"][1],
            json!({"scope": "report:read:user:admin", "optional": true})
        );
        let d = o["scope_description"].as_str().expect("text");
        assert!(d.contains("user:read:user:admin: resolve users"), "{d}");
        assert_eq!(
            m["features"]["event_subscriptions"][0]["events"],
            json!(["meeting.ended"])
        );
        assert_eq!(m["display_information"]["display_name"], "DEX for Zoom");
    }

    #[test]
    fn no_webhook_removes_subscriptions_and_server_to_server_has_no_manifest() {
        let app = json!({"display_name": "x", "redirect_url": "https://a.example/cb", "scopes": []});
        assert_eq!(
            manifest(&app).expect("general")["features"]["event_subscriptions"],
            Value::Null
        );
        assert!(manifest(&json!({"display_name": "s2s", "redirect_url": null})).is_none());
    }

    #[test]
    fn the_manifest_crosses_the_abi() {
        let m = connapp_plugin_api::__private::module::<ZoomPlatform>();
        let app = json!({"display_name": "x", "redirect_url": "https://a.example/cb", "scopes": []}).to_string();
        let got = connapp_plugin_api::host::provider_manifest(m, "zoom", &app).expect("ok");
        assert!(got.expect("some").contains("development_redirect_uri"));
        assert_eq!(
            connapp_plugin_api::host::provider_manifest(m, "generic", &app).expect("ok"),
            None
        );
    }
}
