//! `connapp rotate client-secret` end to end, on the Zoom and ServiceNow
//! sandboxes with ServiceNow's DEX job running in a loop: the rotation
//! costs no DEX run and no consent; afterwards Zoom's token endpoint refuses
//! the old secret and accepts the new one; a run killed after each step is
//! completed by `--resume` and undone by `--abort`; Zoom's limit on
//! schedule changes is reported with the time to retry.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::servicenow::World;
use crate::support::{no_redirects, sandbox_control};

/// The created DEX app's Client ID and its current Client Secret at Zoom.
fn zoom_app(w: &World) -> (String, String) {
    let app = w
        .zoom
        .apps()
        .into_iter()
        .find(|a| a.name == "DEX for Zoom" && a.client_id != "sbxDexClientId00000001")
        .expect("created app");
    (app.client_id, app.client_secret)
}

/// Whether Zoom's token endpoint authenticates the client with `secret`:
/// an unknown refresh token is `invalid_grant` once the client is
/// accepted, `invalid_client` when its secret is not.
fn zoom_accepts(w: &World, client_id: &str, secret: &str) -> bool {
    let r = w
        .http
        .post(format!("{}/oauth/token", w.zoom.base_url()))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "no-such-token")])
        .send()
        .expect("token endpoint");
    let body: Value = r.json().expect("json");
    match body["error"].as_str() {
        Some("invalid_grant") => true,
        Some("invalid_client") => false,
        _ => panic!("unexpected answer: {body}"),
    }
}

/// The Client Secret ServiceNow's provider record holds.
fn servicenow_secret(w: &World) -> Option<String> {
    w.sn.with_state(|s| {
        let id = s.rows("oauth_entity")[0]["sys_id"].clone();
        s.secret("oauth_entity", &id, "client_secret").flatten()
    })
}

fn set_knob(w: &World, base: &str, k: &str, v: Value) {
    let mut knobs = sandbox_control(&w.http, base, reqwest::Method::GET, "/knobs", Value::Null);
    knobs[k] = v;
    sandbox_control(&w.http, base, reqwest::Method::PUT, "/knobs", knobs);
}

/// ServiceNow's DEX job run every 250 ms on its own thread until dropped;
/// every run's outcome is kept. `pause` holds the loop between runs.
struct DexLoop {
    stop: Arc<AtomicBool>,
    runs: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    pause: Arc<Mutex<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DexLoop {
    fn start(w: &World) -> DexLoop {
        let (stop, runs) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let pause = Arc::new(Mutex::new(()));
        let url = format!("{}/_sandbox/dex/run", w.sn.base_url());
        let (s, r, f, p) = (stop.clone(), runs.clone(), failures.clone(), pause.clone());
        let thread = std::thread::spawn(move || {
            let http = no_redirects();
            while !s.load(Ordering::SeqCst) {
                {
                    let _running = p.lock().unwrap_or_else(|e| e.into_inner());
                    let answer = http.post(&url).send().expect("dex");
                    let status = answer.status();
                    let text = answer.text().expect("dex answer");
                    r.fetch_add(1, Ordering::SeqCst);
                    let run: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if run["ok"] != true {
                        f.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("{status}: {text}"));
                    }
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        DexLoop {
            stop,
            runs,
            failures,
            pause,
            thread: Some(thread),
        }
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// No DEX run failed so far.
    fn assert_clean(&self, when: &str) {
        let f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        assert!(f.is_empty(), "{when}: DEX runs failed:\n{}", f.join("\n"));
    }

    /// Waits until `n` more runs have completed.
    fn wait_runs(&self, n: usize) {
        let target = self.runs() + n;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.runs() < target {
            assert!(std::time::Instant::now() < deadline, "the DEX loop stalled");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for DexLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A ready world (apply, ServiceNow's consent, connapp's own login) whose
/// DEX job refreshes its token on every run: Zoom's access tokens live 61
/// s and ServiceNow renews 60 s before expiry.
fn refreshing_world() -> World {
    let w = World::new();
    w.ready();
    set_knob(&w, &w.zoom.base_url(), "access_ttl", json!(61));
    // ServiceNow's token from the consent lives an hour: past it, its next
    // refresh brings a 61-s one.
    sandbox_control(
        &w.http,
        &w.sn.base_url(),
        reqwest::Method::POST,
        "/clock/advance",
        json!({"seconds": 3600}),
    );
    let run = w.dex();
    assert_eq!(run["ok"], true, "{run:#}");
    w
}

/// After a rotation: Zoom accepts only the new secret, ServiceNow holds
/// it, connapp's own refresh works with what it stores, DEX reads data.
fn assert_rotated(w: &World, client_id: &str, old: &str, when: &str) -> String {
    let (_, new) = zoom_app(w);
    assert_ne!(new, old, "{when}: Zoom's secret did not change");
    assert!(
        !zoom_accepts(w, client_id, old),
        "{when}: Zoom still accepts the old secret"
    );
    assert!(zoom_accepts(w, client_id, &new), "{when}: Zoom refuses the new secret");
    assert_eq!(
        servicenow_secret(w).as_deref(),
        Some(new.as_str()),
        "{when}: ServiceNow does not hold the new secret"
    );
    w.run(&["refresh", "dex-zoom"]).ok();
    new
}

fn rotate_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["rotate", "client-secret", "dex-zoom", "--yes"];
    v.extend_from_slice(extra);
    v
}

#[test]
fn a_rotation_keeps_dex_running_and_leaves_only_the_new_secret() {
    let w = refreshing_world();
    let (client_id, old) = zoom_app(&w);
    let dex = DexLoop::start(&w);
    dex.wait_runs(3);
    let run = w
        .run(&rotate_args(&["--overlap", "2h", "--wait", "30s", "--json"]))
        .ok();
    let j = crate::json::judged(&crate::json::schema(), "rotate", &run);
    assert_eq!(j["step"], "finished", "{j:#}");
    assert_eq!(j["tested"]["provider"]["result"], "ok", "{j:#}");
    assert_eq!(j["tested"]["consumer"]["result"], "ok", "{j:#}");
    assert!(
        j["old_revoked"].as_str().unwrap_or("").contains("revoked at Zoom now"),
        "{j:#}"
    );
    let steps: Vec<&str> = j["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["step"].as_str())
        .collect();
    assert_eq!(
        steps,
        ["creating", "created", "set", "tested", "finishing", "finished"],
        "{j:#}"
    );
    // DEX keeps reading after the old secret is gone.
    dex.wait_runs(4);
    dex.assert_clean("during and after the rotation");
    let new = assert_rotated(&w, &client_id, &old, "after the rotation");
    assert_eq!(
        j["new_fingerprint"].as_str(),
        Some(connapp_engine::rotation::fingerprint(new.as_bytes()).as_str())
    );
    assert_eq!(
        j["old_fingerprint"].as_str(),
        Some(connapp_engine::rotation::fingerprint(old.as_bytes()).as_str())
    );
    // The record in the store names the secrets by fingerprint only, and
    // no output held either secret.
    let outputs = w.outputs.borrow().clone();
    for secret in [&old, &new] {
        assert!(!outputs.contains(secret.as_str()), "a Client Secret was printed");
        assert!(!j.to_string().contains(secret.as_str()));
    }
    // ServiceNow's grant survived: the same consent, still refreshing.
    dex.wait_runs(2);
    dex.assert_clean("at the end");
}

/// Zoom refuses a new rotation because one whose answer was lost is open:
/// connapp says so, and takes the secret a person copies from Zoom's page.
fn resume_with_the_secret_zoom_shows(w: &World, e: &str) {
    assert!(
        e.contains("in progress already") && e.contains("--new-secret-stdin"),
        "{e}"
    );
    let (_, issued) = zoom_app(w);
    w.user
        .run(
            &rotate_args(&["--resume", "--wait", "20s", "--new-secret-stdin"]),
            Some(issued.as_bytes()),
        )
        .ok();
}

/// Runs the fault-injection build of `rotate` and expects it killed at `point`.
fn killed_at(w: &World, point: &str) {
    w.user.killed_at(
        &rotate_args(&["--overlap", "6h", "--wait", "20s"]),
        &[("CONNAPP_FAULT", point)],
    );
}

/// Moves both sandboxes' clocks past Zoom's 15-minute window of schedule
/// changes (as time passes for both), with the DEX loop held between runs.
fn next_window(w: &World, dex: &DexLoop) {
    let _held = dex.pause.lock().unwrap_or_else(|e| e.into_inner());
    for base in [w.zoom.base_url(), w.sn.base_url()] {
        sandbox_control(
            &w.http,
            &base,
            reqwest::Method::POST,
            "/clock/advance",
            json!({"seconds": 901}),
        );
    }
}

#[test]
fn a_rotation_killed_after_any_step_resumes_or_aborts_without_a_broken_pair() {
    let w = refreshing_world();
    let (client_id, mut current) = zoom_app(&w);
    let dex = DexLoop::start(&w);
    let points = [
        "rotate-after-create-answer",
        "rotate-after-journal",
        "rotate-after-created",
        "rotate-after-set",
        "rotate-after-test",
        "rotate-after-current",
    ];
    // Killed, then resumed.
    for point in points {
        next_window(&w, &dex);
        killed_at(&w, point);
        // A second rotation refuses while this one is open, and says why.
        let e = w.run(&rotate_args(&[])).fails_with(1).stderr();
        assert!(e.contains("in progress") && e.contains("--resume"), "{point}: {e}");
        if point == "rotate-after-create-answer" {
            // Zoom issued a secret whose answer died with the process: connapp
            // says so and takes it from the person who copies it from Zoom.
            let e = w.run(&rotate_args(&["--resume"])).fails_with(1).stderr();
            resume_with_the_secret_zoom_shows(&w, &e);
        } else {
            let out = w.run(&rotate_args(&["--resume", "--wait", "20s"])).ok().stdout();
            assert!(out.contains("finished"), "{point}: {out}");
        }
        current = assert_rotated(&w, &client_id, &current, point);
        dex.assert_clean(point);
    }
    // Killed, then aborted: the old secret is current on both ends again and
    // works; Zoom cannot cancel, so the new secret stays pending and a new
    // rotation points at --resume, which finishes it.
    for point in [
        "rotate-after-journal",
        "rotate-after-created",
        "rotate-after-set",
        "rotate-after-test",
    ] {
        next_window(&w, &dex);
        killed_at(&w, point);
        let j = w.run(&rotate_args(&["--abort", "--json"])).ok().json();
        assert_eq!(j["step"], "aborted", "{point}: {j:#}");
        assert_eq!(servicenow_secret(&w).as_deref(), Some(current.as_str()), "{point}");
        assert!(
            zoom_accepts(&w, &client_id, &current),
            "{point}: the old secret no longer works"
        );
        w.run(&["refresh", "dex-zoom"]).ok();
        dex.wait_runs(2);
        dex.assert_clean(point);
        let e = w.run(&rotate_args(&[])).fails_with(1).stderr();
        assert!(e.contains("--resume") && e.contains("cannot cancel"), "{point}: {e}");
        w.run(&rotate_args(&["--resume", "--wait", "20s"])).ok();
        current = assert_rotated(&w, &client_id, &current, point);
    }
    // Killed with Zoom's answer lost, then aborted: the old secret is current
    // and works; Zoom's rotation is still open with a secret connapp never
    // saw, so the next rotation asks for it from the credentials page.
    next_window(&w, &dex);
    killed_at(&w, "rotate-after-create-answer");
    let j = w.run(&rotate_args(&["--abort", "--json"])).ok().json();
    assert_eq!(j["step"], "aborted", "{j:#}");
    let said = j["history"].to_string();
    assert!(said.contains("credentials page"), "{said}");
    assert!(zoom_accepts(&w, &client_id, &current), "the old secret no longer works");
    assert_eq!(servicenow_secret(&w).as_deref(), Some(current.as_str()));
    let e = w.run(&rotate_args(&["--wait", "20s"])).fails_with(1).stderr();
    resume_with_the_secret_zoom_shows(&w, &e);
    current = assert_rotated(&w, &client_id, &current, "abort after a lost answer");
    dex.assert_clean("abort after a lost answer");
    // Past the test step an abort refuses: the new secret is current already.
    next_window(&w, &dex);
    killed_at(&w, "rotate-after-current");
    let e = w.run(&rotate_args(&["--abort"])).fails_with(1).stderr();
    assert!(e.contains("--resume"), "{e}");
    w.run(&rotate_args(&["--resume", "--wait", "20s"])).ok();
    current = assert_rotated(&w, &client_id, &current, "abort refused");
    // Zoom's limit of about 3 schedule changes in 15 minutes: the rotation
    // above made 2; a new one is the 3rd, its revocation the 4th — refused
    // with the time to retry, and the rotation waits at its last step.
    let e = w.run(&rotate_args(&["--wait", "20s"])).fails_with(1).stderr();
    assert!(
        e.contains("429") && e.contains("run the same command again after"),
        "{e}"
    );
    let j = w.run(&rotate_args(&["--resume", "--json"])).fails_with(1).stderr();
    assert!(j.contains("after"), "{j}");
    next_window(&w, &dex);
    let j = w.run(&rotate_args(&["--resume", "--json"])).ok().json();
    assert_eq!(j["step"], "finished", "{j:#}");
    assert_rotated(&w, &client_id, &current, "after the rate limit");
    dex.assert_clean("at the end");
    assert!(!w.outputs.borrow().contains(&current), "a Client Secret was printed");
}

/// Without a management app connapp cannot rotate at Zoom: it prints the
/// Marketplace steps with this app's values, takes the new secret the
/// person copied (standard input, never argv), refuses the current one,
/// hands the new one to ServiceNow and tests it; the old one is left to the
/// overlap the person chose.
#[test]
fn without_a_management_app_a_person_rotates_at_zoom_and_connapp_does_the_rest() {
    let w = refreshing_world();
    let (client_id, old) = zoom_app(&w);
    w.user.edit("managed_by = \"zoom-marketplace\"\n", "");
    let dex = DexLoop::start(&w);
    let run = w.run(&rotate_args(&["--overlap", "2h", "--json"])).ok();
    let j = crate::json::judged(&crate::json::schema(), "rotate", &run);
    assert_eq!(
        (j["step"].as_str(), j["manual"].as_bool()),
        (Some("creating"), Some(true)),
        "{j:#}"
    );
    let steps = j["manual_steps"].to_string();
    let revoke_at = connapp_clients::rotate::iso(j["revoke_old_at"].as_u64().expect("revoke time"));
    assert!(
        steps.contains("App Credentials") && steps.contains("DEX for Zoom") && steps.contains(&revoke_at),
        "{steps}"
    );
    assert!(steps.contains("--new-secret-stdin"), "{steps}");
    // Without a terminal, the text says the same and asks nothing.
    let text = w.run(&rotate_args(&["--resume"])).ok().stdout();
    assert!(
        text.contains("App Credentials") && text.contains("stands at step creating"),
        "{text}"
    );
    // The current secret is not a new one.
    let e = w
        .user
        .run(&rotate_args(&["--resume", "--new-secret-stdin"]), Some(old.as_bytes()))
        .fails_with(3)
        .stderr();
    assert!(e.contains("is the current Client Secret"), "{e}");
    // The person rotates in the Marketplace, old one kept for 2 hours.
    let new = sandbox_control(
        &w.http,
        &w.zoom.base_url(),
        reqwest::Method::POST,
        &format!("/apps/{client_id}/rotate-secret"),
        json!({"overlap_secs": 7200}),
    )["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let out = w
        .user
        .run(
            &rotate_args(&["--resume", "--new-secret-stdin", "--wait", "20s", "--json"]),
            Some(format!("{new}\n").as_bytes()),
        )
        .ok();
    let j = out.json();
    assert_eq!(j["step"], "finished", "{j:#}");
    assert_eq!(j["tested"]["consumer"]["result"], "ok", "{j:#}");
    assert!(
        j["old_revoked"]
            .as_str()
            .unwrap_or("")
            .contains("revoke it in the provider's console"),
        "{j:#}"
    );
    assert!(!out.stdout().contains(&new) && !out.stderr().contains(&new));
    assert_eq!(servicenow_secret(&w).as_deref(), Some(new.as_str()));
    // Both work until the end of the person's overlap.
    assert!(zoom_accepts(&w, &client_id, &new) && zoom_accepts(&w, &client_id, &old));
    w.run(&["refresh", "dex-zoom"]).ok();
    dex.wait_runs(2);
    dex.assert_clean("after a rotation by hand");
    assert!(!w.outputs.borrow().contains(&new) && !w.outputs.borrow().contains(&old));
}

/// The user's file store, opened as connapp opens it (the same passphrase).
fn user_store(w: &World) -> connapp_store_file::FileStore {
    fn find(dir: &std::path::Path) -> Option<std::path::PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == connapp_store_file::STORE_FILE) {
                return p.parent().map(std::path::Path::to_path_buf);
            }
            if p.is_dir()
                && let Some(found) = find(&p)
            {
                return Some(found);
            }
        }
        None
    }
    let dir = find(w.user.path()).expect("the user's file store");
    connapp_store_file::FileStore::open(
        &dir,
        crate::secrets::pass("correct horse battery staple"),
        connapp_store_file::Cost::default(),
    )
    .expect("open the store")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// verify's rows of kind `check` about `item`.
fn row<'a>(j: &'a Value, check: &str, item: &str) -> &'a Value {
    j["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == check && c["item"] == item)
        .unwrap_or_else(|| panic!("no {check} row for {item}: {j:#}"))
}

/// verify looks ahead: the Client Secret's age against the declared
/// maximum, a rotation left open or gone stale, ServiceNow's refresh token
/// nearing its end.
#[test]
fn verify_warns_before_the_secret_the_rotation_or_servicenows_token_runs_out() {
    use connapp_plugin_api::{Expected, Store};
    let w = World::new();
    w.ready();
    w.user.edit(
        "[apps.dex-zoom.target]",
        "client_secret_max_age_days = 30\n\n[apps.dex-zoom.target]",
    );
    let (_, secret) = zoom_app(&w);
    let age = |j: &Value| row(j, "rotation", "Client Secret age").clone();
    // apply stored the new app's secret with its date.
    let a = age(&w.verify());
    assert_eq!(a["result"], "ok", "{a:#}");
    assert!(
        a["detail"].as_str().unwrap_or("").contains("stored 0 days ago"),
        "{a:#}"
    );
    // Stored 20 days ago: due within two weeks. 31 days ago: overdue.
    let fp = connapp_engine::rotation::fingerprint(secret.as_bytes());
    for (days, want) in [(20, "warn"), (31, "fail")] {
        let meta = json!({"since": now() - days * 86_400, "fingerprint": fp});
        user_store(&w)
            .put(
                "apps/dex-zoom/client-secret-since",
                meta.to_string().as_bytes(),
                Expected::Any,
            )
            .expect("date the secret");
        let a = age(&w.verify());
        assert_eq!(a["result"], want, "{days} days: {a:#}");
        assert!(
            a["fix"]
                .as_str()
                .unwrap_or("")
                .contains("connapp rotate client-secret dex-zoom"),
            "{a:#}"
        );
    }
    // A date recorded for another value says nothing about this one.
    let meta = json!({"since": now() - 40 * 86_400, "fingerprint": "sha256:0000000000000000"});
    user_store(&w)
        .put(
            "apps/dex-zoom/client-secret-since",
            meta.to_string().as_bytes(),
            Expected::Any,
        )
        .expect("date another value");
    assert_eq!(age(&w.verify())["result"], "skip");

    // A rotation left open is a warning that names --resume; past the end
    // of its overlap, a failure.
    killed_at(&w, "rotate-after-created");
    let r = row(&w.verify(), "rotation", "Client Secret rotation").clone();
    assert_eq!(r["result"], "warn", "{r:#}");
    assert!(
        r["detail"].as_str().unwrap_or("").contains("stands at step created")
            && r["fix"].as_str().unwrap_or("").contains("--resume"),
        "{r:#}"
    );
    let store = user_store(&w);
    let rec = store.get("apps/dex-zoom/rotation").expect("read").expect("record");
    let mut rot: Value = serde_json::from_slice(&rec.value).expect("json");
    let real_end = rot["revoke_old_at"].clone();
    rot["revoke_old_at"] = json!(now() - 60);
    store
        .put(
            "apps/dex-zoom/rotation",
            rot.to_string().as_bytes(),
            Expected::Version(rec.version),
        )
        .expect("age the record");
    let r = row(&w.verify(), "rotation", "Client Secret rotation").clone();
    assert_eq!(r["result"], "fail", "{r:#}");
    assert!(
        r["detail"]
            .as_str()
            .unwrap_or("")
            .contains("stopped accepting the old Client Secret"),
        "{r:#}"
    );
    // Put back as Zoom has it, and finished: the record says when, and the
    // new secret is dated today.
    rot["revoke_old_at"] = real_end;
    let rec = store.get("apps/dex-zoom/rotation").expect("read").expect("record");
    store
        .put(
            "apps/dex-zoom/rotation",
            rot.to_string().as_bytes(),
            Expected::Version(rec.version),
        )
        .expect("restore the record");
    w.run(&rotate_args(&["--resume"])).ok();
    let j = w.verify();
    assert_eq!(row(&j, "rotation", "Client Secret rotation")["result"], "ok", "{j:#}");
    assert_eq!(age(&j)["result"], "ok", "{j:#}");

    // ServiceNow's refresh token five days from its end: a warning.
    let soon = chrono_glide(now() + 5 * 86_400);
    w.sn.with_state(|s| {
        for r in s.tables.get_mut("oauth_credential").expect("table").values_mut() {
            if r.get("type").is_some_and(|t| t == "refresh_token") {
                r.insert("expires".into(), soon.clone());
            }
        }
    });
    let j = w.verify();
    let t = row(&j, "servicenow", "ServiceNow's token");
    assert_eq!(t["result"], "warn", "{t:#}");
    assert!(
        t["detail"].as_str().unwrap_or("").contains("in 4 days")
            || t["detail"].as_str().unwrap_or("").contains("in 5 days"),
        "{t:#}"
    );
}

/// A time as ServiceNow writes it (`YYYY-MM-DD HH:MM:SS`, UTC).
fn chrono_glide(t: u64) -> String {
    connapp_clients::rotate::iso(t).replace('T', " ").replace('Z', "")
}

/// SHA-256 by coreutils' `sha256sum`, not by connapp.
fn sha256sum(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string()
}

/// The independent judges (`tests/interop/evidence_judge.py`): the in-toto
/// project's Statement binding and securesystemslib's DSSE.
fn judge(file: &std::path::Path, key: Option<&std::path::Path>) -> (bool, Value) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/evidence_judge.py");
    let mut c = std::process::Command::new("python3");
    c.arg(script).arg(file);
    if let Some(k) = key {
        c.arg(k);
    }
    let out = c.output().expect("python3");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("the judge failed: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), report)
}

/// `apply --evidence` and `rotate --evidence` write in-toto Statements that
/// independent implementations accept, signed with a key from `evidence
/// keygen`; `evidence verify` checks signature and digests and fails on one
/// flipped byte; `--change` fills the change request's plans after what a
/// person wrote and attaches everything; no Client Secret appears in any of it.
#[test]
fn evidence_is_signed_checked_by_independent_judges_and_filed_on_the_change_request() {
    let w = World::new();
    let number = w.sn.with_state(|s| {
        let row = [
            ("short_description", "DEX for Zoom integration"),
            ("implementation_plan", "Agreed with the CAB on Monday."),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let id = s.insert("change_request", row, "admin");
        s.row("change_request", &id).expect("row")["number"].clone()
    });
    assert!(number.starts_with("CHG"), "{number}");
    let dir = w.user.path();
    std::fs::create_dir(dir.join("keys")).expect("mkdir");
    w.run(&["evidence", "keygen", "keys/ev"]).ok();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(dir.join(p)).expect("key").permissions().mode() & 0o777;
    assert_eq!((mode("keys/ev"), mode("keys/ev.pub")), (0o600, 0o644));
    let e = w.run(&["evidence", "keygen", "keys/ev"]).fails_with(2).stderr();
    assert!(e.contains("exists"), "{e}");

    // apply, signed, filed on the change request.
    let j = w
        .run(&[
            "apply",
            "--yes",
            "--json",
            "--evidence",
            "ev/apply.json",
            "--sign-key",
            "keys/ev",
            "--change",
            &number,
        ])
        .ok()
        .json();
    let link = j["consent"][0]["consent_url"]
        .as_str()
        .expect("consent link")
        .to_string();
    let ev = dir.join("ev/apply.json");
    let run = w
        .run(&["evidence", "verify", "ev/apply.json", "--key", "keys/ev.pub", "--json"])
        .ok();
    let v = crate::json::judged(&crate::json::schema(), "evidence verify", &run);
    assert_eq!(v["ok"], true, "{v:#}");
    let names: Vec<&str> = v["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "declaration.toml",
            "dex-zoom.provider-before.json",
            "dex-zoom.provider-after.json",
            "dex-zoom.consumer-records.json"
        ]
    );
    let (ok, report) = judge(&ev, Some(&dir.join("keys/ev.pub")));
    assert!(ok, "{report:#}");
    assert_eq!(
        (report["statement"].as_str(), report["signature"].as_str()),
        (Some("valid"), Some("ok"))
    );
    for name in names {
        assert_eq!(
            report["subjects"][name]["sha256"].as_str(),
            Some(sha256sum(&dir.join("ev/apply.json.subjects").join(name)).as_str()),
            "{name}"
        );
    }
    assert_eq!(
        report["subjects"]["declaration.toml"]["sha256"].as_str(),
        Some(sha256sum(&dir.join("connapp.toml")).as_str())
    );
    // Without the key a signed file is not taken on trust; with another key it fails.
    w.run(&["evidence", "verify", "ev/apply.json"]).fails_with(2);
    w.run(&["evidence", "keygen", "keys/other"]).ok();
    w.run(&["evidence", "verify", "ev/apply.json", "--key", "keys/other.pub"])
        .fails_with(1);
    // One flipped byte in a subject, or in the signed payload, fails.
    let subject = dir.join("ev/apply.json.subjects/dex-zoom.provider-after.json");
    let original = std::fs::read(&subject).expect("subject");
    let mut flipped = original.clone();
    flipped[10] ^= 0x01;
    std::fs::write(&subject, &flipped).expect("flip");
    let e = w
        .run(&["evidence", "verify", "ev/apply.json", "--key", "keys/ev.pub"])
        .fails_with(1);
    assert!(
        e.stdout().contains("mismatch") && e.stderr().contains("dex-zoom.provider-after.json"),
        "{}",
        e.stderr()
    );
    std::fs::write(&subject, &original).expect("restore");
    let envelope = std::fs::read(&ev).expect("evidence");
    let mut env: Value = serde_json::from_slice(&envelope).expect("json");
    let payload = env["payload"].as_str().expect("payload").to_string();
    let mut bytes = payload.into_bytes();
    bytes[40] = if bytes[40] == b'A' { b'B' } else { b'A' };
    env["payload"] = json!(String::from_utf8(bytes).expect("ascii"));
    std::fs::write(&ev, env.to_string()).expect("flip");
    w.run(&["evidence", "verify", "ev/apply.json", "--key", "keys/ev.pub"])
        .fails_with(1);
    assert!(
        !judge(&ev, Some(&dir.join("keys/ev.pub"))).0,
        "the judge took a flipped payload"
    );
    std::fs::write(&ev, &envelope).expect("restore");

    // The change request: the person's text kept, connapp's plans after it,
    // the evidence, its documents and the verify report attached.
    let cr = |f: &str| {
        w.sn.with_state(|s| {
            s.rows("change_request")
                .into_iter()
                .find(|r| r["number"] == number)
                .and_then(|r| r.get(f).cloned())
                .unwrap_or_default()
        })
    };
    let plan = cr("implementation_plan");
    assert!(
        plan.starts_with("Agreed with the CAB on Monday.\n\nconnapp apply"),
        "{plan}"
    );
    assert!(cr("backout_plan").contains("--rollback"), "{}", cr("backout_plan"));
    assert!(cr("test_plan").contains("checks:"), "{}", cr("test_plan"));
    let attached = w.sn.with_state(|s| {
        s.attachments
            .iter()
            .map(|a| {
                (
                    a.meta["file_name"].clone(),
                    a.meta["table_name"].clone(),
                    a.bytes.clone(),
                )
            })
            .collect::<Vec<_>>()
    });
    let find = |n: &str| attached.iter().find(|a| a.0 == n).map(|a| a.2.clone());
    assert_eq!(
        find("apply.json"),
        Some(envelope.clone()),
        "{:?}",
        attached.iter().map(|a| &a.0).collect::<Vec<_>>()
    );
    assert!(find("apply.json.subjects.declaration.toml").is_some());
    assert!(find("dex-zoom.verify.json").is_some());
    assert!(attached.iter().all(|a| a.1 == "change_request"));

    // A rotation's evidence (unsigned) on the same change request.
    assert!(w.consent(&link).contains("OAuth token received"));
    w.ready_after_consent();
    let (_, old) = zoom_app(&w);
    let out = w
        .run(&rotate_args(&[
            "-vv",
            "--evidence",
            "ev/rotate.json",
            "--change",
            &number,
        ]))
        .ok()
        .stdout();
    assert!(
        out.contains("Evidence written") && out.contains(&format!("Change request {number}")),
        "{out}"
    );
    let v = w.run(&["evidence", "verify", "ev/rotate.json", "--json"]).ok().json();
    assert_eq!(
        (v["ok"].as_bool(), v["signed"].as_bool()),
        (Some(true), Some(false)),
        "{v:#}"
    );
    let (ok, report) = judge(&dir.join("ev/rotate.json"), None);
    assert!(ok && report["signed"] == false, "{report:#}");
    assert!(cr("implementation_plan").contains("connapp rotate client-secret dex-zoom"));
    assert!(cr("backout_plan").contains("--abort"));
    let (_, new) = zoom_app(&w);
    assert_ne!(old, new);

    // No Client Secret, old or new, in any output, evidence file, attachment,
    // change request or answer of the ServiceNow sandbox.
    let mut everything = w.outputs.borrow().clone();
    for entry in walk(&dir.join("ev")) {
        everything.push_str(&String::from_utf8_lossy(&std::fs::read(entry).expect("read")));
    }
    let attached =
        w.sn.with_state(|s| s.attachments.iter().map(|a| a.bytes.clone()).collect::<Vec<_>>());
    for a in attached {
        everything.push_str(&String::from_utf8_lossy(&a));
    }
    for table in ["change_request", "oauth_entity", "sys_attachment"] {
        let r = w
            .http
            .get(format!("{}/api/now/table/{table}", w.sn.base_url()))
            .basic_auth("admin", Some("admin-password"))
            .header("accept", "application/json")
            .send()
            .expect("table api");
        everything.push_str(&r.text().expect("text"));
    }
    let r = w
        .http
        .get(format!("{}/api/now/attachment", w.sn.base_url()))
        .basic_auth("admin", Some("admin-password"))
        .send()
        .expect("attachment api");
    everything.push_str(&r.text().expect("text"));
    for secret in [&old, &new] {
        assert!(!everything.contains(secret.as_str()), "a Client Secret leaked");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
