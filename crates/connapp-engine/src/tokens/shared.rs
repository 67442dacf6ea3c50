//! What the apps of one declaration share: the store, its identity and
//! lease, one HTTP client and one runtime, the data directory.

use std::path::PathBuf;
use std::sync::Arc;

use connapp_host::LoadedPlugin;
use connapp_plugin_api::StoreHandle;

use crate::Error;
use crate::secrets;

/// What the apps of one declaration share: the open store, one HTTP client
/// (connapp's policy), one runtime and the data directory (locks, journals).
#[derive(Clone)]
pub struct Shared<'r> {
    /// The open store.
    pub store: Arc<StoreHandle>,
    /// The plugin the store came from (errors name it).
    pub store_plugin: &'r LoadedPlugin,
    /// The HTTP client (connapp's policy), built on first use: serving a
    /// stored token never loads TLS roots.
    http: Arc<std::sync::OnceLock<reqwest::Client>>,
    /// The runtime the work runs on, started on first use.
    pub rt: super::Rt,
    data_dir: PathBuf,
    store_id: String,
    /// The store's lease, for stores hosts share (opened on first use).
    pub leases: Arc<secrets::Leases<'r>>,
    /// The memory tier: tokens this owner served, by app.
    pub tokens: Arc<super::TokenCache>,
    /// The owner's clock: seconds since the epoch.
    clock: fn() -> u64,
}

impl std::fmt::Debug for Shared<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("store_plugin", &self.store_plugin.info.name)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl<'r> Shared<'r> {
    /// Shares `store` (opened from `store_plugin`), a new HTTP client and a
    /// new runtime of its own; locks and journals live under `data_dir`.
    pub fn new(store: StoreHandle, store_plugin: &'r LoadedPlugin, data_dir: PathBuf) -> Result<Self, Error> {
        Self::on(store, store_plugin, data_dir, super::Rt::current_thread())
    }

    /// As [`Shared::new`], on the owner's runtime `rt` (an [`crate::Engine`]'s).
    pub fn on(
        store: StoreHandle,
        store_plugin: &'r LoadedPlugin,
        data_dir: PathBuf,
        rt: super::Rt,
    ) -> Result<Self, Error> {
        let location = store
            .describe()
            .map_err(|e| connapp_host::plugin_error(store_plugin, e))?
            .location;
        Ok(Shared {
            store_id: store_id(&store_plugin.info.name, &location),
            leases: Arc::new(secrets::Leases::new(None)),
            tokens: Default::default(),
            clock: super::now,
            store: Arc::new(store),
            store_plugin,
            http: Default::default(),
            rt,
            data_dir,
        })
    }

    /// With the owner's clock (seconds since the epoch) instead of the system's.
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    /// The HTTP client, built the first time a request needs it.
    pub fn http(&self) -> Result<reqwest::Client, connapp_oauth::EdgeError> {
        if let Some(c) = self.http.get() {
            return Ok(c.clone());
        }
        let c = connapp_oauth::http_client()?;
        Ok(self.http.get_or_init(|| c).clone())
    }

    /// Now, by the owner's clock.
    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    /// With `open` for the store's lease (the host that opened the store
    /// knows how to open its lease; it is opened only when a refresh needs it).
    pub fn with_leases(mut self, open: secrets::LeaseOpener<'r>) -> Self {
        self.leases = Arc::new(secrets::Leases::new(Some(open)));
        self
    }

    /// Which store this is, as a short name for directories: the same for
    /// every declaration that opens the same store (plugin and location), so
    /// that locks and journals are per store and app, never per app name alone.
    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// Where connapp keeps its own state (locks, journals, saved manifests).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The store's error, named after its plugin.
    pub fn store_error(&self, e: connapp_plugin_api::StoreError) -> Error {
        connapp_host::plugin_error(self.store_plugin, e).into()
    }
}

/// A store's identity from its plugin and its location (as `describe`
/// gives it): 16 hex digits of their SHA-256.
fn store_id(plugin: &str, location: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(plugin.as_bytes())
        .chain_update([0u8])
        .chain_update(location.as_bytes())
        .finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
