//! How a batch run over many apps looks: one progress bar on a terminal
//! (counts of ok, failed and skipped, the slowest app in flight), one line
//! per app otherwise, and a summary with the failures grouped by cause.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use connapp_core::{App, Declaration};
use connapp_engine::batch::{BatchEvent, BatchObserver, Control, NoticeKind, Outcome, Report, RunFile};

use crate::cli::{BatchArgs, Global};
use crate::ctx;
use crate::error::{CliError, Exit};
use crate::render;

/// The apps a batch command acts on: every app, or those of the selected rows.
pub fn select<'d>(decl: &'d Declaration, b: &BatchArgs) -> Result<Vec<&'d App>, CliError> {
    select_rows(decl, &b.select)
}

/// The apps of the rows every `COLUMN=VALUE` filter holds for (all apps for none).
pub fn select_rows<'d>(decl: &'d Declaration, filters: &[String]) -> Result<Vec<&'d App>, CliError> {
    decl.select(filters).map_err(|e| {
        let hint = match &e {
            connapp_core::SelectError::Shape(_) => "write --select COLUMN=VALUE, e.g. --select customer=acme",
            connapp_core::SelectError::NoFleet(_) => "declare a [fleet] with an inventory, or name the app",
            connapp_core::SelectError::Column { .. } => "use one of the inventory's columns",
        };
        CliError::with_code(Exit::Usage, e.to_string()).hint(hint)
    })
}

/// How a batch run shares provider accounts: two apps of one account at
/// once, and a refusal with `Retry-After` pauses that account (up to five
/// minutes, three times per app). Built by [`with_budget`].
fn with_budget<T>(
    decl: &Declaration,
    now: &(dyn Fn() -> u64 + Sync),
    f: impl FnOnce(&connapp_engine::batch::Budget<'_>) -> T,
) -> T {
    let by_name = connapp_engine::listing::accounts(decl);
    let account_of = move |app: &str| by_name.get(app).cloned().flatten();
    let budget = connapp_engine::batch::Budget {
        account_of: &account_of,
        per_account: 2,
        retries: 3,
        max_wait_secs: 300,
        now,
    };
    f(&budget)
}

/// Runs `work` for `apps` as a batch `step` of the declaration at `path`:
/// its run file (resuming an interrupted run), the bar or lines,
/// the accounts' budget. Returns the report and the run file.
#[allow(clippy::too_many_arguments)]
pub fn run<F>(
    g: &Global,
    decl: &Declaration,
    path: &Path,
    step: &'static str,
    b: &BatchArgs,
    json: bool,
    apps: &[&str],
    work: F,
) -> Result<(Report, RunFile), CliError>
where
    F: Fn(&str) -> Result<String, connapp_engine::Error> + Sync,
{
    if b.jsonl && json {
        return Err(
            CliError::with_code(Exit::Usage, "--jsonl and --json are two ways to print the result")
                .hint("choose one: --json for one report at the end, --jsonl for a line per app as it finishes"),
        );
    }
    let record = run_file(g, path, step, b)?;
    let shown = Shown::new(g, json, apps.len(), step, b.jsonl);
    let now = connapp_engine::tokens::now;
    let report = with_budget(decl, &now, |budget| {
        connapp_engine::batch::Batch {
            step,
            jobs: usize::from(b.jobs),
            record: Some(&record),
            budget: Some(budget),
        }
        .run(apps, work, &shown)
    });
    shown.finish();
    Ok((report, record))
}

/// The run file of `step` over the declaration at `path`, resuming an
/// interrupted run unless `--fresh` (said on stderr when it does).
pub fn run_file(g: &Global, path: &Path, step: &str, b: &BatchArgs) -> Result<RunFile, CliError> {
    let file = connapp_engine::batch::run_file_path(&ctx::data_dir()?, step, path);
    let f = RunFile::open(&file, step, connapp_engine::tokens::now(), b.fresh)?;
    if let Some(i) = f.interrupted()
        && !g.quiet
    {
        eprintln!(
            "Resuming the {step} run begun on {} at {} (unix time), interrupted: {} app(s) it finished are not done again (--fresh does them all).",
            i.host, i.at, i.done
        );
    }
    Ok(f)
}

/// Set by the first Ctrl-C of a batch run: no further app starts, those
/// running finish and are recorded; a second Ctrl-C ends connapp at once.
fn interrupted() -> &'static Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        // Registration fails only for a forbidden signal; SIGINT is not one.
        let _ = signal_hook::flag::register_conditional_shutdown(signal_hook::consts::SIGINT, 130, flag.clone());
        let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone());
        flag
    })
}

/// The observer of a batch run in the CLI.
pub struct Shown {
    bar: Option<indicatif::ProgressBar>,
    lines: bool,
    /// A JSON line per event on stdout (`--jsonl`).
    jsonl: bool,
    counts: Mutex<(usize, usize, usize)>,
    running: Mutex<HashMap<String, Instant>>,
}

impl Shown {
    /// For `total` apps: a bar when stderr is a terminal (and not `--json`,
    /// `--jsonl` or `--quiet`), else a line per app on stdout unless one of
    /// those; with `--jsonl`, a JSON line per event instead.
    pub fn new(g: &Global, json: bool, total: usize, step: &str, jsonl: bool) -> Shown {
        let quiet = g.quiet || json || jsonl;
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
                "{step} {{bar:30}} {{pos}}/{{len}} {{msg}} {{elapsed}}"
            )) {
                bar.set_style(style);
            }
            bar
        });
        interrupted();
        Shown {
            lines: !quiet && bar.is_none(),
            jsonl,
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

/// One JSON object on its own line of stdout, written at once (`--jsonl`).
pub fn json_line(v: &serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// The `--jsonl` line of an event (`None`: the event has none).
fn event_line(e: &BatchEvent<'_>) -> Option<serde_json::Value> {
    use serde_json::json;
    Some(match e {
        BatchEvent::Started { .. } => return None,
        BatchEvent::Waiting { app, step, until } => {
            json!({"event": "waiting", "step": step, "app": app, "until": until})
        }
        BatchEvent::Notice {
            app,
            step,
            kind: NoticeKind::Resumed,
        } => json!({"event": "notice", "step": step, "app": app, "notice": "resumed"}),
        BatchEvent::Notice {
            app,
            step,
            kind: NoticeKind::NotRetried { until, attempts },
        } => {
            json!({"event": "notice", "step": step, "app": app, "notice": "not_retried", "until": until, "attempts": attempts})
        }
        BatchEvent::Finished {
            app,
            step,
            outcome,
            millis,
        } => {
            let mut v = json!({"event": "finished", "step": step, "app": app, "millis": millis});
            if let (Some(line), Ok(serde_json::Value::Object(o))) = (v.as_object_mut(), serde_json::to_value(outcome)) {
                line.extend(o);
            }
            v
        }
    })
}

impl BatchObserver for Shown {
    fn event(&self, e: BatchEvent<'_>) -> Control {
        if self.jsonl
            && let Some(line) = event_line(&e)
        {
            json_line(&line);
        }
        match e {
            BatchEvent::Started { app, .. } => {
                self.running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(app.to_string(), Instant::now());
            }
            BatchEvent::Waiting { app, until, .. } => {
                self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(app);
                let line = format!(
                    "{app}: the provider rate-limited its account; it and the account's other apps go again in {}s",
                    until.saturating_sub(connapp_engine::tokens::now())
                );
                match &self.bar {
                    Some(bar) => bar.println(line),
                    None if self.lines => println!("{line}"),
                    None => {}
                }
            }
            // The resumed app's line says so itself.
            BatchEvent::Notice {
                kind: NoticeKind::Resumed,
                ..
            } => {}
            BatchEvent::Notice {
                app,
                kind: NoticeKind::NotRetried { until, attempts },
                ..
            } => {
                let wait = until.saturating_sub(connapp_engine::tokens::now());
                let line = if attempts > 0 {
                    format!("{app}: rate-limited again after {attempts} retries; not waiting another {wait}s")
                } else {
                    format!("{app}: the provider asks to wait {wait}s, longer than connapp waits in a run")
                };
                match &self.bar {
                    Some(bar) => bar.println(line),
                    None if self.lines => println!("{line}"),
                    None => {}
                }
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
                    render::out(&line);
                }
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_message(self.message());
        }
        if interrupted().load(Ordering::SeqCst) {
            return Control::Stop;
        }
        Control::Continue
    }
}

/// The summary of a run (unless `--json`/`--quiet`) and its exit: every app
/// ok is success; otherwise an error of the first failure's kind (its exit
/// code), naming how many apps failed.
pub fn conclude(
    g: &Global,
    json: bool,
    jsonl: bool,
    report: &Report,
    done: &str,
    record: &RunFile,
) -> Result<(), CliError> {
    let (ok, failed, skipped) = report.counts();
    let total = report.results.len();
    if jsonl {
        let causes: Vec<serde_json::Value> = report
            .failures_by_cause()
            .into_iter()
            .map(|(cause, apps)| serde_json::json!({"cause": cause, "apps": apps}))
            .collect();
        json_line(&serde_json::json!({
            "event": "summary", "step": report.results.first().map_or("", |r| r.step.as_str()), "apps": total, "ok": ok, "failed": failed,
            "skipped": skipped, "stopped": report.stopped, "failures_by_cause": causes,
        }));
    }
    if report.stopped && !g.quiet {
        eprintln!(
            "Stopped: {skipped} app(s) not started. Run the same command again to go on where this run stopped (results: {}).",
            record.path().display()
        );
    }
    if !json && !jsonl && !g.quiet {
        let line = format!("{ok} of {total} app(s) {done}, {failed} failed, {skipped} skipped.");
        if failed == 0 && skipped == 0 {
            render::out(&render::paint(render::GOOD, &line));
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
