//! `connapp guide [--format md|html] [--out FILE]`: the Zoom Marketplace
//! procedure for one app, step by step, filled with this app's exact values,
//! for admins who set the app up by hand (or want to check what `apply` did).
//! The HTML page is self-contained; its check boxes remember their state in
//! the browser (localStorage).

use std::fmt::Write as _;

use connapp_core::{App, SecretKind, Usage};
use connapp_plugin_api::PresetScope;

use crate::cli::{Global, GuideArgs, GuideFormat};
use crate::ctx;
use crate::error::CliError;

/// A value the admin types or copies.
#[derive(Debug, Clone)]
pub enum Part {
    /// Plain text.
    Text(String),
    /// A value to type or paste exactly (shown as code, with a copy button in HTML).
    Value(String),
    /// A shell command to run.
    Command(String),
}

/// One step: a title and its lines.
#[derive(Debug, Clone)]
pub struct Step {
    /// Stable id (for the HTML check box's saved state).
    pub id: String,
    /// What to do, in one line.
    pub title: String,
    /// Details; each inner vector is one line.
    pub lines: Vec<Vec<Part>>,
}

fn t(s: impl Into<String>) -> Part {
    Part::Text(s.into())
}
fn v(s: impl Into<String>) -> Part {
    Part::Value(s.into())
}
fn cmd(s: impl Into<String>) -> Part {
    Part::Command(s.into())
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

/// The steps for `app`; `reasons` are the presets' scope entries.
pub fn steps(app: &App, reasons: &[PresetScope]) -> Vec<Step> {
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
                vec![t("ServiceNow calls back to "), v(target.redirect_url()), t(" - it must equal the redirect URL above.")],
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
    s
}

/// The guide as Markdown with a check box per step.
pub fn markdown(app: &App, steps: &[Step]) -> String {
    let mut out = format!(
        "# Set up the Zoom app \"{}\" ({})\n\nGenerated by `connapp guide` from the declaration. Tick each step when done.\n\n",
        app.display_name, app.name
    );
    for (i, s) in steps.iter().enumerate() {
        let _ = writeln!(out, "- [ ] **{}. {}**", i + 1, s.title);
        for line in &s.lines {
            if let [Part::Command(c)] = line.as_slice() {
                let _ = writeln!(out, "\n  ```sh\n  {c}\n  ```\n");
                continue;
            }
            out.push_str("  - ");
            for p in line {
                match p {
                    Part::Text(x) => out.push_str(x),
                    Part::Value(x) | Part::Command(x) => {
                        let _ = write!(out, "`{x}`");
                    }
                }
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const CSS: &str = r#"
:root{--bg:#f6f7fb;--card:#fff;--ink:#1b1f2a;--muted:#5b6475;--accent:#0b5cff;--ok:#1a7f37;--line:#e3e6ee;--code:#eef2ff}
@media (prefers-color-scheme:dark){:root{--bg:#11141b;--card:#1a1f2b;--ink:#e8ebf2;--muted:#9aa3b5;--accent:#5b8cff;--ok:#3fb950;--line:#2a3142;--code:#232a3b}}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:860px;margin:0 auto;padding:32px 20px 64px}
header h1{font-size:26px;margin:0 0 4px}header p{color:var(--muted);margin:0 0 18px}
.progress{height:8px;background:var(--line);border-radius:99px;overflow:hidden;margin:0 0 24px}.progress div{height:100%;width:0;background:var(--ok);transition:width .2s}
.step{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:16px 18px;margin:0 0 14px;box-shadow:0 1px 2px rgba(0,0,0,.04)}
.step.done{opacity:.62}.step.done h2 span.t{text-decoration:line-through}
.step h2{font-size:17px;margin:0 0 8px;display:flex;gap:10px;align-items:center}
.step h2 input{width:20px;height:20px;accent-color:var(--ok);flex:none}
.n{color:var(--accent);font-weight:700}
.step ul{margin:0;padding:0 0 0 30px;list-style:none}.step li{margin:6px 0}
code{background:var(--code);border-radius:6px;padding:2px 6px;font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
pre{background:var(--code);border-radius:8px;padding:8px 10px;margin:4px 0;overflow-x:auto}pre code{padding:0;background:none}
button.copy{margin-left:6px;border:1px solid var(--line);background:var(--card);color:var(--muted);border-radius:6px;font-size:12px;padding:1px 7px;cursor:pointer}
button.copy:hover{color:var(--accent);border-color:var(--accent)}
footer{color:var(--muted);font-size:13px;margin-top:24px}
"#;

const JS: &str = r#"
(function(){
  var key='connapp-guide:'+document.body.dataset.app;
  var saved={};try{saved=JSON.parse(localStorage.getItem(key)||'{}')}catch(e){}
  var boxes=document.querySelectorAll('input[type=checkbox][data-step]');
  function paint(){var n=0;boxes.forEach(function(b){b.closest('.step').classList.toggle('done',b.checked);if(b.checked)n++});
    document.querySelector('.progress div').style.width=(100*n/boxes.length)+'%';
    document.getElementById('count').textContent=n+' of '+boxes.length+' steps done';}
  boxes.forEach(function(b){b.checked=!!saved[b.dataset.step];b.addEventListener('change',function(){saved[b.dataset.step]=b.checked;
    try{localStorage.setItem(key,JSON.stringify(saved))}catch(e){}paint();});});
  document.querySelectorAll('button.copy').forEach(function(btn){btn.addEventListener('click',function(){
    var text=btn.previousElementSibling.textContent;
    if(navigator.clipboard){navigator.clipboard.writeText(text).then(function(){btn.textContent='copied';setTimeout(function(){btn.textContent='copy'},1200)})}});});
  paint();
})();
"#;

/// The guide as one self-contained HTML page.
pub fn html(app: &App, steps: &[Step]) -> String {
    let mut body = String::new();
    for (i, s) in steps.iter().enumerate() {
        let _ = write!(
            body,
            "<section class=\"step\" id=\"step-{id}\"><h2><input type=\"checkbox\" data-step=\"{id}\" aria-label=\"done\"><span class=\"n\">{}</span><span class=\"t\">{}</span></h2><ul>",
            i + 1,
            esc(&s.title),
            id = esc(&s.id)
        );
        for line in &s.lines {
            body.push_str("<li>");
            for p in line {
                match p {
                    Part::Text(x) => body.push_str(&esc(x)),
                    Part::Value(x) => {
                        let _ = write!(
                            body,
                            "<code>{}</code><button class=\"copy\" type=\"button\">copy</button>",
                            esc(x)
                        );
                    }
                    Part::Command(x) => {
                        let _ = write!(
                            body,
                            "<pre><code>{}</code><button class=\"copy\" type=\"button\">copy</button></pre>",
                            esc(x)
                        );
                    }
                }
            }
            body.push_str("</li>");
        }
        body.push_str("</ul></section>\n");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>Set up {title} - connapp guide</title><style>{CSS}</style></head>\
<body data-app=\"{app}\"><main><header><h1>Set up the Zoom app &ldquo;{title}&rdquo;</h1>\
<p>Generated by <code>connapp guide</code> from the declaration of <code>{app}</code>. Your ticks are saved in this browser. <span id=\"count\"></span></p>\
<div class=\"progress\"><div></div></div></header>\n{body}<footer>Values are exact: copy them rather than retyping. Secrets are never part of this page.</footer></main>\
<script>{JS}</script></body></html>\n",
        title = esc(&app.display_name),
        app = esc(&app.name),
    )
}

pub fn run(g: &Global, a: GuideArgs) -> Result<(), CliError> {
    let reg = ctx::registry();
    ctx::warn_failures(&reg, g);
    let (_, decl) = ctx::load_declaration(g, &reg)?;
    let app = ctx::app(&decl, a.app.as_deref())?;
    let reasons = ctx::preset_scopes(&reg, app);
    let steps = steps(app, &reasons);
    let text = match a.format {
        GuideFormat::Md => markdown(app, &steps),
        GuideFormat::Html => html(app, &steps),
    };
    match &a.out {
        Some(path) => {
            ctx::write_atomic(path, text.as_bytes())?;
            if !g.quiet {
                eprintln!("Wrote {} ({} steps)", path.display(), steps.len());
            }
        }
        None => {
            use std::io::Write;
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_are_the_resource_words() {
        assert_eq!(
            search_term("dashboard:read:list_zoomrooms:admin"),
            "dashboard zoomrooms"
        );
        assert_eq!(
            search_term("dashboard:read:meeting_participant_qos:admin"),
            "dashboard meeting participant qos"
        );
        assert_eq!(search_term("report:read:user:admin"), "report user");
        assert_eq!(search_term("user:read:user:admin"), "user");
        assert_eq!(search_term("odd"), "odd");
    }

    #[test]
    fn html_escapes_values() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
