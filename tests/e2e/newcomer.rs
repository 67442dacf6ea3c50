//! The README's "Your first run", command by command, as a newcomer runs it:
//! the block between the `newcomer-path` markers is read from the README and
//! every line is run as written — only the two ports are swapped for free
//! ones, the values a person pastes at the prompts come from the sandbox's own
//! banner, and the passphrase a person types comes from
//! `CONNAPP_FILE_PASSPHRASE`. It must end with `verify` all green, in at most
//! twelve commands and without curl.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{PasteBack, Sandbox, built};

/// The README's newcomer commands, comments dropped.
fn readme_path() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README");
    let block = readme
        .split("<!-- newcomer-path: begin -->")
        .nth(1)
        .and_then(|r| r.split("<!-- newcomer-path: end -->").next())
        .expect("the README's newcomer-path block");
    block
        .lines()
        .map(|l| l.split("  #").next().unwrap_or("").trim().to_string())
        .filter(|l| l.starts_with("connapp "))
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// The words of a command line (quotes are only around one placeholder word here).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut quoted: Option<String> = None;
    for w in line.split_whitespace() {
        match &mut quoted {
            Some(q) => {
                q.push(' ');
                q.push_str(w.trim_end_matches('\''));
                if w.ends_with('\'') {
                    out.push(quoted.take().expect("quoted"));
                }
            }
            None if w.starts_with('\'') && !(w.len() > 1 && w.ends_with('\'')) => {
                quoted = Some(w.trim_start_matches('\'').to_string());
            }
            None => out.push(w.trim_matches('\'').to_string()),
        }
    }
    out
}

/// The release's own README (`docs/user-readme.md`, shipped by `cargo xtask
/// dist`) walks the same first run: its lines are the developers' README's.
#[test]
fn the_user_readme_shows_the_same_first_run() {
    let user =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/user-readme.md")).expect("user README");
    let commands: Vec<String> = user
        .lines()
        .map(|l| l.split("  #").next().unwrap_or("").trim().to_string())
        .filter(|l| l.starts_with("connapp ") && l.contains('\''))
        .collect();
    let path = readme_path();
    for line in &path {
        assert!(
            user.lines().any(|l| l.split("  #").next().unwrap_or("").trim() == line),
            "the user README lacks {line:?}"
        );
    }
    assert!(!commands.is_empty());
    assert!(!user.contains("cargo xtask"), "the user README speaks to developers");
}

#[test]
fn the_readme_first_run_ends_with_verify_green() {
    let path = readme_path();
    assert!(
        path.len() <= 12,
        "the newcomer path has {} commands: {path:#?}",
        path.len()
    );
    assert!(path.iter().all(|l| !l.contains("curl")), "{path:#?}");
    let (zoom_port, sn_port) = (free_port(), free_port());
    let ported = |l: &str| {
        l.replace("8700", &zoom_port.to_string())
            .replace("8701", &sn_port.to_string())
    };
    let mut user = Sandbox::new(&built().full);
    // No browser here: connapp login must say so and keep waiting.
    user.set_env("BROWSER", "false");

    // Terminal 1: the sandboxes; their banner carries the values to paste.
    let first = words(&ported(&path[0]));
    assert_eq!(first[..2], ["connapp", "sandbox"], "{path:#?}");
    let args: Vec<&str> = first[1..].iter().map(String::as_str).collect();
    let mut sandbox = user
        .command(&args)
        .stderr(Stdio::null())
        .spawn()
        .expect("connapp sandbox");
    let mut banner = String::new();
    let mut lines = BufReader::new(sandbox.stdout.take().expect("stdout"));
    while !banner.contains("Ctrl-C stops the sandbox") {
        let mut line = String::new();
        assert!(
            lines.read_line(&mut line).expect("banner") > 0,
            "the sandbox ended: {banner}"
        );
        banner.push_str(&line);
    }
    // What a person pastes at a prompt: the banner's `# paste VALUE` / `# type VALUE`.
    let value_for = |command: &str| -> String {
        banner
            .lines()
            .find(|l| l.trim_start().starts_with(command))
            .and_then(|l| l.split(['#']).nth(1))
            .and_then(|c| c.split_whitespace().nth(1))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("the banner gives no value for {command:?}:\n{banner}"))
    };

    let mut link = String::new();
    let mut login: Option<PasteBack> = None;
    let mut verified = false;
    for line in &path[1..] {
        let line = ported(line);
        let mut w = words(&line);
        for x in &mut w {
            if x == "THE LINK APPLY PRINTED" || x == "THE URL LOGIN PRINTED" {
                *x = link.clone();
            }
        }
        let args: Vec<&str> = w[1..].iter().map(String::as_str).collect();
        match args.as_slice() {
            ["secrets", "set", ..] => {
                let value = value_for(&line);
                let run = user.on_terminal(&args, &[("(input hidden)", &value)]);
                assert_eq!(run.code, Some(0), "{line}:\n{}", run.screen);
            }
            ["apply", ..] => {
                let out = user.run(&args, None).ok().stdout();
                link = out
                    .split_whitespace()
                    .find(|w| w.contains("/oauth_initiator.do?"))
                    .unwrap_or_else(|| panic!("apply printed no consent link:\n{out}"))
                    .to_string();
            }
            ["login", ..] => {
                let waiting = PasteBack::start(&user, &args, &format!("http://127.0.0.1:{zoom_port}/oauth/authorize"));
                link = waiting.url.clone();
                login = Some(waiting);
            }
            ["sandbox", "consent", ..] => {
                let out = user.run(&args, None).ok().stdout();
                assert!(out.contains("consented"), "{line}:\n{out}");
                if let Some(waiting) = login.take() {
                    let done = waiting.wait();
                    assert!(
                        done.status.success(),
                        "login: {}",
                        String::from_utf8_lossy(&done.stderr)
                    );
                }
            }
            ["verify", ..] => {
                // DEX's scheduled job runs every 10 s: verify says so until it
                // has (and, run in the same second as the job, may meet Zoom's
                // per-account rate limit and say that): run it again, gently.
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let run = user.run(&args, None);
                    let out = run.stdout();
                    if run.code() == Some(0) && out.contains("everything declared works") {
                        verified = true;
                        break;
                    }
                    assert!(Instant::now() < deadline, "verify never turned green:\n{out}");
                    std::thread::sleep(Duration::from_secs(3));
                }
            }
            _ => {
                user.run(&args, None).ok();
            }
        }
    }
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    assert!(verified, "the path has no verify: {path:#?}");
}
