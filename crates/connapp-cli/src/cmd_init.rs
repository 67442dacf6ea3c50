//! `connapp init`.

use connapp_core::{InitOptions, valid_instance_name};
use serde::Serialize;

use crate::cli::{Global, InitArgs};
use crate::ctx;
use crate::error::{CliError, Exit};

#[derive(Serialize)]
struct Output<'a> {
    file: String,
    app: &'a str,
    preset: &'a str,
    scopes: Vec<&'a str>,
    redirect_url: String,
}

pub fn run(g: &Global, a: InitArgs) -> Result<(), CliError> {
    // A full base URL (custom domain, or the sandbox's instance) is written as
    // `instance_url` and checked with the rest of the declaration below.
    let is_url = a.instance.contains("://");
    if !is_url && !valid_instance_name(&a.instance) {
        let lower = a.instance.to_ascii_lowercase();
        let hint = if let Some(name) = lower.strip_prefix("https://").unwrap_or(&lower).split('.').next()
            && lower.contains(".service-now.com")
        {
            format!("pass only the instance name: --instance {name}")
        } else {
            "an instance name is the NAME in https://NAME.service-now.com: lower-case letters, digits, hyphens".into()
        };
        return Err(CliError::with_code(
            Exit::Invalid,
            format!("--instance {:?} is not a valid ServiceNow instance name", a.instance),
        )
        .hint(hint));
    }
    let reg = ctx::registry();
    ctx::warn_failures(&reg, g);
    let (presets, errors) = reg.presets();
    if let Some(e) = errors.into_iter().next() {
        return Err(e.into());
    }
    let Some((preset, _)) = presets.iter().find(|(p, _)| p.name == a.preset) else {
        let known: Vec<&str> = presets.iter().map(|(p, _)| p.name.as_str()).collect();
        return Err(CliError::with_code(
            Exit::Invalid,
            format!("no installed plugin provides the preset {:?}", a.preset),
        )
        .hint(format!(
            "installed presets: {}",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )));
    };
    let path = g.file.clone().unwrap_or_else(|| "connapp.toml".into());
    if path.exists() && !a.force {
        return Err(
            CliError::failure(format!("{} already exists; not overwriting it", path.display()))
                .hint("pass --force to replace it, or --file to write elsewhere"),
        );
    }
    let scopes: Vec<(String, String)> = preset
        .scopes
        .iter()
        .map(|s| (s.scope.clone(), s.reason.clone()))
        .collect();
    let text = connapp_core::render_declaration(&InitOptions {
        app_name: &a.app,
        display_name: &a.display_name,
        preset: &preset.name,
        platform: &preset.platform,
        scopes: &scopes,
        instance: &a.instance,
        store_kind: &a.store,
        login_redirect: a.login_redirect.as_deref(),
        zoom_base: a.zoom_base.as_deref(),
        management_account: a.management_account.as_deref(),
    });
    // Never write something `check` would reject.
    let report = connapp_engine::platform::check(&path.display().to_string(), &text, &reg)?;
    if report.has_errors() {
        for d in &report.diagnostics {
            eprintln!("{d}");
        }
        return Err(CliError::with_code(
            Exit::Invalid,
            "the options given would make an invalid declaration; nothing was written",
        ));
    }
    ctx::write_atomic(&path, text.as_bytes())?;
    let redirect = connapp_core::dex_redirect(&a.instance);
    if a.json {
        return ctx::print_json(&Output {
            file: path.display().to_string(),
            app: &a.app,
            preset: &preset.name,
            scopes: preset.scopes.iter().map(|s| s.scope.as_str()).collect(),
            redirect_url: redirect,
        });
    }
    if !g.quiet {
        println!(
            "Wrote {}: app {:?}, {} scopes from {}, redirect {redirect}",
            path.display(),
            a.app,
            preset.scopes.len(),
            preset.name
        );
        println!("Next:");
        println!("  connapp check");
        for k in connapp_core::SecretKind::ALL {
            println!("  connapp secrets set {}", k.as_str());
        }
        if a.management_account.is_some() {
            println!(
                "  connapp secrets set client-id --app {0}; connapp secrets set client-secret --app {0}",
                connapp_core::MANAGEMENT_APP
            );
            println!("  connapp plan; connapp apply");
        } else {
            println!("  connapp guide --format html --out guide.html   (the Marketplace steps with these values)");
        }
    }
    Ok(())
}
