//! `init`, `check`, completions, man page, usage errors.

use crate::support::{Sandbox, built};

#[test]
fn init_writes_a_declaration_that_check_accepts() {
    let s = Sandbox::new(&built().full);
    let out = s
        .run(&["init", "--preset", "servicenow-dex-zoom", "--instance", "acme"], None)
        .ok();
    assert!(
        out.stdout().contains("connapp secrets set client-secret"),
        "{}",
        out.stdout()
    );
    let text = std::fs::read_to_string(s.path().join("connapp.toml")).expect("written");
    for scope in connapp_sandbox::DEX_SCOPES {
        assert!(text.contains(scope), "{scope} missing from\n{text}");
    }
    assert!(text.contains("usage = \"admin-managed\""));
    assert!(text.contains("redirect_url = \"https://acme.service-now.com/oauth_redirect.do\""));
    assert!(text.contains("allow_list = [\"https://acme.service-now.com/oauth_redirect.do\"]"));

    s.run(&["check"], None).ok();
    let j = s.run(&["check", "--json"], None).ok().json();
    assert_eq!(j["valid"], true);
    assert_eq!(j["errors"], 0);
    let app = &j["apps"][0];
    assert_eq!(app["usage"], "admin-managed");
    assert_eq!(app["redirect_url"], "https://acme.service-now.com/oauth_redirect.do");
    assert_eq!(app["scopes"].as_array().expect("array").len(), 6);
}

#[test]
fn init_never_overwrites_and_rejects_bad_instances() {
    let s = Sandbox::new(&built().full);
    let decl = s.init();
    std::fs::write(&decl, "# hand edits\nversion = 1\n").expect("write");
    let out = s.run(&["init", "--instance", "beta"], None).fails_with(1);
    assert!(out.stderr().contains("--force"), "{}", out.stderr());
    assert_eq!(
        std::fs::read_to_string(&decl).expect("read"),
        "# hand edits\nversion = 1\n"
    );
    let out = s
        .run(
            &["init", "--instance", "acme.service-now.com", "--file", "other.toml"],
            None,
        )
        .fails_with(2);
    assert!(out.stderr().contains("--instance acme"), "{}", out.stderr());
    assert!(!s.path().join("other.toml").exists());
    let out = s
        .run(
            &["init", "--instance", "acme", "--preset", "nope", "--file", "other.toml"],
            None,
        )
        .fails_with(2);
    assert!(out.stderr().contains("servicenow-dex-zoom"), "{}", out.stderr());
    s.run(&["init", "--instance", "beta", "--force"], None).ok();
    assert!(
        std::fs::read_to_string(&decl)
            .expect("read")
            .contains("beta.service-now.com")
    );
}

#[test]
fn check_without_a_declaration_says_how_to_make_one() {
    let s = Sandbox::new(&built().full);
    let out = s.run(&["check"], None).fails_with(3);
    assert!(out.stderr().contains("connapp init"), "{}", out.stderr());
}

#[test]
fn declaration_is_found_in_the_config_dir() {
    let s = Sandbox::new(&built().full);
    let decl = s.init();
    let cfg = s.path().join("config");
    std::fs::create_dir_all(&cfg).expect("mkdir");
    std::fs::rename(&decl, cfg.join("connapp.toml")).expect("move");
    let out = s.run(&["check"], None).ok();
    assert!(out.stdout().contains("config/connapp.toml"), "{}", out.stdout());
}

#[test]
fn warnings_do_not_fail_check() {
    let s = Sandbox::new(&built().full);
    s.init();
    s.edit("scopes = []", "scopes = [\"phone:read:call_log:admin\"]");
    let out = s.run(&["check"], None).ok();
    assert!(out.stderr().contains("warning[scope-unknown]"), "{}", out.stderr());
    let j = s.run(&["check", "--json"], None).ok().json();
    assert_eq!(j["warnings"], 1);
    assert_eq!(j["diagnostics"][0]["severity"], "warning");
}

#[test]
fn completions_and_man_page() {
    let s = Sandbox::new(&built().full);
    for shell in ["bash", "zsh", "fish"] {
        let out = s.run(&["completions", shell], None).ok();
        assert!(out.stdout().contains("COMPLETE="), "{shell}: {}", out.stdout());
    }
    // Dynamic: a real bash, with the script sourced, completes the app names
    // of the declaration and the installed plugins by calling connapp back.
    s.init();
    let bin_dir = s.path().join("bin");
    std::fs::create_dir_all(&bin_dir).expect("mkdir");
    std::os::unix::fs::symlink(&built().full, bin_dir.join("connapp")).expect("symlink");
    let complete = |line: &str| {
        let bin_dir = bin_dir.display().to_string();
        let script = format!(
            "source <(connapp completions bash)\nCOMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; read -ra COMP_WORDS <<< \"$COMP_LINE\"; [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=(''); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMP_TYPE=9\n_clap_complete_connapp connapp \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"\nprintf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let path = format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default());
        let out = s
            .command_of(std::path::Path::new("bash"), &["-c", &script])
            .env("PATH", path)
            .output()
            .expect("bash");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let apps = complete("connapp login ");
    assert!(apps.lines().any(|l| l == "dex-zoom"), "{apps}");
    let plugins = complete("connapp plugins info store-");
    assert!(
        plugins.lines().any(|l| l == "store-vault") && plugins.lines().all(|l| l.starts_with("store-")),
        "{plugins}"
    );
    let out = s.run(&["man"], None).ok();
    assert!(out.stdout().contains(".TH connapp"), "{}", out.stdout());
    let dist = &built().dist;
    assert!(dist.join("share/man/man1/connapp.1").exists());
    // One page per command, each with its examples and the exit codes.
    let status = std::fs::read_to_string(dist.join("share/man/man1/connapp-status.1")).expect("connapp-status.1");
    assert!(
        status.contains(".SH EXAMPLES") && status.contains(".SH EXIT STATUS"),
        "{status}"
    );
    assert!(dist.join("share/man/man1/connapp-secrets-set.1").exists());
    let readme = std::fs::read_to_string(dist.join("README.md")).expect("the release's README");
    assert!(
        readme.contains("connapp sandbox") && !readme.contains("cargo xtask"),
        "{readme}"
    );
    let help = s.run(&["status", "--help"], None).ok().stdout();
    assert!(
        help.contains("Examples:") && help.contains("connapp status --json"),
        "{help}"
    );
    assert!(dist.join("share/completions/connapp.bash").exists());
}

#[test]
fn usage_errors_exit_2() {
    let s = Sandbox::new(&built().full);
    s.run(&["secrets", "set", "password"], None).fails_with(2);
    s.run(&["no-such-command"], None).fails_with(2);
    let version = s.run(&["--version"], None).ok().stdout();
    // What gh and Terraform users type: connapp's own way, named.
    assert_eq!(s.run(&["version"], None).ok().stdout(), version);
    let e = s.run(&["logout"], None).fails_with(2).stderr();
    assert!(e.contains("connapp revoke"), "{e}");
    let e = s.run(&["apply", "--auto-approve"], None).fails_with(2).stderr();
    assert!(e.contains("--yes"), "{e}");
    let e = s.run(&["status", "-o", "json"], None).fails_with(2).stderr();
    assert!(e.contains("--json"), "{e}");
    let e = s.run(&["plugins", "info", "store-fil"], None).fails_with(2).stderr();
    assert!(e.contains("did you mean `store-file`?"), "{e}");
}

#[test]
fn the_sandbox_command_prints_endpoints_and_credentials_and_serves() {
    let (mut child, info) = start_sandbox(&built().full, &[]);
    let base = info["base_url"].as_str().expect("base").to_string();
    assert!(base.starts_with("http://127.0.0.1:"));
    let http = crate::support::http();
    let r = s2s_token(&http, &info);
    let status = r.status();
    let v: serde_json::Value = r.json().expect("json");
    let me = http
        .get(format!("{base}/v2/users/me"))
        .bearer_auth(v["access_token"].as_str().unwrap_or(""))
        .send()
        .expect("api");
    let me_status = me.status();
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let exit = child.wait().expect("wait");
    assert!(status.is_success(), "{v}");
    assert!(me_status.is_success());
    assert!(exit.success(), "Ctrl-C is a clean stop: {exit}");
}

#[test]
fn a_bad_sandbox_seed_is_a_clear_error() {
    let s = Sandbox::new(&built().full);
    std::fs::write(s.path().join("seed.toml"), "plan = \"platinum\"\n").expect("write");
    let out = s
        .run(&["sandbox", "--port", "0", "--seed", "seed.toml"], None)
        .fails_with(3);
    assert!(out.stderr().contains("seed.toml"), "{}", out.stderr());
}

fn start_sandbox(bin: &std::path::Path, args: &[&str]) -> (std::process::Child, serde_json::Value) {
    crate::support::spawn_with_banner(
        std::process::Command::new(bin)
            .args(["sandbox", "--port", "0", "--json"])
            .args(args),
    )
}

/// The sandbox's server-to-server app as its `--json` line describes it.
fn s2s_app(info: &serde_json::Value) -> &serde_json::Value {
    info["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .find(|a| a["client_id"] == "sbxS2SClientId00000002")
        .expect("the sandbox's server-to-server app")
}

/// A server-to-server token from the running sandbox described by `info`.
fn s2s_token(http: &reqwest::blocking::Client, info: &serde_json::Value) -> reqwest::blocking::Response {
    let s2s = s2s_app(info);
    http.post(info["token_url"].as_str().expect("token url"))
        .basic_auth(s2s["client_id"].as_str().expect("id"), s2s["client_secret"].as_str())
        .form(&[
            ("grant_type", "account_credentials"),
            ("account_id", info["account_id"].as_str().expect("acct")),
        ])
        .send()
        .expect("token")
}

fn stop(mut child: std::process::Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(child.wait().expect("wait").success());
}

#[test]
fn the_sandbox_state_survives_a_restart() {
    let b = built();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("sandbox.json");
    let state_arg = state.display().to_string();
    let (child, info) = start_sandbox(&b.full, &["--state", &state_arg]);
    let http = crate::support::http();
    let v: serde_json::Value = s2s_token(&http, &info).json().expect("json");
    let token = v["access_token"].as_str().expect("at").to_string();
    // A record in the ServiceNow instance next to it.
    let sn = info["servicenow_url"].as_str().expect("servicenow").to_string();
    let r = http
        .post(format!("{sn}/api/now/table/oauth_entity"))
        .basic_auth("admin", Some("admin-password"))
        .json(&serde_json::json!({"name": "kept across restarts"}))
        .send()
        .expect("create");
    assert_eq!(r.status(), 201);
    stop(child);
    assert!(dir.path().join("sandbox.servicenow.json").exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&state).expect("saved").permissions().mode() & 0o777,
        0o600
    );

    let (child, info2) = start_sandbox(&b.full, &["--state", &state_arg]);
    assert_eq!(
        s2s_app(&info)["client_secret"],
        s2s_app(&info2)["client_secret"],
        "credentials survive"
    );
    let me = http
        .get(format!("{}/v2/users/me", info2["base_url"].as_str().expect("base")))
        .bearer_auth(&token)
        .send()
        .expect("api");
    let status = me.status();
    let sn2 = info2["servicenow_url"].as_str().expect("servicenow").to_string();
    let kept: serde_json::Value = http
        .get(format!(
            "{sn2}/api/now/table/oauth_entity?sysparm_query=name=kept across restarts"
        ))
        .basic_auth("admin", Some("admin-password"))
        .send()
        .expect("list")
        .json()
        .expect("json");
    stop(child);
    assert!(status.is_success(), "a token issued before the restart still works");
    assert_eq!(kept["result"].as_array().map(Vec::len), Some(1), "{kept}");
}

/// Every way of not being able to read the declaration is exit 3, and a
/// declaration over the limit is named with its true size.
#[test]
fn unreadable_declarations_exit_3_and_sizes_are_true() {
    let s = Sandbox::new(&built().full);
    let big = s.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; 10 * 1024 * 1024]).expect("write");
    let big = big.display().to_string();
    let out = s.run(&["--file", &big, "check"], None).fails_with(3);
    assert!(out.stderr().contains("error[file-too-large]"), "{}", out.stderr());
    assert!(out.stderr().contains("is 10485760 bytes"), "{}", out.stderr());
    assert!(!out.stderr().contains("262145"), "{}", out.stderr());
    let j = s.run(&["--file", &big, "check", "--json"], None).fails_with(3).json();
    assert_eq!(j["diagnostics"][0]["rule"], "file-too-large");

    let out = s.run(&["--file", "/", "check"], None).fails_with(3);
    assert!(out.stderr().contains("is a directory"), "{}", out.stderr());
    let out = s.run(&["--file", "/dev/zero", "check"], None).fails_with(3);
    assert!(out.stderr().contains("more than the limit"), "{}", out.stderr());
    let missing = s.path().join("missing.toml").display().to_string();
    let out = s.run(&["--file", &missing, "check"], None).fails_with(3);
    assert!(out.stderr().contains("connapp init"), "{}", out.stderr());
    // The same for every command that reads the declaration.
    s.run(&["--file", "/", "status"], None).fails_with(3);
}

/// `webhook verify` on an endless file fails at the limit, naming the
/// path and the limit, in bounded memory (the peak resident size of the
/// process, from the kernel).
#[test]
fn webhook_verify_reads_at_most_its_limit() {
    let s = Sandbox::new(&built().full);
    std::fs::write(s.path().join("h.txt"), "x-zm-signature: v0=00\n").expect("write");
    for (headers, body, what) in [
        ("h.txt", "/dev/zero", "the webhook body /dev/zero"),
        ("/dev/zero", "h.txt", "the request headers /dev/zero"),
    ] {
        // Reaped by wait4 below (which also reports the peak memory).
        #[allow(clippy::zombie_processes)]
        let child = s
            .command(&["webhook", "verify", "--headers", headers, "--body", body])
            .spawn()
            .expect("spawn");
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waiting for our own child, with valid out-pointers.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(rc, pid);
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.expect("stderr"), &mut stderr).expect("stderr");
        assert!(libc::WIFEXITED(status), "killed: {status}");
        assert_eq!(libc::WEXITSTATUS(status), 2, "{stderr}");
        assert!(stderr.contains(what), "{stderr}");
        assert!(stderr.contains("more than the limit of"), "{stderr}");
        // ru_maxrss is in KiB on Linux. The limits are 2 MiB and 64 KiB; the
        // binary itself needs a few tens of MiB. Unbounded, it grew to 500 MiB.
        assert!(usage.ru_maxrss < 128 * 1024, "peak RSS {} KiB", usage.ru_maxrss);
    }
}

/// An app whose platform signs no webhooks connapp knows: a usage error
/// naming the platform and the platforms whose webhooks connapp checks.
#[test]
fn webhooks_of_a_platform_without_a_scheme_are_refused_naming_those_with_one() {
    let s = Sandbox::new(&built().full);
    s.declare(
        "version = 1\n[store]\nkind = \"file\"\n[apps.gen]\ndisplay_name = \"Generic\"\nplatform = \"generic\"\n\
         redirect_url = \"http://127.0.0.1/cb\"\nallow_list = [\"http://127.0.0.1/cb\"]\nscopes = [\"read\"]\n\
         [apps.gen.oauth]\nauthorize_url = \"https://id.example/authorize\"\ntoken_url = \"https://id.example/token\"\n",
    );
    let out = s.run(&["webhook", "challenge", "abc"], None).fails_with(2);
    let err = out.stderr();
    assert!(err.contains("no webhook scheme of the platform \"generic\""), "{err}");
    assert!(err.contains("apps on zoom"), "{err}");
}
