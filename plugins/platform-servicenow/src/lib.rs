//! connapp platform plugin `platform-servicenow`: the consumer side of DEX for
//! Zoom. From a declared app and the provider's endpoints it describes the
//! ServiceNow records DEX needs (`docs/servicenow.md` §2, §7): the OAuth provider
//! (`oauth_entity`), its default profile, one scope record per scope and its
//! link to the profile, the OAuth 2.0 credential, and the HTTP connection on
//! the DEX connection & credential alias.
//!
//! What it is **not**: an HTTP client. It describes; the host looks records up,
//! creates or updates them in order, resolves `$ref:KEY` to the sys_id of the
//! record with that key and `$secret:KIND` to the stored secret, writes
//! `write_only` fields once (encrypted fields are never read back), and prunes
//! rows a `prune` entry names that no record keeps.
//!
//! Its profile tells the host what a ServiceNow target is (the callback
//! `/oauth_redirect.do`, instances at `https://NAME.service-now.com`, the
//! settings `alias`, `entity_name`, `connection_name`); its `check_app`
//! judges those settings' values.

use connapp_plugin_api::contract::{self, Finding, FindingSeverity, PlatformProfile};
use connapp_plugin_api::{
    ErrorCode, Platform, Plugin, PluginInfo, PluginKind, Provided, StoreError, export_plugin, plugin_info,
};
use serde_json::{Value, json};

/// The platform's name (as a target kind).
pub const SERVICENOW: &str = "servicenow";

/// Zoom's refresh tokens live 90 days (`docs/zoom-platform.md` §4); ServiceNow's
/// default of 100 days would outlive them, so the provider record says 90.
pub const ZOOM_REFRESH_LIFESPAN_SECS: u64 = 90 * 86_400;

/// The alias the Zoom spoke ships; DEX's own alias ID is not published, so
/// without one in the declaration the host discovers it.
pub const ZOOM_SPOKE_ALIAS: &str = "sn_zoom_spoke.Zoom";

/// ServiceNow as a platform: it consumes tokens rather than issuing them.
pub fn servicenow() -> Platform {
    Platform::consumer(SERVICENOW, "ServiceNow (consumer: the record chain DEX for Zoom uses)")
}

/// Where an instance takes OAuth callbacks (`docs/servicenow.md` §2).
pub const REDIRECT_PATH: &str = "/oauth_redirect.do";

/// How ServiceNow consumes: its callback, its instances' URLs, the settings
/// a target takes.
pub fn profile() -> PlatformProfile {
    PlatformProfile {
        display: "ServiceNow".into(),
        redirect_path: REDIRECT_PATH.into(),
        instance_url_template: "https://{instance}.service-now.com".into(),
        target_settings: vec!["alias".into(), "entity_name".into(), "connection_name".into()],
        ..Default::default()
    }
}

/// The part of the app view [`check`] reads; the host's JSON is parsed into
/// it alone (the rest of the view is skipped, not built).
#[derive(serde::Deserialize)]
struct CheckedParts {
    #[serde(default)]
    target: Option<Value>,
}

/// ServiceNow's rules for an app's target (the app as the host sends it to
/// `check_app`): the alias ID's shape, usable record names, and a warning for
/// a hyphen in an instance name.
pub fn check(app: &Value) -> Vec<Finding> {
    let Some(target) = app.get("target").filter(|t| !t.is_null()) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut finding = |field: &str, rule: &str, message: String, fix: &str, severity| {
        found.push(Finding {
            field: format!("target.{field}"),
            rule: rule.into(),
            message,
            fix: fix.into(),
            severity,
        });
    };
    if let Some(id) = target.get("alias").and_then(Value::as_str) {
        let ok = !id.is_empty()
            && id.split('.').count() <= 2
            && id
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        if !ok {
            finding(
                "alias",
                "target-alias",
                format!("{id:?} is not a connection & credential alias ID"),
                "write the alias ID as ServiceNow shows it: SCOPE.NAME (letters, digits, underscores), e.g. \"sn_zoom_spoke.Zoom\"",
                FindingSeverity::Error,
            );
        }
    }
    for field in ["entity_name", "connection_name"] {
        if let Some(name) = target.get(field).and_then(Value::as_str)
            && (name.trim().is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control))
        {
            finding(
                field,
                "target-name",
                format!("{name:?} is not a usable record name"),
                "use 1-80 printable characters",
                FindingSeverity::Error,
            );
        }
    }
    if let Some(name) = target.get("instance").and_then(Value::as_str)
        && name.contains('-')
    {
        finding(
            "instance",
            "target-instance-hyphen",
            format!("the instance name {name:?} contains a hyphen; ServiceNow instance names rarely do"),
            "check the name against the instance's URL",
            FindingSeverity::Warning,
        );
    }
    found
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// The records for `input`: `{"app": ..., "provider": {authorize_url,
/// token_url, revoke_url, api_base, client_auth}, "target": {instance_url,
/// alias?, entity_name, connection_name}}`.
pub fn records(input: &Value) -> Result<Value, String> {
    let app = input.get("app").ok_or("the input has no app")?;
    let provider = input.get("provider").ok_or("the input has no provider")?;
    let target = input.get("target").ok_or("the input has no target")?;
    let instance = s(target, "instance_url");
    if instance.is_empty() {
        return Err("the target has no instance_url".into());
    }
    let entity_name = match s(target, "entity_name") {
        n if n.is_empty() => s(app, "display_name"),
        n => n,
    };
    let connection_name = match s(target, "connection_name") {
        n if n.is_empty() => s(app, "display_name"),
        n => n,
    };
    // The host sends the callback its profile made; an older host did not.
    let redirect = match s(target, "redirect_url") {
        r if r.is_empty() => format!("{}{REDIRECT_PATH}", instance.trim_end_matches('/')),
        r => r,
    };
    let send_as = if s(provider, "client_auth") == "body" {
        "request_body_parameter"
    } else {
        "basic_auth_header"
    };
    let alias_query = match s(target, "alias") {
        a if a.is_empty() => "idLIKEdex^ORnameLIKEDEX^ORsys_scopeLIKEdex".to_string(),
        a => format!("id={a}"),
    };
    let mut records = vec![
        json!({
            "key": "provider", "table": "oauth_entity", "label": "OAuth provider in the Application Registry",
            "find": {"name": entity_name},
            "fields": {
                "name": entity_name, "type": "oauth_provider", "default_grant_type": "authorization_code",
                "client_id": "$secret:client-id",
                "auth_url": s(provider, "authorize_url"), "token_url": s(provider, "token_url"),
                "revoke_token_url": s(provider, "revoke_url"), "redirect_url": redirect,
                "send_client_credentials_as": send_as,
                "refresh_token_lifespan": ZOOM_REFRESH_LIFESPAN_SECS.to_string(), "active": "true",
            },
            "write_only": {"client_secret": "$secret:client-secret"},
        }),
        json!({
            "key": "profile", "table": "oauth_entity_profile", "label": "OAuth entity profile",
            "find": {"oauth_entity": "$ref:provider", "default": "true"},
            "fields": {"grant_type": "authorization_code", "default": "true", "oauth_entity": "$ref:provider",
                       "name": format!("{entity_name} default_profile")},
            "created_by": "provider",
        }),
    ];
    let empty = Vec::new();
    for sc in app.get("scopes").and_then(Value::as_array).unwrap_or(&empty) {
        let scope = s(sc, "scope");
        records.push(json!({
            "key": format!("scope:{scope}"), "table": "oauth_entity_scope", "label": format!("scope {scope}"),
            "find": {"oauth_entity": "$ref:provider", "oauth_entity_scope": scope},
            "fields": {"name": scope, "oauth_entity_scope": scope, "oauth_entity": "$ref:provider"},
        }));
        records.push(json!({
            "key": format!("profile_scope:{scope}"), "table": "oauth_entity_profile_scope",
            "label": format!("profile link of {scope}"),
            "find": {"oauth_entity_profile": "$ref:profile", "oauth_entity_scope": format!("$ref:scope:{scope}")},
            "fields": {"oauth_entity_profile": "$ref:profile", "oauth_entity_scope": format!("$ref:scope:{scope}")},
        }));
    }
    records.push(json!({
        "key": "credential", "table": "oauth_2_0_credentials", "label": "OAuth 2.0 credential",
        "find": {"name": connection_name},
        "fields": {"name": connection_name, "oauth_entity_profile": "$ref:profile", "active": "true"},
    }));
    records.push(json!({
        "key": "connection", "table": "http_connection", "label": "HTTP connection",
        "find": {"connection_alias": "$ref:alias"},
        "fields": {"name": connection_name, "connection_alias": "$ref:alias", "credential": "$ref:credential",
                   "connection_url": s(provider, "api_base"), "active": "true"},
    }));
    Ok(json!({
        "lookups": [{"key": "alias", "table": "sys_alias", "query": alias_query,
                     "label": "connection & credential alias of DEX for Zoom",
                     "not": ZOOM_SPOKE_ALIAS}],
        "records": records,
        "prune": [
            {"table": "oauth_entity_scope", "find": {"oauth_entity": "$ref:provider"}, "keep_prefix": "scope:"},
            {"table": "oauth_entity_profile_scope", "find": {"oauth_entity_profile": "$ref:profile"}, "keep_prefix": "profile_scope:"},
        ],
        "consent": {
            "path": "/oauth_initiator.do",
            "query": {"oauth_requestor_context": "oauth_2_0_credentials", "oauth_requestor": "$ref:credential",
                      "oauth_provider_profile": "$ref:profile", "response_type": "code"},
        },
        "redirect_url": redirect,
    }))
}

/// The plugin: provides the platform `servicenow`.
pub struct ServicenowPlatform;

impl Plugin for ServicenowPlatform {
    fn info() -> PluginInfo {
        plugin_info![Provided::named(PluginKind::PLATFORM, SERVICENOW)]
    }
    fn platforms() -> Vec<Platform> {
        vec![servicenow()]
    }
    fn platform_profile(platform: &str) -> Result<Option<String>, StoreError> {
        contract::answer_for(platform, SERVICENOW, || Ok(profile()))
    }
    fn check_app(platform: &str, app: &str) -> Result<Option<String>, StoreError> {
        contract::answer_for(platform, SERVICENOW, || {
            let parts: CheckedParts = contract::parse_input_as(app)?;
            // Moved, not copied (`json!` would serialize it anew).
            let target = parts.target.unwrap_or(Value::Null);
            Ok(check(&Value::Object(serde_json::Map::from_iter([(
                "target".to_string(),
                target,
            )]))))
        })
    }
    fn consumer_records(platform: &str, input: &str) -> Result<Option<String>, StoreError> {
        if platform != SERVICENOW {
            return Ok(None);
        }
        records(&contract::parse_input(input)?)
            .map(|r| Some(r.to_string()))
            .map_err(|e| StoreError::new(ErrorCode::INVALID_INPUT, e))
    }
}

export_plugin!(ServicenowPlatform);

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> Value {
        json!({
            "app": {"display_name": "DEX for Zoom", "scopes": [{"scope": "user:read:user:admin"}, {"scope": "report:read:user:admin"}]},
            "provider": {"authorize_url": "https://zoom.us/oauth/authorize", "token_url": "https://zoom.us/oauth/token",
                         "revoke_url": "https://zoom.us/oauth/revoke", "api_base": "https://api.zoom.us", "client_auth": "basic"},
            "target": {"instance_url": "https://acme.service-now.com"},
        })
    }

    /// What this plugin answers fits the contract as the host reads it.
    #[test]
    fn the_answer_fits_the_platform_contract() {
        let r = records(&input()).expect("records");
        let typed = connapp_plugin_api::contract::parse_consumer_records(&r.to_string()).expect("fits the contract");
        assert_eq!(typed.records.len(), r["records"].as_array().map_or(0, Vec::len));
        assert!(typed.consent.is_some());
    }

    #[test]
    fn the_chain_in_dependency_order() {
        let r = records(&input()).expect("records");
        let keys: Vec<&str> = r["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|x| x["key"].as_str().expect("key"))
            .collect();
        assert_eq!(
            keys,
            vec![
                "provider",
                "profile",
                "scope:user:read:user:admin",
                "profile_scope:user:read:user:admin",
                "scope:report:read:user:admin",
                "profile_scope:report:read:user:admin",
                "credential",
                "connection"
            ]
        );
        let p = &r["records"][0];
        assert_eq!(
            p["fields"]["redirect_url"],
            "https://acme.service-now.com/oauth_redirect.do"
        );
        assert_eq!(p["fields"]["send_client_credentials_as"], "basic_auth_header");
        assert_eq!(p["fields"]["refresh_token_lifespan"], "7776000");
        assert_eq!(p["write_only"]["client_secret"], "$secret:client-secret");
        assert!(p["fields"].get("client_secret").is_none(), "the secret is write-only");
        assert_eq!(r["records"][7]["fields"]["connection_url"], "https://api.zoom.us");
        assert_eq!(r["lookups"][0]["query"], "idLIKEdex^ORnameLIKEDEX^ORsys_scopeLIKEdex");
    }

    #[test]
    fn a_declared_alias_is_looked_up_by_id_and_bad_input_is_an_error() {
        let mut i = input();
        i["target"]["alias"] = json!("x_acme.DEX");
        assert_eq!(records(&i).expect("ok")["lookups"][0]["query"], "id=x_acme.DEX");
        assert!(records(&json!({})).is_err());
    }

    #[test]
    fn the_target_settings_are_judged() {
        let app = |target: Value| json!({"display_name": "DEX", "target": target});
        let rules = |t: Value| -> Vec<(String, String, FindingSeverity)> {
            check(&app(t))
                .into_iter()
                .map(|f| (f.field, f.rule, f.severity))
                .collect()
        };
        let ok = json!({"kind": "servicenow", "instance": "acme", "alias": "sn_zoom_spoke.Zoom", "entity_name": "DEX"});
        assert!(rules(ok).is_empty());
        assert!(check(&json!({"display_name": "no target"})).is_empty());
        for bad in ["", "a.b.c", "a..b", "sn zoom.Zoom", "x.Zo-om"] {
            assert_eq!(
                rules(json!({"alias": bad})),
                vec![(
                    "target.alias".to_string(),
                    "target-alias".to_string(),
                    FindingSeverity::Error
                )],
                "{bad:?}"
            );
        }
        let long = "n".repeat(81);
        for bad in [" ", "a\u{7}b", long.as_str()] {
            assert_eq!(rules(json!({"connection_name": bad}))[0].1, "target-name", "{bad:?}");
            assert_eq!(rules(json!({"entity_name": bad}))[0].0, "target.entity_name");
        }
        assert_eq!(
            rules(json!({"entity_name": "é".repeat(80)})),
            vec![],
            "80 characters, not bytes"
        );
        assert_eq!(
            rules(json!({"instance": "ac-me"})),
            vec![(
                "target.instance".to_string(),
                "target-instance-hyphen".to_string(),
                FindingSeverity::Warning
            )]
        );
    }

    /// The profile fits the contract as the host reads it, and says what a ServiceNow target is.
    #[test]
    fn the_profile_describes_the_target() {
        let m = connapp_plugin_api::__private::module::<ServicenowPlatform>();
        let got = connapp_plugin_api::host::platform_profile(m, SERVICENOW)
            .expect("ok")
            .expect("some");
        let p = contract::parse_platform_profile(&got).expect("fits the contract");
        assert_eq!(p.redirect_path, REDIRECT_PATH);
        assert_eq!(
            p.instance_url_template.replace("{instance}", "acme"),
            "https://acme.service-now.com"
        );
        assert_eq!(p.target_settings, ["alias", "entity_name", "connection_name"]);
        assert_eq!(connapp_plugin_api::host::platform_profile(m, "zoom").expect("ok"), None);
    }

    #[test]
    fn the_records_take_the_hosts_redirect_url() {
        let mut i = input();
        i["target"]["redirect_url"] = json!("https://sn.example.com/oauth_redirect.do");
        let r = records(&i).expect("records");
        assert_eq!(r["redirect_url"], "https://sn.example.com/oauth_redirect.do");
        assert_eq!(
            r["records"][0]["fields"]["redirect_url"],
            "https://sn.example.com/oauth_redirect.do"
        );
    }

    #[test]
    fn the_records_cross_the_abi() {
        let m = connapp_plugin_api::__private::module::<ServicenowPlatform>();
        let got = connapp_plugin_api::host::consumer_records(m, "servicenow", &input().to_string()).expect("ok");
        assert!(got.expect("some").contains("oauth_entity"));
        assert_eq!(
            connapp_plugin_api::host::consumer_records(m, "zoom", "{}").expect("ok"),
            None
        );
    }
}
