//! `connapp check`.

use connapp_core::Severity;
use serde::Serialize;

use crate::cli::{CheckArgs, Global};
use crate::ctx;
use crate::error::{CliError, Exit};

#[derive(Serialize)]
struct AppSummary<'a> {
    app: &'a str,
    platform: &'a str,
    usage: &'a str,
    redirect_url: Option<&'a str>,
    grant_type: &'static str,
    scopes: Vec<&'a str>,
    /// The consumer as its platform's profile resolved it; `null`: none.
    target: Option<&'a connapp_core::Target>,
}

/// A fleet as `check` reports it: where its rows came from and what they made.
#[derive(Serialize)]
struct FleetSummary<'a> {
    source: &'a str,
    columns: &'a [String],
    patterns: &'a [String],
    rows: usize,
    apps: usize,
}

#[derive(Serialize)]
struct Output<'a> {
    file: String,
    valid: bool,
    errors: usize,
    warnings: usize,
    diagnostics: &'a [connapp_core::Diagnostic],
    apps: Vec<AppSummary<'a>>,
    /// The declaration's `[fleet]`; `null`: none.
    fleet: Option<FleetSummary<'a>>,
}

pub fn run(g: &Global, a: CheckArgs) -> Result<(), CliError> {
    let reg = ctx::registry();
    ctx::warn_failures(reg, g);
    let path = ctx::declaration_path(g)?;
    let file = path.display().to_string();
    let report = ctx::check_file(&path, reg)?;
    let errors = report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = report.diagnostics.len() - errors;
    if a.json {
        let apps = report
            .declaration
            .iter()
            .flat_map(|d| d.apps.iter())
            .map(|app| AppSummary {
                app: &app.name,
                platform: &app.platform,
                usage: app.usage.as_str(),
                redirect_url: app.redirect_url.as_deref(),
                grant_type: app.oauth.grant.as_str(),
                scopes: app.scopes.iter().map(|s| s.scope.as_str()).collect(),
                target: app.target.as_ref(),
            })
            .collect();
        ctx::print_json(
            "check",
            &Output {
                file: file.clone(),
                valid: errors == 0,
                errors,
                warnings,
                diagnostics: &report.diagnostics,
                apps,
                fleet: report
                    .declaration
                    .as_ref()
                    .and_then(|d| d.fleet.as_ref())
                    .map(|f| FleetSummary {
                        source: &f.source,
                        columns: &f.columns,
                        patterns: &f.patterns,
                        rows: f.rows.len(),
                        apps: f.rows.iter().map(|r| r.apps.len()).sum(),
                    }),
            },
        )?;
    } else {
        for d in &report.diagnostics {
            if d.severity == Severity::Error || !g.quiet {
                eprintln!("{d}");
            }
        }
        if let Some(decl) = &report.declaration
            && !g.quiet
        {
            // A fleet's apps are many: one line for all of them.
            let from_rows: std::collections::HashSet<&str> = decl
                .fleet
                .iter()
                .flat_map(|f| f.rows.iter().flat_map(|r| r.apps.iter().map(String::as_str)))
                .collect();
            for app in decl.apps.iter().filter(|a| !from_rows.contains(a.name.as_str())) {
                println!(
                    "{file}: app {:?} is valid: {} {}, {} scopes, {}",
                    app.name,
                    app.usage.as_str(),
                    app.platform,
                    app.scopes.len(),
                    app.redirect_url
                        .as_deref()
                        .map_or_else(|| app.oauth.grant.as_str().to_string(), |r| format!("redirect {r}"))
                );
            }
            if let Some(f) = &decl.fleet {
                let rows = f.rows.len();
                println!(
                    "{}: {rows} row{} made {} apps ({}), all valid",
                    f.source,
                    if rows == 1 { "" } else { "s" },
                    from_rows.len(),
                    f.patterns.join(", ")
                );
            }
            if warnings > 0 {
                println!("{warnings} warning{}", if warnings == 1 { "" } else { "s" });
            }
        }
    }
    if errors > 0 {
        return Err(CliError::with_code(
            Exit::Invalid,
            format!(
                "{file} is invalid: {errors} error{}",
                if errors == 1 { "" } else { "s" }
            ),
        ));
    }
    Ok(())
}
