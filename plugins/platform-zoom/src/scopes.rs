//! Zoom's scope rules for `check_app` (`docs/zoom-platform.md` §8): the
//! granular grammar `<product>:<action>:<resource>[:admin|:master]` (product
//! and resource in lower snake case, action one of read, write, update,
//! delete), classic scopes, account-level scopes in user-managed apps, and
//! the scopes connapp knows (`known_scopes.txt`, a warning for others).

use connapp_plugin_api::contract::{Finding, FindingSeverity};
use serde_json::Value;

/// The level a Zoom scope acts at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeLevel {
    /// No suffix: acts on the authorizing user.
    User,
    /// `:admin`: acts on the whole account; needs an admin-managed app.
    Admin,
    /// `:master`: master account; only master account owners can grant.
    Master,
}

/// Why a scope string does not follow the grammar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeProblem {
    /// Empty string.
    Empty,
    /// Contains whitespace or characters outside the grammar.
    BadCharacters,
    /// Upper-case letters (Zoom scopes are lower case).
    UpperCase,
    /// A classic (pre-granular) scope such as `user:read:admin`.
    Classic,
    /// Wrong number of parts or a bad part.
    Shape(String),
}

/// A parsed Zoom granular scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoomScope<'a> {
    /// e.g. `report`.
    pub product: &'a str,
    /// read, write, update or delete.
    pub action: &'a str,
    /// e.g. `user`, `list_zoomrooms`.
    pub resource: &'a str,
    /// User, admin or master.
    pub level: ScopeLevel,
}

fn is_snake(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z')) && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

const ACTIONS: [&str; 4] = ["read", "write", "update", "delete"];

/// Zoom granular scopes connapp knows (`known_scopes.txt`).
pub fn known() -> &'static [&'static str] {
    static KNOWN: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        include_str!("known_scopes.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    });
    &KNOWN
}

/// [`known`] as a set, for membership.
fn known_set() -> &'static std::collections::HashSet<&'static str> {
    static SET: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
        std::sync::LazyLock::new(|| known().iter().copied().collect());
    &SET
}

/// The parts of the app view [`check`] reads; the host's JSON is parsed
/// into these alone (the rest of the view is skipped, not built).
#[derive(serde::Deserialize)]
pub struct CheckedParts {
    #[serde(default)]
    usage: Value,
    #[serde(default)]
    scopes: Value,
}

impl From<CheckedParts> for Value {
    fn from(p: CheckedParts) -> Value {
        // Moved, not copied (`json!` would serialize them anew).
        Value::Object(serde_json::Map::from_iter([
            ("usage".to_string(), p.usage),
            ("scopes".to_string(), p.scopes),
        ]))
    }
}

/// Classic Zoom scopes still seen on older apps.
const CLASSIC_SCOPES: &[&str] = &[
    "user:read:admin",
    "user:read",
    "user:write:admin",
    "report:read:admin",
    "dashboard_meetings:read:admin",
    "dashboard_zr:read:admin",
    "meeting:read:admin",
    "meeting:read",
    "imchat:bot",
];

/// Parses a Zoom granular scope.
pub fn parse_zoom_scope(s: &str) -> Result<ZoomScope<'_>, ScopeProblem> {
    if s.is_empty() {
        return Err(ScopeProblem::Empty);
    }
    if s.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ScopeProblem::UpperCase);
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':')
    {
        return Err(ScopeProblem::BadCharacters);
    }
    if CLASSIC_SCOPES.contains(&s) {
        return Err(ScopeProblem::Classic);
    }
    let parts: Vec<&str> = s.split(':').collect();
    let (product, action, resource, level) = match parts.as_slice() {
        [p, a, r] => (*p, *a, *r, ScopeLevel::User),
        [p, a, r, "admin"] => (*p, *a, *r, ScopeLevel::Admin),
        [p, a, r, "master"] => (*p, *a, *r, ScopeLevel::Master),
        [_, _, _, other] => {
            return Err(ScopeProblem::Shape(format!(
                "the fourth part must be `admin` or `master`, not `{other}`"
            )));
        }
        _ => {
            return Err(ScopeProblem::Shape(format!(
                "expected 3 or 4 parts separated by `:`, found {}",
                parts.len()
            )));
        }
    };
    if !is_snake(product) {
        return Err(ScopeProblem::Shape(format!(
            "the product `{product}` must be lower snake case"
        )));
    }
    if !ACTIONS.contains(&action) {
        return Err(ScopeProblem::Shape(format!(
            "the action `{action}` must be one of read, write, update, delete"
        )));
    }
    if !is_snake(resource) {
        return Err(ScopeProblem::Shape(format!(
            "the resource `{resource}` must be lower snake case"
        )));
    }
    if resource == "admin" || resource == "master" {
        return Err(ScopeProblem::Classic);
    }
    Ok(ZoomScope {
        product,
        action,
        resource,
        level,
    })
}

/// The closest known scope to `s`, if it is close enough to be a likely typo.
pub fn suggest<'a>(s: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(s, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 8))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn finding(field: &str, rule: &str, message: String, fix: String, severity: FindingSeverity) -> Finding {
    Finding {
        field: field.into(),
        rule: rule.into(),
        message,
        fix,
        severity,
    }
}

/// Zoom's findings for an app (the app as the host sends it). A preset's
/// scopes are the preset's business; only their level is checked against
/// the app's usage, once, at `usage`.
pub fn check(app: &Value) -> Vec<Finding> {
    let known = known();
    let usage = app.get("usage").and_then(Value::as_str).unwrap_or("");
    let mut out = Vec::new();
    let scopes = app.get("scopes").and_then(Value::as_array).into_iter().flatten();
    let mut preset_level_reported = false;
    for (i, s) in scopes.enumerate() {
        let Some(scope) = s.get("scope").and_then(Value::as_str) else {
            continue;
        };
        let source = |field: &str| s.get("source").and_then(|src| src.get(field)).and_then(Value::as_str);
        if source("kind") == Some("preset") {
            let preset = source("name").unwrap_or("");
            let account_level = parse_zoom_scope(scope).is_ok_and(|z| z.level != ScopeLevel::User);
            if usage == "user-managed" && account_level && !preset_level_reported {
                preset_level_reported = true;
                out.push(finding(
                    "usage",
                    "scope-admin-usage",
                    format!(
                        "the preset {preset:?} requests {scope:?}, an account-level scope, but usage = \"user-managed\"; Zoom refuses: \"{scope} is not a valid scope name when usage is USER_OPERATION\""
                    ),
                    "set `usage = \"admin-managed\"`".into(),
                    FindingSeverity::Error,
                ));
            }
            continue;
        }
        let field = format!("scopes[{i}]");
        match parse_zoom_scope(scope) {
            Err(problem) => out.push(grammar(&field, scope, problem, known)),
            Ok(z) => {
                out.extend(levels(&field, scope, &z, usage));
                if !known_set().contains(scope) {
                    let fix = match suggest(scope, known) {
                        Some(s) => {
                            format!("did you mean {s:?}? If not, check the name in Zoom's granular scopes table")
                        }
                        None => "check the name in Zoom's granular scopes table".to_string(),
                    };
                    out.push(finding(
                        &field,
                        "scope-unknown",
                        format!("{scope:?} is not a Zoom scope connapp knows"),
                        fix,
                        FindingSeverity::Warning,
                    ));
                }
            }
        }
    }
    out
}

/// What is wrong with a scope outside the granular grammar.
fn grammar(field: &str, scope: &str, problem: ScopeProblem, known: &[&str]) -> Finding {
    let error = |message: String, fix: String| finding(field, "scope-grammar", message, fix, FindingSeverity::Error);
    match problem {
        ScopeProblem::Empty => error("the scope is empty".into(), "remove the empty entry".into()),
        ScopeProblem::UpperCase => error(
            format!("{scope:?} has upper-case letters; Zoom scopes are lower case"),
            format!("write {:?}", scope.to_ascii_lowercase()),
        ),
        ScopeProblem::BadCharacters => error(
            format!("{scope:?} is not a Zoom scope: <product>:<action>:<resource>[:admin|:master]"),
            if scope.contains([' ', ',']) {
                "write one scope per array entry: [\"a:read:b:admin\", \"c:read:d:admin\"]".to_string()
            } else {
                "use only lower-case letters, digits, `_` and `:`".to_string()
            },
        ),
        ScopeProblem::Classic => finding(
            field,
            "scope-classic",
            format!("{scope:?} is a classic scope; new General apps use granular scopes"),
            "use the granular equivalent (see Zoom's granular scopes table)".into(),
            FindingSeverity::Warning,
        ),
        ScopeProblem::Shape(why) => error(
            format!("{scope:?} does not follow Zoom's granular scope grammar: {why}"),
            match suggest(scope, known) {
                Some(s) => format!("did you mean {s:?}?"),
                None => {
                    "write <product>:<action>:<resource>[:admin|:master], e.g. \"user:read:user:admin\"".to_string()
                }
            },
        ),
    }
}

/// A granular scope's level against the app's usage.
fn levels(field: &str, scope: &str, z: &ZoomScope<'_>, usage: &str) -> Option<Finding> {
    match (z.level, usage) {
        (ScopeLevel::Admin | ScopeLevel::Master, "user-managed") => {
            let user_level = scope.rsplit_once(':').map_or(scope, |(a, _)| a);
            Some(finding(
                field,
                "scope-admin-usage",
                format!(
                    "{scope:?} is an account-level scope but the app is user-managed; Zoom refuses: \"{scope} is not a valid scope name when usage is USER_OPERATION\""
                ),
                format!("set `usage = \"admin-managed\"`, or request the user-level scope {user_level:?}"),
                FindingSeverity::Error,
            ))
        }
        (ScopeLevel::User, "admin-managed") => Some(finding(
            field,
            "scope-level-mix",
            format!(
                "{scope:?} is a user-level scope in an admin-managed app; Zoom does not let apps mix user and admin levels"
            ),
            format!("request {:?} instead", format!("{scope}:admin")),
            FindingSeverity::Warning,
        )),
        (ScopeLevel::Master, _) => Some(finding(
            field,
            "scope-master",
            format!("{scope:?} is a master-account scope; only master account owners can grant it"),
            format!(
                "use {:?} unless this is a master account",
                scope.replace(":master", ":admin")
            ),
            FindingSeverity::Warning,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granular_scopes_parse() {
        let s = parse_zoom_scope("dashboard:read:list_zoomrooms:admin").expect("valid");
        assert_eq!(s.product, "dashboard");
        assert_eq!(s.resource, "list_zoomrooms");
        assert_eq!(s.level, ScopeLevel::Admin);
        assert_eq!(
            parse_zoom_scope("user:read:user").expect("valid").level,
            ScopeLevel::User
        );
        assert_eq!(
            parse_zoom_scope("user:read:user:master").expect("valid").level,
            ScopeLevel::Master
        );
    }

    #[test]
    fn bad_scopes_are_named() {
        assert_eq!(parse_zoom_scope(""), Err(ScopeProblem::Empty));
        assert_eq!(parse_zoom_scope("User:read:user"), Err(ScopeProblem::UpperCase));
        assert_eq!(parse_zoom_scope("user read"), Err(ScopeProblem::BadCharacters));
        assert_eq!(parse_zoom_scope("user:read:admin"), Err(ScopeProblem::Classic));
        assert!(matches!(
            parse_zoom_scope("user:fetch:user"),
            Err(ScopeProblem::Shape(_))
        ));
        assert!(matches!(
            parse_zoom_scope("user:read:user:root"),
            Err(ScopeProblem::Shape(_))
        ));
        assert!(matches!(parse_zoom_scope("a:b"), Err(ScopeProblem::Shape(_))));
        assert!(matches!(parse_zoom_scope("user::user"), Err(ScopeProblem::Shape(_))));
    }

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(
            suggest("dashboard:read:list_zoomroom:admin", known()),
            Some("dashboard:read:list_zoomrooms:admin")
        );
        assert_eq!(suggest("phone:read:call_log:admin", known()), None);
    }

    fn app(usage: &str, scopes: &[(&str, Option<&str>)]) -> Value {
        let scopes: Vec<Value> = scopes
            .iter()
            .map(|(scope, preset)| match preset {
                Some(p) => {
                    serde_json::json!({"scope": scope, "source": {"kind": "preset", "name": p}, "optional": false})
                }
                None => serde_json::json!({"scope": scope, "source": {"kind": "explicit"}, "optional": false}),
            })
            .collect();
        serde_json::json!({"usage": usage, "scopes": scopes})
    }

    fn found(f: &[Finding]) -> Vec<(&str, &str, FindingSeverity)> {
        f.iter()
            .map(|f| (f.field.as_str(), f.rule.as_str(), f.severity))
            .collect()
    }

    #[test]
    fn explicit_scopes_get_every_rule_and_preset_scopes_only_the_usage_rule() {
        let a = app(
            "user-managed",
            &[
                ("report:read:user:admin", Some("p")),
                ("dashboard:read:list_zoomrooms:admin", Some("p")),
                ("user:read:admin", None),
                ("user:read:usr", None),
                ("Meeting:read:meeting", None),
            ],
        );
        assert_eq!(
            found(&check(&a)),
            [
                ("usage", "scope-admin-usage", FindingSeverity::Error),
                ("scopes[2]", "scope-classic", FindingSeverity::Warning),
                ("scopes[3]", "scope-unknown", FindingSeverity::Warning),
                ("scopes[4]", "scope-grammar", FindingSeverity::Error),
            ]
        );
        let admin = app(
            "admin-managed",
            &[("user:read:user", None), ("user:read:user:master", None)],
        );
        assert_eq!(
            found(&check(&admin)),
            [
                ("scopes[0]", "scope-level-mix", FindingSeverity::Warning),
                ("scopes[1]", "scope-master", FindingSeverity::Warning),
            ]
        );
    }
}
