//! The `--json` contract (`docs/json.md`): every reporting command prints one
//! object that carries `schema_version` and `command`, and validates
//! against the published schema, `docs/connapp-output.schema.json`, judged
//! by an independent validator (the `jsonschema` crate), not by hand-written
//! checks. One journey on the sandboxes produces every report.

use std::path::Path;

use connapp_sandbox::servicenow::{Instance, SnSeed};
use serde_json::Value;

use crate::support::{Run, Sandbox, built, managed_user, zoom_with_management};

const MGMT_SECRET: &str = "json-contract-mgmt-secret";

pub(crate) fn schema() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/connapp-output.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::draft202012::new(&schema).expect("the schema is a valid JSON Schema")
}

/// Checks one report: its command, its version, and the schema.
pub(crate) fn judged(v: &jsonschema::Validator, command: &str, run: &Run) -> Value {
    let j = run.json();
    assert_eq!(j["command"], command, "{j:#}");
    assert_eq!(j["schema_version"], 1, "{j:#}");
    let errors: Vec<String> = v
        .iter_errors(&j)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{command}: {errors:#?}\n{j:#}");
    j
}

#[test]
fn every_json_report_follows_the_published_schema() {
    let v = schema();
    // The schema has teeth: a report with a renamed field fails it.
    let renamed = serde_json::json!({"schema_version": 1, "command": "revoke", "name": "x", "revoked": true});
    assert!(!v.is_valid(&renamed), "the schema accepts a renamed field");

    let fresh = Sandbox::new(&built().full);
    judged(&v, "version", &fresh.run(&["version", "--json"], None).ok());
    judged(
        &v,
        "init",
        &fresh.run(&["init", "--instance", "acme", "--json"], None).ok(),
    );

    let sn = Instance::start(SnSeed::default()).expect("servicenow");
    let zoom = zoom_with_management(MGMT_SECRET);
    let user = managed_user(&zoom, &sn.base_url(), MGMT_SECRET, &[]);
    let run = |args: &[&str], input: Option<&[u8]>| user.run(args, input);
    judged(&v, "check", &run(&["check", "--json"], None).ok());
    judged(&v, "plugins list", &run(&["plugins", "list", "--json"], None).ok());
    judged(
        &v,
        "plugins info",
        &run(&["plugins", "info", "store-file", "--json"], None).ok(),
    );
    for (kind, value) in [("instance-user", "admin"), ("instance-password", "admin-password")] {
        judged(
            &v,
            "secrets set",
            &run(
                &["secrets", "set", kind, "--app", "dex-zoom", "--from-stdin", "--json"],
                Some(value.as_bytes()),
            )
            .ok(),
        );
    }
    judged(&v, "plan", &run(&["plan", "--json"], None).fails_with(7));
    let applied = judged(&v, "apply", &run(&["apply", "--yes", "--json"], None).ok());
    assert_eq!(applied["applied"], true);
    judged(&v, "apply", &run(&["apply", "--yes", "--json"], None).ok());
    judged(&v, "secrets list", &run(&["secrets", "list", "--json"], None).ok());
    judged(
        &v,
        "login",
        &run(&["login", "--user-hint", "owner", "--timeout", "20", "--json"], None).ok(),
    );
    judged(&v, "token", &run(&["token", "--json"], None).ok());
    judged(&v, "refresh", &run(&["refresh", "--json"], None).ok());
    // ServiceNow has not consented: status says so (exit 5) in the contract; --offline reads only the store.
    let st = judged(&v, "status", &run(&["status", "--json"], None).fails_with(5));
    assert_eq!(st["apps"][0]["consumer"]["state"], "none", "{st:#}");
    judged(&v, "status", &run(&["status", "--offline", "--json"], None).ok());
    // ServiceNow has not consented: verify fails, and still reports.
    judged(&v, "verify", &run(&["verify", "--json"], None).fails_with(1));
    // A webhook that fails its check still reports (exit 1).
    let dir = user.path();
    std::fs::write(dir.join("h.txt"), "x-zm-signature: v0=00\nx-zm-request-timestamp: 1\n").expect("headers");
    std::fs::write(dir.join("b.json"), r#"{"event":"meeting.ended"}"#).expect("body");
    user.set_secret("secret-token", b"json-contract-secret-token");
    judged(
        &v,
        "webhook verify",
        &run(
            &["webhook", "verify", "--headers", "h.txt", "--body", "b.json", "--json"],
            None,
        )
        .fails_with(1),
    );
    // An update keeps the manifest it replaced: that one is rolled back to.
    user.edit("scopes = []", "scopes = [\"meeting:read:meeting:admin\"]");
    judged(&v, "apply", &run(&["apply", "--yes", "--json"], None).ok());
    judged(
        &v,
        "rollback",
        &run(&["apply", "--rollback", "--yes", "--json"], None).ok(),
    );
    judged(
        &v,
        "secrets rm",
        &run(&["secrets", "rm", "secret-token", "--yes", "--json"], None).ok(),
    );
    judged(
        &v,
        "revoke",
        &run(&["revoke", "dex-zoom", "--yes", "--json"], None).ok(),
    );
    // After the revoke, status still reports in the contract (and fails: consent needed).
    judged(&v, "status", &run(&["status", "--json"], None).fails_with(5));
}
