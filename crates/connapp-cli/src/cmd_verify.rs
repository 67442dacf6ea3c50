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

#[derive(Serialize)]
struct VerifyJson<'a> {
    app: &'a str,
    ok: bool,
    checks: &'a [Check],
}

fn print_table(out: &mut impl Write, all: &[Check]) -> std::io::Result<()> {
    let checks = connapp_clients::verify::for_humans(all);
    let w_item = checks.iter().map(|c| c.item.len()).max().unwrap_or(4).clamp(4, 56);
    let w_ep = checks.iter().map(|c| c.endpoint.len()).max().unwrap_or(8).clamp(8, 64);
    writeln!(
        out,
        "{:<6} {:<11} {:<w_item$} {:<w_ep$} WHAT TO DO",
        "RESULT", "CHECK", "ITEM", "ENDPOINT"
    )?;
    for c in &checks {
        writeln!(
            out,
            "{:<6} {:<11} {:<w_item$} {:<w_ep$} {}",
            c.result.word(),
            c.check,
            c.item,
            c.endpoint,
            if c.fix.is_empty() { "-" } else { c.fix.as_str() }
        )?;
        if !c.detail.is_empty() && c.result != Outcome::Ok {
            writeln!(out, "       {}", c.detail)?;
        }
    }
    Ok(())
}

pub fn run(g: &Global, a: VerifyArgs) -> Result<(), CliError> {
    let (reg, path, decl) = ctx::declared(g)?;
    let c = cmd_token::load(&reg, &decl, a.app.as_deref())?;
    let app = c.app.clone();
    let checks = connapp_clients::verify::run(&reg, &decl, &path.display().to_string(), &c, &Terminal::of(g))?;

    let ok = !checks.iter().any(|c| c.result == Outcome::Fail);
    if a.json {
        ctx::print_json(&VerifyJson {
            app: &app.name,
            ok,
            checks: &checks,
        })?;
    } else {
        let mut out = std::io::stdout().lock();
        print_table(&mut out, &checks)?;
        let failed = checks.iter().filter(|c| c.result == Outcome::Fail).count();
        if ok {
            writeln!(out, "{}: everything declared works.", app.name)?;
        } else {
            writeln!(out, "{}: {failed} check(s) failed; see WHAT TO DO.", app.name)?;
        }
    }
    if ok {
        Ok(())
    } else {
        Err(CliError::with_code(Exit::Failure, String::new()))
    }
}
