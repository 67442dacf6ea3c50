//! How a batch run over many apps looks: one progress bar on a terminal
//! (counts of ok, failed and skipped, the slowest app in flight), one line
//! per app otherwise, and a summary with the failures grouped by cause.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use connapp_engine::batch::{BatchEvent, BatchObserver, Control, Outcome, Report};

use crate::cli::Global;
use crate::error::CliError;
use crate::render;

/// The observer of a batch run in the CLI.
pub struct Shown {
    bar: Option<indicatif::ProgressBar>,
    lines: bool,
    counts: Mutex<(usize, usize, usize)>,
    running: Mutex<HashMap<String, Instant>>,
}

impl Shown {
    /// For `total` apps: a bar when stderr is a terminal (and not `--json`
    /// or `--quiet`), else a line per app on stdout unless `--json`/`--quiet`.
    pub fn new(g: &Global, json: bool, total: usize, step: &str) -> Shown {
        let quiet = g.quiet || json;
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
                "{step} {{bar:30}} {{pos}}/{{len}} {{msg}} {{elapsed}}"
            )) {
                bar.set_style(style);
            }
            bar
        });
        Shown {
            lines: !quiet && bar.is_none(),
            bar,
            counts: Mutex::new((0, 0, 0)),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Takes the bar away before the summary.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn message(&self) -> String {
        let (ok, failed, skipped) = *self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let slowest = running
            .iter()
            .min_by_key(|(_, t)| **t)
            .map(|(a, t)| format!(" · slowest: {a} {}s", t.elapsed().as_secs()))
            .unwrap_or_default();
        format!("{ok} ok, {failed} failed, {skipped} skipped{slowest}")
    }
}

impl BatchObserver for Shown {
    fn event(&self, e: BatchEvent<'_>) -> Control {
        match e {
            BatchEvent::Started { app, .. } => {
                self.running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(app.to_string(), Instant::now());
            }
            BatchEvent::Finished { app, outcome, .. } => {
                self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(app);
                {
                    let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
                    match outcome {
                        Outcome::Ok { .. } => c.0 += 1,
                        Outcome::Failed { .. } => c.1 += 1,
                        Outcome::Skipped { .. } => c.2 += 1,
                    }
                }
                let line = match outcome {
                    Outcome::Ok { detail } => format!("{app}: {detail}"),
                    Outcome::Failed { message, .. } => {
                        let m = message.strip_prefix(&format!("{app}: ")).unwrap_or(message);
                        format!("{app}: {}", render::paint(render::BAD, &format!("failed: {m}")))
                    }
                    Outcome::Skipped { reason } => format!("{app}: skipped: {reason}"),
                };
                if let Some(bar) = &self.bar {
                    if !outcome.is_ok() {
                        bar.println(line);
                    }
                    bar.inc(1);
                } else if self.lines {
                    println!("{line}");
                }
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_message(self.message());
        }
        Control::Continue
    }
}

/// The summary of a run (unless `--json`/`--quiet`) and its exit: every app
/// ok is success; otherwise an error of the first failure's kind (its exit
/// code), naming how many apps failed.
pub fn conclude(g: &Global, json: bool, report: &Report, done: &str) -> Result<(), CliError> {
    let (ok, failed, skipped) = report.counts();
    let total = report.results.len();
    if !json && !g.quiet {
        let line = format!("{ok} of {total} app(s) {done}, {failed} failed, {skipped} skipped.");
        if failed == 0 && skipped == 0 {
            println!("{}", render::paint(render::GOOD, &line));
        } else {
            println!("{line}");
        }
        for (cause, apps) in report.failures_by_cause() {
            let shown: Vec<&str> = apps.iter().take(10).copied().collect();
            let more = apps.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            println!("  {} app(s): {cause}\n    {}{more}", apps.len(), shown.join(", "));
        }
    }
    if failed == 0 && skipped == 0 {
        return Ok(());
    }
    let kind = report
        .results
        .iter()
        .find_map(|r| match &r.outcome {
            Outcome::Failed { kind, .. } => Some(*kind),
            _ => None,
        })
        .unwrap_or(connapp_engine::ErrorKind::Failure);
    let e = connapp_engine::Error::new(kind, format!("{failed} of {total} app(s) failed, {skipped} skipped"))
        .hint("each failure is named above with its cause; fix those apps and run the same command again");
    Err(e.into())
}
