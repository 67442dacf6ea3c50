//! `connapp agent start|run|status|lock|stop`, with ssh-agent's
//! conventions: `start` runs the agent in the background and prints the
//! shell lines that set [`SOCK_ENV`]; `connapp token` then asks it. The
//! agent itself is `connapp_engine::agent`'s.
//!
//! `start` hands the file store's passphrase to the agent through a pipe
//! on its standard input (asked here, at the terminal, when the store needs
//! one and `CONNAPP_FILE_PASSPHRASE` is not set): never argv, never the
//! environment.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use connapp_engine::agent::{self, Reply, Request, SOCK_ENV};
use serde_json::json;

use crate::cli::{AgentRunArgs, AgentSocketArgs, AgentStatusArgs, Global};
use crate::ctx;
use crate::error::{CliError, Exit};

/// The socket a command talks to: `--socket`, else `$CONNAPP_AGENT_SOCK`,
/// else the default place.
fn socket_of(a: &AgentSocketArgs) -> PathBuf {
    a.socket
        .clone()
        .or_else(|| std::env::var_os(SOCK_ENV).filter(|s| !s.is_empty()).map(PathBuf::from))
        .unwrap_or_else(agent::default_socket)
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn ask(sock: &Path, req: &Request) -> Result<Reply, CliError> {
    agent::request(sock, req)
        .map_err(|e| CliError::failure(e.to_string()).hint("start one with `eval \"$(connapp agent start)\"`"))
}

fn config(g: &Global, a: &AgentRunArgs) -> Result<agent::Config, CliError> {
    let declaration = absolute(&ctx::declaration_path(g)?);
    Ok(agent::Config {
        socket: socket_of(&a.socket),
        declaration,
        idle_lock: Duration::from_secs(a.idle_lock.max(1)),
        margin: a.margin,
    })
}

/// `agent run`: the agent in the foreground until stopped.
pub fn run(g: &Global, a: AgentRunArgs) -> Result<(), CliError> {
    ctx::NO_AGENT.store(true, std::sync::atomic::Ordering::SeqCst);
    if std::env::var_os("CONNAPP_AGENT_PASSPHRASE_PIPE").is_some() {
        ctx::PROMPT_FROM_PIPE.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    let cfg = config(g, &a)?;
    let engine = ctx::engine()?;
    // `start` waits for this line on the agent's standard output.
    let ready = || {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ready {}", std::process::id());
        let _ = out.flush();
    };
    agent::serve(engine, cfg, &ready)?;
    Ok(())
}

/// `agent start`: the agent in the background; prints the shell lines.
pub fn start(g: &Global, a: AgentRunArgs) -> Result<(), CliError> {
    let cfg = config(g, &a)?;
    if agent::request(&cfg.socket, &Request::Status).is_ok() {
        return Err(
            CliError::failure(format!("an agent already answers at {}", cfg.socket.display()))
                .hint("use it, or stop it first with `connapp agent stop`"),
        );
    }
    // The store's passphrase, asked here when the agent would need one.
    let (_, decl) = ctx::load_declaration(g, ctx::registry())?;
    let passphrase = if decl.store.kind == "file" && std::env::var_os("CONNAPP_FILE_PASSPHRASE").is_none() {
        if !ctx::interactive() {
            return Err(CliError::with_code(
                Exit::Usage,
                "the agent needs the file store's passphrase and standard input is not a terminal",
            )
            .hint("set CONNAPP_FILE_PASSPHRASE for `connapp agent start`, or run it on a terminal"));
        }
        Some(
            rpassword::prompt_password(format!(
                "Passphrase of the file store for the agent ({}): ",
                cfg.declaration.display()
            ))
            .map(zeroize::Zeroizing::new)
            .map_err(|e| CliError::failure(format!("cannot read the passphrase: {e}")))?,
        )
    } else {
        None
    };
    let dir = cfg.socket.parent().map(Path::to_path_buf).unwrap_or_default();
    let log = dir.join("agent.log");
    let exe = std::env::current_exe().map_err(|e| CliError::failure(format!("cannot find connapp itself: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--file")
        .arg(&cfg.declaration)
        .args(["agent", "run", "--socket"])
        .arg(&cfg.socket)
        .args(["--idle-lock", &format!("{}s", cfg.idle_lock.as_secs())])
        .args(["--margin", &cfg.margin.to_string()])
        .stdin(if passphrase.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped());
    if passphrase.is_some() {
        cmd.env("CONNAPP_AGENT_PASSPHRASE_PIPE", "1");
    }
    // The agent's log (no secret is ever logged) beside its socket; the
    // directory is made private by the agent, so make it so first here.
    if !dir.as_os_str().is_empty() && !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&dir)
            .map_err(|e| CliError::failure(format!("cannot create {}: {e}", dir.display())))?;
    }
    let log_file = {
        let mut o = std::fs::OpenOptions::new();
        o.create(true).append(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(&log)
            .map_err(|e| CliError::failure(format!("cannot open {}: {e}", log.display())))?
    };
    cmd.stderr(log_file);
    // Its own process group: a Ctrl-C at this terminal does not reach it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::failure(format!("cannot start the agent: {e}")))?;
    if let (Some(p), Some(mut stdin)) = (&passphrase, child.stdin.take()) {
        let mut line = zeroize::Zeroizing::new(p.as_bytes().to_vec());
        line.push(b'\n');
        let _ = stdin.write_all(&line);
    }
    let mut first = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = std::io::BufReader::new(out).read_line(&mut first);
    }
    if !first.starts_with("ready ") {
        let _ = child.wait();
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let last = tail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string();
        return Err(
            CliError::failure(format!("the agent did not start: {last}")).hint(format!("its log is {}", log.display()))
        );
    }
    let pid = first.trim_start_matches("ready ").trim().to_string();
    let sock = cfg.socket.display().to_string();
    let quoted = format!("'{}'", sock.replace('\'', "'\\''"));
    println!("{SOCK_ENV}={quoted}; export {SOCK_ENV};");
    println!("echo Agent pid {pid};");
    Ok(())
}

pub fn status(g: &Global, a: AgentStatusArgs) -> Result<(), CliError> {
    let sock = socket_of(&a.socket);
    let r = ask(&sock, &Request::Status)?;
    let Some(st) = r.status else {
        return Err(CliError::failure(format!(
            "the agent at {} sent no status",
            sock.display()
        )));
    };
    if a.json {
        return ctx::print_json(
            "agent status",
            &json!({
                "socket": sock.display().to_string(),
                "pid": st.pid,
                "declaration": st.declaration.display().to_string(),
                "locked": st.locked,
                "apps": st.apps,
                "idle_lock_secs": st.idle_lock_secs,
                "idle_secs": st.idle_secs,
            }),
        );
    }
    if !g.quiet {
        println!("agent pid {} at {}", st.pid, sock.display());
        println!("  declaration  {}", st.declaration.display());
        if st.locked {
            println!("  locked       yes: it holds no secret and serves no token (stop and start it to unlock)");
        } else {
            println!(
                "  locked       no; locks after {} s without a request (idle {} s)",
                st.idle_lock_secs, st.idle_secs
            );
            println!(
                "  tokens       {}",
                if st.apps.is_empty() {
                    "none yet".to_string()
                } else {
                    st.apps.join(", ")
                }
            );
        }
    }
    Ok(())
}

pub fn lock(g: &Global, a: AgentSocketArgs) -> Result<(), CliError> {
    let sock = socket_of(&a);
    ask(&sock, &Request::Lock)?;
    if !g.quiet {
        println!("The agent at {} dropped every secret it held.", sock.display());
    }
    Ok(())
}

pub fn stop(g: &Global, a: AgentSocketArgs) -> Result<(), CliError> {
    let sock = socket_of(&a);
    ask(&sock, &Request::Stop)?;
    // It removes its socket on the way out.
    for _ in 0..50 {
        if !sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !g.quiet {
        println!("The agent at {} stopped.", sock.display());
    }
    Ok(())
}

/// `connapp token` through a running agent: `Ok(None)` when there is none
/// for this declaration (or it is locked), and the caller works without it.
pub fn token_via_agent(
    g: &Global,
    app: Option<&str>,
    margin: Option<u64>,
) -> Result<Option<agent::TokenReply>, CliError> {
    let Some(sock) = std::env::var_os(SOCK_ENV).filter(|s| !s.is_empty()).map(PathBuf::from) else {
        return Ok(None);
    };
    let declaration = absolute(&ctx::declaration_path(g)?);
    let req = Request::Token {
        declaration,
        app: app.map(str::to_string),
        margin,
    };
    let reply = match agent::request(&sock, &req) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "no agent; working without one");
            return Ok(None);
        }
    };
    if reply.locked {
        if !g.quiet {
            eprintln!("connapp: the agent at {} is locked; working without it", sock.display());
        }
        return Ok(None);
    }
    if let Some(t) = reply.token {
        return Ok(Some(t));
    }
    match reply.error.as_ref().and_then(|e| e.to_error()) {
        Some(e) => Err(e.into()),
        // It serves another declaration.
        None => Ok(None),
    }
}
