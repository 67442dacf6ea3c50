use super::*;

fn catalog() -> Catalog {
    Catalog {
        presets: vec![PresetInfo {
            name: "servicenow-dex-zoom".into(),
            platform: "zoom".into(),
            scopes: vec![
                "report:read:user:admin".into(),
                "dashboard:read:list_meeting_participants_qos:admin".into(),
                "dashboard:read:meeting_participant_qos:admin".into(),
                "dashboard:read:list_zoomrooms:admin".into(),
                "dashboard:read:issues_zoomroom:admin".into(),
                "user:read:user:admin".into(),
            ],
        }],
        store_kinds: vec!["file".into(), "vault".into(), "opaque".into()],
        platforms: vec![zoom_rules(), generic_rules()],
        consumers: vec![servicenow_rules()],
        // As the store plugins describe their settings; `opaque` does not.
        stores: vec![
            StoreRules {
                kind: "file".into(),
                settings: vec![rule("path", SettingKind::Path, false, &[])],
            },
            StoreRules {
                kind: "vault".into(),
                settings: vec![
                    rule("addr", SettingKind::Url, true, &["VAULT_ADDR"]),
                    rule("mount", SettingKind::Text, false, &[]),
                    rule("timeout_secs", SettingKind::Integer, false, &[]),
                    rule("role_id", SettingKind::Text, true, &[]),
                ],
            },
        ],
    }
}

fn rule(name: &str, kind: SettingKind, required: bool, env: &[&str]) -> SettingRule {
    SettingRule {
        name: name.into(),
        kind,
        required,
        env: env.iter().map(|e| e.to_string()).collect(),
        default: None,
        secret: false,
        help: String::new(),
    }
}

#[test]
fn store_settings_are_those_its_plugin_describes() {
    let with = |store: &str| {
        let text = init_text("acme");
        let at = text.find("[apps.").expect("an app");
        let body = text[at..].to_string();
        check("t.toml", &format!("version = 1\n\n{store}\n\n{body}"), &catalog())
    };
    // A misspelt setting: the nearest, and the whole list.
    let r = with("[store]\nkind = \"vault\"\n[store.settings]\nadr = \"https://v:8200\"\nrole_id = \"r\"");
    let d = diag(&r, "store-setting");
    assert_eq!(d.field, "store.settings.adr");
    assert!(
        d.fix.contains("did you mean `addr`?") && d.fix.contains("mount"),
        "{}",
        d.fix
    );
    assert_eq!(d.line, 6, "at the setting: {d}");
    assert!(r.declaration.is_none());
    // Types: a number where a number goes (as text too), a URL where a URL goes.
    let r = with("[store]\nkind = \"vault\"\n[store.settings]\ntimeout_secs = \"soon\"\nrole_id = \"r\"");
    assert_eq!(diag(&r, "store-setting-type").field, "store.settings.timeout_secs");
    let r = with("[store]\nkind = \"vault\"\n[store.settings]\naddr = \"vault:8200\"\nrole_id = \"r\"");
    assert!(diag(&r, "store-setting-type").message.contains("URL"));
    let r = with(
        "[store]\nkind = \"vault\"\n[store.settings]\ntimeout_secs = \"10\"\naddr = \"https://v:8200\"\nrole_id = \"r\"",
    );
    assert!(!r.has_errors(), "{:?}", r.diagnostics);
    // Required: `addr` has an environment fallback, `role_id` (here) has none.
    let r = with("[store]\nkind = \"vault\"");
    let d = diag(&r, "missing-field");
    assert_eq!(d.field, "store.settings.role_id");
    assert_eq!(r.diagnostics.len(), 1, "{:?}", r.diagnostics);
    // A store whose plugin describes nothing is judged when it opens.
    assert!(!with("[store]\nkind = \"opaque\"\n[store.settings]\nanything = 1").has_errors());
    // init writes them as comments; the declaration stands as written, and
    // uncommented with a value it is judged like any other.
    let c = catalog();
    let text = render_declaration(&InitOptions {
        app_name: "dex-zoom",
        display_name: "DEX for Zoom",
        preset: "servicenow-dex-zoom",
        platform: "zoom",
        scopes: &[],
        instance: "acme",
        store_kind: "vault",
        store_settings: &c.stores[1].settings,
        login_redirect: None,
        zoom_base: None,
        management_account: None,
    });
    assert!(
        text.contains("# [store.settings]\n# addr = \"\"\n#     url, required, else $VAULT_ADDR"),
        "{text}"
    );
    let r = check("t.toml", &text, &c);
    assert_eq!(
        diag(&r, "missing-field").field,
        "store.settings.role_id",
        "only the one without a fallback"
    );
    let text = text
        .replace("# [store.settings]", "[store.settings]")
        .replace("# role_id = \"\"", "role_id = \"r\"");
    assert!(!check("t.toml", &text, &c).has_errors());
    // A store that takes no such setting says what it takes.
    let r = with("[store]\nkind = \"file\"\n[store.settings]\nmount = \"kv\"");
    assert!(diag(&r, "store-setting").fix.contains("its settings: path"));
}

/// A consumer with ServiceNow's rules, as its plugin's profile gives them.
fn servicenow_rules() -> ConsumerRules {
    ConsumerRules {
        display: "ServiceNow".into(),
        redirect_path: "/oauth_redirect.do".into(),
        instance_url_template: "https://{instance}.service-now.com".into(),
        settings: vec!["alias".into(), "entity_name".into(), "connection_name".into()],
        ..ConsumerRules::named("servicenow")
    }
}

/// A platform with Zoom's rules, as its plugin's profile gives them.
fn zoom_rules() -> PlatformRules {
    PlatformRules {
        display: "Zoom".into(),
        credentials_source: "the app's page in the Zoom Marketplace".into(),
        requires_usage: true,
        account_grant: true,
        management_scope_prefix: "marketplace:".into(),
        display_name_max_chars: 49,
        ..PlatformRules::named("zoom")
    }
}

/// A platform whose endpoints come from the declaration.
fn generic_rules() -> PlatformRules {
    PlatformRules {
        endpoints_from_declaration: true,
        ..PlatformRules::named("generic")
    }
}

fn init_text(instance: &str) -> String {
    let scopes: Vec<(String, String)> = catalog().presets[0]
        .scopes
        .iter()
        .map(|s| (s.clone(), "why".into()))
        .collect();
    render_declaration(&InitOptions {
        app_name: "dex-zoom",
        display_name: "DEX for Zoom",
        preset: "servicenow-dex-zoom",
        platform: "zoom",
        scopes: &scopes,
        instance,
        store_kind: "file",
        store_settings: &catalog().stores[0].settings,
        login_redirect: None,
        zoom_base: None,
        management_account: None,
    })
}

#[test]
fn init_output_is_accepted_and_complete() {
    let r = check("connapp.toml", &init_text("acme"), &catalog());
    assert!(r.diagnostics.is_empty(), "{:#?}", r.diagnostics);
    let d = r.declaration.expect("valid");
    let app = d.app(None).expect("one app");
    assert_eq!(app.usage, Usage::AdminManaged);
    assert_eq!(
        app.redirect_url.as_deref(),
        Some("https://acme.service-now.com/oauth_redirect.do")
    );
    assert_eq!(
        app.allow_list,
        vec!["https://acme.service-now.com/oauth_redirect.do".to_string()]
    );
    assert_eq!(app.scopes.len(), 6);
    assert_eq!(d.store.kind, "file");
}

fn rules_of(text: &str) -> Vec<&'static str> {
    check("t.toml", text, &catalog())
        .diagnostics
        .into_iter()
        .map(|d| match d.rule {
            std::borrow::Cow::Borrowed(r) => r,
            std::borrow::Cow::Owned(r) => panic!("core's rules are static: {r}"),
        })
        .collect()
}

#[test]
fn trailing_slash_in_allow_list_names_both_strings() {
    let text = init_text("acme").replace(
        "allow_list = [\"https://acme.service-now.com/oauth_redirect.do\"]",
        "allow_list = [\"https://acme.service-now.com/oauth_redirect.do/\"]",
    );
    let r = check("t.toml", &text, &catalog());
    let d = diag(&r, "allow-list-missing-redirect");
    assert!(d.message.contains("\"https://acme.service-now.com/oauth_redirect.do\""));
    assert!(
        d.message
            .contains("\"https://acme.service-now.com/oauth_redirect.do/\"")
    );
    assert!(d.message.contains("trailing slash"));
    assert_eq!(d.field, "apps.dex-zoom.allow_list");
    assert!(d.line > 1);
}

#[test]
fn unknown_field_suggests_the_right_one() {
    let text = init_text("acme").replace("strict_mode = false", "strict_mod = false");
    let r = check("t.toml", &text, &catalog());
    let d = &r.diagnostics[0];
    assert_eq!(d.rule, "unknown-field");
    assert!(d.fix.contains("strict_mode"), "{d}");
    assert_eq!(d.field, "apps.dex-zoom.strict_mod");
}

#[test]
fn several_apps_need_a_name() {
    let mut text = init_text("acme");
    text.push_str(
        &init_text("beta")
            .split("[apps.")
            .skip(1)
            .map(|s| format!("[apps.{}", s.replacen("dex-zoom", "dex-beta", 1)))
            .collect::<String>(),
    );
    let r = check("t.toml", &text, &catalog());
    assert!(!r.has_errors(), "{:#?}", r.diagnostics);
    let d = r.declaration.expect("valid");
    assert_eq!(d.apps.len(), 2);
    assert!(d.app(None).is_err());
    assert_eq!(
        d.app(Some("dex-beta")).expect("exists").redirect_url.as_deref(),
        Some("https://beta.service-now.com/oauth_redirect.do")
    );
}

// The shared corpus of bad declarations is judged with the built-in
// plugins by `connapp-engine`'s platform tests (the core's rules first, as
// `connapp check` runs them) and through the binary by the e2e tests.

#[test]
fn oauth_settings_are_checked() {
    let base = init_text("acme");
    let with = |extra: &str| format!("{base}\n[apps.dex-zoom.oauth]\n{extra}\n");
    let ok = check(
        "t.toml",
        &with("oauth_base = \"http://127.0.0.1:8700\"\napi_base = \"http://127.0.0.1:8700\""),
        &catalog(),
    );
    assert!(!ok.has_errors(), "{:#?}", ok.diagnostics);
    let r = rules_of(&with("login_redirect = \"http://127.0.0.1/callback\""));
    assert!(r.contains(&"login-redirect-allow-list"), "{r:?}");
    let with_allow = base.replace(
        "allow_list = [\"https://acme.service-now.com/oauth_redirect.do\"]",
        "allow_list = [\"https://acme.service-now.com/oauth_redirect.do\", \"http://127.0.0.1/callback\"]",
    ) + "\n[apps.dex-zoom.oauth]\nlogin_redirect = \"http://127.0.0.1:0/callback\"\n";
    let r = check("t.toml", &with_allow, &catalog());
    assert!(!r.has_errors(), "{:#?}", r.diagnostics);
    assert!(rules_of(&with("login_redirect = \"https://evil.example/cb\"")).contains(&"login-redirect-loopback"));
    assert!(rules_of(&with("grant = \"password\"")).contains(&"oauth-grant"));
    assert!(rules_of(&with("grant = \"account_credentials\"")).contains(&"missing-field"));
    assert!(rules_of(&with("token_url = \"http://evil.example/token\"")).contains(&"url-https"));
}

#[test]
fn server_to_server_apps_need_no_redirect() {
    let text = "version = 1\n[store]\nkind = \"file\"\n[apps.s2s]\ndisplay_name = \"S2S\"\nplatform = \"zoom\"\nusage = \"admin-managed\"\nscopes = [\"user:read:user:admin\"]\n[apps.s2s.oauth]\ngrant = \"account_credentials\"\naccount_id = \"abc123\"\n";
    let r = check("t.toml", text, &catalog());
    assert!(!r.has_errors(), "{:#?}", r.diagnostics);
    let d = r.declaration.expect("valid");
    assert_eq!(d.apps[0].redirect_url, None);
    assert_eq!(d.apps[0].oauth.grant, GrantKind::AccountCredentials);
}

/// A platform's rules come from its plugin: `usage` is required and
/// `account_credentials` offered only where the platform says so.
#[test]
fn platform_rules_decide_usage_and_the_account_grant() {
    let text = "version = 1\n[store]\nkind = \"file\"\n[apps.s2s]\ndisplay_name = \"S2S\"\nplatform = \"zoom\"\nscopes = [\"read\"]\n[apps.s2s.oauth]\ngrant = \"account_credentials\"\naccount_id = \"abc123\"\n";
    let r = check("t.toml", text, &catalog());
    let d = diag(&r, "missing-field");
    assert_eq!(d.field, "apps.s2s.usage");
    assert!(d.message.contains("Zoom apps"), "{}", d.message);
    let mut plain = catalog();
    plain.platforms = vec![PlatformRules::named("zoom")];
    let r = check("t.toml", text, &plain);
    let d = diag(&r, "oauth-grant");
    assert!(
        d.message.contains("zoom offers no account_credentials"),
        "{}",
        d.message
    );
    assert!(
        !r.diagnostics.iter().any(|d| d.field == "apps.s2s.usage"),
        "{:?}",
        r.diagnostics
    );
}

#[test]
fn generic_apps_need_endpoints() {
    let text = "version = 1\n[store]\nkind = \"file\"\n[apps.gen]\ndisplay_name = \"Generic\"\nplatform = \"generic\"\nredirect_url = \"http://127.0.0.1/cb\"\nallow_list = [\"http://127.0.0.1/cb\"]\nscopes = [\"openid\", \"profile\"]\n";
    assert!(rules_of(text).contains(&"missing-field"));
    let full = format!(
        "{text}[apps.gen.oauth]\nauthorize_url = \"https://id.example/authorize\"\ntoken_url = \"https://id.example/token\"\nclient_auth = \"body\"\n"
    );
    let r = check("t.toml", &full, &catalog());
    assert!(!r.has_errors(), "{:#?}", r.diagnostics);
}

#[test]
fn management_app_webhook_and_optional_scopes_are_modelled() {
    let scopes: Vec<(String, String)> = catalog().presets[0]
        .scopes
        .iter()
        .map(|s| (s.clone(), "why".into()))
        .collect();
    let text = render_declaration(&InitOptions {
        app_name: "dex-zoom",
        display_name: "DEX for Zoom",
        preset: "servicenow-dex-zoom",
        platform: "zoom",
        scopes: &scopes,
        instance: "acme",
        store_kind: "file",
        store_settings: &[],
        login_redirect: None,
        zoom_base: None,
        management_account: Some("acc1"),
    })
    .replace(
        "[apps.dex-zoom.target]",
        "optional_scopes = [\"user:read:user:admin\"]\n\n[apps.dex-zoom.webhook]\nendpoint_url = \"http://127.0.0.1:8788/\"\nevents = [\"meeting.ended\"]\n\n[apps.dex-zoom.target]",
    );
    let r = check("connapp.toml", &text, &catalog());
    assert!(!r.has_errors(), "{:#?}", r.diagnostics);
    let d = r.declaration.expect("valid");
    let app = d
        .app(None)
        .expect("the managed app is the default, not the management app");
    assert_eq!(app.name, "dex-zoom");
    assert_eq!(app.managed_by.as_deref(), Some("zoom-marketplace"));
    let w = app.webhook.as_ref().expect("webhook");
    assert_eq!(w.events, vec!["meeting.ended"]);
    let optional: Vec<&str> = app
        .scopes
        .iter()
        .filter(|s| s.optional)
        .map(|s| s.scope.as_str())
        .collect();
    assert_eq!(optional, vec!["user:read:user:admin"]);
    let mgr = d.app(Some("zoom-marketplace")).expect("management app");
    assert_eq!(mgr.oauth.grant, crate::GrantKind::AccountCredentials);
    assert!(mgr.redirect_url.is_none());
}

#[test]
fn extra_authorize_params_are_kept_and_reserved_ones_refused() {
    let base = "version = 1\n[store]\nkind = \"file\"\n[apps.gen]\ndisplay_name = \"Generic\"\nplatform = \"generic\"\nredirect_url = \"http://127.0.0.1/cb\"\nallow_list = [\"http://127.0.0.1/cb\"]\nscopes = [\"openid\", \"offline_access\"]\n[apps.gen.oauth]\nauthorize_url = \"https://id.example/auth\"\ntoken_url = \"https://id.example/token\"\n";
    let good = format!(
        "{base}authorize_params = {{ prompt = \"consent\", access_type = \"offline\", audience = \"https://api.example\" }}\n"
    );
    let r = check("t.toml", &good, &catalog());
    let d = r.declaration.unwrap_or_else(|| panic!("{:?}", r.diagnostics));
    let mut params: Vec<(&str, &str)> = d.apps[0]
        .oauth
        .authorize_params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    params.sort();
    assert_eq!(
        params,
        [
            ("access_type", "offline"),
            ("audience", "https://api.example"),
            ("prompt", "consent")
        ]
    );
    for bad in [
        "client_secret = \"x\"",
        "code_verifier = \"x\"",
        "redirect_uri = \"x\"",
        "state = \"x\"",
        "scope = \"openid\"",
        "my_secret_thing = \"x\"",
        "\"bad name\" = \"x\"",
        "prompt = \"a\\nb\"",
    ] {
        let text = format!("{base}authorize_params = {{ {bad} }}\n");
        let r = check("t.toml", &text, &catalog());
        assert!(r.declaration.is_none(), "{bad}");
        let d = diag(&r, "oauth-authorize-param");
        assert!(d.field.starts_with("apps.gen.oauth.authorize_params."), "{}", d.field);
        assert!(!d.fix.is_empty());
    }
}

#[test]
fn a_resolved_scope_is_found_where_it_is_declared() {
    let text = format!(
        "{}\n[apps.extra]\ndisplay_name = \"Extra\"\nplatform = \"zoom\"\nusage = \"admin-managed\"\nredirect_url = \"https://acme.service-now.com/oauth_redirect.do\"\nallow_list = [\"https://acme.service-now.com/oauth_redirect.do\"]\npresets = [\"servicenow-dex-zoom\"]\nscopes = [\"user:read:list_users:admin\", \"meeting:read:meeting:admin\"]\n",
        init_text("acme")
    );
    let r = check("t.toml", &text, &catalog());
    let d = r.declaration.unwrap_or_else(|| panic!("{:?}", r.diagnostics));
    let app = d.apps.iter().find(|a| a.name == "extra").expect("extra");
    let from_preset = app
        .scopes
        .iter()
        .take_while(|s| s.source != ScopeSource::Explicit)
        .count();
    assert!(from_preset > 0, "the preset brings scopes");
    assert_eq!(app.declared_field("scopes[0]"), "presets[0]");
    assert_eq!(app.declared_field(&format!("scopes[{from_preset}]")), "scopes[0]");
    assert_eq!(app.declared_field(&format!("scopes[{}]", from_preset + 1)), "scopes[1]");
    assert_eq!(app.declared_field("scopes[999]"), "scopes");
    assert_eq!(app.declared_field("display_name"), "display_name");
}

#[test]
fn without_a_platform_plugin_every_platform_is_unknown() {
    let mut c = catalog();
    c.platforms.clear();
    let r = check("t.toml", &init_text("acme"), &c);
    let d = diag(&r, "platform-unknown");
    assert!(d.fix.contains("no platform plugin is installed"), "{}", d.fix);
    assert!(r.declaration.is_none());
}

/// The first diagnostic of `rule`; fails the test, listing them all, without one.
fn diag<'r>(r: &'r Report, rule: &str) -> &'r Diagnostic {
    r.diagnostics
        .iter()
        .find(|d| d.rule == rule)
        .unwrap_or_else(|| panic!("no {rule}: {:?}", r.diagnostics))
}

/// The DEX template with its target table replaced by `target`.
fn with_target(target: &str) -> String {
    let text = init_text("acme");
    let (head, _) = text.split_once("[apps.dex-zoom.target]").expect("a target table");
    format!("{head}[apps.dex-zoom.target]\n{target}\n")
}

/// The DEX template with the target table `target`, checked.
fn targeted(target: &str) -> Report {
    check("t.toml", &with_target(target), &catalog())
}

#[test]
fn a_target_takes_its_consumers_settings_and_its_json_is_flat() {
    let r = targeted("kind = \"servicenow\"\ninstance = \"acme\"\nauth = \"oauth\"\nalias = \"x_acme.DEX\"");
    assert!(r.diagnostics.is_empty(), "{:#?}", r.diagnostics);
    let d = r.declaration.expect("valid");
    let t = d.app(None).expect("app").target.clone().expect("a target");
    assert_eq!(t.kind, "servicenow");
    assert_eq!(t.display, "ServiceNow");
    assert_eq!(t.instance_url, "https://acme.service-now.com");
    assert_eq!(
        t.redirect_url.as_deref(),
        Some("https://acme.service-now.com/oauth_redirect.do")
    );
    assert_eq!(t.auth, InstanceAuth::Oauth);
    assert_eq!(t.setting("alias"), Some("x_acme.DEX"));
    assert_eq!(t.setting("entity_name"), None);
    assert_eq!(
        t.view(),
        serde_json::json!({"kind": "servicenow", "instance_url": "https://acme.service-now.com", "instance": "acme",
                           "auth": "oauth", "redirect_url": "https://acme.service-now.com/oauth_redirect.do",
                           "alias": "x_acme.DEX"})
    );
}

#[test]
fn a_targets_fields_are_those_of_its_kind() {
    // A setting of the consumer's, misspelt: the nearest one, and the whole list.
    let r = targeted("kind = \"servicenow\"\ninstance = \"acme\"\nalais = \"a.b\"");
    let d = diag(&r, "unknown-field");
    assert_eq!(d.field, "apps.dex-zoom.target.alais");
    assert!(d.fix.contains("did you mean `alias`?"), "{}", d.fix);
    assert!(d.fix.contains("connection_name"), "{}", d.fix);
    let line = with_target("").lines().count();
    assert_eq!(d.line, line + 2, "at the key: {d}");
    assert_eq!(d.column, 1, "at the key: {d}");
    assert!(r.declaration.is_none());
    // A setting is a string.
    let r = targeted("kind = \"servicenow\"\ninstance = \"acme\"\nalias = 7");
    let d = diag(&r, "toml-type");
    assert_eq!(d.field, "apps.dex-zoom.target.alias");
    assert!(d.message.contains("integer"), "{}", d.message);
    // A kind no plugin provides names those that are installed.
    let r = targeted("kind = \"salesforce\"\ninstance = \"acme\"");
    assert_eq!(diag(&r, "target-kind").fix, "use `kind = \"servicenow\"`");
    let mut none = catalog();
    none.consumers.clear();
    let r = check("t.toml", &init_text("acme"), &none);
    assert!(
        diag(&r, "target-kind")
            .fix
            .contains("install a consumer platform plugin")
    );
}

#[test]
fn a_consumer_without_instance_names_or_settings() {
    // A consumer addressed by base URL only, with its own callback path.
    let mut c = catalog();
    c.consumers.push(ConsumerRules {
        redirect_path: "callback".into(),
        ..ConsumerRules::named("crm")
    });
    let text = with_target("kind = \"crm\"\ninstance_url = \"https://crm.example.com\"").replace(
        "https://acme.service-now.com/oauth_redirect.do",
        "https://crm.example.com/callback",
    );
    let r = check("t.toml", &text, &c);
    assert!(r.diagnostics.is_empty(), "{:#?}", r.diagnostics);
    let t = r.declaration.expect("valid").apps[0].target.clone().expect("target");
    assert_eq!(t.redirect_url.as_deref(), Some("https://crm.example.com/callback"));
    assert_eq!(t.display, "crm");
    // The redirect must be its callback; it names no instances, takes no
    // ServiceNow settings, and needs its base URL.
    let crm = "kind = \"crm\"\ninstance_url = \"https://crm.example.com\"";
    for (target, rule, says) in [
        (crm.to_string(), "redirect-target", "https://crm.example.com/callback"),
        (
            "kind = \"crm\"\ninstance = \"acme\"".into(),
            "target-instance",
            "crm instances are not named",
        ),
        (
            format!("{crm}\nalias = \"a\""),
            "unknown-field",
            "allowed here: kind, instance, instance_url, auth",
        ),
        ("kind = \"crm\"".into(), "missing-field", "instance_url"),
    ] {
        let r = check("t.toml", &with_target(&target), &c);
        let d = diag(&r, rule);
        assert!(d.message.contains(says) || d.fix.contains(says), "{target}: {d}");
    }
}

#[test]
fn an_instance_name_is_fixed_from_the_consumers_template() {
    let fix_of = |instance: &str| {
        let r = targeted(&format!("kind = \"servicenow\"\ninstance = {instance:?}"));
        diag(&r, "target-instance").fix.clone()
    };
    assert_eq!(
        fix_of("acme.service-now.com"),
        "write only the instance name: `instance = \"acme\"`"
    );
    assert_eq!(
        fix_of("https://acme.service-now.com/"),
        "write only the instance name: `instance = \"acme\"`"
    );
    assert_eq!(fix_of("ACME"), "write it in lower case: `instance = \"acme\"`");
    assert!(
        fix_of("ac me").contains("https://NAME.service-now.com"),
        "{}",
        fix_of("ac me")
    );
    assert!(fix_of(".service-now.com").contains("https://NAME.service-now.com"));
}

#[test]
fn the_client_secrets_maximum_age_is_whole_days_from_1_to_3650() {
    let with = |v: &str| {
        init_text("acme").replace(
            "strict_mode = false",
            &format!("strict_mode = false\nclient_secret_max_age_days = {v}"),
        )
    };
    let r = check("t.toml", &with("90"), &catalog());
    assert!(r.diagnostics.is_empty(), "{:#?}", r.diagnostics);
    let d = r.declaration.expect("valid");
    assert_eq!(d.app(None).expect("app").client_secret_max_age_days, Some(90));
    for bad in ["0", "-3", "3651"] {
        let r = check("t.toml", &with(bad), &catalog());
        let d = diag(&r, "secret-max-age");
        assert_eq!(d.field, "apps.dex-zoom.client_secret_max_age_days");
        assert!(d.message.contains(bad) && d.fix.contains("days"), "{d}");
    }
    assert_eq!(
        rules_of(&with("\"90d\"")),
        ["toml-type"],
        "a string is no number of days"
    );
}

/// A fleet declaration (tests/fixtures/fleet): a DEX app per customer row,
/// managed by a per-customer management app, with `rows` as the inline rows
/// or the inventory line.
fn fleet_text(rows: &str) -> String {
    include_str!("../../../tests/fixtures/fleet/connapp.toml").replace("inventory = \"customers.csv\"", rows)
}

fn fleet_check(csv: &str) -> Report {
    check_inventory(&fleet_text("inventory = \"customers.csv\""), csv)
}

/// `text` checked with `csv` as its `customers.csv`.
fn check_inventory(text: &str, csv: &str) -> Report {
    check_with(
        "connapp.toml",
        text,
        Inventory::Text {
            file: "customers.csv",
            text: csv,
        },
        &catalog(),
    )
}

#[test]
fn a_fleet_makes_the_template_s_apps_for_every_row() {
    let csv = "customer,instance,zoom_account,zoom_app_id\n# a comment\nacme,acme,acct-1,\nglobex, globex-prod ,acct-2,AbC123\n";
    let r = fleet_check(csv);
    assert!(!r.has_errors(), "{:#?}", r.diagnostics);
    let d = r.declaration.expect("valid");
    let names: Vec<&str> = d.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["dex-acme", "dex-globex", "mgmt-acme", "mgmt-globex"]);
    let globex = d.app(Some("dex-globex")).expect("made");
    assert_eq!(
        globex.redirect_url.as_deref(),
        Some("https://globex-prod.service-now.com/oauth_redirect.do"),
        "cells are trimmed"
    );
    assert_eq!(globex.app_id.as_deref(), Some("AbC123"));
    assert_eq!(globex.managed_by.as_deref(), Some("mgmt-globex"));
    // An empty cell leaves out a field that is only its placeholder.
    assert_eq!(d.app(Some("dex-acme")).expect("made").app_id, None);
    assert_eq!(
        d.app(Some("mgmt-acme")).expect("made").oauth.account_id.as_deref(),
        Some("acct-1")
    );
    let fleet = d.fleet.expect("a fleet");
    assert_eq!(fleet.source, "customers.csv");
    assert_eq!(fleet.columns, ["customer", "instance", "zoom_account", "zoom_app_id"]);
    assert_eq!(fleet.rows[1].line, 4, "comments count as lines");
    assert_eq!(
        fleet.row_of("mgmt-globex").expect("a row").values["zoom_account"],
        "acct-2"
    );
    // Inline rows work the same way.
    let text = fleet_text(
        "[[fleet.rows]]\ncustomer = \"acme\"\ninstance = \"acme\"\nzoom_account = \"a1\"\nzoom_app_id = \"\"",
    );
    let r = check("connapp.toml", &text, &catalog());
    assert!(!r.has_errors(), "{:#?}", r.diagnostics);
    assert_eq!(r.declaration.expect("valid").apps.len(), 2);
}

#[test]
fn a_row_s_problem_is_reported_at_the_row_and_the_template_s_once() {
    // Row 3 has an instance that is no host name; row 4 repeats acme.
    let csv = "customer,instance,zoom_account,zoom_app_id\nacme,acme,a1,\nbad,Not A Host,a2,\nacme,acme2,a3,\n";
    let r = fleet_check(csv);
    assert!(r.declaration.is_none());
    let row: Vec<&Diagnostic> = r.diagnostics.iter().filter(|d| d.file == "customers.csv").collect();
    assert!(
        row.iter()
            .any(|d| d.line == 3 && d.field.starts_with("apps.dex-bad.") && d.message.contains("Not A Host")),
        "the bad instance at its row: {row:#?}"
    );
    let bad = row.iter().find(|d| d.line == 3).expect("row 3");
    assert_eq!(bad.column, 5, "at the instance cell: {bad}");
    let dup = diag(&r, "fleet-duplicate-app");
    assert_eq!((dup.file.as_str(), dup.line), ("customers.csv", 4), "{dup}");
    assert!(dup.message.contains("line 2"), "{dup}");
    // Nothing is said about rows that are fine.
    assert!(
        !r.diagnostics.iter().any(|d| d.line == 2 && d.file == "customers.csv"),
        "{:#?}",
        r.diagnostics
    );

    // A template problem every row shares is said once, at the template.
    let text = fleet_text("inventory = \"customers.csv\"").replace(
        "usage = \"admin-managed\"\nredirect",
        "usage = \"admin-manged\"\nredirect",
    );
    let csv = "customer,instance,zoom_account,zoom_app_id\na,a,1,\nb,b,2,\nc,c,3,\n";
    let r = check_inventory(&text, csv);
    let usage: Vec<&Diagnostic> = r.diagnostics.iter().filter(|d| d.field.ends_with("usage")).collect();
    assert_eq!(usage.len(), 1, "{usage:#?}");
    assert_eq!(usage[0].file, "connapp.toml");
    assert_eq!(usage[0].field, "fleet.apps.dex-{customer}.usage");
}

#[test]
fn the_inventory_and_the_template_are_checked_with_the_fix() {
    // A placeholder naming no column, with the nearest.
    let text = fleet_text("inventory = \"customers.csv\"").replace("{zoom_account}", "{zoom_acount}");
    let csv = "customer,instance,zoom_account,zoom_app_id\na,a,1,\n";
    let r = check_inventory(&text, csv);
    let d = diag(&r, "fleet-column");
    assert!(d.fix.contains("did you mean `{zoom_account}`"), "{d}");
    assert_eq!(d.file, "connapp.toml");
    // A row with a cell too many.
    let r = fleet_check("customer,instance,zoom_account,zoom_app_id\na,a,1,,extra\nb,b,2,\n");
    let d = diag(&r, "fleet-inventory-syntax");
    assert_eq!((d.file.as_str(), d.line), ("customers.csv", 2), "{d}");
    assert!(d.message.contains("5 cells") && d.message.contains("4 columns"), "{d}");
    // A header that cannot be a placeholder.
    let r = fleet_check("Customer,instance,zoom_account,zoom_app_id\na,a,1,\n");
    assert!(diag(&r, "fleet-inventory-syntax").message.contains("\"Customer\""));
    // The file could not be read: said at `inventory`.
    let r = check_with(
        "connapp.toml",
        &fleet_text("inventory = \"customers.csv\""),
        Inventory::Unreadable {
            file: "customers.csv",
            reason: "No such file or directory",
        },
        &catalog(),
    );
    let d = diag(&r, "fleet-inventory-unreadable");
    assert_eq!((d.field.as_str(), d.line), ("fleet.inventory", 7), "{d}");
    // A name pattern using no column, and an unknown field in a template.
    let text =
        fleet_text("inventory = \"customers.csv\"").replace("[fleet.apps.\"dex-{customer}\"]", "[fleet.apps.\"dex\"]");
    let r = check_inventory(&text, csv);
    assert!(diag(&r, "fleet-name-placeholder").message.contains("every row"));
    let text = fleet_text("inventory = \"customers.csv\"").replace("presets =", "prests =");
    let r = check_inventory(&text, csv);
    assert!(diag(&r, "unknown-field").fix.contains("did you mean `presets`"));
    assert_eq!(
        inventory_path(&fleet_text("inventory = \"inv/customers.csv\"")).as_deref(),
        Some("inv/customers.csv")
    );
}

#[test]
fn one_problem_in_many_rows_is_said_a_bounded_number_of_times() {
    let mut csv = String::from("customer,instance,zoom_account,zoom_app_id\n");
    for i in 0..500 {
        csv.push_str(&format!("c{i},Bad Host {i},a{i},\n"));
    }
    let r = fleet_check(&csv);
    let rows = r.diagnostics.iter().filter(|d| d.file == "customers.csv").count();
    // Three fields use the instance: each problem is said 20 times, then counted.
    assert_eq!(rows, 3 * ROW_REPORTS, "{rows} row reports");
    assert!(
        r.diagnostics
            .iter()
            .any(|d| d.message.starts_with(&format!("{} more rows", 500 - ROW_REPORTS))),
        "{:#?}",
        r.diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>()
    );
}

#[test]
fn a_selection_picks_the_apps_of_the_matching_rows() {
    let csv = "customer,instance,zoom_account,zoom_app_id\nacme,acme,a1,\nacme2,acme-test,a2,\nglobex,globex,a3,\n";
    let d = fleet_check(csv).declaration.expect("valid");
    let names = |f: &[&str]| -> Vec<String> {
        let f: Vec<String> = f.iter().map(|s| s.to_string()).collect();
        d.select(&f).expect("selected").iter().map(|a| a.name.clone()).collect()
    };
    assert_eq!(names(&["customer=globex"]), ["dex-globex", "mgmt-globex"]);
    assert_eq!(names(&["instance=acme*"]).len(), 4);
    assert_eq!(
        names(&["instance=acme*", "zoom_account=a2"]),
        ["dex-acme2", "mgmt-acme2"]
    );
    assert_eq!(names(&[]).len(), 6);
    let e = d.select(&["custmer=acme".to_string()]).expect_err("no such column");
    assert!(e.to_string().contains("customer, instance"), "{e}");
    assert!(matches!(d.select(&["acme".to_string()]), Err(SelectError::Shape(_))));
}

#[test]
fn a_fleet_row_can_keep_its_apps_in_a_store_of_its_own() {
    let text = fleet_text("inventory = \"customers.csv\"\n[fleet.store]\npath = \"/srv/{customer}.store\"").replace(
        "kind = \"file\"",
        "kind = \"file\"\n[store.settings]\npath = \"/srv/base.store\"",
    );
    let csv = "customer,instance,zoom_account,zoom_app_id\nacme,acme,a1,\nglobex,globex,a2,\n";
    let r = check_inventory(&text, csv);
    assert!(!r.has_errors(), "{:#?}", r.diagnostics);
    let d = r.declaration.expect("valid");
    assert_eq!(
        d.store_of("dex-acme").settings,
        [("path".to_string(), "/srv/acme.store".to_string())]
    );
    assert_eq!(d.store_of("mgmt-globex").settings[0].1, "/srv/globex.store");
    assert!(d.has_row_stores());
    let groups = d.store_groups();
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_eq!(groups[0].1, ["dex-acme", "mgmt-acme"]);
    // A setting the store does not take, with the nearest.
    let bad = text.replace("path = \"/srv/{customer}.store\"", "pth = \"/srv/{customer}.store\"");
    let r = check_inventory(&bad, csv);
    assert!(diag(&r, "fleet-store-setting").fix.contains("did you mean `path`"));
    // A management app outside the row cannot be read from the row's store.
    let shared = text.replace("managed_by = \"mgmt-{customer}\"", "managed_by = \"admin\"")
        + "\n[apps.admin]\ndisplay_name = \"admin\"\nplatform = \"zoom\"\nusage = \"admin-managed\"\nscopes = [\"marketplace:read:app:admin\"]\n[apps.admin.oauth]\ngrant = \"account_credentials\"\naccount_id = \"x\"\n";
    let r = check_inventory(&shared, csv);
    assert!(
        diag(&r, "fleet-store-manager").message.contains("\"admin\""),
        "{:#?}",
        r.diagnostics
    );
}
