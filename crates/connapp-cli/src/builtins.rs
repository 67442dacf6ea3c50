//! The plugins linked into this binary. Each enabled plugin crate is
//! referenced here so the linker keeps its `inventory` registration; the
//! end-to-end tests assert the expected built-in set.

/// References every built-in plugin crate selected by cargo features.
pub fn link_all() {
    #[cfg(feature = "builtin-store-file")]
    connapp_store_file::__connapp_link();
    #[cfg(feature = "builtin-store-vault")]
    connapp_store_vault::__connapp_link();
    #[cfg(feature = "builtin-store-keyring")]
    connapp_store_keyring::__connapp_link();
    #[cfg(feature = "builtin-preset-servicenow")]
    connapp_preset_servicenow::__connapp_link();
    #[cfg(feature = "builtin-platform-zoom")]
    connapp_platform_zoom::__connapp_link();
    #[cfg(feature = "builtin-platform-generic")]
    connapp_platform_generic::__connapp_link();
    #[cfg(feature = "builtin-platform-servicenow")]
    connapp_platform_servicenow::__connapp_link();
}
