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
    let manifest = work.join("connapp-plugin-api-2/Cargo.toml");
    let text = std::fs::read_to_string(&manifest)?;
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .context("the plugin API's version line")?
        .to_string();
    let current = format!("version = \"{version}\"");
    ensure!(text.contains(&current), "plugin API version not found in its manifest");
    std::fs::write(&manifest, text.replacen(&current, "version = \"2.0.0\"", 1))?;
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
    println!("{}", e2e.display());
    Ok(e2e)
}
