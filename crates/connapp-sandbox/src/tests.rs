//! The sandbox over real HTTP: one test per behaviour connapp relies on.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest;

use super::*;

const R: &str = "https://acme.service-now.com/oauth_redirect.do";
const DEX: &str = "sbxDexClientId00000001";

struct T {
    sbx: Sandbox,
    http: reqwest::Client,
}

fn t() -> T {
    T {
        sbx: Sandbox::start(Seed::default()).expect("start"),
        http: crate::webhooks::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
    }
}

impl T {
    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.sbx.base_url())
    }
    fn secret(&self, client: &str) -> String {
        self.sbx.app(client).expect("app").client_secret
    }
    /// Consents as `user` through the consent form; returns the Location header.
    async fn consent(&self, user: &str, params: &[(&str, &str)]) -> reqwest::Response {
        let mut form: Vec<(&str, &str)> = vec![("response_type", "code"), ("client_id", DEX), ("redirect_uri", R)];
        form.extend_from_slice(params);
        form.push(("user", user));
        form.push(("decision", "allow"));
        self.http
            .post(self.url("/oauth/authorize"))
            .form(&form)
            .send()
            .await
            .expect("post")
    }
    async fn code(&self, user: &str, params: &[(&str, &str)]) -> String {
        let r = self.consent(user, params).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
        let loc = r.headers()["location"].to_str().expect("ascii").to_string();
        let u = url::Url::parse(&loc).expect("url");
        u.query_pairs().find(|(k, _)| k == "code").expect("code").1.into_owned()
    }
    async fn token(&self, form: &[(&str, &str)], client: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url("/oauth/token"))
            .basic_auth(client, Some(self.secret(client)))
            .form(form)
            .send()
            .await
            .expect("token");
        (r.status(), r.json().await.expect("json"))
    }
    async fn exchange(&self, code: &str) -> Value {
        let (s, v) = self
            .token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", R),
                ],
                DEX,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
    async fn admin_tokens(&self) -> Value {
        let code = self.code("admin", &[]).await;
        self.exchange(&code).await
    }
    async fn api(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/v2{path}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("api")
    }
    async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, self.url(&format!("/_sandbox{path}")))
            .json(&body)
            .send()
            .await
            .expect("control");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.expect("json")
    }
    async fn advance(&self, seconds: i64) {
        self.control(reqwest::Method::POST, "/clock/advance", json!({"seconds": seconds}))
            .await;
    }
}

fn date(days_ago: i64) -> String {
    let now = chrono::DateTime::from_timestamp(crate::real_now() as i64, 0).expect("now");
    let d = now.date_naive() - chrono::Duration::days(days_ago);
    d.format("%Y-%m-%d").to_string()
}

#[tokio::test]
async fn authorize_shows_consent_and_redirects_with_code_and_state() {
    let t = t();
    let r = t
        .http
        .get(t.url("/oauth/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", DEX),
            ("redirect_uri", R),
            ("state", "xyz"),
        ])
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("text");
    assert!(html.contains("DEX for Zoom") && html.contains("report:read:user:admin") && html.contains("id=\"allow\""));
    let r = t.consent("admin", &[("state", "xyz")]).await;
    let loc = r.headers()["location"].to_str().expect("loc");
    assert!(loc.starts_with(&format!("{R}?code=")), "{loc}");
    assert!(loc.ends_with("&state=xyz"), "{loc}");
}

#[tokio::test]
async fn redirect_mismatch_is_a_4700_page_that_never_redirects() {
    let t = t();
    for bad in [
        format!("{R}/"),
        R.replace("acme", "ACME"),
        R.replace("https", "http"),
        "https://evil.example/cb".into(),
    ] {
        let r = t
            .http
            .get(t.url("/oauth/authorize"))
            .query(&[
                ("response_type", "code"),
                ("client_id", DEX),
                ("redirect_uri", bad.as_str()),
            ])
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.headers().get("location").is_none());
        let html = r.text().await.expect("text");
        assert!(html.contains("Invalid redirect url") && html.contains("4700"), "{html}");
    }
    let r = t
        .http
        .get(t.url("/oauth/authorize"))
        .header("accept", "application/json")
        .query(&[
            ("response_type", "code"),
            ("client_id", DEX),
            ("redirect_uri", "https://x.example/"),
        ])
        .send()
        .await
        .expect("get");
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v,
        json!({"status": false, "errorCode": 4700, "errorMessage": "Invalid redirect url", "result": null})
    );
}

#[tokio::test]
async fn token_time_redirect_mismatch_is_4709() {
    let t = t();
    let code = t.code("admin", &[]).await;
    let (s, v) = t
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &format!("{R}/")),
            ],
            DEX,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "invalid_request");
    assert!(v["reason"].as_str().expect("reason").contains("4709"), "{v}");
}

#[tokio::test]
async fn codes_are_single_use_and_expire_after_five_minutes() {
    let t = t();
    let code = t.code("admin", &[]).await;
    t.exchange(&code).await;
    let (s, v) = t
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", R),
            ],
            DEX,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"reason": format!("Invalid authorization code {code}"), "error": "invalid_request"})
    );
    let code = t.code("owner", &[]).await;
    t.advance(301).await;
    let (s, v) = t
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", R),
            ],
            DEX,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "invalid_request");
}

#[tokio::test]
async fn token_response_has_zoom_fields() {
    let t = t();
    let v = t.admin_tokens().await;
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 3599);
    assert_eq!(v["api_url"], t.sbx.base_url());
    let scopes: Vec<&str> = v["scope"].as_str().expect("scope").split(' ').collect();
    assert_eq!(scopes, DEX_SCOPES.to_vec());
    assert!(v["refresh_token"].is_string() && v["access_token"].is_string());
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_dies_at_once() {
    let t = t();
    let first = t.admin_tokens().await;
    let rt1 = first["refresh_token"].as_str().expect("rt");
    let (s, second) = t
        .token(&[("grant_type", "refresh_token"), ("refresh_token", rt1)], DEX)
        .await;
    assert_eq!(s, StatusCode::OK);
    let rt2 = second["refresh_token"].as_str().expect("rt");
    assert_ne!(rt1, rt2);
    let (s, v) = t
        .token(&[("grant_type", "refresh_token"), ("refresh_token", rt1)], DEX)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v, json!({"reason": "Invalid Token!", "error": "invalid_grant"}));
    let (s, _) = t
        .token(&[("grant_type", "refresh_token"), ("refresh_token", rt2)], DEX)
        .await;
    assert_eq!(s, StatusCode::OK);
    let c = t.control(reqwest::Method::GET, "/counters", json!(null)).await;
    assert_eq!(c["refreshes"]["1"], 2);
    assert_eq!(c["token_requests"]["refresh_token"], 3);
}

#[tokio::test]
async fn a_second_consent_kills_the_first_grant() {
    let t = t();
    let first = t.admin_tokens().await;
    let second = t.admin_tokens().await;
    let (s, v) = t
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", first["refresh_token"].as_str().expect("rt")),
            ],
            DEX,
        )
        .await;
    assert_eq!(
        (s, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Invalid Token!"))
    );
    let r = t.api(first["access_token"].as_str().expect("at"), "/users/me").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        t.api(second["access_token"].as_str().expect("at"), "/users/me")
            .await
            .status(),
        StatusCode::OK
    );
    // Another user's consent is a separate grant and leaves this one alone.
    let owner_code = t.code("owner", &[]).await;
    t.exchange(&owner_code).await;
    assert_eq!(
        t.api(second["access_token"].as_str().expect("at"), "/users/me")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn missing_scope_is_4711_naming_the_accepted_scopes() {
    let t = t();
    let code = t.code("admin", &[("scope", "user:read:user:admin")]).await;
    let v = t.exchange(&code).await;
    assert_eq!(v["scope"], "user:read:user:admin");
    let r = t
        .api(v["access_token"].as_str().expect("at"), "/metrics/zoomrooms")
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        body,
        json!({"code": 4711, "message": "Invalid access token, does not contain scopes:[dashboard:read:list_zoomrooms:admin, dashboard:read:list_zoomrooms:master]."})
    );
    // Zoom Room details need a scope outside the six.
    let full = t.admin_tokens().await;
    let r = t
        .api(
            full["access_token"].as_str().expect("at"),
            "/metrics/zoomrooms/anything",
        )
        .await;
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["code"], 4711);
    assert!(
        body["message"]
            .as_str()
            .expect("m")
            .contains("dashboard:read:zoomroom:admin")
    );
}

#[tokio::test]
async fn scopes_are_frozen_at_consent() {
    let t = t();
    let mut app = t.sbx.app(DEX).expect("app");
    app.scopes.retain(|s| s != "dashboard:read:list_zoomrooms:admin");
    t.control(reqwest::Method::PUT, &format!("/apps/{DEX}"), json!(app))
        .await;
    let old = t.admin_tokens().await;
    app.scopes.push("dashboard:read:list_zoomrooms:admin".into());
    t.control(reqwest::Method::PUT, &format!("/apps/{DEX}"), json!(app))
        .await;
    let (_, refreshed) = t
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", old["refresh_token"].as_str().expect("rt")),
            ],
            DEX,
        )
        .await;
    assert!(!refreshed["scope"].as_str().expect("s").contains("list_zoomrooms"));
    let r = t
        .api(refreshed["access_token"].as_str().expect("at"), "/metrics/zoomrooms")
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A new consent gets the new scopes.
    let fresh = t.admin_tokens().await;
    assert_eq!(
        t.api(fresh["access_token"].as_str().expect("at"), "/metrics/zoomrooms")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn expired_and_invalid_tokens_are_124() {
    let t = t();
    let v = t.admin_tokens().await;
    let at = v["access_token"].as_str().expect("at");
    let r = t.api("not-a-token", "/users/me").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("x-zm-trackingid"));
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"code": 124, "message": "Invalid access token."})
    );
    t.advance(3600).await;
    let r = t.api(at, "/users/me").await;
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"code": 124, "message": "Access token is expired."})
    );
    // The refresh token still works after the access token expired.
    let (s, _) = t
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", v["refresh_token"].as_str().expect("rt")),
            ],
            DEX,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn rate_limits_answer_429_with_zoom_headers() {
    let t = t();
    let v = t.admin_tokens().await;
    let at = v["access_token"].as_str().expect("at");
    t.control(
        reqwest::Method::PUT,
        "/rate-limits",
        json!({"Light": {"per_window": 2, "window_secs": 3600, "per_day": 1000}}),
    )
    .await;
    let r = t.api(at, "/users/me").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-ratelimit-category"], "Light");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "999");
    t.api(at, "/users/me").await;
    let r = t.api(at, "/users/me").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["x-ratelimit-type"], "QPS");
    assert!(r.headers().contains_key("x-ratelimit-reset"));
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["code"], 429);
    // Daily limit: Retry-After is an ISO-8601 datetime.
    t.control(
        reqwest::Method::PUT,
        "/rate-limits",
        json!({"Light": {"per_window": 100, "window_secs": 1, "per_day": 1}}),
    )
    .await;
    t.api(at, "/users/me").await;
    let r = t.api(at, "/users/me").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["x-ratelimit-type"], "Daily-limit");
    let retry = r.headers()["retry-after"].to_str().expect("ascii");
    assert!(retry.ends_with("T00:00:00Z"), "{retry}");
}

/// Accounts started together share a runtime and nothing else: one
/// account's rate limit is its own, and dropping one leaves the rest serving.
#[tokio::test]
async fn many_accounts_in_one_process_keep_their_own_limits() {
    let seeds = (0..3)
        .map(|i| Seed {
            account_id: format!("sbxAccountMany{i:09}"),
            ..Seed::default()
        })
        .collect();
    let mut all: Vec<T> = Sandbox::start_many(seeds)
        .expect("start")
        .into_iter()
        .map(|sbx| T { sbx, ..t() })
        .collect();
    assert_eq!(all[1].sbx.account_id(), "sbxAccountMany000000001");
    let a = all[0].admin_tokens().await["access_token"]
        .as_str()
        .expect("at")
        .to_string();
    let b = all[1].admin_tokens().await["access_token"]
        .as_str()
        .expect("at")
        .to_string();
    all[0]
        .control(
            reqwest::Method::PUT,
            "/rate-limits",
            json!({"Light": {"per_window": 1, "window_secs": 3600, "per_day": 1000}}),
        )
        .await;
    all[0].api(&a, "/users/me").await;
    assert_eq!(
        all[0].api(&a, "/users/me").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let r = all[1].api(&b, "/users/me").await;
    assert_eq!(r.status(), StatusCode::OK);
    let left: u64 = r.headers()["x-ratelimit-remaining"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("remaining");
    assert!(left >= 78, "the other account's calls counted here: {left} left of 80");
    // Another account's token means nothing here.
    assert_ne!(all[1].api(&a, "/users/me").await.status(), StatusCode::OK);
    // The first account gone, the second still answers.
    all.remove(0);
    assert_eq!(all[0].api(&b, "/users/me").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_or_expired_page_tokens_are_code_300() {
    let t = t();
    let v = t.admin_tokens().await;
    let at = v["access_token"].as_str().expect("at");
    let r = t.api(at, "/metrics/zoomrooms?page_size=2").await;
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["zoom_rooms"].as_array().expect("rooms").len(), 2);
    let next = body["next_page_token"].as_str().expect("token").to_string();
    assert!(!next.is_empty());
    let body: Value = t
        .api(at, &format!("/metrics/zoomrooms?page_size=2&next_page_token={next}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["zoom_rooms"].as_array().expect("rooms").len(), 2);
    let r = t.api(at, "/metrics/zoomrooms?page_size=2&next_page_token=bogus").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.expect("json")["code"], 300);
    t.advance(16 * 60).await;
    let fresh = t.admin_tokens().await;
    let r = t
        .api(
            fresh["access_token"].as_str().expect("at"),
            &format!("/metrics/zoomrooms?page_size=2&next_page_token={next}"),
        )
        .await;
    assert_eq!(r.json::<Value>().await.expect("json")["code"], 300);
}

#[tokio::test]
async fn parameters_in_the_query_string_are_rejected() {
    let t = t();
    let code = t.code("admin", &[]).await;
    let r = t
        .http
        .post(t.url(&format!(
            "/oauth/token?grant_type=authorization_code&code={code}&redirect_uri={R}"
        )))
        .basic_auth(DEX, Some(t.secret(DEX)))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v = t.admin_tokens().await;
    let r = t
        .http
        .get(t.url(&format!(
            "/v2/users/me?access_token={}",
            v["access_token"].as_str().expect("at")
        )))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["code"], 124);
    assert!(body["message"].as_str().expect("m").contains("query parameter"));
}

#[tokio::test]
async fn members_cannot_authorize_admin_managed_apps() {
    let t = t();
    let r = t.consent("member", &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.expect("text").contains("An account admin is required"));
}

#[tokio::test]
async fn deny_redirects_with_access_denied() {
    let t = t();
    let r = t
        .http
        .post(t.url("/oauth/authorize"))
        .form(&[
            ("response_type", "code"),
            ("client_id", DEX),
            ("redirect_uri", R),
            ("state", "s1"),
            ("user", "admin"),
            ("decision", "deny"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(
        r.headers()["location"].to_str().expect("loc"),
        format!("{R}?error=access_denied&state=s1")
    );
}

#[tokio::test]
async fn pkce_s256_is_enforced() {
    let t = t();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier));
    let code = t
        .code(
            "admin",
            &[("code_challenge", &challenge), ("code_challenge_method", "S256")],
        )
        .await;
    let (s, v) = t
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", R),
                ("code_verifier", "wrong"),
            ],
            DEX,
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let code = t
        .code(
            "admin",
            &[("code_challenge", &challenge), ("code_challenge_method", "S256")],
        )
        .await;
    let (s, _) = t
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", R),
                ("code_verifier", verifier),
            ],
            DEX,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn client_auth_by_body_and_bad_secrets() {
    let t = t();
    let code = t.code("admin", &[]).await;
    let secret = t.secret(DEX);
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", R),
            ("client_id", DEX),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .basic_auth(DEX, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"reason": "Invalid client_id or client_secret", "error": "invalid_client"})
    );
    // After a rotation, the old secret is refused.
    t.control(
        reqwest::Method::POST,
        &format!("/apps/{DEX}/rotate-secret"),
        json!(null),
    )
    .await;
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .basic_auth(DEX, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.json::<Value>().await.expect("json")["error"], "invalid_client");
}

#[tokio::test]
async fn server_to_server_and_client_credentials_have_no_refresh_token() {
    let t = t();
    let s2s = "sbxS2SClientId00000002";
    let account = t.sbx.account_id();
    let (s, v) = t
        .token(&[("grant_type", "account_credentials"), ("account_id", &account)], s2s)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v.get("refresh_token").is_none());
    let at = v["access_token"].as_str().expect("at");
    let me: Value = t.api(at, "/users/me").await.json().await.expect("json");
    assert_eq!(me["role_name"], "Owner");
    let (s, v) = t
        .token(&[("grant_type", "account_credentials"), ("account_id", "other")], s2s)
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (s, v) = t.token(&[("grant_type", "client_credentials")], DEX).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.get("refresh_token").is_none());
    let (s, v) = t.token(&[("grant_type", "password")], DEX).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
}

#[tokio::test]
async fn revoke_ends_the_whole_grant() {
    let t = t();
    let v = t.admin_tokens().await;
    let r = t
        .http
        .post(t.url("/oauth/revoke"))
        .basic_auth(DEX, Some(t.secret(DEX)))
        .form(&[("token", v["access_token"].as_str().expect("at"))])
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.json::<Value>().await.expect("json"), json!({"status": "success"}));
    assert_eq!(
        t.api(v["access_token"].as_str().expect("at"), "/users/me")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let (s, _) = t
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", v["refresh_token"].as_str().expect("rt")),
            ],
            DEX,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_six_dex_endpoints_return_realistic_data() {
    let t = t();
    let v = t.admin_tokens().await;
    let at = v["access_token"].as_str().expect("at");
    let me: Value = t.api(at, "/users/me").await.json().await.expect("json");
    assert_eq!(me["email"], "admin@sandbox.example");
    // Find a host with meetings through the state, then walk report → QoS → participant QoS.
    let st = t.control(reqwest::Method::GET, "/state", json!(null)).await;
    let host = st["meetings"][0]["host_id"].as_str().expect("host").to_string();
    let report: Value = t
        .api(
            at,
            &format!("/report/users/{host}/meetings?from={}&to={}", date(20), date(0)),
        )
        .await
        .json()
        .await
        .expect("json");
    let meetings = report["meetings"].as_array().expect("meetings");
    assert!(!meetings.is_empty(), "{report}");
    let m = &meetings[0];
    let uuid = m["uuid"].as_str().expect("uuid");
    let double = urlencode(&urlencode(uuid));
    let qos: Value = t
        .api(
            at,
            &format!("/metrics/meetings/{double}/participants/qos?type=past&page_size=10"),
        )
        .await
        .json()
        .await
        .expect("json");
    let p = &qos["participants"][0];
    let latency = p["user_qos"][0]["audio_input"]["latency"].as_str().expect("latency");
    assert!(latency.ends_with(" ms"), "{latency}");
    let pid = p["id"].as_str().expect("pid");
    let one: Value = t
        .api(
            at,
            &format!("/metrics/meetings/{}/participants/{pid}/qos?type=past", m["id"]),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(one["id"], pid);
    // Without type=past an ended meeting is not found.
    let r = t
        .api(at, &format!("/metrics/meetings/{}/participants/qos", m["id"]))
        .await;
    assert_eq!(r.json::<Value>().await.expect("json")["code"], 3001);
    let rooms: Value = t.api(at, "/metrics/zoomrooms").await.json().await.expect("json");
    assert_eq!(rooms["zoom_rooms"].as_array().expect("rooms").len(), 6);
    let range = format!("from={}&to={}", date(25), date(0));
    let issues: Value = t
        .api(at, &format!("/metrics/zoomrooms/issues?{range}"))
        .await
        .json()
        .await
        .expect("json");
    assert!(
        issues["issues"]
            .as_array()
            .expect("issues")
            .iter()
            .all(|i| i["zoom_rooms_count"].as_u64() > Some(0))
    );
    let with: Value = t
        .api(at, &format!("/metrics/issues/zoomrooms?{range}"))
        .await
        .json()
        .await
        .expect("json");
    let room = with["zoom_rooms"][0]["id"].as_str().expect("room");
    let details: Value = t
        .api(at, &format!("/metrics/issues/zoomrooms/{room}?{range}"))
        .await
        .json()
        .await
        .expect("json");
    assert!(details["total_records"].as_u64() > Some(0), "{details}");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn uuids_with_slashes_must_be_double_encoded() {
    let t = t();
    let v = t.admin_tokens().await;
    let at = v["access_token"].as_str().expect("at");
    let st = t.control(reqwest::Method::GET, "/state", json!(null)).await;
    let uuid = st["meetings"]
        .as_array()
        .expect("m")
        .iter()
        .map(|m| m["uuid"].as_str().expect("uuid"))
        .find(|u| u.starts_with('/'))
        .expect("a uuid with /")
        .to_string();
    let once = t
        .api(
            at,
            &format!("/metrics/meetings/{}/participants/qos?type=past", urlencode(&uuid)),
        )
        .await;
    assert_eq!(once.status(), StatusCode::NOT_FOUND);
    let twice = t
        .api(
            at,
            &format!(
                "/metrics/meetings/{}/participants/qos?type=past",
                urlencode(&urlencode(&uuid))
            ),
        )
        .await;
    assert_eq!(twice.status(), StatusCode::OK);
}

#[tokio::test]
async fn date_ranges_and_plans_are_enforced() {
    let t = t();
    let v = t.admin_tokens().await;
    let at = v["access_token"].as_str().expect("at");
    let r = t.api(at, "/report/users/me/meetings").await;
    assert_eq!(r.json::<Value>().await.expect("json")["code"], 300);
    let r = t
        .api(
            at,
            &format!("/report/users/me/meetings?from={}&to={}", date(60), date(0)),
        )
        .await;
    assert_eq!(r.json::<Value>().await.expect("json")["code"], 300);
    let r = t
        .api(
            at,
            &format!("/report/users/me/meetings?from={}&to={}", date(220), date(200)),
        )
        .await;
    assert_eq!(r.json::<Value>().await.expect("json")["code"], 300);
    let r = t.api(at, "/report/users/nobody@example.com/meetings").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    t.control(reqwest::Method::PUT, "/account/plan", json!({"plan": "pro"}))
        .await;
    let r = t.api(at, "/metrics/zoomrooms").await;
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"code": 200, "message": "No permission."})
    );
    t.control(reqwest::Method::PUT, "/account/plan", json!({"plan": "free"}))
        .await;
    // Free allows one Heavy call per second: let the window pass.
    t.advance(2).await;
    let r = t
        .api(
            at,
            &format!("/report/users/me/meetings?from={}&to={}", date(10), date(0)),
        )
        .await;
    assert_eq!(r.json::<Value>().await.expect("json")["code"], 200);
}

#[tokio::test]
async fn auto_approve_knob_and_grant_revocation_from_control() {
    let t = t();
    let mut knobs: Value = t.control(reqwest::Method::GET, "/knobs", json!(null)).await;
    knobs["auto_approve"] = json!("owner");
    t.control(reqwest::Method::PUT, "/knobs", knobs).await;
    let r = t
        .http
        .get(t.url("/oauth/authorize"))
        .query(&[("response_type", "code"), ("client_id", DEX), ("redirect_uri", R)])
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let loc = r.headers()["location"].to_str().expect("loc").to_string();
    let code = url::Url::parse(&loc)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("code")
        .1
        .into_owned();
    let v = t.exchange(&code).await;
    let grants = t.control(reqwest::Method::GET, "/grants", json!(null)).await;
    let id = grants[0]["id"].as_u64().expect("id");
    t.control(reqwest::Method::POST, &format!("/grants/{id}/revoke"), json!(null))
        .await;
    assert_eq!(
        t.api(v["access_token"].as_str().expect("at"), "/users/me")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

// ---------------------------------------------------------------------------
// Marketplace API
// ---------------------------------------------------------------------------

const MGMT: &str = "sbxMgmtClientId0000003";
const DEX_APP_ID: &str = "sbxAppDex0000000000001";

impl T {
    async fn mgmt_token(&self) -> String {
        let account = self.sbx.account_id();
        let (s, v) = self
            .token(&[("grant_type", "account_credentials"), ("account_id", &account)], MGMT)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["access_token"].as_str().expect("at").to_string()
    }
    async fn mp(&self, method: reqwest::Method, token: &str, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut r = self
            .http
            .request(method, self.url(&format!("/v2/marketplace{path}")))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.expect("marketplace")
    }
}

#[tokio::test]
async fn marketplace_needs_marketplace_scopes() {
    let t = t();
    let dex = t.admin_tokens().await;
    let r = t
        .mp(
            reqwest::Method::GET,
            dex["access_token"].as_str().expect("at"),
            &format!("/apps/{DEX_APP_ID}/manifest"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["code"], 4711);
    assert!(
        body["message"]
            .as_str()
            .expect("m")
            .contains("marketplace:read:app:admin")
    );
}

#[tokio::test]
async fn export_validate_and_replace_a_manifest() {
    let t = t();
    let mt = t.mgmt_token().await;
    let r = t
        .mp(reqwest::Method::GET, &mt, &format!("/apps/{DEX_APP_ID}/manifest"), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let exported: Value = r.json().await.expect("json");
    let m = &exported["manifest"];
    assert_eq!(m["oauth_information"]["usage"], "ADMIN_MANAGEMENT");
    assert_eq!(m["oauth_information"]["development_redirect_uri"], R);
    assert_eq!(m["oauth_information"]["oauth_allow_list"], json!([R]));
    assert_eq!(m["oauth_information"]["scopes"].as_array().expect("scopes").len(), 6);

    // The validator answers 200 either way.
    let r = t
        .mp(
            reqwest::Method::POST,
            &mt,
            "/apps/manifest/validate",
            Some(json!({"manifest": m})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.expect("json")["ok"], true);
    let mut bad = m.clone();
    bad["oauth_information"]["usage"] = json!("USER_OPERATION");
    let r = t
        .mp(
            reqwest::Method::POST,
            &mt,
            "/apps/manifest/validate",
            Some(json!({"manifest": bad})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"], "invalid_manifest");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .expect("m")
            .ends_with("is not a valid scope name when usage is USER_OPERATION")
    );
    // Permissive: an allow list without the redirect URL and unknown keys pass.
    let mut lax = m.clone();
    lax["oauth_information"]["oauth_allow_list"] = json!(["https://other.example/cb"]);
    lax["oauth_information"]["made_up_key"] = json!(true);
    let r = t
        .mp(
            reqwest::Method::POST,
            &mt,
            "/apps/manifest/validate",
            Some(json!({"manifest": lax})),
        )
        .await;
    assert_eq!(r.json::<Value>().await.expect("json")["ok"], true);

    // An old grant, then a PUT that adds a scope and omits the allow list.
    let before = t.admin_tokens().await;
    let mut next = m.clone();
    next["oauth_information"]["scopes"]
        .as_array_mut()
        .expect("scopes")
        .push(json!({"scope": "dashboard:read:zoomroom:admin", "optional": false}));
    next["oauth_information"]
        .as_object_mut()
        .expect("obj")
        .remove("oauth_allow_list");
    next["oauth_information"]["made_up_key"] = json!(1);
    let r = t
        .mp(
            reqwest::Method::PUT,
            &mt,
            &format!("/apps/{DEX_APP_ID}/manifest"),
            Some(json!({"manifest": next})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let after: Value = t
        .mp(reqwest::Method::GET, &mt, &format!("/apps/{DEX_APP_ID}/manifest"), None)
        .await
        .json()
        .await
        .expect("json");
    let oi = &after["manifest"]["oauth_information"];
    assert_eq!(oi["oauth_allow_list"], json!([]), "a PUT is a full replacement");
    assert!(oi.get("made_up_key").is_none(), "unknown keys are dropped");
    assert_eq!(oi["scopes"].as_array().expect("scopes").len(), 7);
    // The old grant keeps its scopes; the redirect URL still works for a new consent, which gets the new scope.
    let r = t
        .api(before["access_token"].as_str().expect("at"), "/metrics/zoomrooms/x")
        .await;
    assert_eq!(r.json::<Value>().await.expect("json")["code"], 4711);
    let fresh = t.admin_tokens().await;
    assert!(
        fresh["scope"]
            .as_str()
            .expect("s")
            .contains("dashboard:read:zoomroom:admin")
    );

    // An invalid PUT changes nothing.
    let r = t
        .mp(
            reqwest::Method::PUT,
            &mt,
            &format!("/apps/{DEX_APP_ID}/manifest"),
            Some(json!({"manifest": bad})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let still: Value = t
        .mp(reqwest::Method::GET, &mt, &format!("/apps/{DEX_APP_ID}/manifest"), None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(still["manifest"]["oauth_information"]["usage"], "ADMIN_MANAGEMENT");
}

#[tokio::test]
async fn only_draft_general_apps_export() {
    let t = t();
    let mt = t.mgmt_token().await;
    let r = t
        .mp(reqwest::Method::GET, &mt, "/apps/sbxAppS2S0000000000002/manifest", None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v,
        json!({"code": 1500, "message": "You can only export Draft General app's manifest now"})
    );
    let info: Value = t
        .mp(reqwest::Method::GET, &mt, &format!("/apps/{DEX_APP_ID}"), None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(info["app_type"], "OAuthApp");
    assert_eq!(info["app_status"], "unpublished");
}

#[tokio::test]
async fn create_an_app_and_rotate_its_secret() {
    let t = t();
    let mt = t.mgmt_token().await;
    let manifest = json!({
        "display_information": {"display_name": "DEX for Zoom (beta)"},
        "oauth_information": {
            "usage": "ADMIN_MANAGEMENT",
            "development_redirect_uri": "https://beta.service-now.com/oauth_redirect.do",
            "oauth_allow_list": ["https://beta.service-now.com/oauth_redirect.do"],
            "scopes": [{"scope": "user:read:user:admin", "optional": false}]
        }
    });
    let r = t
        .mp(
            reqwest::Method::POST,
            &mt,
            "/apps",
            Some(json!({"app_type": "general", "app_name": "DEX beta", "contact_name": "A", "contact_email": "a@example.com", "company_name": "Acme", "manifest": manifest})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.expect("json");
    let app_id = created["app_id"].as_str().expect("id").to_string();
    let id = created["credentials"]["client_id"].as_str().expect("id").to_string();
    let secret = created["credentials"]["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let cc = |secret: String| {
        let id = id.clone();
        let t = &t;
        async move {
            t.http
                .post(t.url("/oauth/token"))
                .basic_auth(&id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("token")
                .status()
        }
    };
    assert_eq!(cc(secret.clone()).await, StatusCode::OK);
    let r = t
        .mp(
            reqwest::Method::POST,
            &mt,
            &format!("/apps/{app_id}/rotate_client_secret"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let rotated: Value = r.json().await.expect("json");
    let new_secret = rotated["client_secret"].as_str().expect("secret").to_string();
    assert_ne!(new_secret, secret);
    assert_eq!(cc(secret).await, StatusCode::BAD_REQUEST);
    assert_eq!(cc(new_secret).await, StatusCode::OK);
}

/// Zoom's rotation with an overlap (changelog 2025-09-22): after
/// `action: new` both secrets work until the revoke time; `action: update`
/// moves it (`now` revokes at once); a second rotation while one is in
/// progress is refused; about 3 schedule changes per 15 minutes, then 429
/// with a Retry-After time; a time beyond 30 days is refused.
#[tokio::test]
async fn a_rotation_keeps_both_secrets_until_the_old_one_is_revoked() {
    let t = t();
    // The management token, taken again after the clock moves past its expiry.
    let mt = std::cell::RefCell::new(t.mgmt_token().await);
    let apps: Value = t.control(reqwest::Method::GET, "/apps", Value::Null).await;
    let dex = apps
        .as_array()
        .expect("apps")
        .iter()
        .find(|a| a["client_id"] == DEX)
        .expect("dex")
        .clone();
    let app_id = dex["app_id"].as_str().expect("id").to_string();
    let old = dex["client_secret"].as_str().expect("secret").to_string();
    let cc = |secret: String| {
        let t = &t;
        async move {
            t.http
                .post(t.url("/oauth/token"))
                .basic_auth(DEX, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("token")
                .status()
        }
    };
    let rotate = |body: Value| {
        let (t, mt, path) = (&t, mt.borrow().clone(), format!("/apps/{app_id}/rotate_client_secret"));
        async move { t.mp(reqwest::Method::POST, &mt, &path, Some(body)).await }
    };
    // The sandbox's clock: the real one plus what the test advanced it by.
    let advanced = std::cell::Cell::new(0u64);
    let sbx_now = || crate::real_now() + advanced.get();
    let in_an_hour = || crate::data::iso(sbx_now() + 3600);
    let advance = |secs: u64| {
        advanced.set(advanced.get() + secs);
        t.advance(secs as i64)
    };
    let r = rotate(json!({"action": "new", "revoke_old_secret_time": in_an_hour()})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let new = r.json::<Value>().await.expect("json")["client_secret"]
        .as_str()
        .expect("new secret")
        .to_string();
    assert_ne!(new, old);
    assert_eq!(
        cc(old.clone()).await,
        StatusCode::OK,
        "the old secret works during the overlap"
    );
    assert_eq!(cc(new.clone()).await, StatusCode::OK);
    // One rotation at a time.
    let r = rotate(json!({"action": "new", "revoke_old_secret_time": "now"})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Past the revoke time the old secret is refused.
    advance(3601).await;
    *mt.borrow_mut() = t.mgmt_token().await;
    assert_eq!(cc(old.clone()).await, StatusCode::BAD_REQUEST);
    assert_eq!(cc(new.clone()).await, StatusCode::OK);
    // update without a rotation in progress; a time beyond 30 days.
    let r = rotate(json!({"action": "update", "revoke_old_secret_time": "now"})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = rotate(json!({"action": "new", "revoke_old_secret_time": crate::data::iso(sbx_now() + 31 * 86_400)})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A second rotation, its revocation moved to now: the older secret dies at once.
    let r = rotate(json!({"action": "new", "revoke_old_secret_time": in_an_hour()})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let newest = r.json::<Value>().await.expect("json")["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    assert_eq!(cc(new.clone()).await, StatusCode::OK);
    let r = rotate(json!({"action": "update", "revoke_old_secret_time": "now"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(cc(new).await, StatusCode::BAD_REQUEST);
    assert_eq!(cc(newest.clone()).await, StatusCode::OK);
    // Three changes in 15 minutes (the first rotation is older): the next is refused with when to retry.
    let r = rotate(json!({"action": "new", "revoke_old_secret_time": in_an_hour()})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = rotate(json!({"action": "update", "revoke_old_secret_time": "now"})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some());
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["code"], 429);
    // The knob: revoked at once, whatever the request says.
    advance(16 * 60).await;
    *mt.borrow_mut() = t.mgmt_token().await;
    let mut knobs = t.control(reqwest::Method::GET, "/knobs", Value::Null).await;
    knobs["rotate_revokes_at_once"] = json!(true);
    t.control(reqwest::Method::PUT, "/knobs", knobs).await;
    let r = rotate(json!({"action": "update", "revoke_old_secret_time": "now"})).await;
    assert_eq!(r.status(), StatusCode::OK, "ends the rotation in progress");
    let r = rotate(json!({"action": "new", "revoke_old_secret_time": in_an_hour()})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(cc(newest).await, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Receiver {
    seen: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    /// Status to answer events with.
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    secret_token: std::sync::Arc<std::sync::Mutex<String>>,
}

async fn receive(
    axum::extract::State(rx): axum::extract::State<Receiver>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let text = String::from_utf8_lossy(&body).into_owned();
    rx.seen.lock().expect("lock").push((headers, text.clone()));
    let v: Value = serde_json::from_str(&text).unwrap_or_default();
    if v["event"] == "endpoint.url_validation" {
        let plain = v["payload"]["plainToken"].as_str().unwrap_or("").to_string();
        let key = rx.secret_token.lock().expect("lock").clone();
        let enc = crate::webhooks::hmac_hex(&key, &plain);
        return axum::Json(json!({"plainToken": plain, "encryptedToken": enc})).into_response();
    }
    let status = rx.status.load(std::sync::atomic::Ordering::SeqCst);
    axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::OK)
        .into_response()
}

async fn start_receiver(secret_token: &str) -> (String, Receiver) {
    let rx = Receiver::default();
    rx.status.store(200, std::sync::atomic::Ordering::SeqCst);
    *rx.secret_token.lock().expect("lock") = secret_token.to_string();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), rx)
}

async fn wait_for<F: Fn() -> bool>(f: F) {
    for _ in 0..330 {
        if f() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    panic!("condition not reached in 10 s");
}

impl T {
    async fn subscribe(&self, endpoint: &str, events: &[&str]) {
        let mt = self.mgmt_token().await;
        let exported: Value = self
            .mp(reqwest::Method::GET, &mt, &format!("/apps/{DEX_APP_ID}/manifest"), None)
            .await
            .json()
            .await
            .expect("json");
        let mut m = exported["manifest"].clone();
        m["features"]["event_subscriptions"] = json!([{"endpoint_url": endpoint, "events": events}]);
        let r = self
            .mp(
                reqwest::Method::PUT,
                &mt,
                &format!("/apps/{DEX_APP_ID}/manifest"),
                Some(json!({"manifest": m})),
            )
            .await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
}

#[tokio::test]
async fn subscribing_runs_the_url_validation_challenge() {
    let t = t();
    let token = t.sbx.app(DEX).expect("app").secret_token;
    let (url, rx) = start_receiver(&token).await;
    t.subscribe(&url, &["meeting.ended"]).await;
    wait_for(|| !rx.seen.lock().expect("lock").is_empty()).await;
    let (h, body) = rx.seen.lock().expect("lock")[0].clone();
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["event"], "endpoint.url_validation");
    let ts = h["x-zm-request-timestamp"]
        .to_str()
        .expect("ts")
        .parse::<u64>()
        .expect("number");
    assert_eq!(
        h["x-zm-signature"].to_str().expect("sig"),
        crate::webhooks::signature(&token, ts, &body)
    );
    let checks = t
        .control(
            reqwest::Method::POST,
            &format!("/apps/{DEX}/validate-endpoints"),
            json!(null),
        )
        .await;
    assert_eq!(checks[0]["ok"], true, "{checks}");
    // A receiver answering with the wrong key fails validation, and says why.
    *rx.secret_token.lock().expect("lock") = "not-the-secret-token".into();
    let checks = t
        .control(
            reqwest::Method::POST,
            &format!("/apps/{DEX}/validate-endpoints"),
            json!(null),
        )
        .await;
    assert_eq!(checks[0]["ok"], false);
    assert!(checks[0]["error"].as_str().expect("e").contains("encryptedToken"));
}

#[tokio::test]
async fn events_are_signed_over_the_exact_bytes_sent() {
    let t = t();
    let token = t.sbx.app(DEX).expect("app").secret_token;
    let (url, rx) = start_receiver(&token).await;
    t.subscribe(&url, &["meeting.ended", "app_deauthorized"]).await;
    wait_for(|| rx.seen.lock().expect("lock").len() == 1).await;
    let n = t
        .control(
            reqwest::Method::POST,
            "/events",
            json!({"client_id": DEX, "event": "meeting.ended", "payload": {"object": {"id": 123}}}),
        )
        .await;
    assert_eq!(n["deliveries"], 1);
    let n = t
        .control(
            reqwest::Method::POST,
            "/events",
            json!({"client_id": DEX, "event": "meeting.started"}),
        )
        .await;
    assert_eq!(n["deliveries"], 0, "not subscribed");
    wait_for(|| rx.seen.lock().expect("lock").len() == 2).await;
    let (h, body) = rx.seen.lock().expect("lock")[1].clone();
    assert!(!body.contains(": ") && !body.contains('\n'), "compact JSON: {body}");
    let ts = h["x-zm-request-timestamp"]
        .to_str()
        .expect("ts")
        .parse::<u64>()
        .expect("number");
    assert_eq!(
        h["x-zm-signature"].to_str().expect("sig"),
        crate::webhooks::signature(&token, ts, &body)
    );
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["event"], "meeting.ended");
    assert_eq!(v["payload"]["account_id"], t.sbx.account_id());
    // Revoking a user's grant sends app_deauthorized.
    let tokens = t.admin_tokens().await;
    t.http
        .post(t.url("/oauth/revoke"))
        .basic_auth(DEX, Some(t.secret(DEX)))
        .form(&[("token", tokens["access_token"].as_str().expect("at"))])
        .send()
        .await
        .expect("revoke");
    wait_for(|| rx.seen.lock().expect("lock").len() == 3).await;
    let v: Value = serde_json::from_str(&rx.seen.lock().expect("lock")[2].1).expect("json");
    assert_eq!(v["event"], "app_deauthorized");
}

#[tokio::test]
async fn failed_deliveries_are_retried_three_times_after_5xx_never_after_4xx() {
    let t = t();
    let token = t.sbx.app(DEX).expect("app").secret_token;
    let (url, rx) = start_receiver(&token).await;
    t.subscribe(&url, &["meeting.ended"]).await;
    wait_for(|| rx.seen.lock().expect("lock").len() == 1).await;
    rx.status.store(503, std::sync::atomic::Ordering::SeqCst);
    t.control(
        reqwest::Method::POST,
        "/events",
        json!({"client_id": DEX, "event": "meeting.ended"}),
    )
    .await;
    wait_for(|| rx.seen.lock().expect("lock").len() == 2).await;
    // The sandbox schedules the retry after it has read the 503; under load that
    // can come later than the delivery the receiver saw: wait for it.
    let retry_scheduled = || async {
        for _ in 0..330 {
            let d = t.control(reqwest::Method::GET, "/deliveries", json!(null)).await;
            if d["pending_retries"].as_array().is_some_and(|p| !p.is_empty()) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
        panic!("no retry was scheduled within 10 s");
    };
    retry_scheduled().await;
    let mut seen = 2;
    for (minutes, expected) in [(4, 2), (1, 3), (20, 4), (60, 5), (600, 5)] {
        t.advance(minutes * 60).await;
        if expected > seen {
            // The retry became due: it goes out (asynchronously) now.
            wait_for(|| rx.seen.lock().expect("lock").len() >= expected).await;
            seen = expected;
            if expected < 5 {
                retry_scheduled().await;
            }
        } else {
            // Not due yet (or no retries left): nothing may arrive.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        assert_eq!(rx.seen.lock().expect("lock").len(), expected, "after +{minutes} min");
    }
    let d = t.control(reqwest::Method::GET, "/deliveries", json!(null)).await;
    let attempts: Vec<u64> = d["deliveries"]
        .as_array()
        .expect("d")
        .iter()
        .map(|x| x["attempt"].as_u64().expect("n"))
        .collect();
    assert_eq!(attempts, vec![0, 1, 2, 3]);
    assert!(d["pending_retries"].as_array().expect("p").is_empty());
    // A 4xx is final.
    rx.status.store(404, std::sync::atomic::Ordering::SeqCst);
    t.control(
        reqwest::Method::POST,
        "/events",
        json!({"client_id": DEX, "event": "meeting.ended"}),
    )
    .await;
    wait_for(|| rx.seen.lock().expect("lock").len() == 6).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let d = t.control(reqwest::Method::GET, "/deliveries", json!(null)).await;
    assert!(d["pending_retries"].as_array().expect("p").is_empty());
}

#[tokio::test]
async fn pkce_plain_and_qos_older_than_a_year() {
    let t = t();
    let code = t
        .code(
            "admin",
            &[
                ("code_challenge", "plain-verifier-0123456789-abcdefghijklmnop"),
                ("code_challenge_method", "plain"),
            ],
        )
        .await;
    let (s, _) = t
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", R),
                ("code_verifier", "plain-verifier-0123456789-abcdefghijklmnop"),
            ],
            DEX,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let st = t.control(reqwest::Method::GET, "/state", json!(null)).await;
    let id = st["meetings"][0]["id"].as_u64().expect("id");
    t.advance(366 * 86_400).await;
    let v = t.admin_tokens().await;
    let r = t
        .api(
            v["access_token"].as_str().expect("at"),
            &format!("/metrics/meetings/{id}/participants/qos?type=past"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.expect("json")["code"], 12702);
}
