//! `cargo xtask bench`: the speed targets, each beside its anchor in the same run.
//!
//! `cargo xtask bench --quick` (what `cargo xtask test` runs) exercises every
//! benchmark once with small counts on the debug build and checks that each
//! printed its figure; it judges no target (those figures mean nothing on a
//! debug build), so it proves only that the real bench still runs.

use super::*;

/// How a run is sized and whether its targets are judged.
#[derive(Clone, Copy)]
pub(crate) struct Mode {
    pub(crate) quick: bool,
}

impl Mode {
    pub(crate) fn runs(self, full: usize) -> usize {
        if self.quick { 3 } else { full }
    }

    /// Prints the verdict, or (quick) says that no target was judged.
    fn judge(self, pass: bool, pass_line: &str, fail: impl FnOnce() -> String) -> Result<()> {
        if self.quick {
            println!("quick run: not judged ({pass_line})");
            Ok(())
        } else if pass {
            println!("PASS: {pass_line}");
            Ok(())
        } else {
            bail!("FAIL: {}", fail())
        }
    }
}

/// Speed targets live here, never in timed tests.
pub(crate) fn bench(mode: Mode) -> Result<()> {
    // Every benchmark runs and reports, whatever an earlier one found; the
    // run fails at the end when a target was missed.
    let mut verdicts = crate::hotpath::Verdicts::new(mode);
    let mut failed = Vec::new();
    // 1. The sandbox sustains >= 2,000 token requests per second, and as
    //    much over 2,000 accounts in one process (it judges both itself).
    let mut throughput = cargo();
    throughput.args(["bench", "-q", "-p", "connapp-sandbox", "--bench", "token_throughput"]);
    if mode.quick {
        throughput.args(["--profile", "dev"]).env("CONNAPP_BENCH_QUICK", "1");
    }
    let out = throughput
        .stderr(Stdio::inherit())
        .output()
        .context("run cargo bench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    if !text.contains(" req/s (p50 ") {
        bail!("the sandbox throughput benchmark printed no figure ({})", out.status);
    }
    if !out.status.success() {
        failed.push("the sandbox throughput".to_string());
    }

    // 2. `connapp sandbox` is serving within a second of being started.
    let bin = if mode.quick {
        run_cmd(cargo().args(["build", "-q", "-p", "connapp-cli"]))?;
        target_dir().join("debug")
    } else {
        run_cmd(cargo().args(["build", "--release", "-q", "-p", "connapp-cli"]))?;
        target_dir().join("release")
    }
    .join(format!("connapp{}", std::env::consts::EXE_SUFFIX));
    let mut times = Vec::new();
    for _ in 0..mode.runs(15) {
        times.push(sandbox_startup(&bin)?);
    }
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    println!(
        "connapp sandbox start-up (spawn to first served request): median {median:?}, worst {worst:?} over {} runs",
        times.len()
    );
    mode.judge(worst < std::time::Duration::from_secs(1), "target under 1 s", || {
        format!("connapp sandbox took {worst:?} to serve; the target is under 1 s")
    })?;

    // 3. The token hot path: file store with and without the agent, `--version`, `gh auth token`, the storm.
    if let Err(e) = crate::hotpath::hot_path_bench(&bin, mode, &mut verdicts) {
        println!("{e:#}");
        failed.push("the token hot path".to_string());
    }
    // 4. `connapp token` on the Vault store vs the real `bao kv get` of the same record and `--version`.
    if let Err(e) = vault_token_bench(&bin, mode, &mut verdicts) {
        println!("{e:#}");
        failed.push("the Vault store".to_string());
    }
    // 5. `connapp check` of a 10,000-row fleet inventory beside the one-app declaration's.
    if let Err(e) = crate::fleet::fleet_check_bench(&bin, mode, &mut verdicts) {
        println!("{e:#}");
        failed.push("the fleet check".to_string());
    }
    // 6. `connapp refresh --all` of 100, 1,000 and 10,000 apps vs as many raw KV v2 CAS writes.
    if let Err(e) = crate::fleet::fleet_refresh_bench(&bin, mode, &mut verdicts) {
        println!("{e:#}");
        failed.push("the fleet refresh".to_string());
    }
    // 7. `connapp webhook serve` vs a Node.js verifier written like Zoom's sample, under wrk.
    if let Err(e) = webhook_bench(&bin, mode) {
        println!("{e:#}");
        failed.push("webhook serve".to_string());
    }
    if !failed.is_empty() {
        verdicts.finish().ok();
        bail!("benchmarks that failed or missed a target: {}", failed.join(", "));
    }
    verdicts.finish()
}

/// Zoom's webhook sample (zoom/webhook-sample, index.js), reduced to the
/// verification path: express.json(), HMAC over JSON.stringify(req.body),
/// `===` comparison, the body printed as the sample logs it.
pub(crate) const NODE_VERIFIER: &str = r#"const express = require('express');
const crypto = require('crypto');
const app = express();
app.use(express.json());
app.post('/', (req, res) => {
  const message = `v0:${req.headers['x-zm-request-timestamp']}:${JSON.stringify(req.body)}`;
  const hashForVerify = crypto.createHmac('sha256', process.env.ZOOM_WEBHOOK_SECRET_TOKEN).update(message).digest('hex');
  const signature = `v0=${hashForVerify}`;
  if (req.headers['x-zm-signature'] === signature) {
    if (req.body.event === 'endpoint.url_validation') {
      const hashForValidate = crypto.createHmac('sha256', process.env.ZOOM_WEBHOOK_SECRET_TOKEN).update(req.body.payload.plainToken).digest('hex');
      res.status(200).json({ plainToken: req.body.payload.plainToken, encryptedToken: hashForValidate });
    } else {
      console.log(JSON.stringify(req.body));
      res.status(200).json({ message: 'Authorized request to Zoom Webhook sample.', status: 200 });
    }
  } else {
    res.status(401).json({ message: 'Unauthorized request to Zoom Webhook sample.', status: 401 });
  }
});
const server = app.listen(Number(process.env.PORT), '127.0.0.1', () => console.error('listening'));
"#;

/// Lower-case hex HMAC-SHA256(Secret Token, `message`): `connapp webhook
/// challenge` computes exactly that, so xtask needs no crypto of its own.
pub(crate) fn sign_with_connapp(bin: &Path, work: &Path, message: &str) -> Result<String> {
    let out = demo_command(bin, work, &["webhook", "challenge", message])
        .stderr(Stdio::inherit())
        .output()
        .context("connapp webhook challenge")?;
    if !out.status.success() {
        bail!("connapp webhook challenge failed");
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["encryptedToken"].as_str().context("encryptedToken")?.to_string())
}

pub(crate) struct WrkResult {
    rps: f64,
    p99_ms: f64,
    non_2xx: u64,
}

pub(crate) fn wrk(url: &str, script: &Path, mode: Mode) -> Result<WrkResult> {
    let out = Command::new("wrk")
        .args([
            "-t1",
            "-c16",
            if mode.quick { "-d1s" } else { "-d10s" },
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .context("run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no Requests/sec in wrk's output")?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(str::trim)
        .context("no 99% latency in wrk's output")?;
    let p99_ms = if let Some(us) = p99.strip_suffix("us") {
        us.parse::<f64>()? / 1000.0
    } else if let Some(ms) = p99.strip_suffix("ms") {
        ms.parse::<f64>()?
    } else if let Some(s) = p99.strip_suffix('s') {
        s.parse::<f64>()? * 1000.0
    } else {
        bail!("cannot read wrk's latency {p99:?}")
    };
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(WrkResult { rps, p99_ms, non_2xx })
}

pub(crate) fn webhook_bench(bin: &Path, mode: Mode) -> Result<()> {
    ensure_debian_packages(&[("wrk", "wrk"), ("node", "nodejs"), ("npm", "npm")])?;
    let node_dir = target_dir().join("bench-node");
    std::fs::create_dir_all(&node_dir)?;
    if !node_dir.join("node_modules/express").is_dir() {
        run_cmd(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--silent", "express@5"])
                .current_dir(&node_dir),
        )?;
    }
    std::fs::write(node_dir.join("verifier.js"), NODE_VERIFIER)?;
    let work = std::env::temp_dir().join(format!("connapp-webhook-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let secret = "bench-secret-token-0123456789";
    let result = (|| {
        let quiet = |args: &[&str], input: Option<&str>| quiet(bin, &work, args, input);
        quiet(&["init", "--instance", "acme"], None)?;
        quiet(&["secrets", "set", "secret-token", "--from-stdin"], Some(secret))?;
        // A compact event as Zoom sends it, signed now (valid for the 5-minute window).
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let body = r#"{"event":"meeting.ended","payload":{"account_id":"sbxAccount0000000000001","object":{"uuid":"4444AAAiAAAAAiAiAiiAii==","id":83000000001,"host_id":"sbxUserAdmin0000000002","topic":"Weekly IT sync","type":2,"start_time":"2026-11-28T09:00:00Z","duration":30}},"event_ts":1795856400000}"#;
        let sig = sign_with_connapp(bin, &work, &format!("v0:{ts}:{body}"))?;
        let lua = work.join("event.lua");
        std::fs::write(
            &lua,
            format!(
                "wrk.method = \"POST\"\nwrk.body = [[{body}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"x-zm-request-timestamp\"] = \"{ts}\"\nwrk.headers[\"x-zm-signature\"] = \"v0={sig}\"\n"
            ),
        )?;

        // connapp webhook serve (release build), events printed to /dev/null.
        let connapp = serving(
            demo_command(bin, &work, &["webhook", "serve", "--listen", "127.0.0.1:0"]).stdout(Stdio::null()),
            "connapp webhook serve",
            Banner::Stderr,
            |banner, _| wrk(&address_in(banner, "connapp webhook serve")?, &lua, mode),
        )?;

        // The Node.js verifier.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let baseline = serving(
            Command::new("node")
                .arg(node_dir.join("verifier.js"))
                .current_dir(&node_dir)
                .env("PORT", port.to_string())
                .env("ZOOM_WEBHOOK_SECRET_TOKEN", secret)
                .stdout(Stdio::null()),
            "node",
            Banner::Stderr,
            |banner, _| {
                // The verifier prints "listening" once it serves; anything else is why it did not start.
                if !banner.contains("listening") {
                    bail!("the Node.js verifier did not start: {}", banner.trim());
                }
                wrk(&format!("http://127.0.0.1:{port}/"), &lua, mode)
            },
        )?;

        if connapp.non_2xx > 0 || baseline.non_2xx > 0 {
            bail!(
                "refused requests during the benchmark (connapp {}, node {}): the signature setup is wrong",
                connapp.non_2xx,
                baseline.non_2xx
            );
        }
        let ratio = connapp.rps / baseline.rps;
        println!(
            "webhook verification under wrk (1 thread, 16 connections, {} s): connapp webhook serve {:.0} req/s, p99 {:.2} ms; Node.js (express + crypto, Zoom's sample) {:.0} req/s, p99 {:.2} ms; ratio {ratio:.1}x",
            if mode.quick { 1 } else { 10 },
            connapp.rps,
            connapp.p99_ms,
            baseline.rps,
            baseline.p99_ms
        );
        mode.judge(
            ratio >= 5.0 && connapp.p99_ms <= 2.0,
            "target >= 5x the Node.js verifier's requests per second, p99 <= 2 ms",
            || {
                format!(
                    "{ratio:.1}x the Node.js verifier (target >= 5x), p99 {:.2} ms (target <= 2 ms)",
                    connapp.p99_ms
                )
            },
        )
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

pub(crate) fn median(mut v: Vec<std::time::Duration>) -> std::time::Duration {
    v.sort();
    v[v.len() / 2]
}

pub(crate) fn time_runs(runs: usize, mut make: impl FnMut() -> Command) -> Result<std::time::Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = std::time::Instant::now();
        let out = make().stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
        let elapsed = t.elapsed();
        if !out.status.success() {
            bail!("benchmark command failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        times.push(elapsed);
    }
    Ok(median(times))
}

pub(crate) fn vault_token_bench(bin: &Path, mode: Mode, verdicts: &mut crate::hotpath::Verdicts) -> Result<()> {
    let bao = start_openbao()?;
    let work = std::env::temp_dir().join(format!("connapp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("sandbox-seed.toml"), BENCH_SEED)?;
    // SAFETY: xtask is single-threaded here; children inherit these.
    unsafe {
        std::env::set_var("VAULT_ADDR", &bao.addr);
        std::env::set_var("VAULT_TOKEN", &bao.token);
        std::env::set_var("BAO_ADDR", &bao.addr);
        std::env::set_var("BAO_TOKEN", &bao.token);
    }
    let result = serving(
        Command::new(bin)
            .args(["sandbox", "--port", "0", "--json", "--seed"])
            .arg(work.join("sandbox-seed.toml")),
        "connapp sandbox",
        Banner::Stdout,
        |line, _| {
            let base = json_str(line, "base_url").context("no base URL")?;
            let quiet = |args: &[&str], input: Option<&str>| quiet(bin, &work, args, input);
            quiet(
                &[
                    "init",
                    "--instance",
                    "acme",
                    "--store",
                    "vault",
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
            let bao_bin = crate::hotpath::real_bao()?;
            let runs = mode.runs(21);
            let version = time_runs(runs, || demo_command(bin, &work, &["--version"]))?;
            let connapp = time_runs(runs, || demo_command(bin, &work, &["token"]))?;
            let baseline = time_runs(runs, || {
                let mut c = Command::new(&bao_bin);
                c.args(["kv", "get", "-mount=secret", "connapp/apps/dex-zoom/token"]);
                c
            })?;
            let ratio = connapp.as_secs_f64() / baseline.as_secs_f64();
            let to_version = connapp.as_secs_f64() / version.as_secs_f64();
            println!(
                "connapp token (Vault store, no agent): median {connapp:?}; the bao binary's kv get (same record): median {baseline:?}; ratio {ratio:.2}; connapp --version {version:?}, ratio {to_version:.2} over {runs} runs each"
            );
            verdicts.record(
                to_version <= 3.0,
                "connapp token on the Vault store without an agent <= 3x connapp --version",
                format!("{to_version:.2}x"),
            );
            mode.judge(ratio <= 0.5, "target <= 0.5x bao kv get", || {
                format!("connapp token takes {ratio:.2}x the time of bao kv get; the target is <= 0.5x")
            })?;
            warm_lease_bench(bin, &work, mode)?;
            race_bench(bin, &work, &base, mode)
        },
    );
    let _ = std::fs::remove_dir_all(&work);
    drop(bao);
    result
}

/// `connapp token` warm on the Vault store with the lease machinery (the
/// default) against the same declaration with `lease = false` (the store
/// offers no lease), side by side: runs alternate, medians compared.
fn warm_lease_bench(bin: &Path, work: &Path, mode: Mode) -> Result<()> {
    let decl = std::fs::read_to_string(work.join("connapp.toml"))?;
    let without = decl.replacen(
        "[store]\nkind = \"vault\"\n",
        "[store]\nkind = \"vault\"\n[store.settings]\nlease = false\n",
        1,
    );
    if without == decl {
        bail!("the bench declaration has no `[store] kind = \"vault\"` table to add `lease = false` to");
    }
    let without_file = work.join("no-lease.toml");
    std::fs::write(&without_file, without)?;
    let runs = mode.runs(21);
    let (mut with, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for (times, file) in [
            (&mut with, work.join("connapp.toml")),
            (&mut bare, without_file.clone()),
        ] {
            let t = std::time::Instant::now();
            let out = demo_command(bin, work, &["token"])
                .env("CONNAPP_FILE", &file)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()?;
            times.push(t.elapsed());
            if !out.status.success() {
                bail!("connapp token failed: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
    let (with, bare) = (median(with), median(bare));
    let ratio = with.as_secs_f64() / bare.as_secs_f64();
    println!(
        "connapp token warm (Vault store): with the lease machinery median {with:?}; with lease = false median {bare:?}; ratio {ratio:.2} over {runs} runs each, alternating"
    );
    mode.judge(ratio <= 1.1, "target <= 1.1x without the lease", || {
        format!("a warm connapp token takes {ratio:.2}x with the lease machinery; the target is <= 1.1x")
    })
}

/// One expiry raced by 3 hosts (each its own data directory; one Vault
/// record; the lease) against one host refreshing alone, side by side: the
/// access token lives 2 s, Zoom's answer takes 200 ms to come back, and each
/// run starts once the token has expired.
fn race_bench(bin: &Path, work: &Path, base: &str, mode: Mode) -> Result<()> {
    const TTL: u64 = 2;
    let (_, body) = request("GET", &format!("{base}/_sandbox/knobs"), None)?;
    let mut knobs: serde_json::Value = serde_json::from_str(&body).context("the sandbox's knobs")?;
    knobs["access_ttl"] = TTL.into();
    knobs["token_latency_ms"] = 200.into();
    request("PUT", &format!("{base}/_sandbox/knobs"), Some(&knobs.to_string()))?;
    quiet(bin, work, &["login"], None)?;
    let host = |i: usize| {
        let mut c = demo_command(bin, work, &["token", "--margin", "0"]);
        c.env("CONNAPP_DATA_DIR", work.join(format!("host-{i}")))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    let expire = || std::thread::sleep(std::time::Duration::from_millis(TTL * 1000 + 100));
    let runs = mode.runs(7);
    let (mut alone, mut raced) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        expire();
        let t = std::time::Instant::now();
        let out = host(0).output()?;
        alone.push(t.elapsed());
        if !out.status.success() {
            bail!(
                "connapp token (one host) failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        expire();
        let t = std::time::Instant::now();
        let children: Vec<_> = (0..3).map(|i| host(i).spawn()).collect::<Result<_, _>>()?;
        for c in children {
            let out = c.wait_with_output()?;
            if !out.status.success() {
                bail!(
                    "connapp token (3 hosts) failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        raced.push(t.elapsed());
    }
    let (alone, raced) = (median(alone), median(raced));
    let ratio = raced.as_secs_f64() / alone.as_secs_f64();
    println!(
        "one expiry, Vault store, 200 ms token answers: 3 hosts racing (the lease) median {raced:?}; one host alone median {alone:?}; ratio {ratio:.2} over {runs} runs each"
    );
    mode.judge(ratio <= 1.5, "target <= 1.5x one host alone", || {
        format!("3 hosts racing one expiry take {ratio:.2}x one host refreshing alone; the target is <= 1.5x")
    })
}

/// Runs `connapp ARGS` in `work` with `input` on stdin, its output hidden
/// unless it fails.
fn quiet(bin: &Path, work: &Path, args: &[&str], input: Option<&str>) -> Result<()> {
    let mut c = demo_command(bin, work, args);
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
}

/// Time from spawning `connapp sandbox` until it has answered one HTTP request.
pub(crate) fn sandbox_startup(bin: &Path) -> Result<std::time::Duration> {
    use std::io::{BufRead, BufReader};
    let start = std::time::Instant::now();
    let mut child = Command::new(bin)
        .args(["sandbox", "--port", "0", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start connapp sandbox")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let addr = line
        .split("\"base_url\":\"http://")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .context("no base_url in the sandbox's first line")?
        .to_string();
    let (resp, _) = request("GET", &format!("http://{addr}/_sandbox/knobs"), None)?;
    let elapsed = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    if !resp.starts_with("HTTP/1.1 200") {
        bail!("the sandbox answered: {}", resp.lines().next().unwrap_or(""));
    }
    Ok(elapsed)
}
