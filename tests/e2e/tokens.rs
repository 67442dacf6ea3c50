//! Tokens end to end: login (browser, paste-back, server-to-server, generic
//! OAuth 2.0), token, refresh, revoke, status — against the in-process Zoom
//! sandbox, with real processes, real locks and real crashes.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use connapp_sandbox::state::App as SbxApp;
use connapp_sandbox::{Sandbox as Zoom, Seed};
use serde_json::{Value, json};

use crate::support::{
    Chrome, LOOPBACK, PasteBack, Run, Sandbox, built, fetching_browser, no_redirects, sandbox_control,
};

pub(crate) const DEX: &str = "sbxDexClientId00000001";

pub(crate) struct World {
    pub(crate) zoom: Zoom,
    pub(crate) user: Sandbox,
    http: reqwest::blocking::Client,
}

fn seed(auto_approve: bool) -> Seed {
    let mut seed = Seed::default();
    for app in &mut seed.apps {
        if app.client_id == DEX {
            app.allow_list.push(LOOPBACK.into());
            app.client_secret = "CANARY-client-secret-5d2f".into();
        }
    }
    if auto_approve {
        seed.knobs.auto_approve = Some("admin".into());
    }
    seed
}

impl World {
    pub(crate) fn new(bin: &Path, auto_approve: bool) -> World {
        let zoom = Zoom::start(seed(auto_approve)).expect("sandbox");
        let mut user = Sandbox::new(bin);
        let decl = user.init();
        let base = zoom.base_url();
        let text = std::fs::read_to_string(&decl).expect("read").replace(
            "allow_list = [\"https://acme.service-now.com/oauth_redirect.do\"]",
            &format!("allow_list = [\"https://acme.service-now.com/oauth_redirect.do\", \"{LOOPBACK}\"]"),
        ) + &format!(
            "\n[apps.dex-zoom.oauth]\noauth_base = \"{base}\"\napi_base = \"{base}\"\nlogin_redirect = \"{LOOPBACK}\"\n"
        );
        std::fs::write(&decl, text).expect("write");
        let browser = fetching_browser(user.path());
        user.set_env("BROWSER", &browser.display().to_string());
        user.set_secret("client-id", DEX);
        let secret = zoom.app(DEX).expect("app").client_secret;
        user.set_secret("client-secret", secret);
        World {
            zoom,
            user,
            http: no_redirects(),
        }
    }

    fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        sandbox_control(&self.http, &self.zoom.base_url(), method, path, body)
    }

    pub(crate) fn set_knob(&self, k: &str, v: Value) {
        let mut knobs = self.control(reqwest::Method::GET, "/knobs", Value::Null);
        knobs[k] = v;
        self.control(reqwest::Method::PUT, "/knobs", knobs);
    }

    /// The world's declaration with a vault store whose `[store.settings]`
    /// are `settings` (TOML lines).
    pub(crate) fn on_vault(&self, settings: &str) -> String {
        std::fs::read_to_string(self.user.path().join("connapp.toml"))
            .expect("read")
            .replace(
                "[store]\nkind = \"file\"\n",
                &format!("[store]\nkind = \"vault\"\n[store.settings]\n{settings}"),
            )
    }

    /// Another host of this world running `bin`: its own data directory
    /// (locks, journals), the world's browser, `decl`, and `env` on top.
    pub(crate) fn host(&self, bin: &Path, decl: &str, env: &[(&str, &str)]) -> Sandbox {
        let mut h = Sandbox::new(bin);
        let browser = self
            .user
            .env
            .iter()
            .find(|(k, _)| k == "BROWSER")
            .map(|(_, v)| v.clone());
        h.set_env("BROWSER", &browser.expect("the world's browser"));
        for (k, v) in env {
            h.set_env(k, v);
        }
        h.declare(decl);
        h
    }

    /// Stores the DEX app's Client ID and Client Secret through host `h`
    /// (the hosts share the store).
    pub(crate) fn credentials_via(&self, h: &Sandbox) {
        h.set_secret("client-id", DEX);
        h.set_secret("client-secret", self.zoom.app(DEX).expect("app").client_secret);
    }

    pub(crate) fn counters(&self) -> Value {
        self.control(reqwest::Method::GET, "/counters", Value::Null)
    }

    pub(crate) fn login(&self) -> Run {
        self.user.run(&["login", "--timeout", "20"], None).ok()
    }
}

#[test]
fn login_token_status_refresh_revoke() {
    let w = World::new(&built().full, true);
    let out = w.login();
    assert!(out.stdout().contains("Logged in: dex-zoom"), "{}", out.stdout());
    // Whose grant: Zoom's answer to /users/me with the new token (the sandbox consents as its admin).
    assert!(
        out.stdout().contains("as admin@sandbox.example at Zoom"),
        "{}",
        out.stdout()
    );
    assert!(out.stderr().contains("one grant per user per app"), "{}", out.stderr());
    let token = w.user.run(&["token"], None).ok().stdout().trim().to_string();
    assert!(token.starts_with("sbx.at."));
    // The token works against the API.
    let me = w
        .http
        .get(format!("{}/v2/users/me", w.zoom.base_url()))
        .bearer_auth(&token)
        .send()
        .expect("api");
    assert!(me.status().is_success());
    let j = w.user.run(&["token", "--json"], None).ok().json();
    assert_eq!(j["access_token"], token.as_str());
    assert_eq!(j["source"], "stored");
    assert_eq!(j["scopes"].as_array().expect("scopes").len(), 6);
    let st = w.user.run(&["status", "--json"], None).ok().json();
    assert_eq!(st["apps"][0]["logged_in"], true);
    assert_eq!(st["apps"][0]["declared_scopes"], st["apps"][0]["granted_scopes"]);
    assert_eq!(st["apps"][0]["missing_scopes"], json!([]));
    assert_eq!(st["apps"][0]["user"], "admin@sandbox.example");
    let text = w.user.run(&["status"], None).ok().stdout();
    assert!(text.contains("granted by admin@sandbox.example"), "{text}");
    // -v shows connapp's own requests: method, host and path, status, time; no query, no token.
    let refreshed = w.user.run(&["-v", "refresh"], None).ok();
    let log = refreshed.stderr();
    let host = w.zoom.base_url().trim_start_matches("http://").to_string();
    assert!(log.contains(&format!("POST {host}/oauth/token -> 200")), "{log}");
    assert!(!log.contains("sbx.at.") && !log.contains("sbx.rt."), "{log}");
    assert_eq!(w.counters()["refreshes"]["1"], 1);
    let new_token = w.user.run(&["token"], None).ok().stdout().trim().to_string();
    assert_ne!(new_token, token);
    w.user.run(&["revoke"], None).fails_with(2);
    w.user.run(&["revoke", "--yes"], None).ok();
    let out = w.user.run(&["token"], None).fails_with(5);
    assert!(out.stderr().contains("connapp login"), "{}", out.stderr());
}

#[test]
fn status_shows_scopes_missing_from_the_grant() {
    let w = World::new(&built().full, true);
    // The app in Zoom lacks one declared scope when the admin consents.
    let mut app: SbxApp = w.zoom.app(DEX).expect("app");
    app.scopes.retain(|s| s != "dashboard:read:issues_zoomroom:admin");
    w.control(reqwest::Method::PUT, &format!("/apps/{DEX}"), json!(app));
    let out = w.login();
    assert!(out.stderr().contains("lacks declared scopes"), "{}", out.stderr());
    let st = w.user.run(&["status", "--json"], None).ok().json();
    assert_eq!(
        st["apps"][0]["missing_scopes"],
        json!(["dashboard:read:issues_zoomroom:admin"])
    );
    let text = w.user.run(&["status"], None).ok().stdout();
    assert!(text.contains("1 missing"), "{text}");
}

#[test]
fn no_browser_paste_back() {
    let w = World::new(&built().full, false);
    let login = PasteBack::start(&w.user, &["login", "--no-browser"], &w.zoom.base_url());
    let url = login.url.clone();
    // The human: opens the URL elsewhere, signs in as the admin, clicks Allow.
    let parsed = url::Url::parse(&url).expect("url");
    let mut form: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    form.push(("user".into(), "admin".into()));
    form.push(("decision".into(), "allow".into()));
    let r = w
        .http
        .post(format!("{}/oauth/authorize", w.zoom.base_url()))
        .form(&form)
        .send()
        .expect("consent");
    let landed = r.headers()["location"].to_str().expect("location").to_string();
    assert!(landed.starts_with("http://127.0.0.1:"), "{landed}");
    // ...and pastes the address of the page that did not load.
    let out = login.paste(&landed);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    w.user.run(&["token"], None).ok();
}

#[test]
fn thirty_two_concurrent_token_calls_refresh_exactly_once() {
    let w = World::new(&built().full, true);
    w.set_knob("access_ttl", json!(1));
    w.login();
    std::thread::sleep(Duration::from_millis(1500));
    w.set_knob("access_ttl", json!(3599));
    let before = w.counters();
    assert!(before["refreshes"].as_object().is_none_or(|m| m.is_empty()));
    let children: Vec<_> = (0..32)
        .map(|_| w.user.command(&["token", "--margin", "0"]).spawn().expect("spawn"))
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    let tokens: std::collections::BTreeSet<String> = outs
        .iter()
        .map(|o| {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        })
        .collect();
    assert_eq!(tokens.len(), 1, "every process prints the same, refreshed token");
    let c = w.counters();
    assert_eq!(c["refreshes"]["1"], 1, "exactly one refresh: {c}");
    assert_eq!(c["token_requests"]["refresh_token"], 1, "{c}");
    // And the printed token is valid.
    let t = tokens.into_iter().next().expect("token");
    let me = w
        .http
        .get(format!("{}/v2/users/me", w.zoom.base_url()))
        .bearer_auth(&t)
        .send()
        .expect("api");
    assert!(me.status().is_success());
}

#[test]
fn killed_refreshes_never_need_a_new_consent() {
    let b = built();
    let w = World::new(&b.fault, true);
    w.login();
    for point in [
        "before-request",
        "after-response",
        "before-store-write",
        "store-write",
        "after-store-write",
    ] {
        let mut c = w.user.command_of(&b.fault, &["refresh"]);
        c.env("CONNAPP_FAULT", point)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let status = c.status().expect("run");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "{point}: the fault point was not reached ({status})"
        );
        // The next run recovers without a new consent.
        let out = w.user.run(&["token", "--json"], None).ok();
        let j = out.json();
        let me = w
            .http
            .get(format!("{}/v2/users/me", w.zoom.base_url()))
            .bearer_auth(j["access_token"].as_str().expect("token"))
            .send()
            .expect("api");
        assert!(me.status().is_success(), "{point}: the recovered token does not work");
        w.user.run(&["refresh"], None).ok();
    }
    assert_eq!(w.counters()["consents"], 1, "no new consent was needed");
}

/// Two declarations on two stores, each with an app named `dex-zoom`, share
/// the data directory. A refresh of the first is killed after its journal
/// became durable (Zoom has rotated the refresh token; only the journal holds
/// the new one); the second refreshes before the first runs again. The first
/// must still recover its grant from its journal.
#[test]
fn a_journal_survives_another_declarations_app_of_the_same_name() {
    let b = built();
    let w = World::new(&b.fault, true);
    w.login();
    // Declaration B: the same app name, its own file store, another Zoom admin's grant.
    let other = w.user.path().join("b.toml");
    let text = std::fs::read_to_string(w.user.path().join("connapp.toml")).expect("read");
    let store_b = w.user.path().join("store-b");
    std::fs::write(
        &other,
        text.replacen(
            "kind = \"file\"",
            &format!("kind = \"file\"\n[store.settings]\npath = \"{}\"", store_b.display()),
            1,
        ),
    )
    .expect("write b.toml");
    let with_b = |args: &[&str]| {
        let mut all = vec!["--file", "b.toml"];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run_b = |args: &[&str], input: Option<&[u8]>| {
        let all = with_b(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        w.user.run(&refs, input)
    };
    run_b(&["secrets", "set", "client-id", "--from-stdin"], Some(DEX.as_bytes())).ok();
    let secret = w.zoom.app(DEX).expect("app").client_secret;
    run_b(
        &["secrets", "set", "client-secret", "--from-stdin"],
        Some(secret.as_bytes()),
    )
    .ok();
    run_b(&["login", "--user-hint", "owner", "--timeout", "20"], None).ok();

    // A's refresh dies with the rotated token only in its journal.
    let mut c = w.user.command_of(&b.fault, &["refresh"]);
    c.env("CONNAPP_FAULT", "before-store-write")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let status = c.status().expect("run");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "the fault point was not reached ({status})");
    // B refreshes its own app of the same name first.
    run_b(&["refresh"], None).ok();
    // A recovers from its journal: no new consent, and its grant still works.
    let j = w.user.run(&["refresh", "--json"], None).ok().json();
    assert_eq!(j["apps"][0]["ok"], true, "{j}");
    assert_eq!(w.counters()["consents"], 2, "one consent each, none again");
}

#[test]
fn a_refresh_token_lost_elsewhere_is_explained() {
    let w = World::new(&built().full, true);
    w.login();
    // Someone else's consent with the same user ends this grant (ServiceNow's "Get OAuth Token").
    let grants = w.control(reqwest::Method::GET, "/grants", Value::Null);
    let id = grants[0]["id"].as_u64().expect("id");
    w.control(reqwest::Method::POST, &format!("/grants/{id}/revoke"), Value::Null);
    let out = w.user.run(&["refresh"], None).fails_with(5);
    let err = out.stderr();
    assert!(
        err.contains("rotated") && err.contains("consented again") && err.contains("connapp login"),
        "{err}"
    );
    // Who obtained the refused tokens (this host, the login's process).
    assert!(err.contains("were obtained by") && err.contains(" pid "), "{err}");
    assert!(!err.contains("HTTP/1.1") && !err.contains("sbx.rt."), "{err}");
    // connapp remembers: status shows the grant lost and fails (as `gh auth
    // status` does), and `token` never prints the dead token, although the
    // stored access token has not expired by the clock.
    let out = w.user.run(&["status"], None).fails_with(5);
    let text = out.stdout();
    assert!(
        text.contains("LOST") && text.contains("-> connapp login dex-zoom"),
        "{text}"
    );
    assert!(
        text.contains("invalid_grant") && text.contains("1 app(s): 0 usable, 1 not"),
        "{text}"
    );
    let st = w.user.run(&["status", "--json"], None).fails_with(5).json();
    assert_eq!(st["apps"][0]["health"], "lost");
    assert_eq!(st["apps"][0]["usable"], false);
    assert_eq!(st["apps"][0]["fix"], "connapp login dex-zoom");
    assert!(st["apps"][0]["lost_at"].as_u64().is_some(), "{st}");
    let out = w.user.run(&["token"], None).fails_with(5);
    assert_eq!(out.stdout(), "", "a dead token was printed");
    assert!(
        out.stderr().contains("for good") && out.stderr().contains("connapp login dex-zoom"),
        "{}",
        out.stderr()
    );
    let refreshes = w.counters()["refreshes"].clone();
    w.user.run(&["token"], None).fails_with(5);
    assert_eq!(w.counters()["refreshes"], refreshes, "a lost grant is not asked again");
    // A new consent makes it usable again.
    w.login();
    let st = w.user.run(&["status", "--json"], None).ok().json();
    assert_eq!(st["apps"][0]["health"], "ok");
    assert_eq!(st["apps"][0]["lost_at"], Value::Null);
    assert!(w.user.run(&["token"], None).ok().stdout().starts_with("sbx.at."));
}

/// A user with a Zoom Server-to-Server app on `zoom`'s account, its
/// credentials stored.
fn s2s_user(zoom: &Zoom) -> Sandbox {
    let s = Sandbox::new(&built().full);
    let base = zoom.base_url();
    let account = zoom.account_id();
    s.declare(&format!(
        "version = 1\n[store]\nkind = \"file\"\n[apps.s2s]\ndisplay_name = \"connapp S2S\"\nplatform = \"zoom\"\nusage = \"admin-managed\"\npresets = [\"servicenow-dex-zoom\"]\n[apps.s2s.oauth]\ngrant = \"account_credentials\"\naccount_id = \"{account}\"\noauth_base = \"{base}\"\napi_base = \"{base}\"\n"
    ));
    let app = zoom.app("sbxS2SClientId00000002").expect("app");
    s.set_secret("client-id", app.client_id);
    s.set_secret("client-secret", app.client_secret);
    s
}

#[test]
fn server_to_server_apps_get_tokens_without_a_browser() {
    let zoom = Zoom::start(Seed::default()).expect("sandbox");
    let s = s2s_user(&zoom);
    let j = s.run(&["login", "--json"], None).ok().json();
    assert_eq!(j["grant_type"], "account_credentials");
    assert_eq!(j["refresh_token"], false);
    s.run(&["token"], None).ok();
    let st = s.run(&["status", "--json"], None).ok().json();
    assert_eq!(st["apps"][0]["refresh_token"], false);
}

/// A server-to-server app needs no refresh token: `connapp token` mints a
/// new one whenever the stored one expires, once per expiry however many
/// callers ask at the same moment, and never says "consent again".
#[test]
fn server_to_server_tokens_are_minted_again_at_each_expiry_once() {
    let zoom = Zoom::start(Seed::default()).expect("sandbox");
    let s = s2s_user(&zoom);
    let base = zoom.base_url();
    let http = no_redirects();
    let control = |m: reqwest::Method, p: &str, b: Value| sandbox_control(&http, &base, m, p, b);
    let set_ttl = |ttl: u64| {
        let mut knobs = control(reqwest::Method::GET, "/knobs", Value::Null);
        knobs["access_ttl"] = json!(ttl);
        control(reqwest::Method::PUT, "/knobs", knobs);
    };
    // No login needed: the first `token` mints.
    let first = s.run(&["token", "--json"], None).ok().json();
    assert_eq!(first["source"], "minted", "{first}");
    let mut seen = std::collections::BTreeSet::new();
    seen.insert(first["access_token"].as_str().expect("token").to_string());
    for round in 1..=3u64 {
        // The next token lives one second; once it is gone, 32 callers at once.
        set_ttl(1);
        let short = s.run(&["token", "--margin", "100000", "--json"], None).ok().json();
        assert_eq!(short["source"], "minted", "{short}");
        std::thread::sleep(Duration::from_millis(1500));
        set_ttl(3599);
        let before = control(reqwest::Method::GET, "/counters", Value::Null)["token_requests"]["account_credentials"]
            .as_u64()
            .unwrap_or(0);
        let children: Vec<_> = (0..32)
            .map(|_| s.command(&["token", "--margin", "0"]).spawn().expect("spawn"))
            .collect();
        let tokens: std::collections::BTreeSet<String> = children
            .into_iter()
            .map(|c| {
                let o = c.wait_with_output().expect("wait");
                assert!(
                    o.status.success(),
                    "round {round}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                String::from_utf8_lossy(&o.stdout).trim().to_string()
            })
            .collect();
        assert_eq!(tokens.len(), 1, "round {round}: every caller prints the same new token");
        let after = control(reqwest::Method::GET, "/counters", Value::Null)["token_requests"]["account_credentials"]
            .as_u64()
            .unwrap_or(0);
        assert_eq!(after - before, 1, "round {round}: exactly one mint for 32 callers");
        let t = tokens.into_iter().next().expect("token");
        assert!(seen.insert(t.clone()), "round {round}: a new token");
        let me = http
            .get(format!("{base}/v2/users/me"))
            .bearer_auth(&t)
            .send()
            .expect("api");
        assert!(me.status().is_success(), "round {round}: the minted token works");
    }
    // Inside the refresh margin it is renewed, not called expired.
    let j = s.run(&["token", "--margin", "100000", "--json"], None).ok().json();
    assert_eq!(j["source"], "minted");
}

#[test]
fn the_generic_platform_works_against_a_plain_oauth_server() {
    let zoom = Zoom::start(seed(true)).expect("sandbox");
    let mut s = Sandbox::new(&built().full);
    let base = zoom.base_url();
    s.declare(&format!(
        "version = 1\n[store]\nkind = \"file\"\n[apps.plain]\ndisplay_name = \"Plain OAuth\"\nplatform = \"generic\"\nredirect_url = \"{LOOPBACK}\"\nallow_list = [\"{LOOPBACK}\"]\nscopes = [\"user:read:user:admin\"]\n[apps.plain.oauth]\nauthorize_url = \"{base}/oauth/authorize\"\ntoken_url = \"{base}/oauth/token\"\nrevoke_url = \"{base}/oauth/revoke\"\nclient_auth = \"body\"\nlogin_redirect = \"{LOOPBACK}\"\n"
    ));
    // The generic platform sends `scope`; comma-free single scope is fine for the sandbox.
    let browser = fetching_browser(s.path());
    s.set_env("BROWSER", &browser.display().to_string());
    let app = zoom.app(DEX).expect("app");
    s.set_secret("client-id", app.client_id);
    s.set_secret("client-secret", app.client_secret);
    s.run(&["login", "--timeout", "20"], None).ok();
    let j = s.run(&["token", "--json"], None).ok().json();
    assert_eq!(j["scopes"], json!(["user:read:user:admin"]));
    s.run(&["refresh"], None).ok();
    s.run(&["revoke", "--yes"], None).ok();
}

#[test]
fn secrets_and_tokens_never_reach_any_output_even_at_vvv() {
    let w = World::new(&built().full, true);
    let canary_secret = "CANARY-client-secret-5d2f";
    assert_eq!(w.zoom.app(DEX).expect("app").client_secret, canary_secret);
    let mut outputs = Vec::new();
    let mut run = |args: &[&str], input: Option<&[u8]>| {
        let mut full = vec!["-vvv"];
        full.extend_from_slice(args);
        let r = w.user.run(&full, input);
        outputs.push((args.join(" "), r.stdout(), r.stderr()));
        r
    };
    run(
        &["secrets", "set", "client-secret", "--from-stdin"],
        Some(canary_secret.as_bytes()),
    )
    .ok();
    run(&["secrets", "list"], None).ok();
    run(&["check"], None).ok();
    run(&["login", "--timeout", "20"], None).ok();
    run(&["status"], None).ok();
    run(&["status", "--json"], None).ok();
    run(&["refresh"], None).ok();
    run(&["refresh", "--all", "--json"], None).ok();
    // `token` prints the access token by design (stdout only); its log must not.
    let t = run(&["token"], None).ok();
    assert!(t.stdout().starts_with("sbx.at."));
    run(&["revoke", "--yes"], None).ok();
    run(&["refresh"], None).fails_with(5);
    let mut logged = 0;
    for (cmd, out, err) in &outputs {
        let out = if cmd == "token" { &String::new() } else { out };
        for text in [out, err] {
            assert!(
                !text.contains(canary_secret),
                "`{cmd}` printed the client secret:\n{text}"
            );
            assert!(!text.contains("sbx.at."), "`{cmd}` printed an access token:\n{text}");
            assert!(!text.contains("sbx.rt."), "`{cmd}` printed a refresh token:\n{text}");
        }
        logged += err
            .lines()
            .filter(|l| l.contains("DEBUG") || l.contains("TRACE"))
            .count();
    }
    assert!(logged > 5, "-vvv produced no debug log; the test would prove nothing");
}

#[test]
#[ignore = "needs Chromium and chromedriver; `cargo xtask test` installs them and runs this"]
fn login_with_headless_chromium_clicking_allow() {
    let mut w = World::new(&built().full, false);
    // The "browser" connapp opens only hands the URL to the test, which drives Chromium.
    let url_file = w.user.path().join("authorize-url");
    let script = w.user.path().join("hand-over.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > {}\n", url_file.display()),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    w.user.set_env("BROWSER", &script.display().to_string());
    let login = w
        .user
        .command(&["login", "--timeout", "60", "--json"])
        .spawn()
        .expect("spawn login");
    let mut url = String::new();
    for _ in 0..200 {
        if let Ok(u) = std::fs::read_to_string(&url_file)
            && !u.is_empty()
        {
            url = u;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        url.starts_with(&w.zoom.base_url()),
        "no authorize URL handed over: {url:?}"
    );
    let chrome = Chrome::start();
    chrome.cmd(reqwest::Method::POST, "/url", json!({"url": url}));
    chrome.click("#user option[value='admin']");
    chrome.click("#allow");
    let out = login.wait_with_output().expect("login");
    drop(chrome);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(j["refresh_token"], true);
    // The token landed in the store; `token` prints it; status compares scopes.
    let t = w.user.run(&["token"], None).ok().stdout();
    assert!(t.starts_with("sbx.at."));
    let st = w.user.run(&["status", "--json"], None).ok().json();
    assert_eq!(st["apps"][0]["declared_scopes"].as_array().expect("d").len(), 6);
    assert_eq!(st["apps"][0]["missing_scopes"], json!([]));
}

/// login → token → refresh → status on another store, at -vvv, with a canary
/// client secret: nothing secret in any output.
fn journey_on_store(store_toml: &str, extra_env: &[(&str, String)]) {
    let w = World::new(&built().full, true);
    let mut user = Sandbox::new(&built().full);
    user.env = w.user.env.clone();
    for (k, v) in extra_env {
        user.set_env(k, v);
    }
    let decl = w.user.path().join("connapp.toml");
    let text = std::fs::read_to_string(&decl)
        .expect("read")
        .replace("[store]\nkind = \"file\"\n", store_toml);
    std::fs::write(user.path().join("connapp.toml"), text).expect("write");
    std::fs::copy(w.user.path().join("browser.sh"), user.path().join("browser.sh")).expect("copy");
    user.set_env("BROWSER", &user.path().join("browser.sh").display().to_string());
    let canary = w.zoom.app(DEX).expect("app").client_secret;
    let mut outputs = Vec::new();
    for (args, input) in [
        (vec!["-vvv", "check"], None),
        (
            vec!["-vvv", "secrets", "set", "client-id", "--from-stdin"],
            Some(DEX.as_bytes()),
        ),
        (
            vec!["-vvv", "secrets", "set", "client-secret", "--from-stdin"],
            Some(canary.as_bytes()),
        ),
        (vec!["-vvv", "secrets", "list"], None),
        (vec!["-vvv", "login", "--timeout", "20"], None),
        (vec!["-vvv", "refresh"], None),
        (vec!["-vvv", "status", "--json"], None),
    ] {
        let r = user.run(&args, input).ok();
        outputs.push((args.join(" "), r.stdout(), r.stderr()));
    }
    let t = user.run(&["-vvv", "token"], None).ok();
    assert!(t.stdout().starts_with("sbx.at."));
    outputs.push(("token".into(), String::new(), t.stderr()));
    for (cmd, out, err) in &outputs {
        for text in [out, err] {
            assert!(!text.contains(&canary), "`{cmd}` printed the client secret:\n{text}");
            assert!(
                !text.contains("sbx.rt.") && !text.contains("sbx.at."),
                "`{cmd}` printed a token:\n{text}"
            );
        }
    }
    assert_eq!(w.counters()["refreshes"]["1"], 1);
}

#[test]
#[ignore = "needs OpenBao; `cargo xtask test` starts it and runs this"]
fn journey_on_the_vault_store() {
    let addr = std::env::var("CONNAPP_TEST_BAO_ADDR").expect("CONNAPP_TEST_BAO_ADDR: run through `cargo xtask test`");
    let token = std::env::var("CONNAPP_TEST_BAO_TOKEN").expect("CONNAPP_TEST_BAO_TOKEN");
    let prefix = format!("connapp-e2e/journey-{}", std::process::id());
    journey_on_store(
        &format!("[store]\nkind = \"vault\"\n[store.settings]\nprefix = \"{prefix}\"\n"),
        &[("VAULT_ADDR", addr), ("VAULT_TOKEN", token)],
    );
}

/// Several hosts (each its own data directory: its own lock files and
/// journals) share one OpenBao record of the same grant, and every access
/// token expires while all of them ask for it at the same instant: exactly
/// one refresh per expiry reaches Zoom, every host prints a working token,
/// and none says the grant is gone.
#[test]
#[ignore = "needs OpenBao; `cargo xtask test` starts it and runs this"]
fn hosts_sharing_one_vault_record_refresh_once_per_expiry() {
    const HOSTS: usize = 3;
    const EXPIRIES: u64 = 12;
    const TTL: u64 = 2;
    let addr = std::env::var("CONNAPP_TEST_BAO_ADDR").expect("CONNAPP_TEST_BAO_ADDR: run through `cargo xtask test`");
    let token = std::env::var("CONNAPP_TEST_BAO_TOKEN").expect("CONNAPP_TEST_BAO_TOKEN");
    let w = World::new(&built().full, true);
    let decl = w.on_vault(&format!("prefix = \"connapp-e2e/hosts-{}\"\n", std::process::id()));
    // Each its own data directory (locks, journals): only the store is shared.
    let hosts: Vec<Sandbox> = (0..HOSTS)
        .map(|_| w.host(&built().full, &decl, &[("VAULT_ADDR", &addr), ("VAULT_TOKEN", &token)]))
        .collect();
    w.credentials_via(&hosts[0]);
    w.set_knob("access_ttl", json!(TTL));
    hosts[0].run(&["login", "--timeout", "20"], None).ok();
    // Zoom's answer takes a while to come back: every host reads the expired
    // record before the first refresh is published.
    w.set_knob("token_latency_ms", json!(300));
    let before = w.counters()["token_requests"]["refresh_token"].as_u64().unwrap_or(0);
    let mut lost = Vec::new();
    for expiry in 0..EXPIRIES {
        // Wait until the stored token has expired (the sandbox's TTL), then race.
        std::thread::sleep(Duration::from_millis(TTL * 1000 + 150));
        let children: Vec<_> = hosts
            .iter()
            .map(|h| h.command(&["token", "--margin", "0"]).spawn().expect("spawn token"))
            .collect();
        for (i, c) in children.into_iter().enumerate() {
            let out = c.wait_with_output().expect("token");
            if !out.status.success() {
                lost.push(format!(
                    "expiry {expiry}, host {i}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    let refreshes = w.counters()["token_requests"]["refresh_token"].as_u64().unwrap_or(0) - before;
    eprintln!(
        "{HOSTS} hosts x {EXPIRIES} expiries: {refreshes} refresh requests, {} failed runs",
        lost.len()
    );
    assert!(lost.is_empty(), "{} run(s) failed:\n{}", lost.len(), lost.join("\n"));
    assert_eq!(refreshes, EXPIRIES, "exactly one refresh per expiry");
}

/// The lease sequence's faults on a real OpenBao, with the fault-injection
/// build (its lease lives 3 s instead of 60) and forced refreshes: a holder SIGKILLed after Zoom
/// answered and before it published leaves the rotated tokens only in its
/// journal — the next host waits the lease out, is refused, and says to run
/// connapp on that host (exit 1, never "consent again"); that host replays
/// its journal and both serve the grant again. A holder SIGKILLed after it
/// published but before it gave the lease back (a lost release) costs the
/// next host nothing: it serves the published record without a request, and
/// a forced refresh there waits the lease out and then refreshes.
#[test]
#[ignore = "needs OpenBao; `cargo xtask test` starts it and runs this"]
fn a_lease_holder_killed_mid_turn_costs_no_grant() {
    use std::os::unix::process::ExitStatusExt;
    let addr = std::env::var("CONNAPP_TEST_BAO_ADDR").expect("CONNAPP_TEST_BAO_ADDR: run through `cargo xtask test`");
    let token = std::env::var("CONNAPP_TEST_BAO_TOKEN").expect("CONNAPP_TEST_BAO_TOKEN");
    let b = built();
    let w = World::new(&b.fault, true);
    let decl = w.on_vault(&format!(
        "prefix = \"connapp-e2e/killed-holder-{}\"\n",
        std::process::id()
    ));
    let env = [
        ("VAULT_ADDR", addr.as_str()),
        ("VAULT_TOKEN", token.as_str()),
        ("CONNAPP_FAULT_LEASE_TTL_SECS", "3"),
    ];
    let (a, b_host) = (w.host(&b.fault, &decl, &env), w.host(&b.fault, &decl, &env));
    w.credentials_via(&a);
    a.run(&["login", "--timeout", "20"], None).ok();
    let refreshes = || w.counters()["token_requests"]["refresh_token"].as_u64().unwrap_or(0);
    // A forced refresh on host A, SIGKILLed at `point` while it holds the lease.
    let killed_at = |point: &str| {
        let out = a
            .command(&["refresh"])
            .env("CONNAPP_FAULT", point)
            .output()
            .expect("run");
        assert_eq!(out.status.signal(), Some(9), "killed at {point}");
    };

    // 1. Killed after Zoom rotated the tokens, before publishing them.
    let before = refreshes();
    killed_at("after-response");
    let r = b_host.run(&["refresh"], None).fails_with(1);
    assert!(
        r.stderr().contains("journal") && r.stderr().contains("pid") && !r.stderr().contains("connapp login"),
        "names the host that holds the new tokens, and advises no consent:\n{}",
        r.stderr()
    );
    assert_eq!(
        refreshes() - before,
        2,
        "A's request, and B's refused one once A's lease had expired"
    );
    let from_journal = a.run(&["token"], None).ok().stdout();
    let served = b_host.run(&["token"], None).ok().stdout();
    assert_eq!(served, from_journal, "the replayed tokens are published");
    assert_eq!(refreshes() - before, 2, "the replay needed no request");

    // 2. Killed after publishing, before giving the lease back.
    let before = refreshes();
    killed_at("after-store-write");
    let published = b_host.run(&["token"], None).ok().stdout();
    assert!(published.starts_with("sbx.at.") && published != served);
    assert_eq!(
        refreshes() - before,
        1,
        "the published record is served, not refreshed again"
    );
    // A forced refresh on B waits the lease out, then works.
    b_host.run(&["refresh"], None).ok();
    a.run(&["refresh"], None).ok();
    assert_eq!(refreshes() - before, 3);
}

#[test]
#[ignore = "needs a Secret Service; `cargo xtask test` runs this inside its private D-Bus session"]
fn journey_on_the_keyring_store() {
    assert_eq!(
        std::env::var("CONNAPP_TEST_KEYRING").as_deref(),
        Ok("1"),
        "run through `cargo xtask test`"
    );
    journey_on_store("[store]\nkind = \"keyring\"\n", &[]);
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// SIGKILL at random moments inside refreshing runs (not only at named
/// fault points; the fault-injection build lingers 8 ms at each of them so
/// random kills also land in the short phases after the response):
/// whenever the new token had reached connapp's disk (the build marks the
/// moment its sealed journal is durable),
/// the next run recovers it and the grant lives on; no journal file
/// outlives the next run; and no token is ever in plaintext under the data
/// directory — a watcher greps every file there throughout.
#[test]
fn kill_nine_at_random_points_never_loses_a_durable_token() {
    use std::os::unix::process::ExitStatusExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let b = built();
    let w = World::new(&b.fault, true);
    w.login();
    let data = w.user.path().join("data");
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, data) = (stop.clone(), data.clone());
        std::thread::spawn(move || {
            let mut hits = std::collections::BTreeSet::new();
            let mut scans = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut files = Vec::new();
                files_under(&data, &mut files);
                for f in files {
                    if let Ok(bytes) = std::fs::read(&f) {
                        let text = String::from_utf8_lossy(&bytes);
                        if text.contains("sbx.at.") || text.contains("sbx.rt.") {
                            hits.insert(f.display().to_string());
                        }
                    }
                }
                scans += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            (hits, scans)
        })
    };
    let marker = w.user.path().join("durable.txt");
    let run = |kill_after: Option<Duration>| -> (std::process::ExitStatus, bool, Duration) {
        let _ = std::fs::remove_file(&marker);
        let start = std::time::SystemTime::now();
        let mut c = w
            .user
            .command_of(&b.fault, &["token", "--margin", "100000"])
            .env("CONNAPP_TRACE_DURABLE", &marker)
            .env("CONNAPP_FAULT_SLOW", "8")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        if let Some(d) = kill_after {
            std::thread::sleep(d);
            let _ = c.kill();
        }
        let status = c.wait().expect("wait");
        // Without a kill: when the journal became durable, from the marker's mtime.
        let at = std::fs::metadata(&marker)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(start).ok())
            .unwrap_or_default();
        (status, marker.exists(), at)
    };
    // When, in a refreshing run here, the journal becomes durable: half the
    // kills land anywhere in the run, half around that moment (the refresh
    // is the last few milliseconds of a run that mostly starts up).
    let mut at: Vec<Duration> = (0..3).map(|_| run(None).2).collect();
    at.sort();
    let durable_at = at[1].as_micros() as u64;
    let span = durable_at * 12 / 10;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!(
        "kill test: seed {seed}, the journal is durable about {} ms into a run",
        durable_at / 1000
    );
    let (mut landed, mut after_durable, mut in_flight_losses) = (0, 0, 0);
    // Until enough kills have landed after the journal was durable (the
    // few milliseconds of the store write), 600 runs at most.
    let mut i = 0;
    while i < 600 && (i < 150 || after_durable < 8) {
        i += 1;
        // xorshift64
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(if i % 2 == 0 {
            seed % span.max(1)
        } else {
            // Around the typical durable moment (±40%; it varies from run to run).
            durable_at * 6 / 10 + seed % (durable_at * 8 / 10).max(1)
        });
        let (status, durable, _) = run(Some(delay));
        if std::env::var_os("CONNAPP_KILL_TEST_DEBUG").is_some() {
            eprintln!("kill {i}: after {delay:?}: {status}, durable {durable}");
        }
        if status.signal() == Some(9) {
            landed += 1;
            if durable {
                after_durable += 1;
            }
        }
        // The next run recovers, and proves the grant alive by refreshing it.
        let r = w.user.run(&["token", "--margin", "100000", "--json"], None);
        match r.code() {
            Some(0) => {}
            Some(5) if !durable => {
                // Killed with the rotated token still in flight (not yet on
                // disk): the one window no client can close.
                in_flight_losses += 1;
                w.login();
            }
            other => panic!(
                "kill {i} after {delay:?} (durable: {durable}): the next run failed with {other:?}: {}",
                r.stderr()
            ),
        }
        let mut left = Vec::new();
        files_under(&data.join("journal"), &mut left);
        assert!(
            left.is_empty(),
            "kill {i}: journal files survived the next run: {left:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let (hits, scans) = watcher.join().expect("watcher");
    eprintln!(
        "kill test: {landed} of {i} kills landed, {after_durable} after the journal was durable (all recovered), {in_flight_losses} in the in-flight window; {scans} scans of the data directory"
    );
    assert!(hits.is_empty(), "tokens in plaintext on disk: {hits:?}");
    assert!(landed >= 50, "too few kills landed inside a run ({landed})");
    assert!(
        after_durable >= 3,
        "too few kills after the journal was durable ({after_durable})"
    );
    assert!(scans > 100, "the watcher barely ran ({scans} scans)");
}

#[test]
fn refresh_all_runs_apps_side_by_side_and_one_failure_stops_no_other() {
    let names = ["a1", "a2", "a3", "a4", "a5", "a6"];
    // One Zoom app per declared app: a consent replaces the same client's earlier grant.
    let mut seeded = seed(true);
    let dex = seeded.apps.iter().find(|a| a.client_id == DEX).expect("dex").clone();
    for n in names {
        let mut app = dex.clone();
        app.client_id = format!("{DEX}{n}");
        app.app_id = format!("{}{n}", dex.app_id);
        app.client_secret = format!("secret-of-{n}");
        seeded.apps.push(app);
    }
    let zoom = Zoom::start(seeded).expect("sandbox");
    let mut s = Sandbox::new(&built().full);
    let base = zoom.base_url();
    let mut decl = String::from("version = 1\n[store]\nkind = \"file\"\n");
    for n in names {
        decl.push_str(&format!(
            "[apps.{n}]\ndisplay_name = \"Plain OAuth {n}\"\nplatform = \"generic\"\nredirect_url = \"{LOOPBACK}\"\nallow_list = [\"{LOOPBACK}\"]\nscopes = [\"user:read:user:admin\"]\n[apps.{n}.oauth]\nauthorize_url = \"{base}/oauth/authorize\"\ntoken_url = \"{base}/oauth/token\"\nrevoke_url = \"{base}/oauth/revoke\"\nclient_auth = \"body\"\nlogin_redirect = \"{LOOPBACK}\"\n"
        ));
    }
    s.declare(&decl);
    let browser = fetching_browser(s.path());
    s.set_env("BROWSER", &browser.display().to_string());
    for n in names {
        let app = zoom.app(&format!("{DEX}{n}")).expect("app");
        s.set_secret_of(n, "client-id", &app.client_id);
        s.set_secret_of(n, "client-secret", &app.client_secret);
        // a4 never logs in: its refresh fails, alone.
        if n != "a4" {
            s.run(&["login", n, "--timeout", "20"], None).ok();
        }
    }
    let out = s.run(&["refresh", "--all", "--jobs", "3"], None).fails_with(5);
    let text = out.stdout();
    assert!(text.contains("5 of 6 app(s) refreshed, 1 failed, 0 skipped."), "{text}");
    assert!(text.contains("  1 app(s): ") && text.contains("\n    a4\n"), "{text}");
    for n in ["a1", "a2", "a3", "a5", "a6"] {
        assert!(text.contains(&format!("{n}: refreshed, expires in")), "{n}: {text}");
    }
    assert!(out.stderr().contains("1 of 6 app(s) failed"), "{}", out.stderr());
    let j = s
        .run(&["refresh", "--all", "--jobs", "6", "--json"], None)
        .fails_with(5)
        .json();
    let apps = j["apps"].as_array().expect("apps");
    assert_eq!(apps.len(), 6);
    let names_in_order: Vec<&str> = apps.iter().filter_map(|a| a["app"].as_str()).collect();
    assert_eq!(names_in_order, names, "results in the declaration's order");
    for a in apps {
        let failed = a["app"] == "a4";
        assert_eq!(a["ok"], !failed, "{a}");
        assert_eq!(a["expires_at"].is_u64(), !failed, "{a}");
    }
    // Each refreshed token is the new one: the sandbox accepts it.
    s.run(&["token", "a5"], None).ok();
}

#[test]
fn token_select_prints_a_token_for_each_selected_row_and_names_the_app_without_one() {
    let rows = ["c1", "c2", "c3"];
    // One Zoom app per row: a consent replaces the same client's earlier grant.
    let mut seeded = seed(true);
    let dex = seeded.apps.iter().find(|a| a.client_id == DEX).expect("dex").clone();
    for r in rows {
        let mut app = dex.clone();
        app.client_id = format!("{DEX}{r}");
        app.app_id = format!("{}{r}", dex.app_id);
        app.client_secret = format!("secret-of-{r}");
        seeded.apps.push(app);
    }
    let zoom = Zoom::start(seeded).expect("sandbox");
    let mut s = Sandbox::new(&built().full);
    let base = zoom.base_url();
    let mut decl = format!(
        "version = 1\n[store]\nkind = \"file\"\n[fleet]\n[fleet.apps.\"plain-{{customer}}\"]\ndisplay_name = \"Plain OAuth\"\nplatform = \"generic\"\nredirect_url = \"{LOOPBACK}\"\nallow_list = [\"{LOOPBACK}\"]\nscopes = [\"user:read:user:admin\"]\n[fleet.apps.\"plain-{{customer}}\".oauth]\nauthorize_url = \"{base}/oauth/authorize\"\ntoken_url = \"{base}/oauth/token\"\nclient_auth = \"body\"\nlogin_redirect = \"{LOOPBACK}\"\n"
    );
    for r in rows {
        decl.push_str(&format!("[[fleet.rows]]\ncustomer = \"{r}\"\n"));
    }
    s.declare(&decl);
    let browser = fetching_browser(s.path());
    s.set_env("BROWSER", &browser.display().to_string());
    for r in rows {
        let app = zoom.app(&format!("{DEX}{r}")).expect("app");
        let name = format!("plain-{r}");
        s.set_secret_of(&name, "client-id", &app.client_id);
        s.set_secret_of(&name, "client-secret", &app.client_secret);
        // c2 never logs in.
        if r != "c2" {
            s.run(&["login", &name, "--timeout", "20"], None).ok();
        }
    }
    let out = s.run(&["token", "--select", "customer=c*"], None).fails_with(5);
    let printed = out.stdout();
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed}");
    assert!(
        lines[0].starts_with("plain-c1\tsbx.at.") && lines[1].starts_with("plain-c3\tsbx.at."),
        "{lines:?}"
    );
    assert!(
        out.stderr().contains("plain-c2: ") && out.stderr().contains("1 of 3 app(s) failed"),
        "{}",
        out.stderr()
    );
    let j = crate::json::judged(
        &crate::json::schema(),
        "token",
        &s.run(&["token", "--select", "customer=c1", "--json"], None).ok(),
    );
    assert_eq!(j["apps"].as_array().map(Vec::len), Some(1), "{j:#}");
    assert!(
        j["apps"][0]["access_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("sbx.at."))
    );
    assert_eq!(j["apps"][0]["error"], Value::Null);
}
