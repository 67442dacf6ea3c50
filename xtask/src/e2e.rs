//! `cargo xtask e2e-build`: everything the end-to-end tests drive, built once
//! into `target/e2e/` (the dist tree, the fully built-in and the
//! fault-injection binaries, the panicking fixture, the out-of-tree example
//! store and the plugin built against plugin API 2.0.0).
//!
//! `cargo xtask test` runs this before the tests and tells them where
//! (`CONNAPP_E2E_DIR`), so each test process — nextest runs every test in
//! its own — starts at once. A test run some other way (`cargo test`, a bare
//! `cargo nextest run`) calls this itself under a file lock (`tests/e2e/support.rs`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use crate::{cargo, install_file, root, run_cmd, set_mode, target_dir};

/// Where the e2e tree goes: `target/e2e`, unless a directory above the
/// target directory fails the plugin trust check (a checkout under /tmp,
/// say), in which case connapp would rightly refuse every plugin built
/// there; then `$HOME/.cache/connapp-e2e/<target path>`.
pub fn dir() -> Result<PathBuf> {
    let target = target_dir();
    std::fs::create_dir_all(&target)?;
    let target = std::fs::canonicalize(&target)?;
    if connapp_host::trusted_directory(&target).is_ok() {
        return Ok(target.join("e2e"));
    }
    let home = PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?);
    let name: String = target
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let cache = home.join(".cache");
    std::fs::create_dir_all(&cache)?;
    set_mode(&cache, 0o700)?;
    let dir = cache.join("connapp-e2e").join(name);
    std::fs::create_dir_all(&dir)?;
    if let Err(why) = connapp_host::trusted_directory(&cache) {
        bail!(
            "neither {} nor {} is a directory connapp trusts plugins in: {why}",
            target.display(),
            cache.display()
        );
    }
    eprintln!(
        "xtask: {} lies under a directory connapp does not trust plugins in; the e2e tree goes to {}",
        target.display(),
        dir.display()
    );
    Ok(dir)
}

/// Copies a built plugin alone into `E2E/NAME/` (0755, as a trusted plugin directory).
pub fn plugin_dir(e2e: &Path, name: &str, lib: &Path) -> Result<PathBuf> {
    let dir = e2e.join(name);
    std::fs::create_dir_all(&dir)?;
    set_mode(&dir, 0o755)?;
    let dest = dir.join(lib.file_name().context("plugin file name")?);
    install_file(lib, &dest)?;
    set_mode(&dest, 0o755)?;
    Ok(dir)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)?.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()))?;
        } else {
            std::fs::copy(&p, to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Builds everything into [`dir`]; prints that directory as the last line on stdout.
pub fn build() -> Result<PathBuf> {
    let target = target_dir();
    let e2e = dir()?;
    std::fs::create_dir_all(&e2e)?;
    let dist: PathBuf = e2e.join("dist");
    crate::dist(&[
        "--dev".into(),
        "--dynamic".into(),
        "store-file,store-vault".into(),
        "--out".into(),
        dist.display().to_string(),
    ])?;
    run_cmd(cargo().args(["build", "-q", "-p", "connapp-cli", "--features", "fault-injection"]))?;
    install_file(&target.join("debug/connapp"), &e2e.join("connapp-fault"))?;
    // The fully built-in binary, built after dist so target/debug/connapp is this one.
    run_cmd(cargo().args(["build", "-q", "-p", "connapp-cli"]))?;
    install_file(&target.join("debug/connapp"), &e2e.join("connapp-full"))?;

    run_cmd(cargo().args([
        "rustc",
        "-q",
        "-p",
        "connapp-fixture-plugin-panic",
        "--lib",
        "--features",
        "cdylib",
        "--crate-type",
        "cdylib",
    ]))?;
    plugin_dir(&e2e, "panic", &target.join("debug/libconnapp_fixture_plugin_panic.so"))?;
    std::fs::create_dir_all(e2e.join("scratch"))?;
    set_mode(&e2e.join("scratch"), 0o755)?;

    // Out of tree: the third-party examples, against the real plugin API.
    let oot = target.join("out-of-tree");
    for (example, dir, library) in crate::EXAMPLES {
        run_cmd(
            cargo()
                .args(["build", "-q", "--manifest-path"])
                .arg(root().join(example).join("Cargo.toml"))
                .env("CARGO_TARGET_DIR", &oot),
        )?;
        plugin_dir(&e2e, dir, &oot.join("debug").join(library))?;
    }

    // Out of tree: a plugin built against plugin API 2.0.0 (a copy of the
    // API crate with its version bumped), which the host must refuse.
    let work = e2e.join("wrong-abi-src");
    let _ = std::fs::remove_dir_all(&work);
    copy_dir(&root().join("tests/fixtures/plugin-wrong-abi"), &work.join("plugin"))?;
    copy_dir(
        &root().join("crates/connapp-plugin-api"),
        &work.join("connapp-plugin-api-2"),
    )?;
    set_api_version(&work.join("connapp-plugin-api-2/Cargo.toml"), |_| "2.0.0".into())?;
    std::fs::copy(root().join("Cargo.lock"), work.join("plugin/Cargo.lock"))?;
    run_cmd(
        cargo()
            .args(["build", "-q", "--manifest-path"])
            .arg(work.join("plugin/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &oot),
    )?;
    plugin_dir(
        &e2e,
        "wrong-abi",
        &oot.join("debug/libconnapp_fixture_plugin_wrong_abi.so"),
    )?;
    older_minor_plugin(&e2e, &oot)?;
    println!("{}", e2e.display());
    Ok(e2e)
}

/// Rewrites the package version of the manifest at `path` to `to(current)`.
fn set_api_version(path: &Path, to: impl FnOnce(&str) -> String) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .context("the plugin API's version line")?
        .to_string();
    let current = format!("version = \"{version}\"");
    let new = format!("version = \"{}\"", to(&version));
    std::fs::write(path, text.replacen(&current, &new, 1))?;
    Ok(())
}

/// Out of tree: the example store built against the previous minor of the
/// plugin API — a copy of the API crate with its version one minor lower and
/// without what this minor appended to the root module (the `api-X.Y {` …
/// `} api-X.Y` regions) — which the host must still load.
fn older_minor_plugin(e2e: &Path, oot: &Path) -> Result<()> {
    let work = e2e.join("older-abi-src");
    let _ = std::fs::remove_dir_all(&work);
    let api = work.join("connapp-plugin-api");
    copy_dir(&root().join("crates/connapp-plugin-api"), &api)?;
    let mut current = (0, 0);
    set_api_version(&api.join("Cargo.toml"), |v| {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        current = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        format!("{}.{}.0", current.0, current.1.saturating_sub(1))
    })?;
    let (major, minor) = current;
    ensure!(minor > 0, "the plugin API {major}.{minor} has no previous minor");
    // What this minor appended, cut out.
    let lib = api.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib)?;
    let (begin, end) = (
        format!("// api-{major}.{minor} {{"),
        format!("// }} api-{major}.{minor}"),
    );
    let mut kept = String::new();
    let mut cutting = false;
    let mut cut = 0;
    for line in source.lines() {
        if line.trim() == begin {
            cutting = true;
            cut += 1;
        } else if line.trim() == end {
            cutting = false;
        } else if !cutting {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    ensure!(
        cut > 0 && !cutting,
        "no complete `{begin}` region in the plugin API: mark what {major}.{minor} appended to the root module"
    );
    std::fs::write(&lib, kept)?;
    // The example store, renamed so its library sits beside the current build's.
    let plugin = work.join("plugin");
    copy_dir(&root().join("examples/third-party-store"), &plugin)?;
    let manifest = plugin.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)?;
    let text = text
        .replacen("name = \"connapp-dir-store\"", "name = \"connapp-dir-store-older\"", 1)
        .replacen("../../crates/connapp-plugin-api", "../connapp-plugin-api", 1);
    // Its dev-dependencies (the conformance suite) are not built here.
    let text = match text.find("[dev-dependencies]") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    std::fs::write(&manifest, text)?;
    run_cmd(
        cargo()
            .args(["build", "-q", "--manifest-path"])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", oot),
    )?;
    plugin_dir(e2e, "older-abi", &oot.join("debug/libconnapp_dir_store_older.so"))?;
    Ok(())
}
