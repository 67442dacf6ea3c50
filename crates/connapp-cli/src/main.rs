//! `connapp`: the command-line binary. Thin glue: parse arguments, call the
//! core, the host and the plugins, print for humans or as JSON.
//!
//! What it is **not**: a library. Logic that can be tested without a terminal
//! belongs in `connapp-core` (pure) or a plugin.
//!
//! Exit codes: [`error::Exit`], the one list (`--help` prints it, a test
//! checks the README against it).

mod batch;
mod builtins;
mod cli;
mod cmd_agent;
mod cmd_apply;
mod cmd_check;
mod cmd_evidence;
mod cmd_guide;
mod cmd_init;
mod cmd_list;
mod cmd_plugins;
mod cmd_rotate;
#[cfg(feature = "sandbox")]
mod cmd_sandbox;
mod cmd_schedule;
mod cmd_secrets;
mod cmd_target;
mod cmd_token;
mod cmd_verify;
mod cmd_webhook;
mod complete;
mod ctx;
mod error;
mod manual;
mod render;

use std::io::Write;
use std::process::ExitCode;

use clap::FromArgMatches;

use crate::cli::{
    AgentCommand, Cli, Command, EvidenceCommand, PluginsCommand, RotateCommand, ScheduleCommand, SecretsCommand,
    WebhookCommand,
};
use crate::error::{CliError, Exit};

/// What users of gh, Terraform and kubectl type that connapp spells
/// differently: a usage error that names connapp's way (`None`: not one of them).
fn familiar_mistake(args: &[String]) -> Option<CliError> {
    let usage = |msg: &str, hint: &str| Some(CliError::with_code(Exit::Usage, msg).hint(hint));
    // The first word that is not an option is the command.
    let command = args.iter().skip(1).find(|a| !a.starts_with('-'));
    for (i, a) in args.iter().enumerate().skip(1) {
        match a.as_str() {
            "--auto-approve" | "-auto-approve" => {
                return usage("connapp has no --auto-approve", "pass --yes: `connapp apply --yes`");
            }
            "--dry-run" => {
                return usage(
                    "connapp has no --dry-run",
                    "`connapp plan` shows what apply would change and changes nothing",
                );
            }
            "-o" | "--output" | "--format"
                if args.get(i + 1).is_some_and(|v| v == "json") && command.map(String::as_str) != Some("guide") =>
            {
                return usage(
                    "connapp takes --json for machine-readable output",
                    "pass --json, e.g. `connapp status --json`",
                );
            }
            "-ojson" | "--output=json" => {
                return usage(
                    "connapp takes --json for machine-readable output",
                    "pass --json, e.g. `connapp status --json`",
                );
            }
            _ => {}
        }
    }
    match command.map(String::as_str) {
        Some("logout") => usage(
            "connapp has no logout",
            "`connapp revoke APP --yes` revokes the grant at the provider and forgets its tokens",
        ),
        _ => None,
    }
}

fn main() -> ExitCode {
    builtins::link_all();
    // The shell asking for completions (COMPLETE=SHELL): answered, and exit.
    complete::answer_the_shell();
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    if let Some(e) = familiar_mistake(&args) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {}", e.message);
        if let Some(hint) = &e.hint {
            let _ = writeln!(err, "  hint: {hint}");
        }
        return e.code.into();
    }
    let cli = match cli::command()
        .try_get_matches_from(&args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { Exit::Usage } else { Exit::Ok }.into();
        }
    };
    init_logging(cli.global.verbose, cli.global.quiet);
    anstream::ColorChoice::write_global(match cli.global.color {
        cli::ColorWhen::Auto => anstream::ColorChoice::Auto,
        cli::ColorWhen::Always => anstream::ColorChoice::Always,
        cli::ColorWhen::Never => anstream::ColorChoice::Never,
    });
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.code == Exit::Ok => ExitCode::SUCCESS,
        // The command already said everything (plan's "changes pending", verify's table).
        Err(e) if e.message.is_empty() => e.code.into(),
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "error: {}", e.message);
            if let Some(hint) = &e.hint {
                let _ = writeln!(err, "  hint: {hint}");
            }
            e.code.into()
        }
    }
}

/// `-v` info, `-vv` debug, `-vvv` trace, on stderr. Nothing logged ever
/// carries a secret: the code logs endpoints, decisions and statuses only.
fn init_logging(verbose: u8, quiet: bool) {
    use tracing::Level;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    // `-v`: connapp's own steps and requests; `-vv`: its details and the
    // libraries' notes; `-vvv`: everything.
    let (ours, theirs) = match (quiet, verbose) {
        (true, _) => (Level::ERROR, LevelFilter::ERROR),
        (false, 0) => (Level::WARN, LevelFilter::WARN),
        (false, 1) => (Level::INFO, LevelFilter::WARN),
        (false, 2) => (Level::DEBUG, LevelFilter::INFO),
        _ => (Level::TRACE, LevelFilter::TRACE),
    };
    let filter = Targets::new().with_target("connapp", ours).with_default(theirs);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .without_time(),
        )
        .with(filter)
        .try_init();
}

fn run(cli: Cli) -> Result<(), CliError> {
    let g = cli.global;
    // Commands a person runs by hand say in one line when the watch has a
    // problem (win-acme checks its task every time it is run by hand).
    if matches!(
        cli.command,
        Command::Status(_)
            | Command::Verify(_)
            | Command::Plan(_)
            | Command::Apply(_)
            | Command::Login(_)
            | Command::Refresh(_)
            | Command::Rotate { .. }
    ) && !g.quiet
    {
        cmd_schedule::mention_problem();
    }
    match cli.command {
        Command::Init(a) => cmd_init::run(&g, a),
        Command::Check(a) => cmd_check::run(&g, a),
        Command::Secrets { command } => match command {
            SecretsCommand::Set(a) => cmd_secrets::set(&g, a),
            SecretsCommand::List(a) => cmd_secrets::list(&g, a),
            SecretsCommand::Rm(a) => cmd_secrets::rm(&g, a),
            SecretsCommand::Import(a) => cmd_secrets::import(&g, a),
        },
        Command::Plugins { command } => match command {
            PluginsCommand::List(a) => cmd_plugins::list(&g, a),
            PluginsCommand::Info(a) => cmd_plugins::info(&g, a),
        },
        #[cfg(feature = "sandbox")]
        Command::Sandbox(a) => cmd_sandbox::run(&g, a),
        Command::Plan(a) => cmd_apply::plan(&g, a),
        Command::Apply(a) => cmd_apply::apply(&g, a),
        Command::Schedule { command } => match command {
            ScheduleCommand::Install(a) => cmd_schedule::install(&g, a),
            ScheduleCommand::Remove => cmd_schedule::remove(&g),
            ScheduleCommand::Status { json } => cmd_schedule::status(&g, json),
            ScheduleCommand::Run(a) => cmd_schedule::run(&g, a),
        },
        Command::Agent { command } => match command {
            AgentCommand::Start(a) => cmd_agent::start(&g, a),
            AgentCommand::Run(a) => cmd_agent::run(&g, a),
            AgentCommand::Status(a) => cmd_agent::status(&g, a),
            AgentCommand::Lock(a) => cmd_agent::lock(&g, a),
            AgentCommand::Stop(a) => cmd_agent::stop(&g, a),
        },
        Command::Evidence { command } => match command {
            EvidenceCommand::Keygen { key } => cmd_evidence::keygen(&g, &key),
            EvidenceCommand::Verify(a) => cmd_evidence::verify(&g, a),
        },
        Command::Rotate { command } => match command {
            RotateCommand::ClientSecret(a) => cmd_rotate::client_secret(&g, a),
        },
        Command::Guide(a) => cmd_guide::run(&g, a),
        Command::Verify(a) => cmd_verify::run(&g, a),
        Command::Webhook { command } => match command {
            WebhookCommand::Verify(a) => cmd_webhook::verify(&g, a),
            WebhookCommand::Challenge(a) => cmd_webhook::challenge(&g, a),
            WebhookCommand::Serve(a) => cmd_webhook::serve(&g, a),
        },
        Command::Login(a) => cmd_token::login(&g, a),
        Command::Token(a) => cmd_token::token(&g, a),
        Command::Refresh(a) => cmd_token::refresh(&g, a),
        Command::Revoke(a) => cmd_token::revoke(&g, a),
        Command::Status(a) => cmd_token::status(&g, a),
        Command::List(a) => cmd_list::run(&g, a),
        Command::Completions { shell } => complete::registration(shell, &mut std::io::stdout().lock()),
        Command::Version(a) => {
            if a.json {
                return ctx::print_json(
                    "version",
                    &serde_json::json!({
                        "version": env!("CARGO_PKG_VERSION"),
                        "commit": env!("CONNAPP_COMMIT"),
                        "commit_date": env!("CONNAPP_COMMIT_DATE"),
                        "plugin_api": connapp_plugin_api::PLUGIN_API_VERSION,
                    }),
                );
            }
            println!("connapp {}", *cli::LONG_VERSION);
            Ok(())
        }
        Command::Man { dir } => {
            let cmd = cli::command();
            let written = match &dir {
                Some(d) => manual::write_all(&cmd, d).map(|_| ()),
                None => manual::render(&[], &cmd, &mut std::io::stdout()),
            };
            written.map_err(|e| CliError::failure(format!("cannot write the man pages: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::familiar_mistake;

    fn said(line: &str) -> Option<(u8, String)> {
        let args: Vec<String> = line.split(' ').map(str::to_string).collect();
        familiar_mistake(&args).map(|e| (e.code.code(), e.hint.unwrap_or_default()))
    }

    #[test]
    fn what_gh_and_terraform_users_type_gets_connapps_way() {
        assert_eq!(said("connapp logout").map(|s| s.0), Some(2));
        assert!(said("connapp logout").is_some_and(|s| s.1.contains("connapp revoke")));
        assert!(said("connapp apply --auto-approve").is_some_and(|s| s.1.contains("--yes")));
        assert!(said("connapp apply --dry-run").is_some_and(|s| s.1.contains("connapp plan")));
        assert!(said("connapp status -o json").is_some_and(|s| s.1.contains("--json")));
        assert!(said("connapp status --output=json").is_some_and(|s| s.1.contains("--json")));
        // Not mistakes: the guide's own --format, and ordinary commands.
        assert_eq!(said("connapp guide --format html"), None);
        assert_eq!(said("connapp status --json"), None);
        assert_eq!(said("connapp -v token"), None);
    }
}
