//! What the token service (and the work around it) tells a front end.

/// What the engine tells a front end while it works.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// Another process holds the app's refresh lock; this one waits.
    WaitingForRefresh {
        /// The app.
        app: &'a str,
    },
    /// A step that may take a while (a network round trip or more) begins;
    /// it ends when the next step begins or the work ends. A terminal shows
    /// it as a spinner, a log as one line.
    Step {
        /// The app.
        app: &'a str,
        /// What is being done, e.g. "reading the Zoom app's settings".
        what: &'a str,
    },
    /// Something the user should read before the work goes on (e.g. a
    /// platform's note before a login).
    Notice(&'a str),
    /// Something went wrong but the work goes on as asked.
    Warning(&'a str),
    /// A change was made (an app written, records created): the work's own
    /// output, as it happens.
    Done(&'a str),
}

/// Receives [`Event`]s (a terminal prints them, a service logs them); shared
/// by the threads of a daemon or a batch run, so `Send + Sync`.
pub trait Observer: Send + Sync {
    /// One event.
    fn event(&self, event: Event<'_>);
}

/// An observer that drops every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Observer for Silent {
    fn event(&self, _: Event<'_>) {}
}
