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

pub fn run(g: &Global, a: VerifyArgs) -> Result<(), CliError> {
    let (reg, path, decl) = ctx::declared(g)?;
    let c = cmd_token::load(reg, &decl, a.app.as_deref())?;
    let app = c.app.clone();
    let checks = connapp_clients::verify::run(reg, &decl, &path.display().to_string(), &c, &Terminal::of(g))?;

    let ok = !checks.iter().any(|c| c.result == Outcome::Fail);
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
