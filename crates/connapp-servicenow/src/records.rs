//! Matching a consumer platform's record specs (`connapp_plugin_api::contract`)
//! against an instance's rows: `$ref:KEY` and `$secret:client-id` resolved,
//! a record's `find` fields as one encoded query (`a=1^b=2`), the desired
//! fields, and what differs from a row the Table API returned.

use std::collections::{BTreeMap, HashMap};

use connapp_plugin_api::contract::RecordSpec;
use serde_json::Value;

use crate::Record;

/// A string field of a row the instance returned.
pub fn row_str(r: &Record, k: &str) -> String {
    r.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// Resolves `$ref:` and `$secret:` (client-id only: the one non-secret secret).
pub fn resolve(v: &str, ids: &HashMap<String, String>, client_id: &str) -> Option<String> {
    if let Some(k) = v.strip_prefix("$ref:") {
        return ids.get(k).cloned();
    }
    if v == "$secret:client-id" {
        return Some(client_id.to_string());
    }
    Some(v.to_string())
}

/// The encoded query that finds a record, when every part is known.
pub fn find_query(find: &BTreeMap<String, String>, ids: &HashMap<String, String>, client_id: &str) -> Option<String> {
    let mut parts = Vec::new();
    for (f, v) in find {
        parts.push(format!("{f}={}", resolve(v, ids, client_id)?));
    }
    Some(parts.join("^"))
}

/// Resolved desired fields (unresolvable references become `(new KEY)`).
pub fn wanted(spec: &RecordSpec, ids: &HashMap<String, String>, client_id: &str) -> Vec<(String, String)> {
    spec.fields
        .iter()
        .map(|(f, raw)| {
            let value =
                resolve(raw, ids, client_id).unwrap_or_else(|| format!("(new {})", raw.trim_start_matches("$ref:")));
            (f.clone(), value)
        })
        .collect()
}

/// The fields of `row` that differ from `want`: (field, have, want).
pub fn diff(row: &Record, want: &[(String, String)]) -> Vec<(String, String, String)> {
    want.iter()
        .filter_map(|(f, v)| {
            let have = row.get(f).and_then(Value::as_str).unwrap_or("");
            (have != v).then(|| (f.clone(), have.to_string(), v.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn references_and_the_client_id_resolve() {
        let mut ids = HashMap::new();
        ids.insert("provider".to_string(), "abc".to_string());
        assert_eq!(resolve("$ref:provider", &ids, "cid").as_deref(), Some("abc"));
        assert_eq!(resolve("$ref:profile", &ids, "cid"), None);
        assert_eq!(resolve("$secret:client-id", &ids, "cid").as_deref(), Some("cid"));
        let spec: RecordSpec = serde_json::from_value(json!({"key": "profile", "table": "t", "label": "l",
                          "find": {"oauth_entity": "$ref:provider", "default": "true"},
                          "fields": {"oauth_entity": "$ref:provider", "x": "$ref:later"}}))
        .expect("spec");
        let q = find_query(&spec.find, &ids, "cid").expect("query");
        assert!(q.contains("oauth_entity=abc") && q.contains("default=true"));
        let w = wanted(&spec, &ids, "cid");
        assert!(w.contains(&("x".to_string(), "(new later)".to_string())));
    }

    #[test]
    fn diff_names_changed_fields_only() {
        let row: Record = serde_json::from_value(json!({"a": "1", "b": "2"})).expect("row");
        let d = diff(
            &row,
            &[
                ("a".into(), "1".into()),
                ("b".into(), "3".into()),
                ("c".into(), "x".into()),
            ],
        );
        assert_eq!(
            d,
            vec![
                ("b".into(), "2".into(), "3".into()),
                ("c".into(), String::new(), "x".into())
            ]
        );
    }
}
