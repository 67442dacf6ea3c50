//! `connapp webhook verify | challenge | serve`: Zoom webhooks with the app's
//! Secret Token (signature over the raw body, constant-time comparison,
//! timestamp window; the `endpoint.url_validation` answer). The algorithms
//! live in `connapp_core::webhook`, the receiver behind `serve` in
//! `connapp_engine::webhook`; this is the glue around them.

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use connapp_core::SecretKind;
use connapp_core::webhook::{self, Rejection};
use connapp_engine::secrets::Secrets;
use connapp_engine::webhook::{self as receiver, MAX_EVENT_BYTES};
use connapp_plugin_api::zeroize::Zeroizing;
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::{Global, WebhookChallengeArgs, WebhookServeArgs, WebhookVerifyArgs};
use crate::ctx;
use crate::error::{CliError, Exit};

/// The app's Secret Token from the store.
fn secret_token(g: &Global, app: Option<&str>) -> Result<(String, Zeroizing<Vec<u8>>), CliError> {
    let (reg, _, decl) = ctx::declared(g)?;
    let app = ctx::app(&decl, app)?.name.clone();
    let (store, plugin) = ctx::open_store(&reg, &decl)?;
    match Secrets::new(&store)
        .get(&app, SecretKind::SecretToken)
        .map_err(|e| connapp_host::plugin_error(plugin, e))?
    {
        Some(r) => Ok((app, r.value)),
        None => Err(ctx::missing_secret(
            &app,
            SecretKind::SecretToken,
            Some("copy it from the app's Features > Access page in the Zoom Marketplace"),
        )),
    }
}

#[derive(Serialize)]
struct VerifyJson<'a> {
    valid: bool,
    app: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

pub fn verify(g: &Global, a: WebhookVerifyArgs) -> Result<(), CliError> {
    let read = |what, p: &std::path::Path, limit: usize| {
        connapp_plugin_api::bounded::read_file(what, p, limit as u64)
            .map_err(|e| CliError::with_code(Exit::Usage, e.to_string()))
    };
    let headers = webhook::parse_headers(&String::from_utf8_lossy(&read(
        "the request headers",
        &a.headers,
        MAX_HEADER_BYTES,
    )?));
    let body = read("the webhook body", &a.body, MAX_EVENT_BYTES)?;
    let (app, key) = secret_token(g, a.app.as_deref())?;
    let result = webhook::verify(
        &key,
        webhook::header(&headers, webhook::SIGNATURE_HEADER),
        webhook::header(&headers, webhook::TIMESTAMP_HEADER),
        &body,
        ctx::now(),
        a.window,
    );
    drop(key);
    let event = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("event").and_then(Value::as_str).map(str::to_string));
    if a.json {
        ctx::print_json(&VerifyJson {
            valid: result.is_ok(),
            app: &app,
            event: event.clone(),
            reason: result.as_ref().err().map(ToString::to_string),
        })?;
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
        Err(r) => Err(CliError::failure(format!("invalid: {r}")).hint(hint(&r))),
    }
}

fn hint(r: &Rejection) -> &'static str {
    match r {
        Rejection::Mismatch => {
            "verify the body exactly as received (not re-serialized JSON), with the app's Secret Token (Features > Access), not the Client Secret"
        }
        Rejection::Stale { .. } | Rejection::Future { .. } => {
            "a replayed or delayed event, or a wrong clock; widen the window with --window only if the clocks are known to differ"
        }
        Rejection::MissingSignature | Rejection::MissingTimestamp => {
            "keep every request header: Zoom sends x-zm-signature and x-zm-request-timestamp with each event"
        }
        Rejection::BadTimestamp | Rejection::Malformed => "this does not look like a request from Zoom",
    }
}

pub fn challenge(g: &Global, a: WebhookChallengeArgs) -> Result<(), CliError> {
    let (_, key) = secret_token(g, a.app.as_deref())?;
    let answer = json!({
        "plainToken": a.plain_token,
        "encryptedToken": webhook::challenge_response(&key, &a.plain_token),
    });
    ctx::print_json(&answer)
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
    let (app, key) = secret_token(g, a.app.as_deref())?;
    let options = receiver::Options {
        path: a.path.clone(),
        window: a.window,
        forward: a.forward.clone(),
        header_timeout: Duration::from_secs(a.header_timeout),
        request_timeout: Duration::from_secs(a.request_timeout),
        max_connections: usize::try_from(a.max_connections).unwrap_or(usize::MAX),
    };
    let rx = receiver::Receiver::new(key, options, ctx::now)
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
