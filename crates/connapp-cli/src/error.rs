//! Errors as the user sees them: a message, an optional hint, an exit code.

use connapp_host::HostError;
use connapp_plugin_api::{ErrorCode, StoreError};

/// Exit code: general failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: the declaration is invalid.
pub const EXIT_INVALID: u8 = 3;
/// Exit code: a plugin failed.
pub const EXIT_PLUGIN: u8 = 4;

/// A failure to report.
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub code: u8,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl CliError {
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_FAILURE,
            message: message.into(),
            hint: None,
        }
    }
    pub fn with_code(code: u8, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<HostError> for CliError {
    fn from(e: HostError) -> Self {
        let code = match &e {
            HostError::NoSuchStore { .. } => EXIT_INVALID,
            HostError::Plugin { error, .. } if error.code != ErrorCode::PANIC => store_exit_code(error),
            _ => EXIT_PLUGIN,
        };
        let hint = match &e {
            HostError::NoSuchStore { .. } => Some("run `connapp plugins list` to see what is installed".to_string()),
            HostError::Plugin { error, .. } if error.code == ErrorCode::PANIC => {
                Some("this is a bug in the plugin; report it to its author. connapp itself is unaffected".to_string())
            }
            _ => None,
        };
        CliError {
            code,
            message: e.to_string(),
            hint,
        }
    }
}

fn store_exit_code(e: &StoreError) -> u8 {
    match e.code {
        ErrorCode::PANIC => EXIT_PLUGIN,
        _ => EXIT_FAILURE,
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // The reader went away (`connapp plugins list | head`): not an error.
            return CliError::with_code(0, String::new());
        }
        CliError::failure(e.to_string())
    }
}
