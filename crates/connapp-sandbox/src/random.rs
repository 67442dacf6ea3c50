//! Random ids, secrets and tokens, shared by every part of the sandbox (the
//! one module both the state and the webhook sender use, so neither imports
//! the other for it).

/// Random bytes as lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // getrandom only fails without an OS random source, where nothing here can work.
    getrandom::fill(&mut b).expect("system randomness");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Random alphanumeric string (Zoom-style ids and secrets).
pub fn random_alnum(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut b = vec![0u8; len];
    getrandom::fill(&mut b).expect("system randomness");
    b.iter()
        .map(|x| ALPHABET[(*x as usize) % ALPHABET.len()] as char)
        .collect()
}
