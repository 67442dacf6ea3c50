//! The token service in-process, against the Zoom sandbox, with the Zoom
//! platform plugin linked in (its profile decides the API path and the words).

use connapp_oauth::flows::TokenSet;
use connapp_plugin_api::Expected;
use secrecy::ExposeSecret;

use super::*;
use crate::test_support::{DEX, S2S, World, declaration, put_credentials, shared};

#[test]
fn a_server_to_server_app_mints_serves_the_stored_token_and_renews_on_demand() {
    let w = World::new();
    let shared = shared(&w.reg);
    put_credentials(&shared, "s2s", S2S, &w.secret(S2S));
    let c = w.load("s2s", &shared);

    let (first, src) = c.token(&Silent).expect("minted");
    assert_eq!(src, Source::Minted);
    // The memory tier: served again without reading the store (the record
    // is gone from it meanwhile, and the answer is the same token).
    let (again, src) = c.token(&Silent).expect("from memory");
    assert_eq!(src, Source::Memory);
    assert_eq!(again.access_token.expose_secret(), first.access_token.expose_secret());
    let key = crate::secrets::token_key("s2s");
    let kept = shared.store.get(&key).expect("get").expect("stored");
    shared.store.delete(&key, Expected::Any).expect("delete");
    let (again, src) = c.token(&Silent).expect("from memory");
    assert_eq!(src, Source::Memory);
    assert_eq!(again.access_token.expose_secret(), first.access_token.expose_secret());
    shared.store.put(&key, &kept.value, Expected::Absent).expect("put back");
    // Another owner of the same store (its own memory) reads the store.
    let mut elsewhere = shared.clone();
    elsewhere.tokens = Default::default();
    let other = w.load("s2s", &elsewhere);
    let (stored, src) = other.token(&Silent).expect("stored");
    assert_eq!(src, Source::Stored);
    assert_eq!(stored.access_token.expose_secret(), first.access_token.expose_secret());
    let (renewed, src) = c.renew(&Silent).expect("renewed");
    assert_eq!(src, Source::Minted);
    assert_ne!(renewed.access_token.expose_secret(), first.access_token.expose_secret());

    // Zoom's API path comes from its profile, once, whatever the base says.
    assert_eq!(c.api_root(&renewed), format!("{}/v2", w.zoom.base_url()));
    let mut with_path = renewed;
    with_path.api_url = Some(format!("{}/v2/", w.zoom.base_url()));
    assert_eq!(c.api_root(&with_path), format!("{}/v2", w.zoom.base_url()));

    let (store, apps) = status(&w.decl, &shared).expect("status");
    assert_eq!(store.store, "memory (memory)");
    let s2s = apps.iter().find(|a| a.app == "s2s").expect("s2s");
    assert!(s2s.logged_in && s2s.missing_scopes.is_empty(), "{s2s:?}");
    let dex = apps.iter().find(|a| a.app == "dex").expect("dex");
    assert!(!dex.logged_in && dex.error.is_none(), "{dex:?}");
}

#[test]
fn missing_credentials_say_where_the_platform_keeps_them() {
    let w = World::new();
    let shared = shared(&w.reg);
    let c = w.load("s2s", &shared);
    let e = c.token(&Silent).expect_err("no credentials");
    assert_eq!(e.kind, ErrorKind::Failure);
    assert_eq!(e.message, "no Client ID is stored for s2s");
    let hint = e.hint.unwrap_or_default();
    assert!(
        hint.contains("the Zoom Marketplace") && hint.contains("connapp secrets set client-id --app s2s"),
        "{hint}"
    );
    // A user-consent app without a grant needs a login, not a secret.
    let dex = c.sibling(&w.reg, &w.decl, "dex").expect("dex");
    let e = dex.token(&Silent).expect_err("no token");
    assert_eq!(e.kind, ErrorKind::Reauth);
    assert!(e.hint.unwrap_or_default().contains("connapp login dex"));
}

#[test]
fn a_refused_refresh_token_is_a_lost_grant_with_the_platform_s_reasons() {
    let w = World::new();
    let shared = shared(&w.reg);
    put_credentials(&shared, "dex", DEX, &w.secret(DEX));
    // An expired access token with a refresh token Zoom never issued.
    let set = TokenSet {
        access_token: SecretString::from("expired".to_string()),
        refresh_token: Some(SecretString::from("never-issued".to_string())),
        expires_in: Some(0),
        scopes: None,
        api_url: None,
    };
    let rec = TokenRecord::from_set(set, "authorization_code", 1);
    shared
        .store
        .put(&crate::secrets::token_key("dex"), &rec.to_bytes(), Expected::Absent)
        .expect("stored");
    let c = w.load("dex", &shared);
    let e = c.token(&Silent).expect_err("refused");
    assert_eq!(e.kind, ErrorKind::Reauth, "{e}");
    assert!(e.message.contains("Zoom rotates refresh tokens"), "{}", e.message);
    assert!(e.hint.unwrap_or_default().contains("connapp login dex"));
}

#[test]
fn a_redirect_mismatch_shows_both_urls_in_the_platform_s_words() {
    let w = World::new();
    let shared = shared(&w.reg);
    let c = w.load("dex", &shared);
    let mismatch = || EdgeError::Rejected {
        endpoint: "token",
        status: 400,
        error: "invalid_request".into(),
        reason: Some("Redirect URI mismatch (4709)".into()),
    };
    let r = "https://acme.service-now.com/oauth_redirect.do";
    let e = c.exchange_error(mismatch(), r, &format!("{r}/"));
    assert!(e.message.contains("Zoom refused the code exchange"), "{}", e.message);
    assert!(e.message.contains(&format!("{r:?}")) && e.message.contains(&format!("\"{r}/\"")));
    assert!(e.message.contains("trailing slash"), "{}", e.message);
    let bad_client = EdgeError::Rejected {
        endpoint: "token",
        status: 400,
        error: "invalid_client".into(),
        reason: None,
    };
    assert!(
        c.exchange_error(bad_client, r, r)
            .hint
            .unwrap_or_default()
            .contains("rotated")
    );

    // A platform without such a code reads the same answer as any refusal.
    let generic = declaration(
        "version = 1\n[store]\nkind = \"memory\"\n[apps.idp]\ndisplay_name = \"IdP\"\nplatform = \"generic\"\nredirect_url = \"http://127.0.0.1/callback\"\nallow_list = [\"http://127.0.0.1/callback\"]\nscopes = [\"read\"]\n[apps.idp.oauth]\nauthorize_url = \"https://idp.example/authorize\"\ntoken_url = \"https://idp.example/token\"\n",
    );
    let g = AppCtx::load(&w.reg, &generic, None, &shared).expect("generic");
    let e = g.exchange_error(mismatch(), r, r);
    assert!(!e.message.contains("byte for byte"), "{}", e.message);
}

/// A provider on this machine that does not answer is most likely a sandbox
/// that is not running: the hint says so; elsewhere it points at the network.
#[test]
fn an_unreachable_loopback_provider_suggests_the_sandbox() {
    let down = |host: &str| {
        edge_error(
            "dex-zoom",
            EdgeError::Unreachable {
                host: host.into(),
                detail: "connection refused".into(),
            },
        )
    };
    for host in ["127.0.0.1:8700", "localhost:8700", "[::1]:8700", "[::1]", "127.0.0.2"] {
        let e = down(host);
        assert_eq!(e.kind, ErrorKind::Unreachable);
        assert!(
            e.hint.as_deref().is_some_and(|h| h.contains("connapp sandbox")),
            "{host}: {e:?}"
        );
    }
    let e = down("api.zoom.us");
    assert!(e.hint.as_deref().is_some_and(|h| h.contains("network")), "{e:?}");
}
