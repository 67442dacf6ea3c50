//! The declaration parser and validator: any text a user (or a stranger's
//! pull request) puts in `connapp.toml`. Must never panic; every refusal
//! is a located diagnostic.
#![no_main]

use connapp_core::{Catalog, PresetInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let catalog = Catalog {
        presets: vec![PresetInfo {
            name: "servicenow-dex-zoom".into(),
            platform: "zoom".into(),
            // The six DEX scopes open ZOOM_KNOWN_SCOPES.
            scopes: connapp_core::scope::ZOOM_KNOWN_SCOPES[..6].iter().map(|s| s.to_string()).collect(),
        }],
        store_kinds: vec!["file".into(), "vault".into(), "keyring".into()],
        platforms: vec!["zoom".into(), "generic".into()],
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
