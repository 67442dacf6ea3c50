//! Errors as the user sees them: a message, an optional hint, an exit code.

use connapp_host::HostError;

/// Every exit code connapp has, in one place: `--help` is generated from
/// [`Exit::ALL`], and a test checks the README against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success (and `plan`: nothing to change).
    Ok = 0,
    /// A general failure (for `verify`: a check failed).
    Failure = 1,
    /// A command-line usage error, also a change without `--yes` and without a terminal.
    Usage = 2,
    /// The declaration is invalid or cannot be read.
    Invalid = 3,
    /// A plugin failed: a refused library, an ABI mismatch, a plugin panic.
    Plugin = 4,
    /// The grant is lost: a human must consent again (`connapp login`).
    Reauth = 5,
    /// The provider could not be reached.
    Unreachable = 6,
    /// `plan`: changes are pending.
    Changes = 7,
}

impl Exit {
    /// All codes, in order.
    pub const ALL: [Exit; 8] = [
        Exit::Ok,
        Exit::Failure,
        Exit::Usage,
        Exit::Invalid,
        Exit::Plugin,
        Exit::Reauth,
        Exit::Unreachable,
        Exit::Changes,
    ];

    /// The number the process exits with.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// What it means, in the words `--help` and the README use.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "success",
            Exit::Failure => "failure",
            Exit::Usage => "command-line usage error",
            Exit::Invalid => "invalid declaration",
            Exit::Plugin => "plugin failure",
            Exit::Reauth => "the grant is lost, consent again",
            Exit::Unreachable => "the provider could not be reached",
            Exit::Changes => "`plan`: changes are pending",
        }
    }

    /// The `--help` paragraph.
    pub fn help() -> String {
        let list: Vec<String> = Exit::ALL
            .iter()
            .map(|e| format!("{} {}", e.code(), e.meaning().replace('`', "")))
            .collect();
        format!("Exit codes: {}.", list.join(", "))
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

/// A failure to report.
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub code: Exit,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl CliError {
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            code: Exit::Failure,
            message: message.into(),
            hint: None,
        }
    }
    pub fn with_code(code: Exit, message: impl Into<String>) -> Self {
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
        connapp_engine::Error::from(e).into()
    }
}

impl From<connapp_engine::Error> for CliError {
    fn from(e: connapp_engine::Error) -> Self {
        use connapp_engine::ErrorKind;
        let code = match e.kind {
            ErrorKind::Failure => Exit::Failure,
            ErrorKind::Usage => Exit::Usage,
            ErrorKind::Invalid => Exit::Invalid,
            ErrorKind::Plugin => Exit::Plugin,
            ErrorKind::Reauth => Exit::Reauth,
            ErrorKind::Unreachable => Exit::Unreachable,
        };
        CliError {
            code,
            message: e.message,
            hint: e.hint,
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // The reader went away (`connapp plugins list | head`): not an error.
            return CliError::with_code(Exit::Ok, String::new());
        }
        CliError::failure(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's "Exit codes" paragraph, `--help` and [`Exit`] agree:
    /// the same codes, in order, with the same meanings.
    #[test]
    fn readme_help_and_code_agree_on_exit_codes() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("### Exit codes")
            .nth(1)
            .and_then(|s| s.split("\n\n").find(|p| !p.trim().is_empty()))
            .expect("the README has an Exit codes paragraph");
        let text = section.split_whitespace().collect::<Vec<_>>().join(" ");
        let entries: Vec<&str> = text.trim_end_matches('.').split(" · ").collect();
        assert_eq!(entries.len(), Exit::ALL.len(), "README lists other codes: {text}");
        for (entry, e) in entries.iter().zip(Exit::ALL) {
            let want = format!("{} {}", e.code(), e.meaning());
            assert!(
                entry.starts_with(&want),
                "README says {entry:?}, the code says {want:?}"
            );
        }
        let help = crate::cli::command().render_long_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(help.contains(&Exit::help()), "--help lacks {:?}:\n{help}", Exit::help());
        for (i, e) in Exit::ALL.iter().enumerate() {
            assert_eq!(usize::from(e.code()), i);
        }
    }
}
