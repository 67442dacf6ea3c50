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
            Exit::Usage,
            format!("--instance {:?} is not a valid ServiceNow instance name", a.instance),
        )
        .hint(hint));
    }
    let reg = ctx::registry();
    ctx::warn_failures(reg, g);
    let (presets, errors) = reg.presets();
    if let Some(e) = errors.into_iter().next() {
        return Err(e.into());
    }
    let Some((preset, _)) = presets.iter().find(|(p, _)| p.name == a.preset) else {
        let known: Vec<&str> = presets.iter().map(|(p, _)| p.name.as_str()).collect();
        return Err(CliError::with_code(
            Exit::Usage,
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
    // The store's settings as its plugin describes them, to uncomment.
    let store_settings = connapp_engine::platform::catalog(reg)?
        .stores
        .into_iter()
        .find(|s| s.kind == a.store)
        .map(|s| s.settings)
        .unwrap_or_default();
    let text = connapp_core::render_declaration(&InitOptions {
        app_name: &a.app,
        display_name: &a.display_name,
        preset: &preset.name,
        platform: &preset.platform,
        scopes: &scopes,
        instance: &a.instance,
        store_kind: &a.store,
        store_settings: &store_settings,
        login_redirect: a.login_redirect.as_deref(),
        zoom_base: a.zoom_base.as_deref(),
        management_account: a.management_account.as_deref(),
    });
    // Never write something `check` would reject.
    let report = connapp_engine::platform::check(&path.display().to_string(), &text, reg)?;
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
        return ctx::print_json(
            "init",
            &Output {
                file: path.display().to_string(),
                app: &a.app,
                preset: &preset.name,
                scopes: preset.scopes.iter().map(|s| s.scope.as_str()).collect(),
                redirect_url: redirect,
            },
        );
    }
    if !g.quiet {
        println!(
            "Wrote {}: app {:?}, {} scopes from {}, redirect {redirect}",
            path.display(),
            a.app,
            preset.scopes.len(),
            preset.name
        );
        for line in next_steps(&a.app, a.management_account.is_some()) {
            println!("{line}");
        }
    }
    Ok(())
}

/// The steps after `init`, for the branch the user chose: with a management
/// app, `apply` creates the Zoom app and stores its credentials itself; without
/// one, the user creates it by hand with the guide and stores them.
fn next_steps(app: &str, managed: bool) -> Vec<String> {
    let mgmt = connapp_core::MANAGEMENT_APP;
    let instance = format!(
        "connapp secrets set instance-user --app {app}; connapp secrets set instance-password --app {app}   (a ServiceNow admin)"
    );
    let consent = "open the consent link apply prints, as a ServiceNow admin, and allow access in Zoom as a Zoom admin other than your own";
    let mut steps = if managed {
        vec![
            "Next (apply creates the Zoom app through the management app):".to_string(),
            "  1. connapp check".into(),
            format!(
                "  2. connapp secrets set client-id --app {mgmt}; connapp secrets set client-secret --app {mgmt}   (the management app's: a Server-to-Server OAuth app with the marketplace scopes)"
            ),
            format!("  3. {instance}"),
            format!(
                "  4. connapp plan; connapp apply   (creates {app}; its Client ID and Secret go straight into the store)"
            ),
            format!(
                "  5. connapp secrets set secret-token --app {app}   (from the created app's Features > Access page)"
            ),
        ]
    } else {
        vec![
            "Next (create the Zoom app by hand; `init --management-account` lets apply do it):".to_string(),
            "  1. connapp check".into(),
            "  2. connapp guide --format html --out guide.html   (every Marketplace step with these values)".into(),
            format!(
                "  3. connapp secrets set client-id --app {app}; connapp secrets set client-secret --app {app}; connapp secrets set secret-token --app {app}"
            ),
            format!(
                "     and add app_id = \"...\" to [apps.{app}] (the id in the app's Marketplace URL), so a later management app manages this app instead of creating another"
            ),
            format!("  4. {instance}"),
            "  5. connapp apply   (writes the ServiceNow records)".into(),
        ]
    };
    steps.push(format!("  6. {consent}"));
    steps.push(format!(
        "  7. connapp login {app} --user-hint YOUR-ZOOM-USER; connapp verify"
    ));
    steps
}

#[cfg(test)]
mod tests {
    use super::next_steps;

    /// Each branch names only its own way to the app's credentials: with a
    /// management app nobody is told to store the DEX app's Client ID (apply
    /// would then refuse to create it); without one the guide and app_id are named.
    #[test]
    fn next_steps_follow_the_branch() {
        let managed = next_steps("dex-zoom", true).join("\n");
        assert!(!managed.contains("client-id --app dex-zoom"), "{managed}");
        assert!(
            managed.contains("client-id --app zoom-marketplace") && managed.contains("connapp apply"),
            "{managed}"
        );
        assert!(!managed.contains("guide"), "{managed}");
        let manual = next_steps("dex-zoom", false).join("\n");
        assert!(
            manual.contains("connapp guide") && manual.contains("app_id"),
            "{manual}"
        );
        assert!(
            manual.contains("client-id --app dex-zoom") && !manual.contains("zoom-marketplace"),
            "{manual}"
        );
    }
}
