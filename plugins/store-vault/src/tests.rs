//! Against a real OpenBao (`bao server -dev`), started by `cargo xtask test`,
//! which exports `CONNAPP_TEST_BAO_ADDR` and `CONNAPP_TEST_BAO_TOKEN`.

use std::sync::Arc;

use connapp_plugin_api::StoreHandle;

use super::*;

fn server() -> (String, String) {
    let addr = std::env::var("CONNAPP_TEST_BAO_ADDR")
        .expect("CONNAPP_TEST_BAO_ADDR: run the OpenBao tests through `cargo xtask test`");
    let token = std::env::var("CONNAPP_TEST_BAO_TOKEN").expect("CONNAPP_TEST_BAO_TOKEN");
    (addr, token)
}

fn store(prefix: &str) -> VaultStore {
    let (addr, token) = server();
    VaultStore::new(VaultConfig {
        addr,
        fallback: Vec::new(),
        mount: "secret".into(),
        prefix: prefix.into(),
        namespace: None,
        token: Zeroizing::new(token),
        ca_cert: None,
    })
    .expect("client")
}

/// One call to OpenBao's API with the root token (policies, auth methods).
fn as_root(addr: &str, root: &str, method: reqwest::Method, path: &str, body: &Value) -> (reqwest::StatusCode, Value) {
    let r = crate::client_builder()
        .build()
        .expect("client")
        .request(method, format!("{addr}/v1/{path}"))
        .header("X-Vault-Token", root)
        .json(body)
        .send()
        .expect("admin call");
    (r.status(), r.json().unwrap_or(Value::Null))
}

fn unique(tag: &str) -> String {
    format!(
        "connapp-test/{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

#[test]
#[ignore = "needs OpenBao; `cargo xtask test` starts it and runs this"]
fn conformance_on_openbao() {
    let prefix = unique("conformance");
    let open: connapp_store_conformance::Opener = Arc::new(move || Ok(StoreHandle::from_store(store(&prefix))));
    let report = connapp_store_conformance::run(open);
    println!("{report}");
    report.assert_ok();
}

#[test]
#[ignore = "needs OpenBao; `cargo xtask test` starts it and runs this"]
fn errors_name_the_path_and_capability() {
    let (addr, _) = server();
    let s = VaultStore::new(VaultConfig {
        addr,
        fallback: Vec::new(),
        mount: "secret".into(),
        prefix: "x".into(),
        namespace: None,
        token: Zeroizing::new("not-a-token".into()),
        ca_cert: None,
    })
    .expect("client");
    let e = s.put("k", b"v", Expected::Any).expect_err("denied");
    assert_eq!(e.code, ErrorCode::PERMISSION_DENIED, "{e}");
    assert!(
        e.message.contains("secret/data/x/k") && e.message.contains("\"update\""),
        "{e}"
    );
    let bad_mount = VaultStore::new(VaultConfig {
        mount: "no-such-mount".into(),
        ..VaultConfig {
            addr: server().0,
            fallback: Vec::new(),
            mount: String::new(),
            prefix: "x".into(),
            namespace: None,
            token: Zeroizing::new(server().1),
            ca_cert: None,
        }
    })
    .expect("client");
    let e = bad_mount.put("k", b"v", Expected::Any).expect_err("no mount");
    assert!(e.message.contains("KV version 2"), "{e}");
}

const CHILD_ENV: &str = "CONNAPP_TEST_VAULT_CAS_PREFIX";

/// Child process of the multi-process test: 250 compare-and-swap increments.
#[test]
#[ignore = "helper process for four_processes_rotate_one_record_a_thousand_times"]
fn cas_child() {
    let Ok(prefix) = std::env::var(CHILD_ENV) else { return };
    let s = store(&prefix);
    for _ in 0..250 {
        loop {
            let r = s.get("counter").expect("get").expect("exists");
            let n: u64 = std::str::from_utf8(&r.value).expect("utf8").parse().expect("number");
            match s.put("counter", (n + 1).to_string().as_bytes(), Expected::Version(r.version)) {
                Ok(_) => break,
                Err(e) if e.is_conflict() => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }
}

#[test]
#[ignore = "needs OpenBao; `cargo xtask test` starts it and runs this"]
fn four_processes_rotate_one_record_a_thousand_times() {
    let prefix = unique("cas");
    let s = store(&prefix);
    let start = s.put("counter", b"0", Expected::Absent).expect("seed");
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--exact", "tests::cas_child", "--ignored", "--test-threads=1"])
                .env(CHILD_ENV, &prefix)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success());
    }
    let r = s.get("counter").expect("get").expect("exists");
    assert_eq!(std::str::from_utf8(&r.value).expect("utf8"), "1000", "lost updates");
    assert_eq!(r.version, start + 1000);
}

#[test]
fn a_stopped_server_fails_fast_and_clearly() {
    // A port nobody listens on: OpenBao "stopped".
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let s = VaultStore::new(VaultConfig {
        addr: format!("http://127.0.0.1:{port}"),
        fallback: Vec::new(),
        mount: "secret".into(),
        prefix: "x".into(),
        namespace: None,
        token: Zeroizing::new("t".into()),
        ca_cert: None,
    })
    .expect("client");
    let start = std::time::Instant::now();
    let e = s.get("k").expect_err("unreachable");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(e.code, ErrorCode::UNAVAILABLE);
    assert!(
        e.message
            .contains(&format!("cannot reach Vault at http://127.0.0.1:{port}")),
        "{e}"
    );
}

/// AppRole login with a policy limited to one prefix: works inside it, and a
/// write outside it is a 403 that names the path and the capability.
#[test]
#[ignore = "needs OpenBao; `cargo xtask test` starts it and runs this"]
fn approle_with_a_narrow_policy() {
    let (addr, root) = server();
    let admin = |method: reqwest::Method, path: &str, body: Value| -> Value {
        let (status, answer) = as_root(&addr, &root, method, path, &body);
        assert!(
            status.is_success() || status == reqwest::StatusCode::BAD_REQUEST,
            "{path}: {status}"
        );
        answer
    };
    let tag = format!("approle{}", std::process::id());
    // Enabling twice answers 400 "path is already in use"; either way it is there.
    admin(reqwest::Method::POST, "sys/auth/approle", json!({"type": "approle"}));
    let policy = format!(
        "path \"secret/data/{tag}/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\"] }}\npath \"secret/metadata/{tag}/*\" {{ capabilities = [\"read\", \"list\"] }}"
    );
    admin(
        reqwest::Method::PUT,
        &format!("sys/policies/acl/{tag}"),
        json!({"policy": policy}),
    );
    admin(
        reqwest::Method::POST,
        &format!("auth/approle/role/{tag}"),
        json!({"token_policies": [tag]}),
    );
    let role_id = admin(
        reqwest::Method::GET,
        &format!("auth/approle/role/{tag}/role-id"),
        Value::Null,
    )["data"]["role_id"]
        .as_str()
        .expect("role id")
        .to_string();
    let secret_id = admin(
        reqwest::Method::POST,
        &format!("auth/approle/role/{tag}/secret-id"),
        json!({}),
    )["data"]["secret_id"]
        .as_str()
        .expect("secret id")
        .to_string();
    let dir = std::env::temp_dir().join(format!("connapp-approle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let secret_file = dir.join("secret-id");
    std::fs::write(&secret_file, &secret_id).expect("write");
    let secret_file_setting = secret_file.display().to_string();
    let ctx_for = |prefix: &str| {
        connapp_store_conformance::context(
            &[
                ("addr", addr.as_str()),
                ("prefix", prefix),
                ("role_id", role_id.as_str()),
                ("secret_id_file", &secret_file_setting),
            ],
            &dir,
        )
    };
    let inside = ctx_for(&tag);
    let s = from_settings(&StoreContext::new(&inside)).expect("AppRole login");
    s.put("apps/x/client-id", b"abc", Expected::Any).expect("allowed");
    assert_eq!(
        s.get("apps/x/client-id").expect("get").expect("there").value.as_slice(),
        b"abc"
    );
    let outside = ctx_for("elsewhere");
    let s = from_settings(&StoreContext::new(&outside)).expect("AppRole login");
    let e = s.put("apps/x/client-id", b"abc", Expected::Any).expect_err("denied");
    assert_eq!(e.code, ErrorCode::PERMISSION_DENIED, "{e}");
    assert!(
        e.message.contains("secret/metadata/elsewhere/apps/x/client-id")
            || e.message.contains("secret/data/elsewhere/apps/x/client-id"),
        "{e}"
    );
    assert!(!e.message.contains(&secret_id), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The lease on a real OpenBao: one holder at a time; giving back frees it;
/// giving back an old version never frees a successor's; and it expires by
/// the server's clock when its holder never gives it back.
#[test]
#[ignore = "needs OpenBao; `cargo xtask test` starts it and runs this"]
fn the_lease_takes_turns_and_expires_by_the_servers_clock() {
    let prefix = unique("lease");
    let lease = |_| VaultLease {
        store: store(&prefix),
        prepared: Default::default(),
    };
    let (a, b) = (lease(0), lease(1));
    let first = a.try_take("app", "host-a", 2).expect("take").expect("free at first");
    assert!(!first.after_expiry, "nobody held it before");
    assert_eq!(b.try_take("app", "host-b", 2).expect("take"), None, "held by a");
    a.give_back("app", first.version).expect("give back");
    let second = b
        .try_take("app", "host-b", 2)
        .expect("take")
        .expect("free after a gave it back");
    assert!(second.version > first.version);
    assert!(!second.after_expiry, "a gave it back");
    // a's late give-back of its old version leaves b's lease alone.
    a.give_back("app", first.version).expect("give back again");
    assert_eq!(a.try_take("app", "host-a", 2).expect("take"), None, "still b's");
    // b never gives it back: the server expires it, and the taker learns so.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let third = a
        .try_take("app", "host-a", 2)
        .expect("take")
        .expect("expired by the server");
    assert!(third.version > second.version);
    assert!(third.after_expiry, "b's lease expired rather than was given back");
}

/// A lease key whose versions do not expire (written before its expiry was
/// set, or set to another one) is fixed by the next take: the version taken
/// is deleted by the server after the lease's time to live, so a holder that
/// dies never holds it for good. A key whose expiry is set costs no write
/// of its metadata: the taking write's answer shows it.
#[test]
#[ignore = "needs OpenBao; `cargo xtask test` starts it and runs this"]
fn a_lease_key_without_an_expiry_gets_one_when_taken() {
    let prefix = unique("lease-expiry");
    let lease = || VaultLease {
        store: store(&prefix),
        prepared: Default::default(),
    };
    let first = lease();
    // A version written without the key's expiry, then given back.
    let v = first
        .store
        .write("locks/app", json!({"holder": "older connapp"}), Some(0))
        .expect("write");
    first.give_back("app", v).expect("give back");
    let taken = first.try_take("app", "host-a", 30).expect("take").expect("free");
    assert!(!taken.after_expiry, "the older version was given back, not expired");
    let (status, meta) = first
        .store
        .call(Method::GET, &first.store.path("metadata", "locks/app"), None)
        .expect("read metadata");
    assert_eq!(status, StatusCode::OK);
    let version = &meta["data"]["versions"][taken.version.to_string()];
    assert!(
        expires_after(version, 30),
        "the version taken expires 30 s after its creation: {version}"
    );
    assert_eq!(meta["data"]["delete_version_after"], "30s", "{meta}");
    first.give_back("app", taken.version).expect("give back");
    // Another process takes the prepared key: it learns the expiry from its
    // write's answer and sets nothing.
    let second = lease();
    let again = second.try_take("app", "host-b", 30).expect("take").expect("free");
    assert!(second.is_prepared("app"));
    assert_eq!(again.version, taken.version + 1, "one write: no give-back and retake");
}

/// The policy the README gives hosts that share a store (its `hcl` block,
/// with `connapp/acme` as this test's prefix) is enough for the store and
/// its lease: a token with only that policy writes, reads and deletes
/// secrets and takes and gives back the lease.
#[test]
#[ignore = "needs OpenBao; `cargo xtask test` starts it and runs this"]
fn the_readmes_policy_is_enough_for_the_store_and_its_lease() {
    let (addr, root) = server();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
    let section = readme
        .split("#### Several machines on one OpenBao")
        .nth(1)
        .expect("the README's section on several machines");
    let hcl = section
        .split("```hcl\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("its policy");
    let prefix = format!("readme-policy-{}", std::process::id());
    let policy = hcl.replace("connapp/acme", &prefix);
    let admin = |method: reqwest::Method, path: &str, body: Value| -> Value {
        let (status, answer) = as_root(&addr, &root, method, path, &body);
        assert!(status.is_success(), "{path}: {status}");
        answer
    };
    admin(
        reqwest::Method::PUT,
        &format!("sys/policies/acl/{prefix}"),
        json!({"policy": policy}),
    );
    let token = admin(
        reqwest::Method::POST,
        "auth/token/create",
        json!({"policies": [prefix], "no_default_policy": true, "ttl": "10m"}),
    )["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_string();
    let narrow = || {
        VaultStore::new(VaultConfig {
            addr: addr.clone(),
            fallback: Vec::new(),
            mount: "secret".into(),
            prefix: prefix.clone(),
            namespace: None,
            token: Zeroizing::new(token.clone()),
            ca_cert: None,
        })
        .expect("client")
    };
    let s = narrow();
    let v = s.put("apps/x/client-id", b"abc", Expected::Absent).expect("write");
    assert_eq!(
        s.get("apps/x/client-id")
            .expect("read")
            .expect("there")
            .value
            .as_slice(),
        b"abc"
    );
    assert!(s.delete("apps/x/client-id", Expected::Version(v)).expect("delete"));
    let lease = VaultLease {
        store: narrow(),
        prepared: Default::default(),
    };
    let taken = lease.try_take("x", "host", 60).expect("take").expect("free");
    lease.give_back("x", taken.version).expect("give back");
    assert!(lease.try_take("x", "host", 60).expect("take again").is_some());
}

/// OpenBao 2.7's `X-Vault-Index`: base64 of `{"cluster": ..., "value": "N"}`
/// (as a 3-node Raft cluster sent it).
#[test]
fn an_index_header_reads_as_openbao_writes_it() {
    assert_eq!(
        parse_index("eyJjbHVzdGVyIjoiYjIzMWRjYTUtZjVhMS1kYWU0LTIxZGUtY2I2Y2RjZWZmZTMxIiwidmFsdWUiOiIzMiJ9"),
        Some(("b231dca5-f5a1-dae4-21de-cb6cdceffe31".into(), 32))
    );
    assert_eq!(parse_index("bm90IGpzb24="), None);
    assert_eq!(parse_index("%%%"), None);
}

/// A cluster's node that does not answer is passed over for the next one
/// in `fallback_addrs`; one that is not an http(s) address is refused by name.
#[test]
#[ignore = "needs OpenBao; `cargo xtask test` starts it and runs this"]
fn a_node_that_does_not_answer_is_passed_over() {
    let (addr, token) = server();
    let down = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port()
    );
    let s = VaultStore::new(VaultConfig {
        addr: down.clone(),
        fallback: vec![addr.clone()],
        mount: "secret".into(),
        prefix: unique("fallback"),
        namespace: None,
        token: Zeroizing::new(token),
        ca_cert: None,
    })
    .expect("client");
    let v = s
        .put("k", b"v", Expected::Absent)
        .expect("written through the fallback");
    assert_eq!(s.get("k").expect("read").expect("there").version, v);
    let dir = std::env::temp_dir();
    let bad = connapp_store_conformance::context(&[("addr", down.as_str()), ("fallback_addrs", "vault-2:8200")], &dir);
    let e = from_settings(&StoreContext::new(&bad)).err().expect("refused");
    assert!(
        e.message.contains("store.settings.fallback_addrs") && e.message.contains("vault-2:8200"),
        "{e}"
    );
}
