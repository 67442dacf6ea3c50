//! What the engine's tests share: the Zoom sandbox's apps as a declaration,
//! and a `Shared` on a store in memory with the built-in platforms linked in.

use connapp_core::{Declaration, SecretKind};
use connapp_host::Registry;
use connapp_plugin_api::{Expected, StoreHandle};

pub(crate) use crate::memory::Memory;

use crate::secrets::Secrets;
use crate::tokens::Shared;

// Links the built-in platforms and presets into the test binary (inventory).
use connapp_platform_generic as _;
use connapp_platform_servicenow as _;
use connapp_platform_zoom as _;
use connapp_preset_servicenow as _;

pub(crate) const S2S: &str = "sbxS2SClientId00000002";
pub(crate) const DEX: &str = "sbxDexClientId00000001";

pub(crate) fn declaration(text: &str) -> Declaration {
    // The catalog the linked-in platform plugins give (their rules
    // included), and the store in memory these tests use.
    let mut catalog = crate::platform::catalog(&Registry::builtins()).expect("the plugins answer");
    catalog.store_kinds.push("memory".into());
    let r = connapp_core::check("t.toml", text, &catalog);
    r.declaration.unwrap_or_else(|| panic!("invalid: {:?}", r.diagnostics))
}

/// A server-to-server app and a user-consent app of the sandbox.
pub(crate) fn zoom_apps(zoom: &connapp_sandbox::Sandbox) -> Declaration {
    let base = zoom.base_url();
    let account = zoom.account_id();
    declaration(&format!(
        "version = 1\n[store]\nkind = \"memory\"\n\
         [apps.s2s]\ndisplay_name = \"S2S\"\nplatform = \"zoom\"\nusage = \"admin-managed\"\nscopes = [\"user:read:user:admin\"]\n\
         [apps.s2s.oauth]\ngrant = \"account_credentials\"\naccount_id = \"{account}\"\noauth_base = \"{base}\"\napi_base = \"{base}\"\n\
         [apps.dex]\ndisplay_name = \"DEX for Zoom\"\nplatform = \"zoom\"\nusage = \"admin-managed\"\n\
         redirect_url = \"https://acme.service-now.com/oauth_redirect.do\"\nallow_list = [\"https://acme.service-now.com/oauth_redirect.do\"]\n\
         scopes = [\"user:read:user:admin\"]\n[apps.dex.oauth]\noauth_base = \"{base}\"\napi_base = \"{base}\"\n"
    ))
}

pub(crate) fn shared(reg: &Registry) -> Shared<'_> {
    let plugin = reg.plugin("platform-zoom").expect("the zoom plugin is linked in");
    // Locks and journals of one test never meet another's (tests run in parallel).
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("connapp-engine-tokens-{}-{n}", std::process::id()));
    Shared::new(StoreHandle::from_store(Memory::default()), plugin, dir).expect("shared")
}

pub(crate) fn put_credentials(s: &Shared<'_>, app: &str, id: &str, secret: &str) {
    let secrets = Secrets::new(&s.store);
    secrets
        .put(app, SecretKind::ClientId, id.as_bytes(), Expected::Any)
        .expect("id");
    secrets
        .put(app, SecretKind::ClientSecret, secret.as_bytes(), Expected::Any)
        .expect("secret");
}

/// The Zoom sandbox, the built-in plugins and the sandbox's apps as a declaration.
pub(crate) struct World {
    pub zoom: connapp_sandbox::Sandbox,
    pub reg: Registry,
    pub decl: Declaration,
}

impl World {
    pub(crate) fn new() -> World {
        let zoom = connapp_sandbox::Sandbox::start(connapp_sandbox::Seed::default()).expect("sandbox");
        let decl = zoom_apps(&zoom);
        World {
            zoom,
            reg: Registry::builtins(),
            decl,
        }
    }

    /// The app `name` on `shared`.
    pub(crate) fn load<'r>(&self, name: &str, shared: &Shared<'r>) -> crate::tokens::AppCtx<'r> {
        crate::tokens::AppCtx::load(&self.reg, &self.decl, Some(name), shared).expect("load")
    }

    /// The sandbox's Client Secret of the app with `client_id`.
    pub(crate) fn secret(&self, client_id: &str) -> String {
        self.zoom.app(client_id).expect("a sandbox app").client_secret
    }
}
