//! `connapp schedule`: install then remove leaves the crontab and the unit
//! directories byte for byte as they were (private HOME and XDG dirs; the
//! real `crontab` program), `status` reports a missing or stale schedule,
//! manual commands mention it in one line, and a pass runs its hook once
//! per new failure.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{built, sandbox_control};
use crate::tokens::World;

/// Every file under `dir`: path → (mode, bytes); directories too.
fn snapshot(dir: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(d) else { return };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).expect("inside").display().to_string();
            let meta = std::fs::symlink_metadata(&p).expect("stat");
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                out.insert(format!("{rel}/"), (mode, Vec::new()));
                walk(root, &p, out);
            } else {
                out.insert(rel, (mode, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

fn crontab_l() -> Option<String> {
    let out = Command::new("crontab")
        .arg("-l")
        .stderr(Stdio::null())
        .output()
        .expect("crontab (Debian package cron)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn set_crontab(text: Option<&str>) {
    match text {
        None => {
            let _ = Command::new("crontab").arg("-r").stderr(Stdio::null()).status();
        }
        Some(t) => {
            use std::io::Write;
            let mut c = Command::new("crontab")
                .arg("-")
                .stdin(Stdio::piped())
                .spawn()
                .expect("crontab");
            c.stdin.take().expect("stdin").write_all(t.as_bytes()).expect("write");
            assert!(c.wait().expect("wait").success());
        }
    }
}

#[test]
fn install_then_remove_leaves_the_crontab_and_unit_dirs_as_they_were() {
    let mut w = World::new(&built().full, true);
    let home = w.user.path().join("home");
    let xdg = w.user.path().join("xdg");
    std::fs::create_dir_all(home.join(".config")).expect("home");
    std::fs::create_dir_all(xdg.join("systemd/user")).expect("xdg");
    std::fs::write(
        xdg.join("systemd/user/someone-else.service"),
        "[Service]\nExecStart=/bin/true\n",
    )
    .expect("unit");
    w.user.set_env("HOME", &home.display().to_string());
    w.user.set_env("XDG_CONFIG_HOME", &xdg.display().to_string());
    let before_xdg = snapshot(&xdg);
    let before_home = snapshot(&home);

    // systemd: the units written into the private XDG dir, then taken back.
    let out = w
        .user
        .run(&["schedule", "install", "--scheduler", "systemd"], None)
        .ok();
    assert!(
        out.stdout().contains("Installed the watch (systemd)"),
        "{}",
        out.stdout()
    );
    let timer = std::fs::read_to_string(xdg.join("systemd/user/connapp-watch.timer")).expect("timer");
    assert!(
        timer.contains("Persistent=true") && timer.contains("RandomizedDelaySec="),
        "{timer}"
    );
    let service = std::fs::read_to_string(xdg.join("systemd/user/connapp-watch.service")).expect("service");
    assert!(service.contains("\"schedule\" \"run\""), "{service}");
    // Nothing has run yet: waiting, not a problem.
    let run = w.user.run(&["schedule", "status", "--json"], None).ok();
    let j = crate::json::judged(&crate::json::schema(), "schedule status", &run);
    assert_eq!(j["state"], "waiting", "{j:#}");
    // Someone deleted the timer: status says missing, and a manual command mentions it.
    std::fs::remove_file(xdg.join("systemd/user/connapp-watch.timer")).expect("rm");
    let j = w.user.run(&["schedule", "status", "--json"], None).fails_with(1).json();
    assert_eq!(j["state"], "missing", "{j:#}");
    let e = w.user.run(&["status"], None).stderr();
    assert_eq!(e.matches("schedule is gone").count(), 1, "{e}");
    w.user.run(&["schedule", "remove"], None).ok();
    assert_eq!(snapshot(&xdg), before_xdg, "the unit directory changed");

    // A second install into a config home with no systemd directory at all.
    std::fs::remove_dir_all(xdg.join("systemd")).expect("rm");
    let before_bare = snapshot(&xdg);
    w.user
        .run(
            &["schedule", "install", "--scheduler", "systemd", "--every", "daily"],
            None,
        )
        .ok();
    assert!(xdg.join("systemd/user/connapp-watch.timer").exists());
    // Old: no pass for far longer than a day.
    let installed = w.user.path().join("data/watch/installed.json");
    let mut rec: Value = serde_json::from_slice(&std::fs::read(&installed).expect("installed")).expect("json");
    rec["installed_at"] = (rec["installed_at"].as_u64().expect("time") - 4 * 86_400).into();
    std::fs::write(&installed, rec.to_string()).expect("age it");
    let j = w.user.run(&["schedule", "status", "--json"], None).fails_with(1).json();
    assert_eq!(j["state"], "stale", "{j:#}");
    w.user.run(&["schedule", "remove"], None).ok();
    assert_eq!(snapshot(&xdg), before_bare, "the config home changed");

    // cron: the real crontab, with a job of someone else's in it.
    let original = crontab_l();
    let theirs = "# someone else's job\n0 5 * * * /bin/true\n";
    set_crontab(Some(theirs));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        w.user.run(&["schedule", "install", "--scheduler", "cron"], None).ok();
        let now = crontab_l().expect("a crontab");
        assert!(
            now.starts_with(theirs) && now.contains("# BEGIN connapp watch") && now.contains("schedule run"),
            "{now}"
        );
        let j = w.user.run(&["schedule", "status", "--json"], None).ok().json();
        assert_eq!(j["scheduler"], "cron");
        w.user.run(&["schedule", "remove"], None).ok();
        assert_eq!(crontab_l().as_deref(), Some(theirs), "the crontab changed");
        // And with no crontab at all before, none after.
        set_crontab(None);
        w.user.run(&["schedule", "install", "--scheduler", "cron"], None).ok();
        w.user.run(&["schedule", "remove"], None).ok();
        assert_eq!(crontab_l(), None, "a crontab was left behind");
    }));
    set_crontab(original.as_deref());
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
    assert_eq!(snapshot(&home), before_home, "HOME changed");
}

/// A pass refreshes connapp's own grant past the threshold, finds a broken
/// grant, runs the hook once for it (not again while it stays broken), and
/// manual commands then mention the failing watch in one line.
#[test]
fn a_pass_runs_its_hook_once_per_new_failure() {
    let mut w = World::new(&built().full, true);
    w.login();
    let xdg = w.user.path().join("xdg");
    std::fs::create_dir_all(&xdg).expect("xdg");
    w.user.set_env("XDG_CONFIG_HOME", &xdg.display().to_string());
    let hooks = w.user.path().join("hooks.jsonl");
    let hook = format!("cat >> {}; echo >> {}", hooks.display(), hooks.display());
    w.user
        .run(
            &["schedule", "install", "--scheduler", "systemd", "--hook-command", &hook],
            None,
        )
        .ok();
    let pass = |code: i32| {
        w.user
            .run(
                &[
                    "schedule",
                    "run",
                    "--refresh-older-than",
                    "0s",
                    "--hook-command",
                    &hook,
                    "--json",
                ],
                None,
            )
            .fails_with(code)
            .json()
    };
    let refreshes = || w.counters()["token_requests"]["refresh_token"].as_u64().unwrap_or(0);
    let before = refreshes();
    let j = pass(0);
    assert_eq!(j["ok"], true, "{j:#}");
    assert_eq!(refreshes(), before + 1, "the pass refreshed connapp's own grant");
    assert!(!hooks.exists(), "no failure, no hook");
    // Zoom revokes connapp's grant: the next pass fails, and tells once.
    let grants = sandbox_control(
        &crate::support::http(),
        &w.zoom.base_url(),
        reqwest::Method::GET,
        "/grants",
        Value::Null,
    );
    for g in grants.as_array().expect("grants") {
        let id = g["id"].as_u64().expect("id");
        sandbox_control(
            &crate::support::http(),
            &w.zoom.base_url(),
            reqwest::Method::POST,
            &format!("/grants/{id}/revoke"),
            Value::Null,
        );
    }
    let j = pass(1);
    assert_eq!(j["ok"], false, "{j:#}");
    assert!(!j["new"].as_array().expect("new").is_empty(), "{j:#}");
    let told = std::fs::read_to_string(&hooks).expect("the hook ran");
    let lines: Vec<Value> = told
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(!lines.is_empty());
    assert!(
        lines
            .iter()
            .all(|l| l["event"] == "connapp.watch.failure" && l["app"] == "dex-zoom"),
        "{told}"
    );
    let count = lines.len();
    // Still broken: the hook is not run again.
    let j = pass(1);
    assert!(j["new"].as_array().expect("new").is_empty(), "{j:#}");
    let again = std::fs::read_to_string(&hooks).expect("hooks");
    assert_eq!(
        again.lines().filter(|l| !l.trim().is_empty()).count(),
        count,
        "the hook ran again"
    );
    // A manual command says so in one line.
    let e = w.user.run(&["status"], None).stderr();
    assert_eq!(e.matches("the watch's last pass found").count(), 1, "{e}");
    w.user.run(&["schedule", "remove"], None).ok();
}
