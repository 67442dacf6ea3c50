//! The platform contract's JSON answers as types (feature `contract`): what
//! a consumer platform plugin returns from `consumer_records`, checked
//! strictly on the host side. A missing, mistyped or unknown field is an
//! error naming the field's path — never a silent empty string.
//!
//! Placeholders in values: `$ref:KEY` (the sys_id of an earlier record or
//! lookup) and `$secret:KIND` (a stored secret).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything a consumer platform wants for one app.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerRecords {
    /// Records found (never written) before the others, e.g. an alias.
    #[serde(default)]
    pub lookups: Vec<Lookup>,
    /// Records to find by `find` and create or update with `fields`, in order.
    pub records: Vec<RecordSpec>,
    /// Records to delete when no record above keeps them.
    #[serde(default)]
    pub prune: Vec<Prune>,
    /// The consumer's own consent link, if it consents itself.
    #[serde(default)]
    pub consent: Option<Consent>,
    /// The redirect URL the consumer will send to the provider.
    #[serde(default)]
    pub redirect_url: Option<String>,
}

/// A record looked up, not written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// The name `$ref:` uses.
    pub key: String,
    /// The table.
    pub table: String,
    /// The consumer's query.
    pub query: String,
    /// For humans.
    pub label: String,
    /// A match to skip (e.g. another product's alias).
    #[serde(default)]
    pub not: Option<String>,
}

/// A record to create or update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// The name `$ref:` uses.
    pub key: String,
    /// The table.
    pub table: String,
    /// For humans.
    pub label: String,
    /// The fields that identify it.
    pub find: BTreeMap<String, String>,
    /// The fields it must have.
    pub fields: BTreeMap<String, String>,
    /// Fields written once, never read back (secrets).
    #[serde(default)]
    pub write_only: BTreeMap<String, String>,
    /// The key of the record whose creation also creates this one.
    #[serde(default)]
    pub created_by: Option<String>,
}

/// Records of a table to delete unless a record above has their key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prune {
    /// The table.
    pub table: String,
    /// Which of its records are candidates.
    pub find: BTreeMap<String, String>,
    /// Keys with this prefix keep theirs.
    pub keep_prefix: String,
}

/// The consumer's consent link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// The path on the consumer.
    pub path: String,
    /// Its query.
    pub query: BTreeMap<String, String>,
}

/// A plugin answer that does not fit the contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractError {
    /// The field, e.g. `records[3].table` (`.` for the whole answer).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for ContractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ContractError {}

/// Parses a `consumer_records` answer strictly.
pub fn parse_consumer_records(json: &str) -> Result<ConsumerRecords, ContractError> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        // serde's message names the field itself; keep it short.
        let message = e.inner().to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        ContractError { path, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"records":[{"key":"p","table":"t","label":"l","find":{"name":"n"},"fields":{"name":"n"}}]}"#;

    #[test]
    fn a_good_answer_parses_and_a_bad_one_names_the_field() {
        let r = parse_consumer_records(GOOD).expect("good");
        assert_eq!(r.records[0].table, "t");
        let e = parse_consumer_records(r#"{"records":[{"key":"p","label":"l","find":{},"fields":{}}]}"#)
            .expect_err("no table");
        assert_eq!(e.path, "records[0]");
        assert!(e.message.contains("table"), "{e}");
        let e = parse_consumer_records(r#"{"records":[{"key":"p","table":3,"label":"l","find":{},"fields":{}}]}"#)
            .expect_err("not a string");
        assert_eq!(e.path, "records[0].table");
        let e = parse_consumer_records(r#"{"records":[],"recrods":[]}"#).expect_err("unknown");
        assert!(e.message.contains("recrods"), "{e}");
        assert!(parse_consumer_records("not json").is_err());
    }
}
