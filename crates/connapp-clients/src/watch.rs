//! One pass of the scheduled watch: connapp's own grants refreshed when
//! older than a threshold (through the token service: journaled, single
//! flight — never the grant a consumer holds, which connapp never has), and
//! `verify`'s checks, which call no write API. What failed comes back as
//! [`Failure`]s; the hooks that tell someone are [`deliver`]ed once per new one.

use connapp_core::GrantKind;
use connapp_engine::Error;
use connapp_engine::tokens::{AppCtx, Event};
use connapp_engine::verify::Outcome;
pub use connapp_engine::watch::Failure;
use serde_json::Value;

use crate::apply::Session;

/// Runs one pass over every app of the declaration `decl_file` names.
pub fn pass(s: &Session<'_, '_>, apps: &[&str], decl_file: &str, refresh_older_than: u64) -> Vec<Failure> {
    let now = s.shared.now();
    let mut failures = Vec::new();
    for app in s.decl.apps.iter().filter(|a| apps.contains(&a.name.as_str())) {
        let name = &app.name;
        let c = match AppCtx::load(s.reg, s.decl, Some(name), s.shared) {
            Ok(c) => c,
            Err(e) => {
                failures.push(Failure::new(
                    name,
                    "load",
                    "",
                    &e.message,
                    e.hint.as_deref().unwrap_or(""),
                    now,
                ));
                continue;
            }
        };
        if app.oauth.grant == GrantKind::AuthorizationCode
            && let Ok(Some(rec)) = c.stored_record()
            && now.saturating_sub(rec.obtained_at) >= refresh_older_than
        {
            s.obs.event(Event::Step {
                app: name,
                what: "refreshing connapp's own grant (older than the watch's threshold)",
            });
            if let Err(e) = c.renew(s.obs) {
                failures.push(Failure::new(
                    name,
                    "refresh",
                    "connapp's own grant",
                    &e.message,
                    e.hint.as_deref().unwrap_or(""),
                    now,
                ));
            }
        }
        match crate::verify::run(s.reg, s.decl, decl_file, &c, s.obs) {
            Ok(rows) => {
                for r in rows.iter().filter(|r| r.result == Outcome::Fail) {
                    failures.push(Failure::new(name, r.check, &r.item, &r.detail, &r.fix, now));
                }
            }
            Err(e) => failures.push(Failure::new(
                name,
                "verify",
                "",
                &e.message,
                e.hint.as_deref().unwrap_or(""),
                now,
            )),
        }
    }
    failures
}

/// Where a new failure is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hook {
    /// A command run with `sh -c`, the JSON on its standard input.
    Command(String),
    /// An HTTP POST of the JSON.
    Url(String),
}

/// Tells `hook` about one failure (`payload`): the command must exit 0 in
/// 30 s, the URL answer 2xx.
pub fn deliver(s: &Session<'_, '_>, hook: &Hook, payload: &Value) -> Result<(), String> {
    match hook {
        Hook::Command(cmd) => {
            use std::io::Write;
            let mut child = std::process::Command::new("sh")
                .args(["-c", cmd])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot run the hook: {e}"))?;
            if let Some(mut i) = child.stdin.take() {
                let _ = i.write_all(payload.to_string().as_bytes());
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                match child.try_wait() {
                    Ok(Some(st)) if st.success() => return Ok(()),
                    Ok(Some(st)) => return Err(format!("the hook exited with {st}")),
                    Ok(None) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    Ok(None) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err("the hook did not finish in 30 s".into());
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        Hook::Url(url) => {
            let http = s.shared.http().map_err(|e| e.to_string())?;
            let r = s
                .shared
                .rt
                .block_on(http.post(url).json(payload).send())
                .map_err(|e| e.without_url().to_string())?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(format!("the hook's URL answered HTTP {}", r.status().as_u16()))
            }
        }
    }
}

/// The failures a pass found, as `Err` for the front end's exit code.
pub fn outcome(failures: &[Failure]) -> Result<(), Error> {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::failure(format!("the watch found {} failure(s)", failures.len())).hint("run `connapp verify`"))
    }
}
