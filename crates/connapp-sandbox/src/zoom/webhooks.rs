//! Webhook delivery as Zoom does it (`docs/zoom-platform.md` §16): events signed
//! with the app's Secret Token (`x-zm-signature: v0=<hex HMAC-SHA256 of
//! "v0:{timestamp}:{body}">`, `x-zm-request-timestamp`), compact JSON bodies,
//! the `endpoint.url_validation` challenge, a 3-second answer window, and
//! retries after a 5xx or timeout at +5, +20 and +60 minutes (sandbox clock);
//! no retry after a 3xx or 4xx.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::Ctx;
use crate::random::random_hex;

/// Minutes after a failed attempt at which Zoom retries (3 retries).
pub const RETRY_AFTER_MINUTES: [u64; 3] = [5, 20, 60];

/// One delivery attempt, for tests and people to inspect.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Delivery {
    /// The app's client id.
    pub client_id: String,
    /// The endpoint.
    pub endpoint_url: String,
    /// The event name.
    pub event: String,
    /// 0 for the first attempt, 1..=3 for retries.
    pub attempt: u32,
    /// Sandbox time of the attempt.
    pub at: u64,
    /// HTTP status, or None on a transport error or timeout.
    pub status: Option<u16>,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// A retry waiting for its time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingRetry {
    /// When it is due (sandbox clock).
    pub due: u64,
    /// The app.
    pub client_id: String,
    /// The endpoint.
    pub endpoint_url: String,
    /// The event name.
    pub event: String,
    /// The exact body to send again.
    pub body: String,
    /// The attempt number this will be.
    pub attempt: u32,
}

/// Result of an endpoint's URL validation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Validation {
    /// The app.
    pub client_id: String,
    /// The endpoint.
    pub endpoint_url: String,
    /// Whether the endpoint answered the challenge correctly.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Sandbox time.
    pub at: u64,
}

/// `v0=<hex>` over `v0:{timestamp}:{body}` with the Secret Token.
pub fn signature(secret_token: &str, timestamp: u64, body: &str) -> String {
    format!("v0={}", hmac_hex(secret_token, &format!("v0:{timestamp}:{body}")))
}

/// Lower-case hex HMAC-SHA256.
pub fn hmac_hex(key: &str, message: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every reqwest client the sandbox (and its tests) builds starts here: the
/// TLS provider is installed first (reqwest has no provider of its own in
/// connapp), so no caller depends on another having done it.
pub fn client_builder() -> reqwest::ClientBuilder {
    connapp_plugin_api::tls::install_provider();
    reqwest::Client::builder()
}

/// The HTTP client deliveries use: 3-second answer window, no redirects.
pub fn client() -> reqwest::Client {
    client_with_timeout(Duration::from_secs(3))
}

/// The same client with another overall timeout per request.
pub fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    client_builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

async fn post_signed(ctx: &Ctx, secret_token: &str, url: &str, body: &str) -> (Option<u16>, Option<String>, String) {
    let ts = ctx.lock().now();
    let sig = signature(secret_token, ts, body);
    let r = ctx
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("x-zm-signature", sig)
        .header("x-zm-request-timestamp", ts.to_string())
        .header("x-zm-request-id", random_hex(16))
        .header("user-agent", "Zoom Marketplace/1.0a (connapp sandbox)")
        .body(body.to_string())
        .send()
        .await;
    match r {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            (Some(status), None, text)
        }
        Err(e) => {
            let why = if e.is_timeout() {
                "no answer within 3 seconds".to_string()
            } else {
                e.to_string()
            };
            (None, Some(why), String::new())
        }
    }
}

/// Sends one attempt and records it; schedules a retry after a 5xx or timeout.
async fn attempt(ctx: Ctx, client_id: String, endpoint_url: String, event: String, body: String, attempt: u32) {
    let Some(token) = ctx.lock().apps.get(&client_id).map(|a| a.secret_token.clone()) else {
        return;
    };
    // Retries count from when this attempt was made, not from when it ended.
    let at = ctx.lock().now();
    let (status, error, _) = post_signed(&ctx, &token, &endpoint_url, &body).await;
    let mut s = ctx.lock();
    s.deliveries.push(Delivery {
        client_id: client_id.clone(),
        endpoint_url: endpoint_url.clone(),
        event: event.clone(),
        attempt,
        at,
        status,
        error,
    });
    let failed = status.is_none_or(|c| c >= 500);
    if failed && (attempt as usize) < RETRY_AFTER_MINUTES.len() {
        let due = at + RETRY_AFTER_MINUTES[attempt as usize] * 60;
        s.pending_retries.push(PendingRetry {
            due,
            client_id,
            endpoint_url,
            event,
            body,
            attempt: attempt + 1,
        });
    }
}

/// Delivers `event` with `payload` to every subscription of the app that lists it.
pub(crate) fn emit(ctx: &Ctx, client_id: &str, event: &str, payload: Value) -> usize {
    let (targets, account_id, now) = {
        let s = ctx.lock();
        let Some(app) = s.apps.get(client_id) else { return 0 };
        let targets: Vec<String> = app
            .event_subscriptions
            .iter()
            .filter(|sub| sub.events.iter().any(|e| e == event))
            .map(|sub| sub.endpoint_url.clone())
            .collect();
        (targets, s.account_id.clone(), s.now())
    };
    let mut payload = payload;
    if payload.get("account_id").is_none()
        && let Some(obj) = payload.as_object_mut()
    {
        obj.insert("account_id".into(), json!(account_id));
    }
    // Compact JSON: the exact bytes that are signed are the bytes sent.
    let body = json!({"event": event, "event_ts": now * 1000, "payload": payload}).to_string();
    for url in &targets {
        tokio::spawn(attempt(
            ctx.clone(),
            client_id.to_string(),
            url.clone(),
            event.to_string(),
            body.clone(),
            0,
        ));
    }
    targets.len()
}

/// Runs the `endpoint.url_validation` challenge against `url` and records the result.
pub(crate) async fn validate_endpoint(ctx: Ctx, client_id: String, url: String) -> Validation {
    let (token, now) = {
        let s = ctx.lock();
        (
            s.apps
                .get(&client_id)
                .map(|a| a.secret_token.clone())
                .unwrap_or_default(),
            s.now(),
        )
    };
    let plain = random_hex(11);
    let body = json!({"payload": {"plainToken": plain}, "event_ts": now * 1000, "event": "endpoint.url_validation"})
        .to_string();
    let (status, error, text) = post_signed(&ctx, &token, &url, &body).await;
    let expected = hmac_hex(&token, &plain);
    let (ok, error) = match (status, error) {
        (_, Some(e)) => (false, Some(e)),
        (Some(200 | 204), None) => match serde_json::from_str::<Value>(&text) {
            Ok(v) if v["plainToken"] == plain.as_str() && v["encryptedToken"] == expected.as_str() => (true, None),
            Ok(v) if v["plainToken"] != plain.as_str() => {
                (false, Some("the answer's plainToken differs from the challenge".into()))
            }
            Ok(_) => (
                false,
                Some("encryptedToken is not the lower-case hex HMAC-SHA256 of plainToken with the Secret Token".into()),
            ),
            Err(_) => (false, Some("the answer is not JSON".into())),
        },
        (Some(code), None) => (false, Some(format!("the endpoint answered HTTP {code}"))),
        (None, None) => (false, Some("no answer".into())),
    };
    let v = Validation {
        client_id,
        endpoint_url: url,
        ok,
        error,
        at: ctx.lock().now(),
    };
    ctx.lock().validations.push(v.clone());
    v
}

/// Sends every retry that is due. Called by the background ticker and after
/// the control API moves the clock.
pub(crate) fn run_due_retries(ctx: &Ctx) {
    let due: Vec<PendingRetry> = {
        let mut s = ctx.lock();
        let now = s.now();
        let (due, later): (Vec<_>, Vec<_>) = s.pending_retries.drain(..).partition(|r| r.due <= now);
        s.pending_retries = later;
        due
    };
    for r in due {
        tokio::spawn(attempt(
            ctx.clone(),
            r.client_id,
            r.endpoint_url,
            r.event,
            r.body,
            r.attempt,
        ));
    }
}

/// The background ticker: due retries every 200 ms of real time.
pub(crate) async fn ticker(ctx: Ctx) {
    let mut interval = tokio::time::interval(Duration::from_millis(200));
    loop {
        interval.tick().await;
        run_due_retries(&ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_zooms_sample_construction() {
        // HMAC-SHA256("secret", "v0:1700000000:{}") computed independently.
        let sig = signature("secret", 1_700_000_000, "{}");
        assert!(sig.starts_with("v0="));
        assert_eq!(sig.len(), 3 + 64);
        assert_eq!(sig, signature("secret", 1_700_000_000, "{}"));
        assert_ne!(sig, signature("secret", 1_700_000_001, "{}"));
        assert_eq!(
            hmac_hex("key", "The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
