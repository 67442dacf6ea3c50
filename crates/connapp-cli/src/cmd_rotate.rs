//! `connapp rotate client-secret`: asks before anything changes, runs the
//! rotation (`connapp_clients::rotate`), prints each step as it lands, what
//! the test step proved, and the provider steps a person must take when
//! connapp cannot rotate there itself.

use std::io::Write;

use connapp_clients::apply::Session;
use connapp_clients::rotate::{self, Action, Options, Outcome};
use connapp_core::SecretKind;
use connapp_engine::rotation::Step;
use serde_json::json;

use crate::cli::{Global, RotateArgs};
use crate::cmd_token::{self, Terminal};
use crate::error::CliError;
use crate::{cmd_evidence, cmd_secrets, ctx, render};

pub fn client_secret(g: &Global, a: RotateArgs) -> Result<(), CliError> {
    let (reg, path, decl) = ctx::declared(g)?;
    let app = decl
        .app(a.app.as_deref())
        .map_err(|e| CliError::from(connapp_engine::Error::invalid(e.to_string())))?
        .clone();
    let action = if a.abort {
        Action::Abort
    } else if a.resume {
        Action::Resume
    } else {
        Action::Start
    };
    let question = match action {
        Action::Start => format!("Rotate the Client Secret of {} on both ends?", app.name),
        Action::Resume => format!("Continue the rotation of {}'s Client Secret?", app.name),
        Action::Abort => format!("Undo the rotation of {}'s Client Secret?", app.name),
    };
    ctx::confirm(
        &ctx::Confirm {
            question: &question,
            action: "rotate a secret",
            review: "",
            strict: false,
        },
        a.yes,
    )?;
    let new_secret = if a.new_secret_stdin {
        Some(cmd_secrets::read_value(SecretKind::ClientSecret, &app.name, true)?)
    } else {
        None
    };
    let shared = cmd_token::shared_of(&decl, &app.name)?;
    let term = Terminal::new(g.quiet, a.json);
    let session = Session {
        reg,
        decl: &decl,
        shared: &shared,
        obs: &term,
    };
    let mut opts = Options {
        overlap_secs: a.overlap,
        wait_secs: a.wait,
        new_secret,
    };
    let mut outcome = rotate::rotate(&session, &app, action, &opts)?;
    // By hand on a terminal: show the provider's steps, then ask for the secret.
    if !outcome.manual_steps.is_empty() && !a.json && ctx::interactive() {
        print_manual(&outcome)?;
        let secret = cmd_secrets::read_value(SecretKind::ClientSecret, &app.name, false)?;
        opts.new_secret = Some(secret);
        outcome = rotate::rotate(&session, &app, Action::Resume, &opts)?;
    }
    let mut evidence = Vec::new();
    if a.evidence.evidence.is_some() {
        let (subjects, predicate) = connapp_clients::evidence::of_rotation(
            &session,
            &app,
            &outcome.rotation,
            &path.display().to_string(),
            &ctx::declaration_bytes(&path)?,
        )?;
        if let Some(written) = cmd_evidence::write(&a.evidence, &subjects, predicate.clone())? {
            evidence.push(written.line.clone());
            if let Some(number) = &a.evidence.change {
                let plans = connapp_clients::evidence::rotation_plans(&outcome.rotation, &predicate, &written.name);
                let report = connapp_clients::evidence::verify_report(&predicate, &app.name);
                evidence.push(cmd_evidence::file_on_change(
                    &session, &app, number, &plans, &written, &subjects, &report,
                )?);
            }
        }
    }
    drop(term);
    if a.json {
        let mut v = serde_json::to_value(&outcome.rotation)
            .map_err(|e| CliError::failure(format!("cannot render the report: {e}")))?;
        if let Some(m) = v.as_object_mut() {
            m.insert("manual_steps".into(), json!(outcome.manual_steps));
        }
        return ctx::print_json("rotate", &v);
    }
    if g.quiet {
        return Ok(());
    }
    print_manual(&outcome)?;
    print_summary(&outcome)?;
    for line in evidence {
        println!("{line}");
    }
    Ok(())
}

fn print_manual(o: &Outcome) -> Result<(), CliError> {
    if o.manual_steps.is_empty() {
        return Ok(());
    }
    let mut out = render::stdout().lock();
    writeln!(out, "connapp cannot rotate at the provider itself; in its console:")?;
    for (i, step) in o.manual_steps.iter().enumerate() {
        for (j, line) in render::wrap_lines(step, render::WIDTH - 4).iter().enumerate() {
            if j == 0 {
                writeln!(out, "  {}. {line}", i + 1)?;
            } else {
                writeln!(out, "     {line}")?;
            }
        }
    }
    Ok(())
}

fn print_summary(o: &Outcome) -> Result<(), CliError> {
    let r = &o.rotation;
    let mut out = render::stdout().lock();
    if let Some(t) = &r.tested {
        writeln!(out, "Test of the new secret:")?;
        for (what, p) in [
            ("connapp's own token", &t.provider),
            ("the consumer's use", &t.consumer),
        ] {
            let line = format!("{what:<20} {:<9} {}", p.word(), p.detail());
            for l in render::wrap_lines(&line, render::WIDTH - 2) {
                writeln!(out, "  {l}")?;
            }
        }
    }
    let head = match r.step {
        Step::Finished => format!(
            "Rotation of {}'s Client Secret finished: {} is current.",
            r.app,
            r.new_fingerprint.as_deref().unwrap_or("the new secret")
        ),
        Step::Aborted => format!(
            "Rotation of {}'s Client Secret aborted: the old secret ({}) is current.",
            r.app, r.old_fingerprint
        ),
        s => format!(
            "Rotation of {}'s Client Secret stands at step {}; the old secret works until {}. Continue with `connapp rotate client-secret {} --resume`.",
            r.app,
            s.as_str(),
            rotate::iso(r.revoke_old_at),
            r.app
        ),
    };
    for l in render::wrap_lines(&head, render::WIDTH) {
        writeln!(out, "{l}")?;
    }
    Ok(())
}
