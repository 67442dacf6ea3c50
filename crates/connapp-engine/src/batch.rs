//! The batch runner: one step (refresh, verify, apply, ...) over many apps
//! with bounded concurrency, typed events and one typed result per app. One
//! app's failure is its result, never the end of the run; only the owner's
//! observer stops a run (Ctrl-C, a budget), and then the apps not started
//! are reported as skipped, never as done.
//!
//! What it is not: it knows no step. The owner hands it the work for one
//! app (a closure that is `Sync`: it runs on up to `jobs` threads at once,
//! e.g. over one [`crate::tokens::Shared`] store and runtime).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

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
    s.serialize_str(kind_str(*k))
}

/// The name of an error kind in results and summaries.
pub fn kind_str(k: ErrorKind) -> &'static str {
    match k {
        ErrorKind::Failure => "failure",
        ErrorKind::Usage => "usage",
        ErrorKind::Invalid => "invalid",
        ErrorKind::Plugin => "plugin",
        ErrorKind::Reauth => "reauth",
        ErrorKind::Unreachable => "unreachable",
    }
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
#[derive(Clone, Copy, Debug)]
pub struct Batch<'s> {
    /// The step's name in events and results (`refresh`, `verify`, ...).
    pub step: &'s str,
    /// How many apps run at once (at least 1).
    pub jobs: usize,
}

impl Batch<'_> {
    /// Runs `work` for every app of `apps`, `jobs` at a time; every app gets
    /// a result, whatever the others do.
    pub fn run<F>(&self, apps: &[&str], work: F, obs: &dyn BatchObserver) -> Report
    where
        F: Fn(&str) -> Result<String, Error> + Sync,
    {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let results: Mutex<Vec<Option<AppResult>>> = Mutex::new(vec![None; apps.len()]);
        let jobs = self.jobs.clamp(1, apps.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(|| {
                    loop {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(app) = apps.get(i).copied() else {
                            return;
                        };
                        if obs.event(BatchEvent::Started { app, step: self.step }) == Control::Stop {
                            stop.store(true, Ordering::SeqCst);
                        }
                        let began = Instant::now();
                        // A panic in one app's work is that app's failure.
                        let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(app))) {
                            Ok(r) => Outcome::of(r),
                            Err(_) => Outcome::Failed {
                                kind: ErrorKind::Failure,
                                message: format!("{app}: connapp failed unexpectedly (a panic) while doing this"),
                                hint: Some("report it with the output of `-vv`".into()),
                            },
                        };
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
                        let mut all = results.lock().unwrap_or_else(|p| p.into_inner());
                        all[i] = Some(AppResult {
                            app: app.to_string(),
                            step: self.step.to_string(),
                            outcome,
                            millis,
                        });
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        let stopped = stop.load(Ordering::SeqCst);
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

#[cfg(test)]
mod tests {
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
        }
        .run(&apps, |_| Ok("ok".into()), &count(5));
        assert!(r.stopped);
        assert_eq!(r.counts(), (5, 0, 15));
        assert!(matches!(r.results[19].outcome, Outcome::Skipped { .. }));
    }
}
