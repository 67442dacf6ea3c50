//! Zoom's webhook scheme (`docs/zoom-platform.md` §16) for the engine's
//! receiver and `connapp webhook verify | challenge`, as pure functions over
//! bytes:
//!
//! - `x-zm-signature: v0=<hex HMAC-SHA256(Secret Token, "v0:{timestamp}:{raw body}")>`;
//!   verified over the **raw** body bytes (never a re-serialization) with a
//!   constant-time comparison, and the timestamp must lie within a window.
//! - `endpoint.url_validation`: answer `{"plainToken": p, "encryptedToken":
//!   hex HMAC-SHA256(Secret Token, p)}`.

use connapp_engine::webhook::{Delivery, Refused, Rejection, WebhookScheme};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-zm-signature";
/// The timestamp header (unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-zm-request-timestamp";
/// The header naming one delivery.
pub const REQUEST_ID_HEADER: &str = "x-zm-request-id";

/// Zoom's scheme, for the engine.
pub struct Zoom;

/// The scheme as the engine takes it.
pub static SCHEME: Zoom = Zoom;

impl WebhookScheme for Zoom {
    fn platform(&self) -> &'static str {
        crate::PLATFORM
    }

    fn key_source(&self) -> &'static str {
        "copy it from the app's Features > Access page in the Zoom Marketplace"
    }

    fn forwarded_headers(&self) -> &'static [&'static str] {
        &[SIGNATURE_HEADER, TIMESTAMP_HEADER]
    }

    fn request_id_header(&self) -> &'static str {
        REQUEST_ID_HEADER
    }

    fn verify(&self, key: &[u8], delivery: &Delivery<'_>, now: u64, window: u64) -> Result<(), Rejection> {
        let signature = (delivery.header)(SIGNATURE_HEADER)
            .ok_or(Rejection::MissingHeader(SIGNATURE_HEADER))?
            .trim();
        let ts_text = (delivery.header)(TIMESTAMP_HEADER)
            .ok_or(Rejection::MissingHeader(TIMESTAMP_HEADER))?
            .trim();
        let ts: u64 = ts_text.parse().map_err(|_| Rejection::BadTimestamp(TIMESTAMP_HEADER))?;
        Rejection::check_window(ts, now, window)?;
        let given = signature
            .strip_prefix("v0=")
            .and_then(unhex)
            .filter(|b| b.len() == 32)
            .ok_or(Rejection::Malformed {
                header: SIGNATURE_HEADER,
                form: "v0=<64 hex digits>",
            })?;
        let mut m = mac(key);
        m.update(b"v0:");
        m.update(ts_text.as_bytes());
        m.update(b":");
        m.update(delivery.body);
        // `verify_slice` compares in constant time.
        m.verify_slice(&given).map_err(|_| Rejection::Mismatch)
    }

    fn validation(&self, key: &[u8], body: &Value) -> Option<Result<Value, Refused>> {
        if body.get("event").and_then(Value::as_str) != Some("endpoint.url_validation") {
            return None;
        }
        Some(match body.pointer("/payload/plainToken").and_then(Value::as_str) {
            Some(plain) => Ok(self.challenge(key, plain)),
            None => Err(Refused::Missing("payload.plainToken")),
        })
    }

    fn challenge(&self, key: &[u8], token: &str) -> Value {
        json!({"plainToken": token, "encryptedToken": challenge_response(key, token)})
    }

    fn hint(&self, rejection: &Rejection) -> &'static str {
        match rejection {
            Rejection::Mismatch => {
                "verify the body exactly as received (not re-serialized JSON), with the app's Secret Token (Features > Access), not the Client Secret"
            }
            Rejection::Stale { .. } | Rejection::Future { .. } => {
                "a replayed or delayed event, or a wrong clock; widen the window with --window only if the clocks are known to differ"
            }
            Rejection::MissingHeader(_) => {
                "keep every request header: Zoom sends x-zm-signature and x-zm-request-timestamp with each event"
            }
            Rejection::BadTimestamp(_) | Rejection::Malformed { .. } => "this does not look like a request from Zoom",
        }
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// The `x-zm-signature` value Zoom sends for `body` at `timestamp`.
pub fn sign(secret_token: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut m = mac(secret_token);
    m.update(b"v0:");
    m.update(timestamp.as_bytes());
    m.update(b":");
    m.update(body);
    format!("v0={}", hex(&m.finalize().into_bytes()))
}

/// `encryptedToken` for a URL-validation `plainToken`: lower-case hex HMAC-SHA256.
pub fn challenge_response(secret_token: &[u8], plain_token: &str) -> String {
    let mut m = mac(secret_token);
    m.update(plain_token.as_bytes());
    hex(&m.finalize().into_bytes())
}

#[cfg(test)]
mod tests;
