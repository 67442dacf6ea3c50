//! Dynamic shell completions (clap_complete's engine): the shell calls
//! connapp back (`COMPLETE=SHELL connapp -- WORDS`), which offers the app
//! names of the declaration it would use and the installed plugins' names,
//! besides commands and options. `connapp completions SHELL` prints the
//! shell's registration script.

use std::io::Write;

use clap::Command;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

use crate::error::CliError;

/// The environment variable the shell sets when it asks for completions.
pub const VAR: &str = "COMPLETE";

/// Answers the shell and exits when it is asking; returns at once otherwise.
pub fn answer_the_shell() {
    clap_complete::CompleteEnv::with_factory(crate::cli::command)
        .var(VAR)
        .complete();
}

/// `cmd` with candidates for every app argument (except `init`'s new app's
/// name) and for `plugins info`'s plugin name.
pub fn with_candidates(mut cmd: Command) -> Command {
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .filter(|n| n != "init")
        .collect();
    for name in subs {
        cmd = cmd.mut_subcommand(&name, with_candidates);
    }
    if cmd.get_arguments().any(|a| a.get_id() == "app") {
        cmd = cmd.mut_arg("app", |a| a.add(ArgValueCandidates::new(app_names)));
    }
    if cmd.get_name() == "info" && cmd.get_arguments().any(|a| a.get_id() == "name") {
        cmd = cmd.mut_arg("name", |a| a.add(ArgValueCandidates::new(plugin_names)));
    }
    cmd
}

/// The apps of the declaration connapp would read (`CONNAPP_FILE`,
/// `./connapp.toml`, the config directory's), with their display names;
/// nothing when there is none or it is invalid. Reads only; prints nothing.
fn app_names() -> Vec<CompletionCandidate> {
    let file = std::env::var_os("CONNAPP_FILE").map(std::path::PathBuf::from);
    let Ok(path) = crate::ctx::find_declaration(file.as_deref()) else {
        return Vec::new();
    };
    let reg = crate::ctx::registry();
    match crate::ctx::check_file(&path, reg) {
        Ok(report) => report
            .declaration
            .map(|d| {
                d.apps
                    .iter()
                    .map(|a| CompletionCandidate::new(&a.name).help(Some(a.display_name.clone().into())))
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// The installed plugins, with their descriptions.
fn plugin_names() -> Vec<CompletionCandidate> {
    crate::ctx::registry()
        .plugins()
        .iter()
        .map(|p| CompletionCandidate::new(&p.info.name).help(Some(p.info.description.clone().into())))
        .collect()
}

/// The registration script for `shell`: it calls `connapp` (found on PATH)
/// back for every completion, so the names are always the current ones.
pub fn registration(shell: clap_complete::Shell, out: &mut impl Write) -> Result<(), CliError> {
    let name = shell.to_string();
    let shells = clap_complete::env::Shells::builtins();
    let Some(completer) = shells.completer(&name) else {
        return Err(CliError::failure(format!("no dynamic completions for {name}"))
            .hint("use bash, elvish, fish, powershell or zsh"));
    };
    let mut buf = Vec::new();
    completer.write_registration(VAR, "connapp", "connapp", "connapp", &mut buf)?;
    out.write_all(&buf)?;
    Ok(())
}
