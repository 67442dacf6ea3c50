//! `cargo xtask demo`: the DEX for Zoom journey on the embedded sandboxes.

use super::*;

/// The sandbox world of the demo: a Zoom account with a Server-to-Server app
/// that holds the Marketplace scopes (the DEX app does not exist yet).
pub(crate) const DEMO_SEED: &str = r#"plan = "business"
[knobs]
auto_approve = "admin"

[[apps]]
app_id = "sbxAppMgmt000000000003"
name = "connapp marketplace management"
kind = "server-to-server"
usage = "ADMIN_MANAGEMENT"
client_id = "sbxMgmtClientId0000003"
client_secret = "demo-management-secret-0123456789"
secret_token = "demo-management-token"
redirect_urls = []
allow_list = []
strict_mode = false
subdomain_check = false
scopes = ["marketplace:read:app:admin", "marketplace:write:app:admin", "marketplace:update:client_secret:admin", "marketplace:delete:app:admin"]
"#;

pub(crate) const BENCH_SEED: &str = r#"# The sandbox world of the benchmarks: the DEX app as the Marketplace procedure
# creates it, plus a loopback redirect on its allow list for connapp's own login.
plan = "business"
[knobs]
auto_approve = "admin"

[[apps]]
app_id = "sbxAppDex0000000000001"
name = "DEX for Zoom"
kind = "general"
usage = "ADMIN_MANAGEMENT"
client_id = "sbxDexClientId00000001"
client_secret = "demo-client-secret-0123456789abcdef"
secret_token = "demo-secret-token-abcdef"
redirect_urls = ["https://acme.service-now.com/oauth_redirect.do"]
allow_list = ["https://acme.service-now.com/oauth_redirect.do", "http://127.0.0.1/callback"]
strict_mode = false
subdomain_check = false
scopes = ["report:read:user:admin", "dashboard:read:list_meeting_participants_qos:admin", "dashboard:read:meeting_participant_qos:admin", "dashboard:read:list_zoomrooms:admin", "dashboard:read:issues_zoomroom:admin", "user:read:user:admin"]
"#;

pub(crate) fn demo(store: &str) -> Result<()> {
    // The store's service: OpenBao is started here; a keyring must already exist.
    let _bao = match store {
        "file" => None,
        "vault" => {
            let bao = start_openbao()?;
            // SAFETY: xtask is single-threaded here; children inherit these.
            unsafe {
                std::env::set_var("VAULT_ADDR", &bao.addr);
                std::env::set_var("VAULT_TOKEN", &bao.token);
            }
            Some(bao)
        }
        "keyring" => {
            if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
                bail!(
                    "no Secret Service here (no D-Bus session): run the keyring demo in a desktop session, or use --store file or --store vault"
                );
            }
            None
        }
        other => bail!("unknown store {other:?}: use file, vault or keyring"),
    };
    run_cmd(cargo().args(["build", "-q", "-p", "connapp-cli"]))?;
    let bin = target_dir()
        .join("debug")
        .join(format!("connapp{}", std::env::consts::EXE_SUFFIX));
    let work = std::env::temp_dir().join(format!("connapp-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("sandbox-seed.toml"), DEMO_SEED)?;
    let result = serving(
        Command::new(&bin)
            .args(["sandbox", "--port", "0", "--json", "--seed"])
            .arg(work.join("sandbox-seed.toml"))
            .stderr(Stdio::inherit()),
        "connapp sandbox",
        Banner::Stdout,
        |line, _| {
            let base = json_str(line, "base_url").context("the sandbox did not print its base URL")?;
            let sn = json_str(line, "servicenow_url").context("the sandbox did not print its ServiceNow URL")?;
            demo_steps(&bin, &work, &base, &sn, store)
        },
    );
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// The string value of `"key":"..."` in a one-line JSON object (enough for the sandbox's banner).
pub(crate) fn json_str(line: &str, key: &str) -> Option<String> {
    let rest = line.split(&format!("\"{key}\":\"")).nth(1)?;
    Some(rest.split('"').next()?.to_string())
}

/// A minimal browser for the demo: GET the URL over loopback HTTP and follow
/// redirects, as a browser does after the (auto-approved) consent.
pub(crate) fn browse(url: &str) -> Result<()> {
    fetch(url).map(|_| ())
}

pub(crate) fn demo_steps(bin: &Path, work: &Path, base: &str, sn: &str, store: &str) -> Result<()> {
    let step = |title: &str, args: &[&str], stdin: Option<&str>| run_step(bin, work, title, args, stdin, 0);
    println!("connapp demo: DEX for Zoom, from one declaration to data flowing into ServiceNow");
    println!(
        "  Zoom:       the embedded Zoom sandbox at {base} (not the real Zoom)\n  ServiceNow: the embedded instance at {sn} (not a real instance)\n  work:       {}",
        work.display()
    );
    step(
        "Declare the app from the preset: the Zoom app, its ServiceNow instance, a management app for the Marketplace API",
        &[
            "init",
            "--instance",
            sn,
            "--store",
            store,
            "--login-redirect",
            "http://127.0.0.1/callback",
            "--zoom-base",
            base,
            "--management-account",
            "sbxAccount0000000000001",
        ],
        None,
    )?;
    let decl = std::fs::read_to_string(work.join("connapp.toml"))?;
    println!("--- connapp.toml ---\n{decl}--------------------");
    step("Validate the declaration offline", &["check"], None)?;
    // The classic mistake: a trailing slash in the allow list, caught offline.
    let redirect = format!("{sn}/oauth_redirect.do");
    let typo = decl.replace(&format!("[\"{redirect}\", "), &format!("[\"{redirect}/\", "));
    std::fs::write(work.join("typo.toml"), typo)?;
    run_step(
        bin,
        work,
        "A trailing slash in the allow list is caught before Zoom ever sees it (exit code 3)",
        &["--file", "typo.toml", "check"],
        None,
        3,
    )?;
    // Credentials as their owners' pages show them (here: the sandboxes').
    for (title, args, value) in [
        (
            "Store the management app's Client ID",
            ["client-id", "zoom-marketplace"],
            "sbxMgmtClientId0000003",
        ),
        (
            "Store the management app's Client Secret",
            ["client-secret", "zoom-marketplace"],
            "demo-management-secret-0123456789",
        ),
        (
            "Store the ServiceNow user connapp signs in as",
            ["instance-user", "dex-zoom"],
            "admin",
        ),
        (
            "Store that user's password",
            ["instance-password", "dex-zoom"],
            "admin-password",
        ),
    ] {
        step(
            title,
            &["secrets", "set", args[0], "--app", args[1], "--from-stdin"],
            Some(&format!("{value}\n")),
        )?;
    }
    run_step(
        bin,
        work,
        "What would change on Zoom and in ServiceNow (exit code 7: changes pending)",
        &["plan"],
        None,
        7,
    )?;
    println!("\n== Apply both ends: create the Zoom app, then the ServiceNow records\n$ connapp apply --yes --json");
    let out = demo_command(bin, work, &["apply", "--yes", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .context("connapp apply")?;
    if !out.status.success() {
        bail!("connapp apply failed");
    }
    let applied: serde_json::Value = serde_json::from_slice(&out.stdout).context("apply --json")?;
    let records = applied["apps"][0]["servicenow"]["items"].as_array().map_or(0, Vec::len);
    let link = applied["consent"][0]["consent_url"]
        .as_str()
        .context("apply offered no consent link")?
        .to_string();
    println!(
        "  Zoom app {} created; {records} ServiceNow records in place.\n  The consent link for the ServiceNow admin:\n  {link}",
        applied["apps"][0]["app_id"].as_str().unwrap_or("?")
    );
    step("A second plan: both ends match the declaration", &["plan"], None)?;
    // Kept after the demo (the work directory is removed).
    let guide = target_dir().join("demo-guide.html");
    step(
        "The manual procedure with this app's exact values (for reviewers, or without the API)",
        &["guide", "--format", "html", "--out", &guide.display().to_string()],
        None,
    )?;
    println!("  open {} in a browser to see it", guide.display());

    println!(
        "\n== The ServiceNow admin presses \"Get OAuth Token\" (opens the link; Zoom's sandbox approves as its admin)"
    );
    let page = fetch(&link)?;
    let result = page
        .split("<h1 id=\"result\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or("(no result on the page)");
    println!("  ServiceNow says: {result}");
    if result != "OAuth token received" {
        bail!("the consent in ServiceNow did not complete");
    }

    println!("\n== DEX's scheduled job reads Zoom with ServiceNow's token (the sandbox runs it now)");
    let run: serde_json::Value = serde_json::from_str(&http("POST", &format!("{sn}/_sandbox/dex/run"), None)?)?;
    for st in run["steps"].as_array().into_iter().flatten() {
        println!(
            "  {:<4} {:<66} {}",
            if st["ok"] == true { "ok" } else { "FAIL" },
            st["step"].as_str().unwrap_or(""),
            st["detail"].as_str().unwrap_or("")
        );
    }
    if run["ok"] != true {
        bail!("the DEX job failed");
    }

    // The Secret Token is shown on the app's Features > Access page (here: the sandbox's control API).
    let apps = http("GET", &format!("{base}/_sandbox/apps"), None)?;
    let apps: serde_json::Value = serde_json::from_str(&apps).context("the sandbox's app list")?;
    let dex = apps
        .as_array()
        .and_then(|l| l.iter().find(|a| a["name"] == "DEX for Zoom"))
        .context("the created app is not in the sandbox")?;
    let secret_token = dex["secret_token"].as_str().context("secret token")?.to_string();
    let client_id = dex["client_id"].as_str().context("client id")?.to_string();
    step(
        "Store the Secret Token (copied from the app's Features > Access page)",
        &["secrets", "set", "secret-token", "--from-stdin"],
        Some(&format!("{secret_token}\n")),
    )?;
    step("What is stored (metadata only)", &["secrets", "list"], None)?;
    step(
        "connapp's own grant, as a different Zoom admin than ServiceNow's (one grant per user per app)",
        &["login", "--user-hint", "owner"],
        None,
    )?;
    // DEX's next scheduled run, after connapp's own consent as another admin:
    // ServiceNow's grant survived it, and verify reads the proof from the
    // instance's own outbound HTTP log.
    let again: serde_json::Value = serde_json::from_str(&http("POST", &format!("{sn}/_sandbox/dex/run"), None)?)?;
    if again["ok"] != true {
        bail!("DEX lost its grant after connapp's login");
    }
    println!("\n== DEX's next scheduled run still reads Zoom: ServiceNow's grant survived connapp's own consent");
    step(
        "Prove both ends: every scope with a real API call, drift, redirects, and the ServiceNow chain",
        &["verify"],
        None,
    )?;
    webhook_round_trip(bin, work, base, &client_id)?;
    step(
        "Every app: grant, expiry, scopes granted vs declared",
        &["status"],
        None,
    )?;
    let store_name = match store {
        "vault" => "Vault (here OpenBao)",
        "keyring" => "the OS keyring",
        _ => "the encrypted file store",
    };
    println!(
        r#"
== What happened
  1. connapp.toml declared the Zoom app for DEX (admin-managed, 6 scopes, redirect {redirect})
     and the ServiceNow instance it belongs to; `check` caught a trailing-slash typo offline.
  2. `apply` created the app through Zoom's Marketplace API and put its Client ID and Client
     Secret straight into {store_name} (never shown), then wrote {records} ServiceNow records:
     the OAuth provider (secret written once, write-only), its profile, one record and link per
     scope, the OAuth 2.0 credential and the HTTP connection on DEX's connection alias.
  3. The ServiceNow admin's "Get OAuth Token" gave ServiceNow its own Zoom grant; DEX's job then
     read all six Zoom APIs with it (users, meeting report, meeting QoS, participant QoS,
     Zoom Rooms, room issues), before and after connapp's own login as a different Zoom admin.
  4. `verify` proved every scope with a real call and checked the ServiceNow chain end to end;
     a signed webhook was verified with the Secret Token.
Nothing here needed a Zoom or ServiceNow account; against real ones, only the URLs and
credentials in connapp.toml and the store change."#
    );
    Ok(())
}

/// GET `url` over loopback HTTP following redirects, as a browser would; returns the final body.
pub(crate) fn fetch(url: &str) -> Result<String> {
    let mut url = url.to_string();
    for _ in 0..6 {
        let (head, body) = request("GET", &url, None)?;
        let location = head
            .lines()
            .find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")));
        match location {
            Some(l) => url = l.trim().to_string(),
            None => return Ok(body),
        }
    }
    bail!("too many redirects")
}

/// Starts `connapp webhook serve`, subscribes it with `apply`, has the sandbox
/// send an event, and shows the verified event.
pub(crate) fn webhook_round_trip(bin: &Path, work: &Path, base: &str, client_id: &str) -> Result<()> {
    use std::io::{BufRead, BufReader};
    println!(
        "\n== Receive Zoom webhooks, verified with the Secret Token\n$ connapp webhook serve --listen 127.0.0.1:0"
    );
    serving(
        demo_command(bin, work, &["webhook", "serve", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()),
        "connapp webhook serve",
        Banner::Stderr,
        |banner, serve| {
            print!("{banner}");
            let url = address_in(banner, "the receiver")?;
            let decl = std::fs::read_to_string(work.join("connapp.toml"))?;
            std::fs::write(
                work.join("connapp.toml"),
                format!("{decl}\n[apps.dex-zoom.webhook]\nendpoint_url = \"{url}\"\nevents = [\"meeting.ended\"]\n"),
            )?;
            run_step(
                bin,
                work,
                "Subscribe the receiver to meeting.ended (Zoom validates the endpoint with a challenge)",
                &["apply", "--yes"],
                None,
                0,
            )?;
            let body = format!(
                "{{\"client_id\":\"{client_id}\",\"event\":\"meeting.ended\",\"payload\":{{\"object\":{{\"topic\":\"Weekly IT sync\"}}}}}}"
            );
            http("POST", &format!("{base}/_sandbox/events"), Some(&body))?;
            let (tx, rx) = std::sync::mpsc::channel();
            let out = serve.stdout.take().context("stdout")?;
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(out).read_line(&mut line);
                let _ = tx.send(line);
            });
            let line = rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .context("no event arrived at the receiver within 10 s")?;
            println!(
                "\n== The sandbox sent a signed meeting.ended; the receiver verified it and printed:\n{}",
                line.trim()
            );
            Ok(())
        },
    )
}

/// One HTTP/1.1 request over loopback (the demo's only HTTP client); returns the body.
pub(crate) fn http(method: &str, url: &str, body: Option<&str>) -> Result<String> {
    let (head, body) = request(method, url, body)?;
    if !head.starts_with("HTTP/1.1 2") {
        bail!("{method} {url}: {}", head.lines().next().unwrap_or(""));
    }
    Ok(body)
}

/// One HTTP/1.1 request over loopback; returns (status line and headers, body).
pub(crate) fn request(method: &str, url: &str, body: Option<&str>) -> Result<(String, String)> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .context("the demo only speaks http to loopback")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut s = std::net::TcpStream::connect(authority)?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp.split_once("\r\n\r\n").context("not an HTTP response")?;
    Ok((head.to_string(), body.to_string()))
}

pub(crate) fn demo_command(bin: &Path, work: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .current_dir(work)
        .env("CONNAPP_CONFIG_DIR", work.join("config"))
        .env("CONNAPP_DATA_DIR", work.join("data"))
        .env("CONNAPP_FILE_PASSPHRASE", "demo passphrase (use a real one)")
        .env(
            "BROWSER",
            format!(
                "{} browse %s",
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        )
        .env_remove("CONNAPP_FILE")
        .env_remove("CONNAPP_PLUGIN_PATH");
    c
}

/// Runs one demo step and checks its exit code.
pub(crate) fn run_step(
    bin: &Path,
    work: &Path,
    title: &str,
    args: &[&str],
    stdin: Option<&str>,
    code: i32,
) -> Result<()> {
    println!("\n== {title}\n$ connapp {}", args.join(" "));
    let mut c = demo_command(bin, work, args);
    c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = c.spawn().context("start connapp")?;
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().context("stdin")?.write_all(input.as_bytes())?;
    }
    let status = child.wait()?;
    if status.code() != Some(code) {
        bail!("demo step {title:?} ended with {status}, expected exit code {code}");
    }
    Ok(())
}
