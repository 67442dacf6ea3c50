//! Fleets through the real binary: a template of apps times an inventory
//! file, checked with every problem at its row.

use serde_json::{Value, json};

use crate::support::{Sandbox, built};

/// A DEX app and its management app per customer row (`customer`,
/// `instance`, `zoom_account`, `zoom_app_id`), its inventory in a folder.
fn fleet_text() -> String {
    include_str!("../fixtures/fleet/connapp.toml").replace("\"customers.csv\"", "\"inventory/customers.csv\"")
}

fn fleet(rows: &str) -> Sandbox {
    let s = Sandbox::new(&built().full);
    std::fs::write(s.path().join("connapp.toml"), fleet_text()).expect("write");
    std::fs::create_dir_all(s.path().join("inventory")).expect("mkdir");
    std::fs::write(s.path().join("inventory/customers.csv"), rows).expect("write");
    s
}

#[test]
fn check_reads_the_inventory_beside_the_declaration_and_places_each_problem() {
    let mut csv = String::from("customer,instance,zoom_account,zoom_app_id\n");
    for i in 0..300 {
        csv.push_str(&format!("c{i},inst{i},acct{i},\n"));
    }
    let s = fleet(&csv);
    let out = s.run(&["check"], None).ok();
    assert!(
        out.stdout()
            .contains("300 rows made 600 apps (dex-{customer}, mgmt-{customer}), all valid"),
        "{}",
        out.stdout()
    );
    let j = s.run(&["check", "--json"], None).ok().json();
    assert_eq!(j["fleet"]["rows"], 300);
    assert_eq!(j["apps"].as_array().map(Vec::len), Some(600));
    assert!(
        j["fleet"]["source"]
            .as_str()
            .is_some_and(|f| f.ends_with("inventory/customers.csv")),
        "{j:#}"
    );
    // Any one app of it works like a declared one.
    assert!(
        s.run(&["secrets", "list", "--app", "dex-c7"], None)
            .stdout()
            .contains("client-id")
    );

    // A bad cell, a duplicate row and a short row: each at its line, the rest untouched.
    let s = fleet(
        "customer,instance,zoom_account,zoom_app_id\nacme,acme,a1,\nbeta,Beta Prod,a2,\nacme,acme-test,a3,\ngamma,gamma\n",
    );
    let out = s.run(&["check"], None).fails_with(3);
    let err = out.stderr();
    assert!(
        err.contains("customers.csv:3:6: apps.dex-beta.target.instance"),
        "{err}"
    );
    assert!(err.contains("this row's instance = \"Beta Prod\""), "{err}");
    assert!(
        err.contains("customers.csv:4:1: apps.dex-acme") && err.contains("line 2 makes"),
        "{err}"
    );
    assert!(
        err.contains("customers.csv:5:") && err.contains("2 cells but the header names 4 columns"),
        "{err}"
    );
    let j = s.run(&["check", "--json"], None).fails_with(3).json();
    assert_eq!(j["valid"], false);
    assert!(
        j["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .iter()
            .all(|d| d["fix"].as_str().is_some_and(|f| !f.is_empty()))
    );

    // A column the template names that the inventory lacks: at the template, with the columns.
    let s = fleet("customer,instance,zoom_acct,zoom_app_id\nacme,acme,a1,\n");
    let err = s.run(&["check"], None).fails_with(3).stderr();
    assert!(
        err.contains("connapp.toml:") && err.contains("`{zoom_account}` names no column"),
        "{err}"
    );
    assert!(err.contains("customer, instance, zoom_acct, zoom_app_id"), "{err}");

    // No inventory file: said at `fleet.inventory`, the path named.
    let s = fleet("");
    std::fs::remove_file(s.path().join("inventory/customers.csv")).expect("rm");
    let j: Value = s.run(&["check", "--json"], None).fails_with(3).json();
    let d = &j["diagnostics"][0];
    assert_eq!(d["rule"], "fleet-inventory-unreadable", "{j:#}");
    assert_eq!(d["field"], "fleet.inventory");
    assert_eq!(d["line"], 7);
}

#[test]
fn secrets_import_checks_every_line_before_it_stores_any_and_opens_the_store_once() {
    let mut csv = String::from("customer,instance,zoom_account,zoom_app_id\n");
    for i in 0..50 {
        csv.push_str(&format!("c{i},inst{i},acct{i},\n"));
    }
    let s = fleet(&csv);
    const CANARY: &str = "CANARY-import-7f3c";
    // Bad lines: each named by its number, no value in the message, nothing stored.
    let bad = [
        format!(r#"{{"app": "dex-c1", "secret": "instance-password", "value": "{CANARY}-1"}}"#),
        format!(r#"{{"app": "dex-c1000", "secret": "instance-password", "value": "{CANARY}-2"}}"#),
        format!(r#"{{"app": "dex-c2", "secret": "instance-pasword", "value": "{CANARY}-3"}}"#),
        format!(r#"{{"app": "dex-c3", "secret": "instance-user", "value": "{CANARY}-4"#),
        String::new(),
        r#"{"app": "dex-c4", "secret": "instance-user", "value": ""}"#.to_string(),
        format!(r#"{{"app": "dex-c1", "secret": "instance-password", "value": "{CANARY}-5"}}"#),
    ]
    .join("\n");
    let out = s.run(&["secrets", "import"], Some(bad.as_bytes())).fails_with(2);
    let err = out.stderr();
    assert!(err.contains("5 bad line(s); nothing was stored"), "{err}");
    for expected in [
        "line 2: no app named \"dex-c1000\"",
        "line 3: \"instance-pasword\" is not a secret",
        "line 4: not a JSON object",
        "line 6: the instance user of dex-c4",
        "line 7: the instance password of dex-c1 was given on an earlier line",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
    assert!(err.contains("earlier line"), "{err}");
    assert!(!err.contains(CANARY) && !out.stdout().contains(CANARY), "{err}");
    assert!(
        crate::secrets::read_back(&s, "apps/dex-c1/instance-password").is_none(),
        "a bad line elsewhere stores nothing"
    );

    // 100 good lines (the file store rewrites its file per write; the fleet test imports 1,000 into OpenBao): stored, each app's own, read back exactly; the report never holds a value.
    let mut good = String::new();
    for i in 0..50 {
        for (kind, value) in [
            ("instance-user", "admin".to_string()),
            ("instance-password", format!("{CANARY}-{i}")),
        ] {
            good.push_str(&json!({"app": format!("dex-c{i}"), "secret": kind, "value": value}).to_string());
            good.push('\n');
        }
    }
    let v = crate::json::schema();
    let out = s.run(&["secrets", "import", "--json"], Some(good.as_bytes())).ok();
    let j = crate::json::judged(&v, "secrets import", &out);
    assert!(!out.stdout().contains(CANARY) && !out.stderr().contains(CANARY));
    assert_eq!(j["stored"].as_array().map(Vec::len), Some(100), "{j:#}");
    assert_eq!(
        j["stored"][1],
        json!({"app": "dex-c0", "secret": "instance-password", "version": 1})
    );
    assert_eq!(
        crate::secrets::read_back(&s, "apps/dex-c17/instance-password").as_deref(),
        Some(format!("{CANARY}-17").as_bytes())
    );
    // Again: safe, a new version of each.
    let out = s.run(&["secrets", "import"], Some(good.as_bytes())).ok();
    assert!(
        out.stdout().contains("Stored 100 secret(s) of 50 app(s)"),
        "{}",
        out.stdout()
    );
    let j = s
        .run(&["secrets", "list", "--app", "dex-c5", "--json"], None)
        .ok()
        .json();
    let pw = j["secrets"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["secret"] == "instance-password").cloned())
        .expect("listed");
    assert_eq!(pw["version"], 2, "{j:#}");
}

/// A fleet of `n` rows against the Zoom sandbox and one ServiceNow sandbox
/// per row, every row's instance credentials stored, the management app shared.
struct FleetWorld {
    zoom: connapp_sandbox::Sandbox,
    sn: Vec<Option<connapp_sandbox::servicenow::Instance>>,
    user: Sandbox,
}

const MGMT_SECRET: &str = "CANARY-fleet-mgmt-secret-41a9";

impl FleetWorld {
    fn new(n: usize) -> FleetWorld {
        use connapp_sandbox::servicenow::{Instance, SnSeed};
        let zoom = crate::support::zoom_with_management(MGMT_SECRET);
        let sn: Vec<Instance> = (0..n)
            .map(|_| Instance::start(SnSeed::default()).expect("servicenow"))
            .collect();
        let user = crate::support::managed_user(&zoom, &sn[0].base_url(), MGMT_SECRET, &[]);
        // Keep the store and the management app; the DEX app becomes the fleet's template.
        let text = std::fs::read_to_string(user.path().join("connapp.toml")).expect("read");
        let start = text.find("[apps.dex-zoom]").expect("dex app");
        let end = text.find("[apps.zoom-marketplace]").expect("management app");
        let zoom_base = zoom.base_url();
        let template = format!(
            r#"[fleet]
inventory = "customers.csv"

[fleet.apps."dex-{{customer}}"]
display_name = "DEX for Zoom ({{customer}})"
platform = "zoom"
usage = "admin-managed"
redirect_url = "{{instance_url}}/oauth_redirect.do"
allow_list = ["{{instance_url}}/oauth_redirect.do", "http://127.0.0.1/callback"]
presets = ["servicenow-dex-zoom"]
managed_by = "zoom-marketplace"

[fleet.apps."dex-{{customer}}".target]
kind = "servicenow"
instance_url = "{{instance_url}}"

[fleet.apps."dex-{{customer}}".oauth]
login_redirect = "http://127.0.0.1/callback"
oauth_base = "{zoom_base}"
api_base = "{zoom_base}"

"#
        );
        let decl = format!("{}{template}{}", &text[..start], &text[end..]);
        std::fs::write(user.path().join("connapp.toml"), decl).expect("write");
        let mut csv = String::from("customer,instance_url\n");
        for (i, s) in sn.iter().enumerate() {
            csv.push_str(&format!("c{i},{}\n", s.base_url()));
        }
        std::fs::write(user.path().join("customers.csv"), csv).expect("write");
        for i in 0..n {
            for (kind, value) in [("instance-user", "admin"), ("instance-password", "admin-password")] {
                user.set_secret_of(&format!("dex-c{i}"), kind, value);
            }
        }
        FleetWorld {
            zoom,
            sn: sn.into_iter().map(Some).collect(),
            user,
        }
    }

    /// The Zoom apps of the fleet, by display name.
    fn zoom_apps(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .zoom
            .apps()
            .into_iter()
            .map(|a| a.name)
            .filter(|n| n.starts_with("DEX for Zoom (c"))
            .collect();
        names.sort();
        names
    }
}

#[test]
fn a_fleet_apply_killed_midway_resumes_without_a_second_app_and_a_down_instance_fails_alone() {
    let mut w = FleetWorld::new(8);
    // Row c5's instance is down.
    w.sn[5] = None;
    let j = w.user.run(&["plan", "--all", "--json"], None).json();
    assert_eq!(j["apps"].as_array().map(Vec::len), Some(7), "{j:#}");
    assert_eq!(j["errors"][0]["app"], "dex-c5", "{j:#}");
    assert_eq!(j["pending"], true);
    // Killed with Zoom's answer to the fourth create in hand (one app at a time).
    w.user.killed_at(
        &["apply", "--all", "--yes", "--jobs", "1"],
        &[("CONNAPP_FAULT", "create-after-answer"), ("CONNAPP_FAULT_SKIP", "3")],
    );
    assert_eq!(w.zoom_apps().len(), 4, "three done, the fourth created but not stored");
    // The rerun resumes: the three finished apps are not done again, the fourth is adopted.
    let out = w.user.run(&["apply", "--all", "--yes", "--jobs", "3"], None);
    assert_ne!(out.code(), Some(0));
    let (text, err) = (out.stdout(), out.stderr());
    assert!(
        err.contains("Resuming the apply run") && err.contains("3 app(s) it finished"),
        "{err}"
    );
    assert_eq!(
        text.matches("(by the interrupted run, not done again)").count(),
        3,
        "{text}"
    );
    assert!(
        text.contains("7 of 8 app(s) applied (or already matching), 1 failed, 0 skipped."),
        "{text}"
    );
    assert!(
        text.contains("dex-c5") && text.contains("1 app(s): "),
        "the down instance named: {text}"
    );
    assert!(err.contains("1 of 8 app(s) failed"), "{err}");
    let apps = w.zoom_apps();
    assert_eq!(apps.len(), 7, "one Zoom app per reachable row, none twice: {apps:?}");
    let mut unique = apps.clone();
    unique.dedup();
    assert_eq!(unique, apps, "a Zoom app made twice");
    assert!(!apps.contains(&"DEX for Zoom (c5)".to_string()));
    // Every reachable instance holds its row's chain, and the consent links are there.
    assert!(text.contains("wait for an admin's consent"), "{text}");
    // Converged: a plan of a selected row has nothing to do, and neither has any reachable row.
    let j = w
        .user
        .run(&["plan", "--select", "customer=c3", "--json"], None)
        .ok()
        .json();
    assert_eq!(j["apps"].as_array().map(Vec::len), Some(1), "{j:#}");
    assert_eq!(j["apps"][0]["action"], "none", "{j:#}");
    for i in [0, 1, 2, 3, 4, 6, 7] {
        let j = w.user.run(&["plan", &format!("dex-c{i}"), "--json"], None).ok().json();
        assert_eq!(j["apps"][0]["action"], "none", "dex-c{i}: {j:#}");
    }

    // The inventory view: each app's row, account, instance and store path; the Client
    // Secrets connapp stored (created or adopted) are dated; no verify has run yet.
    let j = w.user.run(&["list", "--json"], None).ok().json();
    let listed = j["apps"].as_array().expect("apps");
    assert_eq!(listed.len(), 9, "eight rows and the management app: {j:#}");
    let find = |name: &str| listed.iter().find(|a| a["app"] == name).cloned().expect("listed");
    let c3 = find("dex-c3");
    assert_eq!(c3["row"]["customer"], "c3");
    assert_eq!(c3["account"], crate::support::ACCOUNT);
    assert_eq!(c3["store_path"], "apps/dex-c3/");
    assert!(
        c3["instance"]
            .as_str()
            .is_some_and(|i| i.starts_with("http://127.0.0.1:")),
        "{c3:#}"
    );
    assert!(
        c3["client_secret_age_secs"].is_u64(),
        "the adopted app's new secret is dated: {c3:#}"
    );
    assert_eq!(c3["last_verify"], Value::Null);
    assert_eq!(find("dex-c5")["client_secret_age_secs"], Value::Null, "never created");
    assert_eq!(find("zoom-marketplace")["row"], Value::Null);
    // A verify of one app is its last verify in the view, whatever it found.
    let verified = w.user.run(&["verify", "dex-c1"], None);
    let j = w
        .user
        .run(&["list", "--select", "customer=c1", "--json"], None)
        .ok()
        .json();
    assert_eq!(j["apps"].as_array().map(Vec::len), Some(1), "{j:#}");
    let last = &j["apps"][0]["last_verify"];
    assert!(last["at"].is_u64(), "{j:#}");
    assert_eq!(last["ok"], verified.code() == Some(0), "{j:#}");
    let table = w.user.run(&["list"], None).ok().stdout();
    assert!(table.starts_with("APP") && table.contains("dex-c7"), "{table}");
    assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");
}

/// One OpenBao call as `token` (the dev server's root, or an operator's).
fn bao(method: reqwest::Method, path: &str, body: &Value, token: &str) -> (u16, Value) {
    let addr = std::env::var("CONNAPP_TEST_BAO_ADDR").expect("CONNAPP_TEST_BAO_ADDR: run through `cargo xtask test`");
    let mut req = crate::support::http()
        .request(method, format!("{addr}/v1/{path}"))
        .header("X-Vault-Token", token);
    if !body.is_null() {
        req = req.json(body);
    }
    let r = req.send().expect("openbao");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// The README's path-templated policy: an operator whose identity says
/// `customer = X` gets the subtree of customer X and nothing else.
fn fleet_policy(base: &str) -> String {
    let sub = format!("{base}/customers/{{{{identity.entity.metadata.customer}}}}");
    format!(
        "path \"secret/data/{sub}/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }}\n\
         path \"secret/metadata/{sub}/*\" {{ capabilities = [\"read\", \"list\", \"delete\"] }}\n\
         path \"secret/delete/{sub}/*\" {{ capabilities = [\"update\"] }}\n"
    )
}

#[test]
#[ignore = "needs OpenBao; `cargo xtask test` starts it and runs this"]
fn an_operator_of_one_customer_reads_and_writes_that_customer_s_subtree_only() {
    use reqwest::Method;
    let root = std::env::var("CONNAPP_TEST_BAO_TOKEN").expect("CONNAPP_TEST_BAO_TOKEN");
    let addr = std::env::var("CONNAPP_TEST_BAO_ADDR").expect("CONNAPP_TEST_BAO_ADDR");
    let tag = format!("fleet{}", std::process::id());
    let base = format!("connapp-e2e/{tag}");
    // The policy, and operator A: a userpass login whose entity says customer = acme.
    let ok = |(status, answer): (u16, Value), what: &str| {
        assert!((200..300).contains(&status), "{what}: {status} {answer}");
        answer
    };
    ok(
        bao(
            Method::POST,
            &format!("sys/auth/{tag}"),
            &json!({"type": "userpass"}),
            &root,
        ),
        "userpass",
    );
    ok(
        bao(
            Method::PUT,
            &format!("sys/policies/acl/{tag}"),
            &json!({"policy": fleet_policy(&base)}),
            &root,
        ),
        "policy",
    );
    let entity = ok(
        bao(
            Method::POST,
            "identity/entity",
            &json!({"name": format!("{tag}-op-acme"), "metadata": {"customer": "acme"}, "policies": [tag]}),
            &root,
        ),
        "entity",
    );
    let entity_id = entity["data"]["id"].as_str().expect("entity id").to_string();
    let mounts = ok(bao(Method::GET, "sys/auth", &Value::Null, &root), "auth mounts");
    let accessor = mounts["data"][format!("{tag}/")]["accessor"]
        .as_str()
        .or_else(|| mounts[format!("{tag}/")]["accessor"].as_str())
        .expect("accessor")
        .to_string();
    ok(
        bao(
            Method::POST,
            "identity/entity-alias",
            &json!({"name": "op-acme", "canonical_id": entity_id, "mount_accessor": accessor}),
            &root,
        ),
        "alias",
    );
    ok(
        bao(
            Method::POST,
            &format!("auth/{tag}/users/op-acme"),
            &json!({"password": "pw-acme"}),
            &root,
        ),
        "user",
    );
    let login = ok(
        bao(
            Method::POST,
            &format!("auth/{tag}/login/op-acme"),
            &json!({"password": "pw-acme"}),
            "",
        ),
        "login",
    );
    let operator = login["auth"]["client_token"].as_str().expect("token").to_string();

    // A fleet whose rows keep their apps under customers/<customer>.
    let mut s = Sandbox::new(&built().full);
    std::fs::write(
        s.path().join("connapp.toml"),
        format!(
            r#"version = 1

[store]
kind = "vault"

[store.settings]
prefix = "{base}"

[fleet]
inventory = "customers.csv"

[fleet.store]
prefix = "{base}/customers/{{customer}}"

[fleet.apps."app-{{customer}}"]
display_name = "Plain OAuth"
platform = "generic"
redirect_url = "http://127.0.0.1/callback"
allow_list = ["http://127.0.0.1/callback"]
scopes = ["read"]

[fleet.apps."app-{{customer}}".oauth]
authorize_url = "https://id.example.com/authorize"
token_url = "https://id.example.com/token"
client_auth = "body"
login_redirect = "http://127.0.0.1/callback"
"#
        ),
    )
    .expect("write");
    std::fs::write(s.path().join("customers.csv"), "customer\nacme\nglobex\n").expect("write");
    s.set_env("VAULT_ADDR", &addr);
    // The MSP's own token writes both customers' Client IDs, each into its subtree.
    s.set_env("VAULT_TOKEN", &root);
    s.set_secret_of("app-acme", "client-id", "acme-client-id");
    s.set_secret_of("app-globex", "client-id", "globex-client-id");
    let at = |customer: &str| format!("secret/data/{base}/customers/{customer}/apps/app-{customer}/client-id");
    for c in ["acme", "globex"] {
        let (status, _) = bao(Method::GET, &at(c), &Value::Null, &root);
        assert_eq!(status, 200, "{c}'s secret is under its own subtree");
    }
    let j = s.run(&["list", "--json"], None).ok().json();
    assert_eq!(j["apps"][0]["row"]["customer"], "acme");

    // Customer acme's operator: acme's subtree works...
    s.set_env("VAULT_TOKEN", &operator);
    s.set_secret_of("app-acme", "client-secret", "acme-secret");
    let mine = s
        .run(&["secrets", "list", "--app", "app-acme", "--json"], None)
        .ok()
        .json();
    assert!(mine.to_string().contains("client-secret"), "{mine:#}");
    // ... globex's is refused, read and write, and nothing of it is shown.
    let read = s.run(&["secrets", "list", "--app", "app-globex"], None);
    assert_ne!(read.code(), Some(0), "{}", read.stdout());
    assert!(read.stderr().contains("denied access"), "{}", read.stderr());
    let write = s.run(
        &["secrets", "set", "client-id", "--app", "app-globex", "--from-stdin"],
        Some(b"taken-over"),
    );
    assert_ne!(write.code(), Some(0));
    assert!(write.stderr().contains("denied access"), "{}", write.stderr());
    let (_, kept) = bao(Method::GET, &at("globex"), &Value::Null, &root);
    assert!(
        !kept.to_string().contains("taken-over"),
        "globex's secret was overwritten"
    );
    // The inventory view over every row: acme's row read, globex's names the refusal.
    let j = s.run(&["list", "--json"], None).ok().json();
    let globex = j["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .find(|a| a["app"] == "app-globex")
        .cloned();
    let globex = globex.expect("listed");
    assert!(
        globex["error"].as_str().is_some_and(|e| e.contains("denied access")),
        "{globex:#}"
    );
}
