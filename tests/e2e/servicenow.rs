//! The ServiceNow end, end to end: `apply` builds the DEX record chain in the
//! ServiceNow sandbox, the admin's consent there gets a real Zoom grant, the
//! sandbox's DEX job reads the six endpoints, `verify` checks both ends and
//! diagnoses every broken chain. The Zoom client secret never shows anywhere.

use connapp_sandbox::Sandbox as Zoom;
use connapp_sandbox::servicenow::{Instance, SnSeed};
use serde_json::{Value, json};

use crate::support::{Run, Sandbox, assert_fits, managed_user, no_redirects, sandbox_control, zoom_with_management};

pub(crate) const MGMT_SECRET: &str = "CANARY-mgmt-secret-9f3a";

pub(crate) struct World {
    pub(crate) sn: Instance,
    pub(crate) zoom: Zoom,
    pub(crate) user: Sandbox,
    pub(crate) http: reqwest::blocking::Client,
    pub(crate) outputs: std::cell::RefCell<String>,
}

impl World {
    pub(crate) fn new() -> World {
        let sn = Instance::start(SnSeed::default()).expect("servicenow");
        let zoom = zoom_with_management(MGMT_SECRET);
        let user = managed_user(&zoom, &sn.base_url(), MGMT_SECRET, &[]);
        for (kind, value) in [("instance-user", "admin"), ("instance-password", "admin-password")] {
            user.set_secret_of("dex-zoom", kind, value);
        }
        World {
            sn,
            zoom,
            user,
            http: no_redirects(),
            outputs: Default::default(),
        }
    }

    /// Runs connapp and keeps its output for the canary check.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let r = self.user.run(args, None);
        self.outputs
            .borrow_mut()
            .push_str(&format!("{}{}", r.stdout(), r.stderr()));
        r
    }

    /// Sets `field` of every record of `table` to `value` (an admin's edit in ServiceNow).
    pub(crate) fn set_all(&self, table: &str, field: &str, value: &str) {
        self.sn.with_state(|s| {
            for r in s.tables.get_mut(table).expect("table").values_mut() {
                r.insert(field.into(), value.into());
            }
        });
    }

    pub(crate) fn count(&self, table: &str) -> usize {
        self.sn.with_state(|s| s.rows(table).len())
    }

    /// apply; returns the consent link.
    pub(crate) fn apply(&self) -> String {
        let j = self.run(&["apply", "--yes", "--json"]).ok().json();
        j["consent"][0]["consent_url"].as_str().unwrap_or("").to_string()
    }

    /// The admin opens the link (Zoom auto-approves as `admin`); returns the final page.
    pub(crate) fn consent(&self, link: &str) -> String {
        let mut url = link.to_string();
        for _ in 0..5 {
            let r = self.http.get(&url).send().expect("browser");
            match r.headers().get("location") {
                Some(l) => url = l.to_str().expect("location").to_string(),
                None => return r.text().expect("page"),
            }
        }
        panic!("too many redirects")
    }

    pub(crate) fn dex(&self) -> Value {
        self.http
            .post(format!("{}/_sandbox/dex/run", self.sn.base_url()))
            .send()
            .expect("dex")
            .json()
            .expect("json")
    }

    pub(crate) fn verify(&self) -> Value {
        self.run(&["verify", "--json"]).json()
    }

    /// apply + consent in ServiceNow + connapp's own login as another admin.
    pub(crate) fn ready(&self) {
        let link = self.apply();
        assert!(self.consent(&link).contains("OAuth token received"));
        self.ready_after_consent();
    }

    pub(crate) fn created_secret(&self) -> String {
        self.zoom
            .apps()
            .into_iter()
            .find(|a| a.name == "DEX for Zoom" && a.client_id != "sbxDexClientId00000001")
            .expect("created app")
            .client_secret
    }
}

fn sn_rows(j: &Value) -> Vec<&Value> {
    j["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["check"] == "servicenow")
        .collect()
}

fn failing(j: &Value) -> Vec<&Value> {
    sn_rows(j).into_iter().filter(|c| c["result"] == "fail").collect()
}

/// The ServiceNow row of verify's answer `v` about `item`.
fn sn_row(v: &Value, item: &str) -> Value {
    sn_rows(v)
        .into_iter()
        .find(|c| c["item"] == item)
        .unwrap_or_else(|| panic!("no row {item:?}: {v:#}"))
        .clone()
}

/// Some failing ServiceNow row of verify's answer `v` names every one of `words`.
fn assert_failing(v: &Value, words: &[&str]) {
    let named = |c: &&Value| {
        let detail = c["detail"].as_str().expect("detail");
        words.iter().all(|w| detail.contains(w))
    };
    assert!(failing(v).iter().any(named), "no failing row names {words:?}: {v:#}");
}

#[test]
fn apply_builds_the_chain_plan_is_clean_and_a_scope_change_touches_only_its_records() {
    let w = World::new();
    let p = w.run(&["plan", "--json"]).fails_with(7).json();
    let items = p["apps"][0]["servicenow"]["items"].as_array().expect("items");
    assert_eq!(items.len(), 16, "{p:#}");
    let link = w.apply();
    assert!(
        link.contains("/oauth_initiator.do?") && link.contains("oauth_requestor="),
        "{link}"
    );
    for (table, n) in [
        ("oauth_entity", 1),
        ("oauth_entity_profile", 1),
        ("oauth_entity_scope", 6),
        ("oauth_entity_profile_scope", 6),
        ("oauth_2_0_credentials", 1),
        ("http_connection", 1),
    ] {
        assert_eq!(w.count(table), n, "{table}");
    }
    // The secret reached the instance through the write-only path only.
    let secret = w.created_secret();
    let stored = w.sn.with_state(|s| {
        let id = s.rows("oauth_entity")[0]["sys_id"].clone();
        s.secret("oauth_entity", &id, "client_secret")
    });
    assert_eq!(
        stored,
        Some(Some(secret.clone())),
        "written with sysparm_input_display_value=true"
    );
    let p = w.run(&["plan", "--json"]).ok().json();
    assert_eq!(p["pending"], false);
    // Idempotent: a second apply changes nothing and duplicates nothing (and logs no secret).
    w.run(&["-vvv", "apply", "--yes"]).ok();
    assert_eq!(w.count("oauth_entity"), 1);
    assert_eq!(w.count("http_connection"), 1);

    // One more scope: exactly its scope record and its profile link (plus the Zoom manifest).
    w.user.edit("scopes = []", "scopes = [\"meeting:read:meeting:admin\"]");
    let p = w.run(&["plan", "--json"]).fails_with(7).json();
    let changed: Vec<(&str, &str)> = p["apps"][0]["servicenow"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["action"] != "none")
        .map(|i| (i["action"].as_str().expect("a"), i["table"].as_str().expect("t")))
        .collect();
    assert_eq!(
        changed,
        vec![
            ("create", "oauth_entity_scope"),
            ("create", "oauth_entity_profile_scope")
        ]
    );
    w.run(&["apply", "--yes"]).ok();
    assert_eq!(w.count("oauth_entity_scope"), 7);
    // ... and removing it deletes exactly those two.
    w.user.edit("scopes = [\"meeting:read:meeting:admin\"]", "scopes = []");
    let p = w.run(&["plan", "--json"]).fails_with(7).json();
    let deleted = p["apps"][0]["servicenow"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["action"] == "delete")
        .count();
    assert_eq!(deleted, 2, "{p:#}");
    w.run(&["apply", "--yes"]).ok();
    assert_eq!(w.count("oauth_entity_scope"), 6);
    assert_eq!(w.count("oauth_entity_profile_scope"), 6);

    w.run(&["-vvv", "verify"]);
    // The canary: the Zoom client secret is in no output and no Table API answer.
    let listing = w
        .http
        .get(format!(
            "{}/api/now/table/oauth_entity?sysparm_display_value=all",
            w.sn.base_url()
        ))
        .basic_auth("admin", Some("admin-password"))
        .send()
        .expect("list")
        .text()
        .expect("body");
    assert!(!listing.contains(&secret), "the instance returned the client secret");
    let all = w.outputs.borrow();
    assert!(
        !all.contains(&secret) && !all.contains(MGMT_SECRET),
        "a secret was printed"
    );
}

/// An apply stopped between creating the OAuth provider record and writing
/// its Client Secret (a kill, in a fleet run) leaves a record whose secret
/// was never written: the next plan says so, and apply writes it.
#[test]
fn a_client_secret_never_written_into_its_record_is_written_by_the_next_apply() {
    let w = World::new();
    w.apply();
    w.sn.with_state(|s| {
        let rows = s.tables.get_mut("oauth_entity").expect("table");
        let (id, row) = rows.iter_mut().next().expect("the provider record");
        row.remove("client_secret");
        let id = id.clone();
        // Never written: no secret at all (not a malformed one).
        s.secrets
            .retain(|k, _| !(k.contains(&id) && k.contains("client_secret")));
        assert_eq!(s.secret("oauth_entity", &id, "client_secret"), None);
    });
    let p = w.run(&["plan", "--json"]).fails_with(7).json();
    let changed: Vec<&Value> = p["apps"][0]["servicenow"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["action"] != "none")
        .collect();
    assert_eq!(changed.len(), 1, "{changed:#?}");
    assert_eq!(
        (&changed[0]["table"], &changed[0]["action"]),
        (&json!("oauth_entity"), &json!("update"))
    );
    assert!(changed[0].to_string().contains("never written"), "{changed:#?}");
    let link = w.apply();
    assert!(w.consent(&link).contains("OAuth token received"));
    w.run(&["plan", "--json"]).ok();
}

#[test]
fn consent_in_servicenow_then_the_dex_job_works_and_verify_is_green_on_both_ends() {
    let w = World::new();
    let link = w.apply();
    let out = w.run(&["apply", "--yes"]).ok().stdout();
    assert!(
        out.contains("oauth_initiator.do") && out.contains("one grant per user per app"),
        "{out}"
    );
    assert_eq!(w.dex()["steps"][1]["detail"], "Please generate an OAuth Token");
    // status reads ServiceNow's own grant: nobody consented there yet.
    let st = w.run(&["status", "--json"]).fails_with(5).json();
    let theirs = &st["apps"][0]["consumer"];
    assert_eq!(theirs["state"], "none", "{st:#}");
    assert!(
        theirs["fix"].as_str().expect("fix").contains("oauth_initiator.do"),
        "{theirs}"
    );
    assert!(w.consent(&link).contains("OAuth token received"));
    let run = w.dex();
    assert_eq!(run["ok"], true, "{run:#}");
    assert_eq!(run["steps"].as_array().expect("steps").len(), 8);
    w.ready_after_consent();
    let v = w.verify();
    assert_eq!(v["ok"], true, "{v:#}");
    assert!(sn_rows(&v).len() >= 18);
    // connapp's own login used another admin: ServiceNow's grant is intact.
    assert_eq!(w.dex()["ok"], true);
    // Held and used since connapp's login: the instance's own log shows DEX's calls succeeding.
    let st = w.run(&["status", "--json"]).ok().json();
    assert_eq!(st["apps"][0]["consumer"]["state"], "ok", "{st:#}");
    assert_eq!(st["usable"], true);
    // --offline reads only the store.
    let st = w.run(&["status", "--offline", "--json"]).ok().json();
    assert_eq!(st["apps"][0]["consumer"], Value::Null);
    // The consent link is no longer offered once ServiceNow holds a token.
    let j = w.run(&["apply", "--yes", "--json"]).ok().json();
    assert_eq!(j["consent"], json!([]));
}

impl World {
    pub(crate) fn ready_after_consent(&self) {
        let app = self
            .zoom
            .apps()
            .into_iter()
            .find(|a| a.name == "DEX for Zoom" && a.client_id != "sbxDexClientId00000001")
            .expect("created app");
        self.user.set_secret("secret-token", app.secret_token);
        self.run(&["login", "--user-hint", "owner", "--timeout", "20"]).ok();
    }
}

#[test]
fn broken_chains_are_diagnosed() {
    let w = World::new();
    w.ready();
    assert_eq!(w.verify()["ok"], true);

    // A scope record deleted in ServiceNow.
    w.sn.with_state(|s| {
        let id = s
            .rows("oauth_entity_scope")
            .into_iter()
            .find(|r| r["oauth_entity_scope"] == "dashboard:read:list_zoomrooms:admin")
            .expect("scope")["sys_id"]
            .clone();
        s.tables.get_mut("oauth_entity_scope").expect("t").remove(&id);
    });
    assert_failing(
        &w.verify(),
        &["missing scope record", "dashboard:read:list_zoomrooms:admin"],
    );
    w.run(&["apply", "--yes"]).ok();
    assert_eq!(w.verify()["ok"], true);

    // The credential no longer points at the profile.
    w.set_all("oauth_2_0_credentials", "oauth_entity_profile", "");
    assert_failing(&w.verify(), &["not linked"]);
    w.run(&["apply", "--yes"]).ok();

    // The profile's grant type differs from the provider's.
    w.set_all("oauth_entity_profile", "grant_type", "client_credentials");
    assert_failing(&w.verify(), &["grant type"]);
    w.run(&["apply", "--yes"]).ok();

    // The redirect URL in ServiceNow gained a trailing slash.
    w.sn.with_state(|s| {
        for r in s.tables.get_mut("oauth_entity").expect("t").values_mut() {
            let u = r["redirect_url"].clone();
            r.insert("redirect_url".into(), format!("{u}/"));
        }
    });
    let v = w.verify();
    let row = sn_row(&v, "redirect URL");
    assert_eq!(row["result"], "fail");
    assert!(row["detail"].as_str().expect("d").contains("trailing slash"), "{row}");
    w.run(&["apply", "--yes"]).ok();
    assert_eq!(w.verify()["ok"], true);

    // ServiceNow's refresh token expired (its lifespan ran out unused).
    w.set_all("oauth_credential", "expires", "2026-01-01 00:00:00");
    let v = w.verify();
    let row = sn_row(&v, "ServiceNow's token");
    assert_eq!(row["result"], "fail");
    assert!(row["detail"].as_str().expect("d").contains("expired"), "{row}");
    assert!(row["fix"].as_str().expect("f").contains("oauth_initiator.do"), "{row}");
    let st = w.run(&["status", "--json"]).fails_with(5).json();
    assert_eq!(st["apps"][0]["consumer"]["state"], "expired", "{st:#}");
    assert_eq!(st["apps"][0]["usable"], false);

    // A user who may read aliases and connections but not write OAuth records: 403, naming the role.
    w.user.set_secret("instance-user", b"connadmin");
    w.user.set_secret("instance-password", b"connadmin-password");
    let e = w.run(&["apply", "--yes"]).fails_with(1).stderr();
    assert!(e.contains("403") && e.contains("admin role"), "{e}");
    // A user who may not even read aliases sees none: the role is named, not "install DEX".
    w.user.set_secret("instance-user", b"itil");
    w.user.set_secret("instance-password", b"itil-password");
    let e = w.run(&["plan"]).fails_with(1).stderr();
    assert!(
        e.contains("\"itil\" has none of the roles") && e.contains("instance-user"),
        "{e}"
    );
    assert!(!e.contains("install DEX"), "{e}");
    w.user.set_secret("instance-user", b"admin");
    w.user.set_secret("instance-password", b"admin-password");

    // A hibernating instance answers HTML.
    let mut knobs = sandbox_control(&w.http, &w.sn.base_url(), reqwest::Method::GET, "/knobs", Value::Null);
    knobs["asleep"] = json!(true);
    sandbox_control(&w.http, &w.sn.base_url(), reqwest::Method::PUT, "/knobs", knobs);
    let e = w.run(&["plan"]).fails_with(1).stderr();
    assert!(e.contains("hibernating"), "{e}");
    assert_failing(&w.verify(), &["hibernating"]);
}

#[test]
fn instance_access_by_oauth_client_credentials_and_rate_limit_messages() {
    let w = World::new();
    // Sign in with connapp's own OAuth client instead of a password.
    w.user
        .edit("[apps.dex-zoom.target]\n", "[apps.dex-zoom.target]\nauth = \"oauth\"\n");
    let e = w.run(&["plan"]).fails_with(7).stderr();
    assert!(
        e.contains("ServiceNow skipped") && e.contains("instance-client-id"),
        "{e}"
    );
    for (kind, value) in [
        ("instance-client-id", "sbxSnClient0000000000000000000001"),
        ("instance-client-secret", "sbx-sn-client-secret"),
    ] {
        w.user.set_secret(kind, value);
    }
    let p = w.run(&["plan", "--json"]).fails_with(7).json();
    assert_eq!(p["apps"][0]["servicenow"]["items"].as_array().expect("items").len(), 16);
    // A wrong client secret: the instance's access_denied, explained.
    w.user.set_secret("instance-client-secret", b"wrong");
    let e = w.run(&["plan"]).fails_with(1).stderr();
    assert!(e.contains("401") && e.contains("client_credentials"), "{e}");
    w.user.set_secret("instance-client-secret", b"sbx-sn-client-secret");
    // A rate-limit rule: when to retry, in seconds.
    let mut knobs = sandbox_control(&w.http, &w.sn.base_url(), reqwest::Method::GET, "/knobs", Value::Null);
    knobs["rate_limit_per_hour"] = json!(2);
    sandbox_control(&w.http, &w.sn.base_url(), reqwest::Method::PUT, "/knobs", knobs);
    let e = w.run(&["plan"]).fails_with(1).stderr();
    assert!(e.contains("429") && e.contains("retry in"), "{e}");
}

#[test]
fn a_rotated_client_secret_reaches_servicenow_with_write_secrets() {
    let w = World::new();
    w.ready();
    let client_id = w
        .zoom
        .apps()
        .into_iter()
        .find(|a| a.name == "DEX for Zoom" && a.client_id != "sbxDexClientId00000001")
        .expect("created app")
        .client_id;
    // Rotated in the Marketplace; ServiceNow's next refresh now fails with invalid_client.
    let rotated = sandbox_control(
        &w.http,
        &w.zoom.base_url(),
        reqwest::Method::POST,
        &format!("/apps/{client_id}/rotate-secret"),
        json!({}),
    )["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    for base in [w.sn.base_url(), w.zoom.base_url()] {
        sandbox_control(
            &w.http,
            &base,
            reqwest::Method::POST,
            "/clock/advance",
            json!({"seconds": 3700}),
        );
    }
    let run = w.dex();
    assert_eq!(run["ok"], false);
    assert!(
        run["steps"][1]["detail"]
            .as_str()
            .expect("d")
            .contains("invalid_client"),
        "{run:#}"
    );
    // The admin stores the new secret; apply --write-secrets hands it to ServiceNow.
    w.user.set_secret("client-secret", &rotated);
    let out = w.run(&["apply", "--yes", "--write-secrets"]).ok().stdout();
    assert!(!out.contains(&rotated));
    let stored = w.sn.with_state(|s| {
        let id = s.rows("oauth_entity")[0]["sys_id"].clone();
        s.secret("oauth_entity", &id, "client_secret")
    });
    assert_eq!(stored, Some(Some(rotated)));
    let run = w.dex();
    assert_eq!(run["ok"], true, "{run:#}");
}

/// verify judges ServiceNow's grant by what the instance saw when it used it
/// (its outbound HTTP log), never by an expiry date alone: unused it is not
/// "ok", used it is, and after the same Zoom user consents again the next
/// DEX run's refusal makes verify fail with the fix. A scope added later is
/// a failing row at once.
#[test]
fn verify_judges_servicenows_grant_by_its_own_calls() {
    let w = World::new();
    // plan and apply say the same numbers, in the right order, in 100 columns.
    let plan = w.run(&["plan"]).fails_with(7).stdout();
    assert!(plan.contains("ServiceNow: 16 record(s) to create"), "{plan}");
    assert_fits(&plan, 100);
    let out = w.run(&["apply", "--yes"]).ok().stdout();
    assert_fits(&out, 100);
    assert!(
        out.contains("ServiceNow") && out.contains(": 16 record(s) created"),
        "{out}"
    );
    assert!(
        out.contains("change(s) to Zoom app") && !out.contains("applied Zoom change(s)"),
        "{out}"
    );
    let link = w.apply();
    assert!(w.consent(&link).contains("OAuth token received"));
    w.ready_after_consent();

    // Consented, but not used yet: not exercised, and not "everything works".
    let v = w.verify();
    let used = sn_row(&v, "ServiceNow's calls to Zoom");
    assert_eq!(used["result"], "skip", "{used}");
    assert_eq!((v["ok"].clone(), v["proven"].clone()), (json!(true), json!(false)));
    let text = w.run(&["verify"]).ok().stdout();
    assert!(
        text.contains("not everything is proven") && !text.contains("everything declared works"),
        "{text}"
    );

    // DEX's job runs: the instance's own log proves the grant.
    assert_eq!(w.dex()["ok"], true);
    let v = w.verify();
    assert_eq!(sn_row(&v, "ServiceNow's calls to Zoom")["result"], "ok", "{v:#}");
    assert_eq!(v["proven"], true, "{v:#}");
    let green = w.run(&["verify"]).ok().stdout();
    assert!(green.contains("everything declared works"), "{green}");
    assert_fits(&green, 100);

    // On a terminal, each long step shows as a spinner on stderr (cleared at the end).
    let tty = w.user.on_terminal(&["verify"], &[]);
    assert_eq!(tty.code, Some(0), "{}", tty.screen);
    assert!(
        tty.screen.contains("dex-zoom: calling Zoom with connapp's own token"),
        "no step shown:\n{}",
        tty.screen
    );
    assert!(
        !w.run(&["verify"]).ok().stderr().contains("calling Zoom"),
        "a pipe gets no spinner"
    );

    // verify names whose grant connapp holds, asked live.
    let grant = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == "grant" && c["item"] == "connapp's token")
        .expect("grant row");
    assert!(
        grant["detail"].as_str().expect("d").contains("owner@sandbox.example's"),
        "{grant}"
    );

    // The Zoom user ServiceNow consented as (`admin`) consents again, through connapp.
    let out = w
        .run(&["login", "--user-hint", "admin", "--timeout", "20"])
        .ok()
        .stdout();
    assert!(out.contains("as admin@sandbox.example at Zoom"), "{out}");
    let run = w.dex();
    assert_eq!(run["ok"], false, "{run:#}");
    let out = w.run(&["verify"]).fails_with(1).stdout();
    assert!(
        out.contains("ServiceNow's calls to Zoom") && out.contains("check(s) failed"),
        "{out}"
    );
    assert_fits(&out, 100);
    // status, too, judges ServiceNow's grant by the instance's own calls: refused.
    let st = w.run(&["status"]).fails_with(5).stdout();
    assert!(
        st.contains("ServiceNow's grant: REFUSED") && st.contains("oauth_initiator.do"),
        "{st}"
    );
    assert_fits(&st, 100);
    assert_fits(&w.run(&["secrets", "list"]).ok().stdout(), 100);
    let v = w.run(&["verify", "--json"]).fails_with(1).json();
    let row = sn_row(&v, "ServiceNow's calls to Zoom");
    assert_eq!(row["result"], "fail", "{row}");
    assert!(row["detail"].as_str().expect("d").contains("401"), "{row}");
    assert!(row["fix"].as_str().expect("f").contains("oauth_initiator.do"), "{row}");

    // ServiceNow consents again (as `admin`; connapp's own grant moves to `owner`).
    w.run(&["login", "--user-hint", "owner", "--timeout", "20"]).ok();
    w.sn.with_state(|s| s.clock_offset += 5);
    assert!(w.consent(&link).contains("OAuth token received"));
    w.sn.with_state(|s| s.clock_offset += 5);
    assert_eq!(w.dex()["ok"], true);
    assert_eq!(w.verify()["proven"], true);

    // A scope added to the app: ServiceNow's grant lacks it until it consents again.
    w.user.edit("scopes = []", "scopes = [\"meeting:read:meeting:admin\"]");
    w.run(&["apply", "--yes"]).ok();
    let v = w.run(&["verify", "--json"]).fails_with(1).json();
    let row = sn_row(&v, "ServiceNow's token");
    assert_eq!(row["result"], "fail", "{row}");
    assert!(
        row["detail"].as_str().expect("d").contains("lacks 1 scope")
            && row["detail"]
                .as_str()
                .expect("d")
                .contains("meeting:read:meeting:admin"),
        "{row}"
    );
}
