//! Against a real Secret Service: `cargo xtask test` runs these inside
//! `dbus-run-session` with an unlocked gnome-keyring-daemon and private
//! HOME/XDG directories, and sets `CONNAPP_TEST_KEYRING=1`.

use std::sync::Arc;

use connapp_plugin_api::StoreHandle;

use super::*;

fn in_session() {
    assert_eq!(
        std::env::var("CONNAPP_TEST_KEYRING").as_deref(),
        Ok("1"),
        "run the keyring tests through `cargo xtask test` (it provides a private, unlocked Secret Service)"
    );
}

/// The conformance suite with few writers: every keyring write is a D-Bus
/// round trip to gnome-keyring.
fn conformance(open: connapp_store_conformance::Opener) {
    let options = connapp_store_conformance::Options {
        writers: 3,
        increments: 10,
    };
    let report = connapp_store_conformance::run_with(open, options);
    println!("{report}");
    report.assert_ok();
}

#[test]
#[ignore = "needs a Secret Service; `cargo xtask test` provides one and runs this"]
fn conformance_on_gnome_keyring() {
    in_session();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let open: connapp_store_conformance::Opener = Arc::new(move || {
        Ok(StoreHandle::from_store(KeyringStore::open(
            &path,
            Duration::from_secs(10),
        )?))
    });
    conformance(open);
}

/// Without any session bus, opening fails fast and names the alternatives.
#[test]
fn without_a_secret_service_the_error_is_fast_and_clear() {
    let exe = std::env::current_exe().expect("test binary");
    let start = std::time::Instant::now();
    let out = std::process::Command::new(exe)
        .args(["--exact", "tests::open_without_bus_child", "--ignored", "--nocapture"])
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/connapp-test-bus")
        .env("XDG_RUNTIME_DIR", "/nonexistent")
        .env("CONNAPP_TEST_NO_BUS_CHILD", "1")
        .output()
        .expect("spawn");
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("REFUSED:"), "{text}");
    assert!(
        text.contains("kind = \"file\"") && text.contains("kind = \"vault\""),
        "{text}"
    );
}

#[test]
#[ignore = "helper process for without_a_secret_service_the_error_is_fast_and_clear"]
fn open_without_bus_child() {
    if std::env::var("CONNAPP_TEST_NO_BUS_CHILD").is_err() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    match KeyringStore::open(dir.path(), Duration::from_secs(5)) {
        Ok(_) => panic!("a keyring opened without any session bus"),
        Err(e) => println!("REFUSED: {e}"),
    }
}

/// The same suite through the dynamic library `cargo xtask test` builds
/// (`CONNAPP_TEST_KEYRING_SO`), loaded by the real host.
#[test]
#[ignore = "needs a Secret Service and the cdylib; `cargo xtask test` provides both and runs this"]
fn conformance_of_the_dynamic_keyring_store() {
    in_session();
    let so = std::env::var("CONNAPP_TEST_KEYRING_SO").expect("CONNAPP_TEST_KEYRING_SO");
    let mut reg = connapp_host::Registry::default();
    reg.load_file(Path::new(&so)).unwrap_or_else(|e| panic!("{e}"));
    let reg = Arc::new(reg);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_path_buf();
    let open: connapp_store_conformance::Opener = Arc::new(move || {
        let ctx = connapp_store_conformance::context(&[], &data);
        reg.open_store("keyring", &ctx).map(|(h, _)| h).map_err(|e| match e {
            connapp_host::HostError::Plugin { error, .. } => error,
            other => StoreError::new(ErrorCode::OTHER, other.to_string()),
        })
    });
    conformance(open);
}
