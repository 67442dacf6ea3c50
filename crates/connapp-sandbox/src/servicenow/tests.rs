//! The ServiceNow sandbox over real HTTP, with the Zoom sandbox behind it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Instance, SnSeed};
use crate::{DEX_SCOPES, Sandbox, Seed};

const ADMIN: (&str, &str) = ("admin", "admin-password");

/// The instance under test: alone, or one of many served together.
enum Sn {
    Alone(Instance),
    Many(Vec<Instance>, usize),
}

impl Sn {
    fn base_url(&self) -> String {
        match self {
            Sn::Alone(i) => i.base_url(),
            Sn::Many(all, i) => all[*i].base_url(),
        }
    }
}

struct World {
    sn: Sn,
    zoom: Sandbox,
    http: reqwest::Client,
}

const DEX: &str = "sbxDexClientId00000001";

fn world() -> World {
    world_on(Sn::Alone(Instance::start(SnSeed::default()).expect("servicenow")))
}

fn world_on(sn: Sn) -> World {
    let mut seed = Seed::default();
    seed.knobs.auto_approve = Some("admin".into());
    for a in &mut seed.apps {
        if a.client_id == DEX {
            let r = format!("{}/oauth_redirect.do", sn.base_url());
            a.redirect_urls = vec![r.clone()];
            a.allow_list = vec![r];
        }
    }
    let zoom = Sandbox::start(seed).expect("zoom");
    World {
        sn,
        zoom,
        http: crate::webhooks::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
    }
}

impl World {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sn.base_url())
    }
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut rb = self
            .http
            .request(method, self.url(path))
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .header("accept", "application/json");
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("request");
        let (status, headers) = (r.status(), r.headers().clone());
        let v = r.json().await.unwrap_or(Value::Null);
        (status, headers, v)
    }
    async fn post(&self, table: &str, body: Value) -> Value {
        let (st, _, v) = self
            .call(reqwest::Method::POST, &format!("/api/now/table/{table}"), Some(body))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["result"].clone()
    }
    async fn list(&self, table: &str, query: &str) -> Vec<Value> {
        let (st, _, v) = self
            .call(
                reqwest::Method::GET,
                &format!("/api/now/table/{table}?sysparm_query={query}"),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["result"].as_array().expect("list").clone()
    }

    /// The record chain as connapp writes it; returns (credential, profile, entity) sys_ids.
    async fn chain(&self, secret_ok: bool) -> (String, String, String) {
        let zoom = self.zoom.base_url();
        let entity = self
            .post(
                "oauth_entity",
                json!({"name": "DEX for Zoom", "type": "oauth_provider", "default_grant_type": "authorization_code",
                       "client_id": DEX, "auth_url": format!("{zoom}/oauth/authorize"), "token_url": format!("{zoom}/oauth/token"),
                       "revoke_token_url": format!("{zoom}/oauth/revoke"), "redirect_url": self.url("/oauth_redirect.do"),
                       "send_client_credentials_as": "basic_auth_header", "refresh_token_lifespan": "7776000", "active": "true"}),
            )
            .await;
        let eid = entity["sys_id"].as_str().expect("id").to_string();
        let secret = self.zoom.app(DEX).expect("app").client_secret;
        let q = if secret_ok {
            "?sysparm_input_display_value=true"
        } else {
            ""
        };
        let (st, _, v) = self
            .call(
                reqwest::Method::PATCH,
                &format!("/api/now/table/oauth_entity/{eid}{q}"),
                Some(json!({"client_secret": secret})),
            )
            .await;
        assert_eq!(st, StatusCode::OK);
        assert!(!v.to_string().contains(&secret), "the secret came back");
        let profiles = self
            .list("oauth_entity_profile", &format!("oauth_entity={eid}^default=true"))
            .await;
        assert_eq!(profiles.len(), 1, "the default profile is created with the provider");
        let pid = profiles[0]["sys_id"].as_str().expect("id").to_string();
        let cred = self
            .post(
                "oauth_2_0_credentials",
                json!({"name": "DEX for Zoom", "oauth_entity_profile": pid, "active": "true"}),
            )
            .await;
        let cid = cred["sys_id"].as_str().expect("id").to_string();
        let alias = self.list("sys_alias", "id=sn_dex_zoom.DEX_for_Zoom").await;
        let aid = alias[0]["sys_id"].as_str().expect("alias").to_string();
        self.post(
            "http_connection",
            json!({"name": "DEX for Zoom", "connection_alias": aid, "credential": cid, "connection_url": zoom, "active": "true"}),
        )
        .await;
        (cid, pid, eid)
    }

    /// "Get OAuth Token": initiator → Zoom authorize (auto-approved) → oauth_redirect.do.
    async fn consent(&self, cred: &str, profile: &str) -> String {
        let mut url = self.url(&format!(
            "/oauth_initiator.do?oauth_requestor_context=oauth_2_0_credentials&oauth_requestor={cred}&oauth_provider_profile={profile}&response_type=code"
        ));
        for _ in 0..4 {
            let r = self.http.get(&url).send().await.expect("browser");
            match r.headers().get("location") {
                Some(l) => url = l.to_str().expect("location").to_string(),
                None => return r.text().await.expect("page"),
            }
        }
        panic!("too many redirects")
    }

    async fn dex(&self) -> Value {
        self.http
            .post(self.url("/_sandbox/dex/run"))
            .send()
            .await
            .expect("dex")
            .json()
            .await
            .expect("json")
    }
}

#[tokio::test]
async fn table_api_conventions() {
    let w = world();
    // Strings everywhere, references as link/value, 201 + Location.
    let (st, h, v) = w
        .call(
            reqwest::Method::POST,
            "/api/now/table/oauth_entity",
            Some(json!({"name": "P", "active": true, "refresh_token_lifespan": 100, "unknown_field": "ignored"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let id = v["result"]["sys_id"].as_str().expect("id").to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(v["result"]["active"], "true");
    assert_eq!(v["result"]["refresh_token_lifespan"], "100");
    assert!(v["result"].get("unknown_field").is_none());
    assert!(
        h["location"]
            .to_str()
            .expect("loc")
            .ends_with(&format!("/api/now/table/oauth_entity/{id}"))
    );
    let profiles = w.list("oauth_entity_profile", &format!("oauth_entity={id}")).await;
    assert_eq!(profiles[0]["name"], "P default_profile");
    assert_eq!(profiles[0]["oauth_entity"]["value"], id.as_str());
    assert!(
        profiles[0]["oauth_entity"]["link"]
            .as_str()
            .expect("link")
            .contains("/api/now/table/oauth_entity/")
    );
    // A second default profile is refused by the business rule.
    let (st, _, _) = w
        .call(
            reqwest::Method::POST,
            "/api/now/table/oauth_entity_profile",
            Some(json!({"oauth_entity": id, "default": "true", "name": "x"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Display values and excluded links.
    let (_, _, v) = w
        .call(reqwest::Method::GET, &format!("/api/now/table/oauth_entity_profile?sysparm_query=oauth_entity={id}&sysparm_display_value=true&sysparm_exclude_reference_link=true&sysparm_fields=oauth_entity,nonsense"), None)
        .await;
    assert_eq!(v["result"][0], json!({"oauth_entity": "P"}));
    // An invalid query part is silently ignored: the query matches more rows.
    let all = w.list("sys_alias", "").await.len();
    assert_eq!(w.list("sys_alias", "nmae=nothing").await.len(), all);
    assert_eq!(w.list("sys_alias", "name=nothing").await.len(), 0);
    // Paging headers.
    let (_, h, v) = w
        .call(
            reqwest::Method::GET,
            "/api/now/table/sys_choice?sysparm_limit=2&sysparm_offset=2",
            None,
        )
        .await;
    assert_eq!(v["result"].as_array().expect("page").len(), 2);
    let total: usize = h["x-total-count"].to_str().expect("count").parse().expect("n");
    assert!(total > 4);
    let link = h["link"].to_str().expect("link");
    assert!(
        link.contains("rel=\"next\"") && link.contains("rel=\"prev\"") && link.contains("sysparm_offset=4"),
        "{link}"
    );
    // 404, 400 invalid table, 204 delete.
    let (st, _, v) = w
        .call(reqwest::Method::GET, "/api/now/table/oauth_entity/0123", None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["message"], "No Record found");
    assert_eq!(v["status"], "failure");
    let (st, _, v) = w.call(reqwest::Method::GET, "/api/now/table/no_such_table", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["message"], "Invalid table no_such_table");
    assert_eq!(v["error"]["detail"], Value::Null);
    let (st, _, _) = w
        .call(
            reqwest::Method::DELETE,
            &format!("/api/now/table/oauth_entity/{id}"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn authentication_roles_rate_limits_and_hibernation() {
    let w = world();
    let r = w
        .http
        .get(w.url("/api/now/table/sys_user?sysparm_limit=1"))
        .send()
        .await
        .expect("r");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["message"], "User Not Authenticated");
    assert_eq!(v["error"]["detail"], "Required to provide Auth information");
    // A user without admin or oauth_admin cannot write OAuth records.
    let r = w
        .http
        .post(w.url("/api/now/table/oauth_entity"))
        .basic_auth("itil", Some("itil-password"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .expect("r");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v["error"]["detail"],
        "ACL Exception Insert Failed due to security constraints"
    );
    // oauth_admin may.
    let r = w
        .http
        .post(w.url("/api/now/table/oauth_entity"))
        .basic_auth("oauthadmin", Some("oauthadmin-password"))
        .json(&json!({"name": "y"}))
        .send()
        .await
        .expect("r");
    assert_eq!(r.status(), StatusCode::CREATED);
    // Client credentials at /oauth_token.do give a bearer token for the Table API.
    let t: Value = w
        .http
        .post(w.url("/oauth_token.do"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sbxSnClient0000000000000000000001"),
            ("client_secret", "sbx-sn-client-secret"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let bearer = t["access_token"].as_str().expect("token");
    let r = w
        .http
        .get(w.url("/api/now/table/sys_alias"))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("r");
    assert_eq!(r.status(), StatusCode::OK);
    // The rate-limit rule: 429 with Retry-After in seconds.
    let mut knobs: Value = w
        .http
        .get(w.url("/_sandbox/knobs"))
        .send()
        .await
        .expect("k")
        .json()
        .await
        .expect("j");
    knobs["rate_limit_per_hour"] = json!(1);
    w.http
        .put(w.url("/_sandbox/knobs"))
        .json(&knobs)
        .send()
        .await
        .expect("k");
    assert_eq!(
        w.call(reqwest::Method::GET, "/api/now/table/sys_alias", None).await.0,
        StatusCode::OK
    );
    let (st, h, v) = w.call(reqwest::Method::GET, "/api/now/table/sys_alias", None).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(v["error"]["message"], "Rate limit exceeded");
    assert!(h["retry-after"].to_str().expect("ra").parse::<u64>().expect("secs") <= 3600);
    // Hibernating: HTML instead of JSON.
    knobs["rate_limit_per_hour"] = Value::Null;
    knobs["asleep"] = json!(true);
    w.http
        .put(w.url("/_sandbox/knobs"))
        .json(&knobs)
        .send()
        .await
        .expect("k");
    let r = w.http.get(w.url("/api/now/table/sys_user")).send().await.expect("r");
    assert!(r.text().await.expect("html").contains("hibernating"));
}

#[tokio::test]
async fn consent_in_servicenow_then_the_dex_job_reads_all_six_endpoints() {
    consent_then_dex(world()).await;
}

/// The same round trip through one of 300 instances served in one process:
/// no other instance sees a thing.
#[tokio::test]
async fn one_of_many_instances_in_one_process_behaves_as_if_alone() {
    let all = Instance::start_many(vec![SnSeed::default(); 300]).expect("instances");
    let w = world_on(Sn::Many(all, 123));
    consent_then_dex(w).await;
}

async fn consent_then_dex(w: World) {
    assert_eq!(
        w.dex().await["steps"][0]["detail"],
        "There is no (active) connection associated with the alias"
    );
    let (cred, profile, eid) = w.chain(true).await;
    assert_eq!(w.dex().await["steps"][1]["detail"], "Please generate an OAuth Token");
    let page = w.consent(&cred, &profile).await;
    assert!(page.contains("OAuth token received"), "{page}");
    let tokens = w.list("oauth_credential", &format!("peer={eid}")).await;
    let kinds: Vec<&str> = tokens.iter().map(|t| t["type"].as_str().expect("type")).collect();
    assert!(
        kinds.contains(&"access_token") && kinds.contains(&"refresh_token"),
        "{kinds:?}"
    );
    let run = w.dex().await;
    assert_eq!(run["ok"], true, "{run:#}");
    assert_eq!(run["steps"].as_array().expect("steps").len(), 8);
    // An hour later the access token has expired: the job refreshes (Zoom rotates) and goes on.
    for base in [w.sn.base_url(), w.zoom.base_url()] {
        w.http
            .post(format!("{base}/_sandbox/clock/advance"))
            .json(&json!({"seconds": 3700}))
            .send()
            .await
            .expect("clock");
    }
    let run = w.dex().await;
    assert_eq!(run["ok"], true, "{run:#}");
    assert_eq!(run["steps"][1]["detail"], "refreshed (the refresh token rotated)");
    // The grant the instance holds is the only one, with the six scopes.
    let grants: Value = w
        .http
        .get(format!("{}/_sandbox/grants", w.zoom.base_url()))
        .send()
        .await
        .expect("g")
        .json()
        .await
        .expect("j");
    let live: Vec<&Value> = grants
        .as_array()
        .expect("grants")
        .iter()
        .filter(|g| g["revoked"] == false)
        .collect();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["scopes"].as_array().expect("scopes").len(), DEX_SCOPES.len());
    if let Sn::Many(all, i) = &w.sn {
        // The records are the instance's own: its neighbours hold no provider, no token.
        for other in [0, 122, 124, 299] {
            let counts = all[other].with_state(|s| (s.rows("oauth_entity").len(), s.rows("oauth_credential").len()));
            assert_eq!(counts, (0, 0), "{other} saw {i}'s records");
        }
        let own = all[*i].with_state(|s| s.rows("oauth_credential").len());
        assert!(own >= 2, "{own}");
    }
}

#[tokio::test]
async fn a_secret_written_without_input_display_value_is_malformed() {
    let w = world();
    let (cred, profile, _) = w.chain(false).await;
    let page = w.consent(&cred, &profile).await;
    assert!(
        page.contains("OAuth flow failed") && page.contains("invalid_client"),
        "{page}"
    );
}

/// Change requests number themselves; the Attachment API takes a raw body
/// for an existing record of a table the caller may write, answers 201 with
/// the `sys_attachment` metadata (size and SHA-256 included), lists it by
/// `sysparm_query` and returns the same bytes.
#[tokio::test]
async fn change_requests_number_themselves_and_take_attachments() {
    let w = world();
    let (s, _, cr) = w
        .call(
            reqwest::Method::POST,
            "/api/now/table/change_request",
            Some(json!({"short_description": "DEX for Zoom"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{cr}");
    let number = cr["result"]["number"].as_str().expect("number").to_string();
    assert!(number.starts_with("CHG") && number.len() == 10, "{number}");
    let id = cr["result"]["sys_id"].as_str().expect("sys_id").to_string();
    let upload = |table: &str, id: &str, user: (&str, &str)| {
        w.http
            .post(w.url("/api/now/attachment/file"))
            .query(&[
                ("table_name", table),
                ("table_sys_id", id),
                ("file_name", "evidence.json"),
            ])
            .basic_auth(user.0, Some(user.1))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(b"{\"ok\": true}\n".to_vec())
            .send()
    };
    let r = upload("change_request", &id, ADMIN).await.expect("upload");
    assert_eq!(r.status(), StatusCode::CREATED);
    let meta: Value = r.json().await.expect("json");
    let meta = &meta["result"];
    assert_eq!(meta["size_bytes"], "13");
    assert_eq!(meta["table_sys_id"], id.as_str());
    assert_eq!(meta["hash"].as_str().map(str::len), Some(64), "{meta}");
    // An unknown record is refused, and nothing is stored for it.
    let r = upload("change_request", "0123456789abcdef", ADMIN)
        .await
        .expect("upload");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (_, _, list) = w
        .call(
            reqwest::Method::GET,
            &format!("/api/now/attachment?sysparm_query=table_sys_id={id}"),
            None,
        )
        .await;
    assert_eq!(list["result"].as_array().map(Vec::len), Some(1), "{list}");
    let file = w
        .http
        .get(w.url(&format!(
            "/api/now/attachment/{}/file",
            meta["sys_id"].as_str().expect("id")
        )))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .send()
        .await
        .expect("download");
    assert_eq!(file.bytes().await.expect("bytes").as_ref(), b"{\"ok\": true}\n");
}
