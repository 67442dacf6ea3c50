//! A change request as the place a change's evidence goes
//! (`docs/operations.md` §5): find it by number, fill its implementation,
//! back-out and test plans (appended to what a person wrote, never over
//! it), and attach files through the Attachment API.

use connapp_engine::Error;
use connapp_engine::tokens::AppCtx;
use serde_json::{Map, Value};

use crate::consumer::{error, instance};

/// The plans a change request carries, as connapp writes them.
#[derive(Clone, Debug, Default)]
pub struct Plans {
    /// `implementation_plan`.
    pub implementation: String,
    /// `backout_plan`.
    pub backout: String,
    /// `test_plan`.
    pub test: String,
}

/// A file to attach.
#[derive(Clone, Debug)]
pub struct File<'a> {
    /// Its name on the change request.
    pub name: String,
    /// Its media type.
    pub content_type: &'static str,
    /// Its bytes (never a secret).
    pub bytes: &'a [u8],
}

/// What landed on the change request.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Attached {
    /// The change request's number.
    pub number: String,
    /// Its sys_id.
    pub sys_id: String,
    /// The plan fields written.
    pub fields: Vec<String>,
    /// Each file attached: its name and the attachment's sys_id.
    pub files: Vec<(String, String)>,
}

/// `existing` with `ours` after it (once: a second run adds nothing).
fn appended(existing: &str, ours: &str) -> String {
    let existing = existing.trim_end();
    if existing.is_empty() {
        ours.to_string()
    } else if existing.contains(ours.trim()) {
        existing.to_string()
    } else {
        format!("{existing}\n\n{ours}")
    }
}

/// Fills the plans of change request `number` on `c`'s app's instance and
/// attaches `files` to it.
pub fn attach(c: &AppCtx<'_>, number: &str, plans: &Plans, files: &[File<'_>]) -> Result<Attached, Error> {
    let name = &c.app.name;
    if number.is_empty() || !number.chars().all(|ch| ch.is_ascii_alphanumeric()) {
        return Err(Error::invalid(format!(
            "{number:?} is not a change request number (letters and digits, e.g. CHG0030001)"
        )));
    }
    let inst = instance(c)?;
    const TABLE: &str = "change_request";
    let rows = c
        .shared
        .rt
        .block_on(inst.list(
            TABLE,
            &format!("number={number}"),
            &["sys_id", "implementation_plan", "backout_plan", "test_plan"],
        ))
        .map_err(|e| error(name, e))?;
    let Some(row) = rows.first() else {
        return Err(
            Error::failure(format!("{} has no change request {number}", inst.base())).hint(
                "check the number (Change > All in ServiceNow), and that the instance user may read change requests (the itil role)",
            ),
        );
    };
    let field = |f: &str| row.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let sys_id = field("sys_id");
    let mut body = Map::new();
    for (f, ours) in [
        ("implementation_plan", &plans.implementation),
        ("backout_plan", &plans.backout),
        ("test_plan", &plans.test),
    ] {
        let now = appended(&field(f), ours);
        if now != field(f) {
            body.insert(f.to_string(), Value::String(now));
        }
    }
    let fields: Vec<String> = body.keys().cloned().collect();
    if !body.is_empty() {
        c.shared
            .rt
            .block_on(inst.patch(TABLE, &sys_id, &Value::Object(body), false))
            .map_err(|e| error(name, e))?;
    }
    let mut attached = Vec::new();
    for f in files {
        let meta = c
            .shared
            .rt
            .block_on(inst.attach(TABLE, &sys_id, &f.name, f.content_type, f.bytes))
            .map_err(|e| error(name, e))?;
        attached.push((
            f.name.clone(),
            meta.get("sys_id").and_then(Value::as_str).unwrap_or("").to_string(),
        ));
    }
    Ok(Attached {
        number: number.to_string(),
        sys_id,
        fields,
        files: attached,
    })
}

#[cfg(test)]
mod tests {
    use super::appended;

    #[test]
    fn plans_are_appended_once_and_never_replace_a_persons_text() {
        assert_eq!(appended("", "ours"), "ours");
        assert_eq!(appended("theirs\n", "ours"), "theirs\n\nours");
        assert_eq!(appended("theirs\n\nours", "ours"), "theirs\n\nours");
    }
}
