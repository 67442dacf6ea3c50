use std::sync::Arc;

use connapp_plugin_api::StoreHandle;

use super::*;

fn cheap() -> Cost {
    Cost { m_kib: 64, t: 1, p: 1 }
}

fn pass(p: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(p.as_bytes().to_vec())
}

#[test]
fn conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let open: connapp_store_conformance::Opener =
        Arc::new(move || Ok(StoreHandle::from_store(FileStore::open(&path, pass("pw"), cheap())?)));
    let report = connapp_store_conformance::run(open);
    report.assert_ok();
}

#[test]
fn the_file_never_contains_the_plaintext_and_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let s = FileStore::open(&path, pass("pw"), cheap()).expect("open");
    let canary = b"CANARY-5f0e2b7d-client-secret";
    s.put("apps/x/client-secret", canary, Expected::Any).expect("put");
    let bytes = fs::read(s.file_path()).expect("file");
    assert!(!bytes.windows(canary.len()).any(|w| w == canary), "plaintext on disk");
    assert!(!bytes.windows(11).any(|w| w == b"apps/x/clie"), "key names on disk");
    let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&s.file_path()), 0o600);
    assert_eq!(mode(&path.join(LOCK_FILE)), 0o600);
}

#[test]
fn wrong_passphrase_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    FileStore::open(&path, pass("right"), cheap())
        .expect("open")
        .put("k", b"v", Expected::Any)
        .expect("put");
    let e = FileStore::open(&path, pass("wrong"), cheap()).err().expect("refused");
    assert_eq!(e.code, ErrorCode::AUTH_FAILED);
    assert!(e.message.contains("wrong passphrase"), "{e}");
}

#[test]
fn loose_permissions_are_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    FileStore::open(&path, pass("pw"), cheap()).expect("open");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    let e = FileStore::open(&path, pass("pw"), cheap()).err().expect("refused");
    assert_eq!(e.code, ErrorCode::PERMISSION_DENIED);
    assert!(e.message.contains("chmod 700"), "{e}");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).expect("chmod");
    let s = FileStore::open(&path, pass("pw"), cheap()).expect("open");
    s.put("k", b"v", Expected::Any).expect("put");
    fs::set_permissions(s.file_path(), fs::Permissions::from_mode(0o644)).expect("chmod");
    let e = s.get("k").expect_err("refused");
    assert!(e.message.contains("chmod 600"), "{e}");
}

#[test]
fn tampering_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let s = FileStore::open(&path, pass("pw"), cheap()).expect("open");
    s.put("k", b"value", Expected::Any).expect("put");
    let mut bytes = fs::read(s.file_path()).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(s.file_path(), &bytes).expect("write");
    assert_eq!(s.get("k").expect_err("detected").code, ErrorCode::AUTH_FAILED);
    fs::write(s.file_path(), b"garbage").expect("write");
    assert_eq!(s.get("k").expect_err("detected").code, ErrorCode::CORRUPT);
}

#[test]
fn records_encode_and_decode() {
    let mut c = Contents::default();
    c.entries.insert(
        "a".into(),
        Entry {
            version: 3,
            value: Some(Zeroizing::new(vec![0, 1, 2])),
        },
    );
    c.entries.insert(
        "b".into(),
        Entry {
            version: 9,
            value: None,
        },
    );
    let enc = c.encode();
    let d = Contents::decode(&enc).expect("decodes");
    assert_eq!(d.entries.len(), 2);
    assert_eq!(
        d.entries["a"].value.as_deref().map(Vec::as_slice),
        Some(&[0u8, 1, 2][..])
    );
    assert!(d.entries["b"].value.is_none());
    assert!(Contents::decode(&enc[..enc.len() - 1]).is_none());
}

/// A person typing at prompts: the answers in order, and the prompts seen.
struct Typist {
    answers: std::cell::RefCell<Vec<&'static str>>,
    asked: std::cell::RefCell<Vec<String>>,
}

impl Typist {
    fn new(answers: &[&'static str]) -> Typist {
        Typist {
            answers: std::cell::RefCell::new(answers.iter().rev().copied().collect()),
            asked: Default::default(),
        }
    }
    fn open(&self, dir: &Path) -> Result<FileStore, StoreError> {
        let prompt = |text: &str| {
            self.asked.borrow_mut().push(text.to_string());
            let a = self.answers.borrow_mut().pop().expect("asked once too often");
            Ok(pass(a))
        };
        open_asking(dir, &prompt, cheap())
    }
}

/// As ssh-keygen and gpg: a new store says so and takes the passphrase
/// twice; a mismatch creates nothing. An existing store allows three tries.
#[test]
fn passphrases_are_confirmed_for_a_new_store_and_retried_for_an_existing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let t = Typist::new(&["one", "another"]);
    let e = t.open(&path).err().expect("mismatch");
    assert!(e.message.contains("do not match"), "{}", e.message);
    assert!(
        t.asked.borrow()[0].starts_with("Creating a new file store at"),
        "{:?}",
        t.asked
    );
    assert!(!path.join(STORE_FILE).exists());

    let t = Typist::new(&["right", "right"]);
    let s = t.open(&path).expect("created");
    s.put("apps/x/client-id", b"id", Expected::Any).expect("put");
    assert_eq!(t.asked.borrow()[1], "Repeat the passphrase: ");

    // Two typos, then the right one.
    let t = Typist::new(&["wrong", "wrnog", "right"]);
    let s = t.open(&path).expect("third try");
    assert_eq!(
        s.get("apps/x/client-id").expect("get").map(|r| r.value.to_vec()),
        Some(b"id".to_vec())
    );
    assert!(
        t.asked.borrow()[0].starts_with("Passphrase for the file store"),
        "{:?}",
        t.asked
    );
    assert!(t.asked.borrow()[2].contains("3 of 3"), "{:?}", t.asked);

    // Three wrong: refused, and never asked a fourth time.
    let t = Typist::new(&["a", "b", "c"]);
    let e = t.open(&path).err().expect("refused");
    assert_eq!(e.code, ErrorCode::AUTH_FAILED);
    assert_eq!(t.asked.borrow().len(), 3);
}
