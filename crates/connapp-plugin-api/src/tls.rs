//! The one way connapp code gets a TLS provider (feature `tls`).
//!
//! rustls 0.23 needs a process-wide `CryptoProvider` before any client
//! config is built, and reqwest built with `rustls-no-provider` (as connapp
//! builds it) panics without one. Every copy of rustls has its own default:
//! the host binary has one, and so does each dynamic plugin. So every place
//! that builds an HTTP client — in the host, in a plugin, in a test — calls
//! [`install_provider`] first, itself, instead of relying on some other code
//! having run before it.

/// Installs rustls' ring provider as this rustls copy's process default, if
/// none is installed yet. Idempotent and cheap after the first call; safe
/// from any thread.
pub fn install_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means a provider is already installed (by someone else): fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_provider_is_installed_afterwards_and_twice_is_harmless() {
        super::install_provider();
        super::install_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
