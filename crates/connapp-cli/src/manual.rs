//! The manual: grouped commands in `connapp --help`, examples every
//! command's `--help` and man page share (one table, so they cannot
//! disagree), and one man page per command with EXAMPLES, EXIT STATUS,
//! ENVIRONMENT and FILES sections (clap_mangen for the rest).

use std::io::Write;
use std::path::Path;

use crate::error::Exit;

/// The commands in `connapp --help`, grouped as a person looks for them.
const GROUPS: &[(&str, &[&str])] = &[
    ("Start", &["init", "check", "secrets", "plugins", "sandbox"]),
    (
        "The app as code",
        &["plan", "apply", "guide", "verify", "list", "webhook"],
    ),
    ("Tokens", &["login", "token", "refresh", "status", "revoke"]),
    ("This program", &["version", "completions"]),
];

/// Examples per command path (`connapp` for the top), each `(command line, what it does)`.
pub const EXAMPLES: &[(&str, &[(&str, &str)])] = &[
    (
        "connapp",
        &[
            (
                "connapp sandbox",
                "the local sandboxes: a provider and a consumer to try everything on",
            ),
            (
                "connapp init --instance acme --management-account ACCOUNT",
                "a declaration from the default preset, with a management app",
            ),
            (
                "connapp plan && connapp apply --yes",
                "make the provider and the consumer match it",
            ),
            ("connapp verify", "prove every link with real calls"),
        ],
    ),
    (
        "init",
        &[
            (
                "connapp init --instance acme",
                "the default preset for instance acme; the provider app made by hand",
            ),
            (
                "connapp init --instance acme --management-account ACCOUNT",
                "... and made by apply",
            ),
        ],
    ),
    (
        "check",
        &[
            ("connapp check", "every problem with file, line, rule and fix"),
            ("connapp check --json", "the same as JSON"),
        ],
    ),
    (
        "secrets",
        &[
            ("connapp secrets set client-secret", "asks for the value (no echo)"),
            (
                "connapp secrets set client-secret --from-stdin < secret.txt",
                "reads it from standard input",
            ),
            ("connapp secrets list", "what is stored, never the values"),
        ],
    ),
    (
        "plugins",
        &[
            ("connapp plugins list", "built-in and loaded plugins"),
            ("connapp plugins info store-vault", "one plugin"),
        ],
    ),
    (
        "login",
        &[(
            "connapp login --user-hint admin@example.com",
            "consent in the browser as that user",
        )],
    ),
    (
        "token",
        &[
            (
                "curl -H \"Authorization: Bearer $(connapp token)\" \"$API/users/me\"",
                "use it",
            ),
            (
                "connapp token --select customer=acme* --json",
                "a token for each app of the fleet rows whose customer starts with acme",
            ),
        ],
    ),
    (
        "refresh",
        &[
            (
                "connapp refresh --all",
                "refresh every user-consented app now, 4 at a time",
            ),
            (
                "connapp refresh --select customer=acme --jobs 8",
                "only the apps the fleet's rows for customer acme made, 8 at a time",
            ),
        ],
    ),
    (
        "list",
        &[
            (
                "connapp list",
                "every app: its row, account, instance, grant owner, refresh and secret ages, last verify",
            ),
            (
                "connapp list --select instance=acme* --json",
                "the same for some rows, as JSON",
            ),
        ],
    ),
    (
        "status",
        &[
            (
                "connapp status",
                "every app's grant and its target's own; exit 5 when one needs a consent",
            ),
            (
                "connapp status --offline",
                "only what the store holds (no call to any instance)",
            ),
            ("connapp status --json", "the same as JSON"),
        ],
    ),
    (
        "revoke",
        &[(
            "connapp revoke APP --yes",
            "revoke the grant at the provider and forget the tokens",
        )],
    ),
    (
        "plan",
        &[("connapp plan", "what apply would change (exit 7: changes pending)")],
    ),
    (
        "apply",
        &[
            (
                "connapp apply --yes",
                "create or update the provider app and the consumer's records",
            ),
            (
                "connapp apply --rollback --yes",
                "restore the manifest from before the last apply",
            ),
        ],
    ),
    (
        "guide",
        &[(
            "connapp guide --format html --out guide.html",
            "the Marketplace steps with this app's values",
        )],
    ),
    (
        "verify",
        &[
            ("connapp verify", "every check, with what to do"),
            ("connapp verify --json", "the same as JSON"),
        ],
    ),
    (
        "webhook",
        &[("connapp webhook serve --listen 127.0.0.1:8788", "a verifying receiver")],
    ),
    (
        "sandbox",
        &[
            (
                "connapp sandbox --port 8700",
                "serve until Ctrl-C; prints the next steps",
            ),
            ("connapp sandbox consent 'LINK' --as admin", "consent without a browser"),
            (
                "connapp sandbox --fleet 20 --dir fleet",
                "a sandbox fleet of 20 customers, and its declaration",
            ),
        ],
    ),
    (
        "version",
        &[("connapp version --json", "version, commit, date and plugin API")],
    ),
    (
        "completions",
        &[(
            "connapp completions bash > /etc/bash_completion.d/connapp",
            "shell completions",
        )],
    ),
];

/// The environment connapp reads.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "CONNAPP_FILE",
        "the declaration (default ./connapp.toml, else $CONNAPP_CONFIG_DIR/connapp.toml)",
    ),
    ("CONNAPP_CONFIG_DIR", "where the declaration is looked for"),
    (
        "CONNAPP_DATA_DIR",
        "connapp's data: the file store, locks, journals, saved manifests, plugins",
    ),
    (
        "CONNAPP_PLUGIN_PATH",
        "more directories of plugin libraries (colon-separated)",
    ),
    (
        "CONNAPP_FILE_PASSPHRASE",
        "the file store's passphrase (else it is asked for at a terminal)",
    ),
    (
        "VAULT_ADDR, VAULT_TOKEN",
        "the Vault or OpenBao store's server and token",
    ),
    ("NO_COLOR", "no colour (as --color never)"),
];

/// The files connapp uses.
const FILES: &[(&str, &str)] = &[
    ("./connapp.toml", "the declaration"),
    (
        "$CONNAPP_DATA_DIR/store/secrets.cnst",
        "the encrypted file store (0600)",
    ),
    ("$CONNAPP_DATA_DIR/plugins/", "plugin libraries"),
    (
        "$CONNAPP_DATA_DIR/locks/STORE/, journal/STORE/",
        "refresh locks and sealed journals, one directory per store (STORE: 16 hex digits of its identity)",
    ),
];

/// The examples of the command at `path` (`connapp`, `status`, ...).
pub fn examples(path: &str) -> &'static [(&'static str, &'static str)] {
    EXAMPLES.iter().find(|(p, _)| *p == path).map_or(&[], |(_, e)| e)
}

/// "Examples:" as `--help` prints it.
pub fn examples_help(path: &str) -> String {
    let list = examples(path);
    let width = list.iter().map(|(c, _)| c.len()).max().unwrap_or(0).min(60);
    let lines: Vec<String> = list.iter().map(|(c, w)| format!("  {c:<width$}  # {w}")).collect();
    format!("Examples:\n{}", lines.join("\n"))
}

/// `connapp --help`'s command list, grouped.
pub fn grouped(cmd: &clap::Command) -> String {
    let mut out = String::new();
    for (i, (title, names)) in GROUPS.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{title}:\n"));
        for name in *names {
            if let Some(sub) = cmd.find_subcommand(name) {
                let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
                out.push_str(&format!("  {name:<12} {about}\n"));
            }
        }
    }
    out
}

/// Every command, with the path of names that reaches it (`secrets set`).
fn every(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
    out.push((path.clone(), cmd.clone()));
    // The pages name clap's own `help` subcommand too: it gets its page.
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() || s.get_name() == "help")
    {
        let mut p = path.clone();
        p.push(sub.get_name().to_string());
        every(sub, p, out);
    }
}

fn section(out: &mut dyn Write, title: &str, rows: &[(String, String)]) -> std::io::Result<()> {
    writeln!(out, ".SH {title}")?;
    for (k, v) in rows {
        writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(k), roff(v))?;
    }
    Ok(())
}

/// Text safe in roff: backslashes doubled, a leading dot or quote escaped.
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\e");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// One man page: clap_mangen's sections, then EXAMPLES, EXIT STATUS,
/// ENVIRONMENT and FILES.
pub fn render(path: &[String], cmd: &clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    let name = if path.is_empty() {
        "connapp".to_string()
    } else {
        format!("connapp-{}", path.join("-"))
    };
    let page = cmd
        .clone()
        .name(name.clone())
        .bin_name(format!("connapp {}", path.join(" ")).trim().to_string())
        .version(crate::cli::LONG_VERSION.as_str());
    let man = clap_mangen::Man::new(page);
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(out)?;
    }
    let key = path.first().map_or("connapp", String::as_str);
    let ex: Vec<(String, String)> = examples(key)
        .iter()
        .map(|(c, w)| (c.to_string(), w.to_string()))
        .collect();
    if !ex.is_empty() {
        section(out, "EXAMPLES", &ex)?;
    }
    let codes: Vec<(String, String)> = Exit::ALL
        .iter()
        .map(|e| (e.code().to_string(), e.meaning().replace('`', "")))
        .collect();
    section(out, "EXIT STATUS", &codes)?;
    let env: Vec<(String, String)> = ENVIRONMENT
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    section(out, "ENVIRONMENT", &env)?;
    let files: Vec<(String, String)> = FILES.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    section(out, "FILES", &files)?;
    if !path.is_empty() {
        writeln!(out, ".SH SEE ALSO\n\\fBconnapp\\fR(1)")?;
    }
    man.render_version_section(out)
}

/// Writes `connapp.1` and one page per command (`connapp-secrets-set.1`) into `dir`.
pub fn write_all(cmd: &clap::Command, dir: &Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    // Built as clap_mangen builds it, so the generated `help` command is there too.
    let mut built = cmd.clone();
    built.build();
    let mut all = Vec::new();
    every(&built, Vec::new(), &mut all);
    let mut names = Vec::new();
    for (path, sub) in all {
        let file = if path.is_empty() {
            "connapp.1".to_string()
        } else {
            format!("connapp-{}.1", path.join("-"))
        };
        let mut page = Vec::new();
        render(&path, &sub, &mut page)?;
        std::fs::write(dir.join(&file), page)?;
        names.push(file);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--help` and the man pages say the same: every command's examples
    /// appear in both, every page has the exit codes, and every page a page
    /// names is written.
    #[test]
    fn help_and_man_pages_agree() {
        let cmd = crate::cli::command();
        let dir = std::env::temp_dir().join(format!("connapp-man-test-{}", std::process::id()));
        let written = write_all(&cmd, &dir).expect("pages");
        assert!(written.contains(&"connapp-secrets-set.1".to_string()), "{written:?}");
        let mut built = cmd.clone();
        built.build();
        let mut all = Vec::new();
        every(&built, Vec::new(), &mut all);
        for (path, sub) in &all {
            let file = if path.is_empty() {
                "connapp.1".to_string()
            } else {
                format!("connapp-{}.1", path.join("-"))
            };
            let page = std::fs::read_to_string(dir.join(&file)).expect("page");
            let help = sub.clone().render_long_help().to_string();
            let key = path.first().map_or("connapp", String::as_str);
            if path.len() <= 1 {
                for (line, _) in examples(key) {
                    assert!(help.contains(line), "{file}: --help lacks the example {line:?}");
                    assert!(
                        page.contains(&roff(line)),
                        "{file}: the man page lacks the example {line:?}"
                    );
                }
            }
            for section in [".SH EXIT STATUS", ".SH ENVIRONMENT", ".SH FILES"] {
                assert!(page.contains(section), "{file} lacks {section}");
            }
            if sub.get_arguments().any(|a| !a.is_hide_set()) {
                assert!(page.contains(".SH OPTIONS"), "{file} lacks its options");
            }
            for e in Exit::ALL {
                assert!(
                    page.contains(&format!("\\fB{}\\fR", e.code())),
                    "{file} lacks exit code {}",
                    e.code()
                );
            }
            // Every page it points to exists.
            for named in page.split("connapp\\-").skip(1) {
                let stem: String = named
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '\\' || *c == '-')
                    .collect();
                let stem = stem.replace("\\-", "-");
                let stem = stem.trim_end_matches('\\');
                if !stem.is_empty() {
                    assert!(
                        written.contains(&format!("connapp-{stem}.1")),
                        "{file} names connapp-{stem}, which is not written"
                    );
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        // Every command shown in --help has examples.
        for (_, names) in GROUPS {
            for name in *names {
                assert!(!examples(name).is_empty(), "{name} has no examples");
            }
        }
    }
}
