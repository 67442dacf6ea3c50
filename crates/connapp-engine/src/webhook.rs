//! The webhook receiver behind `connapp webhook serve`: verified events in,
//! JSON lines (or a forward) out, with the bounds a public endpoint needs.
//! The signature algorithm and the challenge answer are the core's
//! (`connapp_core::webhook`); this is the server around them.
//!
//! Bounds: hyper's own header-read timeout (it also ends idle kept-alive
//! connections), a request timeout, a body limit ([`MAX_EVENT_BYTES`], answered
//! 413) and a limit on connections served at once (excess clients wait in the
//! listen backlog instead of costing memory).

use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use connapp_core::webhook::{self, Received, Refused, Rejection};
use connapp_plugin_api::zeroize::Zeroizing;
use serde_json::json;

/// The largest event body accepted (Zoom's events are a few KiB); a larger one is answered 413.
pub const MAX_EVENT_BYTES: usize = 2 * 1024 * 1024;

/// How the receiver runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The path events are posted to (starts with `/`).
    pub path: String,
    /// The accepted age of an event's timestamp, in seconds.
    pub window: u64,
    /// Where verified events go instead of the event lines (an https URL, or
    /// http on a loopback address).
    pub forward: Option<String>,
    /// From accept (or the end of the previous response) to a complete request head.
    pub header_timeout: Duration,
    /// From a complete request head to the answer.
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Why the receiver cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The path is not absolute.
    #[error("the webhook path {0:?} must start with /")]
    Path(String),
    /// The forward URL breaks the endpoint policy, or no HTTP client could be built.
    #[error(transparent)]
    Forward(#[from] connapp_oauth::EdgeError),
}

impl ServeError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            ServeError::Path(_) => "give the path as Zoom's Event notification endpoint URL has it, e.g. /zoom/events",
            ServeError::Forward(_) => "forward to an https URL, or to http on a loopback address",
        }
    }
}

/// A receiver ready to serve: the options are checked and the forward client built.
pub struct Receiver {
    key: Zeroizing<Vec<u8>>,
    options: Options,
    forward: Option<(reqwest::Client, String)>,
    now: fn() -> u64,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("key", &"<redacted>")
            .field("options", &self.options)
            .finish()
    }
}

impl Receiver {
    /// A receiver verifying with `key` (the app's Secret Token); `now` is the
    /// clock, in Unix seconds, the timestamp window is measured against.
    pub fn new(key: Zeroizing<Vec<u8>>, options: Options, now: fn() -> u64) -> Result<Self, ServeError> {
        if !options.path.starts_with('/') {
            return Err(ServeError::Path(options.path));
        }
        let forward = match &options.forward {
            Some(u) => {
                connapp_oauth::check_endpoint("forward URL", u)?;
                Some((connapp_oauth::http_client()?, u.clone()))
            }
            None => None,
        };
        Ok(Receiver {
            key,
            options,
            forward,
            now,
        })
    }

    /// Serves on `listener` until `shutdown` completes, then lets requests in
    /// flight finish (up to five seconds). Without a forward URL, each
    /// verified event is sent to `events` as one JSON line; when nobody reads
    /// `events` any more, events are answered 503 (Zoom retries them).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        events: mpsc::Sender<String>,
        shutdown: impl Future<Output = ()>,
    ) {
        let header_timeout = self.options.header_timeout;
        // A semaphore with no permit would never accept a connection.
        let max_connections = self.options.max_connections.max(1);
        let router = axum::Router::new()
            .route(&self.options.path, axum::routing::post(receive))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_EVENT_BYTES))
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                self.options.request_timeout,
            ))
            .with_state(Arc::new(Shared { rx: self, events }));
        serve_bounded(listener, router, header_timeout, max_connections, shutdown).await;
    }
}

struct Shared {
    rx: Receiver,
    events: mpsc::Sender<String>,
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
    header_timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
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

fn reject(r: &Rejection) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": "invalid_signature", "reason": r.to_string()})),
    )
        .into_response()
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let rx = &shared.rx;
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let now = (rx.now)();
    let (event, parsed) = match webhook::receive(
        &rx.key,
        h(webhook::SIGNATURE_HEADER),
        h(webhook::TIMESTAMP_HEADER),
        &body,
        now,
        rx.options.window,
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
    if shared.events.send(line).is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests;
