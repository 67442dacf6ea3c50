//! verify's provider-independent checks in-process against the Zoom sandbox
//! (the Zoom platform plugin's profile decides what a refused redirect looks
//! like; the standard habits read the API's answers).

use connapp_plugin_api::Expected;

use super::*;
use crate::secrets::Secrets;
use crate::test_support::{DEX, S2S, World, put_credentials, shared};
use crate::tokens::Silent;

const REDIRECT: &str = "https://acme.service-now.com/oauth_redirect.do";

fn results(checks: &[Check]) -> Vec<(&'static str, &str, Outcome)> {
    checks.iter().map(|c| (c.check, c.item.as_str(), c.result)).collect()
}

#[test]
fn secrets_rows_say_what_is_stored_and_what_to_run() {
    let w = World::new();
    let shared = shared(&w.reg);
    Secrets::new(&shared.store)
        .put("dex", SecretKind::ClientId, DEX.as_bytes(), Expected::Any)
        .expect("id");
    let c = w.load("dex", &shared);
    let mut checks = Vec::new();
    secrets(&c, &mut checks).expect("secrets");
    assert_eq!(
        results(&checks),
        [
            ("secret", "Client ID", Outcome::Ok),
            ("secret", "Client Secret", Outcome::Fail),
            // The Secret Token is not needed without a webhook: no row claims a check.
        ]
    );
    assert_eq!(checks[1].fix, "connapp secrets set client-secret --app dex");
    // Stored anyway, it is reported as stored.
    Secrets::new(&shared.store)
        .put("dex", SecretKind::SecretToken, b"token", Expected::Any)
        .expect("token");
    let mut checks = Vec::new();
    secrets(&c, &mut checks).expect("secrets");
    assert_eq!(checks[2].item, "Secret Token");
    assert_eq!((checks[2].result, checks[2].detail.as_str()), (Outcome::Ok, "stored"));
}

#[test]
fn the_redirect_probe_tells_a_registered_url_from_one_off_by_a_slash() {
    let w = World::new();
    let shared = shared(&w.reg);
    let c = w.load("dex", &shared);
    let skipped = redirect_probe(&c, REDIRECT, &[], "ServiceNow");
    assert_eq!(skipped.result, Outcome::Skip, "no Client ID yet: {skipped:?}");
    put_credentials(&shared, "dex", DEX, &w.secret(DEX));

    let ok = redirect_probe(&c, REDIRECT, &[], "ServiceNow");
    assert_eq!(ok.result, Outcome::Ok, "{ok:?}");
    assert_eq!(ok.detail, "Zoom accepts it as ServiceNow's redirect");
    assert_eq!(ok.endpoint, "GET /oauth/authorize");

    let slash = format!("{REDIRECT}/");
    let refused = redirect_probe(&c, &slash, &[REDIRECT.to_string()], "ServiceNow");
    assert_eq!(refused.result, Outcome::Fail, "{refused:?}");
    assert!(refused.detail.contains("Zoom refuses it (4700"), "{}", refused.detail);
    assert!(
        refused.detail.contains(&format!("closest entry is {REDIRECT:?}")),
        "{}",
        refused.detail
    );
    assert!(refused.detail.contains("trailing slash"), "{}", refused.detail);
}

/// `own_grant`'s checks for `c`: the grant, then each scope; their items are always the same.
fn grant_checks(w: &World, c: &AppCtx<'_>) -> Vec<Check> {
    let mut checks = Vec::new();
    own_grant(&w.reg, c, &Rfc6750, &Silent, &mut checks);
    assert_eq!(
        results(&checks).iter().map(|(k, i, _)| (*k, *i)).collect::<Vec<_>>(),
        [("grant", "connapp's token"), ("scope", "user:read:user:admin")]
    );
    checks
}

fn outcomes(checks: &[Check]) -> Vec<Outcome> {
    checks.iter().map(|c| c.result).collect()
}

#[test]
fn own_grant_mints_a_token_and_proves_each_scope_with_its_probe() {
    let w = World::new();
    let shared = shared(&w.reg);
    let c = w.load("s2s", &shared);

    // No credentials: the grant fails with the token service's words, every scope is skipped.
    let checks = grant_checks(&w, &c);
    assert_eq!(outcomes(&checks), [Outcome::Fail, Outcome::Skip], "{checks:?}");
    assert!(
        checks[0].fix.contains("connapp secrets set client-id --app s2s"),
        "{:?}",
        checks[0]
    );

    put_credentials(&shared, "s2s", S2S, &w.secret(S2S));
    let checks = grant_checks(&w, &c);
    assert_eq!(outcomes(&checks), [Outcome::Ok, Outcome::Ok], "{checks:?}");
    // The preset's probe, under Zoom's API path.
    assert!(checks[1].endpoint.starts_with("GET /users"), "{:?}", checks[1]);
}

#[test]
fn the_standard_habits_read_rfc_6750_answers() {
    let app = crate::test_support::declaration(
        "version = 1\n[store]\nkind = \"memory\"\n[apps.idp]\ndisplay_name = \"IdP\"\nplatform = \"generic\"\nredirect_url = \"http://127.0.0.1/callback\"\nallow_list = [\"http://127.0.0.1/callback\"]\nscopes = [\"read\"]\n[apps.idp.oauth]\ntoken_url = \"https://idp.example/token\"\nauthorize_url = \"https://idp.example/authorize\"\n",
    )
    .apps
    .remove(0);
    let status = |status: u16| ApiError::Status {
        method: "GET".into(),
        path: "/me".into(),
        status,
        code: None,
        message: "nope".into(),
        errors: vec![],
        rate: Default::default(),
        tracking_id: None,
    };
    assert!(Rfc6750.token_refused(&status(401)) && !Rfc6750.token_refused(&status(403)));
    let (o, detail, fix) = Rfc6750.diagnose("read", &app, &status(403));
    assert_eq!(o, Outcome::Fail);
    assert!(
        detail.contains("does not hold read") && fix.contains("connapp login idp"),
        "{detail} / {fix}"
    );
    assert_eq!(Rfc6750.diagnose("read", &app, &status(429)).0, Outcome::Warn);
}
