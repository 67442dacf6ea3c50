//! Builds what the end-to-end tests drive (once per test run) and runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

/// Everything built for the tests.
pub struct Built {
    /// `connapp` with every plugin built in.
    pub full: PathBuf,
    /// The dist tree made by `cargo xtask dist --dev --dynamic store-file,store-vault`.
    pub dist: PathBuf,
    /// `connapp` built with the fault-injection switch (test builds only).
    pub fault: PathBuf,
    /// A directory holding only the panicking plugin.
    pub panic_dir: PathBuf,
    /// A directory holding only the plugin built for plugin API 2.0.0.
    pub wrong_abi_dir: PathBuf,
    /// A directory holding only the out-of-tree example store.
    pub example_dir: PathBuf,
    /// A directory holding only the example store built against the previous
    /// minor of the plugin API (without what this minor appended).
    pub older_abi_dir: PathBuf,
    /// A directory holding only the out-of-tree example platform (Acme ID).
    pub acme_dir: PathBuf,
}

impl Built {
    pub fn dist_bin(&self) -> PathBuf {
        self.dist.join("bin").join("connapp")
    }
    pub fn dist_store_file(&self) -> PathBuf {
        self.dist.join("lib/connapp/plugins/libconnapp_store_file.so")
    }
    pub fn dist_store_vault(&self) -> PathBuf {
        self.dist.join("lib/connapp/plugins/libconnapp_store_vault.so")
    }
}

/// The built things, at the paths `cargo xtask e2e-build` writes.
fn at(e2e: &Path) -> Built {
    Built {
        full: e2e.join("connapp-full"),
        fault: e2e.join("connapp-fault"),
        dist: e2e.join("dist"),
        panic_dir: e2e.join("panic"),
        wrong_abi_dir: e2e.join("wrong-abi"),
        example_dir: e2e.join("example"),
        older_abi_dir: e2e.join("older-abi"),
        acme_dir: e2e.join("acme-id"),
    }
}

/// What the tests drive, built by `cargo xtask e2e-build`. `cargo xtask test`
/// builds it before the tests and passes its directory in `CONNAPP_E2E_DIR`;
/// a test run any other way (alone, `cargo test`, a bare `cargo nextest run`)
/// builds it here, one process at a time under a lock file, so each test
/// stands on its own and none relies on another having built first.
pub fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        if let Some(dir) = std::env::var_os("CONNAPP_E2E_DIR") {
            return at(Path::new(&dir));
        }
        let locks = target_dir().join("e2e-lock");
        std::fs::create_dir_all(&locks).expect("mkdir");
        let lock = std::fs::File::create(locks.join("build.lock")).expect("lock file");
        // SAFETY: flock on a file descriptor we own; released when `lock` closes.
        let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
        assert_eq!(rc, 0, "cannot lock {}", locks.join("build.lock").display());
        let out = cargo()
            .args(["run", "-q", "-p", "xtask", "--", "e2e-build"])
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo xtask e2e-build");
        assert!(out.status.success(), "cargo xtask e2e-build failed");
        drop(lock);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let dir = stdout.lines().last().expect("e2e-build prints its directory");
        at(Path::new(dir.trim()))
    })
}

/// A fresh directory inside the e2e tree, where the plugin trust check
/// holds (unlike /tmp, which it rightly refuses); removed on drop.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(built().dist.parent().expect("e2e dir").join("scratch")).expect("scratch dir")
}

/// The Zoom sandbox's seeded management app (Server-to-Server, `marketplace:` scopes).
pub const MGMT: &str = "sbxMgmtClientId0000003";

/// A Zoom sandbox that auto-approves consent as `admin`, its management app's
/// Client Secret set to `secret` (a test's canary).
pub fn zoom_with_management(secret: &str) -> connapp_sandbox::Sandbox {
    connapp_sandbox::Sandbox::start(zoom_seed_with_management(secret)).expect("zoom sandbox")
}

/// The seed of [`zoom_with_management`].
pub fn zoom_seed_with_management(secret: &str) -> connapp_sandbox::Seed {
    let mut seed = connapp_sandbox::Seed::default();
    seed.knobs.auto_approve = Some("admin".into());
    for app in &mut seed.apps {
        if app.client_id == MGMT {
            app.client_secret = secret.into();
        }
    }
    seed
}

/// The loopback redirect the tests' logins use (any port: RFC 8252 §7.3).
pub const LOOPBACK: &str = "http://127.0.0.1/callback";
/// The Zoom sandbox's seeded account.
pub const ACCOUNT: &str = "sbxAccount0000000000001";

/// A user whose declaration (`init --instance INSTANCE`, then `extra`) has a
/// management app on `zoom` (secrets stored, `mgmt_secret` its Client
/// Secret), logs in at [`LOOPBACK`], and whose browser fetches what it opens.
pub fn managed_user(zoom: &connapp_sandbox::Sandbox, instance: &str, mgmt_secret: &str, extra: &[&str]) -> Sandbox {
    let mut user = Sandbox::new(&built().full);
    let base = zoom.base_url();
    let mut args = vec![
        "init",
        "--instance",
        instance,
        "--login-redirect",
        LOOPBACK,
        "--zoom-base",
        &base,
        "--management-account",
        ACCOUNT,
    ];
    args.extend_from_slice(extra);
    user.run(&args, None).ok();
    user.store_management(mgmt_secret);
    let browser = fetching_browser(user.path());
    user.set_env("BROWSER", &browser.display().to_string());
    user
}

/// Every blocking HTTP client the e2e tests build starts here: it installs
/// the TLS provider itself instead of relying on another test having done so.
pub fn http_builder() -> reqwest::blocking::ClientBuilder {
    connapp_plugin_api::tls::install_provider();
    reqwest::blocking::Client::builder()
}

/// A plain blocking HTTP client (see [`http_builder`]).
pub fn http() -> reqwest::blocking::Client {
    http_builder().build().expect("client")
}

/// An HTTP client that shows each redirect instead of following it.
pub fn no_redirects() -> reqwest::blocking::Client {
    http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Spawns `cmd` (stdout piped, stderr dropped) and reads the JSON banner
/// line it prints when ready (`connapp sandbox --json`).
pub fn spawn_with_banner(cmd: &mut Command) -> (std::process::Child, serde_json::Value) {
    use std::io::BufRead;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let banner = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    (child, banner)
}

/// An isolated user: own config, data and working directories.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Sandbox {
    pub fn new(bin: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Sandbox {
            bin: bin.to_path_buf(),
            env: vec![
                (
                    "CONNAPP_CONFIG_DIR".into(),
                    dir.path().join("config").display().to_string(),
                ),
                ("CONNAPP_DATA_DIR".into(), dir.path().join("data").display().to_string()),
                ("CONNAPP_FILE_PASSPHRASE".into(), "correct horse battery staple".into()),
            ],
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn set_env(&mut self, k: &str, v: &str) {
        self.env.retain(|(x, _)| x != k);
        self.env.push((k.into(), v.into()));
    }

    pub fn unset_env(&mut self, k: &str) {
        self.env.retain(|(x, _)| x != k);
    }

    /// `bin` with `args` as this user: their directories and environment, stdin
    /// empty (not a terminal), stdout and stderr piped.
    pub fn command_of(&self, bin: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.args(args)
            .current_dir(self.path())
            .env_remove("CONNAPP_FILE")
            .env_remove("CONNAPP_PLUGIN_PATH")
            .env_remove("CONNAPP_FILE_PASSPHRASE")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// connapp with `args` as this user, to spawn (see [`Sandbox::command_of`]).
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(&self.bin, args)
    }

    /// Runs connapp with `args`, stdin from `input` (or empty, not a terminal).
    pub fn run(&self, args: &[&str], input: Option<&[u8]>) -> Run {
        let mut child = self.command(args).stdin(Stdio::piped()).spawn().expect("spawn connapp");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            if let Some(i) = input {
                // connapp may exit before reading its input (e.g. on an earlier error).
                match stdin.write_all(i) {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write stdin: {e}"),
                    _ => {}
                }
            }
        }
        Run(child.wait_with_output().expect("wait"))
    }

    /// Replaces `from` by `to` in the declaration, `connapp.toml`, which must contain it.
    pub fn edit(&self, from: &str, to: &str) {
        let path = self.path().join("connapp.toml");
        let text = std::fs::read_to_string(&path).expect("read the declaration");
        assert!(text.contains(from), "the declaration has no {from:?}:\n{text}");
        self.declare(&text.replacen(from, to, 1));
    }

    /// Writes `text` as the declaration, `connapp.toml`.
    pub fn declare(&self, text: &str) {
        std::fs::write(self.path().join("connapp.toml"), text).expect("write the declaration");
    }

    /// `secrets set KIND --from-stdin` with `value`, which must succeed.
    pub fn set_secret(&self, kind: &str, value: impl AsRef<[u8]>) {
        self.run(&["secrets", "set", kind, "--from-stdin"], Some(value.as_ref()))
            .ok();
    }

    /// `secrets set KIND --app APP --from-stdin` with `value`, which must succeed.
    pub fn set_secret_of(&self, app: &str, kind: &str, value: impl AsRef<[u8]>) {
        self.run(
            &["secrets", "set", kind, "--app", app, "--from-stdin"],
            Some(value.as_ref()),
        )
        .ok();
    }

    /// Stores the management app's Client ID and Secret (`zoom-marketplace`).
    pub fn store_management(&self, secret: &str) {
        self.set_secret_of("zoom-marketplace", "client-id", MGMT);
        self.set_secret_of("zoom-marketplace", "client-secret", secret);
    }

    /// Runs the fault-injection build with `args` and `env` (`CONNAPP_FAULT`
    /// among them) and expects it killed with SIGKILL at that point.
    pub fn killed_at(&self, args: &[&str], env: &[(&str, &str)]) {
        use std::os::unix::process::ExitStatusExt;
        let mut c = self.command_of(&built().fault, args);
        c.envs(env.iter().copied());
        let out = c.output().expect("run");
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{env:?}: the fault point was not reached ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `init` + nothing else; returns the declaration path.
    pub fn init(&self) -> PathBuf {
        self.run(&["init", "--instance", "acme"], None).ok();
        self.path().join("connapp.toml")
    }
}

/// A `connapp login --no-browser …` waiting for the pasted address.
pub struct PasteBack {
    child: std::process::Child,
    /// The rest of its stderr, kept open: connapp fails writing to a closed pipe.
    err: std::io::BufReader<std::process::ChildStderr>,
    /// The authorize URL it printed.
    pub url: String,
    /// Its stderr up to the URL.
    pub seen: String,
}

impl PasteBack {
    /// Starts `connapp ARGS` and reads its stderr up to the first word that
    /// starts with `prefix` (the authorize URL).
    pub fn start(s: &Sandbox, args: &[&str], prefix: &str) -> PasteBack {
        use std::io::BufRead;
        let mut child = s.command(args).stdin(Stdio::piped()).spawn().expect("spawn");
        let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let mut seen = String::new();
        let url = loop {
            let mut line = String::new();
            if err.read_line(&mut line).unwrap_or(0) == 0 {
                break None;
            }
            seen.push_str(&line);
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with(prefix)) {
                break Some(url.to_string());
            }
        };
        match url {
            Some(url) => PasteBack { child, err, url, seen },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no URL starting with {prefix} in {seen}");
            }
        }
    }

    /// Pastes `address` (where the browser was sent) and waits for the end;
    /// the output's stderr is what came after the URL.
    pub fn paste(self, address: &str) -> Output {
        self.finish(Some(address))
    }

    /// Waits for the end without typing anything (the consent reached
    /// connapp's own loopback listener).
    pub fn wait(self) -> Output {
        self.finish(None)
    }

    fn finish(mut self, address: Option<&str>) -> Output {
        use std::io::{Read, Write};
        let mut err = self.err;
        let rest = std::thread::spawn(move || {
            let mut rest = Vec::new();
            let _ = err.read_to_end(&mut rest);
            rest
        });
        let mut stdin = self.child.stdin.take().expect("stdin");
        if let Some(address) = address {
            writeln!(stdin, "{address}").expect("paste");
        }
        drop(stdin);
        let mut out = self.child.wait_with_output().expect("wait");
        out.stderr = rest.join().expect("stderr reader");
        out
    }
}

/// A finished connapp run.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.0.status.code()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts success; returns self.
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code(),
            Some(0),
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    /// Asserts exit code `code` (never a signal, never a panic); returns self.
    pub fn fails_with(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            Some(code),
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        assert!(
            !self.stderr().contains("panicked at"),
            "connapp panicked:\n{}",
            self.stderr()
        );
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout()))
    }
}

/// A browser stand-in: fetches the URL and follows redirects, like a browser
/// whose user already clicked Allow (the sandbox auto-approves).
pub fn fetching_browser(dir: &Path) -> PathBuf {
    let script = dir.join("browser.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nexec python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1]).read()' \"$1\"\n",
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

/// Drives Debian's chromedriver over WebDriver (blocking).
pub struct Chrome {
    driver: std::process::Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    profile: tempfile::TempDir,
}

impl Chrome {
    pub fn start() -> Chrome {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (run `cargo xtask test`, which installs chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let http = http();
        for _ in 0..200 {
            if http
                .get(format!("{base}/status"))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().expect("profile");
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.path().display())]}}}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .expect("session")
            .json()
            .expect("json");
        let session = v["value"]["sessionId"].as_str().expect("session id").to_string();
        Chrome {
            driver,
            base,
            session,
            http,
            profile,
        }
    }
    pub fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let rb = self.http.request(method.clone(), &url);
        let rb = if method == reqwest::Method::GET {
            rb
        } else {
            rb.json(&body)
        };
        let v: Value = rb.send().expect("webdriver").json().expect("json");
        v["value"].clone()
    }
    pub fn click(&self, css: &str) {
        let el = self.cmd(
            reqwest::Method::POST,
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        // The key of a W3C WebDriver element reference.
        let id = el["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {el}"))
            .to_string();
        // Centre it first: a click on an element at the viewport's edge can land elsewhere.
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": "arguments[0].scrollIntoView({block: 'center'});", "args": [el]}),
        );
        let res = self.cmd(reqwest::Method::POST, &format!("/element/{id}/click"), json!({}));
        assert!(res.is_null(), "click on {css} failed: {res}");
    }
    /// The value of a script run in the page.
    pub fn eval(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }
    /// Runs `script` until it returns something truthy (10 s at most); its last value.
    pub fn wait_for(&self, script: &str) -> Value {
        let mut v = Value::Null;
        for _ in 0..100 {
            v = self.eval(script);
            if !(v.is_null() || v == Value::Bool(false) || v == json!("")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        v
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = &self.profile;
    }
}

/// One call to the Zoom sandbox's control API (`/_sandbox{path}`); asserts success.
pub fn sandbox_control(
    http: &reqwest::blocking::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let r = http
        .request(method, format!("{base}/_sandbox{path}"))
        .json(&body)
        .send()
        .expect("control");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().expect("json")
}

/// What a run on a pseudo-terminal showed: everything the terminal received
/// (stdout and stderr together, as a person sees them) and the exit code.
pub struct PtyRun {
    pub screen: String,
    pub code: Option<i32>,
}

impl Sandbox {
    /// Runs connapp with `args` on a new pseudo-terminal 100 columns wide (its
    /// controlling terminal, so prompts read from it), answering: each time
    /// the screen shows the next `(expect, send)` pair's `expect`, it types
    /// `send` and Enter. Gives up after 20 s.
    pub fn on_terminal(&self, args: &[&str], answers: &[(&str, &str)]) -> PtyRun {
        use std::io::{Read, Write};
        use std::os::fd::{FromRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: 40,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two new descriptors into the two ints.
        let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned here only.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut c = self.command(args);
        c.env("TERM", "xterm-256color")
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = c.spawn().expect("spawn connapp on a terminal");
        drop(c);
        let screen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let mut reader = std::fs::File::from(master.try_clone().expect("dup"));
        let sink = screen.clone();
        let pump = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the child and every copy of the terminal are gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("screen").extend_from_slice(&buf[..n]);
            }
        });
        let mut writer = std::fs::File::from(master);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut seen = 0;
        for (expect, send) in answers {
            loop {
                let text = String::from_utf8_lossy(&screen.lock().expect("screen")).into_owned();
                if let Some(at) = text[seen..].find(expect) {
                    seen += at + expect.len();
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the terminal never showed {expect:?}:\n{text}"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            writer.write_all(format!("{send}\r").as_bytes()).expect("type");
        }
        let code = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "connapp did not finish on the terminal"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        drop(writer);
        let _ = pump.join();
        let screen = String::from_utf8_lossy(&screen.lock().expect("screen")).into_owned();
        PtyRun { screen, code }
    }
}

/// Every line of `text` fits `width` columns, but a line that is one
/// unbreakable word (a URL to copy whole).
pub fn assert_fits(text: &str, width: usize) {
    for line in text.lines() {
        let n = line.chars().count();
        assert!(
            n <= width || line.split_whitespace().count() == 1,
            "a line of {n} columns (more than {width}):\n{line}\n\n{text}"
        );
    }
}
