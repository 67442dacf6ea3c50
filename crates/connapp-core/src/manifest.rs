//! Merging a platform's desired provider configuration into the live one and
//! describing the difference. Pure JSON in, JSON out.
//!
//! The rules: objects merge key by key; any other desired value replaces the
//! live one; a desired `null` removes the key; live keys the desired value
//! does not name survive (they are settings connapp does not manage).

use serde::Serialize;
use serde_json::{Map, Value};

/// `live` with `desired` merged in.
pub fn merge(live: &Value, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => {
            let mut out = l.clone();
            for (k, dv) in d {
                match (out.get(k), dv) {
                    (_, Value::Null) => {
                        out.remove(k);
                    }
                    (Some(lv), Value::Object(_)) if lv.is_object() => {
                        let merged = merge(lv, dv);
                        out.insert(k.clone(), merged);
                    }
                    _ => {
                        out.insert(k.clone(), strip_nulls(dv));
                    }
                }
            }
            Value::Object(out)
        }
        (_, d) => strip_nulls(d),
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// What happened to one setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Present after, absent before (or a list element added).
    Add,
    /// Present before, absent after (or a list element removed).
    Remove,
    /// Present in both with different values.
    Change,
}

/// One difference between two configurations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The setting's JSON path, e.g. `oauth_information.scopes`.
    pub path: String,
    /// Added, removed or changed.
    pub kind: ChangeKind,
    /// The value before (`null` for additions).
    pub before: Option<Value>,
    /// The value after (`null` for removals).
    pub after: Option<Value>,
}

impl Change {
    /// One line for humans: `+ path: value`, `- path: value`, `~ path: a -> b`.
    pub fn line(&self) -> String {
        let show = |v: &Option<Value>| v.as_ref().map(short).unwrap_or_default();
        match self.kind {
            ChangeKind::Add => format!("+ {}: {}", self.path, show(&self.after)),
            ChangeKind::Remove => format!("- {}: {}", self.path, show(&self.before)),
            ChangeKind::Change => match (&self.before, &self.after) {
                (Some(Value::String(b)), Some(Value::String(a))) if b.len() + a.len() > 120 => format!(
                    "~ {}: text changed ({} -> {} characters)",
                    self.path,
                    b.chars().count(),
                    a.chars().count()
                ),
                _ => format!("~ {}: {} -> {}", self.path, show(&self.before), show(&self.after)),
            },
        }
    }
}

/// A value in one line: strings quoted, list elements keyed by their
/// identity, long values cut (`--json` has them whole).
fn short(v: &Value) -> String {
    let s = one_line(v);
    if s.chars().count() > 100 {
        let cut: String = s.chars().take(97).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn one_line(v: &Value) -> String {
    match identity(v) {
        Some(id) if v.is_object() => {
            let rest: Vec<String> = v
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !IDENTITY_KEYS.contains(&k.as_str()))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if rest.is_empty() {
                id
            } else {
                format!("{id} ({})", rest.join(", "))
            }
        }
        _ => v.to_string(),
    }
}

/// Keys that identify an element of a list of objects (a scope, a subscription).
const IDENTITY_KEYS: &[&str] = &["scope", "endpoint_url", "name", "id"];

fn identity(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => IDENTITY_KEYS
            .iter()
            .find_map(|k| m.get(*k).and_then(Value::as_str).map(str::to_string)),
        _ => None,
    }
}

/// Every difference from `before` to `after`, in path order. Lists whose
/// elements have an identity (strings, objects with `scope`, `endpoint_url`,
/// ...) are compared element by element, so a scope added to a list of six
/// shows as one addition; other lists as a whole.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<Change>) {
    if before == after {
        return;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = join(path, k);
                match (b.get(k), a.get(k)) {
                    (Some(x), Some(y)) => walk(&p, x, y, out),
                    // A whole new (or removed) section: one line per setting in it.
                    (None, Some(y)) if expandable(y) => walk(&p, &empty_like(y), y, out),
                    (Some(x), None) if expandable(x) => walk(&p, x, &empty_like(x), out),
                    (Some(x), None) => out.push(Change {
                        path: p,
                        kind: ChangeKind::Remove,
                        before: Some(x.clone()),
                        after: None,
                    }),
                    (None, Some(y)) => out.push(Change {
                        path: p,
                        kind: ChangeKind::Add,
                        before: None,
                        after: Some(y.clone()),
                    }),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if b.iter().chain(a.iter()).all(|v| identity(v).is_some()) => {
            let ids = |l: &[Value]| l.iter().filter_map(identity).collect::<Vec<_>>();
            let (bi, ai) = (ids(b), ids(a));
            for (v, id) in b.iter().zip(&bi) {
                match ai.iter().position(|x| x == id) {
                    None => out.push(Change {
                        path: path.to_string(),
                        kind: ChangeKind::Remove,
                        before: Some(v.clone()),
                        after: None,
                    }),
                    Some(j) if &a[j] != v => out.push(Change {
                        path: path.to_string(),
                        kind: ChangeKind::Change,
                        before: Some(v.clone()),
                        after: Some(a[j].clone()),
                    }),
                    Some(_) => {}
                }
            }
            for (v, id) in a.iter().zip(&ai) {
                if !bi.contains(id) {
                    out.push(Change {
                        path: path.to_string(),
                        kind: ChangeKind::Add,
                        before: None,
                        after: Some(v.clone()),
                    });
                }
            }
            // Same elements in another order: Zoom keeps lists as given.
            if out.last().is_none_or(|c| c.path != path) && bi != ai {
                out.push(Change {
                    path: path.to_string(),
                    kind: ChangeKind::Change,
                    before: Some(before.clone()),
                    after: Some(after.clone()),
                });
            }
        }
        _ => out.push(Change {
            path: path.to_string(),
            kind: ChangeKind::Change,
            before: Some(before.clone()),
            after: Some(after.clone()),
        }),
    }
}

/// Objects and identity lists are compared member by member even when the
/// other side lacks them entirely.
fn expandable(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(l) => !l.is_empty() && l.iter().all(|x| identity(x).is_some()),
        _ => false,
    }
}

fn empty_like(v: &Value) -> Value {
    match v {
        Value::Object(_) => Value::Object(Map::new()),
        _ => Value::Array(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_keeps_unmanaged_settings_and_removes_nulls() {
        let live = json!({"a": {"x": 1, "keep": true}, "products": ["ZOOM_MEETING"], "subs": [1]});
        let desired = json!({"a": {"x": 2}, "subs": null, "new": {"n": null, "m": 1}});
        let m = merge(&live, &desired);
        assert_eq!(
            m,
            json!({"a": {"x": 2, "keep": true}, "products": ["ZOOM_MEETING"], "new": {"m": 1}})
        );
        assert_eq!(merge(&m, &desired), m, "merging twice changes nothing");
    }

    #[test]
    fn diff_names_added_and_removed_scopes_one_by_one() {
        let before =
            json!({"o": {"scopes": [{"scope": "a", "optional": false}, {"scope": "b", "optional": false}], "u": "x"}});
        let after =
            json!({"o": {"scopes": [{"scope": "a", "optional": true}, {"scope": "c", "optional": false}], "u": "y"}});
        let d = diff(&before, &after);
        let lines: Vec<String> = d.iter().map(Change::line).collect();
        assert_eq!(
            lines,
            vec![
                "~ o.scopes: a (optional=false) -> a (optional=true)",
                "- o.scopes: b (optional=false)",
                "+ o.scopes: c (optional=false)",
                "~ o.u: \"x\" -> \"y\"",
            ]
        );
        assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn new_sections_show_one_line_per_setting() {
        let d = diff(
            &json!({}),
            &json!({"o": {"u": "x", "scopes": [{"scope": "a", "optional": false}]}}),
        );
        let lines: Vec<String> = d.iter().map(Change::line).collect();
        assert_eq!(lines, vec!["+ o.scopes: a (optional=false)", "+ o.u: \"x\""]);
        let long = Change {
            path: "p".into(),
            kind: ChangeKind::Add,
            before: None,
            after: Some(json!("y".repeat(300))),
        };
        assert!(long.line().len() < 120);
    }

    #[test]
    fn reordered_lists_are_a_change_and_removed_keys_a_removal() {
        let d = diff(&json!({"l": ["a", "b"], "k": 1}), &json!({"l": ["b", "a"]}));
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].kind, ChangeKind::Remove);
        assert_eq!(d[1].path, "l");
        assert_eq!(d[1].kind, ChangeKind::Change);
    }
}
