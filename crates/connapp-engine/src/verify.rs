//! What `verify` reports: one row per check, each with its outcome, what was
//! found and what to do. The checks themselves still run in the CLI
//! (`cmd_verify`) and move here next; a platform's client says what its
//! API's failures mean (e.g. `connapp_zoom::habits::diagnose`).

use serde::Serialize;

/// How one check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Proven.
    Ok,
    /// Works, but something deserves attention.
    Warn,
    /// Broken; `fix` says what to do.
    Fail,
    /// Could not be checked; `detail` says why.
    Skip,
}

impl Outcome {
    /// The word the report prints.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Warn => "warn",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        }
    }
}

/// One row of the report.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What kind of check: declaration, secret, drift, redirect, grant, scope.
    pub check: &'static str,
    /// The subject: a secret, a URL, a scope.
    pub item: String,
    /// The endpoint called, if any.
    pub endpoint: String,
    /// The outcome.
    pub result: Outcome,
    /// What was found.
    pub detail: String,
    /// What to do (empty when nothing).
    pub fix: String,
}

/// A check of kind `check` on `item` (calling `endpoint`, if any) that ended `result`.
pub fn row(check: &'static str, item: impl Into<String>, endpoint: impl Into<String>, result: Outcome) -> Check {
    Check {
        check,
        item: item.into(),
        endpoint: endpoint.into(),
        result,
        detail: String::new(),
        fix: String::new(),
    }
}

impl Check {
    /// What was found.
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = d.into();
        self
    }
    /// What to do.
    pub fn fix(mut self, f: impl Into<String>) -> Self {
        self.fix = f.into();
        self
    }
    /// Another outcome.
    pub fn result_of(mut self, o: Outcome) -> Self {
        self.result = o;
        self
    }
}
