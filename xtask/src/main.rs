//! `cargo xtask`: connapp's build, test and demo automation, in Rust so it
//! needs nothing but cargo.
//!
//! - `cargo xtask demo` — the main job, end to end, on embedded defaults.
//! - `cargo xtask test` — installs what the tests need, then fmt, clippy and
//!   every test (this is what CI runs).
//! - `cargo xtask dist [--builtin a,b] [--dynamic c,d] [--dev] [--out DIR]` —
//!   assembles `target/dist/connapp/` (binary, dynamic plugins, man page,
//!   completions).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

mod bench;
mod demo;
mod dist;
mod e2e;
mod fleet;
mod fuzz;
mod hotpath;
mod test;

use bench::*;
use demo::*;
use dist::*;
use test::*;

/// Plugins connapp ships: (name, package).
const PLUGINS: &[(&str, &str)] = &[
    ("store-file", "connapp-store-file"),
    ("preset-servicenow", "connapp-preset-servicenow"),
    ("platform-zoom", "connapp-platform-zoom"),
    ("platform-generic", "connapp-platform-generic"),
    ("platform-servicenow", "connapp-platform-servicenow"),
    ("store-vault", "connapp-store-vault"),
    ("store-keyring", "connapp-store-keyring"),
];

/// Third-party plugins built out of tree, each its own workspace against the
/// plugin API alone: (directory, e2e plugin directory name, library).
pub(crate) const EXAMPLES: &[(&str, &str, &str)] = &[
    ("examples/third-party-store", "example", "libconnapp_dir_store.so"),
    (
        "examples/third-party-platform",
        "acme-id",
        "libconnapp_platform_acme_id.so",
    ),
];

const USAGE: &str = "usage: cargo xtask <command>

commands:
  demo [--store S]         run the main job on embedded defaults (S: file, vault, keyring)
  test                     install test prerequisites, then fmt, clippy and all tests (what CI runs)
  fuzz [TARGET] [--seconds N]
                           coverage-guided fuzzing with libFuzzer (stable toolchain), N s per target
                           (default 60); targets: declaration, webhook, token_answer, plugin_precheck
  e2e-build                build what the end-to-end tests drive into target/e2e (test does this first)
  bench [--quick]          speed targets: sandbox throughput and start-up, connapp token vs bao kv get,
                           warm token with vs without the lease, 3 hosts racing one expiry vs one alone,
                           webhook serve vs Node.js (--quick: every benchmark once, small, not judged)
  dist [options]           assemble target/dist/connapp
      --builtin a,b        plugins linked into the binary (default: all not listed as dynamic)
      --dynamic c,d        plugins shipped as dynamic libraries in lib/connapp/plugins
      --dev                debug build (fast; for tests)
      --no-sandbox         leave `connapp sandbox` (the embedded Zoom and ServiceNow) out
      --out DIR            output directory (default: target/dist/connapp)

plugins: store-file, store-vault, store-keyring, preset-servicenow, platform-zoom, platform-generic,
         platform-servicenow";

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => {
            let store = match args.get(1).map(String::as_str) {
                None => "file".to_string(),
                Some("--store") => args.get(2).context("--store needs file, vault or keyring")?.clone(),
                Some(other) => bail!("unknown demo option {other:?}\n\n{USAGE}"),
            };
            demo(&store)
        }
        Some("test") => test(),
        Some("dist") => dist(&args[1..]).map(|_| ()),
        Some("bench") => match args.get(1).map(String::as_str) {
            None => bench(Mode { quick: false }),
            Some("--quick") => bench(Mode { quick: true }),
            Some(other) => bail!("unknown bench option {other:?}; the one option is --quick"),
        },
        Some("e2e-build") => e2e::build().map(|_| ()),
        Some("fuzz") => fuzz::run(&args[1..]),
        // The demo's stand-in browser (connapp opens it through $BROWSER).
        Some("browse") => browse(args.get(1).context("browse needs a URL")?),
        Some("help" | "--help" | "-h") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

pub(crate) fn run_cmd(c: &mut Command) -> Result<()> {
    let shown = format!(
        "{} {}",
        c.get_program().to_string_lossy(),
        c.get_args().map(OsStr::to_string_lossy).collect::<Vec<_>>().join(" ")
    );
    eprintln!("$ {shown}");
    let status = c.status().with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Which of a server's pipes says where it listens.
pub(crate) enum Banner {
    Stdout,
    Stderr,
}

/// Starts the server `cmd` with no stdin and its `banner` pipe piped (the
/// caller sets up the other stream), reads that pipe's first line and hands
/// it with the child to `work`; the server is stopped afterwards, also when
/// `work` fails.
pub(crate) fn serving<T>(
    cmd: &mut Command,
    what: &str,
    banner: Banner,
    work: impl FnOnce(&str, &mut std::process::Child) -> Result<T>,
) -> Result<T> {
    use std::io::{BufRead, BufReader};
    cmd.stdin(Stdio::null());
    match banner {
        Banner::Stdout => cmd.stdout(Stdio::piped()),
        Banner::Stderr => cmd.stderr(Stdio::piped()),
    };
    let mut child = cmd.spawn().with_context(|| format!("start {what}"))?;
    let result = (|| {
        let mut line = String::new();
        match banner {
            Banner::Stdout => BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?,
            Banner::Stderr => BufReader::new(child.stderr.take().context("stderr")?).read_line(&mut line)?,
        };
        work(&line, &mut child)
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The first `http://` address in `line`.
pub(crate) fn address_in(line: &str, what: &str) -> Result<String> {
    line.split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(str::to_string)
        .with_context(|| format!("{what} printed no address: {line:?}"))
}

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// Copies `from` to `to` by a new file renamed into place: a test process
/// may be running the old binary or have the old plugin mapped (overwriting
/// it in place fails with "text file busy", or corrupts the mapping).
pub(crate) fn install_file(from: &Path, to: &Path) -> Result<()> {
    let name = to.file_name().context("a file name")?.to_string_lossy().into_owned();
    let tmp = to.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let done = std::fs::copy(from, &tmp)
        .with_context(|| format!("copy {} to {}", from.display(), tmp.display()))
        .and_then(|_| {
            std::fs::rename(&tmp, to).with_context(|| format!("rename {} to {}", tmp.display(), to.display()))
        });
    if done.is_err() {
        // No half-copied temporary left beside the tree.
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", path.display()))?;
    }
    let _ = (path, mode);
    Ok(())
}
