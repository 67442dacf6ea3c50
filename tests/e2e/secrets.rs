//! Secrets through the file store, built in and dynamic.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use connapp_plugin_api::Store;
use connapp_plugin_api::zeroize::Zeroizing;
use connapp_store_file::{Cost, FileStore, STORE_FILE};

use crate::support::{Sandbox, built};

pub fn pass(s: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(s.as_bytes().to_vec())
}

const CANARY: &str = "CANARY-7d1e0c55-secret-never-on-disk";

pub(crate) fn read_back(s: &Sandbox, key: &str) -> Option<Vec<u8>> {
    let store = FileStore::open(
        &s.path().join("data/store"),
        pass("correct horse battery staple"),
        Cost::default(),
    )
    .expect("open the store directly");
    store.get(key).expect("get").map(|r| r.value.to_vec())
}

fn round_trip(bin: &Path, origin: &str) {
    let s = Sandbox::new(bin);
    s.init();
    let out = s
        .run(
            &["secrets", "set", "client-secret", "--from-stdin", "--json"],
            Some(format!("{CANARY}\n").as_bytes()),
        )
        .ok();
    let j = out.json();
    assert_eq!(j["version"], 1);
    assert_eq!(j["store"]["kind"], "file");
    let from = format!("{} {}", j["store"]["origin"], j["store"]["path"]);
    assert!(from.contains(origin), "{j}");
    assert!(!out.stdout().contains(CANARY) && !out.stderr().contains(CANARY));

    // The value written by this binary (built-in or dynamic plugin) reads back exactly.
    assert_eq!(
        read_back(&s, "apps/dex-zoom/client-secret").as_deref(),
        Some(CANARY.as_bytes())
    );

    // The file never holds the plaintext; permissions are 0600 / 0700.
    let dir = s.path().join("data/store");
    let bytes = std::fs::read(dir.join(STORE_FILE)).expect("store file");
    assert!(
        !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
        "plaintext on disk"
    );
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(STORE_FILE)), 0o600);

    let list = s.run(&["secrets", "list", "--json"], None).ok();
    assert!(!list.stdout().contains(CANARY));
    let secrets = list.json()["secrets"].as_array().expect("array").clone();
    let cs = secrets.iter().find(|e| e["secret"] == "client-secret").expect("listed");
    assert_eq!(cs["present"], true);
    assert_eq!(cs["bytes"], CANARY.len());
    let ci = secrets.iter().find(|e| e["secret"] == "client-id").expect("listed");
    assert_eq!(ci["present"], false);

    // A second set bumps the version.
    let j = s
        .run(
            &["secrets", "set", "client-secret", "--from-stdin", "--json"],
            Some(b"second-value"),
        )
        .ok()
        .json();
    assert_eq!(j["version"], 2);
    assert_eq!(
        read_back(&s, "apps/dex-zoom/client-secret").as_deref(),
        Some(&b"second-value"[..])
    );
}

#[test]
fn secrets_round_trip_through_the_builtin_file_store() {
    round_trip(&built().full, "\"builtin\" null");
}

#[test]
fn secrets_round_trip_through_the_dynamic_file_store() {
    round_trip(&built().dist_bin(), "libconnapp_store_file.so");
}

#[test]
fn wrong_passphrase_is_a_clear_error_and_changes_nothing() {
    let mut s = Sandbox::new(&built().full);
    s.init();
    s.set_secret("client-id", b"my-client-id");
    let before = std::fs::read(s.path().join("data/store").join(STORE_FILE)).expect("read");
    s.set_env("CONNAPP_FILE_PASSPHRASE", "wrong");
    let out = s
        .run(&["secrets", "set", "client-id", "--from-stdin"], Some(b"other"))
        .fails_with(1);
    assert!(out.stderr().contains("wrong passphrase"), "{}", out.stderr());
    assert!(out.stderr().contains("CONNAPP_FILE_PASSPHRASE"), "{}", out.stderr());
    assert_eq!(
        std::fs::read(s.path().join("data/store").join(STORE_FILE)).expect("read"),
        before
    );
    s.unset_env("CONNAPP_FILE_PASSPHRASE");
    let out = s.run(&["secrets", "list"], None).fails_with(1);
    assert!(out.stderr().contains("needs a passphrase"), "{}", out.stderr());
}

#[test]
fn loose_store_permissions_are_refused_with_the_fix() {
    let s = Sandbox::new(&built().full);
    s.init();
    s.set_secret("client-id", b"my-client-id");
    let dir = s.path().join("data/store");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = s.run(&["secrets", "list"], None).fails_with(1);
    assert!(
        out.stderr().contains(&format!("chmod 700 {}", dir.display())),
        "{}",
        out.stderr()
    );
}

#[test]
fn values_never_come_from_argv_and_bad_values_store_nothing() {
    let s = Sandbox::new(&built().full);
    s.init();
    // No terminal and no --from-stdin: refuse instead of hanging (a usage error).
    let out = s.run(&["secrets", "set", "client-secret"], None).fails_with(2);
    assert!(out.stderr().contains("--from-stdin"), "{}", out.stderr());
    // There is no way to pass the value as an argument.
    s.run(&["secrets", "set", "client-secret", "hunter2"], None)
        .fails_with(2);
    // A line break or tab inside, or empty: refused as bad input (exit 2, not
    // an invalid declaration), naming the secret, not the value.
    let out = s
        .run(
            &["secrets", "set", "client-secret", "--from-stdin"],
            Some(b"abc\tdef-SECRETPART"),
        )
        .fails_with(2);
    assert!(!out.stderr().contains("SECRETPART"), "{}", out.stderr());
    assert!(out.stderr().contains("RFC 6749"), "{}", out.stderr());
    // A Secret Token (Zoom-generated) never holds a space.
    s.run(
        &["secrets", "set", "secret-token", "--from-stdin"],
        Some(b"abc def-SECRETPART"),
    )
    .fails_with(2);
    s.run(&["secrets", "set", "client-secret", "--from-stdin"], Some(b"\n"))
        .fails_with(2);
    assert!(read_back(&s, "apps/dex-zoom/client-secret").is_none());
    // OAuth allows a space in a client secret (RFC 6749: printable ASCII).
    s.set_secret("client-secret", b"with a space+/=%");
    assert_eq!(
        read_back(&s, "apps/dex-zoom/client-secret").as_deref(),
        Some(b"with a space+/=%".as_slice())
    );
}

#[test]
fn rm_needs_confirmation_without_a_terminal() {
    let s = Sandbox::new(&built().full);
    s.init();
    s.set_secret("secret-token", b"tok-123");
    let out = s.run(&["secrets", "rm", "secret-token"], None).fails_with(2);
    assert!(out.stderr().contains("--yes"), "{}", out.stderr());
    assert!(read_back(&s, "apps/dex-zoom/secret-token").is_some());
    // Removed once; a second rm finds nothing and succeeds.
    for removed in [true, false] {
        let j = s
            .run(&["secrets", "rm", "secret-token", "--yes", "--json"], None)
            .ok()
            .json();
        assert_eq!(j["removed"], removed);
        assert!(read_back(&s, "apps/dex-zoom/secret-token").is_none());
    }
}

#[test]
fn several_apps_need_app_named() {
    let s = Sandbox::new(&built().full);
    let decl = s.init();
    let text = std::fs::read_to_string(&decl).expect("read");
    let second = text
        .split_once("[apps.dex-zoom]")
        .expect("app table")
        .1
        .replace("[apps.dex-zoom.target]", "[apps.dex-beta.target]")
        .replace("acme", "beta");
    std::fs::write(&decl, format!("{text}\n[apps.dex-beta]{second}")).expect("write");
    s.run(&["check"], None).ok();
    let out = s
        .run(&["secrets", "set", "client-id", "--from-stdin"], Some(b"x1"))
        .fails_with(2);
    assert!(out.stderr().contains("dex-beta, dex-zoom"), "{}", out.stderr());
    // A misspelt app name is a usage error with the nearest name.
    let out = s
        .run(
            &["secrets", "set", "client-id", "--app", "dex-zom", "--from-stdin"],
            Some(b"x1"),
        )
        .fails_with(2);
    assert!(out.stderr().contains("did you mean `dex-zoom`?"), "{}", out.stderr());
    s.set_secret_of("dex-beta", "client-id", b"x1");
    assert!(read_back(&s, "apps/dex-beta/client-id").is_some());
    assert!(read_back(&s, "apps/dex-zoom/client-id").is_none());
}
