//! Webhooks, generic over the provider: a [`WebhookScheme`] says how a
//! provider signs its events and validates an endpoint (the platform's
//! client crate implements it); [`receive`] is the decision over one request
//! and [`Receiver`] the server behind `connapp webhook serve` — verified
//! events in, JSON lines (or a forward) out, with the bounds a public
//! endpoint needs.
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
use connapp_plugin_api::zeroize::Zeroizing;
use serde_json::{Value, json};

/// The default accepted clock difference between a provider and connapp, in seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 300;

/// How a provider signs its webhook events and validates an endpoint.
pub trait WebhookScheme: Send + Sync {
    /// The platform whose apps use it (`zoom`).
    fn platform(&self) -> &'static str;
    /// Where the signing key comes from, for the hint when it is not stored.
    fn key_source(&self) -> &'static str;
    /// The request headers a forward passes on.
    fn forwarded_headers(&self) -> &'static [&'static str];
    /// The header naming the delivery, shown in event lines.
    fn request_id_header(&self) -> &'static str;
    /// Checks the signature (in constant time) and that the timestamp lies
    /// within `window` seconds of `now`.
    fn verify(&self, key: &[u8], delivery: &Delivery<'_>, now: u64, window: u64) -> Result<(), Rejection>;
    /// The answer to an endpoint-validation request, when the verified
    /// `body` is one.
    fn validation(&self, key: &[u8], body: &Value) -> Option<Result<Value, Refused>>;
    /// The answer to a validation token given by hand (`connapp webhook challenge`).
    fn challenge(&self, key: &[u8], token: &str) -> Value;
    /// What to do about a refusal.
    fn hint(&self, rejection: &Rejection) -> &'static str;
}

/// One webhook request: its headers and its raw body.
pub struct Delivery<'a> {
    /// The value of the header called (lower case) by the argument.
    pub header: &'a dyn Fn(&str) -> Option<&'a str>,
    /// The body as received: signatures are over these bytes, never a re-serialisation.
    pub body: &'a [u8],
}

/// Why an event was refused. Never contains the key or the expected signature.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A header the scheme needs is missing.
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    /// The timestamp header is not a number of seconds.
    #[error("the {0} header is not a unix time in seconds")]
    BadTimestamp(&'static str),
    /// Older than the window.
    #[error("the event is {age} s old; events older than {window} s are refused (replay protection)")]
    Stale {
        /// Age in seconds.
        age: u64,
        /// The window.
        window: u64,
    },
    /// Newer than the window.
    #[error("the event's timestamp is {ahead} s in the future; more than {window} s is refused (check the clocks)")]
    Future {
        /// Seconds ahead.
        ahead: u64,
        /// The window.
        window: u64,
    },
    /// The signature header is not of the scheme's form.
    #[error("the {header} header is not of the form {form}")]
    Malformed {
        /// The header.
        header: &'static str,
        /// Its form, e.g. `v0=<64 hex digits>`.
        form: &'static str,
    },
    /// The signature does not match.
    #[error("the signature does not match: the body was changed (or re-serialized), or it was signed with another key")]
    Mismatch,
}

impl Rejection {
    /// The timestamp window check every timestamped scheme makes, with
    /// differences, never sums (a timestamp or window near `u64::MAX` must
    /// not overflow).
    pub fn check_window(timestamp: u64, now: u64, window: u64) -> Result<(), Rejection> {
        let age = now.saturating_sub(timestamp);
        if age > window {
            return Err(Rejection::Stale { age, window });
        }
        let ahead = timestamp.saturating_sub(now);
        if ahead > window {
            return Err(Rejection::Future { ahead, window });
        }
        Ok(())
    }
}

/// What a receiver does with one verified request.
#[derive(Clone, Debug, PartialEq)]
pub enum Received {
    /// An endpoint validation: answer 200 with this body.
    Validation(Value),
    /// Any other verified event.
    Event {
        /// The `event` field (empty when the body has none).
        event: String,
        /// The whole body.
        body: Value,
    },
}

/// Why a receiver refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The signature or timestamp (answer 401).
    #[error("{0}")]
    Signature(#[from] Rejection),
    /// Signed, but the body is not JSON (answer 400).
    #[error("the signed body is not JSON")]
    NotJson,
    /// Signed JSON, but a field the scheme needs is missing (answer 400).
    #[error("{0} is missing")]
    Missing(&'static str),
}

/// A receiver's whole decision over one request: the signature first
/// (nothing of an unverified body is parsed), then the body as JSON, then
/// the endpoint validation or the event.
pub fn receive(
    scheme: &dyn WebhookScheme,
    key: &[u8],
    delivery: &Delivery<'_>,
    now: u64,
    window: u64,
) -> Result<Received, Refused> {
    scheme.verify(key, delivery, now, window)?;
    let body: Value = serde_json::from_slice(delivery.body).map_err(|_| Refused::NotJson)?;
    if let Some(answer) = scheme.validation(key, &body) {
        return answer.map(Received::Validation);
    }
    let event = body.get("event").and_then(Value::as_str).unwrap_or("").to_string();
    Ok(Received::Event { event, body })
}

/// Parses saved request headers, `name: value` a line, as `curl -D` writes
/// them (a status line and lines without a colon are skipped; names are
/// lower-cased).
pub fn parse_headers(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| !k.contains(' ') && !k.is_empty())
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// The first header called `name` (lower case) in [`parse_headers`]' output.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The largest event body accepted (providers' events are a few KiB); a larger one is answered 413.
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
            ServeError::Path(_) => "give the path as the provider's event endpoint URL has it, e.g. /events",
            ServeError::Forward(_) => "forward to an https URL, or to http on a loopback address",
        }
    }
}

/// A receiver ready to serve: the options are checked and the forward client built.
pub struct Receiver {
    scheme: &'static dyn WebhookScheme,
    key: Zeroizing<Vec<u8>>,
    options: Options,
    forward: Option<(reqwest::Client, String)>,
    now: fn() -> u64,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("platform", &self.scheme.platform())
            .field("key", &"<redacted>")
            .field("options", &self.options)
            .finish()
    }
}

impl Receiver {
    /// A receiver verifying by `scheme` with `key` (the app's signing key);
    /// `now` is the clock, in Unix seconds, the timestamp window is measured against.
    pub fn new(
        scheme: &'static dyn WebhookScheme,
        key: Zeroizing<Vec<u8>>,
        options: Options,
        now: fn() -> u64,
    ) -> Result<Self, ServeError> {
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
            scheme,
            key,
            options,
            forward,
            now,
        })
    }

    /// Serves on `listener` until `shutdown` completes, then lets requests in
    /// flight finish (up to five seconds). Without a forward URL, each
    /// verified event is sent to `events` as one JSON line; when nobody reads
    /// `events` any more, events are answered 503 (providers retry them).
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
            .route(&self.options.path, axum::routing::post(serve_one))
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

async fn serve_one(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let rx = &shared.rx;
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let now = (rx.now)();
    // A `Delivery` holds a `dyn Fn`, which is not `Sync`: it ends before any await.
    let decided = receive(
        rx.scheme,
        &rx.key,
        &Delivery {
            header: &h,
            body: &body,
        },
        now,
        rx.options.window,
    );
    let (event, parsed) = match decided {
        Ok(Received::Validation(answer)) => return (StatusCode::OK, axum::Json(answer)).into_response(),
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
        for &name in rx
            .scheme
            .forwarded_headers()
            .iter()
            .chain(&[rx.scheme.request_id_header()])
        {
            if let Some(v) = h(name) {
                req = req.header(name, v);
            }
        }
        return match req.send().await {
            Ok(r) if r.status().is_success() => StatusCode::NO_CONTENT.into_response(),
            // A 5xx makes the provider retry later (Zoom: +5, +20, +60 min).
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
        "request_id": h(rx.scheme.request_id_header()),
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
