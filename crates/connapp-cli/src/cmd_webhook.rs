//! `connapp webhook verify | challenge | serve`: Zoom webhooks with the app's
//! Secret Token (signature over the raw body, constant-time comparison,
//! timestamp window; the `endpoint.url_validation` answer). The algorithms
//! live in `connapp_core::webhook`; this is the IO around them.

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use connapp_core::webhook::{self, Received, Refused, Rejection};
use connapp_core::{SecretKind, secret_key};
use connapp_plugin_api::zeroize::Zeroizing;
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::{Global, WebhookChallengeArgs, WebhookServeArgs, WebhookVerifyArgs};
use crate::ctx;
use crate::error::{CliError, Exit};

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

/// The largest event body accepted (Zoom's events are a few KiB); a larger one is answered 413.
pub const MAX_EVENT_BYTES: usize = 2 * 1024 * 1024;

/// What `webhook serve` allows a client.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// From accept (or the end of the previous response) to a complete request head.
    header_timeout: Duration,
    /// Connections served at once.
    max_connections: usize,
}

/// Serves `router` over HTTP/1.1 with hyper's own protections: a header-read
/// timeout (hyper starts it whenever it waits for a request head, so it also
/// ends idle kept-alive connections), at most `max_connections` connections
/// (a semaphore permit per connection, taken before `accept`, so excess
/// clients wait in the listen backlog instead of costing memory), and a
/// graceful stop on `shutdown` that lets requests in flight finish.
async fn serve_bounded(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let service = hyper_util::service::TowerToHyperService::new(router);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: not fatal; back off.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed");
            }
            drop(permit);
        });
    }
    drop(listener);
    // Requests in flight get a moment to finish.
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
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
    let (event, parsed) = match webhook::receive(
        &rx.key,
        h(webhook::SIGNATURE_HEADER),
        h(webhook::TIMESTAMP_HEADER),
        &body,
        now,
        rx.window,
    ) {
        Ok(Received::Challenge {
            plain_token,
            encrypted_token,
        }) => {
            let answer = json!({"plainToken": plain_token, "encryptedToken": encrypted_token});
            return (StatusCode::OK, axum::Json(answer)).into_response();
        }
        Ok(Received::Event { event, body }) => (event, body),
        Err(Refused::Signature(r)) => {
            tracing::info!(reason = %r, "refused an event");
            return reject(&r);
        }
        Err(r) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_body", "reason": r.to_string()})),
            )
                .into_response();
        }
    };
    let event = event.as_str();
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
        return Err(CliError::with_code(
            Exit::Usage,
            format!("--path {:?} must start with /", a.path),
        ));
    }
    let forward = match &a.forward {
        Some(u) => {
            connapp_oauth::check_endpoint("forward URL", u)
                .map_err(|e| CliError::with_code(Exit::Usage, e.to_string()))?;
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
            .layer(axum::extract::DefaultBodyLimit::max(MAX_EVENT_BYTES))
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_secs(a.request_timeout),
            ))
            .with_state(rx);
        let limits = Limits {
            header_timeout: Duration::from_secs(a.header_timeout),
            max_connections: usize::try_from(a.max_connections).unwrap_or(usize::MAX),
        };
        serve_bounded(listener, router, limits, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        Ok(())
    })
}
