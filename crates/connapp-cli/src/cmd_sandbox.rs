//! `connapp sandbox`: the local Zoom and ServiceNow, for people without accounts.

use std::io::Write;

use connapp_sandbox::Seed;
use serde_json::json;

use crate::cli::{Global, SandboxAction, SandboxArgs};
use crate::error::{CliError, Exit};

fn load_seed(a: &SandboxArgs) -> Result<Seed, CliError> {
    let Some(path) = &a.seed else {
        return Ok(Seed::default());
    };
    let text = connapp_plugin_api::bounded::read_text("the seed", path, connapp_sandbox::MAX_STATE_BYTES)
        .map_err(|e| CliError::failure(e.to_string()))?;
    toml::from_str(&text).map_err(|e| {
        CliError::with_code(
            Exit::Invalid,
            format!("{}: invalid seed: {}", path.display(), e.message().trim()),
        )
        .hint("every field is optional; see the README's sandbox section for the format")
    })
}

/// `connapp sandbox consent URL --as USER`: a person's browser, stood in for.
fn consent(url: &str, user: &str) -> Result<(), CliError> {
    let landed = connapp_sandbox::browser::consent(url, user).map_err(|e| {
        CliError::with_code(Exit::Usage, e.to_string())
            .hint("pass the link exactly as connapp printed it, with the sandbox running")
    })?;
    println!(
        "{} consented; the last page ({}, HTTP {}): {}",
        user, landed.url, landed.status, landed.text
    );
    if landed.status >= 400 || landed.text.contains("failed") {
        return Err(CliError::failure(format!(
            "the consent did not succeed: {}",
            landed.text
        )));
    }
    Ok(())
}

/// How often the ServiceNow sandbox of `connapp sandbox` runs DEX's job.
const DEX_EVERY_SECS: u64 = 10;

/// The shortest way from here to `connapp verify` all green, with this
/// sandbox's addresses and the management app's credentials filled in.
fn first_steps(base: &str, sn_base: &str, seed: &connapp_sandbox::Seed) -> Vec<String> {
    let mgmt = seed
        .apps
        .iter()
        .find(|a| a.scopes.iter().any(|s| s.starts_with("marketplace:")));
    let (id, secret) = mgmt.map_or(("?", "?"), |m| (m.client_id.as_str(), m.client_secret.as_str()));
    let app = connapp_core::MANAGEMENT_APP;
    vec![
        format!(
            "connapp init --instance {sn_base} --zoom-base {base} --management-account {} --login-redirect http://127.0.0.1/callback",
            seed.account_id
        ),
        format!("connapp secrets set client-id --app {app}        # paste {id}"),
        format!("connapp secrets set client-secret --app {app}    # paste {secret}"),
        "connapp secrets set instance-user --app dex-zoom          # type admin".into(),
        "connapp secrets set instance-password --app dex-zoom      # type admin-password".into(),
        "connapp apply --yes".into(),
        "connapp sandbox consent 'THE LINK APPLY PRINTED' --as admin".into(),
        "connapp login --user-hint owner     # then, while it waits, in a third terminal:".into(),
        "connapp sandbox consent 'THE URL LOGIN PRINTED' --as owner".into(),
        format!("connapp verify                      # once DEX's job ran (every {DEX_EVERY_SECS} s)"),
    ]
}

/// The first line of the declaration `--fleet` writes: a directory whose
/// declaration starts with it may be written again by the next fleet sandbox.
const FLEET_MARK: &str = "# Written by `connapp sandbox --fleet";

/// `connapp sandbox --fleet N`: N customers' accounts and instances, the
/// files that declare them written into `dir`, served until Ctrl-C.
fn fleet(g: &Global, a: &SandboxArgs, rows: usize) -> Result<(), CliError> {
    let dir = &a.dir;
    let files = [
        (dir.join("connapp.toml"), 0o644),
        (dir.join("customers.csv"), 0o644),
        (dir.join("secrets.jsonl"), 0o600),
    ];
    // Files a fleet sandbox wrote are replaced (the declaration's first line
    // says so, and then the other two are its own); any other file never is.
    let ours = written_by_a_fleet_sandbox(&files[0].0);
    if let Some((path, _)) = files.iter().find(|(p, _)| p.exists() && !ours) {
        return Err(CliError::with_code(
            Exit::Usage,
            format!(
                "{} exists and was not written by `connapp sandbox --fleet`",
                path.display()
            ),
        )
        .hint("pick another --dir, or move the file away"));
    }
    if rows == 0 || rows > connapp_sandbox::fleet::MAX_ROWS {
        return Err(CliError::with_code(
            Exit::Usage,
            format!(
                "--fleet {rows}: a sandbox fleet has 1 to {} customers",
                connapp_sandbox::fleet::MAX_ROWS
            ),
        ));
    }
    let f = connapp_sandbox::fleet::Fleet::start(rows, DEX_EVERY_SECS).map_err(|e| {
        // EMFILE: each customer takes two listeners, and each connection a file more.
        let too_many_files = matches!(&e, connapp_sandbox::SandboxError::Bind { source, .. } if source.raw_os_error() == Some(24));
        let err = CliError::failure(e.to_string());
        if too_many_files {
            err.hint(format!(
                "the open-file limit is too low for {rows} customers (they need about {} files): raise it (`ulimit -n`) or serve fewer",
                rows * 4
            ))
        } else {
            err
        }
    })?;
    std::fs::create_dir_all(dir).map_err(|e| CliError::failure(format!("cannot create {}: {e}", dir.display())))?;
    let contents = [f.declaration("customers.csv"), f.inventory(), f.secret_lines()];
    for ((path, mode), text) in files.iter().zip(contents) {
        connapp_plugin_api::atomic::write_file(path, text.as_bytes(), *mode)
            .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))?;
    }
    let steps = vec![
        format!("cd {}", dir.display()),
        "connapp secrets import < secrets.jsonl".to_string(),
        "connapp apply --all --yes --jsonl > apply.jsonl".to_string(),
        "jq -r 'select(.event == \"consent\") | .consent_url' apply.jsonl | while read -r link; do connapp sandbox consent \"$link\" --as admin; done".to_string(),
        "for c in $(tail -n +2 customers.csv | cut -d, -f1); do BROWSER='connapp sandbox consent --as owner' connapp login dex-$c --user-hint owner; done".to_string(),
        format!("connapp verify --all                # once DEX's job ran on each instance (every {DEX_EVERY_SECS} s)"),
        "connapp list".to_string(),
    ];
    let mut out = std::io::stdout().lock();
    if a.json {
        let rows: Vec<_> = f
            .zoom
            .iter()
            .zip(&f.servicenow)
            .enumerate()
            .map(|(i, (z, sn))| {
                json!({
                    "customer": connapp_sandbox::fleet::customer(i), "zoom_account": z.account_id(),
                    "zoom_base": z.base_url(), "servicenow_url": sn.base_url(),
                })
            })
            .collect();
        let info = json!({
            "fleet": rows, "dir": dir.display().to_string(),
            "files": files.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>(),
            "dex_job_every_secs": DEX_EVERY_SECS, "next_steps": steps,
        });
        writeln!(out, "{info}")?;
    } else {
        writeln!(
            out,
            "connapp sandbox: {rows} customers, each with a local Zoom account and a ServiceNow instance of its own (not the real ones)"
        )?;
        let show = rows.min(3);
        for (i, (z, sn)) in f.zoom.iter().zip(&f.servicenow).take(show).enumerate() {
            writeln!(
                out,
                "  {:<6} Zoom {} (account {})  ServiceNow {}",
                connapp_sandbox::fleet::customer(i),
                z.base_url(),
                z.account_id(),
                sn.base_url()
            )?;
        }
        if rows > show {
            writeln!(out, "  ... and {} more (see customers.csv)", rows - show)?;
        }
        for (path, _) in &files {
            writeln!(out, "wrote {}", path.display())?;
        }
        writeln!(
            out,
            "DEX's scheduled job runs every {DEX_EVERY_SECS} s on each instance."
        )?;
        next_steps(
            &mut out,
            g,
            "Fleets",
            &steps,
            "secrets.jsonl holds sandbox credentials (mode 0600). Ctrl-C stops the sandbox.",
        )?;
    }
    out.flush()?;
    drop(out);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the runtime: {e}")))?;
    rt.block_on(tokio::signal::ctrl_c())
        .map_err(|e| CliError::failure(format!("cannot wait for Ctrl-C: {e}")))?;
    drop(f);
    Ok(())
}

/// The steps to take next (the README's `section` walks them) and a closing
/// line, unless `--quiet`.
fn next_steps(out: &mut impl Write, g: &Global, section: &str, steps: &[String], closing: &str) -> std::io::Result<()> {
    if g.quiet {
        return Ok(());
    }
    writeln!(out, "Next, in another terminal (README, \"{section}\"):")?;
    for step in steps {
        writeln!(out, "  {step}")?;
    }
    writeln!(out, "{closing}")
}

/// Whether `path` starts with the mark of a file `--fleet` wrote (only its
/// first bytes are read).
fn written_by_a_fleet_sandbox(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; FLEET_MARK.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == FLEET_MARK.as_bytes())
}

pub fn run(g: &Global, a: SandboxArgs) -> Result<(), CliError> {
    if let Some(SandboxAction::Consent { url, user }) = &a.action {
        return consent(url, user);
    }
    if let Some(rows) = a.fleet {
        return fleet(g, &a, rows);
    }
    let mut seed = load_seed(&a)?;
    if let Some(path) = &a.state
        && path.exists()
    {
        if a.seed.is_some() {
            return Err(CliError::with_code(
                Exit::Usage,
                format!("{} exists, so --seed would be ignored", path.display()),
            )
            .hint("drop --seed to continue the saved sandbox, or move the state file away to start fresh"));
        }
        // Print what the saved world holds, not a fresh seed's credentials.
        let st = connapp_sandbox::load_state(path).map_err(|e| CliError::with_code(Exit::Invalid, e.to_string()))?;
        seed.account_id = st.account_id.clone();
        seed.users = st.users.clone();
        seed.apps = st.apps.values().cloned().collect();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", a.port))
            .await
            .map_err(|e| {
                CliError::failure(format!("cannot listen on 127.0.0.1:{}: {e}", a.port))
                    .hint("pick another --port, or 0 for any free one")
            })?;
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        // The ServiceNow instance listens next to it (any free port).
        let sn_listener = tokio::net::TcpListener::bind(("127.0.0.1", a.servicenow_port))
            .await
            .map_err(|e| CliError::failure(format!("cannot listen on 127.0.0.1:{}: {e}", a.servicenow_port)))?;
        let sn_base = format!("http://{}", sn_listener.local_addr()?);
        let mut sn_seed = connapp_sandbox::servicenow::SnSeed::default();
        // DEX's job runs on a schedule, as on a real instance.
        sn_seed.knobs.dex_every_secs = Some(DEX_EVERY_SECS);
        let sn_users: Vec<_> = sn_seed
            .users
            .iter()
            .map(|u| json!({"user_name": u.user_name, "password": u.password, "roles": u.roles}))
            .collect();
        let apps: Vec<_> = seed
            .apps
            .iter()
            .map(|app| {
                json!({
                    "name": app.name, "app_id": app.app_id, "kind": app.kind, "usage": app.usage, "client_id": app.client_id,
                    "client_secret": app.client_secret, "secret_token": app.secret_token,
                    "redirect_urls": app.redirect_urls, "scopes": app.scopes,
                })
            })
            .collect();
        let steps = first_steps(&base, &sn_base, &seed);
        let mut out = std::io::stdout().lock();
        if a.json {
            let info = json!({
                "base_url": base, "authorize_url": format!("{base}/oauth/authorize"),
                "token_url": format!("{base}/oauth/token"), "revoke_url": format!("{base}/oauth/revoke"),
                "api_base": format!("{base}/v2"), "control": format!("{base}/_sandbox"),
                "account_id": seed.account_id, "apps": apps,
                "servicenow_url": sn_base, "servicenow_users": sn_users,
                "servicenow_dex_alias": sn_seed.dex_alias_id,
                "dex_job_every_secs": DEX_EVERY_SECS,
                "next_steps": steps,
            });
            writeln!(out, "{info}")?;
        } else {
            writeln!(out, "connapp sandbox: a local Zoom (not the real one) on {base}")?;
            writeln!(out, "  authorize  {base}/oauth/authorize")?;
            writeln!(out, "  token      {base}/oauth/token")?;
            writeln!(out, "  revoke     {base}/oauth/revoke")?;
            writeln!(out, "  API        {base}/v2")?;
            writeln!(out, "  control    {base}/_sandbox/state")?;
            writeln!(out, "  account    {}", seed.account_id)?;
            writeln!(
                out,
                "  users      {}",
                seed.users
                    .iter()
                    .map(|u| format!("{} ({:?})", u.login, u.role))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
            writeln!(out, "ServiceNow (not a real instance) on {sn_base}")?;
            for u in &sn_seed.users {
                writeln!(
                    out,
                    "  user {:<12} password {:<22} roles {}",
                    u.user_name,
                    u.password,
                    u.roles.join(",")
                )?;
            }
            for app in &seed.apps {
                writeln!(out, "app {:?} ({:?}, {:?}), app id {}", app.name, app.kind, app.usage, app.app_id)?;
                writeln!(out, "  client id      {}", app.client_id)?;
                writeln!(out, "  client secret  {}", app.client_secret)?;
                writeln!(out, "  secret token   {}", app.secret_token)?;
                if !app.redirect_urls.is_empty() {
                    writeln!(out, "  redirect URL   {}", app.redirect_urls.join(", "))?;
                }
            }
            writeln!(out, "DEX's scheduled job runs every {DEX_EVERY_SECS} s on the ServiceNow sandbox.")?;
            next_steps(
                &mut out,
                g,
                "Your first run",
                &steps,
                "These are sandbox credentials, printed on purpose. Ctrl-C stops the sandbox.",
            )?;
        }
        out.flush()?;
        drop(out);
        // ServiceNow's world is kept next to Zoom's: world.json -> world.servicenow.json.
        let sn_state = a.state.as_ref().map(|p| p.with_extension("servicenow.json"));
        let start = match a.state {
            Some(path) => connapp_sandbox::Start::StateFile(path, seed),
            None => connapp_sandbox::Start::Seed(seed),
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        let (zoom, sn) = tokio::join!(
            connapp_sandbox::serve(listener, start, stopped(stop_rx.clone())),
            connapp_sandbox::servicenow::serve(sn_listener, sn_seed, sn_state, stopped(stop_rx)),
        );
        zoom.map_err(|e| CliError::failure(e.to_string()))?;
        sn.map_err(|e| CliError::failure(e.to_string()))
    })
}
