//! `connapp verify` (alias `doctor`): proves the app works and explains every
//! failure in the user's terms. Checks, in order: the declaration, the stored
//! secrets, drift between the provider's live app settings and the
//! declaration, the redirect URLs the provider will accept, connapp's own
//! grant, the scopes it holds, one API call per scope (the preset's probe),
//! and the consumer's end. `connapp_clients::verify` runs them; this file
//! prints the report.

use std::io::Write;

use connapp_engine::verify::{Check, Outcome};
use serde::Serialize;

use crate::cli::{Global, VerifyArgs};
use crate::cmd_token::{self, Terminal};
use crate::ctx;
use crate::error::{CliError, Exit};
use crate::render;

#[derive(Serialize)]
struct VerifyJson<'a> {
    app: &'a str,
    /// No check failed.
    ok: bool,
    /// Every check was exercised and passed: no failure, nothing skipped, no warning.
    proven: bool,
    checks: &'a [Check],
}

/// The closing line: "everything declared works" only when every row was
/// exercised and passed; a row that was not exercised (skip) or only warned
/// keeps it from being said.
fn verdict(app: &str, checks: &[Check]) -> String {
    let count = |o: Outcome| checks.iter().filter(|c| c.result == o).count();
    let (failed, skipped, warned) = (count(Outcome::Fail), count(Outcome::Skip), count(Outcome::Warn));
    if failed > 0 {
        format!("{app}: {failed} check(s) failed; see WHAT TO DO.")
    } else if skipped + warned > 0 {
        let mut parts = Vec::new();
        if skipped > 0 {
            parts.push(format!("{skipped} not exercised"));
        }
        if warned > 0 {
            parts.push(format!("{warned} with a warning"));
        }
        format!(
            "{app}: nothing failed, but not everything is proven ({}); see WHAT TO DO.",
            parts.join(", ")
        )
    } else {
        format!("{app}: everything declared works.")
    }
}

/// The report for people: one line per check, `RESULT CHECK ITEM ENDPOINT`
/// within [`render::WIDTH`] columns (the endpoint moves to its own line when
/// the item is long), then what was found and what to do, indented, for
/// every row that did not pass.
fn print_table(out: &mut impl Write, all: &[Check]) -> std::io::Result<()> {
    let checks = connapp_clients::verify::for_humans(all);
    let w_check = checks.iter().map(|c| c.check.len()).max().unwrap_or(5).clamp(5, 11);
    let w_item = checks
        .iter()
        .map(|c| c.item.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 50);
    let title = format!("{:<6} {:<w_check$} {:<w_item$} ENDPOINT", "RESULT", "CHECK", "ITEM");
    writeln!(out, "{}", render::paint(render::HEAD, &title))?;
    let indent = 7;
    for c in &checks {
        let (word, style) = match c.result {
            Outcome::Ok => ("ok", render::GOOD),
            Outcome::Warn => ("warn", render::WARN),
            Outcome::Fail => ("FAIL", render::BAD),
            Outcome::Skip => ("skip", render::DIM),
        };
        let head = format!("{:<w_check$} {:<w_item$}", c.check, render::fit(&c.item, w_item));
        let room = render::WIDTH.saturating_sub(indent + head.chars().count() + 1);
        let endpoint = if c.endpoint.chars().count() <= room {
            c.endpoint.as_str()
        } else {
            ""
        };
        let row = format!("{head} {endpoint}");
        writeln!(
            out,
            "{} {}",
            render::paint(style, &format!("{word:<6}")),
            row.trim_end()
        )?;
        if endpoint.is_empty() && !c.endpoint.is_empty() {
            let line = format!("{}{}", " ".repeat(indent), c.endpoint);
            writeln!(out, "{}", render::fit(&line, render::WIDTH))?;
        }
        if c.result != Outcome::Ok {
            for line in render::wrap(&c.detail, indent, render::WIDTH) {
                writeln!(out, "{line}")?;
            }
            for (i, line) in render::wrap(&c.fix, indent + 5, render::WIDTH).into_iter().enumerate() {
                if i == 0 {
                    let fix = render::paint(render::HEAD, "fix: ");
                    writeln!(out, "{}{fix}{}", " ".repeat(indent), line.trim_start())?;
                } else {
                    writeln!(out, "{line}")?;
                }
            }
        }
    }
    Ok(())
}

/// Keeps one app's verify in the run file of `verify`, so `connapp list`
/// shows its last result however it was run (a file that cannot be written
/// costs only that).
fn record_one(path: &std::path::Path, app: &str, checks: &[Check]) {
    use connapp_engine::batch::{AppResult, Outcome as Done, RunFile};
    let Ok(data) = ctx::data_dir() else { return };
    // Its own file: a one-app verify never ends an interrupted `verify --all` that would resume.
    let file = connapp_engine::batch::run_file_path(&data, "verify-one", path);
    let Ok(f) = RunFile::open(&file, "verify", connapp_engine::tokens::now(), true) else {
        return;
    };
    let failed: Vec<&Check> = checks.iter().filter(|c| c.result == Outcome::Fail).collect();
    let outcome = match failed.first() {
        None => Done::Ok {
            detail: verdict(app, checks).trim_start_matches(&format!("{app}: ")).to_string(),
        },
        Some(c) => Done::Failed {
            kind: connapp_engine::ErrorKind::Failure,
            message: format!(
                "{} check(s) failed, first {} {}: {}",
                failed.len(),
                c.check,
                c.item,
                c.detail
            ),
            hint: (!c.fix.is_empty()).then(|| c.fix.clone()),
        },
    };
    f.record_one(
        "verify",
        &AppResult {
            app: app.to_string(),
            step: "verify".into(),
            outcome,
            millis: 0,
        },
    );
}

/// One app's verdict in `verify --all --json`.
#[derive(Serialize)]
struct AppVerdict<'a> {
    app: &'a str,
    ok: bool,
    proven: bool,
    /// `null` when verify could not run for the app (see `error`).
    checks: Option<Vec<Check>>,
    error: Option<&'a str>,
}

/// `verify --all`: every app (or the selected rows') on one store, `--jobs`
/// at a time; an app whose checks cannot run fails alone.
fn run_all(g: &Global, a: &VerifyArgs) -> Result<(), CliError> {
    use connapp_engine::batch::Outcome as Done;
    let (reg, path, decl) = ctx::declared(g)?;
    let file = path.display().to_string();
    let apps: Vec<&str> = crate::batch::select(&decl, &a.batch)?
        .into_iter()
        .map(|x| x.name.as_str())
        .collect();
    let stores = cmd_token::Stores::new(&decl);
    let found = std::sync::Mutex::new(std::collections::HashMap::new());
    let (report, record) = crate::batch::run(g, &decl, &path, "verify", &a.batch, a.json, &apps, |name| {
        let c = connapp_engine::tokens::AppCtx::load(reg, &decl, Some(name), stores.of(name)?)?;
        let checks = connapp_clients::verify::run(reg, &decl, &file, &c, &connapp_engine::tokens::Silent)?;
        let count = |o: Outcome| checks.iter().filter(|c| c.result == o).count();
        let (failed, unproven) = (count(Outcome::Fail), count(Outcome::Skip) + count(Outcome::Warn));
        let first_fail = checks.iter().find(|c| c.result == Outcome::Fail).cloned();
        found
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), checks);
        if let Some(c) = first_fail {
            let e = connapp_engine::Error::failure(format!(
                "{name}: {failed} check(s) failed, first {} {}: {}",
                c.check, c.item, c.detail
            ));
            return Err(if c.fix.is_empty() { e } else { e.hint(c.fix) });
        }
        Ok(if unproven == 0 {
            "verified: everything declared works".to_string()
        } else {
            format!("verified: nothing failed, but {unproven} check(s) not exercised or warned (not proven)")
        })
    })?;
    let found = found.into_inner().unwrap_or_else(|p| p.into_inner());
    let proven = |name: &str| {
        found
            .get(name)
            .is_some_and(|c| c.iter().all(|c| c.result == Outcome::Ok))
    };
    if a.json {
        let apps: Vec<AppVerdict<'_>> = report
            .results
            .iter()
            .map(|r| AppVerdict {
                app: &r.app,
                // Resumed from an interrupted run: its result, no checks of this run.
                ok: found
                    .get(&r.app)
                    .map_or(r.outcome.is_ok(), |c| !c.iter().any(|c| c.result == Outcome::Fail)),
                proven: proven(&r.app),
                checks: found.get(&r.app).cloned(),
                error: match &r.outcome {
                    Done::Failed { message, .. } if !found.contains_key(&r.app) => Some(message.as_str()),
                    Done::Skipped { reason } => Some(reason.as_str()),
                    _ => None,
                },
            })
            .collect();
        let all_ok = apps.iter().all(|a| a.ok);
        let all_proven = apps.iter().all(|a| a.proven);
        ctx::print_json(
            "verify",
            &serde_json::json!({ "ok": all_ok, "proven": all_proven, "apps": apps }),
        )?;
    } else if !g.quiet && !a.batch.jsonl {
        let n = report.results.iter().filter(|r| proven(&r.app)).count();
        println!(
            "{n} of {} app(s) proven: every check exercised and passed (those resumed from an interrupted run are not counted).",
            report.results.len()
        );
    }
    crate::batch::conclude(
        g,
        a.json,
        a.batch.jsonl,
        &report,
        "verified with no failed check",
        &record,
    )
}

pub fn run(g: &Global, a: VerifyArgs) -> Result<(), CliError> {
    if a.all || !a.batch.select.is_empty() {
        return run_all(g, &a);
    }
    let (reg, path, decl) = ctx::declared(g)?;
    let c = cmd_token::load(reg, &decl, a.app.as_deref())?;
    let app = c.app.clone();
    let checks = connapp_clients::verify::run(reg, &decl, &path.display().to_string(), &c, &Terminal::of(g))?;

    let ok = !checks.iter().any(|c| c.result == Outcome::Fail);
    record_one(&path, &app.name, &checks);
    if a.json {
        ctx::print_json(
            "verify",
            &VerifyJson {
                app: &app.name,
                ok,
                proven: checks.iter().all(|c| c.result == Outcome::Ok),
                checks: &checks,
            },
        )?;
    } else {
        let mut out = render::stdout().lock();
        print_table(&mut out, &checks)?;
        let line = verdict(&app.name, &checks);
        let style = if !ok {
            render::BAD
        } else if checks.iter().all(|c| c.result == Outcome::Ok) {
            render::GOOD
        } else {
            render::WARN
        };
        writeln!(out, "{}", render::paint(style, &line))?;
    }
    if ok {
        Ok(())
    } else {
        Err(CliError::with_code(Exit::Failure, String::new()))
    }
}

#[cfg(test)]
mod tests {
    use connapp_engine::verify::row;

    use super::*;

    #[test]
    fn only_rows_that_all_passed_make_everything_work() {
        let ok = row("grant", "connapp's token", "", Outcome::Ok);
        let all = [ok.clone(), ok.clone()];
        assert_eq!(verdict("a", &all), "a: everything declared works.");
        let skipped = [ok.clone(), row("servicenow", "calls", "", Outcome::Skip)];
        assert!(verdict("a", &skipped).contains("not everything is proven (1 not exercised)"));
        let warned = [ok.clone(), row("servicenow", "calls", "", Outcome::Warn)];
        assert!(verdict("a", &warned).contains("1 with a warning"));
        let failed = [
            ok,
            row("servicenow", "calls", "", Outcome::Fail),
            row("x", "y", "", Outcome::Skip),
        ];
        assert_eq!(verdict("a", &failed), "a: 1 check(s) failed; see WHAT TO DO.");
    }
}
