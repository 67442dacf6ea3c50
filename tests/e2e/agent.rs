//! `connapp agent`: the real binary as a background agent on a private
//! socket. It serves `token` from memory (and `token` works as before
//! without it), locks on request and when idle, refuses a peer of another
//! uid (a real other user, through the system's Python), survives a client
//! that dies mid-request, and a kill -9 in the middle of its own refresh
//! loses no grant whose answer reached the disk.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::built;
use crate::tokens::World;

/// An agent started with `agent start`; stopped (or killed) when dropped.
struct Agent {
    socket: PathBuf,
    pid: i32,
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: signalling a child process we started; harmless if it is gone.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
        }
    }
}

/// `agent start` as `w.user` with `bin` and `extra` arguments and `env`;
/// points the user's later commands at it.
fn start(w: &mut World, bin: &Path, extra: &[&str], env: &[(&str, &str)]) -> Agent {
    let run = w.user.path().join("run");
    std::fs::create_dir_all(&run).expect("run dir");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    w.user.set_env("XDG_RUNTIME_DIR", &run.display().to_string());
    w.user.unset_env("CONNAPP_AGENT_SOCK");
    let mut args = vec!["agent", "start"];
    args.extend_from_slice(extra);
    let mut c = w.user.command_of(bin, &args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("agent start");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "agent start: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    // ssh-agent's shape: NAME='path'; export NAME; then the pid.
    let first = stdout.lines().next().expect("a line");
    let socket = first
        .strip_prefix("CONNAPP_AGENT_SOCK='")
        .and_then(|r| r.split_once("'; export CONNAPP_AGENT_SOCK;"))
        .map(|(p, _)| PathBuf::from(p))
        .unwrap_or_else(|| panic!("not a shell line: {stdout}"));
    let pid = stdout
        .lines()
        .nth(1)
        .and_then(|l| l.strip_prefix("echo Agent pid "))
        .and_then(|l| l.trim_end_matches(';').parse().ok())
        .unwrap_or_else(|| panic!("no pid: {stdout}"));
    w.user.set_env("CONNAPP_AGENT_SOCK", &socket.display().to_string());
    Agent { socket, pid }
}

fn status(w: &World) -> Value {
    w.user.run(&["agent", "status", "--json"], None).ok().json()
}

/// A raw client through the system's Python (optionally as another uid):
/// sends `send`, returns what came back.
fn raw(socket: &Path, send: &str, as_uid: Option<u32>) -> String {
    let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(40)\ntry:\n    s.connect(sys.argv[1])\nexcept Exception as e:\n    print('connect-failed', e); sys.exit(0)\ns.sendall(sys.argv[2].encode())\nout=b''\nwhile True:\n    try:\n        b=s.recv(65536)\n    except Exception:\n        break\n    if not b: break\n    out+=b\nprint(out.decode())\n";
    let mut c = Command::new("/usr/bin/python3");
    c.args(["-c", script]).arg(socket).arg(send).current_dir("/");
    if let Some(u) = as_uid {
        c.uid(u).gid(u);
    }
    let out = c.output().expect("python3");
    // What the client said, or (it said nothing) why: its stderr and status.
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    if said.trim().is_empty() {
        return format!("(no answer; {}: {})", out.status, String::from_utf8_lossy(&out.stderr));
    }
    said
}

#[test]
fn the_agent_serves_tokens_from_memory_locks_and_token_works_without_it() {
    let mut w = World::new(&built().full, true);
    w.login();
    let direct = w.user.run(&["token", "--json"], None).ok().json();
    let agent = start(&mut w, &built().full, &[], &[]);
    // A private directory, a private socket.
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(agent.socket.parent().expect("dir")), 0o700);
    assert_eq!(mode(&agent.socket), 0o600);
    let before = w.counters();
    let j = w.user.run(&["token", "--json"], None).ok().json();
    assert_eq!(j["source"], "agent", "{j:#}");
    assert_eq!(j["access_token"], direct["access_token"]);
    let j = crate::json::judged(
        &crate::json::schema(),
        "token",
        &w.user.run(&["token", "--json"], None).ok(),
    );
    assert_eq!(j["source"], "agent");
    assert_eq!(w.counters(), before, "served from memory: nothing reached Zoom");
    let st = status(&w);
    assert_eq!(
        (st["locked"].as_bool(), st["pid"].as_i64()),
        (Some(false), Some(agent.pid as i64)),
        "{st:#}"
    );
    assert_eq!(st["apps"], serde_json::json!(["dex-zoom"]));
    // Secret reads go through the agent too: without the passphrase and
    // without a terminal, the commands that read the store still work.
    w.user.unset_env("CONNAPP_FILE_PASSPHRASE");
    let j = w.user.run(&["secrets", "list", "--json"], None).ok().json();
    assert!(j["secrets"].as_array().is_some_and(|s| !s.is_empty()), "{j:#}");
    let st_app = w.user.run(&["status", "--json"], None).ok().json();
    assert_eq!(st_app["apps"][0]["app"], "dex-zoom", "{st_app:#}");
    w.user
        .set_env("CONNAPP_FILE_PASSPHRASE", "correct horse battery staple");
    // A changed declaration is read again: still valid, still served.
    let decl = w.user.path().join("connapp.toml");
    let text = std::fs::read_to_string(&decl).expect("read");
    std::fs::write(&decl, format!("{text}\n# edited while the agent runs\n")).expect("edit");
    let j = w.user.run(&["token", "--json"], None).ok().json();
    assert_eq!(j["source"], "agent", "{j:#}");
    // Made invalid: the agent says what the check says, as connapp would.
    std::fs::write(&decl, format!("{text}\n[apps.dex-zoom.nonsense]\n")).expect("break");
    let e = w.user.run(&["token"], None).fails_with(3).stderr();
    assert!(e.contains("not a valid declaration") || e.contains("nonsense"), "{e}");
    std::fs::write(&decl, &text).expect("restore");
    // Locked on request: it says so, and `token` works without it.
    w.user.run(&["agent", "lock"], None).ok();
    assert_eq!(status(&w)["locked"], true);
    let out = w.user.run(&["token"], None).ok();
    assert!(
        out.stderr().contains("is locked; working without it"),
        "{}",
        out.stderr()
    );
    assert_eq!(out.stdout().trim(), direct["access_token"].as_str().expect("token"));
    // A declaration it does not serve: connapp works without it, silently.
    let other = w.user.path().join("other.toml");
    std::fs::copy(w.user.path().join("connapp.toml"), &other).expect("copy");
    let out = w.user.run(&["token", "--json", "-f", "other.toml"], None).ok();
    assert_ne!(out.json()["source"], "agent");
    // Stopped: the socket is gone and `token` behaves as before.
    w.user.run(&["agent", "stop"], None).ok();
    assert!(!agent.socket.exists());
    let j = w.user.run(&["token", "--json"], None).ok().json();
    assert_ne!(j["source"], "agent");
    w.user.run(&["agent", "status"], None).fails_with(1);
}

#[test]
fn the_agent_locks_itself_when_idle_and_outlives_a_client_that_dies_mid_request() {
    let mut w = World::new(&built().full, true);
    w.login();
    let agent = start(&mut w, &built().full, &["--idle-lock", "3s"], &[]);
    w.user.run(&["token"], None).ok();
    // A client that sends half a request and dies, and one that sends nothing.
    let mut half = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import socket,sys,os\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.sendall(b'{\"op\": \"tok')\nos.kill(os.getpid(), 9)\n",
        ])
        .arg(&agent.socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let _ = half.wait();
    let silent = std::os::unix::net::UnixStream::connect(&agent.socket).expect("connect");
    let j = w.user.run(&["token", "--json"], None).ok().json();
    assert_eq!(j["source"], "agent", "the agent still serves: {j:#}");
    drop(silent);
    // Idle for longer than --idle-lock: locked, nothing held.
    std::thread::sleep(Duration::from_millis(4500));
    let st = status(&w);
    assert_eq!(
        (st["locked"].as_bool(), st["apps"].as_array().map(Vec::len)),
        (Some(true), Some(0)),
        "{st:#}"
    );
    let r = raw(
        &agent.socket,
        &format!(
            "{{\"op\":\"token\",\"declaration\":\"{}\"}}\n",
            w.user.path().join("connapp.toml").display()
        ),
        None,
    );
    assert!(r.contains("\"locked\":true") && !r.contains("access_token\":\""), "{r}");
}

/// The peer-uid check, with a socket others may reach (a test build's
/// switch): a real other user is refused before anything is read.
#[test]
fn the_agent_refuses_a_peer_of_another_uid() {
    // SAFETY: getuid cannot fail.
    assert_eq!(
        unsafe { libc::getuid() },
        0,
        "this test acts as another user (uid 65534) and needs to run as root"
    );
    let mut w = World::new(&built().full, true);
    w.login();
    let dir = std::env::temp_dir().join(format!("connapp-agent-uid-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let socket = dir.join("agent.sock");
    let sock = socket.display().to_string();
    let agent = start(
        &mut w,
        &built().fault,
        &["--socket", &sock],
        &[("CONNAPP_FAULT_AGENT_OPEN", "1")],
    );
    assert_eq!(agent.socket, socket);
    let req = format!(
        "{{\"op\":\"token\",\"declaration\":\"{}\"}}\n",
        w.user.path().join("connapp.toml").display()
    );
    let other = raw(&socket, &req, Some(65534));
    assert!(
        other.contains("refused: the agent serves uid 0 only, not uid 65534"),
        "{other}"
    );
    assert!(!other.contains("access_token\":\""), "{other}");
    // Its own user is served.
    let mine = raw(&socket, &req, None);
    assert!(mine.contains("\"ok\":true") && mine.contains("access_token"), "{mine}");
    drop(agent);
    let _ = std::fs::remove_dir_all(&dir);
}

/// kill -9 of the agent in the middle of its own refresh, after the answer
/// is durable (journal written; store written): the next `token` (no agent)
/// serves the refreshed tokens with no further request and no consent.
#[test]
fn a_killed_agent_loses_no_grant_whose_answer_reached_the_disk() {
    for point in ["before-store-write", "after-store-write"] {
        let mut w = World::new(&built().full, true);
        w.login();
        let agent = start(&mut w, &built().fault, &[], &[("CONNAPP_FAULT", point)]);
        let before = w.counters()["token_requests"]["refresh_token"].as_u64().unwrap_or(0);
        // A refresh through the agent, asked for by a token request that wants more time.
        let req = format!(
            "{{\"op\":\"token\",\"declaration\":\"{}\",\"margin\":100000}}\n",
            w.user.path().join("connapp.toml").display()
        );
        let answer = raw(&agent.socket, &req, None);
        assert!(
            !answer.contains("access_token"),
            "{point}: the agent answered: {answer}"
        );
        // It died at the point.
        let mut gone = false;
        for _ in 0..50 {
            // SAFETY: probing our child's pid with signal 0.
            if unsafe { libc::kill(agent.pid, 0) } != 0 {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(gone, "{point}: the agent still runs");
        w.user.unset_env("CONNAPP_AGENT_SOCK");
        let j = w.user.run(&["token", "--json"], None).ok().json();
        let after = w.counters()["token_requests"]["refresh_token"].as_u64().unwrap_or(0);
        assert_eq!(
            after,
            before + 1,
            "{point}: exactly the agent's refresh reached Zoom ({j:#})"
        );
        let me = w.user.run(&["token"], None).ok().stdout();
        assert!(!me.trim().is_empty());
        assert_eq!(w.counters()["consents"], 1, "{point}: no new consent");
    }
}

/// The store the agent holds, used through its socket, passes the same
/// conformance suite every store passes (round trips, binary and large
/// values, compare-and-swap, listing, deletion, bad keys, concurrent writers).
#[test]
fn the_store_through_the_agent_passes_the_conformance_suite() {
    let mut w = World::new(&built().full, true);
    let agent = start(&mut w, &built().full, &[], &[]);
    let store = connapp_engine::agent::StoreRef {
        kind: "file".into(),
        settings: Vec::new(),
        data_dir: w.user.path().join("data"),
    };
    assert!(
        connapp_engine::agent::AgentStore::reach(&agent.socket, store.clone()).is_some(),
        "the agent does not serve the user's store"
    );
    // Another store (other settings) is not the agent's: the caller opens its own.
    let mut other = store.clone();
    other.settings.push(("path".into(), "/elsewhere".into()));
    assert!(connapp_engine::agent::AgentStore::reach(&agent.socket, other).is_none());
    let sock = agent.socket.clone();
    let open: connapp_store_conformance::Opener = std::sync::Arc::new(move || {
        connapp_engine::agent::AgentStore::reach(&sock, store.clone())
            .map(connapp_plugin_api::StoreHandle::from_store)
            .ok_or_else(|| connapp_plugin_api::StoreError::new(connapp_plugin_api::ErrorCode::UNAVAILABLE, "no agent"))
    });
    let report = connapp_store_conformance::run(open);
    println!("{report}");
    report.assert_ok();
}
