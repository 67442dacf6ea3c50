//! connapp platform plugin `platform-generic`: any standards-following OAuth
//! 2.0 provider. Its endpoints, client authentication and PKCE setting come
//! from the declaration's `[apps.NAME.oauth]` table.
//!
//! What it is **not**: a discovery client (no `.well-known` lookups).

use connapp_plugin_api::{Platform, Plugin, PluginInfo, PluginKind, Provided, export_plugin, plugin_info};

/// A generic OAuth 2.0 provider: everything from the declaration.
pub fn generic() -> Platform {
    Platform {
        name: "generic".into(),
        description: "any OAuth 2.0 provider; endpoints from the declaration".into(),
        client_auth: "basic".into(),
        pkce: true,
        send_scopes: true,
        endpoints_from_declaration: true,
        ..Platform::default()
    }
}

/// The plugin: provides the platform `generic`.
pub struct GenericPlatform;

impl Plugin for GenericPlatform {
    fn info() -> PluginInfo {
        plugin_info![Provided::named(PluginKind::PLATFORM, "generic")]
    }
    fn platforms() -> Vec<Platform> {
        vec![generic()]
    }
}

export_plugin!(GenericPlatform);
