//! The generic parts; the receiver is served with a real scheme (Zoom's) in
//! `connapp-zoom`'s tests, which depend on this crate.

use super::*;

#[test]
fn headers_are_parsed_like_curl_writes_them() {
    let h = parse_headers("HTTP/1.1 200 OK\r\nX-Zm-Signature: v0=ab\r\nx-zm-request-timestamp:  17 \r\n\r\n");
    assert_eq!(header(&h, "x-zm-signature"), Some("v0=ab"));
    assert_eq!(header(&h, "x-zm-request-timestamp"), Some("17"));
    assert_eq!(h.len(), 2);
}

/// Fuzz regression (webhook target): `ts + window` overflowed for a
/// timestamp near u64::MAX, and `now + window` for a huge `--window`.
#[test]
fn the_window_check_never_overflows() {
    let max = u64::MAX;
    assert!(matches!(
        Rejection::check_window(max, 1_700_000_000, 300),
        Err(Rejection::Future { .. })
    ));
    assert!(matches!(
        Rejection::check_window(0, max, 300),
        Err(Rejection::Stale { .. })
    ));
    assert_eq!(Rejection::check_window(1_700_000_000, max, max), Ok(()));
    assert_eq!(Rejection::check_window(max, 0, max), Ok(()));
    assert_eq!(
        Rejection::check_window(1_700_000_000, 1_700_000_301, 300),
        Err(Rejection::Stale { age: 301, window: 300 })
    );
}
