//! RFC 6749's scope-token grammar, which every platform's scopes follow; a
//! platform's own grammar (Zoom's granular scopes) is its plugin's.

/// Checks RFC 6749 §3.3 scope-token grammar: `1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn is_rfc6749_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6749_tokens() {
        assert!(is_rfc6749_scope_token("openid"));
        assert!(is_rfc6749_scope_token("https://graph.example/.default"));
        assert!(!is_rfc6749_scope_token("a b"));
        assert!(!is_rfc6749_scope_token("a\"b"));
        assert!(!is_rfc6749_scope_token(""));
    }
}
