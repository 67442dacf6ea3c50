//! One owner's engine: what a CLI process, a daemon, a fleet runner or a
//! front end's session holds for its whole life and shares between threads.

use connapp_core::{Declaration, StoreDecl};
use connapp_host::Registry;

use crate::Error;
use crate::environment::Environment;
use crate::tokens::Shared;

/// The environment, the plugin registry (loaded once; libraries are never
/// unloaded, so it lives as long as the process: `'static`), one
/// multi-thread runtime every opened store's work runs on, and the clock.
/// `Send + Sync`: threads share one `&Engine`.
pub struct Engine {
    env: Environment,
    registry: &'static Registry,
    /// Started when work first needs it: `check`, `init`, `plugins` and a
    /// `token` served from the store never pay for it.
    rt: crate::tokens::Rt,
    clock: fn() -> u64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("env", &self.env)
            .field("plugins", &self.registry.plugins().len())
            .finish_non_exhaustive()
    }
}

/// The engine's runtime: two workers (its requests wait on the network, not on the CPU).
fn two_workers() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("connapp-engine")
        .enable_all()
        .build()
}

impl Engine {
    /// Loads the plugins `env` names.
    pub fn new(env: Environment) -> Engine {
        let registry: &'static Registry = Box::leak(Box::new(env.registry()));
        Engine {
            env,
            registry,
            rt: crate::tokens::Rt::lazy(two_workers),
            clock: crate::tokens::now,
        }
    }

    /// With the owner's clock (seconds since the epoch) for everything it opens.
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    /// The environment it was made with.
    pub fn environment(&self) -> &Environment {
        &self.env
    }

    /// The plugins.
    pub fn registry(&self) -> &'static Registry {
        self.registry
    }

    /// Opens the declaration's store for its apps: the store (a prompt may
    /// be asked), its lease opened when a refresh first needs it, the data
    /// directory, this engine's runtime and clock, a memory tier of its own.
    pub fn open(&self, decl: &Declaration) -> Result<Shared<'static>, Error> {
        self.open_store(&decl.store)
    }

    /// [`Engine::open`] on `store`: the declaration's, or the one a fleet
    /// row's apps live in ([`Declaration::store_of`]).
    pub fn open_store(&self, store: &StoreDecl) -> Result<Shared<'static>, Error> {
        let (handle, plugin) = self.env.open_store(self.registry, store)?;
        Ok(Shared::on(handle, plugin, self.env.data_dir.clone(), self.rt.clone())?
            .with_leases(self.env.lease_opener(self.registry, store))
            .with_clock(self.clock))
    }
}
