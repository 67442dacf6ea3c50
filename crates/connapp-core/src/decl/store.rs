//! `[store.settings]` against what the store's plugin says it takes
//! (names, types, required, environment fallbacks): offline, before the
//! store is ever opened.

use super::*;

/// What validation knows of a store kind's settings, from its plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreRules {
    /// The store kind (`kind = "..."`).
    pub kind: String,
    /// Every setting it takes.
    pub settings: Vec<SettingRule>,
}

/// One setting of a store kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingRule {
    /// The key under `[store.settings]`.
    pub name: String,
    /// The value's type.
    pub kind: SettingKind,
    /// The store cannot open without it (from the declaration or `env`).
    pub required: bool,
    /// Environment variables the store reads when it is absent.
    pub env: Vec<String>,
    /// The value used when it is absent everywhere, for humans.
    pub default: Option<String>,
    /// Its value, or the file it names, is a secret.
    pub secret: bool,
    /// One line: what it is.
    pub help: String,
}

impl SettingRule {
    /// One line for humans: type, whether it is needed, where else it comes
    /// from, its default, and what it is.
    pub fn describe(&self) -> String {
        let mut s = self.kind.name().to_string();
        if self.required {
            s.push_str(", required");
        }
        if self.secret {
            s.push_str(", secret");
        }
        if !self.env.is_empty() {
            s.push_str(&format!(", else ${}", self.env.join(" or $")));
        }
        if let Some(d) = &self.default {
            s.push_str(&format!(", default {d}"));
        }
        if self.help.is_empty() {
            s
        } else {
            format!("{s}: {}", self.help)
        }
    }
}

impl SettingKind {
    /// The type's name as users see it.
    pub fn name(self) -> &'static str {
        match self {
            SettingKind::Text => "text",
            SettingKind::Integer => "integer",
            SettingKind::Boolean => "boolean",
            SettingKind::Path => "path",
            SettingKind::Url => "url",
            SettingKind::Other => "value",
        }
    }
}

/// The type of a setting's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingKind {
    /// Any text.
    Text,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A path.
    Path,
    /// An `http://` or `https://` URL.
    Url,
    /// A type this build does not know (a newer plugin): any value.
    Other,
}

/// Checks `settings` of the store `kind` against `rules`.
pub(super) fn check_settings(
    cx: &mut Ctx<'_>,
    rules: &StoreRules,
    whole: Range<usize>,
    settings: Option<&BTreeMap<String, Spanned<SettingValue>>>,
) {
    let names: Vec<&str> = rules.settings.iter().map(|s| s.name.as_str()).collect();
    let empty = BTreeMap::new();
    let settings = settings.unwrap_or(&empty);
    for (key, value) in settings {
        let field = format!("store.settings.{key}");
        let Some(rule) = rules.settings.iter().find(|s| &s.name == key) else {
            let all = if names.is_empty() {
                "it takes none".to_string()
            } else {
                format!("its settings: {}", names.join(", "))
            };
            let fix = match nearest(key, names.iter().copied()) {
                Some(n) => format!("did you mean `{n}`? ({all}; see `connapp plugins info`)"),
                None => format!("remove it ({all}; see `connapp plugins info`)"),
            };
            cx.err(
                value.span(),
                &field,
                "store-setting",
                format!("the {} store has no setting `{key}`", rules.kind),
                fix,
            );
            continue;
        };
        if let Some(problem) = mistyped(rule.kind, value.get_ref()) {
            cx.err(
                value.span(),
                &field,
                "store-setting-type",
                format!("`{field}` must be {problem}"),
                match rule.kind {
                    SettingKind::Integer => format!("write a number, e.g. `{key} = 10`"),
                    SettingKind::Boolean => format!("write `{key} = true` or `{key} = false`"),
                    SettingKind::Url => {
                        format!("write the address in quotes, e.g. `{key} = \"https://vault.example:8200\"`")
                    }
                    _ => format!("write the value in quotes, e.g. `{key} = \"...\"`"),
                },
            );
        }
    }
    for rule in rules.settings.iter().filter(|r| r.required && r.env.is_empty()) {
        if !settings.contains_key(&rule.name) {
            cx.err(
                whole.clone(),
                &format!("store.settings.{}", rule.name),
                "missing-field",
                format!("the {} store needs `store.settings.{}`", rules.kind, rule.name),
                format!(
                    "add `{} = ...` under [store.settings] (see `connapp plugins info`)",
                    rule.name
                ),
            );
        }
    }
}

/// What a value of `kind` must be, when `v` is not one.
fn mistyped(kind: SettingKind, v: &SettingValue) -> Option<&'static str> {
    match (kind, v) {
        (SettingKind::Other, _) => None,
        (SettingKind::Integer, SettingValue::Integer(i)) if *i >= 0 => None,
        (SettingKind::Integer, SettingValue::String(s)) if s.parse::<u64>().is_ok() => None,
        (SettingKind::Integer, _) => Some("a whole number of 0 or more"),
        (SettingKind::Boolean, SettingValue::Bool(_)) => None,
        (SettingKind::Boolean, _) => Some("true or false"),
        (SettingKind::Text | SettingKind::Path, SettingValue::String(s)) if !s.trim().is_empty() => None,
        (SettingKind::Text, _) => Some("non-empty text in quotes"),
        (SettingKind::Path, _) => Some("a path in quotes"),
        (SettingKind::Url, SettingValue::String(s))
            if url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some()) =>
        {
            None
        }
        (SettingKind::Url, _) => Some("an http:// or https:// URL"),
    }
}
