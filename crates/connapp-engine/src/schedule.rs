//! The scheduled watch's installation, modelled on `git maintenance start`
//! (`docs/operations.md` §3): a systemd user timer (`Persistent=true`, a
//! randomized delay), a launchd agent, or a block between BEGIN and END
//! markers in the user's crontab; a random minute per install. What was
//! written is recorded (`watch/installed.json` in the data directory), so
//! `remove` puts every file and the crontab back byte for byte, and any
//! command can tell when the schedule has gone missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::Error;

/// The systemd units' and the launchd agent's name.
pub const NAME: &str = "connapp-watch";
/// The crontab block's markers.
pub const CRON_BEGIN: &str = "# BEGIN connapp watch";
/// See [`CRON_BEGIN`].
pub const CRON_END: &str = "# END connapp watch";

/// Which scheduler runs the watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheduler {
    /// A systemd user timer.
    Systemd,
    /// A launchd agent (macOS).
    Launchd,
    /// A block in the user's crontab.
    Cron,
}

impl Scheduler {
    /// Its name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheduler::Systemd => "systemd",
            Scheduler::Launchd => "launchd",
            Scheduler::Cron => "cron",
        }
    }
}

/// How often the watch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Every {
    /// Once an hour, at a random minute.
    Hourly,
    /// Once a day, at a random hour and minute.
    Daily,
}

impl Every {
    /// Seconds between passes.
    pub fn secs(self) -> u64 {
        match self {
            Every::Hourly => 3600,
            Every::Daily => 86_400,
        }
    }
}

/// Where the schedulers keep their files, from the owner's environment.
#[derive(Clone, Debug)]
pub struct Places {
    /// `$HOME`.
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME` (default `$HOME/.config`).
    pub config_home: PathBuf,
}

impl Places {
    /// From the process's environment.
    pub fn from_env() -> Result<Places, Error> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| Error::failure("HOME is not set").hint("set HOME"))?;
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".config"));
        Ok(Places { home, config_home })
    }
    fn systemd_dir(&self) -> PathBuf {
        self.config_home.join("systemd").join("user")
    }
    fn launchd_dir(&self) -> PathBuf {
        self.home.join("Library").join("LaunchAgents")
    }
}

/// What an install wrote, to take it back and to check it is still there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// The scheduler.
    pub scheduler: Scheduler,
    /// How often.
    pub every: Every,
    /// The minute past the hour (and the hour, daily) it runs at.
    pub minute: u8,
    /// The hour (daily only).
    pub hour: u8,
    /// The command it runs.
    pub command: Vec<String>,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Directories created (removed again when empty).
    pub created_dirs: Vec<PathBuf>,
    /// The crontab before: there was none (`remove` deletes it again).
    pub cron_absent_before: bool,
    /// The crontab before did not end with a line break (one was added).
    pub cron_added_newline: bool,
    /// When (unix seconds).
    pub installed_at: u64,
}

/// A shell word: `'...'` with inner quotes escaped, or the word itself when safe.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn systemd_quote(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%")
    )
}

/// The systemd units: the service (one pass) and the timer.
pub fn systemd_units(command: &[String], every: Every, minute: u8, hour: u8) -> (String, String) {
    let exec: Vec<String> = command.iter().map(|w| systemd_quote(w)).collect();
    let service = format!(
        "[Unit]\nDescription=connapp watch: keep grants alive, find broken chains (one pass)\n\n[Service]\nType=oneshot\nExecStart={}\n",
        exec.join(" ")
    );
    let calendar = match every {
        Every::Hourly => format!("*-*-* *:{minute:02}:00"),
        Every::Daily => format!("*-*-* {hour:02}:{minute:02}:00"),
    };
    let timer = format!(
        "[Unit]\nDescription=connapp watch, {}\n\n[Timer]\nOnCalendar={calendar}\nPersistent=true\nRandomizedDelaySec=300\n\n[Install]\nWantedBy=timers.target\n",
        match every {
            Every::Hourly => "hourly",
            Every::Daily => "daily",
        }
    );
    (service, timer)
}

/// The launchd agent.
pub fn launchd_plist(command: &[String], every: Every, minute: u8, hour: u8) -> String {
    let args: String = command
        .iter()
        .map(|a| {
            format!(
                "    <string>{}</string>\n",
                a.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
            )
        })
        .collect();
    let hour_key = match every {
        Every::Daily => format!("    <key>Hour</key><integer>{hour}</integer>\n"),
        Every::Hourly => String::new(),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n  <key>Label</key><string>dev.connapp.watch</string>\n  <key>ProgramArguments</key>\n  <array>\n{args}  </array>\n  <key>StartCalendarInterval</key>\n  <dict>\n{hour_key}    <key>Minute</key><integer>{minute}</integer>\n  </dict>\n</dict>\n</plist>\n"
    )
}

/// The crontab block.
pub fn cron_block(command: &[String], every: Every, minute: u8, hour: u8) -> String {
    let when = match every {
        Every::Hourly => format!("{minute} * * * *"),
        Every::Daily => format!("{minute} {hour} * * *"),
    };
    let cmd: Vec<String> = command.iter().map(|w| shell_quote(w)).collect();
    format!(
        "{CRON_BEGIN}\n{when} {}\n{CRON_END}\n",
        cmd.join(" ").replace('%', "\\%")
    )
}

/// `text` without the block between the markers (and the markers).
pub fn without_block(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let l = line.trim_end_matches(['\n', '\r']);
        if l == CRON_BEGIN {
            inside = true;
            continue;
        }
        if inside {
            if l == CRON_END {
                inside = false;
            }
            continue;
        }
        out.push_str(line);
    }
    out
}

fn run(cmd: &mut Command) -> Result<std::process::Output, String> {
    cmd.stdin(Stdio::null()).output().map_err(|e| format!("{e}"))
}

/// The user's crontab, `None` when there is none. An error when `crontab`
/// cannot be run.
fn read_crontab() -> Result<Option<String>, Error> {
    let out = run(Command::new("crontab").arg("-l")).map_err(|e| {
        Error::failure(format!("cannot run crontab: {e}")).hint("install cron, or choose --scheduler systemd")
    })?;
    if out.status.success() {
        return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("no crontab") {
        return Ok(None);
    }
    Err(Error::failure(format!("crontab -l failed: {}", err.trim())))
}

fn write_crontab(text: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut child = Command::new("crontab")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::failure(format!("cannot run crontab: {e}")))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(text.as_bytes())
            .map_err(|e| Error::failure(format!("crontab -: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::failure(format!("crontab -: {e}")))?;
    if !out.status.success() {
        return Err(Error::failure(format!(
            "crontab - refused the new crontab: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn create_dirs(dir: &Path, created: &mut Vec<PathBuf>) -> Result<(), Error> {
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d {
        if p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        d = p.parent();
    }
    for p in missing.iter().rev() {
        std::fs::create_dir(p).map_err(|e| Error::failure(format!("cannot create {}: {e}", p.display())))?;
        created.push(p.clone());
    }
    Ok(())
}

fn write_new(path: &Path, text: &str, files: &mut Vec<PathBuf>) -> Result<(), Error> {
    if path.exists() {
        return Err(Error::failure(format!("{} exists already", path.display()))
            .hint("remove the old watch first: `connapp schedule remove`"));
    }
    connapp_plugin_api::atomic::write_file(path, text.as_bytes(), 0o644)
        .map_err(|e| Error::failure(format!("cannot write {}: {e}", path.display())))?;
    files.push(path.to_path_buf());
    Ok(())
}

/// Whether systemd's user instance answers here.
pub fn systemd_reachable() -> bool {
    run(Command::new("systemctl").args(["--user", "show-environment"])).is_ok_and(|o| o.status.success())
}

/// The scheduler to use when none is named: launchd on macOS; systemd when
/// its user instance answers; else cron.
pub fn detect() -> Scheduler {
    if cfg!(target_os = "macos") {
        Scheduler::Launchd
    } else if systemd_reachable() {
        Scheduler::Systemd
    } else {
        Scheduler::Cron
    }
}

/// A random minute (and hour) for this install, so that many installs do
/// not all run at once.
pub fn random_time() -> (u8, u8) {
    let b = connapp_oauth::lifecycle::new_journal_key().unwrap_or_default();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    (at(0) % 60, at(1) % 24)
}

/// Installs the watch: writes what `scheduler` needs and starts it where
/// it can. Returns the record and warnings (a scheduler that could not be
/// told, lingering off).
pub fn install(
    places: &Places,
    scheduler: Scheduler,
    every: Every,
    command: Vec<String>,
    now: u64,
) -> Result<(Installed, Vec<String>), Error> {
    let (minute, hour) = random_time();
    let mut rec = Installed {
        scheduler,
        every,
        minute,
        hour,
        command,
        files: Vec::new(),
        created_dirs: Vec::new(),
        cron_absent_before: false,
        cron_added_newline: false,
        installed_at: now,
    };
    let mut warnings = Vec::new();
    match scheduler {
        Scheduler::Systemd => {
            let dir = places.systemd_dir();
            create_dirs(&dir, &mut rec.created_dirs)?;
            let (service, timer) = systemd_units(&rec.command, every, minute, hour);
            write_new(&dir.join(format!("{NAME}.service")), &service, &mut rec.files)?;
            write_new(&dir.join(format!("{NAME}.timer")), &timer, &mut rec.files)?;
            let started = run(Command::new("systemctl").args(["--user", "daemon-reload"]))
                .and_then(|o| {
                    if o.status.success() {
                        Ok(())
                    } else {
                        Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
                    }
                })
                .and_then(|()| {
                    run(Command::new("systemctl").args(["--user", "enable", "--now", &format!("{NAME}.timer")]))
                        .and_then(|o| {
                            if o.status.success() {
                                Ok(())
                            } else {
                                Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
                            }
                        })
                });
            if let Err(e) = started {
                warnings.push(format!(
                    "systemd's user instance did not take the timer ({e}); the units are written: in your session run `systemctl --user daemon-reload && systemctl --user enable --now {NAME}.timer`"
                ));
            }
            let user = std::env::var("USER").unwrap_or_default();
            if let Ok(o) = run(Command::new("loginctl").args(["show-user", &user, "--property=Linger"]))
                && String::from_utf8_lossy(&o.stdout).trim() == "Linger=no"
            {
                warnings.push(format!(
                    "user lingering is off: the timer runs only while {user} is logged in; `loginctl enable-linger {user}` keeps it running"
                ));
            }
        }
        Scheduler::Launchd => {
            let dir = places.launchd_dir();
            create_dirs(&dir, &mut rec.created_dirs)?;
            let path = dir.join("dev.connapp.watch.plist");
            write_new(&path, &launchd_plist(&rec.command, every, minute, hour), &mut rec.files)?;
            if let Err(e) = run(Command::new("launchctl").arg("load").arg(&path)) {
                warnings.push(format!(
                    "launchctl did not load the agent ({e}); run `launchctl load {}`",
                    path.display()
                ));
            }
        }
        Scheduler::Cron => {
            let before = read_crontab()?;
            let old = before.clone().unwrap_or_default();
            if old.contains(CRON_BEGIN) {
                return Err(Error::failure("the crontab has a connapp watch block already")
                    .hint("remove it first: `connapp schedule remove`"));
            }
            rec.cron_absent_before = before.is_none();
            rec.cron_added_newline = !old.is_empty() && !old.ends_with('\n');
            let mut text = old;
            if rec.cron_added_newline {
                text.push('\n');
            }
            text.push_str(&cron_block(&rec.command, every, minute, hour));
            write_crontab(&text)?;
        }
    }
    Ok((rec, warnings))
}

/// Takes back what `rec` installed; returns warnings.
pub fn remove(rec: &Installed) -> Result<Vec<String>, Error> {
    let mut warnings = Vec::new();
    match rec.scheduler {
        Scheduler::Systemd => {
            if let Ok(o) = run(Command::new("systemctl").args(["--user", "disable", "--now", &format!("{NAME}.timer")]))
                && !o.status.success()
            {
                warnings.push("systemd's user instance did not answer; the units are removed anyway".into());
            }
        }
        Scheduler::Launchd => {
            if let Some(p) = rec.files.first() {
                let _ = run(Command::new("launchctl").arg("unload").arg(p));
            }
        }
        Scheduler::Cron => {
            let now = read_crontab()?.unwrap_or_default();
            let mut text = without_block(&now);
            if rec.cron_added_newline && text.ends_with('\n') {
                text.pop();
            }
            if text.is_empty() && rec.cron_absent_before {
                let _ = run(Command::new("crontab").arg("-r"));
            } else {
                write_crontab(&text)?;
            }
        }
    }
    for f in &rec.files {
        match std::fs::remove_file(f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warnings.push(format!("cannot remove {}: {e}", f.display())),
        }
    }
    if rec.scheduler == Scheduler::Systemd {
        let _ = run(Command::new("systemctl").args(["--user", "daemon-reload"]));
    }
    for d in rec.created_dirs.iter().rev() {
        // Only when empty: something else may have put files there since.
        let _ = std::fs::remove_dir(d);
    }
    Ok(warnings)
}

/// Whether what `rec` installed is still there.
pub fn present(rec: &Installed) -> bool {
    match rec.scheduler {
        Scheduler::Cron => read_crontab().ok().flatten().is_some_and(|t| t.contains(CRON_BEGIN)),
        _ => rec.files.iter().all(|f| f.exists()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_comes_out_exactly_as_it_went_in() {
        let cmd = vec![
            "/usr/bin/connapp".to_string(),
            "-f".into(),
            "/home/a b/connapp.toml".into(),
            "schedule".into(),
            "run".into(),
        ];
        let before = "MAILTO=x\n0 5 * * * backup\n";
        let with = format!("{before}{}", cron_block(&cmd, Every::Hourly, 17, 3));
        assert!(
            with.contains("17 * * * * /usr/bin/connapp -f '/home/a b/connapp.toml' schedule run"),
            "{with}"
        );
        assert_eq!(without_block(&with), before);
        let (service, timer) = systemd_units(&cmd, Every::Daily, 7, 4);
        assert!(
            service.contains("ExecStart=\"/usr/bin/connapp\" \"-f\" \"/home/a b/connapp.toml\""),
            "{service}"
        );
        assert!(
            timer.contains("OnCalendar=*-*-* 04:07:00") && timer.contains("Persistent=true"),
            "{timer}"
        );
        assert!(launchd_plist(&cmd, Every::Hourly, 9, 0).contains("<key>Minute</key><integer>9</integer>"));
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
