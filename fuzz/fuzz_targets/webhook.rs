//! Webhook handling: saved headers as `webhook verify` reads them, the
//! signature and timestamp checks, and the body (JSON, URL validation) as
//! `webhook serve` handles it. Half the inputs carry a correct signature so
//! the fuzzer reaches the body handling behind the HMAC.
#![no_main]

use arbitrary::Arbitrary;
use connapp_engine::webhook::{self, Delivery, Refused};
use connapp_zoom::webhook::{SCHEME, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    key: &'a [u8],
    headers: &'a str,
    timestamp: Option<&'a str>,
    sign_it: bool,
    now: u64,
    window: u64,
    body: &'a [u8],
}

fuzz_target!(|i: Input<'_>| {
    let parsed = webhook::parse_headers(i.headers);
    let sig = webhook::header(&parsed, SIGNATURE_HEADER).map(str::to_string);
    let ts = i
        .timestamp
        .map(str::to_string)
        .or_else(|| webhook::header(&parsed, TIMESTAMP_HEADER).map(str::to_string));
    let sig = match (&ts, i.sign_it) {
        (Some(t), true) => Some(sign(i.key, t.trim(), i.body)),
        _ => sig,
    };
    let header = |name: &str| match name {
        SIGNATURE_HEADER => sig.as_deref(),
        TIMESTAMP_HEADER => ts.as_deref(),
        other => webhook::header(&parsed, other),
    };
    let delivery = Delivery {
        header: &header,
        body: i.body,
    };
    let got = webhook::receive(&SCHEME, i.key, &delivery, i.now, i.window);
    if let Err(e) = &got {
        let _ = e.to_string();
    }
    // A correctly signed, fresh event is never refused for its signature.
    if let (Some(t), true) = (&ts, i.sign_it) {
        if t.trim().parse::<u64>() == Ok(i.now) {
            assert!(!matches!(got, Err(Refused::Signature(_))), "{got:?}");
        }
    }
});
