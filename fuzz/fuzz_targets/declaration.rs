//! The declaration parser and validator: any text a user (or a stranger's
//! pull request) puts in `connapp.toml`. Must never panic; every refusal
//! is a located diagnostic.
//!
//! The catalog is the one `connapp check` builds: the engine's `catalog()`
//! over the built-in platform, preset and store plugins linked in below, so
//! a new field or rule reaches the fuzzer without a second hand-written copy.
#![no_main]

use std::sync::OnceLock;

use connapp_core::Catalog;
use connapp_host::Registry;
use libfuzzer_sys::fuzz_target;

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        // Referenced so the linker keeps their `inventory` registrations.
        connapp_platform_generic::__connapp_link();
        connapp_platform_servicenow::__connapp_link();
        connapp_platform_zoom::__connapp_link();
        connapp_preset_servicenow::__connapp_link();
        let mut c = connapp_engine::platform::catalog(&Registry::builtins())
            .expect("the built-in plugins describe their platforms");
        // The store kinds connapp ships; the store plugins themselves add
        // nothing the parser sees but their names.
        c.store_kinds = vec!["file".into(), "vault".into(), "keyring".into()];
        c
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let report = connapp_core::check("connapp.toml", text, catalog());
    // Diagnostics render (they quote the source: spans must be in range).
    for d in &report.diagnostics {
        let _ = d.to_string();
    }
    if let Some(decl) = &report.declaration {
        let _ = decl.app(None);
    }
});
