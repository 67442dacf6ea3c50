//! `connapp schedule install|remove|status|run`: the scheduled watch.
//! Installing is `connapp_engine::schedule`'s, a pass is
//! `connapp_clients::watch`'s, the passes' memory `connapp_engine::watch`'s;
//! this file parses, calls and renders.

use std::io::Write;

use connapp_clients::apply::Session;
use connapp_clients::watch::{self, Hook};
use connapp_engine::schedule::{self, Every, Places, Scheduler};
use connapp_engine::watch as memory;
use serde_json::json;

use crate::cli::{EveryArg, Global, ScheduleInstallArgs, SchedulerArg, WatchPassArgs};
use crate::cmd_token::{self, Terminal};
use crate::ctx;
use crate::error::CliError;

fn data_dir() -> Result<std::path::PathBuf, CliError> {
    Ok(ctx::environment()?.data_dir.clone())
}

/// Prints the watch's problem, if it has one, in one line on stderr.
pub fn mention_problem() {
    let Ok(dir) = data_dir() else { return };
    if let Some(line) = memory::problem(&dir, connapp_engine::tokens::now(), &schedule::present) {
        eprintln!("{line}");
    }
}

fn hooks(a: &WatchPassArgs) -> Result<Vec<Hook>, CliError> {
    let mut v = Vec::new();
    if let Some(c) = &a.hook_command {
        v.push(Hook::Command(c.clone()));
    }
    if let Some(u) = &a.hook_url {
        memory::check_hook_url(u)?;
        v.push(Hook::Url(u.clone()));
    }
    Ok(v)
}

pub fn run(g: &Global, a: WatchPassArgs) -> Result<(), CliError> {
    let hooks = hooks(&a)?;
    let (reg, path, decl) = ctx::declared(g)?;
    let term = Terminal::new(g.quiet, a.json);
    // The declaration's store carries the hooks' HTTP client and the clock.
    let shared = cmd_token::shared(&decl)?;
    let session = Session {
        reg,
        decl: &decl,
        shared: &shared,
        obs: &term,
    };
    // Each store the apps live in (a fleet's rows may have their own), in turn.
    let mut found = Vec::new();
    for (store, apps) in decl.store_groups() {
        let opened;
        let on = if store == decl.store {
            &session
        } else {
            opened = ctx::engine()?
                .open_store(&store)
                .map_err(|e| ctx::store_error(e, &decl))?;
            &Session {
                reg,
                decl: &decl,
                shared: &opened,
                obs: &term,
            }
        };
        found.extend(watch::pass(
            on,
            &apps,
            &path.display().to_string(),
            a.refresh_older_than,
        ));
    }
    let dir = data_dir()?;
    let previous = memory::state(&dir);
    let (all, new) = memory::merge(previous.as_ref(), found);
    let mut undelivered = Vec::new();
    // Hooks that failed last time are tried again.
    let retry: Vec<&memory::Failure> = previous
        .as_ref()
        .map(|p| {
            all.iter()
                .filter(|f| p.undelivered.contains(&f.key) && !new.iter().any(|n| n.key == f.key))
                .collect()
        })
        .unwrap_or_default();
    for f in new.iter().chain(retry) {
        let payload = memory::hook_payload(f, &path);
        for h in &hooks {
            if let Err(e) = watch::deliver(&session, h, &payload) {
                eprintln!("connapp: the hook for {} {} failed: {e}", f.app, f.check);
                if !undelivered.contains(&f.key) {
                    undelivered.push(f.key.clone());
                }
            }
        }
    }
    let state = memory::State {
        last_pass_at: shared.now(),
        failures: all.clone(),
        undelivered,
    };
    memory::save_state(&dir, &state)?;
    drop(term);
    if a.json {
        ctx::print_json(
            "schedule run",
            &json!({
                "ok": all.is_empty(),
                "failures": all,
                "new": new.iter().map(|f| f.key.clone()).collect::<Vec<_>>(),
            }),
        )?;
    } else if !g.quiet {
        let mut out = crate::render::stdout().lock();
        if all.is_empty() {
            writeln!(out, "Watch pass: every check passed.")?;
        }
        for f in &all {
            let mark = if new.iter().any(|n| n.key == f.key) {
                "new"
            } else {
                "still"
            };
            writeln!(out, "{mark:<5} {}: {} {}: {}", f.app, f.check, f.item, f.detail)?;
        }
    }
    Ok(watch::outcome(&all)?)
}

pub fn install(g: &Global, a: ScheduleInstallArgs) -> Result<(), CliError> {
    hooks(&a.pass)?;
    let (_, path, decl) = ctx::declared(g)?;
    let dir = data_dir()?;
    if memory::installed(&dir).is_some() {
        return Err(CliError::failure("the watch is installed already")
            .hint("`connapp schedule status` shows it; `connapp schedule remove` takes it out"));
    }
    let scheduler = match a.scheduler {
        SchedulerArg::Auto => schedule::detect(),
        SchedulerArg::Systemd => Scheduler::Systemd,
        SchedulerArg::Launchd => Scheduler::Launchd,
        SchedulerArg::Cron => Scheduler::Cron,
    };
    let every = match a.every {
        EveryArg::Hourly => Every::Hourly,
        EveryArg::Daily => Every::Daily,
    };
    let exe = std::env::current_exe().map_err(|e| CliError::failure(format!("cannot find connapp itself: {e}")))?;
    let decl_abs = std::fs::canonicalize(&path).unwrap_or(path);
    let mut command = vec![
        exe.display().to_string(),
        "--file".into(),
        decl_abs.display().to_string(),
        "--quiet".into(),
        "schedule".into(),
        "run".into(),
        "--refresh-older-than".into(),
        format!("{}s", a.pass.refresh_older_than),
    ];
    if let Some(c) = &a.pass.hook_command {
        command.extend(["--hook-command".into(), c.clone()]);
    }
    if let Some(u) = &a.pass.hook_url {
        command.extend(["--hook-url".into(), u.clone()]);
    }
    let places = Places::from_env()?;
    let (rec, mut warnings) = schedule::install(&places, scheduler, every, command, connapp_engine::tokens::now())?;
    memory::save_installed(&dir, &rec)?;
    if decl.store.kind == "file" {
        warnings.push(
            "the file store opens only with its passphrase, which a scheduled pass has no way to ask for: the watch needs a store that opens unattended (keyring in a logged-in session, Vault/OpenBao with its token)"
                .into(),
        );
    }
    if !g.quiet {
        let when = match every {
            Every::Hourly => format!("every hour at minute {}", rec.minute),
            Every::Daily => format!("every day at {:02}:{:02}", rec.hour, rec.minute),
        };
        println!("Installed the watch ({}), {when}.", scheduler.as_str());
        for f in &rec.files {
            println!("  wrote {}", f.display());
        }
        if scheduler == Scheduler::Cron {
            println!(
                "  added a block to the crontab between `{}` and `{}`",
                schedule::CRON_BEGIN,
                schedule::CRON_END
            );
        }
    }
    for w in warnings {
        eprintln!("connapp: {w}");
    }
    Ok(())
}

pub fn remove(g: &Global) -> Result<(), CliError> {
    let dir = data_dir()?;
    let Some(rec) = memory::installed(&dir) else {
        return Err(CliError::failure("the watch is not installed (nothing to remove)"));
    };
    let warnings = schedule::remove(&rec)?;
    memory::forget_installed(&dir);
    if !g.quiet {
        println!("Removed the watch ({}).", rec.scheduler.as_str());
    }
    for w in warnings {
        eprintln!("connapp: {w}");
    }
    Ok(())
}

pub fn status(g: &Global, json_out: bool) -> Result<(), CliError> {
    let dir = data_dir()?;
    let now = connapp_engine::tokens::now();
    let rec = memory::installed(&dir);
    let state = memory::state(&dir);
    let present = rec.as_ref().is_some_and(schedule::present);
    let word = match (&rec, &state) {
        (None, _) => "not-installed",
        (Some(_), _) if !present => "missing",
        (Some(r), s)
            if now.saturating_sub(s.as_ref().map_or(r.installed_at, |s| s.last_pass_at)) > memory::stale_after(r) =>
        {
            "stale"
        }
        (Some(_), Some(s)) if !s.failures.is_empty() => "failing",
        (Some(_), None) => "waiting",
        _ => "ok",
    };
    if json_out {
        ctx::print_json(
            "schedule status",
            &json!({
                "state": word,
                "scheduler": rec.as_ref().map(|r| r.scheduler.as_str()),
                "installed_at": rec.as_ref().map(|r| r.installed_at),
                "last_pass_at": state.as_ref().map(|s| s.last_pass_at),
                "failures": state.as_ref().map(|s| s.failures.clone()).unwrap_or_default(),
            }),
        )?;
    } else if !g.quiet {
        match &rec {
            None => println!("The watch is not installed: `connapp schedule install` sets it up."),
            Some(r) => {
                println!(
                    "watch      {word} ({}, installed {})",
                    r.scheduler.as_str(),
                    connapp_clients::rotate::iso(r.installed_at)
                );
                match &state {
                    Some(s) => println!(
                        "last pass  {} ({} failure(s))",
                        connapp_clients::rotate::iso(s.last_pass_at),
                        s.failures.len()
                    ),
                    None => println!("last pass  none yet"),
                }
                for f in state.iter().flat_map(|s| &s.failures) {
                    println!("  {} {} {}: {}", f.app, f.check, f.item, f.detail);
                }
            }
        }
    }
    match word {
        "missing" | "stale" | "failing" => Err(CliError::failure(format!("the watch is {word}"))),
        _ => Ok(()),
    }
}
