//! Plugins: built-in set, dynamic loading, conformance of dynamic and
//! out-of-tree stores, and the host's refusals.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use connapp_host::{HostError, Registry};
use connapp_plugin_api::abi_stable::std_types::{RResult, RStr, RVec};
use connapp_plugin_api::{ErrorCode, FfiError, FfiStoreContext, StoreHandle};
use connapp_store_conformance::context;

use crate::support::{Sandbox, built, scratch};

#[test]
fn the_full_binary_has_exactly_the_expected_builtins() {
    let s = Sandbox::new(&built().full);
    let j = s.run(&["plugins", "list", "--json"], None).ok().json();
    let mut names: Vec<(String, String)> = j["plugins"]
        .as_array()
        .expect("array")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name").to_string(),
                p["origin"].as_str().expect("origin").to_string(),
            )
        })
        .collect();
    names.sort();
    let builtins = [
        "platform-generic",
        "platform-servicenow",
        "platform-zoom",
        "preset-servicenow",
        "store-file",
        "store-keyring",
        "store-vault",
    ];
    assert_eq!(names, builtins.map(|n| (n.to_string(), "builtin".to_string())));
}

#[test]
fn dist_with_a_dynamic_file_store_lists_it_with_its_path() {
    let b = built();
    let s = Sandbox::new(&b.dist_bin());
    let j = s.run(&["plugins", "list", "--json"], None).ok().json();
    let plugins = j["plugins"].as_array().expect("array");
    let file = plugins
        .iter()
        .find(|p| p["name"] == "store-file")
        .expect("store-file listed");
    assert_eq!(file["origin"], "dynamic");
    let path = file["path"].as_str().expect("path");
    assert_eq!(
        Path::new(path),
        std::fs::canonicalize(b.dist_store_file()).expect("exists")
    );
    assert_eq!(file["api_version"], connapp_plugin_api::PLUGIN_API_VERSION);
    assert_eq!(file["provides"][0]["capabilities"]["persistent"], true);
    let preset = plugins
        .iter()
        .find(|p| p["name"] == "preset-servicenow")
        .expect("preset listed");
    assert_eq!(preset["origin"], "builtin");
    let info = s.run(&["plugins", "info", "store-file"], None).ok();
    assert!(info.stdout().contains("libconnapp_store_file.so"), "{}", info.stdout());
    assert!(info.stdout().contains("persistent: yes"), "{}", info.stdout());
}

/// Answers the file store's passphrase prompt, as a human at a terminal would.
extern "C" fn test_passphrase(_: RStr<'_>) -> RResult<RVec<u8>, FfiError> {
    RResult::ROk(RVec::from_slice(b"conformance passphrase"))
}

fn interactive_context(data_dir: &Path) -> FfiStoreContext {
    FfiStoreContext {
        interactive: true,
        prompt_secret: test_passphrase,
        ..context(&[], data_dir)
    }
}

fn conformance_of_library(lib: &Path, kind: &'static str, settings: Vec<(String, String)>, prompt: bool) {
    // A registry without built-ins: only the library under test.
    let mut reg = Registry::default();
    reg.load_file(lib).unwrap_or_else(|e| panic!("{e}"));
    let reg = Arc::new(reg);
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().to_path_buf();
    let open: connapp_store_conformance::Opener = Arc::new(move || {
        let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let ctx = if prompt {
            interactive_context(&data_dir)
        } else {
            context(&pairs, &data_dir)
        };
        reg.open_store(kind, &ctx).map(|(h, _)| h).map_err(|e| match e {
            HostError::Plugin { error, .. } => error,
            other => connapp_plugin_api::StoreError::new(ErrorCode::OTHER, other.to_string()),
        })
    });
    let report = connapp_store_conformance::run(open);
    println!("{report}");
    report.assert_ok();
}

#[test]
fn conformance_of_the_dynamic_file_store() {
    // The passphrase comes through the host's prompt callback (the test
    // process has no CONNAPP_FILE_PASSPHRASE; Sandbox strips it from children).
    assert!(
        std::env::var_os("CONNAPP_FILE_PASSPHRASE").is_none(),
        "unset CONNAPP_FILE_PASSPHRASE to run the tests"
    );
    conformance_of_library(&built().dist_store_file(), "file", vec![], true);
}

#[test]
fn conformance_of_the_out_of_tree_example_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = built().example_dir.join("libconnapp_dir_store.so");
    conformance_of_library(
        &lib,
        "dir",
        vec![("path".into(), dir.path().join("kv").display().to_string())],
        false,
    );
}

/// `init`, then the declaration's store switched to the out-of-tree
/// example's `dir` store (the plugin must be on `CONNAPP_PLUGIN_PATH`).
fn use_example_store(s: &Sandbox) {
    let decl = s.init();
    let kv = s.path().join("kv");
    let text = std::fs::read_to_string(&decl).expect("read").replace(
        "kind = \"file\"",
        &format!("kind = \"dir\"\n[store.settings]\npath = \"{}\"", kv.display()),
    );
    std::fs::write(&decl, text).expect("write");
}

/// A sandbox whose declaration uses the example `dir` store from `dir`, with
/// a secret stored through it; returns the sandbox and `plugins info`.
fn example_store_from(dir: &Path) -> (Sandbox, serde_json::Value) {
    let mut s = Sandbox::new(&built().full);
    s.set_env("CONNAPP_PLUGIN_PATH", &dir.display().to_string());
    use_example_store(&s);
    s.run(&["check"], None).ok();
    s.set_secret("client-id", b"id-123");
    let j = s.run(&["secrets", "list", "--json"], None).ok().json();
    assert_eq!(j["store"]["plugin"], "example-dir-store");
    assert_eq!(j["secrets"][0]["present"], true);
    let info = s
        .run(&["plugins", "info", "example-dir-store", "--json"], None)
        .ok()
        .json();
    (s, info)
}

#[test]
fn the_out_of_tree_example_works_from_the_binary() {
    let (s, j) = example_store_from(&built().example_dir);
    // Its settings cross the ABI (API 1.6): listed, and judged offline by check.
    let setting = &j["provides"][0]["settings"][0];
    assert_eq!(
        (setting["name"].as_str(), setting["type"].as_str()),
        (Some("path"), Some("path"))
    );
    assert_eq!(setting["required"], true);
    let decl = s.path().join("connapp.toml");
    let text = std::fs::read_to_string(&decl).expect("read");
    std::fs::write(&decl, text.replacen("\npath = ", "\npth = ", 1)).expect("write");
    let out = s.run(&["check"], None).fails_with(3);
    assert!(
        out.stderr().contains("store.settings.pth") && out.stderr().contains("did you mean `path`?"),
        "{}",
        out.stderr()
    );
    assert!(
        out.stderr().contains("store.settings.path"),
        "the required one is missing too: {}",
        out.stderr()
    );
}

/// abi_stable refuses a library whose root module has fewer fields than the
/// host's; connapp loads a plugin built against the previous minor anyway
/// (checked against that minor's layout), and what it lacks is absent.
#[test]
fn a_plugin_built_against_the_previous_minor_still_loads() {
    let b = built();
    let lib = b.older_abi_dir.join("libconnapp_dir_store_older.so");
    let dir = tempfile::tempdir().expect("tempdir");
    conformance_of_library(
        &lib,
        "dir",
        vec![("path".into(), dir.path().join("kv").display().to_string())],
        false,
    );
    let (_, info) = example_store_from(&b.older_abi_dir);
    let (major, minor) = {
        let mut v = connapp_plugin_api::PLUGIN_API_VERSION.split('.');
        (
            v.next().expect("major"),
            v.next().and_then(|m| m.parse::<u32>().ok()).expect("minor"),
        )
    };
    assert_eq!(info["api_version"], format!("{major}.{}.0", minor - 1), "{info}");
    // What it has crosses (its settings, since 1.6); what it predates is absent.
    assert_eq!(info["provides"][0]["settings"][0]["name"], "path", "{info}");
}

#[test]
fn a_panicking_plugin_is_an_error_not_an_abort() {
    let b = built();
    let mut s = Sandbox::new(&b.full);
    s.set_env("CONNAPP_PLUGIN_PATH", &b.panic_dir.display().to_string());
    s.init();
    s.edit("kind = \"file\"", "kind = \"panicky\"");
    let j = s.run(&["plugins", "list", "--json"], None).ok().json();
    assert!(
        j["plugins"]
            .as_array()
            .expect("array")
            .iter()
            .any(|p| p["name"] == "fixture-panic")
    );
    let out = s.run(&["secrets", "list"], None).fails_with(4);
    assert!(out.stderr().contains("fixture-panic"), "{}", out.stderr());
    assert!(out.stderr().contains("panicked in get"), "{}", out.stderr());
    assert!(out.stderr().contains("bug in the plugin"), "{}", out.stderr());
    let out = s
        .run(&["secrets", "set", "client-id", "--from-stdin"], Some(b"abc"))
        .fails_with(4);
    assert!(out.stderr().contains("panicked in put"), "{}", out.stderr());

    // In process, too: the host survives and the next call works.
    let mut reg = Registry::default();
    reg.load_file(&b.panic_dir.join("libconnapp_fixture_plugin_panic.so"))
        .expect("load");
    let data = tempfile::tempdir().expect("tempdir");
    let (h, _): (StoreHandle, _) = reg.open_store("panicky", &context(&[], data.path())).expect("open");
    for _ in 0..3 {
        let e = h.get("k").expect_err("panics");
        assert_eq!(e.code, ErrorCode::PANIC);
    }
    assert!(h.describe().is_ok());
}

#[test]
fn a_plugin_built_for_another_abi_is_refused_naming_both_versions() {
    let b = built();
    let mut s = Sandbox::new(&b.full);
    s.set_env("CONNAPP_PLUGIN_PATH", &b.wrong_abi_dir.display().to_string());
    let out = s.run(&["plugins", "list"], None).fails_with(4);
    let err = out.stderr();
    assert!(err.contains("2.0.0"), "{err}");
    assert!(err.contains(connapp_plugin_api::PLUGIN_API_VERSION), "{err}");
    assert!(err.contains("libconnapp_fixture_plugin_wrong_abi.so"), "{err}");
    // The good plugins are still listed.
    assert!(out.stdout().contains("store-file"));
    let j = s.run(&["plugins", "list", "--json"], None).fails_with(4).json();
    assert_eq!(j["failures"].as_array().expect("array").len(), 1);
    // Other commands warn and carry on.
    s.init();
    let out = s.run(&["check"], None).ok();
    assert!(out.stderr().contains("warning: plugin not loaded"), "{}", out.stderr());
}

#[test]
fn libraries_in_writable_directories_are_refused() {
    let b = built();
    let dir = scratch();
    let lib = dir.path().join("libconnapp_dir_store.so");
    std::fs::copy(b.example_dir.join("libconnapp_dir_store.so"), &lib).expect("copy");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let mut s = Sandbox::new(&b.full);
    s.set_env("CONNAPP_PLUGIN_PATH", &dir.path().display().to_string());
    let out = s.run(&["plugins", "list"], None).fails_with(4);
    assert!(out.stderr().contains("group- or world-writable"), "{}", out.stderr());
    assert!(out.stderr().contains("chmod go-w"), "{}", out.stderr());
    assert!(!out.stdout().contains("example-dir-store"));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let out = s.run(&["plugins", "list"], None).fails_with(4);
    assert!(out.stderr().contains("the library"), "{}", out.stderr());
}

/// As OpenSSH's StrictModes: a 0755 plugin directory under a 0777 parent is
/// refused, naming the parent; so is one under a sticky /tmp-like directory.
#[test]
fn a_writable_ancestor_directory_is_refused() {
    let b = built();
    let top = scratch();
    let parent = top.path().join("shared");
    let dir = parent.join("plugins");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::copy(
        b.example_dir.join("libconnapp_dir_store.so"),
        dir.join("libconnapp_dir_store.so"),
    )
    .expect("copy");
    let mut s = Sandbox::new(&b.full);
    s.set_env("CONNAPP_PLUGIN_PATH", &dir.display().to_string());
    for mode in [0o777, 0o1777, 0o775] {
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let out = s.run(&["plugins", "list"], None).fails_with(4);
        let err = out.stderr();
        assert!(
            err.contains(&format!("the parent directory {}", parent.display())),
            "{mode:o}: {err}"
        );
        // A sticky shared directory (like /tmp) is never to be chmod'ed: move the plugin.
        if mode & 0o1000 == 0 {
            assert!(
                err.contains(&format!("chmod go-w {}", parent.display())),
                "{mode:o}: {err}"
            );
        } else {
            assert!(
                !err.contains("chmod") && err.contains("move the plugin"),
                "{mode:o}: {err}"
            );
        }
        assert!(!out.stdout().contains("example-dir-store"), "{mode:o}");
        if mode == 0o1777 {
            assert!(err.contains("sticky"), "{err}");
            // A declaration whose store only that refused plugin provides: a
            // plugin failure (exit 4) that says why, never "use another kind".
            s.declare("version = 1\n[store]\nkind = \"dir\"\n[apps.x]\ndisplay_name = \"X\"\nplatform = \"zoom\"\nusage = \"admin-managed\"\nredirect_url = \"https://acme.service-now.com/oauth_redirect.do\"\nallow_list = [\"https://acme.service-now.com/oauth_redirect.do\"]\nscopes = [\"user:read:user:admin\"]\n");
            let out = s.run(&["secrets", "list"], None).fails_with(4);
            let err = out.stderr();
            assert!(
                err.contains("store kind is not installed") && err.contains("refused"),
                "{err}"
            );
            assert!(!err.contains("use one of"), "{err}");
        }
    }
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = s.run(&["plugins", "list"], None).ok();
    assert!(out.stdout().contains("example-dir-store"), "{}", out.stdout());
}

/// A half-finished copy of a plugin (its first 3000 bytes) and a text file
/// named like a library are refused before the dynamic loader maps them
/// (which would crash the process with SIGBUS): `plugins list` exits 4
/// naming both, and every other command works with the valid plugins.
#[test]
fn broken_library_files_are_refused_and_the_rest_still_work() {
    let b = built();
    let dir = scratch();
    let good = std::fs::read(b.example_dir.join("libconnapp_dir_store.so")).expect("read");
    std::fs::write(dir.path().join("libconnapp_dir_store.so"), &good).expect("write");
    let truncated = dir.path().join("libhalf_copied.so");
    std::fs::write(&truncated, &good[..3000]).expect("write");
    let text = dir.path().join("libnotes.so");
    std::fs::write(&text, "this is not a library\n").expect("write");
    let mut s = Sandbox::new(&b.full);
    s.set_env("CONNAPP_PLUGIN_PATH", &dir.path().display().to_string());

    let out = s.run(&["plugins", "list"], None).fails_with(4);
    let err = out.stderr();
    assert!(
        err.contains(&format!(
            "{}: refused: not a loadable plugin library",
            truncated.display()
        )),
        "{err}"
    );
    assert!(err.contains("truncated"), "{err}");
    assert!(
        err.contains(&format!(
            "{}: refused: not a loadable plugin library: not an ELF file",
            text.display()
        )),
        "{err}"
    );
    assert!(out.stdout().contains("example-dir-store"), "{}", out.stdout());
    let j = s.run(&["plugins", "list", "--json"], None).fails_with(4).json();
    assert_eq!(j["failures"].as_array().expect("failures").len(), 2, "{j}");

    // The other commands warn and carry on, with the valid dynamic plugin too.
    use_example_store(&s);
    let out = s.run(&["check"], None).ok();
    assert!(out.stderr().contains("warning: plugin not loaded"), "{}", out.stderr());
    s.set_secret("client-id", b"id-123");
    let j = s.run(&["secrets", "list", "--json"], None).ok().json();
    assert_eq!(j["store"]["plugin"], "example-dir-store");
    // `token` reads the store through the dynamic plugin and fails only for its own reason.
    let out = s.run(&["token"], None);
    assert_ne!(out.code(), Some(4), "{}", out.stderr());
    assert!(out.code().is_some(), "killed by a signal: {}", out.stderr());
}

#[test]
fn a_dynamic_plugin_cannot_shadow_a_builtin() {
    let b = built();
    let mut s = Sandbox::new(&b.full);
    s.set_env(
        "CONNAPP_PLUGIN_PATH",
        &b.dist_store_file().parent().expect("dir").display().to_string(),
    );
    let out = s.run(&["plugins", "list"], None).fails_with(4);
    assert!(
        out.stderr().contains("already loaded from built-in"),
        "{}",
        out.stderr()
    );
}

#[test]
#[ignore = "needs OpenBao; `cargo xtask test` starts it and runs this"]
fn conformance_of_the_dynamic_vault_store_on_openbao() {
    let addr = std::env::var("CONNAPP_TEST_BAO_ADDR").expect("CONNAPP_TEST_BAO_ADDR: run through `cargo xtask test`");
    let token = std::env::var("CONNAPP_TEST_BAO_TOKEN").expect("CONNAPP_TEST_BAO_TOKEN");
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).expect("write");
    let prefix = format!("connapp-e2e/dynamic-{}", std::process::id());
    conformance_of_library(
        &built().dist_store_vault(),
        "vault",
        vec![
            ("addr".into(), addr),
            ("token_file".into(), token_file.display().to_string()),
            ("prefix".into(), prefix),
        ],
        false,
    );
}

/// A consumer platform is a plugin too: the out-of-tree example's Acme Desk
/// says what its targets are (callback, instance URL, the `workspace`
/// setting) and judges the setting; nothing in connapp names it. connapp has
/// no client that writes its records, and says so.
#[test]
fn an_out_of_tree_consumer_platform_describes_and_checks_its_targets() {
    let mut s = Sandbox::new(&built().full);
    s.set_env("CONNAPP_PLUGIN_PATH", &built().acme_dir.display().to_string());
    const CALLBACK: &str = "https://team.desk.acme.example/oauth/callback";
    let decl = |target: &str| {
        format!(
            "version = 1\n[store]\nkind = \"file\"\n[apps.crm]\ndisplay_name = \"Acme CRM\"\nplatform = \"acme-id\"\n\
             redirect_url = \"{CALLBACK}\"\nallow_list = [\"{CALLBACK}\"]\npresets = [\"acme-profile\"]\nscopes = []\n\
             [apps.crm.target]\nkind = \"acme-desk\"\ninstance = \"team\"\n{target}\n"
        )
    };
    let path = s.path().join("connapp.toml");
    let lines = decl("").lines().count();

    // The plugin's rule for its setting, at the setting's line, in its words.
    std::fs::write(&path, decl("workspace = \"Sales Team\"")).expect("write");
    let out = s.run(&["check"], None).fails_with(3);
    let text = format!("{}{}", out.stdout(), out.stderr());
    assert!(text.contains("error[acme-desk-workspace]"), "{text}");
    assert!(
        text.contains(&format!("connapp.toml:{lines}:")),
        "at the setting: {text}"
    );
    assert!(text.contains("write `workspace = \"salesteam\"`"), "{text}");

    // A key its profile does not name is an unknown field, with its settings.
    std::fs::write(&path, decl("workspce = \"sales\"")).expect("write");
    let text = s.run(&["check"], None).fails_with(3).stderr();
    assert!(
        text.contains("error[unknown-field]") && text.contains("did you mean `workspace`?"),
        "{text}"
    );

    // Its callback is the redirect the app must use.
    let wrong = decl("workspace = \"sales\"").replace(
        &format!("redirect_url = \"{CALLBACK}\""),
        "redirect_url = \"https://team.desk.acme.example/callback\"",
    );
    std::fs::write(&path, wrong).expect("write");
    let text = s.run(&["check"], None).fails_with(3).stderr();
    assert!(
        text.contains("error[redirect-target]") && text.contains(CALLBACK),
        "{text}"
    );

    // A good one: the target as the plugin described it.
    std::fs::write(&path, decl("workspace = \"sales\"")).expect("write");
    let json = s.run(&["check", "--json"], None).ok().json();
    assert_eq!(
        json["apps"][0]["target"],
        serde_json::json!({"kind": "acme-desk", "instance_url": "https://team.desk.acme.example", "instance": "team",
                           "auth": "basic", "redirect_url": CALLBACK, "workspace": "sales"}),
        "{json}"
    );
    // No client writes Acme Desk's records.
    let text = s.run(&["plan"], None).fails_with(3).stderr();
    assert!(
        text.contains("connapp knows no consumer of kind \"acme-desk\""),
        "{text}"
    );
}
