//! `[fleet]`: one template of apps times an inventory of rows.
//!
//! A partner running one app per customer for hundreds of customers writes the apps
//! once, under `[fleet.apps."dex-{customer}"]`, with `{column}` placeholders
//! in any string, and lists the customers as rows: a CSV file with a header
//! (`inventory = "customers.csv"`), a TOML file of `[[rows]]`, or
//! `[[fleet.rows]]` in the declaration itself. Every row makes one app per
//! template, checked by the same rules as an app under `[apps]`.
//!
//! Where a problem is reported: a problem every row shares is the
//! template's, reported once at the template; a problem only some rows have,
//! or one in a value a row filled in, is reported at the row (the inventory
//! file, its line and the cell's column), at most [`ROW_REPORTS`] times per
//! problem and then counted.

use super::*;

use std::collections::HashMap;

use crate::model::{Fleet, FleetRow};

/// The largest inventory connapp reads, in bytes (10,000 rows of 1 KiB each,
/// with room to spare).
pub const MAX_INVENTORY_BYTES: usize = 32 * 1024 * 1024;

/// How often one problem is reported at rows before the rest are counted.
pub const ROW_REPORTS: usize = 20;

/// The inventory a declaration's `fleet.inventory` names, as the caller read
/// it (the core reads no files).
#[derive(Clone, Copy, Debug)]
pub enum Inventory<'a> {
    /// Not read: the declaration names none, or the caller reads no files.
    NotRead,
    /// The file's name in diagnostics and its text.
    Text {
        /// The name to put in diagnostics.
        file: &'a str,
        /// Its contents.
        text: &'a str,
    },
    /// The file could not be read; `reason` says why.
    Unreadable {
        /// The name to put in diagnostics.
        file: &'a str,
        /// Why (not found, not UTF-8, too large, ...).
        reason: &'a str,
    },
}

/// The inventory file a declaration names in `fleet.inventory`, if any (as
/// written: relative to the declaration's directory), found without checking
/// anything else.
pub fn inventory_path(text: &str) -> Option<String> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let (_, fleet) = doc.get_ref().iter().find(|(k, _)| k.get_ref() == "fleet")?;
    let toml::de::DeValue::Table(t) = fleet.get_ref() else {
        return None;
    };
    let (_, inv) = t.iter().find(|(k, _)| k.get_ref() == "inventory")?;
    match inv.get_ref() {
        toml::de::DeValue::String(s) => Some(s.to_string()),
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    inventory: Option<Spanned<String>>,
    rows: Option<Spanned<Vec<Spanned<RawRow>>>>,
    apps: Option<Spanned<BTreeMap<String, Spanned<RawApp>>>>,
    /// Store settings per row, over `[store.settings]` (e.g. a Vault
    /// `prefix` or `namespace` per customer): each row's apps live there.
    store: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
}

type RawRow = BTreeMap<String, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventoryFile {
    rows: Option<Vec<Spanned<RawRow>>>,
}

pub(super) const FLEET_FIELDS: &[&str] = &["inventory", "rows", "apps", "store"];

/// Strings with `{column}` placeholders, filled for one row.
trait Fill: Sized {
    /// This with every placeholder filled from `row`; `None` when it is left
    /// out (a string that is exactly one placeholder whose cell is empty).
    fn fill(&self, row: &BTreeMap<String, String>) -> Option<Self>;
    /// Every string in this, with the span of the nearest value around it.
    fn strings<'a>(&'a self, span: &Range<usize>, out: &mut Vec<(Range<usize>, &'a str)>);
}

impl Fill for String {
    fn fill(&self, row: &BTreeMap<String, String>) -> Option<Self> {
        fill_str(self, row)
    }
    fn strings<'a>(&'a self, span: &Range<usize>, out: &mut Vec<(Range<usize>, &'a str)>) {
        out.push((span.clone(), self));
    }
}

macro_rules! fill_as_is {
    ($($t:ty),*) => {$(
        impl Fill for $t {
            fn fill(&self, _: &BTreeMap<String, String>) -> Option<Self> {
                Some(self.clone())
            }
            fn strings<'a>(&'a self, _: &Range<usize>, _: &mut Vec<(Range<usize>, &'a str)>) {}
        }
    )*};
}
fill_as_is!(bool, i64);

impl Fill for toml::Value {
    fn fill(&self, row: &BTreeMap<String, String>) -> Option<Self> {
        match self {
            toml::Value::String(s) => fill_str(s, row).map(toml::Value::String),
            toml::Value::Array(a) => Some(toml::Value::Array(a.iter().filter_map(|v| v.fill(row)).collect())),
            toml::Value::Table(t) => Some(toml::Value::Table(
                t.iter()
                    .filter_map(|(k, v)| v.fill(row).map(|v| (k.clone(), v)))
                    .collect(),
            )),
            other => Some(other.clone()),
        }
    }
    fn strings<'a>(&'a self, span: &Range<usize>, out: &mut Vec<(Range<usize>, &'a str)>) {
        match self {
            toml::Value::String(s) => out.push((span.clone(), s)),
            toml::Value::Array(a) => a.iter().for_each(|v| v.strings(span, out)),
            toml::Value::Table(t) => t.values().for_each(|v| v.strings(span, out)),
            _ => {}
        }
    }
}

impl<T: Fill> Fill for Spanned<T> {
    fn fill(&self, row: &BTreeMap<String, String>) -> Option<Self> {
        self.get_ref().fill(row).map(|v| Spanned::new(self.span(), v))
    }
    fn strings<'a>(&'a self, _: &Range<usize>, out: &mut Vec<(Range<usize>, &'a str)>) {
        self.get_ref().strings(&self.span(), out);
    }
}

impl<T: Fill> Fill for Option<T> {
    fn fill(&self, row: &BTreeMap<String, String>) -> Option<Self> {
        Some(self.as_ref().and_then(|v| v.fill(row)))
    }
    fn strings<'a>(&'a self, span: &Range<usize>, out: &mut Vec<(Range<usize>, &'a str)>) {
        if let Some(v) = self {
            v.strings(span, out);
        }
    }
}

impl<T: Fill> Fill for Vec<T> {
    fn fill(&self, row: &BTreeMap<String, String>) -> Option<Self> {
        Some(self.iter().filter_map(|v| v.fill(row)).collect())
    }
    fn strings<'a>(&'a self, span: &Range<usize>, out: &mut Vec<(Range<usize>, &'a str)>) {
        self.iter().for_each(|v| v.strings(span, out));
    }
}

impl<T: Fill> Fill for BTreeMap<String, T> {
    fn fill(&self, row: &BTreeMap<String, String>) -> Option<Self> {
        Some(
            self.iter()
                .filter_map(|(k, v)| v.fill(row).map(|v| (k.clone(), v)))
                .collect(),
        )
    }
    fn strings<'a>(&'a self, span: &Range<usize>, out: &mut Vec<(Range<usize>, &'a str)>) {
        self.values().for_each(|v| v.strings(span, out));
    }
}

macro_rules! fill_struct {
    ($t:ident { $($f:ident),* $(,)? }) => {
        impl Fill for $t {
            fn fill(&self, row: &BTreeMap<String, String>) -> Option<Self> {
                Some($t { $($f: self.$f.fill(row)?),* })
            }
            fn strings<'a>(&'a self, span: &Range<usize>, out: &mut Vec<(Range<usize>, &'a str)>) {
                $(self.$f.strings(span, out);)*
            }
        }
    };
}
fill_struct!(RawApp {
    display_name,
    platform,
    usage,
    redirect_url,
    allow_list,
    strict_mode,
    subdomain_check,
    presets,
    scopes,
    target,
    oauth,
    optional_scopes,
    app_id,
    managed_by,
    webhook,
    client_secret_max_age_days,
});
fill_struct!(RawOAuth {
    grant,
    login_redirect,
    oauth_base,
    api_base,
    authorize_url,
    token_url,
    revoke_url,
    client_auth,
    pkce,
    account_id,
    authorize_params,
});
fill_struct!(RawWebhook { endpoint_url, events });

/// The placeholders of `s` in order (`{{` and `}}` are literal braces), or
/// what is wrong with one.
fn placeholders(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(['{', '}']) {
        let (c, after) = (rest.as_bytes()[i], &rest[i + 1..]);
        if after.starts_with(c as char) {
            rest = &after[1..];
            continue;
        }
        if c == b'}' {
            return Err("a `}` closes no placeholder (write `}}` for a literal brace)".into());
        }
        let Some(end) = after.find('}') else {
            return Err("a `{` opens a placeholder that is never closed (write `{{` for a literal brace)".into());
        };
        let name = &after[..end];
        if !valid_column(name) {
            return Err(format!(
                "`{{{name}}}` is not a placeholder: a column name has lower-case letters, digits and `_`"
            ));
        }
        out.push(name);
        rest = &after[end + 1..];
    }
    Ok(out)
}

fn valid_column(name: &str) -> bool {
    let mut c = name.chars();
    matches!(c.next(), Some('a'..='z')) && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `s` with its placeholders filled from `row`; `None` when `s` is exactly
/// one placeholder and its cell is empty (the field is left out).
fn fill_str(s: &str, row: &BTreeMap<String, String>) -> Option<String> {
    if !s.contains(['{', '}']) {
        return Some(s.to_string());
    }
    if let Some(name) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}'))
        && valid_column(name)
    {
        let v = row.get(name).map(String::as_str).unwrap_or_default();
        return (!v.is_empty()).then(|| v.to_string());
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut rest = s;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let (c, after) = (rest.as_bytes()[i], &rest[i + 1..]);
        if after.starts_with(c as char) || c == b'}' {
            out.push(c as char);
            rest = if after.starts_with(c as char) {
                &after[1..]
            } else {
                after
            };
            continue;
        }
        let end = after.find('}').unwrap_or(after.len());
        out.push_str(row.get(&after[..end]).map(String::as_str).unwrap_or_default());
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    Some(out)
}

/// Where a row's cells are written.
struct RowAt {
    /// 0: the declaration; 1: the inventory file.
    in_inventory: bool,
    /// The row's own span (its first cell, or its table).
    span: Range<usize>,
    /// Each cell's span.
    cells: BTreeMap<String, Range<usize>>,
}

/// The rows read from an inventory, with where they are written.
struct Rows {
    source: String,
    columns: Vec<String>,
    rows: Vec<(BTreeMap<String, String>, RowAt)>,
}

/// The apps the template made for one row.
pub(super) struct Expanded {
    /// (app name, the filled raw app, its pattern) for each template.
    pub apps: Vec<(String, Spanned<RawApp>, String)>,
}

/// What expanding the fleet hands back to the declaration's check.
pub(super) struct Expansion<'i> {
    rows: Rows,
    inv_map: Option<SourceMap<'i>>,
    patterns: Vec<String>,
    /// For each row, its apps.
    pub expanded: Vec<Expanded>,
    /// The declaration positions (line, column) of template strings with
    /// placeholders, and the columns they use.
    filled_at: HashMap<(usize, usize), Vec<String>>,
    /// `[fleet.store]`: the store settings each row fills in.
    store: BTreeMap<String, String>,
}

/// Reads the inventory and fills the template for every row. Problems with
/// the fleet table, the inventory or the template are reported here.
pub(super) fn expand<'i>(
    cx: &mut Ctx<'_>,
    fleet: &Spanned<RawFleet>,
    inventory: Inventory<'i>,
    store_rules: Option<&StoreRules>,
) -> Option<Expansion<'i>> {
    let raw = fleet.get_ref();
    let (rows, inv_map) = read_rows(cx, fleet, inventory)?;
    let Some(templates) = raw.apps.as_ref().filter(|a| !a.get_ref().is_empty()) else {
        cx.err(
            fleet.span(),
            "fleet.apps",
            "fleet-no-template",
            "the fleet has no template: nothing says which apps each row makes",
            "add the apps each row makes, e.g. `[fleet.apps.\"dex-{customer}\"]` with the fields of an [apps.NAME] table",
        );
        return None;
    };
    let known: Vec<&str> = rows.columns.iter().map(String::as_str).collect();
    let mut ok = true;
    let mut filled_at = HashMap::new();
    for (pattern, t) in templates.get_ref() {
        let field = format!("fleet.apps.{pattern}");
        match placeholders(pattern) {
            Err(why) => {
                cx.err(
                    t.span(),
                    &field,
                    "fleet-placeholder",
                    format!("the app name pattern {pattern:?}: {why}"),
                    "write placeholders as `{column}`, e.g. \"dex-{customer}\"",
                );
                ok = false;
            }
            Ok(used) if used.is_empty() => {
                cx.err(
                    t.span(),
                    &field,
                    "fleet-name-placeholder",
                    format!("the app name {pattern:?} uses no column, so every row would make the same app"),
                    format!(
                        "name the apps after a column that differs per row, e.g. \"{pattern}-{{{}}}\"",
                        known.first().copied().unwrap_or("customer")
                    ),
                );
                ok = false;
            }
            Ok(used) => ok &= known_columns(cx, t.span(), &field, &used, &known, &rows.source),
        }
        let mut strings = Vec::new();
        t.strings(&t.span(), &mut strings);
        for (span, s) in strings {
            if !s.contains(['{', '}']) {
                continue;
            }
            match placeholders(s) {
                Err(why) => {
                    cx.err(
                        span,
                        &field,
                        "fleet-placeholder",
                        format!("{s:?}: {why}"),
                        "write placeholders as `{column}`",
                    );
                    ok = false;
                }
                Ok(used) => {
                    ok &= known_columns(cx, span.clone(), &field, &used, &known, &rows.source);
                    if !used.is_empty() {
                        let at = cx.map.line_col(span.start);
                        filled_at.insert(at, used.iter().map(|c| c.to_string()).collect());
                    }
                }
            }
        }
    }
    let mut store = BTreeMap::new();
    if let Some(settings) = &raw.store {
        for (name, value) in settings.get_ref() {
            let field = format!("fleet.store.{name}");
            if let Some(rules) = store_rules
                && !rules.settings.iter().any(|r| &r.name == name)
            {
                let known: Vec<&str> = rules.settings.iter().map(|r| r.name.as_str()).collect();
                cx.err(
                    value.span(),
                    &field,
                    "fleet-store-setting",
                    format!("the {} store has no setting {name:?}", rules.kind),
                    match nearest(name, known.iter().copied()) {
                        Some(n) => format!("did you mean `{n}`? Its settings: {}", known.join(", ")),
                        None => format!("use one of its settings: {}", known.join(", ")),
                    },
                );
                ok = false;
            }
            match placeholders(value.get_ref()) {
                Err(why) => {
                    cx.err(
                        value.span(),
                        &field,
                        "fleet-placeholder",
                        format!("{:?}: {why}", value.get_ref()),
                        "write placeholders as `{column}`",
                    );
                    ok = false;
                }
                Ok(used) => ok &= known_columns(cx, value.span(), &field, &used, &known, &rows.source),
            }
            store.insert(name.clone(), value.get_ref().clone());
        }
        ok &= same_row_managers(cx, templates.get_ref());
    }
    if !ok {
        return None;
    }
    let patterns: Vec<String> = templates.get_ref().keys().cloned().collect();
    let expanded = rows
        .rows
        .iter()
        .map(|(values, _)| Expanded {
            apps: templates
                .get_ref()
                .iter()
                .filter_map(|(pattern, t)| {
                    let name = fill_str(pattern, values).unwrap_or_default();
                    t.fill(values).map(|a| (name, a, pattern.clone()))
                })
                .collect(),
        })
        .collect();
    Some(Expansion {
        rows,
        inv_map,
        patterns,
        expanded,
        filled_at,
        store,
    })
}

/// With `[fleet.store]` a row's apps live in the row's store, so an app's
/// management app must be one the same row makes (its token is read there).
fn same_row_managers(cx: &mut Ctx<'_>, templates: &BTreeMap<String, Spanned<RawApp>>) -> bool {
    let mut ok = true;
    for (pattern, t) in templates {
        let Some(m) = &t.get_ref().managed_by else { continue };
        if !templates.contains_key(m.get_ref()) {
            cx.err(
                m.span(),
                &format!("fleet.apps.{pattern}.managed_by"),
                "fleet-store-manager",
                format!(
                    "with [fleet.store] each row's apps live in that row's store, but {:?} is not an app the row makes",
                    m.get_ref()
                ),
                format!(
                    "name one of the row's own apps ({}), or drop [fleet.store]",
                    templates
                        .keys()
                        .map(|k| format!("{k:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            ok = false;
        }
    }
    ok
}

fn known_columns(
    cx: &mut Ctx<'_>,
    span: Range<usize>,
    field: &str,
    used: &[&str],
    known: &[&str],
    source: &str,
) -> bool {
    let mut ok = true;
    for c in used {
        if !known.contains(c) {
            let fix = match nearest(c, known.iter().copied()) {
                Some(n) => format!("did you mean `{{{n}}}`? The columns are: {}", known.join(", ")),
                None => format!("add a column `{c}` to {source}, or use one of: {}", known.join(", ")),
            };
            cx.err(
                span.clone(),
                field,
                "fleet-column",
                format!("`{{{c}}}` names no column of {source}"),
                fix,
            );
            ok = false;
        }
    }
    ok
}

/// The rows: inline (`[[fleet.rows]]`) or from the inventory file.
fn read_rows<'i>(
    cx: &mut Ctx<'_>,
    fleet: &Spanned<RawFleet>,
    inventory: Inventory<'i>,
) -> Option<(Rows, Option<SourceMap<'i>>)> {
    let raw = fleet.get_ref();
    match (&raw.inventory, &raw.rows) {
        (Some(i), Some(r)) => {
            cx.err(
                r.span(),
                "fleet.rows",
                "fleet-rows-twice",
                format!("the fleet has rows here and in the inventory {:?}", i.get_ref()),
                "keep the rows in one place: remove `[[fleet.rows]]` or `inventory`",
            );
            None
        }
        (None, None) => {
            cx.err(
                fleet.span(),
                "fleet.inventory",
                "fleet-no-rows",
                "the fleet has no inventory: nothing says which customers it serves",
                "add `inventory = \"customers.csv\"` (a CSV file with a header row) or `[[fleet.rows]]` tables",
            );
            None
        }
        (None, Some(rows)) => {
            let file = cx.map.file().to_string();
            let r = toml_rows(cx, None, &file, rows.get_ref())?;
            Some((r, None))
        }
        (Some(path), None) => {
            let field = "fleet.inventory";
            match inventory {
                Inventory::NotRead => {
                    cx.err(
                        path.span(),
                        field,
                        "fleet-inventory-unread",
                        format!("the inventory {:?} was not read", path.get_ref()),
                        "check the declaration with `connapp check`, which reads it",
                    );
                    None
                }
                Inventory::Unreadable { file, reason } => {
                    cx.err(
                        path.span(),
                        field,
                        "fleet-inventory-unreadable",
                        format!("cannot read the inventory {file}: {reason}"),
                        "write the path relative to the declaration's directory, e.g. `inventory = \"customers.csv\"`",
                    );
                    None
                }
                Inventory::Text { file, text } => {
                    let map = SourceMap::new(file, text);
                    let rows = if path.get_ref().ends_with(".toml") {
                        toml_file_rows(cx, &map, file, text)
                    } else if path.get_ref().ends_with(".csv") {
                        csv_rows(cx, &map, file, text)
                    } else {
                        cx.err(
                            path.span(),
                            field,
                            "fleet-inventory-kind",
                            format!("connapp reads inventories as .csv or .toml files, not {:?}", path.get_ref()),
                            "name a CSV file with a header row (customers.csv) or a TOML file of [[rows]] (customers.toml)",
                        );
                        None
                    }?;
                    Some((rows, Some(map)))
                }
            }
        }
    }
}

/// Pushes a diagnostic located in the inventory file (`map`) or the declaration.
fn err_in(
    cx: &mut Ctx<'_>,
    map: Option<&SourceMap<'_>>,
    span: Range<usize>,
    field: &str,
    rule: &'static str,
    message: String,
    fix: String,
) {
    match map {
        Some(m) => {
            let d = m.diag(Severity::Error, span, field, rule, message, fix);
            cx.diags.push(d);
        }
        None => cx.err(span, field, rule, message, fix),
    }
}

fn toml_file_rows(cx: &mut Ctx<'_>, map: &SourceMap<'_>, file: &str, text: &str) -> Option<Rows> {
    let parsed = toml::Deserializer::parse(text)
        .map_err(|e| e.to_string())
        .and_then(|de| {
            RawInventoryFile::deserialize(de)
                .map_err(|e| (e.span(), e.message().to_string()))
                .map_err(|(s, m)| {
                    let (line, _) = map.line_col(s.unwrap_or(0..0).start);
                    format!("line {line}: {m}")
                })
        });
    match parsed {
        Ok(r) => toml_rows(cx, Some(map), file, &r.rows.unwrap_or_default()),
        Err(e) => {
            err_in(
                cx,
                Some(map),
                0..0,
                "(inventory)",
                "fleet-inventory-syntax",
                format!("the inventory is not a TOML file of rows: {}", e.trim()),
                "write each row as a `[[rows]]` table of `column = \"value\"` lines".into(),
            );
            None
        }
    }
}

fn toml_rows(cx: &mut Ctx<'_>, map: Option<&SourceMap<'_>>, file: &str, raw: &[Spanned<RawRow>]) -> Option<Rows> {
    let mut columns: Vec<String> = Vec::new();
    let mut rows = Vec::with_capacity(raw.len());
    let prefix = if map.is_some() { "rows" } else { "fleet.rows" };
    for (i, r) in raw.iter().enumerate() {
        let mut values = BTreeMap::new();
        let mut cells = BTreeMap::new();
        for (k, v) in r.get_ref() {
            let field = format!("{prefix}[{i}].{k}");
            if !valid_column(k) {
                err_in(
                    cx,
                    map,
                    v.span(),
                    &field,
                    "fleet-column-name",
                    format!("the column name {k:?} cannot be a placeholder"),
                    "name columns with lower-case letters, digits and `_`, starting with a letter".into(),
                );
                continue;
            }
            let s = match v.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    err_in(
                        cx,
                        map,
                        v.span(),
                        &field,
                        "toml-type",
                        format!("invalid type: {}, expected a string", other.type_str()),
                        "write the cell as a string in double quotes".into(),
                    );
                    continue;
                }
            };
            if !columns.contains(k) {
                columns.push(k.clone());
            }
            values.insert(k.clone(), s);
            cells.insert(k.clone(), v.span());
        }
        rows.push((
            values,
            RowAt {
                in_inventory: map.is_some(),
                span: r.span(),
                cells,
            },
        ));
    }
    // A bad cell is said and left out; the rows are still checked.
    Some(Rows {
        source: file.to_string(),
        columns,
        rows,
    })
}

fn csv_rows(cx: &mut Ctx<'_>, map: &SourceMap<'_>, file: &str, text: &str) -> Option<Rows> {
    let mut rdr = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let fail = |cx: &mut Ctx<'_>, at: usize, message: String, fix: &str| {
        err_in(
            cx,
            Some(map),
            at..at,
            "(inventory)",
            "fleet-inventory-syntax",
            message,
            fix.to_string(),
        );
    };
    let header = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            let at = e.position().map_or(0, |p| p.byte() as usize);
            fail(
                cx,
                at,
                format!("the inventory's header row cannot be read: {e}"),
                "the first line names the columns, e.g. `customer,instance,account`",
            );
            return None;
        }
    };
    let header_at = rdr.position().byte() as usize;
    let header_start = text[..header_at.min(text.len())]
        .trim_end_matches(['\n', '\r'])
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let mut columns = Vec::new();
    let mut ok = true;
    for (i, name) in header.iter().enumerate() {
        let at = header_start + field_offset(&text[header_start..], i);
        if !valid_column(name) {
            fail(
                cx,
                at,
                format!("the column name {name:?} cannot be a placeholder"),
                "name columns with lower-case letters, digits and `_`, starting with a letter, e.g. `account_id`",
            );
            ok = false;
        } else if columns.iter().any(|c| c == name) {
            fail(
                cx,
                at,
                format!("the column {name:?} is named twice"),
                "give every column its own name",
            );
            ok = false;
        }
        columns.push(name.to_string());
    }
    if !ok {
        return None;
    }
    if columns.is_empty() {
        fail(
            cx,
            0,
            "the inventory has no header row".into(),
            "the first line names the columns, e.g. `customer,instance,account`",
        );
        return None;
    }
    let mut rows = Vec::new();
    let mut rec = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {
                let start = rec.position().map_or(0, |p| p.byte() as usize);
                let line = &text[start.min(text.len())..];
                let mut values = BTreeMap::new();
                let mut cells = BTreeMap::new();
                for (i, (name, v)) in columns.iter().zip(rec.iter()).enumerate() {
                    values.insert(name.clone(), v.to_string());
                    let at = start + field_offset(line, i);
                    cells.insert(name.clone(), at..at);
                }
                rows.push((
                    values,
                    RowAt {
                        in_inventory: true,
                        span: start..start,
                        cells,
                    },
                ));
            }
            Err(e) => {
                let at = e.position().map_or(0, |p| p.byte() as usize);
                let message = match e.kind() {
                    csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                        format!("this row has {len} cells but the header names {expected_len} columns")
                    }
                    _ => format!("the row cannot be read: {e}"),
                };
                fail(
                    cx,
                    at,
                    message,
                    "give every row one cell per column (an empty cell is two commas: `a,,c`); quote cells holding commas: \"a, b\"",
                );
                // A broken row leaves the reader where it was: go on with the next line.
                if !matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                    break;
                }
            }
        }
    }
    // A broken row is said and left out; the others are still checked.
    Some(Rows {
        source: file.to_string(),
        columns,
        rows,
    })
}

/// The byte offset of the `i`-th field (0-based) of the CSV record starting
/// `line`, with quoted fields taken as one.
fn field_offset(line: &str, i: usize) -> usize {
    let (mut field, mut quoted) = (0, false);
    for (at, c) in line.char_indices() {
        if field == i {
            return at;
        }
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => field += 1,
            '\n' if !quoted => break,
            _ => {}
        }
    }
    0
}

impl Expansion<'_> {
    /// The fleet the declaration carries: the rows and the apps they made.
    pub(super) fn fleet(&self) -> Fleet {
        Fleet {
            source: self.rows.source.clone(),
            columns: self.rows.columns.clone(),
            patterns: self.patterns.clone(),
            rows: self
                .rows
                .rows
                .iter()
                .zip(&self.expanded)
                .map(|((values, at), e)| FleetRow {
                    line: self.line_of(at),
                    values: values.clone(),
                    apps: e.apps.iter().map(|(n, _, _)| n.clone()).collect(),
                    store: self
                        .store
                        .iter()
                        .map(|(k, v)| (k.clone(), fill_str(v, values).unwrap_or_default()))
                        .collect(),
                })
                .collect(),
        }
    }

    fn line_of(&self, at: &RowAt) -> usize {
        self.map_of(at).map_or(0, |m| m.line_col(at.span.start).0)
    }

    fn map_of<'s>(&'s self, at: &RowAt) -> Option<&'s SourceMap<'s>> {
        if at.in_inventory { self.inv_map.as_ref() } else { None }
    }

    /// Reports the rows' own problem: two rows making one app, or one
    /// named like an app of `[apps]`. Returns the apps (row, name) not to
    /// check, being duplicates.
    pub(super) fn check_names(
        &self,
        cx: &mut Ctx<'_>,
        declared: &BTreeMap<String, Spanned<RawApp>>,
    ) -> std::collections::HashSet<(usize, String)> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut skip = std::collections::HashSet::new();
        for (i, e) in self.expanded.iter().enumerate() {
            let at = &self.rows.rows[i].1;
            for (name, _, pattern) in &e.apps {
                let clash = if declared.contains_key(name) {
                    Some(format!("an app under [apps] is also called {name:?}"))
                } else {
                    match seen.get(name.as_str()) {
                        Some(j) => {
                            let line = self.line_of(&self.rows.rows[*j].1);
                            Some(format!("the row on line {line} makes {name:?} too"))
                        }
                        None => {
                            seen.insert(name, i);
                            None
                        }
                    }
                };
                if let Some(why) = clash {
                    let message = format!("this row makes the app {name:?} (from {pattern:?}) but {why}");
                    let fix = "the columns an app name uses must differ from row to row; remove the duplicate row, or rename it".to_string();
                    err_in(
                        cx,
                        self.map_of(at),
                        at.span.clone(),
                        &format!("apps.{name}"),
                        "fleet-duplicate-app",
                        message,
                        fix,
                    );
                    skip.insert((i, name.clone()));
                }
            }
        }
        skip
    }

    /// Moves the problems of the apps the rows made (`cx.diags[from..]`
    /// naming them) to where they belong: the template once when every row
    /// has it and no row's value caused it, else the rows (at most
    /// [`ROW_REPORTS`] each, then a count).
    pub(super) fn relocate(&self, cx: &mut Ctx<'_>, from: usize) {
        let mut owner: HashMap<&str, (usize, &str)> = HashMap::new();
        for (i, e) in self.expanded.iter().enumerate() {
            for (name, _, pattern) in &e.apps {
                owner.insert(name, (i, pattern));
            }
        }
        let produced: Vec<Diagnostic> = cx.diags.drain(from..).collect();
        // key -> (the template's form of the problem, the rows that have it)
        struct Group {
            template: Diagnostic,
            filled: Option<Vec<String>>,
            rows: Vec<(usize, Diagnostic)>,
        }
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<(usize, usize, String, String, String), usize> = HashMap::new();
        for d in produced {
            let name = d.field.strip_prefix("apps.").map(|r| r.split('.').next().unwrap_or(r));
            let Some((row, pattern)) = name.and_then(|n| owner.get(n).copied()) else {
                cx.diags.push(d);
                continue;
            };
            let name = name.unwrap_or_default();
            let normal = |s: &str| s.replace(name, pattern);
            let mut template = d.clone();
            template.field = format!("fleet.{}", normal(&d.field));
            template.message = normal(&d.message);
            template.fix = normal(&d.fix);
            // A problem in a value a row filled in is one problem whatever
            // the value; elsewhere the words tell problems apart.
            let filled = self.filled_at.contains_key(&(d.line, d.column));
            let words = if filled {
                String::new()
            } else {
                template.message.clone()
            };
            let key = (d.line, d.column, d.rule.to_string(), template.field.clone(), words);
            let g = *index.entry(key).or_insert_with(|| {
                groups.push(Group {
                    filled: self.filled_at.get(&(d.line, d.column)).cloned(),
                    template,
                    rows: Vec::new(),
                });
                groups.len() - 1
            });
            groups[g].rows.push((row, d));
        }
        for g in groups {
            let every_row = g.rows.len() == self.rows.rows.len();
            if g.filled.is_none() && every_row {
                cx.diags.push(g.template);
                continue;
            }
            let column = g.filled.as_ref().and_then(|c| c.first()).map(String::as_str);
            let total = g.rows.len();
            for (row, d) in g.rows.into_iter().take(ROW_REPORTS) {
                let at = &self.rows.rows[row].1;
                let from = match &g.filled {
                    Some(cols) => {
                        let values = &self.rows.rows[row].0;
                        let shown: Vec<String> = cols
                            .iter()
                            .map(|c| format!("{c} = {:?}", values.get(c).map(String::as_str).unwrap_or_default()))
                            .collect();
                        format!(" (this row's {})", shown.join(", "))
                    }
                    None => String::new(),
                };
                let span = column.and_then(|c| at.cells.get(c)).cloned().unwrap_or(at.span.clone());
                let map = self.map_of(at).unwrap_or(&cx.map);
                let mut moved = map.diag(
                    d.severity,
                    span,
                    d.field.clone(),
                    d.rule.clone(),
                    d.message.clone(),
                    d.fix.clone(),
                );
                moved.message.push_str(&from);
                cx.diags.push(moved);
            }
            if total > ROW_REPORTS {
                let mut more = g.template.clone();
                more.message = format!(
                    "{} more rows have this problem: {}",
                    total - ROW_REPORTS,
                    g.template.message
                );
                cx.diags.push(more);
            }
        }
    }
}
