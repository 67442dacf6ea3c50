//! Killing a writer mid-write never leaves a corrupt store and never loses an
//! acknowledged write.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connapp_plugin_api::{Expected, Store};
use connapp_store_file::{Cost, FileStore};

use crate::secrets::pass;

const DIR_ENV: &str = "CONNAPP_TEST_WRITER_DIR";

/// The child process: writes ever-growing versions as fast as it can and
/// reports each acknowledged version on stdout. Run only by the crash test.
#[test]
#[ignore = "helper process for killing_a_writer_never_corrupts_the_store"]
fn writer_child() {
    let Some(dir) = std::env::var_os(DIR_ENV) else { return };
    let store = FileStore::open(std::path::Path::new(&dir), pass("pw"), Cost::default()).expect("open");
    let mut i: u64 = 0;
    loop {
        i += 1;
        // Values of varying size so writes are not all alike.
        let value = format!("{i}:{}", "x".repeat((i % 64) as usize * 512));
        let v = store
            .put("apps/crash/client-secret", value.as_bytes(), Expected::Any)
            .expect("put");
        println!("{v}");
    }
}

#[test]
fn killing_a_writer_never_corrupts_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let exe = std::env::current_exe().expect("test binary");
    let mut last_acked = 0u64;
    for round in 0..12u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::writer_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_ENV, &store_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let acked = Arc::new(Mutex::new(0u64));
        let reader = {
            let acked = acked.clone();
            let out = child.stdout.take().expect("stdout");
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Ok(v) = line.trim().parse::<u64>() {
                        *acked.lock().expect("lock") = v;
                    }
                }
            })
        };
        // Let it get past key derivation and into its write loop, then kill it
        // at a different moment each round.
        std::thread::sleep(Duration::from_millis(150 + round * 37 % 200));
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().expect("reap");
        reader.join().expect("reader");
        let acked = *acked.lock().expect("lock");

        let store = FileStore::open(&store_dir, pass("pw"), Cost::default()).expect("store still opens");
        let rec = store.get("apps/crash/client-secret").expect("store still decrypts");
        if acked > 0 {
            let rec = rec.expect("acknowledged value present");
            assert!(
                rec.version >= acked,
                "round {round}: acknowledged {acked}, found {}",
                rec.version
            );
            assert!(
                rec.version <= acked + 1,
                "round {round}: version jumped to {}",
                rec.version
            );
            let text = String::from_utf8(rec.value.to_vec()).expect("utf8");
            let (n, pad) = text.split_once(':').expect("shape");
            assert_eq!(
                pad.len(),
                (n.parse::<u64>().expect("n") % 64) as usize * 512,
                "torn value"
            );
            assert!(rec.version >= last_acked, "version went backwards");
            last_acked = rec.version;
        }
    }
    assert!(
        last_acked > 0,
        "the writer never got a write in; the test proved nothing"
    );
    // Leftover temp files of killed writers are cleaned up by the next write.
    let store = FileStore::open(&store_dir, pass("pw"), Cost::default()).expect("open");
    store.put("apps/crash/after", b"x", Expected::Any).expect("put");
    let leftovers: Vec<_> = std::fs::read_dir(&store_dir)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}
