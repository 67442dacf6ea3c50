//! `connapp webhook verify | challenge | serve`: Zoom webhooks with the app's
//! Secret Token (signature over the raw body, constant-time comparison,
//! timestamp window; the `endpoint.url_validation` answer). The algorithms
//! live in `connapp_core::webhook`; this is the IO around them.

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use connapp_core::webhook::{self, Rejection};
use connapp_core::{SecretKind, secret_key};
use connapp_plugin_api::zeroize::Zeroizing;
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::{Global, WebhookChallengeArgs, WebhookServeArgs, WebhookVerifyArgs};
use crate::ctx;
use crate::error::CliError;

/// The app's Secret Token from the store.
fn secret_token(g: &Global, app: Option<&str>) -> Result<(String, Zeroizing<Vec<u8>>), CliError> {
    let reg = ctx::registry();
    ctx::warn_failures(&reg, g);
    let (_, decl) = ctx::load_declaration(g, &reg)?;
    let app = ctx::app(&decl, app)?.name.clone();
    let (store, plugin) = ctx::open_store(&reg, &decl)?;
    match store
        .get(&secret_key(&app, SecretKind::SecretToken))
        .map_err(|e| connapp_host::plugin_error(plugin, e))?
    {
        Some(r) => Ok((app, r.value)),
        None => Err(CliError::failure(format!("no Secret Token is stored for {app}")).hint(format!(
            "copy it from the app's Features > Access page in the Zoom Marketplace and run `connapp secrets set secret-token --app {app}`"
        ))),
    }
}

/// Parses `name: value` lines (curl -D style; a status line is skipped).
fn parse_headers(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| !k.contains(' ') && !k.is_empty())
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
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
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| CliError::with_code(2, format!("cannot read {}: {e}", p.display())))
    };
    let headers = parse_headers(&String::from_utf8_lossy(&read(&a.headers)?));
    let body = read(&a.body)?;
    let (app, key) = secret_token(g, a.app.as_deref())?;
    let result = webhook::verify(
        &key,
        header(&headers, webhook::SIGNATURE_HEADER),
        header(&headers, webhook::TIMESTAMP_HEADER),
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

struct Receiver {
    key: Zeroizing<Vec<u8>>,
    window: u64,
    forward: Option<(reqwest::Client, String)>,
    lines: mpsc::Sender<String>,
}

fn reject(r: &Rejection) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": "invalid_signature", "reason": r.to_string()})),
    )
        .into_response()
}

async fn receive(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let now = ctx::now();
    if let Err(r) = webhook::verify(
        &rx.key,
        h(webhook::SIGNATURE_HEADER),
        h(webhook::TIMESTAMP_HEADER),
        &body,
        now,
        rx.window,
    ) {
        tracing::info!(reason = %r, "refused an event");
        return reject(&r);
    }
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_body", "reason": "the signed body is not JSON"})),
            )
                .into_response();
        }
    };
    let event = parsed.get("event").and_then(Value::as_str).unwrap_or("");
    if event == "endpoint.url_validation" {
        let Some(plain) = parsed.pointer("/payload/plainToken").and_then(Value::as_str) else {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_body", "reason": "payload.plainToken is missing"})),
            )
                .into_response();
        };
        let answer = json!({"plainToken": plain, "encryptedToken": webhook::challenge_response(&rx.key, plain)});
        return (StatusCode::OK, axum::Json(answer)).into_response();
    }
    if let Some((client, url)) = &rx.forward {
        let mut req = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone());
        for name in [webhook::SIGNATURE_HEADER, webhook::TIMESTAMP_HEADER, "x-zm-request-id"] {
            if let Some(v) = h(name) {
                req = req.header(name, v);
            }
        }
        return match req.send().await {
            Ok(r) if r.status().is_success() => StatusCode::NO_CONTENT.into_response(),
            // A 5xx makes Zoom retry later (+5, +20, +60 min).
            Ok(r) => {
                tracing::warn!(status = r.status().as_u16(), "the forward target refused an event");
                StatusCode::BAD_GATEWAY.into_response()
            }
            Err(e) => {
                tracing::warn!(error = %e.without_url(), "cannot forward an event");
                StatusCode::BAD_GATEWAY.into_response()
            }
        };
    }
    let line = json!({
        "received_at": now,
        "event": event,
        "request_id": h("x-zm-request-id"),
        "body": parsed,
    })
    .to_string();
    if rx.lines.send(line).is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

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
    if !a.path.starts_with('/') {
        return Err(CliError::with_code(2, format!("--path {:?} must start with /", a.path)));
    }
    let forward = match &a.forward {
        Some(u) => {
            connapp_oauth::check_endpoint("forward URL", u).map_err(|e| CliError::with_code(2, e.to_string()))?;
            Some((
                connapp_oauth::http_client().map_err(|e| CliError::failure(e.to_string()))?,
                u.clone(),
            ))
        }
        None => None,
    };
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || printer(lines));
    let rx = Arc::new(Receiver {
        key,
        window: a.window,
        forward,
        lines: tx,
    });
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
        let router = axum::Router::new()
            .route(&a.path, axum::routing::post(receive))
            .with_state(rx);
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| CliError::failure(format!("the receiver stopped: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_parsed_like_curl_writes_them() {
        let h = parse_headers("HTTP/1.1 200 OK\r\nX-Zm-Signature: v0=ab\r\nx-zm-request-timestamp:  17 \r\n\r\n");
        assert_eq!(header(&h, "x-zm-signature"), Some("v0=ab"));
        assert_eq!(header(&h, "x-zm-request-timestamp"), Some("17"));
        assert_eq!(h.len(), 2);
    }
}
