//! What every command needs: directories, the plugin registry, the
//! declaration, an open store.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use connapp_core::{Declaration, Report};
use connapp_host::{LoadedPlugin, Registry};
use connapp_plugin_api::abi_stable::std_types::{RResult, RStr, RString, RVec, Tuple2};
use connapp_plugin_api::{ErrorCode, FfiError, FfiStoreContext, StoreHandle};
use serde::Serialize;

use crate::cli::Global;
use crate::error::{CliError, Exit};

/// `$VAR` when set, else the directory `pick` takes from the XDG dirs.
fn dir_of(var: &str, pick: fn(&directories::ProjectDirs) -> &Path) -> Result<PathBuf, CliError> {
    if let Some(d) = std::env::var_os(var) {
        return Ok(PathBuf::from(d));
    }
    directories::ProjectDirs::from("", "", "connapp")
        .map(|p| pick(&p).to_path_buf())
        .ok_or_else(|| CliError::failure("cannot find a home directory").hint(format!("set {var}")))
}

/// `$CONNAPP_CONFIG_DIR`, else the XDG config dir.
pub fn config_dir() -> Result<PathBuf, CliError> {
    dir_of("CONNAPP_CONFIG_DIR", directories::ProjectDirs::config_dir)
}

/// `$CONNAPP_DATA_DIR`, else the XDG data dir.
pub fn data_dir() -> Result<PathBuf, CliError> {
    dir_of("CONNAPP_DATA_DIR", directories::ProjectDirs::data_dir)
}

/// Where dynamic plugins are looked for, in order.
pub fn plugin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(p) = std::env::var_os("CONNAPP_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&p).filter(|d| d.is_absolute()));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(prefix) = exe.parent().and_then(Path::parent)
    {
        dirs.push(prefix.join("lib").join("connapp").join("plugins"));
    }
    if let Ok(d) = data_dir() {
        dirs.push(d.join("plugins"));
    }
    dirs
}

/// Built-ins plus dynamic plugins from the plugin directories.
pub fn registry() -> Registry {
    let dirs = plugin_dirs();
    tracing::debug!(dirs = ?dirs, "plugin search path");
    let reg = Registry::discover(&dirs);
    for p in reg.plugins() {
        tracing::debug!(plugin = %p.info.name, origin = %p.origin, "plugin loaded");
    }
    reg
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
    if let Some(f) = file {
        return Ok(f.to_path_buf());
    }
    let local = PathBuf::from("connapp.toml");
    if local.exists() {
        return Ok(local);
    }
    let in_config = config_dir()?.join("connapp.toml");
    if in_config.exists() {
        return Ok(in_config);
    }
    Ok(local)
}

/// Reads and checks the declaration at `path` without trusting its size.
/// A declaration over the limit is an invalid declaration (the
/// `file-too-large` diagnostic, with its true size); every way of failing to
/// read it at all (missing, a directory, unreadable, not UTF-8) is the same
/// exit code, 3.
pub fn check_file(path: &Path, reg: &Registry) -> Result<Report, CliError> {
    use connapp_plugin_api::bounded;
    let file = path.display().to_string();
    let bytes = match bounded::read_file("the declaration", path, connapp_core::MAX_DECLARATION_BYTES as u64) {
        Ok(b) => b,
        Err(bounded::ReadError::TooLarge { size, .. }) => return Ok(connapp_core::too_large(&file, size)),
        Err(e) => {
            let err = CliError::with_code(Exit::Invalid, e.to_string());
            return Err(match e.io_kind() {
                Some(std::io::ErrorKind::NotFound) => {
                    err.hint("run `connapp init --instance NAME` to write one, or pass --file")
                }
                Some(std::io::ErrorKind::IsADirectory) => {
                    err.hint("pass the declaration file itself, e.g. --file connapp.toml")
                }
                _ => err,
            });
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Ok(connapp_engine::platform::check(&file, &text, reg)?),
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            Err(CliError::with_code(
                Exit::Invalid,
                format!("{file}:{line}: the declaration is not valid UTF-8 text"),
            )
            .hint("save the file as UTF-8"))
        }
    }
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
pub fn declared(g: &Global) -> Result<(Registry, PathBuf, Declaration), CliError> {
    let reg = registry();
    warn_failures(&reg, g);
    let (path, decl) = load_declaration(g, &reg)?;
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

extern "C" fn prompt_secret(prompt: RStr<'_>) -> RResult<RVec<u8>, FfiError> {
    if !interactive() {
        return RResult::RErr(FfiError {
            code: ErrorCode::AUTH_FAILED,
            message: RString::from("a secret is needed but standard input is not a terminal"),
            retryable: false,
        });
    }
    match rpassword::prompt_password(prompt.as_str()) {
        Ok(s) => {
            let s = zeroize::Zeroizing::new(s);
            RResult::ROk(RVec::from_slice(s.as_bytes()))
        }
        Err(e) => RResult::RErr(FfiError {
            code: ErrorCode::AUTH_FAILED,
            message: RString::from(format!("cannot read the secret: {e}")),
            retryable: false,
        }),
    }
}

/// What a store plugin is opened with: the declaration's settings, the data
/// directory, and the prompt (only when `interactive`).
fn store_context(settings: &[(String, String)], interactive: bool) -> Result<FfiStoreContext, CliError> {
    Ok(FfiStoreContext {
        settings: settings
            .iter()
            .map(|(k, v)| Tuple2(RString::from(k.as_str()), RString::from(v.as_str())))
            .collect(),
        data_dir: data_dir()?.display().to_string().into(),
        interactive,
        prompt_secret,
    })
}

/// Opens the lease of the declaration's store (`None`: it offers none), to
/// be called when a refresh needs it: never at a terminal prompt.
pub fn lease_opener<'r>(reg: &'r Registry, decl: &Declaration) -> connapp_engine::secrets::LeaseOpener<'r> {
    let kind = decl.store.kind.clone();
    let settings = decl.store.settings.clone();
    Box::new(move || {
        let ctx = store_context(&settings, false).map_err(|e| e.message)?;
        reg.open_lease(&kind, &ctx).map_err(|e| e.to_string())
    })
}

/// Opens the declaration's store.
pub fn open_store<'r>(reg: &'r Registry, decl: &Declaration) -> Result<(StoreHandle, &'r LoadedPlugin), CliError> {
    let ctx = store_context(&decl.store.settings, interactive())?;
    tracing::debug!(kind = %decl.store.kind, "opening the store");
    let (handle, plugin) = reg.open_store(&decl.store.kind, &ctx).map_err(|e| {
        let err = CliError::from(e);
        if err.code == Exit::Plugin {
            err
        } else {
            err.hint(store_hint(&decl.store.kind))
        }
    })?;
    Ok((handle, plugin))
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
