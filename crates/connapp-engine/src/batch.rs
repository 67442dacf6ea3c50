//! The batch runner: one step (refresh, verify, apply, ...) over many apps
//! with bounded concurrency, typed events and one typed result per app. One
//! app's failure is its result, never the end of the run; only the owner's
//! observer stops a run (Ctrl-C, a budget), and then the apps not started
//! are reported as skipped, never as done.
//!
//! What it is not: it knows no step. The owner hands it the work for one
//! app (a closure that is `Sync`: it runs on up to `jobs` threads at once,
//! e.g. over one [`crate::tokens::Shared`] store and runtime).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Error, ErrorKind};

/// How one app's step ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The step did what it names; `detail` says what.
    Ok {
        /// What was done, in a few words.
        detail: String,
    },
    /// The step failed for this app.
    Failed {
        /// Which kind of failure.
        #[serde(serialize_with = "kind_name")]
        kind: ErrorKind,
        /// What went wrong.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// The step did not run for this app (the run was stopped first).
    Skipped {
        /// Why.
        reason: String,
    },
}

fn kind_name<S: serde::Serializer>(k: &ErrorKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.as_str())
}

impl Outcome {
    /// Whether the step did what it names.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }

    fn of(r: Result<String, Error>) -> Outcome {
        match r {
            Ok(detail) => Outcome::Ok { detail },
            Err(e) => Outcome::Failed {
                kind: e.kind,
                message: e.message,
                hint: e.hint,
            },
        }
    }
}

/// What a run reports as it goes.
#[derive(Clone, Copy, Debug)]
pub enum BatchEvent<'a> {
    /// The step began for `app`.
    Started {
        /// The app.
        app: &'a str,
        /// The step.
        step: &'a str,
    },
    /// The provider rate-limited `app`'s account: it goes again at `until`.
    Waiting {
        /// The app.
        app: &'a str,
        /// The step.
        step: &'a str,
        /// When (unix seconds).
        until: u64,
    },
    /// Something about `app` that is neither its start nor its end.
    Notice {
        /// The app.
        app: &'a str,
        /// The step.
        step: &'a str,
        /// What.
        kind: NoticeKind,
    },
    /// The step ended for `app`.
    Finished {
        /// The app.
        app: &'a str,
        /// The step.
        step: &'a str,
        /// How.
        outcome: &'a Outcome,
        /// How long it took, in milliseconds.
        millis: u64,
    },
}

/// What a [`BatchEvent::Notice`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    /// The interrupted run this one resumes finished the app: it is
    /// reported as that run left it, not done again.
    Resumed,
    /// The provider refused the app and named a time to try again that the
    /// run will not wait for (further off than the budget's longest wait,
    /// or the app was tried enough): the app ends failed.
    NotRetried {
        /// The provider's time (unix seconds).
        until: u64,
        /// How often the app went again before.
        attempts: u32,
    },
}

/// Whether a run goes on after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Start no further app (those running finish).
    Stop,
}

/// Receives a run's events, from any of its threads.
pub trait BatchObserver: Send + Sync {
    /// One event; the answer may stop the run.
    fn event(&self, e: BatchEvent<'_>) -> Control;
}

/// An observer that lets every run finish and says nothing.
pub struct Quiet;

impl BatchObserver for Quiet {
    fn event(&self, _: BatchEvent<'_>) -> Control {
        Control::Continue
    }
}

/// One app's result.
#[derive(Clone, Debug, Serialize)]
pub struct AppResult {
    /// The app.
    pub app: String,
    /// The step.
    pub step: String,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How long it took, in milliseconds.
    pub millis: u64,
}

/// A whole run's results, in the order the apps were given.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// One per app.
    pub results: Vec<AppResult>,
    /// Whether the observer stopped the run.
    pub stopped: bool,
}

impl Report {
    /// How many apps ended ok, failed and were skipped.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for r in &self.results {
            match r.outcome {
                Outcome::Ok { .. } => c.0 += 1,
                Outcome::Failed { .. } => c.1 += 1,
                Outcome::Skipped { .. } => c.2 += 1,
            }
        }
        c
    }

    /// The failures grouped by cause (the message with the app's own name
    /// taken out), the largest group first: (cause, apps).
    pub fn failures_by_cause(&self) -> Vec<(String, Vec<&str>)> {
        let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
        for r in &self.results {
            let Outcome::Failed { message, .. } = &r.outcome else {
                continue;
            };
            let cause = message
                .strip_prefix(&format!("{}: ", r.app))
                .unwrap_or(message)
                .replace(&r.app, "<app>");
            match groups.iter_mut().find(|(c, _)| *c == cause) {
                Some((_, apps)) => apps.push(&r.app),
                None => groups.push((cause, vec![&r.app])),
            }
        }
        groups.sort_by_key(|(_, apps)| std::cmp::Reverse(apps.len()));
        groups
    }
}

/// A run of one step over many apps.
#[derive(Clone, Copy)]
pub struct Batch<'s> {
    /// The step's name in events and results (`refresh`, `verify`, ...).
    pub step: &'s str,
    /// How many apps run at once (at least 1).
    pub jobs: usize,
    /// Where each app's result is appended as it finishes, if anywhere;
    /// the apps its interrupted run finished are not done again.
    pub record: Option<&'s RunFile>,
    /// How apps share their provider accounts' rate limits; `None`: no limit.
    pub budget: Option<&'s Budget<'s>>,
}

/// How a run shares each provider account's rate limits: at most
/// `per_account` apps of one account at once, and after a refusal with a
/// `Retry-After` ([`Error::retry`]) no app of that account starts before
/// that time; the refused app goes again (at most `retries` times, when the
/// wait is at most `max_wait_secs`; else the refusal is its result).
pub struct Budget<'s> {
    /// The account an app's provider calls count against (`None`: its own).
    pub account_of: &'s (dyn Fn(&str) -> Option<String> + Sync),
    /// Apps of one account at once; 0: no limit.
    pub per_account: usize,
    /// How often one app waits and goes again.
    pub retries: u32,
    /// The longest wait for one refusal, in seconds.
    pub max_wait_secs: u64,
    /// The owner's clock (unix seconds).
    pub now: &'s (dyn Fn() -> u64 + Sync),
}

/// Which apps are left, which accounts are busy or paused.
struct Sched {
    pending: std::collections::VecDeque<usize>,
    busy: HashMap<String, usize>,
    paused: HashMap<String, u64>,
    attempts: Vec<u32>,
}

impl Sched {
    /// The first app left whose account has room and is not paused.
    fn pick(&mut self, accounts: &[String], now: u64, per_account: usize) -> Option<usize> {
        let free = |i: &usize| {
            let a = &accounts[*i];
            // An app of no account ("") counts against none.
            a.is_empty()
                || ((per_account == 0 || self.busy.get(a).copied().unwrap_or(0) < per_account)
                    && self.paused.get(a).is_none_or(|t| *t <= now))
        };
        let at = self.pending.iter().position(free)?;
        let i = self.pending.remove(at)?;
        if !accounts[i].is_empty() {
            *self.busy.entry(accounts[i].clone()).or_insert(0) += 1;
        }
        Some(i)
    }

    fn release(&mut self, account: &str) {
        if let Some(n) = self.busy.get_mut(account) {
            *n = n.saturating_sub(1);
        }
    }

    fn pause(&mut self, account: &str, until: u64) {
        if !account.is_empty() {
            let t = self.paused.entry(account.to_string()).or_insert(0);
            *t = (*t).max(until);
        }
    }
}

impl Batch<'_> {
    /// Runs `work` for every app of `apps`, `jobs` at a time; every app gets
    /// a result, whatever the others do.
    pub fn run<F>(&self, apps: &[&str], work: F, obs: &dyn BatchObserver) -> Report
    where
        F: Fn(&str) -> Result<String, Error> + Sync,
    {
        let stop = AtomicBool::new(false);
        let results: Mutex<Vec<Option<AppResult>>> = Mutex::new(vec![None; apps.len()]);
        if let Some(f) = self.record {
            f.start(self.step, apps.len());
        }
        let resumed = self.record.map(RunFile::resumed);
        let jobs = self.jobs.clamp(1, apps.len().max(1));
        let accounts: Vec<String> = apps
            .iter()
            .map(|a| self.budget.and_then(|b| (b.account_of)(a)).unwrap_or_default())
            .collect();
        let sched = Mutex::new(Sched {
            pending: (0..apps.len()).collect(),
            busy: HashMap::new(),
            paused: HashMap::new(),
            attempts: vec![0; apps.len()],
        });
        let now = || self.budget.map_or_else(crate::tokens::now, |b| (b.now)());
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(|| {
                    loop {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let picked = {
                            let mut q = sched.lock().unwrap_or_else(|p| p.into_inner());
                            if q.pending.is_empty() {
                                return;
                            }
                            q.pick(&accounts, now(), self.budget.map_or(0, |b| b.per_account))
                        };
                        let Some(i) = picked else {
                            // Every app left waits on its account: look again shortly.
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            continue;
                        };
                        let app = apps[i];
                        if obs.event(BatchEvent::Started { app, step: self.step }) == Control::Stop {
                            stop.store(true, Ordering::SeqCst);
                        }
                        let began = Instant::now();
                        let done_before = resumed.and_then(|r| r.get(app));
                        // A panic in one app's work is that app's failure.
                        let result = match done_before {
                            Some(detail) => {
                                let _ = obs.event(BatchEvent::Notice {
                                    app,
                                    step: self.step,
                                    kind: NoticeKind::Resumed,
                                });
                                Ok(format!("{detail} (by the interrupted run, not done again)"))
                            }
                            None => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(app))) {
                                Ok(r) => r,
                                Err(_) => Err(Error::failure(format!(
                                    "{app}: connapp failed unexpectedly (a panic) while doing this"
                                ))
                                .hint("report it with the output of `-vv`")),
                            },
                        };
                        // Rate-limited: the account waits until the provider's time, then the app goes again.
                        if let Err(e) = &result
                            && let (Some(retry), Some(b)) = (e.retry, self.budget)
                        {
                            let at = retry.at(now());
                            let mut q = sched.lock().unwrap_or_else(|p| p.into_inner());
                            let waited_enough = q.attempts[i] >= b.retries;
                            let too_far = at.saturating_sub(now()) > b.max_wait_secs;
                            q.release(&accounts[i]);
                            if !waited_enough && !too_far {
                                q.attempts[i] += 1;
                                q.pause(&accounts[i], at);
                                q.pending.push_front(i);
                                drop(q);
                                let _ = obs.event(BatchEvent::Waiting {
                                    app,
                                    step: self.step,
                                    until: at,
                                });
                                continue;
                            }
                            let attempts = q.attempts[i];
                            drop(q);
                            let _ = obs.event(BatchEvent::Notice {
                                app,
                                step: self.step,
                                kind: NoticeKind::NotRetried { until: at, attempts },
                            });
                        } else {
                            sched.lock().unwrap_or_else(|p| p.into_inner()).release(&accounts[i]);
                        }
                        let outcome = Outcome::of(result);
                        let millis = began.elapsed().as_millis() as u64;
                        let event = BatchEvent::Finished {
                            app,
                            step: self.step,
                            outcome: &outcome,
                            millis,
                        };
                        if obs.event(event) == Control::Stop {
                            stop.store(true, Ordering::SeqCst);
                        }
                        let result = AppResult {
                            app: app.to_string(),
                            step: self.step.to_string(),
                            outcome,
                            millis,
                        };
                        if let Some(f) = self.record
                            && done_before.is_none()
                        {
                            f.append(&result);
                        }
                        results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        let stopped = stop.load(Ordering::SeqCst);
        // A stopped run stays open: the next run of the step resumes it.
        if let Some(f) = self.record
            && !stopped
        {
            f.end(self.step);
        }
        Report {
            results: results
                .into_iter()
                .zip(apps)
                .map(|(r, app)| {
                    r.unwrap_or_else(|| AppResult {
                        app: app.to_string(),
                        step: self.step.to_string(),
                        outcome: Outcome::Skipped {
                            reason: "the run was stopped before this app".into(),
                        },
                        millis: 0,
                    })
                })
                .collect(),
            stopped,
        }
    }
}

/// The largest run file read back for a resume.
pub const MAX_RUN_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// How long after its start an interrupted run is resumed; an older one's
/// results are stale and the step is done again for every app.
pub const RESUME_WITHIN_SECS: u64 = 6 * 3600;

/// Where the run file of `step` over the declaration at `declaration` is
/// kept: `<data dir>/runs/<step>-<16 hex digits of the path's SHA-256>.jsonl`,
/// so two declarations never resume each other's runs.
pub fn run_file_path(data_dir: &Path, step: &str, declaration: &Path) -> PathBuf {
    use sha2::Digest;
    let full = std::fs::canonicalize(declaration).unwrap_or_else(|_| declaration.to_path_buf());
    let d = sha2::Sha256::digest(full.to_string_lossy().as_bytes());
    let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
    data_dir.join("runs").join(format!("{step}-{hex}.jsonl"))
}

/// One line of a run file.
#[derive(Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum Line {
    /// A run began.
    Start {
        step: String,
        apps: usize,
        at: u64,
        host: String,
    },
    /// One app's result.
    App {
        app: String,
        step: String,
        ok: bool,
        result: Value,
        at: u64,
    },
    /// The run ended with every app done (a stopped or killed run has none).
    End { step: String, at: u64 },
}

/// A run file: JSON Lines (0600), a `start` record, one `app` record per
/// app as it finishes (no secret: results hold what errors say), and an
/// `end` record when every app was done. A run without its `end` (killed,
/// stopped by Ctrl-C) is resumed by the next run of the same step: the apps
/// it finished ok are reported as such and not done again.
pub struct RunFile {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
    resumed: HashMap<String, String>,
    interrupted: Option<Interrupted>,
    now: u64,
}

/// An interrupted run that is being resumed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interrupted {
    /// When it started.
    pub at: u64,
    /// On which host.
    pub host: String,
    /// How many apps it finished ok.
    pub done: usize,
}

impl std::fmt::Debug for RunFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RunFile {
    /// Opens the run file at `path` for a run of `step` at `now` (the
    /// owner's clock), creating it and its directory (0700) when absent;
    /// `fresh` ignores an interrupted run.
    pub fn open(path: &Path, step: &str, now: u64, fresh: bool) -> Result<RunFile, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                b.mode(0o700);
            }
            b.create(dir)
                .map_err(|e| Error::failure(format!("cannot create {}: {e}", dir.display())))?;
        }
        let (resumed, interrupted) = if fresh || !path.exists() {
            (HashMap::new(), None)
        } else {
            let bytes = connapp_plugin_api::bounded::read_file("the run file", path, MAX_RUN_FILE_BYTES)
                .map_err(|e| Error::failure(e.to_string()).hint("start afresh with --fresh, or remove the file"))?;
            interrupted_run(&String::from_utf8_lossy(&bytes), step, now)
        };
        let mut o = std::fs::OpenOptions::new();
        o.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let file = o
            .open(path)
            .map_err(|e| Error::failure(format!("cannot open the run file {}: {e}", path.display())))?;
        Ok(RunFile {
            path: path.to_path_buf(),
            file: Mutex::new(Some(file)),
            resumed,
            interrupted,
            now,
        })
    }

    /// Records a one-app run of `step` (started, its result, ended) as a
    /// batch run would, so the inventory view knows an app's last result
    /// whichever way it was run.
    pub fn record_one(&self, step: &str, result: &AppResult) {
        self.write(&Line::Start {
            step: step.into(),
            apps: 1,
            at: self.now,
            host: connapp_oauth::lifecycle::host_name(),
        });
        self.append(result);
        self.end(step);
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The interrupted run this one resumes, if any.
    pub fn interrupted(&self) -> Option<&Interrupted> {
        self.interrupted.as_ref()
    }

    fn resumed(&self) -> &HashMap<String, String> {
        &self.resumed
    }

    fn write(&self, line: &Line) {
        let mut bytes = serde_json::to_vec(line).unwrap_or_default();
        bytes.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // A run file that cannot be written any more only loses the resume.
        if let Some(file) = f.as_mut()
            && let Err(e) = file.write_all(&bytes)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "the run file cannot be written; a resume will redo more");
            *f = None;
        }
    }

    fn start(&self, step: &str, apps: usize) {
        self.write(&Line::Start {
            step: step.into(),
            apps,
            at: self.now,
            host: connapp_oauth::lifecycle::host_name(),
        });
        // What the interrupted run finished is this run's too, should it be interrupted.
        for (app, detail) in &self.resumed {
            self.write(&Line::App {
                app: app.clone(),
                step: step.into(),
                ok: true,
                result: json!({ "outcome": "ok", "detail": detail }),
                at: self.now,
            });
        }
    }

    fn append(&self, r: &AppResult) {
        self.write(&Line::App {
            app: r.app.clone(),
            step: r.step.clone(),
            ok: r.outcome.is_ok(),
            result: serde_json::to_value(&r.outcome).unwrap_or(Value::Null),
            at: self.now + r.millis / 1000,
        });
    }

    fn end(&self, step: &str) {
        self.write(&Line::End {
            step: step.into(),
            at: self.now,
        });
    }
}

/// The newest result of `step` for each app in the run file at `path` (any
/// run, finished or not); nothing when there is no such file.
pub fn last_results(path: &Path, step: &str) -> HashMap<String, crate::listing::LastVerify> {
    let Ok(bytes) = connapp_plugin_api::bounded::read_file("the run file", path, MAX_RUN_FILE_BYTES) else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for line in String::from_utf8_lossy(&bytes).lines() {
        if let Ok(Line::App {
            app,
            step: s,
            ok,
            result,
            at,
        }) = serde_json::from_str(line)
            && s == step
        {
            let detail = ["detail", "message", "reason"]
                .iter()
                .find_map(|k| result.get(*k).and_then(Value::as_str))
                .unwrap_or_default()
                .to_string();
            out.insert(app, crate::listing::LastVerify { at, ok, detail });
        }
    }
    out
}

/// The apps the last run of `step` in `text` finished ok, when that run has
/// no end and began within [`RESUME_WITHIN_SECS`] of `now`.
fn interrupted_run(text: &str, step: &str, now: u64) -> (HashMap<String, String>, Option<Interrupted>) {
    let lines: Vec<Line> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let Some(start) = lines.iter().rposition(|l| matches!(l, Line::Start { .. })) else {
        return (HashMap::new(), None);
    };
    let (at, host) = match &lines[start] {
        Line::Start { step: s, at, host, .. } if s == step && now.saturating_sub(*at) < RESUME_WITHIN_SECS => {
            (*at, host.clone())
        }
        _ => return (HashMap::new(), None),
    };
    let mut done = HashMap::new();
    for l in &lines[start + 1..] {
        match l {
            Line::End { .. } => return (HashMap::new(), None),
            Line::App {
                app, ok: true, result, ..
            } => {
                let detail = result.get("detail").and_then(Value::as_str).unwrap_or("done");
                done.insert(app.clone(), detail.to_string());
            }
            Line::App { app, .. } => {
                done.remove(app);
            }
            Line::Start { .. } => {}
        }
    }
    let interrupted = Interrupted {
        at,
        host,
        done: done.len(),
    };
    (done, Some(interrupted))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    struct Count {
        running: AtomicUsize,
        most: AtomicUsize,
        stop_after: usize,
        finished: AtomicUsize,
    }

    impl BatchObserver for Count {
        fn event(&self, e: BatchEvent<'_>) -> Control {
            match e {
                BatchEvent::Started { .. } => {
                    let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                    self.most.fetch_max(now, Ordering::SeqCst);
                }
                BatchEvent::Waiting { .. } => {
                    self.running.fetch_sub(1, Ordering::SeqCst);
                }
                BatchEvent::Notice { .. } => {}
                BatchEvent::Finished { .. } => {
                    self.running.fetch_sub(1, Ordering::SeqCst);
                    if self.finished.fetch_add(1, Ordering::SeqCst) + 1 >= self.stop_after {
                        return Control::Stop;
                    }
                }
            }
            Control::Continue
        }
    }

    fn count(stop_after: usize) -> Count {
        Count {
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            stop_after,
            finished: AtomicUsize::new(0),
        }
    }

    #[test]
    fn every_app_gets_a_result_and_a_failure_stops_nothing() {
        let names: Vec<String> = (0..40).map(|i| format!("app-{i}")).collect();
        let apps: Vec<&str> = names.iter().map(String::as_str).collect();
        let obs = count(usize::MAX);
        let r = Batch {
            step: "refresh",
            jobs: 4,
            record: None,
            budget: None,
        }
        .run(
            &apps,
            |app| {
                std::thread::sleep(std::time::Duration::from_millis(5));
                match app {
                    "app-3" | "app-17" => Err(Error::failure(format!("{app}: the instance is down"))),
                    "app-9" => panic!("boom"),
                    _ => Ok("refreshed".into()),
                }
            },
            &obs,
        );
        assert_eq!(r.results.len(), 40);
        assert_eq!(r.counts(), (37, 3, 0));
        assert!(!r.stopped);
        // In the order given, whatever order they ran in.
        assert!(r.results.iter().zip(&apps).all(|(r, a)| r.app == *a));
        assert!(obs.most.load(Ordering::SeqCst) <= 4, "more than 4 at once");
        assert!(obs.most.load(Ordering::SeqCst) >= 2, "never concurrent");
        let causes = r.failures_by_cause();
        assert_eq!(causes[0], ("the instance is down".to_string(), vec!["app-3", "app-17"]));
        let json = serde_json::to_value(&r.results[3]).expect("json");
        assert_eq!(json["outcome"], "failed");
        assert_eq!(json["kind"], "failure");
    }

    #[test]
    fn a_stopped_run_reports_the_apps_it_never_started_as_skipped() {
        let names: Vec<String> = (0..20).map(|i| format!("app-{i}")).collect();
        let apps: Vec<&str> = names.iter().map(String::as_str).collect();
        let r = Batch {
            step: "verify",
            jobs: 1,
            record: None,
            budget: None,
        }
        .run(&apps, |_| Ok("ok".into()), &count(5));
        assert!(r.stopped);
        assert_eq!(r.counts(), (5, 0, 15));
        assert!(matches!(r.results[19].outcome, Outcome::Skipped { .. }));
    }
}

#[cfg(test)]
mod run_file_tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("app-{i}")).collect()
    }

    struct StopAfter(AtomicUsize, usize);

    impl BatchObserver for StopAfter {
        fn event(&self, e: BatchEvent<'_>) -> Control {
            if matches!(e, BatchEvent::Finished { .. }) && self.0.fetch_add(1, Ordering::SeqCst) + 1 >= self.1 {
                return Control::Stop;
            }
            Control::Continue
        }
    }

    #[test]
    fn an_interrupted_run_is_resumed_without_redoing_its_finished_apps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("runs/refresh.jsonl");
        let names = names(10);
        let apps: Vec<&str> = names.iter().map(String::as_str).collect();
        let done = Mutex::new(Vec::new());
        let work = |app: &str| {
            done.lock().expect("lock").push(app.to_string());
            if app == "app-2" {
                Err(Error::failure(format!("{app}: the instance is down")))
            } else {
                Ok("refreshed".to_string())
            }
        };
        // Stopped after 4 apps: no end record.
        let f = RunFile::open(&path, "refresh", 1000, false).expect("open");
        assert!(f.interrupted().is_none());
        let batch = Batch {
            step: "refresh",
            jobs: 1,
            record: Some(&f),
            budget: None,
        };
        let r = batch.run(&apps, work, &StopAfter(AtomicUsize::new(0), 4));
        assert!(r.stopped);
        drop(f);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The next run does the failed one and the rest, not the three done.
        done.lock().expect("lock").clear();
        let f = RunFile::open(&path, "refresh", 1100, false).expect("open");
        assert_eq!(f.interrupted().map(|i| i.done), Some(3));
        let batch = Batch {
            step: "refresh",
            jobs: 2,
            record: Some(&f),
            budget: None,
        };
        let notices = crate::batch::budget_tests::Notices(Mutex::new(Vec::new()));
        let r = batch.run(&apps, work, &notices);
        assert_eq!(r.counts(), (9, 1, 0));
        let mut resumed: Vec<String> = notices
            .0
            .into_inner()
            .expect("notices")
            .into_iter()
            .filter(|(_, k)| *k == NoticeKind::Resumed)
            .map(|(a, _)| a)
            .collect();
        resumed.sort();
        assert_eq!(resumed, ["app-0", "app-1", "app-3"], "each app not done again is said");
        let mut again = done.lock().expect("lock").clone();
        again.sort();
        assert_eq!(again.len(), 7, "{again:?}");
        assert!(!again.contains(&"app-0".to_string()) && again.contains(&"app-2".to_string()));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.lines().last().is_some_and(|l| l.contains("\"record\":\"end\"")),
            "{text}"
        );
        drop(f);
        // Finished: the next run does everything again.
        let f = RunFile::open(&path, "refresh", 1200, false).expect("open");
        assert!(f.interrupted().is_none());
        // Another step, or an old run, is never resumed.
        let (_, i) = interrupted_run(
            "{\"record\":\"start\",\"step\":\"verify\",\"apps\":1,\"at\":1,\"host\":\"h\"}",
            "refresh",
            2,
        );
        assert!(i.is_none());
        let (_, i) = interrupted_run(
            "{\"record\":\"start\",\"step\":\"refresh\",\"apps\":1,\"at\":1,\"host\":\"h\"}",
            "refresh",
            1 + RESUME_WITHIN_SECS,
        );
        assert!(i.is_none());
    }
}

#[cfg(test)]
mod budget_tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[test]
    fn an_account_s_rate_limit_pauses_its_apps_and_the_refused_one_goes_again() {
        // A clock the test moves: the refusal says "again at 100".
        let clock = AtomicU64::new(90);
        let names = ["a-1", "a-2", "a-3", "b-1", "b-2"];
        let account_of = |app: &str| app.split('-').next().map(str::to_string);
        let budget = Budget {
            account_of: &account_of,
            per_account: 1,
            retries: 2,
            max_wait_secs: 60,
            now: &|| clock.load(Ordering::SeqCst),
        };
        let running: Mutex<HashMap<String, usize>> = Mutex::new(HashMap::new());
        let most = AtomicU64::new(0);
        let calls: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
        let work = |app: &str| {
            let acct = account_of(app).unwrap_or_default();
            {
                let mut r = running.lock().expect("lock");
                let n = r.entry(acct.clone()).or_insert(0);
                *n += 1;
                most.fetch_max(*n as u64, Ordering::SeqCst);
            }
            let now = clock.load(Ordering::SeqCst);
            calls.lock().expect("lock").push((app.to_string(), now));
            std::thread::sleep(std::time::Duration::from_millis(10));
            *running.lock().expect("lock").get_mut(&acct).expect("running") -= 1;
            if app == "a-1" && now < 100 {
                // Time passes for the test's clock while the account waits.
                clock.store(100, Ordering::SeqCst);
                return Err(Error::failure("a-1: 429").retry(crate::Retry::At(100)));
            }
            Ok("done".to_string())
        };
        struct Waits(AtomicU64);
        impl BatchObserver for Waits {
            fn event(&self, e: BatchEvent<'_>) -> Control {
                if let BatchEvent::Waiting { until, .. } = e {
                    self.0.store(until, Ordering::SeqCst);
                }
                Control::Continue
            }
        }
        let waits = Waits(AtomicU64::new(0));
        let r = Batch {
            step: "apply",
            jobs: 4,
            record: None,
            budget: Some(&budget),
        }
        .run(&names, work, &waits);
        assert_eq!(r.counts(), (5, 0, 0), "{:?}", r.results);
        assert_eq!(waits.0.load(Ordering::SeqCst), 100, "the wait was announced");
        assert_eq!(most.load(Ordering::SeqCst), 1, "two apps of one account ran at once");
        let calls = calls.into_inner().expect("calls");
        assert_eq!(calls.iter().filter(|(a, _)| a == "a-1").count(), 2, "{calls:?}");
        // No app of account a started between the refusal and its time.
        assert!(
            calls
                .iter()
                .filter(|(a, _)| a.starts_with("a-") && a != "a-1")
                .all(|(_, t)| *t >= 100),
            "{calls:?}"
        );

        // A wait longer than allowed is the app's failure, with the time.
        let far = |app: &str| -> Result<String, Error> {
            if app == "b-1" {
                Err(Error::failure("b-1: daily limit").retry(crate::Retry::At(10_000)))
            } else {
                Ok("done".into())
            }
        };
        let notices = Notices(Mutex::new(Vec::new()));
        let r = Batch {
            step: "apply",
            jobs: 2,
            record: None,
            budget: Some(&budget),
        }
        .run(&names, far, &notices);
        assert_eq!(r.counts(), (4, 1, 0));
        assert_eq!(
            notices.0.into_inner().expect("notices"),
            vec![(
                "b-1".to_string(),
                NoticeKind::NotRetried {
                    until: 10_000,
                    attempts: 0
                }
            )],
            "the refusal the run does not wait for is said"
        );
    }

    /// Every notice of a run, in order.
    pub(super) struct Notices(pub(super) Mutex<Vec<(String, NoticeKind)>>);

    impl BatchObserver for Notices {
        fn event(&self, e: BatchEvent<'_>) -> Control {
            if let BatchEvent::Notice { app, kind, .. } = e {
                self.0.lock().expect("lock").push((app.to_string(), kind));
            }
            Control::Continue
        }
    }
}
