//! `connapp`: the command-line binary. Thin glue: parse arguments, call the
//! core, the host and the plugins, print for humans or as JSON.
//!
//! What it is **not**: a library. Logic that can be tested without a terminal
//! belongs in `connapp-core` (pure) or a plugin.
//!
//! Exit codes: [`error::Exit`], the one list (`--help` prints it, a test
//! checks the README against it).

mod builtins;
mod cli;
mod cmd_apply;
mod cmd_check;
mod cmd_guide;
mod cmd_init;
mod cmd_plugins;
#[cfg(feature = "sandbox")]
mod cmd_sandbox;
mod cmd_secrets;
mod cmd_target;
mod cmd_token;
mod cmd_verify;
mod cmd_webhook;
mod ctx;
mod error;

use std::io::Write;
use std::process::ExitCode;

use clap::FromArgMatches;

use crate::cli::{Cli, Command, PluginsCommand, SecretsCommand, WebhookCommand};
use crate::error::{CliError, Exit};

fn main() -> ExitCode {
    builtins::link_all();
    let cli = match cli::command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { Exit::Usage } else { Exit::Ok }.into();
        }
    };
    init_logging(cli.global.verbose, cli.global.quiet);
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
    let level = match (quiet, verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::WARN,
        (false, 1) => tracing::Level::INFO,
        (false, 2) => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

fn run(cli: Cli) -> Result<(), CliError> {
    let g = cli.global;
    match cli.command {
        Command::Init(a) => cmd_init::run(&g, a),
        Command::Check(a) => cmd_check::run(&g, a),
        Command::Secrets { command } => match command {
            SecretsCommand::Set(a) => cmd_secrets::set(&g, a),
            SecretsCommand::List(a) => cmd_secrets::list(&g, a),
            SecretsCommand::Rm(a) => cmd_secrets::rm(&g, a),
        },
        Command::Plugins { command } => match command {
            PluginsCommand::List(a) => cmd_plugins::list(&g, a),
            PluginsCommand::Info(a) => cmd_plugins::info(&g, a),
        },
        #[cfg(feature = "sandbox")]
        Command::Sandbox(a) => cmd_sandbox::run(&g, a),
        Command::Plan(a) => cmd_apply::plan(&g, a),
        Command::Apply(a) => cmd_apply::apply(&g, a),
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
        Command::Completions { shell } => {
            let mut cmd = cli::command();
            clap_complete::generate(shell, &mut cmd, "connapp", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let man = clap_mangen::Man::new(cli::command());
            man.render(&mut std::io::stdout())
                .map_err(|e| CliError::failure(format!("cannot write the man page: {e}")))
        }
    }
}
