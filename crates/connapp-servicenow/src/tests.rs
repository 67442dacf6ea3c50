//! The Table API client against the ServiceNow sandbox: the conventions
//! (wrapper, strings, 201/204) and each failure told apart.

use connapp_sandbox::servicenow::{Instance as Sandbox, SnSeed};
use secrecy::SecretString;
use serde_json::json;

use crate::{Auth, Instance, SnError};

fn basic(user: &str) -> Auth {
    Auth::Basic {
        user: user.into(),
        password: SecretString::from(format!("{user}-password")),
    }
}

fn start(seed: SnSeed) -> (Sandbox, reqwest::Client) {
    let sn = Sandbox::start(seed).expect("sandbox");
    (sn, connapp_oauth::http_client().expect("client"))
}

#[tokio::test]
async fn rows_are_created_listed_patched_and_deleted() {
    let (sn, http) = start(SnSeed::default());
    let i = Instance::new(http, &sn.base_url(), basic("admin")).expect("instance");
    let row = i
        .create(
            "sys_alias",
            &json!({"name": "connapp test", "multiple_connections": true}),
        )
        .await
        .expect("create");
    let id = row["sys_id"].as_str().expect("sys_id").to_string();
    // Every value comes back a string, booleans included.
    assert_eq!(row["multiple_connections"], json!("true"));
    i.patch("sys_alias", &id, &json!({"name": "connapp renamed"}), false)
        .await
        .expect("patch");
    let found = i
        .list("sys_alias", "name=connapp renamed", &["sys_id", "name"])
        .await
        .expect("list");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["sys_id"], json!(id));
    assert_eq!(found[0].len(), 2, "sysparm_fields limits the answer: {found:?}");
    i.delete("sys_alias", &id).await.expect("delete");
    let err = i.delete("sys_alias", &id).await.expect_err("gone");
    assert!(
        matches!(&err, SnError::NotFound { id: gone, .. } if *gone == id),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_credentials_a_missing_role_and_a_sleeping_instance_are_told_apart() {
    let (sn, http) = start(SnSeed::default());
    let wrong = Auth::Basic {
        user: "admin".into(),
        password: SecretString::from("not-the-password".to_string()),
    };
    let i = Instance::new(http.clone(), &sn.base_url(), wrong).expect("instance");
    let err = i.list("sys_alias", "", &[]).await.expect_err("401");
    assert!(matches!(err, SnError::Unauthorized { .. }), "{err:?}");

    let i = Instance::new(http.clone(), &sn.base_url(), basic("itil")).expect("instance");
    let err = i.create("oauth_entity", &json!({"name": "x"})).await.expect_err("403");
    assert!(
        matches!(&err, SnError::Forbidden { op: "create", table, .. } if table == "oauth_entity"),
        "{err:?}"
    );

    let mut seed = SnSeed::default();
    seed.knobs.asleep = true;
    let (asleep, http) = start(seed);
    let i = Instance::new(http, &asleep.base_url(), basic("admin")).expect("instance");
    let err = i.list("sys_alias", "", &[]).await.expect_err("asleep");
    assert!(matches!(err, SnError::Asleep { .. }), "{err:?}");
    assert!(err.to_string().contains("hibernating"), "{err}");
}

#[tokio::test]
async fn client_credentials_give_a_bearer_token_the_table_api_takes() {
    let seed = SnSeed::default();
    let client = seed.clients[0].clone();
    let (sn, http) = start(seed);
    let token = Instance::client_credentials(
        &http,
        &sn.base_url(),
        &client.client_id,
        &SecretString::from(client.client_secret.clone()),
    )
    .await
    .expect("token");
    let i = Instance::new(http.clone(), &sn.base_url(), Auth::Bearer(token)).expect("instance");
    i.list("sys_alias", "", &["sys_id"]).await.expect("bearer accepted");

    let err = Instance::client_credentials(
        &http,
        &sn.base_url(),
        &client.client_id,
        &SecretString::from("wrong".to_string()),
    )
    .await
    .expect_err("refused");
    assert!(matches!(err, SnError::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("client_credentials"), "{err}");
}

#[test]
fn an_instance_url_follows_the_endpoint_policy() {
    let http = connapp_oauth::http_client().expect("client");
    assert!(Instance::new(http.clone(), "http://acme.service-now.com", basic("admin")).is_err());
    let i = Instance::new(http, "https://acme.service-now.com/", basic("admin")).expect("https");
    assert_eq!(i.base(), "https://acme.service-now.com");
    assert!(!format!("{i:?}").contains("admin-password"));
}
