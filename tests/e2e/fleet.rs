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
        r#"{"app": "dex-c4", "secret": "instance-password", "value": 73310577}"#.to_string(),
        format!(r#"{{"app": "dex-c1", "secret": "instance-password", "value": "{CANARY}-5"}}"#),
    ]
    .join("\n");
    let out = s.run(&["secrets", "import"], Some(bad.as_bytes())).fails_with(2);
    let err = out.stderr();
    assert!(err.contains("6 bad line(s); nothing was stored"), "{err}");
    for expected in [
        "line 2: no app named \"dex-c1000\"",
        "line 3: \"instance-pasword\" is not a secret",
        "line 4: not a JSON object",
        "line 6: the instance user of dex-c4",
        "line 7: not a JSON object of three strings",
        "line 8: the instance password of dex-c1 was given on an earlier line",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
    assert!(err.contains("earlier line"), "{err}");
    assert!(!err.contains(CANARY) && !out.stdout().contains(CANARY), "{err}");
    assert!(!err.contains("73310577"), "a numeric value quoted: {err}");
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

/// A fleet of `n` rows against `n` ServiceNow sandbox instances served in
/// one process (row `down`'s instance URL is a port nobody listens on), every
/// row's instance sign-in imported. Zoom is one sandbox account whose
/// management app every row shares, or (`Accounts::PerRow`) an account per
/// row, each with its own management app (`mgmt-{customer}`), as an MSP's
/// customers have. The store is the file store, or OpenBao under `vault_prefix`.
struct FleetWorld {
    zoom: Vec<connapp_sandbox::Sandbox>,
    sn: Vec<connapp_sandbox::servicenow::Instance>,
    user: Sandbox,
    /// Holds the down row's port (see [`refusing_port`]).
    _down: std::os::fd::OwnedFd,
}

#[derive(Clone, Copy, PartialEq)]
enum Accounts {
    Shared,
    PerRow,
}

const MGMT_SECRET: &str = "CANARY-fleet-mgmt-secret-41a9";

/// A loopback URL that refuses every connection for as long as the guard
/// lives: its port is bound, so no other test's server can get it (a port
/// merely closed again can be taken by the next listener), but never listened on.
fn refusing_port() -> (String, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: socket calls on a descriptor this function creates and owns,
    // with address structs of the size given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let bound = libc::bind(fd, (&raw const addr).cast::<libc::sockaddr>(), len);
        assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut got_len = len;
        let named = libc::getsockname(fd, (&raw mut got).cast::<libc::sockaddr>(), &mut got_len);
        assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
        (format!("http://127.0.0.1:{}", u16::from_be(got.sin_port)), owned)
    }
}

/// The DEX app per row, managed by `managed_by`, on the row's `zoom_base`.
const DEX_TEMPLATE: &str = r#"[fleet]
inventory = "customers.csv"

[fleet.apps."dex-{customer}"]
display_name = "DEX for Zoom ({customer})"
platform = "zoom"
usage = "admin-managed"
redirect_url = "{instance_url}/oauth_redirect.do"
allow_list = ["{instance_url}/oauth_redirect.do", "http://127.0.0.1/callback"]
presets = ["servicenow-dex-zoom"]
managed_by = "MANAGED_BY"

[fleet.apps."dex-{customer}".target]
kind = "servicenow"
instance_url = "{instance_url}"

[fleet.apps."dex-{customer}".oauth]
login_redirect = "http://127.0.0.1/callback"
oauth_base = "{zoom_base}"
api_base = "{zoom_base}"

"#;

/// Each row's management app, in the row's own Zoom account.
const MGMT_TEMPLATE: &str = r#"[fleet.apps."mgmt-{customer}"]
display_name = "connapp marketplace management"
platform = "zoom"
usage = "admin-managed"
scopes = ["marketplace:read:app:admin", "marketplace:write:app:admin", "marketplace:update:client_secret:admin", "marketplace:delete:app:admin"]

[fleet.apps."mgmt-{customer}".oauth]
grant = "account_credentials"
account_id = "{zoom_account}"
oauth_base = "{zoom_base}"
api_base = "{zoom_base}"
"#;

impl FleetWorld {
    fn new(n: usize, down: usize, accounts: Accounts, vault_prefix: Option<&str>) -> FleetWorld {
        use connapp_sandbox::servicenow::{Instance, SnSeed};
        let zoom = match accounts {
            Accounts::Shared => vec![crate::support::zoom_with_management(MGMT_SECRET)],
            Accounts::PerRow => {
                let seeds = (0..n)
                    .map(|i| {
                        let mut seed = crate::support::zoom_seed_with_management(MGMT_SECRET);
                        seed.account_id = format!("sbxFleetAccount{i:08}");
                        seed
                    })
                    .collect();
                connapp_sandbox::Sandbox::start_many(seeds).expect("zoom accounts")
            }
        };
        let sn = Instance::start_many(vec![SnSeed::default(); n]).expect("servicenow");
        let mut user = crate::support::managed_user(&zoom[0], &sn[0].base_url(), MGMT_SECRET, &[]);
        // Keep the store (and the shared management app); the DEX app becomes the fleet's template.
        let mut text = std::fs::read_to_string(user.path().join("connapp.toml")).expect("read");
        if let Some(prefix) = vault_prefix {
            let addr = std::env::var("CONNAPP_TEST_BAO_ADDR").expect("CONNAPP_TEST_BAO_ADDR");
            let root = std::env::var("CONNAPP_TEST_BAO_TOKEN").expect("CONNAPP_TEST_BAO_TOKEN");
            let file = "[store]\nkind = \"file\"\n";
            assert!(text.contains(file), "{text}");
            text = text.replace(
                file,
                &format!("[store]\nkind = \"vault\"\n\n[store.settings]\nprefix = \"{prefix}\"\n"),
            );
            user.set_env("VAULT_ADDR", &addr);
            user.set_env("VAULT_TOKEN", &root);
        }
        let start = text.find("[apps.dex-zoom]").expect("dex app");
        let end = text.find("[apps.zoom-marketplace]").expect("management app");
        let decl = match accounts {
            Accounts::Shared => format!(
                "{}{}{}",
                &text[..start],
                DEX_TEMPLATE.replace("MANAGED_BY", "zoom-marketplace"),
                &text[end..]
            ),
            Accounts::PerRow => format!(
                "{}{}{MGMT_TEMPLATE}",
                &text[..start],
                DEX_TEMPLATE.replace("MANAGED_BY", "mgmt-{customer}")
            ),
        };
        std::fs::write(user.path().join("connapp.toml"), decl).expect("write");
        let (down_url, down_guard) = refusing_port();
        let mut csv = String::from("customer,instance_url,zoom_account,zoom_base\n");
        for i in 0..n {
            let instance = if i == down { down_url.clone() } else { sn[i].base_url() };
            let z = &zoom[i % zoom.len()];
            csv.push_str(&format!("c{i},{instance},{},{}\n", z.account_id(), z.base_url()));
        }
        std::fs::write(user.path().join("customers.csv"), csv).expect("write");
        let mut lines = String::new();
        let mut line = |app: &str, kind: &str, value: &str| {
            lines.push_str(&json!({"app": app, "secret": kind, "value": value}).to_string());
            lines.push('\n');
        };
        if vault_prefix.is_some() && accounts == Accounts::Shared {
            line("zoom-marketplace", "client-id", crate::support::MGMT);
            line("zoom-marketplace", "client-secret", MGMT_SECRET);
        }
        for i in 0..n {
            line(&format!("dex-c{i}"), "instance-user", "admin");
            line(&format!("dex-c{i}"), "instance-password", "admin-password");
            if accounts == Accounts::PerRow {
                line(&format!("mgmt-c{i}"), "client-id", crate::support::MGMT);
                line(&format!("mgmt-c{i}"), "client-secret", MGMT_SECRET);
            }
        }
        user.run(&["secrets", "import"], Some(lines.as_bytes())).ok();
        FleetWorld {
            zoom,
            sn,
            user,
            _down: down_guard,
        }
    }

    /// The Zoom apps of the fleet, by display name, over every account.
    fn zoom_apps(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .zoom
            .iter()
            .flat_map(|z| z.apps())
            .map(|a| a.name)
            .filter(|n| n.starts_with("DEX for Zoom (c"))
            .collect();
        names.sort();
        names
    }

    /// The refreshes every account has granted.
    fn refreshes(&self) -> u64 {
        self.zoom
            .iter()
            .map(|z| z.with_state(|s| s.counters.refreshes.values().sum::<u64>()))
            .sum()
    }
}

#[test]
fn a_fleet_apply_killed_midway_resumes_without_a_second_app_and_a_down_instance_fails_alone() {
    // Row c5's instance is down.
    let w = FleetWorld::new(8, 5, Accounts::Shared, None);
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
    assert!(!text.contains('\u{1b}'), "colour codes into a pipe: {text}");
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
    // The same run as JSON Lines: a line per app as it finishes, the consent links, the summary.
    let out = w.user.run(&["apply", "--all", "--yes", "--fresh", "--jsonl"], None);
    assert_eq!(out.code(), Some(6), "{}", out.stderr());
    let lines: Vec<Value> = out
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let finished: Vec<&Value> = lines.iter().filter(|l| l["event"] == "finished").collect();
    assert_eq!(finished.len(), 8, "{lines:#?}");
    let c5 = finished.iter().find(|l| l["app"] == "dex-c5").expect("c5");
    assert_eq!(
        (&c5["outcome"], &c5["kind"]),
        (&json!("failed"), &json!("unreachable")),
        "{c5:#}"
    );
    assert!(
        finished
            .iter()
            .filter(|l| l["app"] != "dex-c5")
            .all(|l| l["outcome"] == "ok")
    );
    assert_eq!(lines.iter().filter(|l| l["event"] == "consent").count(), 7);
    let summary = lines.last().expect("summary");
    assert_eq!(summary["event"], "summary");
    assert_eq!(
        (&summary["ok"], &summary["failed"]),
        (&json!(7), &json!(1)),
        "{summary:#}"
    );
    assert_eq!(summary["failures_by_cause"][0]["apps"], json!(["dex-c5"]));
    let both = w.user.run(&["apply", "--all", "--yes", "--jsonl", "--json"], None);
    assert!(both.fails_with(2).stderr().contains("--jsonl and --json"));

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
    // status of the selected rows only, each instance asked about its own grant.
    let j = w
        .user
        .run(&["status", "--select", "customer=c3", "--json"], None)
        .json();
    let apps = j["apps"].as_array().expect("apps");
    assert_eq!(apps.len(), 1, "{j:#}");
    assert_eq!(apps[0]["app"], "dex-c3");
    assert_eq!(
        apps[0]["consumer"]["state"], "none",
        "nobody consented in c3 yet: {j:#}"
    );
    let out = w.user.run(&["status", "--select", "custmer=c3"], None).fails_with(2);
    assert!(out.stderr().contains("customer"), "{}", out.stderr());
    let table = w.user.run(&["list"], None).ok().stdout();
    assert!(table.starts_with("APP") && table.contains("dex-c7"), "{table}");
    assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");
}

/// The Table API requests instance `name` has served as its admin (what
/// connapp signs in as).
fn admin_requests(w: &FleetWorld, name: usize) -> u64 {
    w.sn[name].with_state(|s| s.hourly.get("admin").map_or(0, |(_, n)| *n))
}

#[test]
#[ignore = "needs OpenBao; `cargo xtask test` starts it and runs this"]
fn five_hundred_rows_are_applied_verified_and_refreshed_with_one_command_each() {
    const N: usize = 500;
    const DOWN: usize = 250;
    let clock = std::time::Instant::now();
    let lap = |what: &str| eprintln!("{:>7.1}s {what}", clock.elapsed().as_secs_f64());
    let prefix = format!("connapp-e2e/fleet500-{}", std::process::id());
    let w = FleetWorld::new(N, DOWN, Accounts::PerRow, Some(&prefix));
    lap("500 Zoom accounts and 500 instances up, 2,000 secrets imported into OpenBao");
    let down = format!("dex-c{DOWN}");

    // Killed with Zoom's answer to the 201st create in hand.
    w.user.killed_at(
        &["apply", "--all", "--yes", "--jobs", "8"],
        &[("CONNAPP_FAULT", "create-after-answer"), ("CONNAPP_FAULT_SKIP", "200")],
    );
    let made = w.zoom_apps();
    lap(&format!("apply killed after {} creates", made.len()));
    // The 201st create answered; up to seven more were in flight beside it.
    assert!((201..=208).contains(&made.len()), "{}", made.len());
    // What every instance has served so far.
    let before: Vec<u64> = (0..N).map(|i| admin_requests(&w, i)).collect();

    // The rerun resumes: what the killed run finished is not touched again.
    let out = w.user.run(&["apply", "--all", "--yes", "--jobs", "8"], None);
    lap("apply resumed");
    // Exit 6: the first failure's kind, the provider (here the instance) could not be reached.
    assert_eq!(out.code(), Some(6), "{}", out.stderr());
    let (text, err) = (out.stdout(), out.stderr());
    assert!(err.contains("Resuming the apply run"), "{err}");
    let finished: Vec<usize> = text
        .lines()
        .filter(|l| l.contains("(by the interrupted run, not done again)"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("dex-c"))
                .and_then(|n| n.trim_end_matches(':').parse().ok())
        })
        .collect();
    assert!((190..=200).contains(&finished.len()), "{}: {text}", finished.len());
    for i in &finished {
        let now = admin_requests(&w, *i);
        assert_eq!(now, before[*i], "dex-c{i} was done by the killed run and touched again");
    }
    assert!(
        text.contains(&format!(
            "{} of {N} app(s) applied (or already matching), 1 failed, 0 skipped.",
            N - 1
        )),
        "{text}"
    );
    assert!(text.contains(&down), "the down row is named: {text}");
    let apps = w.zoom_apps();
    assert_eq!(apps.len(), N - 1, "one Zoom app per reachable row");
    let mut unique = apps.clone();
    unique.dedup();
    assert_eq!(unique, apps, "a Zoom app made twice");
    for l in text.lines().filter(|l| l.contains(&down)) {
        eprintln!("{l}");
    }

    // Converged: a fresh apply changes nothing and lists each reachable row's consent link.
    let j = w
        .user
        .run(&["apply", "--all", "--yes", "--fresh", "--jobs", "8", "--json"], None)
        .json();
    lap("apply again, from scratch");
    let planned = j["apps"].as_array().expect("apps");
    assert_eq!(planned.len(), N - 1, "{}", j["errors"]);
    assert!(planned.iter().all(|a| a["action"] == "none"), "{j:#}");
    assert_eq!(j["errors"][0]["app"], down.as_str());
    let links: Vec<(String, String)> = j["consent"]
        .as_array()
        .expect("consent")
        .iter()
        .map(|c| {
            let app = c["app"].as_str().expect("app").to_string();
            (app, c["consent_url"].as_str().expect("url").to_string())
        })
        .collect();
    assert_eq!(links.len(), N - 1);

    // Each customer's admin consents in their instance; connapp's own grant per app is
    // another admin's login (the sandbox approves as `owner`); then DEX's job runs once.
    let http = crate::support::no_redirects();
    let secret_tokens: Vec<(String, String)> = w
        .zoom
        .iter()
        .flat_map(|z| z.apps())
        .filter_map(|a| {
            let c = a.name.strip_prefix("DEX for Zoom (")?.strip_suffix(')')?.to_string();
            Some((format!("dex-{c}"), a.secret_token))
        })
        .collect();
    let mut lines = String::new();
    for (app, token) in &secret_tokens {
        lines.push_str(&json!({"app": app, "secret": "secret-token", "value": token}).to_string());
        lines.push('\n');
    }
    w.user.run(&["secrets", "import"], Some(lines.as_bytes())).ok();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((app, link)) = links.get(k) else { break };
                    let mut url = link.clone();
                    let page = loop {
                        let r = http.get(&url).send().expect("browser");
                        match r.headers().get("location") {
                            Some(l) => url = l.to_str().expect("location").to_string(),
                            None => break r.text().expect("page"),
                        }
                    };
                    assert!(page.contains("OAuth token received"), "{app}: {page}");
                    w.user
                        .run(&["login", app, "--user-hint", "owner", "--timeout", "20"], None)
                        .ok();
                    let row: usize = app["dex-c".len()..].parse().expect("row");
                    let base = w.sn[row].base_url();
                    let run: Value = http
                        .post(format!("{base}/_sandbox/dex/run"))
                        .send()
                        .expect("dex")
                        .json()
                        .expect("json");
                    assert_eq!(run["ok"], true, "{app}: {run:#}");
                }
            });
        }
    });
    lap("499 consents, DEX runs and logins");

    // One verify over the fleet: every reachable row proven, the down one failed alone.
    let out = w.user.run(&["verify", "--all", "--jobs", "8", "--json"], None);
    lap("verify --all");
    let j = out.json();
    assert_eq!(out.code(), Some(1), "{}", out.stderr());
    let verified = j["apps"].as_array().expect("apps");
    assert_eq!(verified.len(), 2 * N, "a DEX app and a management app per row");
    for a in verified {
        if a["app"] == down.as_str() {
            // Failed, with the instance named unreachable.
            assert_eq!((&a["ok"], &a["proven"]), (&json!(false), &json!(false)));
            let unreachable = a["checks"].as_array().expect("checks").iter().any(|c| {
                c["check"] == "servicenow"
                    && c["result"] == "fail"
                    && c["detail"].as_str().is_some_and(|d| d.contains("cannot reach"))
            });
            assert!(unreachable, "{a:#}");
        } else {
            let not_ok: Vec<&Value> = a["checks"]
                .as_array()
                .map(|c| c.iter().filter(|c| c["result"] != "ok").collect())
                .unwrap_or_default();
            assert_eq!(
                (&a["ok"], &a["proven"]),
                (&json!(true), &json!(true)),
                "{}: {not_ok:?}",
                a["app"]
            );
        }
    }

    // One refresh over the fleet: each of connapp's 499 grants renewed once at Zoom.
    let refreshed_before = w.refreshes();
    let out = w.user.run(&["refresh", "--all", "--jobs", "8", "--json"], None);
    lap("refresh --all");
    let j = out.json();
    let apps = j["apps"].as_array().expect("apps");
    assert_eq!(apps.len(), N, "connapp's user grants: the DEX apps");
    let failed: Vec<&Value> = apps.iter().filter(|a| a["ok"] != true).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["app"], down.as_str());
    let refreshed = w.refreshes() - refreshed_before;
    assert_eq!(refreshed, (N - 1) as u64);

    // The inventory view: each reachable row's app refreshed and verified just now.
    let j = w.user.run(&["list", "--json"], None).ok().json();
    let listed = j["apps"].as_array().expect("apps");
    assert_eq!(listed.len(), 2 * N);
    for a in listed
        .iter()
        .filter(|a| a["app"].as_str().is_some_and(|n| n.starts_with("dex-")))
    {
        if a["app"] == down.as_str() {
            assert_eq!(a["last_verify"]["ok"], false, "{a:#}");
            assert_eq!(a["last_refresh"], Value::Null, "{a:#}");
        } else {
            assert_eq!(a["last_verify"]["ok"], true, "{a:#}");
            assert!(a["last_refresh"].is_u64(), "{a:#}");
            assert_eq!(a["grant_owner"], "owner@sandbox.example", "{a:#}");
        }
    }
    lap("list");
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

/// `connapp sandbox --fleet N --json` running; killed when dropped.
struct FleetSandbox {
    child: std::process::Child,
    info: Value,
}

impl FleetSandbox {
    fn start(s: &Sandbox, rows: &str, dir: &str) -> FleetSandbox {
        let (child, info) =
            crate::support::spawn_with_banner(&mut s.command(&["sandbox", "--fleet", rows, "--dir", dir, "--json"]));
        FleetSandbox { child, info }
    }
}

impl Drop for FleetSandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `connapp sandbox --fleet 2`: a Zoom account and a ServiceNow instance per
/// customer, and files that declare them; the steps it prints (secrets
/// import, apply, the instances' consents, connapp's own logins, verify)
/// take the fleet to every app proven. A declaration of the user's own in
/// the directory is never overwritten; the fleet sandbox's own files are.
#[test]
fn the_fleet_sandbox_serves_customers_its_files_declare_and_its_steps_prove() {
    use std::os::unix::fs::PermissionsExt;
    let mut s = Sandbox::new(&built().full);
    std::fs::create_dir(s.path().join("mine")).expect("mkdir");
    std::fs::write(s.path().join("mine/connapp.toml"), "version = 1\n").expect("write");
    let out = s.run(&["sandbox", "--fleet", "2", "--dir", "mine"], None).fails_with(2);
    assert!(
        out.stderr()
            .contains("connapp.toml exists and was not written by `connapp sandbox --fleet`"),
        "{}",
        out.stderr()
    );
    assert_eq!(
        std::fs::read_to_string(s.path().join("mine/connapp.toml")).expect("read"),
        "version = 1\n"
    );

    let fleet = FleetSandbox::start(&s, "2", "fleet");
    let rows = fleet.info["fleet"].as_array().expect("rows").clone();
    assert_eq!(rows.len(), 2, "{:#}", fleet.info);
    assert_ne!(rows[0]["zoom_account"], rows[1]["zoom_account"]);
    assert_ne!(rows[0]["servicenow_url"], rows[1]["servicenow_url"]);
    let dir = s.path().join("fleet");
    let mode = std::fs::metadata(dir.join("secrets.jsonl"))
        .expect("secrets")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    s.set_env("CONNAPP_FILE", &dir.join("connapp.toml").display().to_string());
    let check = s.run(&["check"], None).ok();
    assert!(check.stdout().contains("2 rows made 4 apps"), "{}", check.stdout());

    let secrets = std::fs::read(dir.join("secrets.jsonl")).expect("read");
    s.run(&["secrets", "import"], Some(&secrets)).ok();
    let applied = s.run(&["apply", "--all", "--yes", "--jsonl"], None).ok();
    let links: Vec<String> = applied
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "consent")
        .filter_map(|e| e["consent_url"].as_str().map(str::to_string))
        .collect();
    assert_eq!(links.len(), 2, "{}", applied.stdout());
    for link in &links {
        s.run(&["sandbox", "consent", link, "--as", "admin"], None).ok();
    }
    // connapp's own grant per row, the sandbox's consent standing in for the browser.
    s.set_env(
        "BROWSER",
        &format!("{} sandbox consent --as owner", built().full.display()),
    );
    for row in &rows {
        let c = row["customer"].as_str().expect("customer");
        s.run(&["login", &format!("dex-{c}"), "--user-hint", "owner"], None)
            .ok();
    }
    // Every app proven once DEX's scheduled job has run on each instance.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let verified = loop {
        let j = s.run(&["verify", "--all", "--json"], None).json();
        let apps = j["apps"].as_array().cloned().unwrap_or_default();
        if apps.len() == 4 && apps.iter().all(|a| a["proven"] == true) {
            break apps;
        }
        assert!(std::time::Instant::now() < deadline, "not all proven: {j:#}");
        std::thread::sleep(std::time::Duration::from_secs(2));
    };
    assert!(verified.iter().all(|a| a["ok"] == true));
    drop(fleet);

    // The next fleet sandbox replaces its own files.
    let again = FleetSandbox::start(&s, "1", "fleet");
    assert_eq!(again.info["fleet"].as_array().map(Vec::len), Some(1));
    let csv = std::fs::read_to_string(dir.join("customers.csv")).expect("read");
    assert_eq!(csv.lines().count(), 2, "{csv}");
}
