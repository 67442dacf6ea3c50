//! The runtime an owner's work runs on, started on first use: a `token`
//! served from the store or from memory never starts a thread.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::runtime::Runtime;

/// A runtime built when work first needs it, shared by clones.
#[derive(Clone)]
pub struct Rt {
    cell: Arc<OnceLock<Arc<Runtime>>>,
    make: fn() -> std::io::Result<Runtime>,
}

impl std::fmt::Debug for Rt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rt")
            .field("started", &self.cell.get().is_some())
            .finish()
    }
}

fn current_thread() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

impl Rt {
    /// A runtime `make` builds on first use.
    pub fn lazy(make: fn() -> std::io::Result<Runtime>) -> Rt {
        Rt {
            cell: Arc::new(OnceLock::new()),
            make,
        }
    }

    /// A one-thread runtime, started on first use.
    pub fn current_thread() -> Rt {
        Rt::lazy(current_thread)
    }

    /// Whether it has been started.
    pub fn started(&self) -> bool {
        self.cell.get().is_some()
    }

    /// The runtime, started now if it was not. A runtime that cannot be
    /// built (no thread can be started) falls back to one on this thread.
    pub fn runtime(&self) -> &Arc<Runtime> {
        self.cell.get_or_init(|| {
            let rt = (self.make)().or_else(|e| {
                tracing::warn!(error = %e, "cannot start the runtime's workers; running on this thread");
                current_thread()
            });
            match rt {
                Ok(rt) => Arc::new(rt),
                // Nothing can run at all: the process cannot go on.
                Err(e) => panic!("cannot start any runtime: {e}"),
            }
        })
    }

    /// Runs `f` to completion on the runtime (see [`Runtime::block_on`]).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime().block_on(f)
    }
}
