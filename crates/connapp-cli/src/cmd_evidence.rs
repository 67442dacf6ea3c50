//! `connapp evidence keygen|verify`, and the writing of the evidence that
//! `apply --evidence` and `rotate --evidence` produce: the statement (or
//! its DSSE envelope) in FILE, the documents it names in FILE.subjects/.
//! The format and the checks are `connapp_engine::evidence`'s.

use std::io::Write;
use std::path::{Path, PathBuf};

use connapp_engine::evidence::{self, Subject};
use connapp_plugin_api::zeroize::Zeroizing;
use serde_json::{Value, json};

use crate::cli::{EvidenceArgs, EvidenceVerifyArgs, Global};
use crate::ctx;
use crate::error::{CliError, Exit};
use crate::render;

/// A key file holds 64 hex digits and a line break.
const MAX_KEY_BYTES: u64 = 1024;

/// Where the subjects of the evidence file `file` go.
pub fn subjects_dir(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_os_string();
    s.push(".subjects");
    PathBuf::from(s)
}

fn write_err(path: &Path, e: std::io::Error) -> CliError {
    CliError::failure(format!("cannot write {}: {e}", path.display()))
}

fn read_key(path: &Path, secret: bool) -> Result<Zeroizing<Vec<u8>>, CliError> {
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| CliError::failure(format!("cannot read the key {}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CliError::with_code(
                Exit::Usage,
                format!(
                    "the signing key {} may be read by others (mode {:o}); refusing to use it",
                    path.display(),
                    mode & 0o777
                ),
            )
            .hint(format!("chmod 600 {}", path.display())));
        }
    }
    let text = Zeroizing::new(
        connapp_plugin_api::bounded::read_file("the key", path, MAX_KEY_BYTES)
            .map_err(|e| CliError::failure(e.to_string()))?,
    );
    let bytes = std::str::from_utf8(&text)
        .ok()
        .and_then(evidence::unhex)
        .filter(|b| b.len() == 32)
        .ok_or_else(|| {
            CliError::with_code(
                Exit::Usage,
                format!("{} is not an Ed25519 key (64 hex digits)", path.display()),
            )
            .hint("make one with `connapp evidence keygen KEY`")
        })?;
    Ok(Zeroizing::new(bytes))
}

/// Evidence as written.
pub struct Written {
    /// What to tell the user.
    pub line: String,
    /// The evidence file's name.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Writes the evidence of a change: the statement over `subjects` with
/// `predicate`, signed when `args.sign_key` names a key.
pub fn write(args: &EvidenceArgs, subjects: &[Subject], predicate: Value) -> Result<Option<Written>, CliError> {
    let Some(file) = &args.evidence else {
        return Ok(None);
    };
    let key = args.sign_key.as_deref().map(|k| read_key(k, true)).transpose()?;
    let statement = evidence::statement(subjects, predicate);
    let bytes = evidence::seal(&statement, key.as_deref().map(Vec::as_slice))?;
    let dir = subjects_dir(file);
    std::fs::create_dir_all(&dir).map_err(|e| write_err(&dir, e))?;
    for s in subjects {
        let path = dir.join(&s.name);
        connapp_plugin_api::atomic::write_file(&path, &s.bytes, 0o644).map_err(|e| write_err(&path, e))?;
    }
    connapp_plugin_api::atomic::write_file(file, &bytes, 0o644).map_err(|e| write_err(file, e))?;
    let signed = match &key {
        Some(k) => format!(
            ", signed with {}",
            evidence::key_id(&evidence::public_of(k).map_err(CliError::from)?)
        ),
        None => String::new(),
    };
    Ok(Some(Written {
        line: format!(
            "Evidence written to {} ({} subject(s) in {}{signed}); check it with `connapp evidence verify {}`.",
            file.display(),
            subjects.len(),
            dir.display(),
            file.display()
        ),
        name: file
            .file_name()
            .map_or_else(|| "evidence.json".into(), |n| n.to_string_lossy().into_owned()),
        bytes,
    }))
}

/// Files the written evidence, its subjects and `report` (the verify
/// report) on change request `number` with `plans`; returns a line for the user.
pub fn file_on_change(
    s: &connapp_clients::apply::Session<'_, '_>,
    app: &connapp_core::App,
    number: &str,
    plans: &connapp_clients::evidence::ChangePlans,
    written: &Written,
    subjects: &[Subject],
    report: &[u8],
) -> Result<String, CliError> {
    let mut files = vec![connapp_clients::evidence::ChangeFile {
        name: written.name.clone(),
        content_type: "application/json",
        bytes: &written.bytes,
    }];
    for sub in subjects {
        files.push(connapp_clients::evidence::ChangeFile {
            name: format!("{}.subjects.{}", written.name, sub.name),
            content_type: if sub.name.ends_with(".toml") {
                "text/plain"
            } else {
                "application/json"
            },
            bytes: &sub.bytes,
        });
    }
    files.push(connapp_clients::evidence::ChangeFile {
        name: format!("{}.verify.json", app.name),
        content_type: "application/json",
        bytes: report,
    });
    let done = connapp_clients::evidence::to_change(s, app, number, plans, &files)?;
    Ok(format!(
        "Change request {}: {} file(s) attached{}.",
        done.number,
        done.files.len(),
        if done.fields.is_empty() {
            String::new()
        } else {
            format!(", {} filled", done.fields.join(", "))
        }
    ))
}

pub fn keygen(g: &Global, key: &Path) -> Result<(), CliError> {
    let mut public_path = key.as_os_str().to_os_string();
    public_path.push(".pub");
    let public_path = PathBuf::from(public_path);
    for p in [key, public_path.as_path()] {
        if p.exists() {
            return Err(
                CliError::with_code(Exit::Usage, format!("{} exists; nothing was written", p.display()))
                    .hint("choose another path, or remove the old key first if nothing signs with it any more"),
            );
        }
    }
    let pair = evidence::keygen()?;
    let mut secret = Zeroizing::new(evidence::hex(&pair.secret).into_bytes());
    secret.push(b'\n');
    connapp_plugin_api::atomic::write_file(key, &secret, 0o600).map_err(|e| write_err(key, e))?;
    let public = format!("{}\n", evidence::hex(&pair.public));
    connapp_plugin_api::atomic::write_file(&public_path, public.as_bytes(), 0o644)
        .map_err(|e| write_err(&public_path, e))?;
    if !g.quiet {
        println!(
            "Wrote the secret key {} (0600) and the public key {} ({}).",
            key.display(),
            public_path.display(),
            evidence::key_id(&pair.public)
        );
    }
    Ok(())
}

pub fn verify(g: &Global, a: EvidenceVerifyArgs) -> Result<(), CliError> {
    let bytes = connapp_plugin_api::bounded::read_file("the evidence", &a.file, evidence::MAX_EVIDENCE_BYTES)
        .map_err(|e| CliError::failure(e.to_string()))?;
    let public = a.key.as_deref().map(|k| read_key(k, false)).transpose()?;
    let dir = subjects_dir(&a.file);
    let read = |name: &str| -> Option<Vec<u8>> {
        // A subject is a plain file name inside the subjects directory.
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return None;
        }
        connapp_plugin_api::bounded::read_file("a subject", &dir.join(name), evidence::MAX_EVIDENCE_BYTES).ok()
    };
    let checked = evidence::check(&bytes, public.as_deref().map(Vec::as_slice), &read)?;
    let ok = checked.ok();
    if a.json {
        ctx::print_json(
            "evidence verify",
            &json!({
                "file": a.file.display().to_string(),
                "signed": checked.signed,
                "key_id": checked.key_id,
                "subjects": checked.subjects,
                "ok": ok,
            }),
        )?;
    } else if !g.quiet {
        let mut out = render::stdout().lock();
        match &checked.key_id {
            Some(k) => writeln!(out, "signature  ok        signed with {k}")?,
            None => writeln!(out, "signature  none      the evidence is not signed")?,
        }
        for s in &checked.subjects {
            writeln!(out, "subject    {:<9} {}", s.result, s.name)?;
        }
    }
    if !ok {
        let bad: Vec<String> = checked
            .subjects
            .iter()
            .filter(|s| s.result != "ok")
            .map(|s| format!("{} ({})", s.name, s.result))
            .collect();
        return Err(
            CliError::failure(format!("the evidence does not match its subjects: {}", bad.join(", "))).hint(format!(
                "the files in {} were changed or removed after the evidence was written",
                dir.display()
            )),
        );
    }
    Ok(())
}
