//! Fleets through the real binary: a template of apps times an inventory
//! file, checked with every problem at its row.

use serde_json::Value;

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
