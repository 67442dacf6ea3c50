//! The fleet refresh benchmark (issue 22), run by `cargo xtask bench`:
//! refreshing N apps through connapp (`connapp refresh --all`, the binary
//! xtask built) against the same number of raw KV v2 check-and-set writes to
//! the same OpenBao, with the same concurrency, at each N given, so the curve
//! shows how the cost grows. Never a timed test.
//!
//! Setup, not timed: the Zoom sandbox in this process with one app per row
//! (rows are customers, so no per-account limit ties them together), each
//! app's Client ID and Secret stored and its grant obtained through the
//! engine's own login (the consent pasted back, as `login --paste` does).
//! The anchor's N records are created first, so both sides update records
//! that exist.
//!
//! Environment: `CONNAPP_BENCH_BIN` (the connapp binary), `VAULT_ADDR`,
//! `VAULT_TOKEN` (an OpenBao dev server with KV v2 at `secret/`),
//! `CONNAPP_BENCH_SIZES` (e.g. `100,1000,10000`), `CONNAPP_BENCH_JOBS`.
//! Prints one `fleet refresh N=...` line per size with both medians and
//! their ratio. With `CONNAPP_BENCH_KEEP` set, the work directory and the
//! sandbox stay afterwards, for a profiler.

// The built-in platform and store the seeding opens (inventory).
use connapp_platform_zoom as _;
use connapp_store_vault as _;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use connapp_core::SecretKind;
use connapp_engine::secrets::Secrets;
use connapp_engine::tokens::{AppCtx, Consent, Silent};
use connapp_plugin_api::Expected;
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, String>;

fn env(name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| format!("{name} is not set (run `cargo xtask bench`)"))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("fleet refresh benchmark: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    connapp_plugin_api::tls::install_provider();
    let bin = env("CONNAPP_BENCH_BIN")?;
    let (addr, token) = (env("VAULT_ADDR")?, env("VAULT_TOKEN")?);
    let sizes: Vec<usize> = env("CONNAPP_BENCH_SIZES")?
        .split(',')
        .map(|s| s.trim().parse().map_err(|_| format!("bad size {s:?}")))
        .collect::<Result<_>>()?;
    let jobs: usize = env("CONNAPP_BENCH_JOBS")?
        .parse()
        .map_err(|_| "bad CONNAPP_BENCH_JOBS")?;
    let most = sizes.iter().copied().max().unwrap_or(0);
    let work = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let zoom = sandbox(most)?;
    for &n in &sizes {
        let dir = work.path().join(format!("n{n}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let started = Instant::now();
        seed(&dir, &zoom, n, jobs)?;
        let anchor = Anchor::seed(&addr, &token, "raw", n, jobs)?;
        let floor = Anchor::seed(&addr, &token, "floor", n, jobs)?;
        eprintln!(
            "  (N={n}: {n} grants and {n} anchor records made in {:?})",
            started.elapsed()
        );
        let runs = if n <= 1000 { 3 } else { 1 };
        let (mut ours, mut raw, mut least) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            raw.push(anchor.write_all()?);
            ours.push(refresh_all(&bin, &dir, n, jobs)?);
            least.push(floor.read_and_write_all()?);
        }
        let (ours, raw, least) = (median(ours), median(raw), median(least));
        let ratio = ours.as_secs_f64() / raw.as_secs_f64();
        println!(
            "fleet refresh N={n}: connapp refresh --all --jobs {jobs} median {ours:?} ({:.2} ms/app); {n} raw KV v2 CAS writes, {jobs} at a time, median {raw:?} ({:.2} ms/write); ratio {ratio:.2} over {runs} run(s) each",
            ours.as_secs_f64() * 1000.0 / n as f64,
            raw.as_secs_f64() * 1000.0 / n as f64,
        );
        // For reference, not the anchor: the store work no refresh of a
        // stored grant can skip (read the record for its refresh token,
        // write the new one with check-and-set), without the provider's call.
        println!(
            "fleet refresh floor N={n}: {n} KV v2 reads each followed by its CAS write, {jobs} at a time, median {least:?} ({:.2} ms/record); {:.2}x the raw CAS writes",
            least.as_secs_f64() * 1000.0 / n as f64,
            least.as_secs_f64() / raw.as_secs_f64(),
        );
    }
    if std::env::var_os("CONNAPP_BENCH_KEEP").is_some() {
        // For a profiler: the declarations and data directories stay, the sandbox answers on.
        eprintln!(
            "kept {} (sandbox at {}); Ctrl-C ends",
            work.keep().display(),
            zoom.base_url()
        );
        loop {
            std::thread::park();
        }
    }
    drop(zoom);
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The Zoom sandbox with `n` General apps (`bench-{i}`), consent
/// auto-approved as `owner`, and limits no seeding run reaches.
fn sandbox(n: usize) -> Result<connapp_sandbox::Sandbox> {
    let mut seed = connapp_sandbox::Seed::default();
    seed.knobs.auto_approve = Some("owner".into());
    let template = seed
        .apps
        .iter()
        .find(|a| a.client_id == "sbxDexClientId00000001")
        .cloned()
        .ok_or("the sandbox seeds no DEX app")?;
    for i in 0..n {
        let mut app = template.clone();
        app.app_id = format!("benchApp{i:07}");
        app.name = format!("bench-{i}");
        app.client_id = format!("benchClient{i:07}");
        app.client_secret = format!("bench-secret-{i:07}-0123456789abcdef");
        app.allow_list = vec!["http://127.0.0.1/callback".into()];
        app.redirect_urls = vec!["http://127.0.0.1/callback".into()];
        seed.apps.push(app);
    }
    let zoom = connapp_sandbox::Sandbox::start(seed).map_err(|e| e.to_string())?;
    zoom.with_state(|s| {
        for limit in s.limits.values_mut() {
            limit.per_window = u64::MAX / 2;
            limit.per_day = u64::MAX / 2;
        }
    });
    Ok(zoom)
}

/// A declaration of `n` rows in `dir` on the Vault store, each row's app's
/// credentials stored and its grant obtained, `jobs` at a time.
fn seed(dir: &Path, zoom: &connapp_sandbox::Sandbox, n: usize, jobs: usize) -> Result<()> {
    let base = zoom.base_url();
    let prefix = format!("connapp-bench/fleet-{}-{n}", std::process::id());
    std::fs::write(
        dir.join("connapp.toml"),
        format!(
            r#"version = 1

[store]
kind = "vault"

[store.settings]
prefix = "{prefix}"

[fleet]
inventory = "rows.csv"

[fleet.apps."bench-{{row}}"]
display_name = "bench-{{row}}"
platform = "zoom"
usage = "admin-managed"
redirect_url = "http://127.0.0.1/callback"
allow_list = ["http://127.0.0.1/callback"]
scopes = ["user:read:user:admin"]

[fleet.apps."bench-{{row}}".oauth]
login_redirect = "http://127.0.0.1/callback"
oauth_base = "{base}"
api_base = "{base}"
"#
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut csv = String::from("row\n");
    for i in 0..n {
        csv.push_str(&format!("{i}\n"));
    }
    std::fs::write(dir.join("rows.csv"), csv).map_err(|e| e.to_string())?;
    // SAFETY: set before any thread of this process reads the environment.
    unsafe { std::env::set_var("CONNAPP_DATA_DIR", dir.join("data")) };
    let env = connapp_engine::environment::Environment::from_process(None).map_err(|e| e.to_string())?;
    let engine = connapp_engine::Engine::new(env);
    let reg = engine.registry();
    let report = engine
        .environment()
        .check_declaration(&dir.join("connapp.toml"), reg)
        .map_err(|e| e.to_string())?;
    let decl = report
        .declaration
        .ok_or_else(|| format!("the bench declaration is invalid: {:?}", report.diagnostics))?;
    let shared = engine.open(&decl).map_err(|e| e.message)?;
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let next = AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    if let Err(e) = login(reg, &decl, &shared, &http, i) {
                        failures.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    match failures.first() {
        Some(e) => Err(format!("{} of {n} logins failed; the first: {e}", failures.len())),
        None => Ok(()),
    }
}

/// Row `i`'s credentials stored and its grant obtained by the engine's login.
fn login(
    reg: &connapp_host::Registry,
    decl: &connapp_core::Declaration,
    shared: &connapp_engine::tokens::Shared<'static>,
    http: &reqwest::blocking::Client,
    i: usize,
) -> Result<()> {
    let name = format!("bench-{i}");
    let secrets = Secrets::new(&shared.store);
    for (kind, value) in [
        (SecretKind::ClientId, format!("benchClient{i:07}")),
        (
            SecretKind::ClientSecret,
            format!("bench-secret-{i:07}-0123456789abcdef"),
        ),
    ] {
        secrets
            .put(&name, kind, value.as_bytes(), Expected::Any)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    let mut app = AppCtx::load(reg, decl, Some(&name), shared).map_err(|e| e.message)?;
    let url = std::sync::Mutex::new(String::new());
    let show = |u: &str| *url.lock().unwrap_or_else(|p| p.into_inner()) = u.to_string();
    let paste = || {
        let at = url.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let r = http
            .get(&at)
            .send()
            .map_err(|e| connapp_engine::Error::failure(e.to_string()))?;
        r.headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| connapp_engine::Error::failure(format!("the sandbox did not redirect ({})", r.status())))
    };
    app.login(
        Some("owner"),
        Consent::Paste {
            show: &show,
            paste: &paste,
        },
        &Silent,
    )
    .map_err(|e| format!("{name}: {}", e.message))?;
    Ok(())
}

/// `connapp refresh --all --jobs J` in `dir`; every one of the `n` apps must say ok.
fn refresh_all(bin: &str, dir: &Path, n: usize, jobs: usize) -> Result<Duration> {
    let started = Instant::now();
    let out = Command::new(bin)
        .args(["refresh", "--all", "--fresh", "--json", "--jobs", &jobs.to_string()])
        .current_dir(dir)
        .env("CONNAPP_DATA_DIR", dir.join("data"))
        .env_remove("CONNAPP_FILE")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| format!("run {bin}: {e}"))?;
    let took = started.elapsed();
    let report: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "connapp refresh --all printed no report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let ok = report["apps"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|a| a["ok"] == true).count());
    if ok != n || !out.status.success() {
        return Err(format!(
            "connapp refresh --all refreshed {ok} of {n} apps: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(took)
}

/// The anchor: `n` records under a path of their own, each written with KV
/// v2's check-and-set (`options.cas` = the version it replaces). The floor
/// is another set of its own, each record read before it is written.
struct Anchor {
    http: reqwest::blocking::Client,
    addr: String,
    token: String,
    path: String,
    n: usize,
    jobs: usize,
    version: AtomicUsize,
}

impl Anchor {
    fn seed(addr: &str, token: &str, tag: &str, n: usize, jobs: usize) -> Result<Anchor> {
        let a = Anchor {
            http: reqwest::blocking::Client::new(),
            addr: addr.trim_end_matches('/').to_string(),
            token: token.to_string(),
            path: format!("connapp-bench/{tag}-{}-{n}", std::process::id()),
            n,
            jobs,
            version: AtomicUsize::new(0),
        };
        a.write_all()?;
        Ok(a)
    }

    /// One CAS write per record, `jobs` at a time; the value is about the
    /// size of a token record.
    fn write_all(&self) -> Result<Duration> {
        let cas = self.version.fetch_add(1, Ordering::SeqCst) as u64;
        self.each("raw CAS writes", |url| self.write(url, cas))
    }

    /// Per record, a read of its current version, then a CAS write on it.
    fn read_and_write_all(&self) -> Result<Duration> {
        self.version.fetch_add(1, Ordering::SeqCst);
        self.each("reads and CAS writes", |url| {
            let read: Value = self
                .http
                .get(url)
                .header("X-Vault-Token", &self.token)
                .send()
                .and_then(|r| r.error_for_status())
                .and_then(|r| r.json())
                .map_err(|_| ())?;
            let version = read["data"]["metadata"]["version"].as_u64().ok_or(())?;
            self.write(url, version)
        })
    }

    fn write(&self, url: &str, cas: u64) -> std::result::Result<(), ()> {
        let value = "x".repeat(900);
        let r = self
            .http
            .post(url)
            .header("X-Vault-Token", &self.token)
            .json(&json!({"options": {"cas": cas}, "data": {"value": value}}))
            .send();
        match r {
            Ok(r) if r.status().is_success() => Ok(()),
            _ => Err(()),
        }
    }

    /// `work` on every record's URL, `jobs` at a time; the time it took.
    fn each(&self, what: &str, work: impl Fn(&str) -> std::result::Result<(), ()> + Sync) -> Result<Duration> {
        let next = AtomicUsize::new(0);
        let failures = AtomicUsize::new(0);
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..self.jobs {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= self.n {
                            break;
                        }
                        let url = format!("{}/v1/secret/data/{}/k{i}", self.addr, self.path);
                        if work(&url).is_err() {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let took = started.elapsed();
        match failures.load(Ordering::Relaxed) {
            0 => Ok(took),
            f => Err(format!("{f} of {} {what} failed", self.n)),
        }
    }
}
