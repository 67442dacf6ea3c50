//! The conformance suite every connapp store passes: built-in stores, dynamic
//! ones, and third-party stores built out of tree.
//!
//! Give [`run`] a function that opens a fresh [`StoreHandle`] on the same
//! backend each time it is called (a built-in store, a loaded dynamic plugin,
//! or your own store wrapped with [`StoreHandle::from_store`]). Every case uses
//! keys under a random prefix, so the suite can run against a store that also
//! holds real data, and it deletes what it wrote.
//! [`context`] builds the non-interactive store context such tests open with.
//!
//! What it is **not**: a benchmark or a fault-injection harness; crash safety
//! is tested per store, because only the store knows how it writes.

use std::fmt;
use std::sync::Arc;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use connapp_plugin_api::abi_stable::std_types::{RResult, RStr, RString, RVec, Tuple2};
use connapp_plugin_api::{ErrorCode, Expected, FfiError, FfiStoreContext, StoreError, StoreHandle};

/// A store context for tests: the given settings and data directory, not
/// interactive, and a prompt callback that refuses (as a headless run would).
pub fn context(settings: &[(&str, &str)], data_dir: &std::path::Path) -> FfiStoreContext {
    FfiStoreContext {
        settings: settings
            .iter()
            .map(|(k, v)| Tuple2(RString::from(*k), RString::from(*v)))
            .collect(),
        data_dir: data_dir.display().to_string().into(),
        interactive: false,
        prompt_secret: no_prompt,
    }
}

extern "C" fn no_prompt(_: RStr<'_>) -> RResult<RVec<u8>, FfiError> {
    RResult::RErr(FfiError {
        code: ErrorCode::AUTH_FAILED,
        message: RString::from("no prompt in tests"),
        retryable: false,
    })
}

/// Opens a new handle on the store under test.
pub type Opener = Arc<dyn Fn() -> Result<StoreHandle, StoreError> + Send + Sync>;

/// One failed case.
#[derive(Debug)]
pub struct Failure {
    /// The case name.
    pub case: &'static str,
    /// What went wrong.
    pub detail: String,
}

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct Report {
    /// Cases that passed.
    pub passed: Vec<&'static str>,
    /// Cases that failed.
    pub failed: Vec<Failure>,
}

impl Report {
    /// Panics with every failure listed, if any.
    pub fn assert_ok(&self) {
        assert!(self.failed.is_empty(), "store conformance failed:\n{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.passed {
            writeln!(f, "  ok    {p}")?;
        }
        for x in &self.failed {
            writeln!(f, "  FAIL  {}: {}", x.case, x.detail)?;
        }
        write!(f, "{} passed, {} failed", self.passed.len(), self.failed.len())
    }
}

/// Settings for a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Threads in the concurrent-writers case.
    pub writers: usize,
    /// Compare-and-swap increments per writer.
    pub increments: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            writers: 4,
            increments: 25,
        }
    }
}

type CaseResult = Result<(), String>;
type Case = (&'static str, fn(&Cx) -> CaseResult);

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn e(err: StoreError) -> String {
    format!("{:?}", err)
}

struct Cx {
    open: Opener,
    prefix: String,
    opts: Options,
}

impl Cx {
    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }
    fn store(&self) -> Result<StoreHandle, String> {
        (self.open)().map_err(e)
    }
}

/// `k` is absent: `get` finds nothing and `delete` deletes nothing.
fn absent(s: &StoreHandle, k: &str) -> CaseResult {
    ensure!(s.get(k).map_err(e)?.is_none(), "get of a missing key returned a value");
    ensure!(
        !s.delete(k, Expected::Any).map_err(e)?,
        "delete of a missing key reported a deletion"
    );
    Ok(())
}

fn missing_keys(cx: &Cx) -> CaseResult {
    absent(&cx.store()?, &cx.key("missing"))
}

fn round_trip(cx: &Cx) -> CaseResult {
    let s = cx.store()?;
    let k = cx.key("round-trip");
    let v1 = s.put(&k, b"first", Expected::Any).map_err(e)?;
    ensure!(v1 >= 1, "first version is {v1}, expected >= 1");
    let r = s.get(&k).map_err(e)?.ok_or("value vanished after put")?;
    ensure!(
        r.value.as_slice() == b"first" && r.version == v1,
        "read back a different value or version"
    );
    let v2 = s.put(&k, b"second", Expected::Any).map_err(e)?;
    ensure!(v2 == v1 + 1, "second version is {v2}, expected {}", v1 + 1);
    let r = s.get(&k).map_err(e)?.ok_or("value vanished after overwrite")?;
    ensure!(r.value.as_slice() == b"second", "overwrite not visible");
    // A second handle sees the same data.
    let other = cx.store()?;
    let r = other
        .get(&k)
        .map_err(e)?
        .ok_or("a second handle does not see the value")?;
    ensure!(r.version == v2, "second handle sees version {} not {v2}", r.version);
    s.delete(&k, Expected::Any).map_err(e)?;
    Ok(())
}

fn binary_values(cx: &Cx) -> CaseResult {
    let s = cx.store()?;
    let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    for (name, value) in [
        ("all-bytes", all.as_slice()),
        ("nul", &[0u8, 0, 0][..]),
        ("one", &[0xffu8][..]),
    ] {
        let k = cx.key(name);
        s.put(&k, value, Expected::Any).map_err(e)?;
        let r = s.get(&k).map_err(e)?.ok_or("binary value vanished")?;
        ensure!(
            r.value.as_slice() == value,
            "binary value {name} changed in the round trip"
        );
        s.delete(&k, Expected::Any).map_err(e)?;
    }
    Ok(())
}

fn large_values(cx: &Cx) -> CaseResult {
    let s = cx.store()?;
    let limit = s.describe().map_err(e)?.capabilities.max_value_size();
    let size = limit.map_or(256 * 1024, |l| l.min(256 * 1024)) as usize;
    let value: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let k = cx.key("large");
    s.put(&k, &value, Expected::Any).map_err(e)?;
    let r = s.get(&k).map_err(e)?.ok_or("large value vanished")?;
    ensure!(
        r.value.as_slice() == value.as_slice(),
        "large value ({size} bytes) changed"
    );
    s.delete(&k, Expected::Any).map_err(e)?;
    if let Some(l) = limit {
        let too_big = vec![7u8; l as usize + 1];
        match s.put(&k, &too_big, Expected::Any) {
            Err(err) if err.code == ErrorCode::TOO_LARGE => {}
            Err(err) => return Err(format!("over-limit value failed with the wrong code: {err:?}")),
            Ok(_) => return Err(format!("a value over the declared limit of {l} bytes was accepted")),
        }
    }
    Ok(())
}

fn compare_and_swap(cx: &Cx) -> CaseResult {
    let s = cx.store()?;
    let k = cx.key("cas");
    let v1 = s.put(&k, b"a", Expected::Absent).map_err(e)?;
    match s.put(&k, b"b", Expected::Absent) {
        Err(err) if err.is_conflict() => {}
        other => return Err(format!("put(Absent) on an existing key: {:?}", other.map_err(e))),
    }
    match s.put(&k, b"b", Expected::Version(v1 + 7)) {
        Err(err) if err.is_conflict() => {}
        other => return Err(format!("put with a wrong version: {:?}", other.map_err(e))),
    }
    let v2 = s.put(&k, b"b", Expected::Version(v1)).map_err(e)?;
    ensure!(v2 == v1 + 1, "CAS write gave version {v2}, expected {}", v1 + 1);
    match s.delete(&k, Expected::Version(v1)) {
        Err(err) if err.is_conflict() => {}
        other => return Err(format!("delete with a stale version: {:?}", other.map_err(e))),
    }
    let r = s.get(&k).map_err(e)?.ok_or("value vanished after failed CAS")?;
    ensure!(r.value.as_slice() == b"b", "a failed CAS changed the value");
    ensure!(
        s.delete(&k, Expected::Version(v2)).map_err(e)?,
        "CAS delete did not delete"
    );
    // A recreated key never reuses an old version.
    match s.put(&k, b"c", Expected::Version(v2)) {
        Err(err) if err.is_conflict() => {}
        other => return Err(format!("put expecting the deleted version: {:?}", other.map_err(e))),
    }
    let v3 = s.put(&k, b"c", Expected::Absent).map_err(e)?;
    ensure!(v3 != v1, "a recreated key reused version {v1}");
    s.delete(&k, Expected::Any).map_err(e)?;
    Ok(())
}

fn listing(cx: &Cx) -> CaseResult {
    let s = cx.store()?;
    let keys = ["list/b", "list/a", "list/c/d", "other/x"];
    for k in keys {
        s.put(&cx.key(k), b"v", Expected::Any).map_err(e)?;
    }
    let got = s.list(&cx.key("list/")).map_err(e)?;
    let want = vec![cx.key("list/a"), cx.key("list/b"), cx.key("list/c/d")];
    ensure!(got == want, "list returned {got:?}, expected {want:?}");
    s.delete(&cx.key("list/b"), Expected::Any).map_err(e)?;
    let got = s.list(&cx.key("list/")).map_err(e)?;
    ensure!(
        got == vec![cx.key("list/a"), cx.key("list/c/d")],
        "deleted key still listed: {got:?}"
    );
    for k in keys {
        s.delete(&cx.key(k), Expected::Any).map_err(e)?;
    }
    ensure!(
        s.list(&cx.prefix).map_err(e)?.is_empty(),
        "keys left after deleting all"
    );
    Ok(())
}

fn deletion(cx: &Cx) -> CaseResult {
    let s = cx.store()?;
    let k = cx.key("delete");
    s.put(&k, b"x", Expected::Any).map_err(e)?;
    ensure!(
        s.delete(&k, Expected::Any).map_err(e)?,
        "delete of an existing key reported nothing deleted"
    );
    absent(&s, &k).map_err(|why| format!("after a delete: {why}"))
}

fn bad_keys(cx: &Cx) -> CaseResult {
    let s = cx.store()?;
    for k in ["", "a\nb"] {
        match s.put(k, b"x", Expected::Any) {
            Err(err) if err.code == ErrorCode::INVALID_INPUT => {}
            other => return Err(format!("key {k:?} was not refused as invalid: {:?}", other.map_err(e))),
        }
    }
    Ok(())
}

fn concurrent_writers(cx: &Cx) -> CaseResult {
    let k = cx.key("counter");
    let s = cx.store()?;
    let start = s.put(&k, b"0", Expected::Any).map_err(e)?;
    let mut threads = Vec::new();
    for _ in 0..cx.opts.writers {
        let open = cx.open.clone();
        let k = k.clone();
        let n = cx.opts.increments;
        threads.push(thread::spawn(move || -> Result<u64, String> {
            let s = open().map_err(e)?;
            let mut conflicts = 0u64;
            for _ in 0..n {
                loop {
                    let r = s.get(&k).map_err(e)?.ok_or("counter vanished")?;
                    let value: u64 = std::str::from_utf8(&r.value)
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .ok_or("counter is not a number")?;
                    match s.put(&k, (value + 1).to_string().as_bytes(), Expected::Version(r.version)) {
                        Ok(_) => break,
                        Err(err) if err.is_conflict() || err.retryable => conflicts += 1,
                        Err(err) => return Err(e(err)),
                    }
                }
            }
            Ok(conflicts)
        }));
    }
    for t in threads {
        t.join().map_err(|_| "a writer thread panicked".to_string())??;
    }
    let total = (cx.opts.writers * cx.opts.increments) as u64;
    let r = s.get(&k).map_err(e)?.ok_or("counter vanished")?;
    let value = String::from_utf8_lossy(&r.value).to_string();
    ensure!(
        value == total.to_string(),
        "lost updates: counter is {value}, expected {total}"
    );
    ensure!(
        r.version == start + total,
        "version is {}, expected {}",
        r.version,
        start + total
    );
    s.delete(&k, Expected::Any).map_err(e)?;
    Ok(())
}

fn describes_itself(cx: &Cx) -> CaseResult {
    let d = cx.store()?.describe().map_err(e)?;
    ensure!(!d.location.is_empty(), "describe() gives no location");
    Ok(())
}

/// Runs every case with default options.
pub fn run(open: Opener) -> Report {
    run_with(open, Options::default())
}

/// Runs every case.
pub fn run_with(open: Opener, opts: Options) -> Report {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let cx = Cx {
        open,
        prefix: format!("conformance/{}-{nanos:x}/", std::process::id()),
        opts,
    };
    let cases: [Case; 10] = [
        ("describes itself", describes_itself),
        ("missing keys", missing_keys),
        ("round trip", round_trip),
        ("binary values", binary_values),
        ("large values", large_values),
        ("compare-and-swap", compare_and_swap),
        ("listing", listing),
        ("deletion", deletion),
        ("bad keys", bad_keys),
        ("concurrent writers", concurrent_writers),
    ];
    let mut report = Report::default();
    for (name, case) in cases {
        match case(&cx) {
            Ok(()) => report.passed.push(name),
            Err(detail) => report.failed.push(Failure { case: name, detail }),
        }
    }
    report
}
