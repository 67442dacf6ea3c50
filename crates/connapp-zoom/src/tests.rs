//! The Marketplace calls against the Zoom sandbox, with a management app's
//! server-to-server token.

use connapp_oauth::api::{Api, ApiError};
use connapp_oauth::flows::{self, ClientAuth, Credentials, Provider};
use connapp_oauth::http_client;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::Marketplace;

const DEX_APP: &str = "sbxAppDex0000000000001";
const MGMT: &str = "sbxMgmtClientId0000003";

/// The sandbox and a Marketplace API client authenticated as `client_id`.
async fn api_as(client_id: &str) -> (connapp_sandbox::Sandbox, Api) {
    let zoom = connapp_sandbox::Sandbox::start(connapp_sandbox::Seed::default()).expect("sandbox");
    let base = zoom.base_url();
    let http = http_client().expect("client");
    let p = Provider::new(None, &format!("{base}/oauth/token"), None, ClientAuth::Basic, true).expect("provider");
    let c = Credentials {
        client_id: client_id.into(),
        client_secret: SecretString::from(zoom.app(client_id).expect("app").client_secret),
    };
    let set = flows::account_credentials(&http, &p, &c, &zoom.account_id())
        .await
        .expect("server-to-server token");
    let api = Api::new(http, &format!("{base}/v2"), set.access_token).expect("api");
    (zoom, api)
}

#[tokio::test]
async fn an_exported_manifest_validates_and_replaces_the_app() {
    let (_zoom, api) = api_as(MGMT).await;
    let m = Marketplace::new(&api);
    let manifest = m.export_manifest(DEX_APP).await.expect("export");
    assert!(manifest.get("oauth_information").is_some(), "{manifest}");
    assert_eq!(
        m.validate_manifest(&manifest, Some(DEX_APP)).await.expect("validate"),
        vec![]
    );
    m.replace_manifest(DEX_APP, &manifest).await.expect("replace");
    assert_eq!(m.export_manifest(DEX_APP).await.expect("export again"), manifest);
}

#[tokio::test]
async fn an_invalid_manifest_is_a_list_of_named_settings_not_an_error() {
    let (_zoom, api) = api_as(MGMT).await;
    let m = Marketplace::new(&api);
    let mut manifest = m.export_manifest(DEX_APP).await.expect("export");
    manifest["oauth_information"]["usage"] = json!("EVERYONE");
    let problems = m
        .validate_manifest(&manifest, None)
        .await
        .expect("validate answers 200");
    assert!(
        problems
            .iter()
            .any(|(setting, msg)| setting == "oauth_information.usage" && msg.contains("EVERYONE")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn a_created_app_comes_with_its_credentials() {
    let (_zoom, api) = api_as(MGMT).await;
    let m = Marketplace::new(&api);
    let manifest = m.export_manifest(DEX_APP).await.expect("export");
    let created = m.create_app("DEX copy", &manifest).await.expect("create");
    let id = created["app_id"].as_str().expect("app_id");
    assert_ne!(id, DEX_APP);
    assert!(
        created
            .pointer("/credentials/client_id")
            .and_then(Value::as_str)
            .is_some()
    );
    assert_eq!(
        m.export_manifest(id).await.expect("export the new app")["oauth_information"],
        manifest["oauth_information"]
    );
}

#[tokio::test]
async fn a_token_without_marketplace_scopes_is_refused_with_zooms_code() {
    // The DEX server-to-server app holds the six DEX scopes, none of the Marketplace's.
    let (_zoom, api) = api_as("sbxS2SClientId00000002").await;
    let err = Marketplace::new(&api)
        .export_manifest(DEX_APP)
        .await
        .expect_err("refused");
    assert!(matches!(err, ApiError::Status { .. }), "{err:?}");
    assert!(err.code().is_some(), "{err:?}");
    assert!(
        err.message().contains("marketplace:read:app:admin"),
        "{}",
        err.message()
    );
}

/// The DEX app of the good corpus declaration (`tests/corpus/good.toml`), checked by the core.
pub(crate) fn an_app() -> connapp_core::App {
    let catalog = connapp_core::Catalog {
        presets: vec![connapp_core::PresetInfo {
            name: "servicenow-dex-zoom".into(),
            platform: "zoom".into(),
            scopes: connapp_sandbox::DEX_SCOPES.iter().map(|s| s.to_string()).collect(),
        }],
        store_kinds: vec!["file".into()],
        stores: Vec::new(),
        // Zoom's rules as platform-zoom's profile gives them.
        platforms: vec![connapp_core::PlatformRules {
            display: "Zoom".into(),
            requires_usage: true,
            account_grant: true,
            management_scope_prefix: "marketplace:".into(),
            display_name_max_chars: 49,
            ..connapp_core::PlatformRules::named("zoom")
        }],
        // The DEX target as platform-servicenow's profile gives it.
        consumers: vec![connapp_core::ConsumerRules {
            display: "ServiceNow".into(),
            redirect_path: "/oauth_redirect.do".into(),
            instance_url_template: "https://{instance}.service-now.com".into(),
            settings: vec!["alias".into(), "entity_name".into(), "connection_name".into()],
            ..connapp_core::ConsumerRules::named("servicenow")
        }],
    };
    let text = include_str!("../../../tests/corpus/good.toml");
    let report = connapp_core::check("good.toml", text, &catalog);
    let decl = report.declaration.unwrap_or_else(|| panic!("{:?}", report.diagnostics));
    decl.apps
        .into_iter()
        .find(|a| a.name == "dex-zoom")
        .expect("the DEX app")
}

/// A rotation with an overlap: both secrets work until the old one's
/// revocation, which `reschedule_secret_revocation(Now)` brings forward; the
/// 4th schedule change in 15 minutes is refused with when to retry.
#[tokio::test]
async fn a_secret_rotation_overlaps_until_the_old_secret_is_revoked() {
    use crate::Revoke;
    const DEX: &str = "sbxDexClientId00000001";
    let (zoom, api) = api_as(MGMT).await;
    let m = Marketplace::new(&api);
    let old = zoom.app(DEX).expect("dex").client_secret;
    let base = zoom.base_url();
    let works = |secret: String| {
        let url = format!("{base}/oauth/token");
        async move {
            http_client()
                .expect("client")
                .post(url)
                .basic_auth(DEX, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("token")
                .status()
                .is_success()
        }
    };
    let in_a_day = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 86_400;
    let rotated = m
        .start_secret_rotation(DEX_APP, Revoke::At(in_a_day))
        .await
        .expect("rotate")
        .expect("the new secret");
    assert!(
        !format!("{rotated:?}").contains(rotated.client_secret.as_str()),
        "Debug hides it"
    );
    assert!(rotated.revoke_old_at.is_some());
    let new = rotated.client_secret.to_string();
    assert!(
        works(old.clone()).await && works(new.clone()).await,
        "both work during the overlap"
    );
    m.reschedule_secret_revocation(DEX_APP, Revoke::Now)
        .await
        .expect("revoke now");
    assert!(!works(old).await, "the old secret is revoked");
    assert!(works(new).await);
    // Two changes so far; the third is allowed, the fourth refused with a time.
    m.start_secret_rotation(DEX_APP, Revoke::At(in_a_day))
        .await
        .expect("a third change");
    let e = m
        .reschedule_secret_revocation(DEX_APP, Revoke::Now)
        .await
        .expect_err("rate-limited");
    match e {
        ApiError::Status { status: 429, rate, .. } => assert!(rate.retry_after.is_some(), "says when"),
        other => panic!("{other}"),
    }
}
