//! Zoom's scheme against independent vectors, and the engine's receiver
//! serving it on a loopback port, driven over real HTTP.

use std::sync::mpsc;
use std::time::Duration;

use connapp_engine::webhook::{MAX_EVENT_BYTES, Options, Received, Receiver, ServeError};
use connapp_plugin_api::zeroize::Zeroizing;
use serde_json::{Value, json};

use super::*;

/// A request with these signature and timestamp headers, handed to `f`.
fn delivered<R>(sig: Option<&str>, ts: Option<&str>, body: &[u8], f: impl FnOnce(&Delivery<'_>) -> R) -> R {
    let header = |name: &str| match name {
        SIGNATURE_HEADER => sig,
        TIMESTAMP_HEADER => ts,
        _ => None,
    };
    f(&Delivery { header: &header, body })
}

/// Zoom's verification of such a request.
fn verify(
    key: &[u8],
    sig: Option<&str>,
    ts: Option<&str>,
    body: &[u8],
    now: u64,
    window: u64,
) -> Result<(), Rejection> {
    delivered(sig, ts, body, |d| SCHEME.verify(key, d, now, window))
}

/// The engine's decision with Zoom's scheme over such a request, at
/// 1700000000 with the default window.
fn receive(key: &[u8], sig: Option<&str>, ts: Option<&str>, body: &[u8]) -> Result<Received, Refused> {
    delivered(sig, ts, body, |d| {
        connapp_engine::webhook::receive(
            &SCHEME,
            key,
            d,
            1_700_000_000,
            connapp_engine::webhook::DEFAULT_WINDOW_SECS,
        )
    })
}

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
fn receive_answers_the_challenge_and_passes_events() {
    let ts = "1700000000";
    let body = br#"{"event":"endpoint.url_validation","payload":{"plainToken":"plain-abc"}}"#;
    let got = receive(KEY, Some(&sign(KEY, ts, body)), Some(ts), body);
    assert_eq!(
        got,
        Ok(Received::Validation(
            json!({"plainToken": "plain-abc", "encryptedToken": challenge_response(KEY, "plain-abc")})
        ))
    );
    let got = receive(KEY, Some(SIG), Some(ts), BODY).expect("event");
    assert!(matches!(got, Received::Event { ref event, .. } if event == "meeting.ended"));
    let bad = b"not json";
    assert_eq!(
        receive(KEY, Some(&sign(KEY, ts, bad)), Some(ts), bad),
        Err(Refused::NotJson)
    );
    let no_plain = br#"{"event":"endpoint.url_validation","payload":{}}"#;
    assert_eq!(
        receive(KEY, Some(&sign(KEY, ts, no_plain)), Some(ts), no_plain),
        Err(Refused::Missing("payload.plainToken"))
    );
    assert_eq!(
        receive(KEY, Some(SIG), Some(ts), b"{}"),
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
    let v =
        |key: &[u8], sig: Option<&str>, ts: Option<&str>, body: &[u8], now: u64| verify(key, sig, ts, body, now, 300);
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
        Err(Rejection::MissingHeader(SIGNATURE_HEADER))
    );
    assert_eq!(
        v(KEY, Some(SIG), None, BODY, now),
        Err(Rejection::MissingHeader(TIMESTAMP_HEADER))
    );
    assert_eq!(
        v(KEY, Some(SIG), Some("soon"), BODY, now),
        Err(Rejection::BadTimestamp(TIMESTAMP_HEADER))
    );
    assert_eq!(
        v(KEY, Some("v1=00"), Some("1700000000"), BODY, now),
        Err(Rejection::Malformed {
            header: SIGNATURE_HEADER,
            form: "v0=<64 hex digits>"
        })
    );
    assert_eq!(
        v(KEY, Some("v0=zz"), Some("1700000000"), BODY, now),
        Err(Rejection::Malformed {
            header: SIGNATURE_HEADER,
            form: "v0=<64 hex digits>"
        })
    );
    // The timestamp is part of the signed message.
    assert_eq!(
        v(KEY, Some(SIG), Some("1700000001"), BODY, now),
        Err(Rejection::Mismatch)
    );
}

#[test]
fn rejections_never_show_the_secret_or_signature() {
    for r in [
        Rejection::Mismatch,
        Rejection::Malformed {
            header: SIGNATURE_HEADER,
            form: "v0=<64 hex digits>",
        },
        Rejection::MissingHeader(SIGNATURE_HEADER),
    ] {
        let m = r.to_string();
        assert!(!m.contains("secret-token-123") && !m.contains("febe381c"), "{m}");
    }
}

const APP_KEY: &[u8] = b"secret-token-of-the-app";
const NOW: u64 = 1_700_000_000;

fn fixed_clock() -> u64 {
    NOW
}

fn options() -> Options {
    Options {
        path: "/zoom/events".into(),
        window: 300,
        forward: None,
        header_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        max_connections: 4,
    }
}

/// A running receiver: its URL, the event lines and the stop switch.
async fn start(opts: Options) -> (String, mpsc::Receiver<String>, tokio::sync::oneshot::Sender<()>) {
    let rx = Receiver::new(&SCHEME, Zeroizing::new(APP_KEY.to_vec()), opts.clone(), fixed_clock).expect("receiver");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}{}", listener.local_addr().expect("addr"), opts.path);
    let (tx, lines) = mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(rx.serve(listener, tx, async {
        let _ = stopped.await;
    }));
    (url, lines, stop)
}

async fn post(url: &str, ts: &str, signature: Option<&str>, body: &[u8]) -> (u16, Value) {
    let client = connapp_oauth::http_client().expect("client");
    let mut req = client.post(url).header(TIMESTAMP_HEADER, ts).body(body.to_vec());
    if let Some(s) = signature {
        req = req.header(SIGNATURE_HEADER, s);
    }
    let r = req.send().await.expect("send");
    let status = r.status().as_u16();
    let bytes = r.bytes().await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_signed_event_becomes_one_json_line_and_a_forged_one_is_refused() {
    let (url, lines, _stop) = start(options()).await;
    let body = br#"{"event":"meeting.started","payload":{"object":{"id":"1"}}}"#;
    let ts = NOW.to_string();
    let (status, _) = post(&url, &ts, Some(&sign(APP_KEY, &ts, body)), body).await;
    assert_eq!(status, 204);
    let line: Value = serde_json::from_str(&lines.recv_timeout(Duration::from_secs(5)).expect("line")).expect("json");
    assert_eq!(line["event"], "meeting.started");
    assert_eq!(line["received_at"], NOW);
    assert_eq!(line["body"]["payload"]["object"]["id"], "1");

    let (status, answer) = post(&url, &ts, Some(&sign(b"another key", &ts, body)), body).await;
    assert_eq!(status, 401);
    assert_eq!(answer["error"], "invalid_signature");
    let stale = (NOW - 301).to_string();
    let (status, _) = post(&url, &stale, Some(&sign(APP_KEY, &stale, body)), body).await;
    assert_eq!(status, 401, "outside the window");
    let (status, _) = post(&url, &ts, None, body).await;
    assert_eq!(status, 401, "no signature");
    assert!(lines.try_recv().is_err(), "no refused event reaches the lines");
}

#[tokio::test]
async fn the_url_validation_challenge_is_answered_with_the_secret_token() {
    let (url, lines, _stop) = start(options()).await;
    let body = json!({"event": "endpoint.url_validation", "payload": {"plainToken": "abc123"}}).to_string();
    let ts = NOW.to_string();
    let (status, answer) = post(&url, &ts, Some(&sign(APP_KEY, &ts, body.as_bytes())), body.as_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["plainToken"], "abc123");
    assert_eq!(answer["encryptedToken"], challenge_response(APP_KEY, "abc123"));
    assert!(lines.try_recv().is_err(), "a challenge is not an event");
}

#[tokio::test]
async fn a_body_over_the_limit_is_answered_413() {
    let (url, _lines, _stop) = start(options()).await;
    let body = vec![b' '; MAX_EVENT_BYTES + 1];
    let ts = NOW.to_string();
    let (status, _) = post(&url, &ts, Some(&sign(APP_KEY, &ts, &body)), &body).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn without_a_reader_events_are_answered_503_so_zoom_retries() {
    let (url, lines, _stop) = start(options()).await;
    drop(lines);
    let body = br#"{"event":"meeting.ended"}"#;
    let ts = NOW.to_string();
    let (status, _) = post(&url, &ts, Some(&sign(APP_KEY, &ts, body)), body).await;
    assert_eq!(status, 503);
}

#[test]
fn options_are_checked_before_serving() {
    let key = || Zeroizing::new(APP_KEY.to_vec());
    let mut o = options();
    o.path = "zoom/events".into();
    let err = Receiver::new(&SCHEME, key(), o, fixed_clock).expect_err("relative path");
    assert!(matches!(err, ServeError::Path(_)), "{err:?}");
    let mut o = options();
    o.forward = Some("http://example.com/events".into());
    let err = Receiver::new(&SCHEME, key(), o, fixed_clock).expect_err("plain http off loopback");
    assert!(matches!(err, ServeError::Forward(_)), "{err:?}");
    let mut o = options();
    o.forward = Some("http://127.0.0.1:9/events".into());
    let rx = Receiver::new(&SCHEME, key(), o, fixed_clock).expect("loopback http");
    assert!(!format!("{rx:?}").contains("secret-token"));
}
