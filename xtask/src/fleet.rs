//! Fleets at scale (issue 22), side by side in one run: `connapp check` of
//! a 10,000-row inventory (20,000 apps: a DEX app and a management app per
//! customer) against `connapp check` of the one-app declaration `init`
//! writes, the same binary; and `connapp refresh --all` of N apps against N
//! raw KV v2 check-and-set writes to the same OpenBao (`tests/benches/fleet_refresh.rs`).

use super::*;
use crate::bench::{Mode, time_runs};
use crate::demo::demo_command;
use crate::hotpath::Verdicts;

/// A DEX app and its management app per customer row (the e2e tests' fleet).
const FLEET: &str = include_str!("../../tests/fixtures/fleet/connapp.toml");

pub(crate) fn fleet_check_bench(bin: &Path, mode: Mode, v: &mut Verdicts) -> Result<()> {
    let work = std::env::temp_dir().join(format!("connapp-fleet-bench-{}", std::process::id()));
    let one = work.join("one");
    std::fs::create_dir_all(&one)?;
    let rows = 10_000;
    let mut csv = String::from("customer,instance,zoom_account,zoom_app_id\n");
    for i in 0..rows {
        csv.push_str(&format!("customer{i:05},instance{i:05},acct{i:05}Xy12AbCd,\n"));
    }
    std::fs::write(work.join("connapp.toml"), FLEET)?;
    std::fs::write(work.join("customers.csv"), csv)?;
    let init = demo_command(bin, &one, &["init", "--instance", "acme"]).output()?;
    if !init.status.success() {
        bail!("connapp init failed: {}", String::from_utf8_lossy(&init.stderr));
    }
    let runs = mode.runs(7);
    let fleet = time_runs(runs, || demo_command(bin, &work, &["check", "-q"]))?;
    let single = time_runs(runs, || demo_command(bin, &one, &["check", "-q"]))?;
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "connapp check: {rows}-row inventory (20,000 apps) median {fleet:?}; the one-app declaration {single:?} ({:.1}x), {runs} runs each",
        fleet.as_secs_f64() / single.as_secs_f64()
    );
    v.record(
        fleet < std::time::Duration::from_millis(1000),
        "check of a 10,000-row inventory well under 1 s",
        format!("{fleet:?}"),
    );
    Ok(())
}

/// `connapp refresh --all` of N apps vs N raw KV v2 CAS writes, against one
/// OpenBao started here, at N = 100, 1,000 and 10,000 (quick: 10 and 30 on
/// the debug build). The target: at most 1.25x the raw writes at 10,000.
pub(crate) fn fleet_refresh_bench(bin: &Path, mode: Mode, v: &mut Verdicts) -> Result<()> {
    let bao = crate::test::start_openbao()?;
    let sizes = if mode.quick { "10,30" } else { "100,1000,10000" };
    let mut c = cargo();
    c.args(["bench", "-q", "-p", "connapp-tests", "--bench", "fleet_refresh"]);
    if mode.quick {
        c.args(["--profile", "dev"]);
    }
    let out = c
        .env("CONNAPP_BENCH_BIN", bin)
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", &bao.token)
        .env("CONNAPP_BENCH_SIZES", sizes)
        .env("CONNAPP_BENCH_JOBS", "8")
        .stderr(Stdio::inherit())
        .output()
        .context("run the fleet refresh benchmark")?;
    drop(bao);
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    if !out.status.success() {
        bail!("the fleet refresh benchmark failed ({})", out.status);
    }
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("fleet refresh N=")).collect();
    if lines.len() != sizes.split(',').count() {
        bail!(
            "the fleet refresh benchmark printed {} figure(s) for {sizes}",
            lines.len()
        );
    }
    let last = lines.last().copied().unwrap_or_default();
    let ratio: f64 = last
        .rsplit("ratio ")
        .next()
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .context("no ratio in the fleet refresh figure")?;
    // How the cost per app grows from the smallest N to the largest, on both sides.
    let per = |line: &str, after: &str| -> Option<f64> {
        line.split(after)
            .nth(1)?
            .split(" ms/")
            .next()?
            .rsplit('(')
            .next()?
            .parse()
            .ok()
    };
    if let (Some(first), Some(last)) = (lines.first(), lines.last()) {
        let mine = per(last, "median ").zip(per(first, "median ")).map(|(l, f)| l / f);
        let raw = per(last, "at a time, median ")
            .zip(per(first, "at a time, median "))
            .map(|(l, f)| l / f);
        if let (Some(mine), Some(raw)) = (mine, raw) {
            println!(
                "fleet refresh, cost per app from the smallest N to the largest: connapp {mine:.2}x, raw CAS writes {raw:.2}x"
            );
        }
    }
    v.record(
        ratio <= 1.25,
        &format!(
            "connapp refresh --all of {} apps <= 1.25x as many raw KV v2 CAS writes",
            sizes.rsplit(',').next().unwrap_or(sizes)
        ),
        format!("{ratio:.2}x"),
    );
    Ok(())
}
