//! Zoom webhook signatures and the URL-validation answer
//! (`docs/zoom-platform.md` §16), as pure functions over bytes.
//!
//! - `x-zm-signature: v0=<hex HMAC-SHA256(Secret Token, "v0:{timestamp}:{raw body}")>`;
//!   verified over the **raw** body bytes (never a re-serialization) with a
//!   constant-time comparison, and the timestamp must lie within a window.
//! - `endpoint.url_validation`: answer `{"plainToken": p, "encryptedToken":
//!   hex HMAC-SHA256(Secret Token, p)}`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-zm-signature";
/// The timestamp header (unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-zm-request-timestamp";
/// The default accepted clock difference, in seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 300;

/// Why an event was refused. Never contains the secret or the expected signature.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No `x-zm-signature` header.
    #[error("the x-zm-signature header is missing")]
    MissingSignature,
    /// No `x-zm-request-timestamp` header.
    #[error("the x-zm-request-timestamp header is missing")]
    MissingTimestamp,
    /// The timestamp is not a number of seconds.
    #[error("the x-zm-request-timestamp header is not a unix time in seconds")]
    BadTimestamp,
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
    /// The header is not `v0=` and 64 hex digits.
    #[error("the x-zm-signature header is not of the form v0=<64 hex digits>")]
    Malformed,
    /// The HMAC does not match.
    #[error(
        "the signature does not match: the body was changed (or re-serialized), or it was signed with another Secret Token (not the Client Secret)"
    )]
    Mismatch,
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

/// Checks an event: both headers present, the timestamp within `window`
/// seconds of `now`, and the signature over the raw `body` (constant time).
pub fn verify(
    secret_token: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: u64,
    window: u64,
) -> Result<(), Rejection> {
    let signature = signature.ok_or(Rejection::MissingSignature)?.trim();
    let ts_text = timestamp.ok_or(Rejection::MissingTimestamp)?.trim();
    let ts: u64 = ts_text.parse().map_err(|_| Rejection::BadTimestamp)?;
    // Differences, never sums: a timestamp or window near u64::MAX must not
    // overflow (found by the webhook fuzz target).
    let age = now.saturating_sub(ts);
    if age > window {
        return Err(Rejection::Stale { age, window });
    }
    let ahead = ts.saturating_sub(now);
    if ahead > window {
        return Err(Rejection::Future { ahead, window });
    }
    let given = signature
        .strip_prefix("v0=")
        .and_then(unhex)
        .filter(|b| b.len() == 32)
        .ok_or(Rejection::Malformed)?;
    let mut m = mac(secret_token);
    m.update(b"v0:");
    m.update(ts_text.as_bytes());
    m.update(b":");
    m.update(body);
    // `verify_slice` compares in constant time.
    m.verify_slice(&given).map_err(|_| Rejection::Mismatch)
}

/// `encryptedToken` for a URL-validation `plainToken`: lower-case hex HMAC-SHA256.
pub fn challenge_response(secret_token: &[u8], plain_token: &str) -> String {
    let mut m = mac(secret_token);
    m.update(plain_token.as_bytes());
    hex(&m.finalize().into_bytes())
}

/// What a receiver does with one verified request.
#[derive(Clone, Debug, PartialEq)]
pub enum Received {
    /// `endpoint.url_validation`: answer 200 with
    /// `{"plainToken": plain_token, "encryptedToken": encrypted_token}`.
    Challenge {
        /// The token Zoom sent.
        plain_token: String,
        /// Its HMAC with the Secret Token.
        encrypted_token: String,
    },
    /// Any other verified event.
    Event {
        /// The `event` field (empty when the body has none).
        event: String,
        /// The whole body.
        body: serde_json::Value,
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
    /// A URL validation without `payload.plainToken` (answer 400).
    #[error("payload.plainToken is missing")]
    MissingPlainToken,
}

/// A webhook receiver's whole decision over one request: [`verify`] first
/// (nothing of an unverified body is parsed), then the body as JSON, then
/// the URL-validation challenge or the event.
pub fn receive(
    secret_token: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: u64,
    window: u64,
) -> Result<Received, Refused> {
    verify(secret_token, signature, timestamp, body, now, window)?;
    let parsed: serde_json::Value = serde_json::from_slice(body).map_err(|_| Refused::NotJson)?;
    let event = parsed
        .get("event")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_string();
    if event == "endpoint.url_validation" {
        let plain = parsed
            .pointer("/payload/plainToken")
            .and_then(serde_json::Value::as_str)
            .ok_or(Refused::MissingPlainToken)?;
        return Ok(Received::Challenge {
            plain_token: plain.to_string(),
            encrypted_token: challenge_response(secret_token, plain),
        });
    }
    Ok(Received::Event { event, body: parsed })
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"secret-token-123";
    const BODY: &[u8] = br#"{"event":"meeting.ended","payload":{}}"#;
    // Computed independently with Python's hmac module.
    const SIG: &str = "v0=febe381c38d8b87965c3aac9c1b11ab76f240906b3d1cf4210425324eef388a2";

    /// Fuzz regression (webhook target): `ts + window` overflowed for a
    /// timestamp near u64::MAX, and `now + window` for a huge `--window`.
    #[test]
    fn extreme_timestamps_and_windows_do_not_overflow() {
        let max = u64::MAX.to_string();
        assert!(matches!(
            verify(KEY, Some(SIG), Some(&max), BODY, 1_700_000_000, 300),
            Err(Rejection::Future { .. })
        ));
        assert!(matches!(
            verify(KEY, Some(SIG), Some("0"), BODY, u64::MAX, 300),
            Err(Rejection::Stale { .. })
        ));
        // A window wider than time itself: only the signature decides.
        assert_eq!(
            verify(KEY, Some(SIG), Some("1700000000"), BODY, u64::MAX, u64::MAX),
            Ok(())
        );
        assert_eq!(
            verify(KEY, Some(SIG), Some(&max), BODY, 0, u64::MAX),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn headers_are_parsed_like_curl_writes_them() {
        let h = parse_headers("HTTP/1.1 200 OK\r\nX-Zm-Signature: v0=ab\r\nx-zm-request-timestamp:  17 \r\n\r\n");
        assert_eq!(header(&h, "x-zm-signature"), Some("v0=ab"));
        assert_eq!(header(&h, "x-zm-request-timestamp"), Some("17"));
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn receive_answers_the_challenge_and_passes_events() {
        let ts = "1700000000";
        let body = br#"{"event":"endpoint.url_validation","payload":{"plainToken":"plain-abc"}}"#;
        let got = receive(KEY, Some(&sign(KEY, ts, body)), Some(ts), body, 1_700_000_000, 300);
        assert_eq!(
            got,
            Ok(Received::Challenge {
                plain_token: "plain-abc".into(),
                encrypted_token: challenge_response(KEY, "plain-abc"),
            })
        );
        let got = receive(KEY, Some(SIG), Some(ts), BODY, 1_700_000_000, 300).expect("event");
        assert!(matches!(got, Received::Event { ref event, .. } if event == "meeting.ended"));
        let bad = b"not json";
        assert_eq!(
            receive(KEY, Some(&sign(KEY, ts, bad)), Some(ts), bad, 1_700_000_000, 300),
            Err(Refused::NotJson)
        );
        let no_plain = br#"{"event":"endpoint.url_validation","payload":{}}"#;
        assert_eq!(
            receive(
                KEY,
                Some(&sign(KEY, ts, no_plain)),
                Some(ts),
                no_plain,
                1_700_000_000,
                300
            ),
            Err(Refused::MissingPlainToken)
        );
        assert_eq!(
            receive(KEY, Some(SIG), Some(ts), b"{}", 1_700_000_000, 300),
            Err(Refused::Signature(Rejection::Mismatch))
        );
    }

    #[test]
    fn signature_and_challenge_match_independent_vectors() {
        assert_eq!(sign(KEY, "1700000000", BODY), SIG);
        assert_eq!(
            challenge_response(KEY, "plain-abc"),
            "c7bc22a37dcb19b47e46b8a9cfa78dc93a2484c477efd954d2ee31d97b23e364"
        );
    }

    #[test]
    fn verify_accepts_good_and_refuses_everything_else() {
        let now = 1_700_000_100;
        let v = |key: &[u8], sig: Option<&str>, ts: Option<&str>, body: &[u8], now: u64| {
            verify(key, sig, ts, body, now, 300)
        };
        assert_eq!(v(KEY, Some(SIG), Some("1700000000"), BODY, now), Ok(()));
        assert_eq!(
            v(
                KEY,
                Some(&SIG.to_uppercase().replace("V0=", "v0=")),
                Some("1700000000"),
                BODY,
                now
            ),
            Ok(())
        );
        assert_eq!(
            v(b"other", Some(SIG), Some("1700000000"), BODY, now),
            Err(Rejection::Mismatch)
        );
        let altered = br#"{"event":"meeting.ended","payload":{"x":1}}"#;
        assert_eq!(
            v(KEY, Some(SIG), Some("1700000000"), altered, now),
            Err(Rejection::Mismatch)
        );
        let reserialized = br#"{"event": "meeting.ended", "payload": {}}"#;
        assert_eq!(
            v(KEY, Some(SIG), Some("1700000000"), reserialized, now),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            v(KEY, Some(SIG), Some("1700000000"), BODY, now + 1000),
            Err(Rejection::Stale { age: 1100, window: 300 })
        );
        assert_eq!(
            v(KEY, Some(SIG), Some("1700000000"), BODY, 1_699_999_000),
            Err(Rejection::Future {
                ahead: 1000,
                window: 300
            })
        );
        assert_eq!(
            v(KEY, None, Some("1700000000"), BODY, now),
            Err(Rejection::MissingSignature)
        );
        assert_eq!(v(KEY, Some(SIG), None, BODY, now), Err(Rejection::MissingTimestamp));
        assert_eq!(v(KEY, Some(SIG), Some("soon"), BODY, now), Err(Rejection::BadTimestamp));
        assert_eq!(
            v(KEY, Some("v1=00"), Some("1700000000"), BODY, now),
            Err(Rejection::Malformed)
        );
        assert_eq!(
            v(KEY, Some("v0=zz"), Some("1700000000"), BODY, now),
            Err(Rejection::Malformed)
        );
        // The timestamp is part of the signed message.
        assert_eq!(
            v(KEY, Some(SIG), Some("1700000001"), BODY, now),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn rejections_never_show_the_secret_or_signature() {
        for r in [Rejection::Mismatch, Rejection::Malformed, Rejection::MissingSignature] {
            let m = r.to_string();
            assert!(!m.contains("secret-token-123") && !m.contains("febe381c"), "{m}");
        }
    }
}
