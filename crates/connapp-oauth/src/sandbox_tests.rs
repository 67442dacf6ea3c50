//! The edge against the real sandbox: Zoom's error shapes reach callers intact.

use secrecy::SecretString;
use serde_json::json;
use url::Url;

use crate::api::{Api, ApiError};
use crate::flows::{self, ClientAuth, Credentials, Provider};
use crate::{EdgeError, http_client};

const DEX: &str = "sbxDexClientId00000001";
const LOOPBACK: &str = "http://127.0.0.1/callback";

fn world() -> (connapp_sandbox::Sandbox, Provider, Credentials) {
    let mut seed = connapp_sandbox::Seed::default();
    seed.knobs.auto_approve = Some("admin".into());
    for a in &mut seed.apps {
        if a.client_id == DEX {
            a.allow_list.push(LOOPBACK.into());
        }
    }
    let zoom = connapp_sandbox::Sandbox::start(seed).expect("sandbox");
    let base = zoom.base_url();
    let p = Provider::new(
        Some(&format!("{base}/oauth/authorize")),
        &format!("{base}/oauth/token"),
        None,
        ClientAuth::Basic,
        true,
    )
    .expect("provider");
    let c = Credentials {
        client_id: DEX.into(),
        client_secret: SecretString::from(zoom.app(DEX).expect("app").client_secret),
    };
    (zoom, p, c)
}

/// A client that authorized for `http://127.0.0.1:8400/callback` (the
/// sandbox approves at once): the client, the redirect, the code, the request.
async fn code(p: &Provider, c: &Credentials) -> (reqwest::Client, Url, String, flows::AuthorizeRequest) {
    let http = http_client().expect("client");
    let redirect = Url::parse("http://127.0.0.1:8400/callback").expect("url");
    let req = flows::authorize(p, c, &redirect).expect("authorize");
    let r = http.get(req.url.as_str()).send().await.expect("authorize");
    let loc = r.headers()["location"].to_str().expect("location").to_string();
    let code = Url::parse(&loc)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("code")
        .1
        .into_owned();
    (http, redirect, code, req)
}

#[tokio::test]
async fn a_token_time_redirect_mismatch_arrives_as_4709() {
    let (_zoom, p, c) = world();
    let (http, redirect, code, req) = code(&p, &c).await;
    let other = Url::parse(&format!("{redirect}/")).expect("url");
    let e = flows::exchange_code(&http, &p, &c, &code, &other, req.pkce_verifier)
        .await
        .expect_err("Zoom refuses");
    match e {
        EdgeError::Rejected { reason: Some(r), .. } => assert!(r.contains("4709"), "{r}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn api_errors_carry_zooms_code_message_and_rate_limit_headers() {
    let (zoom, p, c) = world();
    let (http, redirect, code, req) = code(&p, &c).await;
    let set = flows::exchange_code(&http, &p, &c, &code, &redirect, req.pkce_verifier)
        .await
        .expect("tokens");
    let api = Api::new(http.clone(), &format!("{}/v2", zoom.base_url()), set.access_token).expect("api");
    let me = api.get("/users/me", &[]).await.expect("me");
    assert_eq!(me["email"], "admin@sandbox.example");
    // A scope the app does not have (a Marketplace call): 4711, naming the scopes.
    let e = api
        .get("/marketplace/apps/sbxAppDex0000000000001", &[])
        .await
        .expect_err("no scope");
    assert_eq!(e.code(), Some(4711), "{e}");
    assert!(e.message().contains("does not contain scopes"), "{e}");
    // Exhausted daily limit: 429 with the category, the type and Retry-After.
    let limits = json!({"Light": {"per_window": 100, "window_secs": 1, "per_day": 0}});
    http.put(format!("{}/_sandbox/rate-limits", zoom.base_url()))
        .json(&limits)
        .send()
        .await
        .expect("knob");
    match api.get("/users/me", &[]).await.expect_err("limited") {
        ApiError::Status { status, rate, .. } => {
            assert_eq!(status, 429);
            assert_eq!(rate.category.as_deref(), Some("Light"));
            assert_eq!(rate.kind.as_deref(), Some("Daily-limit"));
            assert!(rate.retry_after.is_some());
        }
        other => panic!("{other:?}"),
    }
    // A bad token: 124.
    let bad = Api::new(
        http,
        &format!("{}/v2", zoom.base_url()),
        SecretString::from("nope".to_string()),
    )
    .expect("api");
    assert_eq!(bad.get("/users/me", &[]).await.expect_err("bad").code(), Some(124));
}
