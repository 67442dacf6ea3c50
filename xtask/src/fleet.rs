//! Fleets at scale (issue 22), side by side in one run: `connapp check` of
//! a 10,000-row inventory (20,000 apps: a DEX app and a management app per
//! customer) against `connapp check` of the one-app declaration `init`
//! writes, the same binary.

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
