//! Fleets through the real binary: a template of apps times an inventory
//! file, checked with every problem at its row.

use serde_json::Value;

use crate::support::{Sandbox, built};

/// A DEX app and its management app per customer row.
const FLEET: &str = r#"version = 1

[store]
kind = "file"

[fleet]
inventory = "inventory/customers.csv"

[fleet.apps."dex-{customer}"]
display_name = "DEX for Zoom"
platform = "zoom"
usage = "admin-managed"
redirect_url = "https://{instance}.service-now.com/oauth_redirect.do"
allow_list = ["https://{instance}.service-now.com/oauth_redirect.do"]
presets = ["servicenow-dex-zoom"]
managed_by = "mgmt-{customer}"

[fleet.apps."dex-{customer}".target]
kind = "servicenow"
instance = "{instance}"

[fleet.apps."mgmt-{customer}"]
display_name = "connapp management"
platform = "zoom"
usage = "admin-managed"
scopes = ["marketplace:read:app:admin", "marketplace:write:app:admin"]

[fleet.apps."mgmt-{customer}".oauth]
grant = "account_credentials"
account_id = "{zoom_account}"
"#;

fn fleet(rows: &str) -> Sandbox {
    let s = Sandbox::new(&built().full);
    std::fs::write(s.path().join("connapp.toml"), FLEET).expect("write");
    std::fs::create_dir_all(s.path().join("inventory")).expect("mkdir");
    std::fs::write(s.path().join("inventory/customers.csv"), rows).expect("write");
    s
}

#[test]
fn check_reads_the_inventory_beside_the_declaration_and_places_each_problem() {
    let mut csv = String::from("customer,instance,zoom_account\n");
    for i in 0..300 {
        csv.push_str(&format!("c{i},inst{i},acct{i}\n"));
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
    let s = fleet("customer,instance,zoom_account\nacme,acme,a1\nbeta,Beta Prod,a2\nacme,acme-test,a3\ngamma,gamma\n");
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
        err.contains("customers.csv:5:") && err.contains("2 cells but the header names 3 columns"),
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
    let s = fleet("customer,instance,zoom_acct\nacme,acme,a1\n");
    let err = s.run(&["check"], None).fails_with(3).stderr();
    assert!(
        err.contains("connapp.toml:") && err.contains("`{zoom_account}` names no column"),
        "{err}"
    );
    assert!(err.contains("customer, instance, zoom_acct"), "{err}");

    // No inventory file: said at `fleet.inventory`, the path named.
    let s = fleet("");
    std::fs::remove_file(s.path().join("inventory/customers.csv")).expect("rm");
    let j: Value = s.run(&["check", "--json"], None).fails_with(3).json();
    let d = &j["diagnostics"][0];
    assert_eq!(d["rule"], "fleet-inventory-unreadable", "{j:#}");
    assert_eq!(d["field"], "fleet.inventory");
    assert_eq!(d["line"], 7);
}
