//! Diagnostics: every problem names the file, line and column, the field, the
//! rule broken and the fix.

use std::fmt;
use std::ops::Range;

use serde::Serialize;

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; the declaration is still usable.
    Warning,
    /// The declaration cannot be used until this is fixed.
    Error,
}

/// One problem found in a declaration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file name as the user gave it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The field path, e.g. `apps.dex-zoom.redirect_url`.
    pub field: String,
    /// A stable identifier of the rule, e.g. `redirect-url-https`.
    pub rule: &'static str,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{sev}[{}]: {}:{}:{}: {}: {}\n  fix: {}",
            self.rule, self.file, self.line, self.column, self.field, self.message, self.fix
        )
    }
}

/// Maps byte offsets of a source text to 1-based line and column.
#[derive(Clone, Debug)]
pub struct SourceMap<'a> {
    file: &'a str,
    text: &'a str,
}

impl<'a> SourceMap<'a> {
    /// A map over `text`, which came from `file`.
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Self { file, text }
    }

    /// The file name.
    pub fn file(&self) -> &str {
        self.file
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// Builds a diagnostic located at `span`.
    pub fn diag(
        &self,
        severity: Severity,
        span: Range<usize>,
        field: impl Into<String>,
        rule: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Diagnostic {
        let (line, column) = self.line_col(span.start);
        Diagnostic {
            severity,
            file: self.file.to_string(),
            line,
            column,
            field: field.into(),
            rule,
            message: message.into(),
            fix: fix.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let m = SourceMap::new("f", "a = 1\nné = 2\n");
        assert_eq!(m.line_col(0), (1, 1));
        assert_eq!(m.line_col(6), (2, 1));
        // 'é' is two bytes; the '=' after "né " is the 4th character.
        assert_eq!(m.line_col(10), (2, 4));
        assert_eq!(m.line_col(999), (3, 1));
    }
}
