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

impl ErrorKind {
    /// Its name in results, summaries and the agent's replies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Failure => "failure",
            ErrorKind::Usage => "usage",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Plugin => "plugin",
            ErrorKind::Reauth => "reauth",
            ErrorKind::Unreachable => "unreachable",
        }
    }
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
    /// The provider rate-limited the call: when it may be tried again, from
    /// its `Retry-After`; a batch runner waits until then before it calls
    /// that provider account again.
    pub retry: Option<Retry>,
}

/// When a rate-limited call may be tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// At this time (unix seconds): the provider named it.
    At(u64),
    /// After this many seconds, counted on the owner's clock.
    After(u64),
}

impl Retry {
    /// The time it names, on a clock that reads `now`.
    pub fn at(self, now: u64) -> u64 {
        match self {
            Retry::At(t) => t,
            Retry::After(s) => now + s,
        }
    }

    /// A `Retry-After` value: delay seconds (RFC 9110 §10.2.3) or a time —
    /// an HTTP date, or the ISO-8601 time Zoom sends for daily limits;
    /// `None` when it is neither.
    pub fn parse(value: &str) -> Option<Retry> {
        let v = value.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Retry::After(secs));
        }
        if let Ok(t) = httpdate::parse_http_date(v) {
            return t
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| Retry::At(d.as_secs()));
        }
        chrono::DateTime::parse_from_rfc3339(v)
            .ok()
            .and_then(|t| u64::try_from(t.timestamp()).ok())
            .map(Retry::At)
    }
}

impl Error {
    /// A failure of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            retry: None,
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

    /// Rate-limited: may be tried again as `retry` says.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
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
            retry: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_delay_seconds_an_http_date_or_zooms_iso_time() {
        assert_eq!(Retry::parse("30"), Some(Retry::After(30)));
        assert_eq!(Retry::parse("30").map(|r| r.at(1_000)), Some(1_030));
        assert_eq!(
            Retry::parse("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Retry::At(1_445_412_480))
        );
        assert_eq!(Retry::parse("2015-10-21T07:28:00Z"), Some(Retry::At(1_445_412_480)));
        assert_eq!(Retry::parse("soon"), None);
        let e = Error::failure("429").retry(Retry::At(5));
        assert_eq!(e.retry, Some(Retry::At(5)));
    }
}
