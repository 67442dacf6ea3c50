//! What both sandboxes run on: a listener, a server on its own thread and
//! runtime, and the state it serves, stopped when dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;

use crate::SandboxError;

/// A non-blocking listener on `addr`.
fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, SandboxError> {
    let l = std::net::TcpListener::bind(addr).map_err(|source| SandboxError::Bind { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| SandboxError::Bind { addr, source })?;
    Ok(l)
}

/// Serves `router` on its own thread and runtime until the sender fires.
fn spawn_server(
    name: &str,
    listener: std::net::TcpListener,
    router: Router,
) -> Result<(tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>), SandboxError> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(SandboxError::Runtime)?;
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await;
            });
        })
        .map_err(SandboxError::Runtime)?;
    Ok((tx, thread))
}

/// A server on its own thread and runtime, and its state. Dropping it stops it.
pub(crate) struct Running<S> {
    addr: SocketAddr,
    state: Arc<Mutex<S>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<S> Running<S> {
    /// Binds `addr`, builds the state for the base URL it got
    /// (`http://127.0.0.1:PORT`) and serves `router` over it on a thread called `name`.
    pub(crate) fn start(
        name: &str,
        addr: SocketAddr,
        state: impl FnOnce(&str) -> Result<S, SandboxError>,
        router: impl FnOnce(Arc<Mutex<S>>, String) -> Router,
    ) -> Result<Self, SandboxError> {
        let listener = bind(addr)?;
        let addr = listener
            .local_addr()
            .map_err(|source| SandboxError::Bind { addr, source })?;
        let base = format!("http://{addr}");
        let state = Arc::new(Mutex::new(state(&base)?));
        let (shutdown, thread) = spawn_server(name, listener, router(state.clone(), base))?;
        Ok(Running {
            addr,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The listening address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The state; a handler that panicked while holding it does not poison it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<S> Drop for Running<S> {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
