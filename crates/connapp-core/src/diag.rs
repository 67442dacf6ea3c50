//! Diagnostics: every problem names the file, line and column, the field, the
//! rule broken and the fix.

use std::borrow::Cow;
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
    /// A stable identifier of the rule, e.g. `redirect-url-https` (a
    /// platform plugin's rules are its own strings).
    pub rule: Cow<'static, str>,
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
    /// Where each line starts, found on first use (an inventory of 10,000
    /// rows asks for every row's line).
    lines: std::sync::OnceLock<Vec<usize>>,
}

impl<'a> SourceMap<'a> {
    /// A map over `text`, which came from `file`.
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Self {
            file,
            text,
            lines: std::sync::OnceLock::new(),
        }
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
        let starts = self.lines.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        let line = starts.partition_point(|s| *s <= offset);
        let line_start = starts[line - 1];
        let column = self.text[line_start..offset].chars().count() + 1;
        (line, column)
    }

    /// Where the field `path` (`apps.dex.scopes[1]`, as diagnostics name
    /// fields) is written: the byte offset of its key or array element, or of
    /// the nearest enclosing one that is written; `None` when not even the
    /// first part is (or the text is not TOML).
    pub fn locate(&self, path: &str) -> Option<usize> {
        use toml::de::{DeTable, DeValue};
        let doc = DeTable::parse(self.text).ok()?;
        let mut table = doc.get_ref();
        let mut found = None;
        for segment in path.split('.') {
            let (name, indexes) = match segment.split_once('[') {
                Some((n, rest)) => (n, Some(rest)),
                None => (segment, None),
            };
            let Some((key, mut value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name) else {
                break;
            };
            found = Some(key.span().start);
            for index in indexes.into_iter().flat_map(|r| r.split('[')) {
                let element = index
                    .trim_end_matches(']')
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| match value.get_ref() {
                        DeValue::Array(a) => a.get(i),
                        _ => None,
                    });
                match element {
                    Some(e) => {
                        found = Some(e.span().start);
                        value = e;
                    }
                    None => return found,
                }
            }
            match value.get_ref() {
                DeValue::Table(t) => table = t,
                _ => break,
            }
        }
        found
    }

    /// A diagnostic at the field `path` ([`SourceMap::locate`]; the file's
    /// start when it is not written at all).
    pub fn diag_at(
        &self,
        severity: Severity,
        path: &str,
        rule: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Diagnostic {
        let at = self.locate(path).unwrap_or(0);
        self.diag(severity, at..at, path, rule, message, fix)
    }

    /// Builds a diagnostic located at `span`.
    pub fn diag(
        &self,
        severity: Severity,
        span: Range<usize>,
        field: impl Into<String>,
        rule: impl Into<Cow<'static, str>>,
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
            rule: rule.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_path_is_found_where_it_is_written() {
        let text = "version = 1\n[apps.dex]\nplatform = \"acme\"\nscopes = [\"read\", \"Write\"]\n[apps.dex.oauth]\ngrant = \"x\"\n";
        let m = SourceMap::new("f", text);
        let at = |p: &str| m.locate(p).map(|o| m.line_col(o));
        assert_eq!(at("apps.dex.platform"), Some((3, 1)));
        assert_eq!(at("apps.dex.scopes[1]"), Some((4, 19)));
        assert_eq!(at("apps.dex.oauth.grant"), Some((6, 1)));
        // Not written: the nearest enclosing field that is.
        assert_eq!(at("apps.dex.scopes[7]"), Some((4, 1)));
        assert_eq!(at("apps.dex.display_name"), m.locate("apps.dex").map(|o| m.line_col(o)));
        assert_eq!(at("nothing"), None);
        let d = m.diag_at(
            Severity::Error,
            "apps.dex.scopes[1]",
            String::from("acme-scope"),
            "m",
            "f",
        );
        assert_eq!((d.line, d.column, d.rule.as_ref()), (4, 19, "acme-scope"));
    }

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
