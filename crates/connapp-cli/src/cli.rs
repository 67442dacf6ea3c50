//! The command-line surface (clap). The same definitions generate `--help`,
//! the man page and the shell completions.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

/// connapp: OAuth connected apps as code — declared, validated, stored safely.
#[derive(Parser, Debug)]
#[command(name = "connapp", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// `connapp --version` and `connapp version`: the version, the commit and
/// its date, and the plugin API the host speaks.
pub static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (commit {}, {}; plugin API {})",
        env!("CARGO_PKG_VERSION"),
        env!("CONNAPP_COMMIT"),
        env!("CONNAPP_COMMIT_DATE"),
        connapp_plugin_api::PLUGIN_API_VERSION
    )
});

/// The whole command line, with the closing text `--help`, the man page and
/// the completions share: the exit codes come from [`crate::error::Exit`].
pub fn command() -> clap::Command {
    let mut cmd = Cli::command()
        .long_version(LONG_VERSION.as_str())
        .version(LONG_VERSION.as_str());
    // Every command's --help ends with its examples (the man pages show the same).
    let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
    for name in names {
        if !crate::manual::examples(&name).is_empty() {
            cmd = cmd.mut_subcommand(&name, |s| s.after_help(crate::manual::examples_help(&name)));
        }
    }
    let cmd = crate::complete::with_candidates(cmd);
    let grouped = crate::manual::grouped(&cmd);
    cmd.help_template(format!(
        "{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{grouped}\nOptions:\n{{options}}\n{{after-help}}"
    ))
    .after_help(format!(
        "{}\n\n{}\nEnvironment: CONNAPP_FILE, CONNAPP_CONFIG_DIR, CONNAPP_DATA_DIR, CONNAPP_PLUGIN_PATH, CONNAPP_FILE_PASSPHRASE, NO_COLOR.\nEach command has its own --help and man page (connapp man --dir DIR writes them all).",
        crate::manual::examples_help("connapp"),
        crate::error::Exit::help()
    ))
}

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The declaration file (default: ./connapp.toml, else $CONNAPP_CONFIG_DIR/connapp.toml).
    #[arg(long, short = 'f', global = true, env = "CONNAPP_FILE", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Print less: only errors and requested data.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail (repeat for more).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Colour: on a terminal unless NO_COLOR is set (auto), always, or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
}

/// When connapp's own output is coloured.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set (or TERM=dumb).
    Auto,
    /// Always, even when piped.
    Always,
    /// Never.
    Never,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a new declaration from a preset.
    Init(InitArgs),
    /// Validate the declaration offline; every problem names field, rule and fix.
    Check(CheckArgs),
    /// Store, list and remove an app's Client ID, Client Secret and Secret Token.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Show the plugins: built in and loaded, with origin, ABI version and capabilities.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Consent in the browser (or get a server-to-server token) and store the tokens.
    Login(LoginArgs),
    /// Print a valid access token, refreshing it first when it is about to expire.
    Token(TokenArgs),
    /// Refresh now (one app or --all).
    Refresh(RefreshArgs),
    /// Revoke the grant at the provider and forget its tokens.
    Revoke(RevokeArgs),
    /// Every app: grant type, token age and expiry, scopes granted vs declared, store.
    Status(StatusArgs),
    /// The inventory: each app's fleet row, account, instance, store path, grant owner, last
    /// refresh and by whom, refresh-token and Client Secret age, last verify (from the store).
    List(ListArgs),
    /// Show what `apply` would change on the provider (exit 0: nothing, 7: changes pending).
    Plan(PlanArgs),
    /// A scheduled watch: keep connapp's grants alive, find broken chains, run a hook.
    Schedule {
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// A token agent: unlocks the store once, serves `connapp token` over a socket.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Sign and check change evidence (in-toto Statements in DSSE envelopes).
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
    /// Rotate a credential on both ends without downtime: create, set, test, finish.
    Rotate {
        #[command(subcommand)]
        command: RotateCommand,
    },
    /// Make the provider app match the declaration (export, merge, validate, write, compare).
    Apply(ApplyArgs),
    /// The Marketplace procedure, step by step, with this app's exact values (Markdown or HTML).
    Guide(GuideArgs),
    /// Prove the app works: secrets, drift, granted scopes and one API call per scope.
    #[command(visible_alias = "doctor")]
    Verify(VerifyArgs),
    /// Zoom webhooks: verify a signature, answer the URL validation, run a verifying receiver.
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// Run a local Zoom and ServiceNow until Ctrl-C; `sandbox consent` opens a consent link.
    #[cfg(feature = "sandbox")]
    #[command(args_conflicts_with_subcommands = true)]
    Sandbox(SandboxArgs),
    /// Print connapp's version, commit, build date and plugin API version.
    Version(VersionArgs),
    /// Print the shell's completion script (it completes app and plugin names too).
    Completions {
        /// The shell.
        shell: Shell,
    },
    /// Print the man page (roff), or with --dir write one per command.
    #[command(hide = true)]
    Man {
        /// Write connapp.1 and connapp-COMMAND.1 for every command into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The preset whose scopes the app requests.
    #[arg(long, default_value = "servicenow-dex-zoom")]
    pub preset: String,
    /// The ServiceNow instance name (NAME in https://NAME.service-now.com), or its base URL.
    #[arg(long)]
    pub instance: String,
    /// The app's name in the declaration.
    #[arg(long, default_value = "dex-zoom")]
    pub app: String,
    /// The name shown on Zoom's consent page.
    #[arg(long, default_value = "DEX for Zoom")]
    pub display_name: String,
    /// The store kind for secrets.
    #[arg(long, default_value = "file")]
    pub store: String,
    /// A loopback redirect for `connapp login`, added to the allow list (e.g. http://127.0.0.1/callback).
    #[arg(long, value_name = "URL")]
    pub login_redirect: Option<String>,
    /// Talk to this Zoom instead of zoom.us / api.zoom.us (e.g. `connapp sandbox`'s URL).
    #[arg(long, value_name = "URL")]
    pub zoom_base: Option<String>,
    /// Add a Server-to-Server management app of this Zoom account (holds the
    /// Marketplace scopes), so `connapp plan` / `apply` can create and update the app.
    #[arg(long, value_name = "ACCOUNT_ID")]
    pub management_account: Option<String>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Store a secret, read from a no-echo prompt or standard input (never from the command line).
    Set(SecretSetArgs),
    /// List which secrets are stored (metadata only, never values).
    List(SecretListArgs),
    /// Remove a secret.
    Rm(SecretRmArgs),
    /// Store many secrets at once (a fleet's instance sign-ins, say), read as
    /// JSON Lines from standard input: {"app": "dex-acme", "secret":
    /// "instance-password", "value": "..."} per line. Every line is checked
    /// before anything is stored; each store opens once.
    Import(SecretImportArgs),
}

/// Which secret of which app (`secrets set` and `secrets rm`).
#[derive(Args, Debug)]
pub struct SecretOf {
    /// Which secret: client-id, client-secret, secret-token; app-id; or the
    /// ServiceNow sign-in: instance-user, instance-password, instance-client-id,
    /// instance-client-secret.
    #[arg(value_parser = [
        "client-id", "client-secret", "secret-token", "app-id",
        "instance-user", "instance-password", "instance-client-id", "instance-client-secret",
    ])]
    pub kind: String,
    /// The app (needed when the declaration has several).
    #[arg(long)]
    pub app: Option<String>,
}

#[derive(Args, Debug)]
pub struct SecretSetArgs {
    #[command(flatten)]
    pub secret: SecretOf,
    /// Read the value from standard input instead of prompting.
    #[arg(long)]
    pub from_stdin: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SecretListArgs {
    /// Only this app.
    #[arg(long)]
    pub app: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SecretImportArgs {
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SecretRmArgs {
    #[command(flatten)]
    pub secret: SecretOf,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum PluginsCommand {
    /// List every plugin and every library that failed to load.
    List(PluginsArgs),
    /// Show one plugin in detail.
    Info(PluginInfoArgs),
}

#[derive(Args, Debug)]
pub struct PluginsArgs {
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PluginInfoArgs {
    /// The plugin name (see `connapp plugins list`).
    pub name: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "sandbox")]
#[derive(Args, Debug)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 8700)]
    pub port: u16,
    /// Port of the ServiceNow instance on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub servicenow_port: u16,
    /// A TOML seed file: account, plan, users, apps, knobs (see README).
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Keep the sandbox's world in this file: loaded at start if it exists,
    /// saved every few seconds and at Ctrl-C, so the sandbox can be restarted.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Print the endpoints and credentials as JSON (one line), then serve.
    #[arg(long)]
    pub json: bool,
    /// Serve a fleet instead: N customers, each with a Zoom account (its
    /// management app alone) and a ServiceNow instance of its own, on ports
    /// of their own; writes the declaration, inventory and secrets for them into --dir.
    #[arg(long, value_name = "N", conflicts_with_all = ["seed", "state"])]
    pub fleet: Option<usize>,
    /// Where --fleet writes connapp.toml, customers.csv and secrets.jsonl (created
    /// if missing; files a fleet sandbox wrote before are replaced, others never).
    #[arg(long, value_name = "DIR", default_value = "sandbox-fleet", requires = "fleet")]
    pub dir: PathBuf,
    #[command(subcommand)]
    pub action: Option<SandboxAction>,
}

/// What else `connapp sandbox` does besides serving.
#[derive(Subcommand, Debug)]
pub enum SandboxAction {
    /// Open a consent link without a browser: sign in at the local Zoom
    /// sandbox as a user, click Allow, follow the redirects (ServiceNow's
    /// "Get OAuth Token" link that apply prints, or the URL login prints).
    Consent {
        /// The link (http on this machine only).
        url: String,
        /// The Zoom sandbox user who consents (ServiceNow's grant and
        /// connapp's own must be different users: one grant per user per app).
        #[arg(long = "as", value_name = "USER", default_value = "admin")]
        user: String,
    },
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The app (needed when the declaration has several).
    pub app: Option<String>,
    /// Do not open a browser: print the URL and read the redirected URL from standard input.
    #[arg(long)]
    pub no_browser: bool,
    /// Seconds to wait for the consent.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// The user who will consent (sent as `login_hint`; named in the one-grant warning).
    #[arg(long, value_name = "EMAIL")]
    pub user_hint: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The app (needed when the declaration has several).
    pub app: Option<String>,
    /// A token for each app of the fleet rows where COLUMN is VALUE, for scripts (a trailing `*`
    /// matches a prefix; repeat: every one must hold): one `APP TOKEN` line each, or --json.
    #[arg(long, value_name = "COLUMN=VALUE", conflicts_with = "app")]
    pub select: Vec<String>,
    /// With --select: how many apps at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Refresh when the token expires within this many seconds (default 60).
    #[arg(long)]
    pub margin: Option<u64>,
    /// Print token, expiry and scopes as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RefreshArgs {
    /// The app (needed when the declaration has several).
    #[arg(conflicts_with = "all")]
    pub app: Option<String>,
    /// Every authorization-code app in the declaration (or in the selected rows).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub batch: BatchArgs,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How a command runs over many apps (`--all`, or a selection of a fleet's rows).
#[derive(Args, Debug)]
pub struct BatchArgs {
    /// How many apps at once (one store, one runtime).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Only the apps of the fleet rows where COLUMN is VALUE (a trailing `*` matches a prefix;
    /// repeat: every one must hold). Implies --all.
    #[arg(long, value_name = "COLUMN=VALUE", conflicts_with = "app")]
    pub select: Vec<String>,
    /// Do every app again, even those an interrupted run of the same command finished.
    #[arg(long)]
    pub fresh: bool,
    /// Print each app's result as it finishes, one JSON object per line (JSON Lines:
    /// `finished`, `waiting`, `notice`, `consent` events), then a `summary` line; for
    /// scripts that follow a long run. Not with --json.
    #[arg(long)]
    pub jsonl: bool,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The app (needed when the declaration has several).
    pub app: Option<String>,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Remove the local tokens even when the provider refuses the revocation
    /// (they may then still be valid at the provider until they expire).
    #[arg(long)]
    pub forget: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Read only the store: do not ask each target's instance about its own grant.
    #[arg(long)]
    pub offline: bool,
    /// Only the apps of the fleet rows where COLUMN is VALUE (a trailing `*` matches a prefix;
    /// repeat: every one must hold).
    #[arg(long, value_name = "COLUMN=VALUE")]
    pub select: Vec<String>,
    /// How many instances are asked about their own grant at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only the apps of the fleet rows where COLUMN is VALUE (a trailing `*` matches a prefix;
    /// repeat: every one must hold).
    #[arg(long, value_name = "COLUMN=VALUE")]
    pub select: Vec<String>,
    /// Print the inventory as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The app (default: every app that has `managed_by`).
    #[arg(conflicts_with = "all")]
    pub app: Option<String>,
    /// Every app (or the selected rows'), side by side, each app's failure its own.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub batch: BatchArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The app (default: every app that has `managed_by`).
    #[arg(conflicts_with = "all")]
    pub app: Option<String>,
    /// Every app (or the selected rows'), each planned and applied in turn, `--jobs` at a
    /// time; one app's failure is its own and the run goes on.
    #[arg(long, conflicts_with_all = ["rollback", "evidence"])]
    pub all: bool,
    #[command(flatten)]
    pub batch: BatchArgs,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Restore the manifest saved before the last apply instead.
    #[arg(long)]
    pub rollback: bool,
    /// Write ServiceNow's write-only copies again (the Client Secret), e.g.
    /// after rotating the secret in Zoom and `connapp secrets set client-secret`.
    #[arg(long, conflicts_with = "rollback")]
    pub write_secrets: bool,
    #[command(flatten)]
    pub evidence: EvidenceArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Change evidence for `apply` and `rotate`.
#[derive(Args, Debug)]
pub struct EvidenceArgs {
    /// Write an in-toto Statement of the change to FILE (the documents it
    /// names go to FILE.subjects/); check it with `connapp evidence verify`.
    #[arg(long, value_name = "FILE")]
    pub evidence: Option<PathBuf>,
    /// Sign the evidence (a DSSE envelope) with this Ed25519 key, made by
    /// `connapp evidence keygen`.
    #[arg(long, value_name = "KEY", requires = "evidence")]
    pub sign_key: Option<PathBuf>,
    /// Attach the evidence, its documents and the verify report to this
    /// ServiceNow change request, and fill its implementation, back-out and
    /// test plans (appended to what is there).
    #[arg(long, value_name = "CHG", requires = "evidence")]
    pub change: Option<String>,
}

/// What `connapp rotate` rotates.
#[derive(Subcommand, Debug)]
pub enum RotateCommand {
    /// The app's Client Secret: a new one at the provider while the old one
    /// keeps working, handed to the consumer, tested, then the old one revoked.
    ClientSecret(RotateArgs),
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    /// The app (optional when the declaration has one app).
    pub app: Option<String>,
    /// How long the old secret keeps working after the new one is issued
    /// (e.g. 1h, 24h, 7d; at most 30 days).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub overlap: u64,
    /// How long the test step waits for the consumer's own token refresh
    /// with the new secret (e.g. 0s, 90s, 1h).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub wait: u64,
    /// Continue the rotation in progress from the step it reached.
    #[arg(long, conflicts_with = "abort")]
    pub resume: bool,
    /// Undo the rotation in progress: the old secret current everywhere again.
    #[arg(long)]
    pub abort: bool,
    /// Read the new Client Secret (copied from the provider's console) from
    /// standard input, for a rotation done by hand.
    #[arg(long, conflicts_with = "abort")]
    pub new_secret_stdin: bool,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub evidence: EvidenceArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `connapp schedule`.
#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Install the watch: a systemd user timer, a launchd agent or a crontab block.
    Install(ScheduleInstallArgs),
    /// Remove what `install` wrote, leaving the crontab and unit directories as they were.
    Remove,
    /// Whether the watch is installed, still there, and how its last pass went.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One pass now (what the scheduler runs).
    Run(WatchPassArgs),
}

#[derive(Args, Debug, Clone)]
pub struct WatchPassArgs {
    /// Refresh connapp's own grants whose tokens are older than this (never
    /// the grant a consumer holds).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub refresh_older_than: u64,
    /// Run this command (with `sh -c`, the failure as JSON on its standard
    /// input) once for every new failure.
    #[arg(long, value_name = "COMMAND")]
    pub hook_command: Option<String>,
    /// POST every new failure as JSON to this URL.
    #[arg(long, value_name = "URL")]
    pub hook_url: Option<String>,
    /// Print the pass as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The schedulers `schedule install` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SchedulerArg {
    /// launchd on macOS, systemd when its user instance answers, else cron.
    Auto,
    /// A systemd user timer.
    Systemd,
    /// A launchd agent.
    Launchd,
    /// A block in the user's crontab.
    Cron,
}

/// How often the watch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EveryArg {
    /// Once an hour, at a random minute.
    Hourly,
    /// Once a day, at a random time.
    Daily,
}

#[derive(Args, Debug)]
pub struct ScheduleInstallArgs {
    /// Which scheduler.
    #[arg(long, value_enum, default_value_t = SchedulerArg::Auto)]
    pub scheduler: SchedulerArg,
    /// How often.
    #[arg(long, value_enum, default_value_t = EveryArg::Hourly)]
    pub every: EveryArg,
    #[command(flatten)]
    pub pass: WatchPassArgs,
}

/// `connapp agent`.
#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Start an agent in the background and print the shell lines that point
    /// `connapp token` at it (`eval "$(connapp agent start)"`).
    Start(AgentRunArgs),
    /// Run the agent in the foreground (for a systemd user unit).
    Run(AgentRunArgs),
    /// Whether an agent answers, and what it holds (never a secret).
    Status(AgentStatusArgs),
    /// Make the agent drop every secret it holds; it answers "locked" from then on.
    Lock(AgentSocketArgs),
    /// Stop the agent (it drops every secret first).
    Stop(AgentSocketArgs),
}

#[derive(Args, Debug)]
pub struct AgentSocketArgs {
    /// The agent's socket (default: $CONNAPP_AGENT_SOCK, else
    /// $XDG_RUNTIME_DIR/connapp/agent.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct AgentRunArgs {
    #[command(flatten)]
    pub socket: AgentSocketArgs,
    /// Lock (drop every secret) after this long without a request.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub idle_lock: u64,
    /// Renew a token this many seconds before it expires.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub margin: u64,
}

#[derive(Args, Debug)]
pub struct AgentStatusArgs {
    #[command(flatten)]
    pub socket: AgentSocketArgs,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `connapp evidence`.
#[derive(Subcommand, Debug)]
pub enum EvidenceCommand {
    /// Make an Ed25519 key pair for signing evidence: KEY (secret, 0600) and KEY.pub.
    Keygen {
        /// Where to write the secret key (the public key goes to KEY.pub).
        key: PathBuf,
    },
    /// Check an evidence file: its signature, its shape, and every subject's digest.
    Verify(EvidenceVerifyArgs),
}

#[derive(Args, Debug)]
pub struct EvidenceVerifyArgs {
    /// The evidence file (its subjects are read from FILE.subjects/).
    pub file: PathBuf,
    /// The public key to check a signed file with (KEY.pub of `evidence keygen`).
    #[arg(long, value_name = "KEY.pub")]
    pub key: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A duration such as `90s`, `15m`, `24h` or `7d`, in seconds.
fn parse_duration(s: &str) -> Result<u64, String> {
    humantime::parse_duration(s)
        .map(|d| d.as_secs())
        .map_err(|e| format!("{e}; give a duration such as 90s, 15m, 24h or 7d"))
}

/// Output formats of `connapp guide`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GuideFormat {
    /// Markdown with check boxes.
    Md,
    /// One self-contained HTML page whose check boxes remember their state.
    Html,
}

#[derive(Args, Debug)]
pub struct GuideArgs {
    /// The app (needed when the declaration has several).
    pub app: Option<String>,
    /// Markdown or HTML.
    #[arg(long, value_enum, default_value = "md")]
    pub format: GuideFormat,
    /// Write to this file (0644, atomically) instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The app (needed when the declaration has several).
    #[arg(conflicts_with = "all")]
    pub app: Option<String>,
    /// Every app of the declaration (or of the selected rows), side by side.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub batch: BatchArgs,
    /// Print every check as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Check a received event's signature with the app's Secret Token (exit 0: valid, 1: not).
    Verify(WebhookVerifyArgs),
    /// Print the answer to an `endpoint.url_validation` challenge.
    Challenge(WebhookChallengeArgs),
    /// Receive events: answer URL validation, refuse bad signatures (401), forward or print the rest.
    Serve(WebhookServeArgs),
}

#[derive(Args, Debug)]
pub struct WebhookVerifyArgs {
    /// The app whose Secret Token signs the events.
    #[arg(long)]
    pub app: Option<String>,
    /// The request headers, one `name: value` per line (as curl -D writes them).
    #[arg(long, value_name = "FILE")]
    pub headers: std::path::PathBuf,
    /// The raw request body, byte for byte.
    #[arg(long, value_name = "FILE")]
    pub body: std::path::PathBuf,
    /// Accept timestamps this many seconds from now (default 300).
    #[arg(long, default_value_t = 300)]
    pub window: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct WebhookChallengeArgs {
    /// The app whose Secret Token answers.
    #[arg(long)]
    pub app: Option<String>,
    /// The `payload.plainToken` Zoom sent.
    pub plain_token: String,
}

#[derive(Args, Debug)]
pub struct WebhookServeArgs {
    /// The app whose Secret Token signs the events.
    #[arg(long)]
    pub app: Option<String>,
    /// Where to listen, e.g. 127.0.0.1:8788 (port 0 picks one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8788")]
    pub listen: std::net::SocketAddr,
    /// POST verified events to this URL (the raw body, with Zoom's headers) instead of printing them.
    #[arg(long, value_name = "URL")]
    pub forward: Option<String>,
    /// Accept timestamps this many seconds from now (default 300).
    #[arg(long, default_value_t = 300)]
    pub window: u64,
    /// The URL path events arrive on.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// Close a connection that has not sent a complete request head within
    /// this many seconds, also between requests on a kept-alive connection.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,
    /// Serve at most this many connections at once; more wait in the kernel's queue.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub max_connections: u64,
    /// Answer 408 to a request whose body (and forwarding) takes longer than this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout: u64,
}
