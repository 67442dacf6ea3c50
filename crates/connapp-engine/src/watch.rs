//! The scheduled watch's passes: what a pass found (kept in
//! `watch/state.json` in the data directory), which failures are new since
//! the last pass (a hook runs once per failure, not every pass), and the
//! one line every manual command prints when the watch has a problem (its
//! schedule gone, its last pass failed or too old).
//!
//! The pass itself (refresh connapp's own grants past a threshold, run
//! `verify`'s read-only checks) is the front end's composition of the
//! token service and `verify`; this module holds what is the same for any.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Error;
use crate::schedule::Installed;

/// A failure a pass found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What identifies it from pass to pass: app, check, item.
    pub key: String,
    /// The app.
    pub app: String,
    /// The check (`verify`'s `check`, or `refresh`).
    pub check: String,
    /// Its subject.
    pub item: String,
    /// What was found.
    pub detail: String,
    /// What to do.
    pub fix: String,
    /// When a pass first found it (unix seconds).
    pub since: u64,
}

impl Failure {
    /// A failure of `app`'s `check` on `item`, first found at `now`.
    pub fn new(app: &str, check: &str, item: &str, detail: &str, fix: &str, now: u64) -> Failure {
        Failure {
            key: format!("{app}\u{1f}{check}\u{1f}{item}"),
            app: app.into(),
            check: check.into(),
            item: item.into(),
            detail: detail.into(),
            fix: fix.into(),
            since: now,
        }
    }
}

/// What the last pass found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// When it ran (unix seconds).
    pub last_pass_at: u64,
    /// Its failures.
    pub failures: Vec<Failure>,
    /// Hooks that could not be delivered (tried again next pass).
    #[serde(default)]
    pub undelivered: Vec<String>,
}

/// The watch's directory in the data directory.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("watch")
}

const MAX_STATE: u64 = 1 << 20;

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = connapp_plugin_api::bounded::read_file("the watch's state", path, MAX_STATE).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), Error> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::failure(format!("cannot create {}: {e}", d.display())))?;
    }
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::failure(e.to_string()))?;
    connapp_plugin_api::atomic::write_file(path, &bytes, 0o600)
        .map_err(|e| Error::failure(format!("cannot write {}: {e}", path.display())))
}

/// The last pass's state, if any.
pub fn state(data_dir: &Path) -> Option<State> {
    read_json(&dir(data_dir).join("state.json"))
}

/// Keeps a pass's state.
pub fn save_state(data_dir: &Path, s: &State) -> Result<(), Error> {
    write_json(&dir(data_dir).join("state.json"), s)
}

/// What `schedule install` recorded, if anything.
pub fn installed(data_dir: &Path) -> Option<Installed> {
    read_json(&dir(data_dir).join("installed.json"))
}

/// Records an install.
pub fn save_installed(data_dir: &Path, i: &Installed) -> Result<(), Error> {
    write_json(&dir(data_dir).join("installed.json"), i)
}

/// Forgets the install (and the passes' state).
pub fn forget_installed(data_dir: &Path) {
    let _ = std::fs::remove_file(dir(data_dir).join("installed.json"));
    let _ = std::fs::remove_file(dir(data_dir).join("state.json"));
    let _ = std::fs::remove_dir(dir(data_dir));
}

/// This pass's failures, each keeping the time a pass first found it;
/// and those that are new since the last pass.
pub fn merge(previous: Option<&State>, found: Vec<Failure>) -> (Vec<Failure>, Vec<Failure>) {
    let mut all = Vec::new();
    let mut new = Vec::new();
    for mut f in found {
        match previous.and_then(|p| p.failures.iter().find(|o| o.key == f.key)) {
            Some(old) => f.since = old.since,
            None => new.push(f.clone()),
        }
        all.push(f);
    }
    (all, new)
}

/// The hook's JSON for one new failure (this host named).
pub fn hook_payload(f: &Failure, declaration: &Path) -> Value {
    let host = connapp_oauth::lifecycle::host_name();
    json!({
        "event": "connapp.watch.failure",
        "app": f.app,
        "check": f.check,
        "item": f.item,
        "detail": f.detail,
        "fix": f.fix,
        "since": f.since,
        "host": host,
        "declaration": declaration.display().to_string(),
    })
}

/// Checks a hook URL: https, or plain http only to this machine.
pub fn check_hook_url(u: &str) -> Result<(), Error> {
    let parsed =
        url::Url::parse(u).map_err(|e| Error::new(crate::ErrorKind::Usage, format!("--hook-url {u:?}: {e}")))?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback) {
        Ok(())
    } else {
        Err(Error::new(
            crate::ErrorKind::Usage,
            format!("--hook-url {u:?} is not https (plain http only to this machine)"),
        ))
    }
}

/// How a pass's interval is judged too old: twice the interval, and an hour.
pub fn stale_after(i: &Installed) -> u64 {
    2 * i.every.secs() + 3600
}

/// The one line a manual command prints about the watch, if it has a
/// problem: its schedule gone, its last pass failed, or no pass for too
/// long. `present` tells whether the schedule is still installed.
pub fn problem(data_dir: &Path, now: u64, present: &dyn Fn(&Installed) -> bool) -> Option<String> {
    let i = installed(data_dir)?;
    if !present(&i) {
        return Some(format!(
            "connapp: the watch's {} schedule is gone; run `connapp schedule install` again (or `connapp schedule remove`)",
            i.scheduler.as_str()
        ));
    }
    let last = state(data_dir);
    let since = last.as_ref().map_or(i.installed_at, |s| s.last_pass_at);
    if now.saturating_sub(since) > stale_after(&i) {
        return Some(format!(
            "connapp: the watch has not run for {} h; check `connapp schedule status`",
            now.saturating_sub(since) / 3600
        ));
    }
    match last {
        Some(s) if !s.failures.is_empty() => Some(format!(
            "connapp: the watch's last pass found {} failure(s) ({}); run `connapp verify`",
            s.failures.len(),
            s.failures
                .iter()
                .map(|f| format!("{} {}", f.app, f.check))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_new_once_and_keeps_the_time_it_was_first_found() {
        let f = |now| Failure::new("dex", "servicenow", "ServiceNow's token", "refused", "consent", now);
        let (all, new) = merge(None, vec![f(100)]);
        assert_eq!(new.len(), 1);
        let s = State {
            last_pass_at: 100,
            failures: all,
            undelivered: vec![],
        };
        let (all, new) = merge(Some(&s), vec![f(200)]);
        assert!(new.is_empty());
        assert_eq!(all[0].since, 100);
        // Gone, then back: new again.
        let (_, new) = merge(Some(&State::default()), vec![f(300)]);
        assert_eq!(new.len(), 1);
    }
}
