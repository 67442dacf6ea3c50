//! The architecture test (like rust-analyzer's tidy): the rules of
//! ARCHITECTURE.md that the code map promises, checked on the tree itself, so
//! breaking one fails CI instead of waiting for a review.
//!
//! Known debt (issue 12, the engine split) is listed explicitly: the CLI
//! still holds the engine, so its HTTP and platform dependencies are frozen
//! here — a new one fails, and the list only shrinks.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::support::root;

fn metadata() -> Value {
    let out = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("metadata json")
}

/// Normal (not dev, not build) dependencies of each workspace package.
fn deps() -> Vec<(String, String, BTreeSet<String>)> {
    metadata()["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("deps")
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().expect("name").to_string())
                .collect();
            (
                p["name"].as_str().expect("name").to_string(),
                p["manifest_path"].as_str().expect("path").to_string(),
                deps,
            )
        })
        .collect()
}

fn of(name: &str) -> BTreeSet<String> {
    deps()
        .into_iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("no package {name}"))
        .2
}

/// Every `.rs` file below `dir`, subdirectories included.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Fails when the code (not the tests) of any file below `dir` (relative to
/// the root) contains one of `banned`; `what` says what that would be.
fn forbid(dir: &str, banned: &[&str], what: &str) {
    for p in rust_files(&root().join(dir)) {
        if p.file_name().is_some_and(|n| n.to_string_lossy().ends_with("tests.rs")) {
            continue;
        }
        let text = std::fs::read_to_string(&p).expect("read");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for b in banned {
            assert!(!code.contains(b), "{}: contains {b}: {what}", p.display());
        }
    }
}

/// The connapp crates `package` depends on beyond `allowed`.
fn ours_beyond(package: &str, allowed: &[&str]) -> Vec<String> {
    of(package)
        .into_iter()
        .filter(|d| d.starts_with("connapp-") && !allowed.contains(&d.as_str()))
        .collect()
}

/// Fails, naming the rest and `why`, when `krate` depends on more than `allowed`.
fn depends_only_on(krate: &str, allowed: &BTreeSet<String>, why: &str) {
    let extra: Vec<_> = of(krate).difference(allowed).cloned().collect();
    assert!(extra.is_empty(), "{krate} depends on {extra:?} as well: {why}");
}

/// Fails, naming it and `why`, when `krate` depends on any of `banned`.
fn depends_on_none(krate: &str, banned: &[&str], why: &str) {
    let deps = of(krate);
    for b in banned {
        assert!(!deps.contains(*b), "{krate} depends on {b}; {why}");
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The core does no IO: no IO, network, async or FFI dependency, and no
/// file, environment, process, clock or socket access in its code.
#[test]
fn the_core_does_no_io() {
    let allowed = set(&[
        "serde",
        "serde_json",
        "toml",
        "url",
        "thiserror",
        "strsim",
        "serde_path_to_error",
        // A fleet's inventory: parsed from the text the owner read (`from_reader` over bytes).
        "csv",
    ]);
    depends_only_on("connapp-core", &allowed, "the core must stay pure");
    assert!(
        rust_files(&root().join("crates/connapp-core/src"))
            .iter()
            .any(|p| p.ends_with("decl/app.rs")),
        "the walk reaches subdirectories"
    );
    forbid(
        "crates/connapp-core/src",
        &[
            "std::fs",
            "std::env",
            "std::process",
            "std::thread",
            "SystemTime",
            "Instant::now",
            "TcpStream",
            "TcpListener",
        ],
        "IO; the core does no IO",
    );
}

/// Plugins depend on nothing of connapp but the plugin API crate.
#[test]
fn plugins_depend_only_on_the_api_crate() {
    for (name, manifest, deps) in deps() {
        if !Path::new(&manifest).starts_with(root().join("plugins")) {
            continue;
        }
        let ours: Vec<_> = deps
            .iter()
            .filter(|d| d.starts_with("connapp-") && *d != "connapp-plugin-api")
            .collect();
        assert!(ours.is_empty(), "plugin {name} depends on {ours:?}");
    }
}

/// The ABI crate stands alone, and only it and the host see abi_stable.
#[test]
fn the_abi_stays_behind_the_api_crate_and_the_host() {
    let api = of("connapp-plugin-api");
    assert!(
        api.iter().all(|d| !d.starts_with("connapp-")),
        "connapp-plugin-api depends on {api:?}"
    );
    for (name, _, deps) in deps() {
        if deps.contains("abi_stable") {
            assert!(
                name == "connapp-plugin-api" || name == "connapp-host",
                "{name} depends on abi_stable directly; use the API crate's re-export"
            );
        }
    }
}

/// The CLI's dependencies are frozen at today's (issue 12 moves the engine
/// out of it: the webhook server's axum/hyper/tower-http, the HTTP client and
/// the OAuth edge have left for `connapp-engine` and the platform clients;
/// the platform clients themselves and the sandbox follow). A new
/// dependency fails here: logic belongs in a library.
#[test]
fn the_cli_takes_no_new_dependencies() {
    let known = set(&[
        // Rendering for a terminal (colour), what clap itself uses.
        "anstream",
        "anstyle",
        // A spinner on long steps, on a terminal: presentation, like colour.
        "indicatif",
        // Durations on the command line (`--overlap 24h`): argument parsing.
        "humantime",
        // Ctrl-C during a batch run: stop starting apps, let those running finish (the front
        // end's own terminal signal; the engine's runner only hears "stop" from its observer).
        "signal-hook",
        "anyhow",
        "clap",
        "clap_complete",
        "clap_mangen",
        "connapp-clients",
        "connapp-core",
        "connapp-engine",
        "connapp-host",
        "connapp-platform-generic",
        "connapp-platform-servicenow",
        "connapp-platform-zoom",
        "connapp-plugin-api",
        "connapp-preset-servicenow",
        "connapp-sandbox",
        "connapp-store-file",
        "connapp-store-keyring",
        "connapp-store-vault",
        "rpassword",
        "secrecy",
        "serde",
        "serde_json",
        "tokio",
        "toml",
        "tracing",
        "tracing-subscriber",
        "webbrowser",
        "zeroize",
    ]);
    depends_only_on("connapp-cli", &known, "logic belongs in a library");
}

/// The CLI does no HTTP of its own: no HTTP client, no OAuth edge, no
/// platform client; it asks the engine and `connapp-clients`.
#[test]
fn the_cli_holds_no_http() {
    depends_on_none(
        "connapp-cli",
        &[
            "reqwest",
            "hyper",
            "axum",
            "connapp-oauth",
            "oauth2",
            // The platform clients come assembled (connapp-clients).
            "connapp-zoom",
            "connapp-servicenow",
        ],
        "HTTP belongs below the CLI",
    );
    forbid(
        "crates/connapp-cli/src",
        &["reqwest::", "connapp_oauth::"],
        "HTTP belongs in the engine or a platform client",
    );
}

/// The environment (directories, declaration discovery, opening the store)
/// is the engine's, and the FFI context a store is opened with is the
/// host's: the CLI writes no `extern "C"` glue and no directory lookup.
#[test]
fn the_cli_builds_no_ffi_context_and_finds_no_directories() {
    depends_on_none(
        "connapp-cli",
        &["directories", "abi_stable"],
        "the environment belongs to the engine",
    );
    forbid(
        "crates/connapp-cli/src",
        &["extern \"C\"", "FfiStoreContext", "ProjectDirs"],
        "the host builds the FFI context; the engine's Environment finds the directories",
    );
}

/// The platform clients read the time from the clock their owner gave the
/// engine (`Shared::now`), never from the system behind its back.
#[test]
fn the_clients_take_the_owners_clock() {
    for dir in [
        "crates/connapp-servicenow/src",
        "crates/connapp-zoom/src",
        "crates/connapp-clients/src",
    ] {
        forbid(
            dir,
            &["tokens::now()", "SystemTime::now()"],
            "time comes from the owner's clock (Shared::now)",
        );
    }
}

/// The engine's `platform` module (what the plugins say about platforms)
/// stands below the token service: `tokens` uses it, never the other way.
#[test]
fn platform_knowledge_does_not_depend_on_the_token_service() {
    forbid(
        "crates/connapp-engine/src/platform",
        &["crate::tokens", "AppCtx"],
        "platform stands below tokens",
    );
    let text = std::fs::read_to_string(root().join("crates/connapp-engine/src/platform.rs")).expect("read");
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    for b in ["crate::tokens", "AppCtx"] {
        assert!(
            !code.contains(b),
            "platform.rs contains {b}: platform stands below tokens"
        );
    }
}

/// Zoom and ServiceNow knowledge lives in their clients (`connapp-zoom`,
/// `connapp-servicenow`), their plugins and the crate that assembles the
/// clients; the code of the core, the plugin API, the host, the edge, the
/// engine and the CLI names neither — except the files listed here, each with
/// its reason (the list only shrinks).
#[test]
fn platform_names_stay_in_their_crates() {
    let allowed: &[(&str, &str)] = &[
        (
            "crates/connapp-cli/src/builtins.rs",
            "links the built-in plugin crates, which carry the names",
        ),
        (
            "crates/connapp-cli/src/cmd_sandbox.rs",
            "`connapp sandbox` runs the embedded Zoom and ServiceNow",
        ),
        (
            "crates/connapp-cli/src/cli.rs",
            "`connapp init`'s defaults are the first job (DEX for Zoom) and the sandbox's ports",
        ),
        (
            "crates/connapp-cli/src/cmd_init.rs",
            "`connapp init --instance` writes a DEX for Zoom declaration",
        ),
        (
            "crates/connapp-core/src/init.rs",
            "`connapp init` renders the first job's declaration (DEX for Zoom: a Zoom app with a ServiceNow target)",
        ),
    ];
    let dirs = [
        "crates/connapp-core/src",
        "crates/connapp-cli/src",
        "crates/connapp-engine/src",
        "crates/connapp-host/src",
        "crates/connapp-oauth/src",
        "crates/connapp-plugin-api/src",
    ];
    for dir in dirs {
        for p in rust_files(&root().join(dir)) {
            let rel = p.strip_prefix(root()).expect("in the tree").display().to_string();
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if name.ends_with("tests.rs") || name == "test_support.rs" || allowed.iter().any(|(f, _)| *f == rel) {
                continue;
            }
            let text = std::fs::read_to_string(&p).expect("read");
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in code.lines().enumerate() {
                let l = line.trim_start();
                if l.starts_with("//") {
                    continue;
                }
                let lower = l.to_ascii_lowercase();
                assert!(
                    !["zoom", "servicenow", "service-now"].iter().any(|n| lower.contains(n)),
                    "{rel}:{}: names a platform ({l}); that knowledge belongs in its client or plugin",
                    n + 1
                );
            }
        }
    }
    for (f, why) in allowed {
        assert!(
            root().join(f).exists(),
            "the allow-list names {f} ({why}), which is gone: shrink the list"
        );
    }
}

/// The edge is split by what it talks to: `connapp-oauth` speaks the
/// standards (OAuth 2.0, bearer REST calls) and holds no call of one
/// provider's own API; each platform's client crate stands on it, the core
/// and the engine, and never on another platform's client.
#[test]
fn the_edge_is_split_by_what_it_talks_to() {
    // Test modules may aim the REST caller at any API of the sandbox.
    forbid(
        "crates/connapp-oauth/src",
        &["/marketplace/", "/api/now/", "oauth_token.do", "sysparm_"],
        "a provider's own API; that belongs in its client crate (connapp-zoom, connapp-servicenow)",
    );
    let oauth = of("connapp-oauth");
    for client in ["connapp-zoom", "connapp-servicenow"] {
        assert!(!oauth.contains(client), "connapp-oauth depends on {client}");
        // The edge, the pure model, the engine whose interfaces it fills, the plugin API's types.
        let ours = ours_beyond(
            client,
            &["connapp-oauth", "connapp-core", "connapp-engine", "connapp-plugin-api"],
        );
        assert!(
            ours.is_empty(),
            "{client} depends on {ours:?}; a platform client stands on the edge, the core and the engine only"
        );
    }
}

/// `connapp-clients` assembles the platform clients for front ends: it
/// stands on the engine, the host, the core and the clients, and never on a
/// front end.
#[test]
fn the_client_assembly_stands_below_the_front_ends() {
    let ours = ours_beyond(
        "connapp-clients",
        &[
            "connapp-core",
            "connapp-engine",
            "connapp-host",
            "connapp-plugin-api",
            "connapp-zoom",
            "connapp-servicenow",
        ],
    );
    assert!(ours.is_empty(), "connapp-clients depends on {ours:?}");
    depends_on_none(
        "connapp-clients",
        &["clap", "reqwest", "connapp-oauth"],
        "it assembles clients; HTTP is theirs and arguments the front end's",
    );
}

/// The engine serves any front end: it takes no argument parser, terminal or
/// front-end crate, and names no platform's client (platforms reach it
/// through interfaces it defines).
#[test]
fn the_engine_has_no_front_end_or_platform_dependency() {
    depends_on_none(
        "connapp-engine",
        &[
            "clap",
            "clap_complete",
            "clap_mangen",
            "rpassword",
            "webbrowser",
            "tracing-subscriber",
            "connapp-cli",
            "connapp-zoom",
            "connapp-servicenow",
            "connapp-sandbox",
        ],
        "front ends and platform clients sit above the engine",
    );
    let ours = ours_beyond(
        "connapp-engine",
        &["connapp-core", "connapp-oauth", "connapp-plugin-api", "connapp-host"],
    );
    assert!(ours.is_empty(), "connapp-engine depends on {ours:?}");
}

/// Store keys are the engine's (`connapp_engine::secrets`): the CLI asks for
/// an app's secret by kind and never builds a key.
#[test]
fn the_cli_builds_no_store_key() {
    forbid(
        "crates/connapp-cli/src",
        &["secret_key(", "token_key(", "app_prefix(", "\"apps/", "journal-key"],
        "a store key; ask connapp_engine::secrets",
    );
}

/// No build output is committed: an out-of-tree example built with
/// `--manifest-path` makes its own `target/`, and committing one once made a
/// submission too large to land. Every tracked file is small source.
#[test]
fn no_build_output_is_tracked() {
    let out = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output()
        .expect("git ls-files (the tests run in a git checkout)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let files: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    assert!(files.iter().any(|f| f == "Cargo.toml"), "git ls-files listed the tree");
    let built: Vec<_> = files
        .iter()
        .filter(|f| f.starts_with("target/") || f.contains("/target/"))
        .collect();
    assert!(
        built.is_empty(),
        "build output is tracked: {built:?}; `git rm -r --cached` it"
    );
    for f in &files {
        let len = std::fs::metadata(root().join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(
            len <= 1024 * 1024,
            "{f} is {len} bytes; generated data belongs outside the repository"
        );
    }
}

/// What a daemon, a fleet runner or a second host holds is `Send + Sync`:
/// the registry and its plugins, the shared store, client and runtime, an
/// app's token service, the work of plan/apply, the observer, the errors.
/// (A compile-time check: the test fails by not building.)
#[test]
fn the_session_types_are_send_and_sync() {
    fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<connapp_host::Registry>();
    shared_across_threads::<connapp_host::LoadedPlugin>();
    shared_across_threads::<connapp_engine::tokens::Shared<'static>>();
    shared_across_threads::<connapp_engine::tokens::AppCtx<'static>>();
    shared_across_threads::<connapp_clients::apply::Work<'static, 'static>>();
    shared_across_threads::<Box<dyn connapp_engine::tokens::Observer>>();
    shared_across_threads::<Box<dyn connapp_engine::manage::ProviderAdmin>>();
    shared_across_threads::<Box<dyn connapp_engine::manage::ConsumerEnd>>();
    shared_across_threads::<connapp_engine::Error>();
    shared_across_threads::<connapp_plugin_api::StoreHandle>();
    shared_across_threads::<connapp_engine::environment::Environment>();
    shared_across_threads::<connapp_engine::Engine>();
    shared_across_threads::<connapp_engine::tokens::TokenCache>();
}
