//! The evidence of an `apply` or a `rotate`: which documents it concerns
//! (the subjects) and what it did (the predicate), assembled from the work
//! done and a `verify` run after it. The format is
//! [`connapp_engine::evidence`]'s; the front end writes the files.
//!
//! Nothing here holds a secret: credentials appear as fingerprints, and
//! ServiceNow's write-only fields as `(write-only)`.

use connapp_core::{App, SecretKind};
use connapp_engine::Error;
use connapp_engine::evidence::Subject;
use connapp_engine::manage::{PlanAction, RecordAction};
use connapp_engine::rotation::{Rotation, fingerprint};
use connapp_engine::tokens::{AppCtx, Event};
use serde_json::{Value, json};

use crate::apply::{Session, Work};
use crate::rotate::iso;
/// What a change request gets: its plans, the files, what landed.
pub use connapp_servicenow::change::{Attached, File as ChangeFile, Plans as ChangePlans};

/// The declaration as a subject.
pub fn declaration(bytes: &[u8]) -> Subject {
    Subject {
        name: "declaration.toml".into(),
        bytes: bytes.to_vec(),
    }
}

/// The fingerprints of `app`'s stored credentials (never their values).
fn credentials(c: &AppCtx<'_>) -> Result<Value, Error> {
    let mut m = serde_json::Map::new();
    for kind in SecretKind::ALL {
        let fp = c.stored(kind)?.map(|v| fingerprint(&v));
        m.insert(kind.as_str().to_string(), json!(fp));
    }
    Ok(Value::Object(m))
}

/// What every evidence predicate says of its run.
fn run_facts(s: &Session<'_, '_>, command: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("command".into(), json!(command));
    m.insert("ran_by".into(), json!(connapp_engine::rotation::who()));
    m.insert("at".into(), json!(iso(s.shared.now())));
    m.insert("connapp".into(), json!(env!("CARGO_PKG_VERSION")));
    m
}

/// `verify`'s rows for `app` after the change, and its credentials' fingerprints.
fn verify_rows(s: &Session<'_, '_>, file: &str, app: &App) -> Result<(Value, Value), Error> {
    let c = AppCtx::load(s.reg, s.decl, Some(&app.name), s.shared)?;
    s.obs.event(Event::Step {
        app: &app.name,
        what: "verifying after the change, for the evidence",
    });
    let rows = crate::verify::run(s.reg, s.decl, file, &c, s.obs)?;
    Ok((json!(rows), credentials(&c)?))
}

/// The subjects and predicate of an `apply` of `work` (after it ran):
/// per app the provider's settings before and after and the consumer's
/// records, and `verify`'s rows. `decl_file` names the declaration, `decl`
/// holds its bytes.
pub fn of_apply(
    s: &Session<'_, '_>,
    work: &[Work<'_, '_>],
    decl_file: &str,
    decl: &[u8],
) -> Result<(Vec<Subject>, Value), Error> {
    let mut subjects = vec![declaration(decl)];
    let mut apps = Vec::new();
    for w in work {
        let name = &w.app.name;
        if w.plan.action != PlanAction::Unmanaged {
            let after = if w.plan.merged.is_null() {
                &w.plan.live
            } else {
                &w.plan.merged
            };
            subjects.push(Subject::json(&format!("{name}.provider-before.json"), &w.plan.live));
            subjects.push(Subject::json(&format!("{name}.provider-after.json"), after));
        }
        if let Some(t) = &w.consumer_plan {
            subjects.push(Subject::json(&format!("{name}.consumer-records.json"), &json!(t)));
        }
        let (rows, creds) = verify_rows(s, decl_file, w.app)?;
        apps.push(json!({
            "app": name,
            "plan": w.json(),
            "scopes": w.app.scopes.iter().map(|x| x.scope.clone()).collect::<Vec<_>>(),
            "credentials": creds,
            "verify": rows,
        }));
    }
    let mut p = run_facts(s, "apply");
    p.insert("apps".into(), json!(apps));
    Ok((subjects, Value::Object(p)))
}

/// The subjects and predicate of a rotation (as it stands now): the
/// rotation record with its fingerprints and test results, the provider's
/// settings (a rotation leaves them as they were; exported when connapp
/// manages the app), the consumer's records (their write-only Client Secret
/// shown as such), and `verify`'s rows.
pub fn of_rotation(
    s: &Session<'_, '_>,
    app: &App,
    rotation: &Rotation,
    decl_file: &str,
    decl: &[u8],
) -> Result<(Vec<Subject>, Value), Error> {
    let record = json!(rotation);
    let mut subjects = vec![
        declaration(decl),
        Subject::json(&format!("{}.rotation.json", app.name), &record),
    ];
    let c = AppCtx::load(s.reg, s.decl, Some(&app.name), s.shared)?;
    if app.managed_by.is_some() {
        let admin = crate::apply::provider_admin(s.reg, s.decl, &c, s.obs)?;
        let id = match &app.app_id {
            Some(id) => Some(id.clone()),
            None => c
                .stored(SecretKind::AppId)?
                .map(|v| String::from_utf8_lossy(&v).into_owned()),
        };
        if let Some(id) = id {
            s.obs.event(Event::Step {
                app: &app.name,
                what: &format!("exporting the {} app's settings, for the evidence", admin.provider()),
            });
            let settings = admin.export(app, &id)?;
            subjects.push(Subject::json(
                &format!("{}.provider-settings.json", app.name),
                &settings,
            ));
        }
    }
    if app.target.is_some()
        && let Some(mut end) =
            crate::apply::consumer_end(s.reg, AppCtx::load(s.reg, s.decl, Some(&app.name), s.shared)?)?
    {
        let records = end.run(connapp_engine::manage::Mode::Plan)?;
        subjects.push(Subject::json(
            &format!("{}.consumer-records.json", app.name),
            &json!(records),
        ));
    }
    let (rows, creds) = verify_rows(s, decl_file, app)?;
    let mut p = run_facts(s, "rotate client-secret");
    p.insert(
        "apps".into(),
        json!([{
            "app": app.name,
            "rotation": record,
            "scopes": app.scopes.iter().map(|x| x.scope.clone()).collect::<Vec<_>>(),
            "credentials": creds,
            "verify": rows,
        }]),
    );
    Ok((subjects, Value::Object(p)))
}

/// `verify`'s rows of the app in a predicate, counted by result.
fn verify_counts(predicate: &Value, app: &str) -> String {
    let rows: Vec<&Value> = predicate["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["app"] == app)
        .flat_map(|a| a["verify"].as_array().into_iter().flatten())
        .collect();
    let n = |r: &str| rows.iter().filter(|x| x["result"] == r).count();
    let failing: Vec<String> = rows
        .iter()
        .filter(|x| x["result"] == "fail")
        .map(|x| {
            format!(
                "{} {}",
                x["check"].as_str().unwrap_or(""),
                x["item"].as_str().unwrap_or("")
            )
        })
        .collect();
    let mut s = format!(
        "{} checks: {} ok, {} warn, {} fail, {} skipped",
        rows.len(),
        n("ok"),
        n("warn"),
        n("fail"),
        n("skip")
    );
    if !failing.is_empty() {
        s.push_str(&format!(" (failing: {})", failing.join("; ")));
    }
    s
}

/// The plans a change request gets for an `apply` of `work`.
pub fn apply_plans(work: &[Work<'_, '_>], predicate: &Value, evidence_name: &str) -> ChangePlans {
    let mut implementation = vec![format!(
        "connapp apply (connapp {}), evidence {evidence_name}:",
        env!("CARGO_PKG_VERSION")
    )];
    let mut backout = vec!["connapp:".to_string()];
    let mut test = vec!["connapp verify after the change:".to_string()];
    for w in work {
        let name = &w.app.name;
        if w.plan.action != PlanAction::Unmanaged {
            implementation.push(format!(
                "- {name}: {} the {} app {} ({} setting change(s))",
                w.plan.action,
                w.plan.provider,
                w.plan.app_id.as_deref().unwrap_or(""),
                w.plan.changes.len()
            ));
            for c in &w.plan.changes {
                implementation.push(format!("    {}", c.line()));
            }
            backout.push(format!(
                "- {name}: `connapp apply {name} --rollback` restores the {} app's settings saved before this change (the host that ran it keeps them)",
                w.plan.provider
            ));
        }
        if let Some(t) = &w.consumer_plan {
            let changed: Vec<&connapp_engine::manage::Item> =
                t.items.iter().filter(|i| i.action != RecordAction::None).collect();
            implementation.push(format!(
                "- {name}: {} {}: {} record(s) created, updated or removed",
                t.consumer,
                t.instance,
                changed.len()
            ));
            for i in changed {
                implementation.push(format!("    {} {} ({})", i.action, i.label, i.table));
            }
            backout.push(format!(
                "- {name}: the records listed in the implementation plan are connapp's; remove or edit them in {} if the change is backed out",
                t.consumer
            ));
        }
        test.push(format!("- {name}: {}", verify_counts(predicate, name)));
    }
    test.push(format!(
        "The evidence ({evidence_name}) and the verify report are attached; `connapp evidence verify {evidence_name}` checks their digests."
    ));
    ChangePlans {
        implementation: implementation.join("\n"),
        backout: backout.join("\n"),
        test: test.join("\n"),
    }
}

/// The plans a change request gets for a rotation.
pub fn rotation_plans(rot: &Rotation, predicate: &Value, evidence_name: &str) -> ChangePlans {
    let app = &rot.app;
    let steps: Vec<String> = rot
        .history
        .iter()
        .map(|h| format!("    {} {}: {}", iso(h.at), h.step.as_str(), h.note))
        .collect();
    ChangePlans {
        implementation: format!(
            "connapp rotate client-secret {app} (connapp {}), evidence {evidence_name}: a new Client Secret at the provider while the old one keeps working until {}, handed to the consumer, tested, then made current (old {}, new {}).\n{}",
            env!("CARGO_PKG_VERSION"),
            iso(rot.revoke_old_at),
            rot.old_fingerprint,
            rot.new_fingerprint.as_deref().unwrap_or("not issued yet"),
            steps.join("\n")
        ),
        backout: format!(
            "Before the finish step: `connapp rotate client-secret {app} --abort` puts the old secret back on both ends (it works until {}; the provider cannot cancel a rotation). After it: rotate again.",
            iso(rot.revoke_old_at)
        ),
        test: format!(
            "The test step: connapp's own token with the new secret: {}; the consumer's own use of it: {}.\nconnapp verify after the change: {}.\nThe evidence ({evidence_name}) and the verify report are attached; `connapp evidence verify {evidence_name}` checks their digests.",
            rot.tested.as_ref().map_or("not run", |t| t.provider.word()),
            rot.tested.as_ref().map_or("not run", |t| t.consumer.word()),
            verify_counts(predicate, app)
        ),
    }
}

/// The verify report of `app` in a predicate, as a file to attach.
pub fn verify_report(predicate: &Value, app: &str) -> Vec<u8> {
    let rows: Vec<&Value> = predicate["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["app"] == app)
        .collect();
    let mut v = serde_json::to_vec_pretty(&json!({"app": app, "verify": rows.first().map(|a| &a["verify"])}))
        .unwrap_or_default();
    v.push(b'\n');
    v
}

/// Fills change request `number` on `app`'s instance with `plans` and
/// attaches `files`.
pub fn to_change(
    s: &Session<'_, '_>,
    app: &App,
    number: &str,
    plans: &ChangePlans,
    files: &[ChangeFile<'_>],
) -> Result<Attached, Error> {
    if app.target.as_ref().map(|t| t.kind.as_str()) != Some(connapp_servicenow::PLATFORM) {
        return Err(Error::invalid(format!(
            "{}: --change needs a ServiceNow target to file the change request on",
            app.name
        )));
    }
    let c = AppCtx::load(s.reg, s.decl, Some(&app.name), s.shared)?;
    s.obs.event(Event::Step {
        app: &app.name,
        what: &format!("attaching the evidence to change request {number}"),
    });
    connapp_servicenow::change::attach(&c, number, plans, files)
}
