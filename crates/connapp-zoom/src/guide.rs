//! Zoom's Marketplace procedure for one app, step by step, filled with this
//! app's exact values, for admins who set the app up by hand (or want to
//! check what `apply` did). `connapp_engine::guide` renders it.

use connapp_core::{App, SecretKind, Usage};
use connapp_engine::guide::{Guide, Part, Step};
use connapp_plugin_api::PresetScope;

fn t(s: impl Into<String>) -> Part {
    Part::text(s)
}
fn v(s: impl Into<String>) -> Part {
    Part::value(s)
}
fn cmd(s: impl Into<String>) -> Part {
    Part::command(s)
}

/// The words to type into the Marketplace's scope search for a scope.
pub fn search_term(scope: &str) -> String {
    let parts: Vec<&str> = scope.split(':').collect();
    let (Some(product), Some(resource)) = (parts.first(), parts.get(2)) else {
        return scope.to_string();
    };
    let mut words: Vec<&str> = Vec::new();
    for w in std::iter::once(*product).chain(resource.trim_start_matches("list_").split('_')) {
        if !w.is_empty() && !words.contains(&w) {
            words.push(w);
        }
    }
    words.join(" ")
}

fn on_off(b: bool) -> &'static str {
    if b { "On" } else { "Off" }
}

/// The Marketplace procedure for `app`; `reasons` are the presets' scope entries.
pub fn guide(app: &App, reasons: &[PresetScope]) -> Guide {
    let n = &app.name;
    let set = |k: SecretKind| format!("connapp secrets set {} --app {n}", k.as_str());
    let mut s = Vec::new();
    s.push(Step {
        id: "create".into(),
        title: "Create the app in the Zoom Marketplace".into(),
        lines: vec![
            vec![
                t("Sign in to "),
                v("https://marketplace.zoom.us"),
                t(" as an account owner or admin, then open Develop > Build App."),
            ],
            vec![t("Choose "), v("General App"), t(" and press Create.")],
        ],
    });
    s.push(Step {
        id: "basic".into(),
        title: "Basic Information: name and management".into(),
        lines: vec![
            vec![t("App name: "), v(app.display_name.clone())],
            vec![
                t("How the app is managed: "),
                v(match app.usage {
                    Usage::AdminManaged => "Admin-managed",
                    Usage::UserManaged => "User-managed",
                }),
                t(if app.usage == Usage::AdminManaged {
                    " (it reads data of the whole account; only admins can authorize it)"
                } else {
                    ""
                }),
            ],
        ],
    });
    s.push(Step {
        id: "credentials".into(),
        title: "App Credentials: store the Client ID and Client Secret".into(),
        lines: vec![
            vec![t(
                "Copy the Client ID, then run (it reads the value from a hidden prompt):",
            )],
            vec![cmd(set(SecretKind::ClientId))],
            vec![t("Copy the Client Secret, then run:")],
            vec![cmd(set(SecretKind::ClientSecret))],
            vec![t("Never paste either into chat, tickets or notes.")],
        ],
    });
    if let Some(r) = &app.redirect_url {
        let mut lines = vec![
            vec![t("OAuth Redirect URL (development and production): "), v(r.clone())],
            vec![t(
                "Type it exactly: no trailing slash, lower case; Zoom compares byte for byte.",
            )],
        ];
        for e in &app.allow_list {
            lines.push(vec![t("OAuth Allow List entry: "), v(e.clone())]);
        }
        lines.push(vec![t("Strict Mode URL: "), v(on_off(app.strict_mode))]);
        lines.push(vec![t("Subdomain Check: "), v(on_off(app.subdomain_check))]);
        s.push(Step {
            id: "oauth".into(),
            title: "OAuth Information: redirect URL and allow list".into(),
            lines,
        });
    }
    let mut access = vec![
        vec![t(
            "Copy the Secret Token (it signs webhooks; it is not the Client Secret), then run:",
        )],
        vec![cmd(set(SecretKind::SecretToken))],
    ];
    if let Some(w) = &app.webhook {
        access.push(vec![
            t("Turn on Event Subscription; Event notification endpoint URL: "),
            v(w.endpoint_url.clone()),
        ]);
        for e in &w.events {
            access.push(vec![t("Add the event "), v(e.clone())]);
        }
        access.push(vec![
            t("Press Validate: the endpoint must answer Zoom's challenge, e.g. with "),
            cmd(format!("connapp webhook serve --app {n}")),
        ]);
    }
    s.push(Step {
        id: "access".into(),
        title: "Features > Access: the Secret Token".into(),
        lines: access,
    });
    let mut scopes = vec![vec![t(format!(
        "Press Add Scopes and add these {} scopes. For each, type the search term, then tick exactly the scope shown:",
        app.scopes.len()
    ))]];
    for sc in &app.scopes {
        let reason = reasons
            .iter()
            .find(|p| p.scope == sc.scope)
            .map(|p| p.reason.clone())
            .unwrap_or_default();
        let mut line = vec![v(sc.scope.clone()), t(" search: "), v(search_term(&sc.scope))];
        if sc.optional {
            line.push(t(" (mark it optional)"));
        }
        if !reason.is_empty() {
            line.push(t(format!(" - {reason}")));
        }
        scopes.push(line);
    }
    s.push(Step {
        id: "scopes".into(),
        title: "Scopes: add every scope".into(),
        lines: scopes,
    });
    if let Some(target) = &app.target {
        s.push(Step {
            id: "consumer".into(),
            title: "ServiceNow: connect DEX for Zoom".into(),
            lines: vec![
                vec![t("ServiceNow calls back to "), v(target.redirect_url.clone().unwrap_or_default()), t(" - it must equal the redirect URL above.")],
                vec![t("Enter the Client ID and Client Secret in ServiceNow's DEX for Zoom configuration, then press Get OAuth Token as an admin who is not the one connapp logs in with (Zoom keeps one grant per user per app).")],
            ],
        });
    }
    s.push(Step {
        id: "verify".into(),
        title: "Prove it works".into(),
        lines: vec![
            vec![t("Check the declaration and run one API call per scope:")],
            vec![cmd("connapp check")],
            vec![cmd(format!("connapp login {n}"))],
            vec![cmd(format!("connapp verify {n}"))],
        ],
    });
    Guide {
        noun: "Zoom app".into(),
        display_name: app.display_name.clone(),
        app: app.name.clone(),
        steps: s,
    }
}

/// The Marketplace steps of a Client Secret rotation a person does by hand
/// (no management app): the old secret kept working until `revoke_old_at`
/// (a UTC time), then the new one handed to connapp.
pub fn rotation_steps(app: &App, revoke_old_at: &str) -> Vec<String> {
    vec![
        format!(
            "Open https://marketplace.zoom.us/ > Manage > \"{}\" > App Credentials.",
            app.display_name
        ),
        format!(
            "Next to Client Secret choose Regenerate, and keep the old secret working until {revoke_old_at} (Zoom revokes it then; both work until that time)."
        ),
        format!(
            "Copy the new Client Secret into a file only you can read and hand it to connapp: `connapp rotate client-secret {} --resume --new-secret-stdin < FILE` (on a terminal, `--resume` asks for it). connapp stores it, hands it to the consumer and tests it; do not paste it anywhere else.",
            app.name
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_are_the_resource_words() {
        let scopes = [
            "dashboard:read:list_zoomrooms:admin",
            "dashboard:read:meeting_participant_qos:admin",
            "report:read:user:admin",
            "user:read:user:admin",
            "odd",
        ];
        assert_eq!(
            scopes.map(search_term),
            [
                "dashboard zoomrooms",
                "dashboard meeting participant qos",
                "report user",
                "user",
                "odd",
            ]
        );
    }
}
