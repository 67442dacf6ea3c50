//! `connapp secrets set|list|rm`. Values come from a no-echo prompt or
//! standard input, never from the command line, and are never printed.

use std::io::{Read, Write};

use connapp_core::SecretKind;
use connapp_engine::secrets::Secrets;
use connapp_plugin_api::{Capabilities, Expected};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::cli::{Global, SecretImportArgs, SecretListArgs, SecretRmArgs, SecretSetArgs};
use crate::ctx;
use crate::error::{CliError, Exit};

const MAX_SECRET_INPUT: u64 = 8192;

fn kind_of(s: &str) -> Result<SecretKind, CliError> {
    SecretKind::parse(s).ok_or_else(|| CliError::with_code(Exit::Usage, format!("unknown secret {s:?}")))
}

/// Where the value will come from: standard input, or a prompt at a
/// terminal; without either it is a usage error, said before anything opens.
fn input_source(kind: SecretKind, from_stdin: bool) -> Result<(), CliError> {
    if from_stdin || ctx::interactive() {
        return Ok(());
    }
    Err(CliError::with_code(
        Exit::Usage,
        "standard input is not a terminal, so connapp cannot prompt for the value",
    )
    .hint(format!(
        "pipe the value in with --from-stdin: connapp secrets set {} --from-stdin < FILE",
        kind.as_str()
    )))
}

pub(crate) fn read_value(kind: SecretKind, app: &str, from_stdin: bool) -> Result<Zeroizing<Vec<u8>>, CliError> {
    if from_stdin {
        // Allocated once at full size so no reallocation leaves a stray copy behind.
        let mut buf = Zeroizing::new(Vec::with_capacity(MAX_SECRET_INPUT as usize + 1));
        std::io::stdin()
            .lock()
            .take(MAX_SECRET_INPUT + 1)
            .read_to_end(&mut buf)
            .map_err(|e| CliError::failure(format!("cannot read standard input: {e}")))?;
        if buf.len() as u64 > MAX_SECRET_INPUT {
            return Err(CliError::failure(format!(
                "standard input holds more than {MAX_SECRET_INPUT} bytes; that is not a {}",
                kind.label()
            )));
        }
        // One trailing line break (from `echo` or a file) is not part of the value.
        if buf.ends_with(b"\n") {
            buf.pop();
            if buf.ends_with(b"\r") {
                buf.pop();
            }
        }
        return Ok(buf);
    }
    // `set` checked `input_source` before it opened the store.
    let value = rpassword::prompt_password(format!("{} for {app} (input hidden): ", kind.label()))
        .map_err(|e| CliError::failure(format!("cannot read the value: {e}")))?;
    let value = Zeroizing::new(value);
    Ok(Zeroizing::new(value.as_bytes().to_vec()))
}

#[derive(Serialize)]
pub struct CapsJson {
    pub persistent: bool,
    pub shared_across_hosts: bool,
    pub native_cas: bool,
    pub max_value_size: Option<u64>,
}

impl From<Capabilities> for CapsJson {
    fn from(c: Capabilities) -> Self {
        CapsJson {
            persistent: c.persistent,
            shared_across_hosts: c.shared_across_hosts,
            native_cas: c.native_cas,
            max_value_size: c.max_value_size(),
        }
    }
}

#[derive(Serialize)]
struct SetOutput<'a> {
    app: &'a str,
    secret: &'a str,
    version: u64,
    store: ctx::StoreJson,
}

pub fn set(g: &Global, a: SecretSetArgs) -> Result<(), CliError> {
    let kind = kind_of(&a.secret.kind)?;
    let (reg, _, decl) = ctx::declared(g)?;
    let app = ctx::app(&decl, a.secret.app.as_deref())?;
    // The store first, as ssh and gpg ask: a new store says so and takes its
    // passphrase (twice) before connapp asks for the value to keep in it.
    input_source(kind, a.from_stdin)?;
    let (store, plugin) = ctx::open_store(reg, &decl, Some(app.name.as_str()))?;
    let value = read_value(kind, &app.name, a.from_stdin)?;
    kind.check_value(&value).map_err(|why| {
        let profile = connapp_engine::platform::platform(reg, &app.platform)
            .ok()
            .flatten()
            .map(|p| p.profile)
            .unwrap_or_default();
        let source = connapp_engine::platform::credentials_source(&profile);
        CliError::with_code(Exit::Usage, format!("{why}; nothing was stored"))
            .hint(format!("copy the {} from {source} and try again", kind.label()))
    })?;
    let version = Secrets::new(&store)
        .put_dated(&app.name, kind, &value, Expected::Any, connapp_engine::tokens::now())
        .map_err(|e| connapp_host::plugin_error(plugin, e))?;
    drop(value);
    let info = ctx::StoreJson::of(&decl.store.kind, plugin, &store)?;
    if a.json {
        return ctx::print_json(
            "secrets set",
            &SetOutput {
                app: &app.name,
                secret: kind.as_str(),
                version,
                store: info,
            },
        );
    }
    if !g.quiet {
        println!(
            "Stored the {} of {} in the {} store ({}), version {version}",
            kind.label(),
            app.name,
            info.kind,
            info.location
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct ListEntry {
    app: String,
    secret: &'static str,
    present: bool,
    version: Option<u64>,
    bytes: Option<usize>,
}

#[derive(Serialize)]
struct ListOutput {
    store: ctx::StoreJson,
    secrets: Vec<ListEntry>,
}

pub fn list(g: &Global, a: SecretListArgs) -> Result<(), CliError> {
    let (reg, _, decl) = ctx::declared(g)?;
    let apps: Vec<&connapp_core::App> = match &a.app {
        Some(n) => vec![ctx::app(&decl, Some(n))?],
        None => decl.apps.iter().collect(),
    };
    // Each store the apps live in (a fleet's rows may have their own), in turn.
    let wanted: std::collections::HashSet<&str> = apps.iter().map(|a| a.name.as_str()).collect();
    let mut found = Vec::new();
    // The declaration's own store is opened once (it may ask for a passphrase).
    let mut own = None;
    for (store_decl, group) in decl.store_groups() {
        let names: Vec<&str> = group.into_iter().filter(|n| wanted.contains(n)).collect();
        let Some(first) = names.first() else { continue };
        let (store, plugin) = ctx::open_store(reg, &decl, Some(first))?;
        found.extend(
            Secrets::new(&store)
                .inventory(names.iter().copied())
                .map_err(|e| connapp_host::plugin_error(plugin, e))?,
        );
        if store_decl == decl.store {
            own = Some((store, plugin));
        }
    }
    let secrets: Vec<ListEntry> = found
        .into_iter()
        .map(|e| ListEntry {
            present: e.present(),
            secret: e.kind.as_str(),
            version: e.version,
            bytes: e.bytes,
            app: e.app,
        })
        .collect();
    // The declaration's store, as the header says (a fleet row's prefix is its apps' store path).
    let (store, plugin) = match own {
        Some(opened) => opened,
        None => ctx::open_store(reg, &decl, None)?,
    };
    let info = ctx::StoreJson::of(&decl.store.kind, plugin, &store)?;
    if a.json {
        return ctx::print_json("secrets list", &ListOutput { store: info, secrets });
    }
    let mut out = std::io::stdout().lock();
    if !g.quiet {
        writeln!(
            out,
            "store: {} ({}, {})",
            info.kind,
            info.location,
            info.path.as_deref().unwrap_or("built-in")
        )?;
    }
    writeln!(
        out,
        "{:<20} {:<14} {:<8} {:>7} {:>6}",
        "APP", "SECRET", "STATUS", "VERSION", "BYTES"
    )?;
    for s in &secrets {
        writeln!(
            out,
            "{:<20} {:<14} {:<8} {:>7} {:>6}",
            s.app,
            s.secret,
            if s.present { "set" } else { "missing" },
            s.version.map_or("-".into(), |v| v.to_string()),
            s.bytes.map_or("-".into(), |v| v.to_string())
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
struct RmOutput<'a> {
    app: &'a str,
    secret: &'a str,
    removed: bool,
}

pub fn rm(g: &Global, a: SecretRmArgs) -> Result<(), CliError> {
    let kind = kind_of(&a.secret.kind)?;
    let (reg, _, decl) = ctx::declared(g)?;
    let app = ctx::app(&decl, a.secret.app.as_deref())?;
    ctx::confirm(
        &ctx::Confirm {
            question: &format!(
                "Remove the {} of {} from the {} store?",
                kind.label(),
                app.name,
                decl.store.kind
            ),
            action: "remove a secret",
            review: "",
            strict: false,
        },
        a.yes,
    )?;
    let (store, plugin) = ctx::open_store(reg, &decl, Some(app.name.as_str()))?;
    let removed = Secrets::new(&store)
        .remove(&app.name, kind)
        .map_err(|e| connapp_host::plugin_error(plugin, e))?;
    if a.json {
        ctx::print_json(
            "secrets rm",
            &RmOutput {
                app: &app.name,
                secret: kind.as_str(),
                removed,
            },
        )?;
    } else if !g.quiet {
        if removed {
            println!("Removed the {} of {}", kind.label(), app.name);
        } else {
            println!("No {} was stored for {}; nothing removed", kind.label(), app.name);
        }
    }
    Ok(())
}

/// The longest line `secrets import` reads (a value of at most 8 KiB, each
/// byte escaped, and the names).
const MAX_IMPORT_LINE: u64 = 64 * 1024;
/// At most this many lines (a fleet of 25,000 rows with four secrets each).
const MAX_IMPORT_LINES: usize = 100_000;
/// At most this many bad lines are named; the rest are counted.
const IMPORT_REPORTS: usize = 20;

/// One line of `secrets import`. The value goes into a zeroized buffer at
/// once (serde_json's unescaping scratch for a value with escapes is not).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    app: String,
    secret: String,
    value: String,
}

/// A checked line, ready to store.
struct Import {
    line: usize,
    app: String,
    kind: SecretKind,
    value: Zeroizing<Vec<u8>>,
}

/// Reads and checks every line of standard input: an error for each bad
/// line (its number, what is wrong), and nothing returned unless all are good.
fn read_imports(decl: &connapp_core::Declaration) -> Result<Vec<Import>, CliError> {
    use std::io::BufRead;
    let mut input = std::io::stdin().lock();
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_IMPORT_LINE as usize + 1));
    let (mut imports, mut bad) = (Vec::<Import>::new(), Vec::<String>::new());
    let mut seen = std::collections::HashSet::new();
    let names: std::collections::HashSet<&str> = decl.apps.iter().map(|a| a.name.as_str()).collect();
    let mut line = 0;
    loop {
        zeroize::Zeroize::zeroize(&mut *buf);
        let n = (&mut input)
            .take(MAX_IMPORT_LINE + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| CliError::failure(format!("cannot read standard input: {e}")))?;
        if n == 0 {
            break;
        }
        line += 1;
        if line > MAX_IMPORT_LINES {
            return Err(CliError::with_code(
                Exit::Usage,
                format!("standard input holds more than {MAX_IMPORT_LINES} lines; nothing was stored"),
            )
            .hint("split the input and import each part"));
        }
        if buf.len() as u64 > MAX_IMPORT_LINE {
            return Err(CliError::with_code(
                Exit::Usage,
                format!("line {line} is longer than {MAX_IMPORT_LINE} bytes; nothing was stored"),
            )
            .hint("each line holds one secret: {\"app\": ..., \"secret\": ..., \"value\": ...}"));
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed: ImportLine = match serde_json::from_slice(&buf) {
            Ok(p) => p,
            Err(e) => {
                // Only where: serde_json's message may quote the input (a number given as the value).
                bad.push(format!(
                    "line {line}: not a JSON object of three strings, app, secret and value (column {})",
                    e.column()
                ));
                continue;
            }
        };
        let ImportLine { app, secret, value } = parsed;
        let value = Zeroizing::new(value.into_bytes());
        let Some(kind) = SecretKind::parse(&secret) else {
            bad.push(format!("line {line}: {secret:?} is not a secret connapp keeps"));
            continue;
        };
        if !names.contains(app.as_str()) {
            let near = connapp_core::nearest(&app, names.iter().copied())
                .map(|n| format!(" (did you mean {n:?}?)"))
                .unwrap_or_default();
            bad.push(format!("line {line}: no app named {app:?} in the declaration{near}"));
            continue;
        }
        if let Err(why) = kind.check_value(&value) {
            bad.push(format!("line {line}: the {} of {app}: {why}", kind.label()));
            continue;
        }
        if !seen.insert((app.clone(), kind)) {
            bad.push(format!(
                "line {line}: the {} of {app} was given on an earlier line too",
                kind.label()
            ));
            continue;
        }
        imports.push(Import { line, app, kind, value });
    }
    if bad.is_empty() {
        return Ok(imports);
    }
    let more = bad.len().saturating_sub(IMPORT_REPORTS);
    let mut message = format!("{} bad line(s); nothing was stored:", bad.len());
    for b in bad.iter().take(IMPORT_REPORTS) {
        message.push_str("\n  ");
        message.push_str(b);
    }
    if more > 0 {
        message.push_str(&format!("\n  ... and {more} more"));
    }
    Err(CliError::with_code(Exit::Usage, message)
        .hint("fix those lines and import again (`connapp secrets set --help` names the secrets connapp keeps)"))
}

#[derive(Serialize)]
struct Imported {
    app: String,
    secret: &'static str,
    version: u64,
}

#[derive(Serialize)]
struct ImportOutput {
    stored: Vec<Imported>,
}

pub fn import(g: &Global, a: SecretImportArgs) -> Result<(), CliError> {
    let (reg, _, decl) = ctx::declared(g)?;
    if ctx::interactive() {
        return Err(CliError::with_code(
            Exit::Usage,
            "secrets import reads JSON Lines from standard input, which is a terminal",
        )
        .hint("connapp secrets import < secrets.jsonl (one {\"app\", \"secret\", \"value\"} object per line)"));
    }
    let imports = read_imports(&decl)?;
    let now = connapp_engine::tokens::now();
    let mut stored = Vec::with_capacity(imports.len());
    let apps: std::collections::HashSet<&str> = imports.iter().map(|i| i.app.as_str()).collect();
    // Store by store, each opened once (it may ask for a passphrase).
    for (_, group) in decl.store_groups() {
        let group: std::collections::HashSet<&str> = group.into_iter().filter(|n| apps.contains(n)).collect();
        let Some(first) = group.iter().next() else { continue };
        let (store, plugin) = ctx::open_store(reg, &decl, Some(first))?;
        let secrets = Secrets::new(&store);
        for i in imports.iter().filter(|i| group.contains(i.app.as_str())) {
            let version = secrets
                .put_dated(&i.app, i.kind, &i.value, Expected::Any, now)
                .map_err(|e| {
                    let e = CliError::from(connapp_host::plugin_error(plugin, e));
                    let message = format!(
                        "line {} (the {} of {}): {}; {} secret(s) before it were stored",
                        i.line,
                        i.kind.label(),
                        i.app,
                        e.message,
                        stored.len()
                    );
                    let hint = e.hint.unwrap_or_else(|| {
                        "importing the same lines again is safe: a stored value is written again".into()
                    });
                    CliError {
                        message,
                        code: e.code,
                        hint: Some(hint),
                    }
                })?;
            stored.push(Imported {
                app: i.app.clone(),
                secret: i.kind.as_str(),
                version,
            });
        }
    }
    drop(imports);
    if a.json {
        return ctx::print_json("secrets import", &ImportOutput { stored });
    }
    if !g.quiet {
        let apps: std::collections::HashSet<&str> = stored.iter().map(|s| s.app.as_str()).collect();
        println!("Stored {} secret(s) of {} app(s)", stored.len(), apps.len());
    }
    Ok(())
}
