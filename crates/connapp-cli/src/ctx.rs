//! What every command needs: directories, the plugin registry, the
//! declaration, an open store.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use std::sync::OnceLock;

use connapp_core::{Declaration, Report};
use connapp_engine::Engine;
use connapp_engine::environment::{EnvError, Environment};
use connapp_host::{LoadedPlugin, Prompt, Registry};
use connapp_plugin_api::StoreHandle;
use serde::Serialize;

use crate::cli::Global;
use crate::error::{CliError, Exit};

/// The environment this process runs the engine in (directories, plugin
/// search path, the terminal prompt when stdin is a terminal), taken from
/// the process once.
pub fn environment() -> Result<&'static Environment, CliError> {
    static ENV: OnceLock<Environment> = OnceLock::new();
    if let Some(e) = ENV.get() {
        return Ok(e);
    }
    let prompt: Option<Prompt> = if PROMPT_FROM_PIPE.load(std::sync::atomic::Ordering::SeqCst) {
        Some(prompt_from_pipe)
    } else {
        interactive().then_some(prompt_secret)
    };
    let env = Environment::from_process(prompt).map(|mut e| {
        // The agent opens its store itself, never through an agent.
        if NO_AGENT.load(std::sync::atomic::Ordering::SeqCst) {
            e.agent_socket = None;
        }
        e
    });
    let env = env.map_err(|e| match e {
        EnvError::NoHome { var } => CliError::failure("cannot find a home directory").hint(format!("set {var}")),
        other => CliError::failure(other.to_string()),
    })?;
    Ok(ENV.get_or_init(|| env))
}

/// `$CONNAPP_DATA_DIR`, else the XDG data dir.
pub fn data_dir() -> Result<PathBuf, CliError> {
    Ok(environment()?.data_dir.clone())
}

/// Where dynamic plugins are looked for, in order.
pub fn plugin_dirs() -> Vec<PathBuf> {
    environment().map(|e| e.plugin_dirs.clone()).unwrap_or_default()
}

/// This process's engine (made once): the environment, the plugins, the
/// runtime its stores' work runs on.
pub fn engine() -> Result<&'static Engine, CliError> {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    if let Some(e) = ENGINE.get() {
        return Ok(e);
    }
    let engine = Engine::new(environment()?.clone());
    Ok(ENGINE.get_or_init(|| engine))
}

/// Built-ins plus dynamic plugins from the plugin directories (loaded once).
pub fn registry() -> &'static Registry {
    match engine() {
        Ok(e) => e.registry(),
        // No home directory: the built-in plugins only.
        Err(_) => Box::leak(Box::new(Registry::discover(&plugin_dirs()))),
    }
}

/// Prints load failures as warnings (to stderr).
pub fn warn_failures(reg: &Registry, g: &Global) {
    if g.quiet {
        return;
    }
    for f in reg.failures() {
        eprintln!("warning: plugin not loaded: {}", f.error);
    }
}

/// The declaration's path: `--file`, else ./connapp.toml, else the config dir's.
pub fn declaration_path(g: &Global) -> Result<PathBuf, CliError> {
    find_declaration(g.file.as_deref())
}

/// `file` if given, else `./connapp.toml` if it exists, else the config
/// directory's if that exists, else `./connapp.toml`.
pub fn find_declaration(file: Option<&Path>) -> Result<PathBuf, CliError> {
    Ok(environment()?.find_declaration(file))
}

/// The declaration's bytes (for evidence: the file as it was applied), bounded
/// as the check bounds them.
pub fn declaration_bytes(path: &Path) -> Result<Vec<u8>, CliError> {
    connapp_plugin_api::bounded::read_file("the declaration", path, connapp_core::MAX_DECLARATION_BYTES as u64)
        .map_err(|e| CliError::with_code(Exit::Invalid, e.to_string()))
}

/// Reads and checks the declaration at `path` without trusting its size.
/// A declaration over the limit is an invalid declaration (the
/// `file-too-large` diagnostic, with its true size); every way of failing to
/// read it at all (missing, a directory, unreadable, not UTF-8) is the same
/// exit code, 3.
pub fn check_file(path: &Path, reg: &Registry) -> Result<Report, CliError> {
    environment()?.check_declaration(path, reg).map_err(|e| match e {
        EnvError::Unreadable(r) => {
            let err = CliError::with_code(Exit::Invalid, r.to_string());
            match r.io_kind() {
                Some(std::io::ErrorKind::NotFound) => {
                    err.hint("run `connapp init --instance NAME` to write one, or pass --file")
                }
                Some(std::io::ErrorKind::IsADirectory) => {
                    err.hint("pass the declaration file itself, e.g. --file connapp.toml")
                }
                _ => err,
            }
        }
        e @ EnvError::NotUtf8 { .. } => {
            CliError::with_code(Exit::Invalid, e.to_string()).hint("save the file as UTF-8")
        }
        EnvError::Plugin(h) => CliError::from(h),
        e @ EnvError::NoHome { .. } => CliError::failure(e.to_string()),
    })
}

/// One line from standard input at a prompt (bounded: a prompt's answer is short).
pub fn read_answer() -> Result<String, CliError> {
    connapp_plugin_api::bounded::read_line(&mut std::io::stdin().lock(), MAX_ANSWER_BYTES)
        .map_err(|e| CliError::failure(format!("cannot read the answer: {e}")))
}

/// The longest line read at a prompt (a pasted redirect URL fits easily).
pub const MAX_ANSWER_BYTES: u64 = 16 * 1024;

/// Checks the declaration; on errors prints them and fails with exit code 3.
/// The app `name` names (or the only one), or the declaration's error as a usage error.
pub fn app<'d>(decl: &'d Declaration, name: Option<&str>) -> Result<&'d connapp_core::App, CliError> {
    decl.app(name).map_err(|e| {
        let err = CliError::with_code(Exit::Usage, e.to_string());
        match &e {
            connapp_core::AppLookupError::Unknown { name, known } => {
                match connapp_core::nearest(name, known.iter().map(String::as_str)) {
                    Some(near) => err.hint(format!("did you mean `{near}`?")),
                    None => err.hint("name one of the declaration's apps (`connapp check --json` lists them)"),
                }
            }
            connapp_core::AppLookupError::Ambiguous { known } => err.hint(format!(
                "name the app: e.g. --app {}",
                known.first().map_or("NAME", String::as_str)
            )),
        }
    })
}

/// What most commands start with: the plugins (load failures warned
/// about), the declaration's path and the checked declaration.
pub fn declared(g: &Global) -> Result<(&'static Registry, PathBuf, Declaration), CliError> {
    let reg = registry();
    warn_failures(reg, g);
    let (path, decl) = load_declaration(g, reg)?;
    Ok((reg, path, decl))
}

pub fn load_declaration(g: &Global, reg: &Registry) -> Result<(PathBuf, Declaration), CliError> {
    let path = declaration_path(g)?;
    let report = check_file(&path, reg)?;
    match report.declaration {
        Some(d) => Ok((path, d)),
        None => {
            // A store kind that is missing because its plugin was refused is
            // a plugin failure: never advise another kind (the secrets are in
            // this one).
            let refused_store = !reg.failures().is_empty() && report.diagnostics.iter().any(|d| d.rule == "store-kind");
            for d in report
                .diagnostics
                .iter()
                .filter(|d| !(refused_store && d.rule == "store-kind"))
            {
                eprintln!("{d}");
            }
            if refused_store {
                let why: Vec<String> = reg
                    .failures()
                    .iter()
                    .map(|f| format!("  {}: {}", f.path.display(), f.error))
                    .collect();
                return Err(CliError::with_code(
                    Exit::Plugin,
                    format!(
                        "the declaration's store kind is not installed, and {} plugin librar{} refused; the store may be among them:\n{}",
                        why.len(),
                        if why.len() == 1 { "y was" } else { "ies were" },
                        why.join("\n")
                    ),
                )
                .hint("fix what the refusal says, then run the command again; keep the store kind: the secrets are in that store"));
            }
            let n = report
                .diagnostics
                .iter()
                .filter(|d| d.severity == connapp_core::Severity::Error)
                .count();
            Err(CliError::with_code(
                Exit::Invalid,
                format!(
                    "{} is invalid ({n} error{})",
                    path.display(),
                    if n == 1 { "" } else { "s" }
                ),
            )
            .hint("run `connapp check` for details"))
        }
    }
}

/// Whether a human can answer prompts.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// Set by `agent run`: its store is opened here, never through an agent.
pub static NO_AGENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set by `agent run` when `agent start` hands it the store's passphrase
/// through its standard input (a pipe: never argv, never the environment).
pub static PROMPT_FROM_PIPE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The store's passphrase from standard input, one line, bounded.
fn prompt_from_pipe(_question: &str) -> Result<zeroize::Zeroizing<String>, String> {
    use std::io::{BufRead, Read};
    let mut line = zeroize::Zeroizing::new(String::with_capacity(4097));
    std::io::stdin()
        .lock()
        .take(4096)
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the passphrase from the pipe: {e}"))?;
    let value = zeroize::Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
    if value.is_empty() {
        return Err("no passphrase came through the pipe".into());
    }
    Ok(value)
}

/// Asks at the terminal with no echo (the environment's prompt, given only
/// when standard input is a terminal).
fn prompt_secret(question: &str) -> Result<zeroize::Zeroizing<String>, String> {
    if !interactive() {
        return Err("a secret is needed but standard input is not a terminal".into());
    }
    rpassword::prompt_password(question)
        .map(zeroize::Zeroizing::new)
        .map_err(|e| format!("cannot read the secret: {e}"))
}

/// Opens the store `app`'s secrets live in: the declaration's, or its fleet
/// row's (`[fleet.store]`); `None`: the declaration's.
pub fn open_store<'r>(
    reg: &'r Registry,
    decl: &Declaration,
    app: Option<&str>,
) -> Result<(StoreHandle, &'r LoadedPlugin), CliError> {
    let store = app.map_or_else(|| decl.store.clone(), |a| decl.store_of(a));
    environment()?
        .open_store(reg, &store)
        .map_err(|e| store_error(connapp_engine::Error::from(e), decl))
}

/// A failure to open the declaration's store, with what to check (a
/// plugin's own failure says its own).
pub fn store_error(e: connapp_engine::Error, decl: &Declaration) -> CliError {
    let err = CliError::from(e);
    if err.code == Exit::Plugin {
        err
    } else {
        err.hint(store_hint(&decl.store.kind))
    }
}

fn store_hint(kind: &str) -> String {
    match kind {
        "file" => "the file store reads its passphrase from CONNAPP_FILE_PASSPHRASE or a prompt".to_string(),
        other => format!("check the [store] settings for the {other:?} store"),
    }
}

/// The version of the `--json` contract (`docs/json.md`,
/// `docs/connapp-output.schema.json`): raised when a field is renamed,
/// retyped or removed; adding a field keeps it.
pub const SCHEMA_VERSION: u64 = 1;

/// Prints `command`'s report as pretty JSON on stdout: one object holding
/// `schema_version`, `command` and the report's own fields (serde_json
/// prints keys in alphabetical order).
pub fn print_json<T: Serialize>(command: &'static str, v: &T) -> Result<(), CliError> {
    let body = serde_json::to_value(v).map_err(|e| CliError::failure(format!("cannot render the report: {e}")))?;
    let serde_json::Value::Object(fields) = body else {
        return Err(CliError::failure(format!(
            "the {command} report is not a JSON object (a bug in connapp; please report it)"
        )));
    };
    let mut report = serde_json::Map::new();
    report.insert("schema_version".into(), SCHEMA_VERSION.into());
    report.insert("command".into(), command.into());
    report.extend(fields);
    print_raw_json(&serde_json::Value::Object(report))
}

/// A store as every report names it.
#[derive(Serialize)]
pub struct StoreJson {
    /// The store kind of the declaration (`file`, `vault`, ...).
    pub kind: String,
    /// The plugin that provides it.
    pub plugin: String,
    /// `builtin` or `dynamic` (as `plugins list` says).
    pub origin: &'static str,
    /// The plugin library's path; `null` for a built-in plugin.
    pub path: Option<String>,
    /// Where the store keeps its data, as the plugin describes it.
    pub location: String,
    /// What it can do.
    pub capabilities: crate::cmd_secrets::CapsJson,
}

impl StoreJson {
    /// The open store `handle` of kind `kind`, from `plugin`.
    pub fn of(kind: &str, plugin: &LoadedPlugin, handle: &StoreHandle) -> Result<StoreJson, CliError> {
        let d = handle.describe().map_err(|e| connapp_host::plugin_error(plugin, e))?;
        Ok(StoreJson {
            kind: kind.to_string(),
            plugin: plugin.info.name.clone(),
            origin: match plugin.origin {
                connapp_host::Origin::Builtin => "builtin",
                connapp_host::Origin::Dynamic(_) => "dynamic",
            },
            path: match &plugin.origin {
                connapp_host::Origin::Builtin => None,
                connapp_host::Origin::Dynamic(p) => Some(p.display().to_string()),
            },
            location: d.location,
            capabilities: d.capabilities.into(),
        })
    }
}

/// Prints a value as pretty JSON on stdout, as it is (for answers whose
/// shape a protocol fixes, such as a webhook challenge's).
pub fn print_raw_json<T: Serialize>(v: &T) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).map_err(|e| match e.io_error_kind() {
        Some(kind) => CliError::from(std::io::Error::from(kind)),
        None => CliError::failure(e.to_string()),
    })?;
    writeln!(out)?;
    Ok(())
}

/// Writes a file atomically (`connapp_plugin_api::atomic`), with the
/// ordinary mode (the umask applies); nothing connapp writes this way holds
/// a secret.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), CliError> {
    connapp_plugin_api::atomic::write_file(path, contents, 0o666)
        .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))
}

/// The one error for a secret a command needs and the store lacks (see
/// `connapp_engine::secrets::missing`).
pub fn missing_secret(app: &str, kind: connapp_core::SecretKind, source: Option<&str>) -> CliError {
    connapp_engine::secrets::missing(app, kind, source).into()
}

/// A question before a change.
pub struct Confirm<'a> {
    /// What is asked (`Remove the Client Secret of app from the file store?`).
    pub question: &'a str,
    /// What the refusal without a terminal names (`remove a secret`).
    pub action: &'a str,
    /// How to review first, for the hint (`review with connapp plan, then `).
    pub review: &'a str,
    /// Only the word "yes" (for changes to the provider), or y/yes.
    pub strict: bool,
}

/// Asks before a change, the one way every command does: `--yes` skips the
/// question; without a terminal and without `--yes` it is a usage error
/// (nothing interactive without a terminal); any other answer cancels.
pub fn confirm(c: &Confirm<'_>, yes: bool) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    if !interactive() {
        return Err(CliError::with_code(
            Exit::Usage,
            format!(
                "refusing to {} without confirmation: standard input is not a terminal",
                c.action
            ),
        )
        .hint(format!("{}pass --yes", c.review)));
    }
    if c.strict {
        eprint!("{} Only \"yes\" is accepted: ", c.question);
    } else {
        eprint!("{} [y/N] ", c.question);
    }
    let line = read_answer()?;
    let answer = line.trim();
    let accepted = if c.strict {
        answer == "yes"
    } else {
        matches!(answer, "y" | "Y" | "yes")
    };
    if !accepted {
        return Err(CliError::failure("cancelled; nothing was changed"));
    }
    Ok(())
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
