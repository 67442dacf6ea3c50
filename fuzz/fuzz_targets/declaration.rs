//! The declaration parser and validator: any text a user (or a stranger's
//! pull request) puts in `connapp.toml`. Must never panic; every refusal
//! is a located diagnostic.
#![no_main]

use connapp_core::{Catalog, PlatformRules, PresetInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let catalog = Catalog {
        presets: vec![PresetInfo {
            name: "servicenow-dex-zoom".into(),
            platform: "zoom".into(),
            scopes: vec!["report:read:user:admin".into(), "user:read:user:admin".into()],
        }],
        store_kinds: vec!["file".into(), "vault".into(), "keyring".into()],
        // Every rule a platform can switch on, and one whose endpoints come
        // from the declaration.
        platforms: vec![
            PlatformRules {
                requires_usage: true,
                account_grant: true,
                management_scope_prefix: "marketplace:".into(),
                display_name_max_chars: 49,
                ..PlatformRules::named("zoom")
            },
            PlatformRules {
                endpoints_from_declaration: true,
                ..PlatformRules::named("generic")
            },
        ],
    };
    let report = connapp_core::check("connapp.toml", text, &catalog);
    // Diagnostics render (they quote the source: spans must be in range).
    for d in &report.diagnostics {
        let _ = d.to_string();
    }
    if let Some(decl) = &report.declaration {
        let _ = decl.app(None);
    }
});
