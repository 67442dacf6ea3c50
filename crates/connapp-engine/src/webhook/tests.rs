//! The receiver served on a loopback port, driven over real HTTP.

use std::sync::mpsc;
use std::time::Duration;

use connapp_core::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, challenge_response, sign};
use connapp_plugin_api::zeroize::Zeroizing;
use serde_json::{Value, json};

use super::*;

const KEY: &[u8] = b"secret-token-of-the-app";
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
    let rx = Receiver::new(Zeroizing::new(KEY.to_vec()), opts.clone(), fixed_clock).expect("receiver");
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
    let (status, _) = post(&url, &ts, Some(&sign(KEY, &ts, body)), body).await;
    assert_eq!(status, 204);
    let line: Value = serde_json::from_str(&lines.recv_timeout(Duration::from_secs(5)).expect("line")).expect("json");
    assert_eq!(line["event"], "meeting.started");
    assert_eq!(line["received_at"], NOW);
    assert_eq!(line["body"]["payload"]["object"]["id"], "1");

    let (status, answer) = post(&url, &ts, Some(&sign(b"another key", &ts, body)), body).await;
    assert_eq!(status, 401);
    assert_eq!(answer["error"], "invalid_signature");
    let stale = (NOW - 301).to_string();
    let (status, _) = post(&url, &stale, Some(&sign(KEY, &stale, body)), body).await;
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
    let (status, answer) = post(&url, &ts, Some(&sign(KEY, &ts, body.as_bytes())), body.as_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["plainToken"], "abc123");
    assert_eq!(answer["encryptedToken"], challenge_response(KEY, "abc123"));
    assert!(lines.try_recv().is_err(), "a challenge is not an event");
}

#[tokio::test]
async fn a_body_over_the_limit_is_answered_413() {
    let (url, _lines, _stop) = start(options()).await;
    let body = vec![b' '; MAX_EVENT_BYTES + 1];
    let ts = NOW.to_string();
    let (status, _) = post(&url, &ts, Some(&sign(KEY, &ts, &body)), &body).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn without_a_reader_events_are_answered_503_so_zoom_retries() {
    let (url, lines, _stop) = start(options()).await;
    drop(lines);
    let body = br#"{"event":"meeting.ended"}"#;
    let ts = NOW.to_string();
    let (status, _) = post(&url, &ts, Some(&sign(KEY, &ts, body)), body).await;
    assert_eq!(status, 503);
}

#[test]
fn options_are_checked_before_serving() {
    let key = || Zeroizing::new(KEY.to_vec());
    let mut o = options();
    o.path = "zoom/events".into();
    let err = Receiver::new(key(), o, fixed_clock).expect_err("relative path");
    assert!(matches!(err, ServeError::Path(_)), "{err:?}");
    let mut o = options();
    o.forward = Some("http://example.com/events".into());
    let err = Receiver::new(key(), o, fixed_clock).expect_err("plain http off loopback");
    assert!(matches!(err, ServeError::Forward(_)), "{err:?}");
    let mut o = options();
    o.forward = Some("http://127.0.0.1:9/events".into());
    let rx = Receiver::new(key(), o, fixed_clock).expect("loopback http");
    assert!(!format!("{rx:?}").contains("secret-token"));
}
