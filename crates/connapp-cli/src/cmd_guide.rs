//! `connapp guide [--format md|html] [--out FILE]`: the provider's setup
//! procedure for one app (from `connapp_clients::guide`), rendered by
//! `connapp_engine::guide`.

use connapp_engine::guide;

use crate::cli::{Global, GuideArgs, GuideFormat};
use crate::ctx;
use crate::error::CliError;

pub fn run(g: &Global, a: GuideArgs) -> Result<(), CliError> {
    let (reg, _, decl) = ctx::declared(g)?;
    let app = ctx::app(&decl, a.app.as_deref())?;
    let setup = connapp_clients::guide(reg, app);
    let text = match a.format {
        GuideFormat::Md => guide::markdown(&setup),
        GuideFormat::Html => guide::html(&setup),
    };
    match &a.out {
        Some(path) => {
            ctx::write_atomic(path, text.as_bytes())?;
            if !g.quiet {
                eprintln!("Wrote {} ({} steps)", path.display(), setup.steps.len());
            }
        }
        None => {
            use std::io::Write;
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
    }
    Ok(())
}
