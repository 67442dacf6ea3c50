//! What a token endpoint (or anything posing as one) answers: the status,
//! the Content-Type and the body, through the oauth2 crate's response
//! handling and connapp's mapping; and a stored token record (what the
//! store and the journal hand back). Never a panic, and no error message
//! repeats a token.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    status: u16,
    json_type: bool,
    content_type: &'a str,
    body: &'a [u8],
}

fuzz_target!(|i: Input<'_>| {
    let ct = if i.json_type {
        Some("application/json")
    } else {
        Some(i.content_type)
    };
    match connapp_oauth::flows::parse_token_answer(i.status, ct, i.body) {
        Ok(set) => {
            let _ = format!("{set:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(rec) = connapp_oauth::record::TokenRecord::from_bytes(i.body) {
        let _ = rec.to_bytes();
        let _ = rec.is_fresh(i.status.into(), 60);
    }
});
