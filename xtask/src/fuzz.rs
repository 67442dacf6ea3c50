//! `cargo xtask fuzz [TARGET] [--seconds N] [--jobs J]`: coverage-guided
//! fuzzing with libFuzzer (the `libfuzzer-sys` crate) on the one stable
//! toolchain.
//!
//! cargo-fuzz needs nightly for its sanitizer flags; the coverage
//! instrumentation libFuzzer feeds on does not. So this builds `fuzz/` (a
//! cargo-fuzz layout, its own workspace) with stable codegen flags —
//! `-Cpasses=sancov-module` plus SanitizerCoverage's inline 8-bit counters,
//! PC table and compare tracing, debug assertions and overflow checks on —
//! into `target/fuzz/`, then runs each target for N seconds with its
//! corpus in `target/fuzz/corpus/TARGET` (seeded from `fuzz/seeds/TARGET`
//! and, for the declaration, from the bad-declaration corpus) and writes
//! any crash to `target/fuzz/artifacts/TARGET/`. A crash found becomes a
//! regression test next to the code it broke.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{root, run_cmd, target_dir};

pub const TARGETS: &[&str] = &["declaration", "webhook", "token_answer", "plugin_precheck"];

fn host_triple() -> Result<String> {
    let out = Command::new("rustc").arg("-vV").output().context("run rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV names no host")
}

const FLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
    "-Cdebug-assertions",
    "-Coverflow-checks",
];

/// The build of every target with the fuzz flags, and where its binaries land.
fn build_command() -> Result<(Command, PathBuf)> {
    let triple = host_triple()?;
    let dir = target_dir().join("fuzz");
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // --target keeps the flags off build scripts and proc macros.
    c.current_dir(root().join("fuzz"))
        .args(["build", "--release", "--bins", "--target", &triple])
        .env("CARGO_TARGET_DIR", &dir)
        .env("RUSTFLAGS", FLAGS.join(" "));
    Ok((c, dir.join(triple).join("release")))
}

/// Builds every target; returns the directory holding the binaries.
pub fn build() -> Result<PathBuf> {
    let (mut c, bins) = build_command()?;
    run_cmd(&mut c)?;
    Ok(bins)
}

/// A build of every target going on in the background (its output in
/// `target/fuzz-build.log`), so `cargo xtask test` can do light work meanwhile.
pub struct Building {
    child: std::process::Child,
    bins: PathBuf,
    log: PathBuf,
}

/// Starts [`build`] in the background.
pub fn start_build() -> Result<Building> {
    let (mut c, bins) = build_command()?;
    let log = target_dir().join("fuzz-build.log");
    let file = std::fs::File::create(&log)?;
    let child = c
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .context("start the fuzz build")?;
    Ok(Building { child, bins, log })
}

impl Building {
    /// Waits for the build; on failure its log is the error.
    pub fn finish(mut self) -> Result<PathBuf> {
        let status = self.child.wait()?;
        if !status.success() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            bail!("the fuzz targets do not build ({status}):\n{log}");
        }
        Ok(std::mem::take(&mut self.bins))
    }
}

impl Drop for Building {
    fn drop(&mut self) {
        // Still running only when the caller gave up early: stop it.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Seeds that need no file in the repository: the head of a real shared
/// library (the ELF header and program headers) for the pre-check.
fn generated_seeds(target: &str, dir: &Path) -> Result<()> {
    if target != "plugin_precheck" {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let libs: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && p.contains(".so"))
        .collect();
    for (i, lib) in libs.iter().take(3).enumerate() {
        let bytes = std::fs::read(lib).with_context(|| format!("read {lib}"))?;
        let head = &bytes[..bytes.len().min(16 * 1024)];
        std::fs::write(dir.join(format!("head-{i}")), head)?;
    }
    Ok(())
}

/// What one run found, from libFuzzer's own closing lines.
struct Stats {
    execs: String,
    cov: String,
    ft: String,
    corpus: String,
}

fn stats(log: &str) -> Stats {
    let mut s = Stats {
        execs: "?".into(),
        cov: "?".into(),
        ft: "?".into(),
        corpus: "?".into(),
    };
    for line in log.lines() {
        if let Some(v) = line.strip_prefix("stat::number_of_executed_units: ") {
            s.execs = v.trim().into();
        }
        // "#123456\tDONE   cov: 812 ft: 2904 corp: 311/28Kb ..." (or the last pulse)
        if line.starts_with('#') && line.contains("cov: ") {
            let field = |k: &str| {
                line.split_whitespace()
                    .skip_while(|w| *w != k)
                    .nth(1)
                    .map(str::to_string)
            };
            if let Some(v) = field("cov:") {
                s.cov = v;
            }
            if let Some(v) = field("ft:") {
                s.ft = v;
            }
            if let Some(v) = field("corp:") {
                s.corpus = v;
            }
        }
    }
    s
}

pub fn run(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut only = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .context("--seconds needs a number")?
                    .parse()
                    .context("--seconds needs a whole number")?
            }
            t if TARGETS.contains(&t) => only = Some(t.to_string()),
            other => bail!(
                "unknown fuzz target or option {other:?}; targets: {}",
                TARGETS.join(", ")
            ),
        }
    }
    let bins = build()?;
    campaign(only.as_deref(), seconds, &bins)
}

/// What `cargo xtask test` runs on targets built as `cargo xtask fuzz`
/// builds them (`bins`): each for a second on its seeds — a smoke run
/// that proves the fuzzers still build and start, not a campaign.
pub fn smoke(bins: &Path) -> Result<()> {
    campaign(None, 1, bins)
}

/// Runs `only` (or each target) from `bins` for `seconds`.
fn campaign(only: Option<&str>, seconds: u64, bins: &Path) -> Result<()> {
    let fuzz_dir = target_dir().join("fuzz");
    let mut failed = Vec::new();
    for target in TARGETS.iter().filter(|t| only.is_none_or(|o| o == **t)) {
        let corpus = fuzz_dir.join("corpus").join(target);
        let artifacts = fuzz_dir.join("artifacts").join(target);
        let generated = fuzz_dir.join("seeds").join(target);
        std::fs::create_dir_all(&corpus)?;
        std::fs::create_dir_all(&artifacts)?;
        generated_seeds(target, &generated)?;
        let mut c = Command::new(bins.join(target));
        c.arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            .arg("-rss_limit_mb=2048")
            .arg("-timeout=10")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg(&corpus);
        let seeds = root().join("fuzz/seeds").join(target);
        if seeds.is_dir() {
            c.arg(&seeds);
        }
        if generated.is_dir() {
            c.arg(&generated);
        }
        if *target == "declaration" {
            // good.toml and every bad declaration (libFuzzer reads directories recursively).
            c.arg(root().join("tests/corpus"));
        }
        // Structure, not size, is what these explore (the size limits have their own tests).
        c.arg("-max_len=16384");
        eprintln!("xtask fuzz: {target} for {seconds} s");
        let out = c
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("run the {target} fuzzer"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let log_path = fuzz_dir.join(format!("{target}.log"));
        std::fs::write(&log_path, log.as_bytes())?;
        let s = stats(&log);
        if out.status.success() {
            println!(
                "fuzz {target}: {seconds} s, {} executions, coverage {} edges, {} features, corpus {}; no crash",
                s.execs, s.cov, s.ft, s.corpus
            );
        } else {
            println!(
                "fuzz {target}: CRASH after {} executions (see {} and {})",
                s.execs,
                log_path.display(),
                artifacts.display()
            );
            failed.push(*target);
        }
    }
    if !failed.is_empty() {
        bail!("crashes in {}", failed.join(", "));
    }
    Ok(())
}
