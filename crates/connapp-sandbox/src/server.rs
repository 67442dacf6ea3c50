//! What both sandboxes run on: a listener, a server on its own thread and
//! runtime, and the state it serves, stopped when dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;

use crate::SandboxError;

/// A non-blocking listener on `addr`.
pub(crate) fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, SandboxError> {
    let l = std::net::TcpListener::bind(addr).map_err(|source| SandboxError::Bind { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| SandboxError::Bind { addr, source })?;
    Ok(l)
}

/// Work a server does besides answering (a scheduled job): runs on the
/// server's runtime until the server stops.
pub(crate) type Background = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Serves each router on its listener, all on one thread and runtime, until
/// the sender fires; each server's background work runs beside it and ends
/// with the runtime.
pub(crate) fn spawn_servers(
    name: &str,
    servers: Vec<(std::net::TcpListener, Router, Option<Background>)>,
) -> Result<(tokio::sync::watch::Sender<bool>, std::thread::JoinHandle<()>), SandboxError> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(SandboxError::Runtime)?;
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            rt.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                for (listener, router, background) in servers {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        continue;
                    };
                    if let Some(work) = background {
                        // Not joined: dropped with the runtime once the servers stop.
                        tokio::spawn(work);
                    }
                    let mut rx = rx.clone();
                    tasks.spawn(async move {
                        let _ = axum::serve(listener, router)
                            .with_graceful_shutdown(async move {
                                let _ = rx.wait_for(|stop| *stop).await;
                            })
                            .await;
                    });
                }
                while tasks.join_next().await.is_some() {}
            });
        })
        .map_err(SandboxError::Runtime)?;
    Ok((tx, thread))
}

/// The thread and runtime several servers share; stopped when the last of
/// them is dropped.
struct Group {
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A server and its state, on a thread and runtime of its own or shared with
/// others started with it. The last of a group dropped stops them all.
pub(crate) struct Running<S> {
    addr: SocketAddr,
    state: Arc<Mutex<S>>,
    _group: Arc<Group>,
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
        let mut router = Some(router);
        let mut all = Self::start_many(
            name,
            vec![(addr, state)],
            |state, base| state(base),
            |state, base| router.take().map_or_else(Router::new, |r| r(state, base)),
            |_| None,
        )?;
        all.pop()
            .ok_or_else(|| SandboxError::Seed("no server was started".into()))
    }

    /// One server per item, each on its own listener and with its own state
    /// (built by `state` from the item and the base URL it got) and the
    /// background work `background` gives it, all on one thread called
    /// `name` and one runtime: hundreds cost one thread pool.
    pub(crate) fn start_many<T>(
        name: &str,
        items: Vec<(SocketAddr, T)>,
        mut state: impl FnMut(T, &str) -> Result<S, SandboxError>,
        mut router: impl FnMut(Arc<Mutex<S>>, String) -> Router,
        mut background: impl FnMut(&Arc<Mutex<S>>) -> Option<Background>,
    ) -> Result<Vec<Self>, SandboxError> {
        let (mut started, mut servers) = (Vec::new(), Vec::new());
        for (addr, item) in items {
            let listener = bind(addr)?;
            let addr = listener
                .local_addr()
                .map_err(|source| SandboxError::Bind { addr, source })?;
            let base = format!("http://{addr}");
            let state = Arc::new(Mutex::new(state(item, &base)?));
            servers.push((listener, router(state.clone(), base), background(&state)));
            started.push((addr, state));
        }
        let (shutdown, thread) = spawn_servers(name, servers)?;
        let group = Arc::new(Group {
            shutdown: Some(shutdown),
            thread: Some(thread),
        });
        Ok(started
            .into_iter()
            .map(|(addr, state)| Running {
                addr,
                state,
                _group: group.clone(),
            })
            .collect())
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
