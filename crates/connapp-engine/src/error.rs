//! The engine's one error: what went wrong, what to do about it, and which
//! kind of failure it is, so a front end can choose its exit code (the CLI
//! maps [`ErrorKind`] onto its exit codes) without reading the words.

use connapp_host::HostError;
use connapp_plugin_api::ErrorCode;

/// Which kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Anything else: the provider refused, a store failed, a check failed.
    Failure,
    /// A change was asked for without the confirmation it needs.
    Usage,
    /// The declaration cannot be used as it is.
    Invalid,
    /// A plugin failed: a refused library, a broken answer, a panic.
    Plugin,
    /// The grant is lost: a human must consent again.
    Reauth,
    /// The provider could not be reached.
    Unreachable,
}

/// A failure with the words a user needs: what happened and, when there is
/// one, the fix. Messages never hold a secret.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// Which kind of failure.
    pub kind: ErrorKind,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Error {
    /// A failure of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// A general failure.
    pub fn failure(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Failure, message)
    }

    /// The declaration cannot be used as it is.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Invalid, message)
    }

    /// With the fix.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<HostError> for Error {
    fn from(e: HostError) -> Self {
        let (kind, hint) = match &e {
            HostError::NoSuchStore { .. } => (
                ErrorKind::Invalid,
                Some("run `connapp plugins list` to see what is installed".to_string()),
            ),
            HostError::Plugin { error, .. } if error.code == ErrorCode::PANIC => (
                ErrorKind::Plugin,
                Some("this is a bug in the plugin; report it to its author. connapp itself is unaffected".to_string()),
            ),
            // A store that says no (locked, conflict, refused) is a failure, not a broken plugin.
            HostError::Plugin { .. } => (ErrorKind::Failure, None),
            _ => (ErrorKind::Plugin, None),
        };
        Error {
            kind,
            message: e.to_string(),
            hint,
        }
    }
}
