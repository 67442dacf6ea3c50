//! connapp platform plugin `platform-zoom`: Zoom's OAuth endpoints and habits
//! (`zoom-platform.md` §2–§7): Basic client authentication, PKCE for
//! connapp's own logins, no `scope` parameter at authorize (the app's
//! configured scopes are granted), the account's API base in `api_url`.
//!
//! What it is **not**: an HTTP client. It describes; the host executes.

use connapp_plugin_api::{Platform, Plugin, PluginInfo, PluginKind, Provided, export_plugin};

/// Zoom as connapp talks to it.
pub fn zoom() -> Platform {
    Platform {
        name: "zoom".into(),
        description: "Zoom (General and Server-to-Server OAuth apps)".into(),
        authorize_url: "https://zoom.us/oauth/authorize".into(),
        token_url: "https://zoom.us/oauth/token".into(),
        revoke_url: "https://zoom.us/oauth/revoke".into(),
        api_base: "https://api.zoom.us".into(),
        client_auth: "basic".into(),
        pkce: true,
        send_scopes: false,
        api_base_field: "api_url".into(),
        endpoints_from_declaration: false,
    }
}

/// The plugin: provides the platform `zoom`.
pub struct ZoomPlatform;

impl Plugin for ZoomPlatform {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "platform-zoom".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Zoom's OAuth endpoints, client authentication and token-response quirks".into(),
            api_version: String::new(),
            provides: vec![Provided {
                kind: PluginKind::PLATFORM,
                name: "zoom".into(),
                store_capabilities: None,
            }],
        }
    }
    fn platforms() -> Vec<Platform> {
        vec![zoom()]
    }
}

export_plugin!(ZoomPlatform);
