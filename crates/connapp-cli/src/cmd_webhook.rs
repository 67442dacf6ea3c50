//! `connapp webhook verify | challenge | serve`: an app's webhooks, checked
//! with its signing key by its platform's scheme (signature over the raw
//! body, constant-time comparison, timestamp window; the endpoint-validation
//! answer). The scheme comes from `connapp_clients::webhook_scheme`, the
//! receiver behind `serve` from `connapp_engine::webhook`; this is the glue.

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use connapp_core::SecretKind;
use connapp_engine::secrets::Secrets;
use connapp_engine::webhook::{self as receiver, Delivery, MAX_EVENT_BYTES, WebhookScheme};
use connapp_plugin_api::zeroize::Zeroizing;
use serde::Serialize;
use serde_json::Value;

use crate::cli::{Global, WebhookChallengeArgs, WebhookServeArgs, WebhookVerifyArgs};
use crate::ctx;
use crate::error::{CliError, Exit};

/// An app, its platform's webhook scheme and its signing key from the store.
struct Signing {
    app: String,
    scheme: &'static dyn WebhookScheme,
    key: Zeroizing<Vec<u8>>,
}

fn signing_key(g: &Global, app: Option<&str>) -> Result<Signing, CliError> {
    let (reg, _, decl) = ctx::declared(g)?;
    let app = ctx::app(&decl, app)?;
    let scheme = connapp_clients::webhook_scheme(&app.platform).ok_or_else(|| {
        CliError::with_code(
            Exit::Usage,
            format!(
                "connapp knows no webhook scheme of the platform {:?} (app {})",
                app.platform, app.name
            ),
        )
        .hint(format!(
            "connapp checks the webhooks of apps on {}; name such an app with --app",
            connapp_clients::webhook_platforms().join(", ")
        ))
    })?;
    let app = app.name.clone();
    let (store, plugin) = ctx::open_store(reg, &decl, Some(app.as_str()))?;
    match Secrets::new(&store)
        .get(&app, SecretKind::SecretToken)
        .map_err(|e| connapp_host::plugin_error(plugin, e))?
    {
        Some(r) => Ok(Signing {
            app,
            scheme,
            key: r.value,
        }),
        None => Err(ctx::missing_secret(
            &app,
            SecretKind::SecretToken,
            Some(scheme.key_source()),
        )),
    }
}

#[derive(Serialize)]
struct VerifyJson<'a> {
    valid: bool,
    app: &'a str,
    /// The event's name, when the body is JSON that names one.
    event: Option<String>,
    /// Why the signature was refused; `null` when it is valid.
    reason: Option<String>,
}

pub fn verify(g: &Global, a: WebhookVerifyArgs) -> Result<(), CliError> {
    let read = |what, p: &std::path::Path, limit: usize| {
        connapp_plugin_api::bounded::read_file(what, p, limit as u64)
            .map_err(|e| CliError::with_code(Exit::Usage, e.to_string()))
    };
    let headers = receiver::parse_headers(&String::from_utf8_lossy(&read(
        "the request headers",
        &a.headers,
        MAX_HEADER_BYTES,
    )?));
    let body = read("the webhook body", &a.body, MAX_EVENT_BYTES)?;
    let Signing { app, scheme, key } = signing_key(g, a.app.as_deref())?;
    let header = |name: &str| receiver::header(&headers, name);
    let result = scheme.verify(
        &key,
        &Delivery {
            header: &header,
            body: &body,
        },
        ctx::now(),
        a.window,
    );
    drop(key);
    let event = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("event").and_then(Value::as_str).map(str::to_string));
    if a.json {
        ctx::print_json(
            "webhook verify",
            &VerifyJson {
                valid: result.is_ok(),
                app: &app,
                event: event.clone(),
                reason: result.as_ref().err().map(ToString::to_string),
            },
        )?;
    }
    match result {
        Ok(()) => {
            if !a.json && !g.quiet {
                println!(
                    "valid: signed with the Secret Token of {app}{}",
                    event.map(|e| format!(", event {e}")).unwrap_or_default()
                );
            }
            Ok(())
        }
        Err(r) => Err(CliError::failure(format!("invalid: {r}")).hint(scheme.hint(&r))),
    }
}

pub fn challenge(g: &Global, a: WebhookChallengeArgs) -> Result<(), CliError> {
    let Signing { scheme, key, .. } = signing_key(g, a.app.as_deref())?;
    // The answer the provider expects, verbatim: not a report.
    ctx::print_raw_json(&scheme.challenge(&key, &a.plain_token))
}

/// The most saved request headers `webhook verify` reads (far more than any request has).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Prints event lines; flushes whenever no more are waiting.
fn printer(lines: mpsc::Receiver<String>) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while let Ok(first) = lines.recv() {
        let mut next = Some(first);
        while let Some(l) = next {
            if writeln!(out, "{l}").is_err() {
                return;
            }
            next = lines.try_recv().ok();
        }
        if out.flush().is_err() {
            return;
        }
    }
}

pub fn serve(g: &Global, a: WebhookServeArgs) -> Result<(), CliError> {
    let Signing { app, scheme, key } = signing_key(g, a.app.as_deref())?;
    let options = receiver::Options {
        path: a.path.clone(),
        window: a.window,
        forward: a.forward.clone(),
        header_timeout: Duration::from_secs(a.header_timeout),
        request_timeout: Duration::from_secs(a.request_timeout),
        max_connections: usize::try_from(a.max_connections).unwrap_or(usize::MAX),
    };
    let rx = receiver::Receiver::new(scheme, key, options, ctx::now)
        .map_err(|e| CliError::with_code(Exit::Usage, e.to_string()).hint(e.hint()))?;
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || printer(lines));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .map_err(|e| CliError::failure(format!("cannot listen on {}: {e}", a.listen)))?;
        let addr = listener.local_addr()?;
        if !g.quiet {
            eprintln!(
                "connapp webhook: receiving events for {app} on http://{addr}{} ({}); Ctrl-C stops",
                a.path,
                if a.forward.is_some() {
                    "forwarding verified events"
                } else {
                    "printing verified events as JSON lines"
                }
            );
        }
        rx.serve(listener, tx, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        Ok(())
    })
}
