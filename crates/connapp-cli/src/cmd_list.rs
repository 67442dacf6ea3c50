//! `connapp list`: the inventory view, one row per app, read from the store
//! and the run files (nothing is called: it says what connapp holds and
//! last saw, never that an app works — `verify` says that).

use std::io::Write;

use connapp_engine::listing::{self, Listed};

use crate::cli::{Global, ListArgs};
use crate::error::CliError;
use crate::{batch, cmd_token, ctx, render};

/// A duration in the largest whole unit: `3d`, `5h`, `12m`, `40s`.
fn age(secs: Option<u64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s >= 86_400 => format!("{}d", s / 86_400),
        Some(s) if s >= 3_600 => format!("{}h", s / 3_600),
        Some(s) if s >= 60 => format!("{}m", s / 60),
        Some(s) => format!("{s}s"),
    }
}

fn print_table(out: &mut impl Write, rows: &[Listed], now: u64) -> std::io::Result<()> {
    let w_app = rows.iter().map(|r| r.app.len()).max().unwrap_or(3).clamp(3, 24);
    let title = format!(
        "{:<w_app$} {:<20} {:<14} {:<9} {:<7} {:<7} VERIFY",
        "APP", "INSTANCE", "OWNER", "REFRESHED", "RT AGE", "SECRET"
    );
    writeln!(out, "{}", render::paint(render::HEAD, &title))?;
    for r in rows {
        let instance = r
            .instance
            .as_deref()
            .map(|i| i.trim_start_matches("https://").trim_start_matches("http://"))
            .unwrap_or("-");
        let verify = match &r.last_verify {
            None => "-".to_string(),
            Some(v) if v.ok => format!("ok {} ago", age(Some(now.saturating_sub(v.at)))),
            Some(v) => format!("FAILED {} ago", age(Some(now.saturating_sub(v.at)))),
        };
        writeln!(
            out,
            "{:<w_app$} {:<20} {:<14} {:<9} {:<7} {:<7} {verify}",
            render::fit(&r.app, w_app),
            render::fit(instance, 20),
            render::fit(r.grant_owner.as_deref().unwrap_or("-"), 14),
            r.last_refresh
                .map_or("-".into(), |t| format!("{} ago", age(Some(now.saturating_sub(t))))),
            age(r.refresh_token_age_secs),
            age(r.client_secret_age_secs),
        )?;
        if let Some(e) = &r.error {
            writeln!(out, "  {}", render::paint(render::BAD, &format!("cannot read: {e}")))?;
        }
    }
    Ok(())
}

pub fn run(g: &Global, a: ListArgs) -> Result<(), CliError> {
    let (_, path, decl) = ctx::declared(g)?;
    let apps = batch::select_rows(&decl, &a.select)?;
    let data = ctx::data_dir()?;
    let verify_runs = [
        connapp_engine::batch::run_file_path(&data, "verify", &path),
        connapp_engine::batch::run_file_path(&data, "verify-one", &path),
    ];
    // Each store the apps live in (a fleet's rows may have their own), in turn.
    let wanted: std::collections::HashMap<&str, &connapp_core::App> =
        apps.iter().map(|a| (a.name.as_str(), *a)).collect();
    let stores = cmd_token::Stores::new(&decl);
    let mut by_app = std::collections::HashMap::new();
    for (_, group) in decl.store_groups() {
        let these: Vec<&connapp_core::App> = group.iter().filter_map(|n| wanted.get(n).copied()).collect();
        let Some(first) = these.first() else { continue };
        // A store this operator cannot open is every one of its apps' error, not the command's.
        let shared = match stores.of(&first.name) {
            Ok(s) => s,
            Err(e) => {
                for app in these {
                    by_app.insert(app.name.clone(), Listed::unreadable(&decl, app, e.message.clone()));
                }
                continue;
            }
        };
        for l in listing::list(&decl, &these, shared, &verify_runs) {
            by_app.insert(l.app.clone(), l);
        }
    }
    let rows: Vec<Listed> = apps.iter().filter_map(|a| by_app.remove(&a.name)).collect();
    let now = connapp_engine::tokens::now();
    if a.json {
        return ctx::print_json("list", &serde_json::json!({ "apps": rows }));
    }
    if !g.quiet {
        print_table(&mut render::stdout().lock(), &rows, now)?;
    }
    Ok(())
}
