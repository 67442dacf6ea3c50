//! What the engine's tests share: a store in memory (a real store plugin is
//! tested by the conformance suite; here only the engine's use of one
//! matters), the Zoom sandbox's apps as a declaration, and a `Shared` on the
//! memory store with the built-in platforms linked in.

use std::collections::BTreeMap;
use std::sync::Mutex;

use connapp_core::{Catalog, Declaration, SecretKind};
use connapp_host::Registry;
use connapp_plugin_api::zeroize::Zeroizing;
use connapp_plugin_api::{Capabilities, Expected, Record, Store, StoreDescription, StoreError, StoreHandle};

use crate::secrets::Secrets;
use crate::tokens::Shared;

// Links the built-in platforms and presets into the test binary (inventory).
use connapp_platform_generic as _;
use connapp_platform_zoom as _;
use connapp_preset_servicenow as _;

/// A store in memory: versions, compare-and-set, deletes.
#[derive(Default)]
pub(crate) struct Memory(Mutex<BTreeMap<String, (Vec<u8>, u64)>>);

impl Store for Memory {
    fn describe(&self) -> Result<StoreDescription, StoreError> {
        Ok(StoreDescription {
            capabilities: Capabilities {
                persistent: false,
                shared_across_hosts: false,
                native_cas: true,
                max_value_size: 0,
            },
            location: "memory".into(),
        })
    }
    fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let m = self.0.lock().map_err(|_| StoreError::conflict("poisoned"))?;
        Ok(m.get(key).map(|(v, n)| Record {
            value: Zeroizing::new(v.clone()),
            version: *n,
        }))
    }
    fn put(&self, key: &str, value: &[u8], expected: Expected) -> Result<u64, StoreError> {
        let mut m = self.0.lock().map_err(|_| StoreError::conflict("poisoned"))?;
        let current = m.get(key).map(|(_, n)| *n);
        match (expected, current) {
            (Expected::Absent, Some(_)) => return Err(StoreError::conflict("exists")),
            (Expected::Version(v), c) if c != Some(v) => return Err(StoreError::conflict("version")),
            _ => {}
        }
        let next = current.unwrap_or(0) + 1;
        m.insert(key.to_string(), (value.to_vec(), next));
        Ok(next)
    }
    fn delete(&self, key: &str, expected: Expected) -> Result<bool, StoreError> {
        let mut m = self.0.lock().map_err(|_| StoreError::conflict("poisoned"))?;
        if let Expected::Version(v) = expected
            && m.get(key).map(|(_, n)| *n) != Some(v)
        {
            return Err(StoreError::conflict("version"));
        }
        Ok(m.remove(key).is_some())
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let m = self.0.lock().map_err(|_| StoreError::conflict("poisoned"))?;
        Ok(m.keys().filter(|k| k.starts_with(prefix)).cloned().collect())
    }
}

pub(crate) const S2S: &str = "sbxS2SClientId00000002";
pub(crate) const DEX: &str = "sbxDexClientId00000001";

pub(crate) fn declaration(text: &str) -> Declaration {
    let catalog = Catalog {
        presets: vec![],
        store_kinds: vec![],
        platforms: vec!["zoom".into(), "generic".into()],
    };
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
