//! An app's scopes: presets plus extras, each checked against RFC 6749's
//! scope-token grammar (a platform's own grammar and level rules are its
//! plugin's).

use super::*;

pub(super) fn check_scopes(
    cx: &mut Ctx<'_>,
    app: &str,
    raw: &RawApp,
    app_span: Range<usize>,
    platform: &str,
    catalog: &Catalog,
) -> (Vec<String>, Vec<Scope>) {
    let f = |field: &str| format!("apps.{app}.{field}");
    let mut presets = Vec::new();
    let mut scopes: Vec<Scope> = Vec::new();
    // scope -> where it was first declared, for duplicate messages
    let mut seen: HashMap<String, String> = HashMap::new();

    if let Some(list) = &raw.presets {
        for (i, p) in list.get_ref().iter().enumerate() {
            let field = format!("apps.{app}.presets[{i}]");
            let name = p.get_ref();
            let Some(preset) = catalog.presets.iter().find(|x| &x.name == name) else {
                let known: Vec<&str> = catalog.presets.iter().map(|x| x.name.as_str()).collect();
                cx.err(
                    p.span(),
                    &field,
                    "preset-unknown",
                    format!("no installed plugin provides the preset {name:?}"),
                    one_of(&known, "no presets are installed; list the scopes in `scopes` instead"),
                );
                continue;
            };
            if !platform.is_empty() && preset.platform != platform {
                cx.err(
                    p.span(),
                    &field,
                    "preset-platform",
                    format!(
                        "the preset {name:?} is for {:?}, but this app's platform is {platform:?}",
                        preset.platform
                    ),
                    "use a preset for this platform, or change `platform`",
                );
                continue;
            }
            if presets.contains(name) {
                cx.err(
                    p.span(),
                    &field,
                    "preset-duplicate",
                    format!("the preset {name:?} is listed twice"),
                    "remove the duplicate",
                );
                continue;
            }
            presets.push(name.clone());
            for s in &preset.scopes {
                if let Some(prev) = seen.get(s) {
                    cx.err(
                        p.span(),
                        &field,
                        "scope-duplicate",
                        format!("the scope {s:?} of preset {name:?} is already requested by {prev}"),
                        "remove one of the presets, or drop the duplicate from `scopes`",
                    );
                    continue;
                }
                seen.insert(s.clone(), format!("preset {name:?}"));
                scopes.push(Scope {
                    scope: s.clone(),
                    source: ScopeSource::Preset(name.clone()),
                    optional: false,
                });
            }
        }
    }

    if let Some(list) = &raw.scopes {
        for (i, s) in list.get_ref().iter().enumerate() {
            let field = format!("apps.{app}.scopes[{i}]");
            let scope = s.get_ref();
            if let Some(prev) = seen.get(scope) {
                cx.err(
                    s.span(),
                    &field,
                    "scope-duplicate",
                    format!("the scope {scope:?} is already requested by {prev}"),
                    "remove this entry",
                );
                continue;
            }
            if !check_one_scope(cx, &field, s.span(), scope) {
                continue;
            }
            seen.insert(scope.clone(), format!("scopes[{i}]"));
            scopes.push(Scope {
                scope: scope.clone(),
                source: ScopeSource::Explicit,
                optional: false,
            });
        }
    }

    if scopes.is_empty()
        && !cx
            .diags
            .iter()
            .any(|d| d.rule == "preset-unknown" && d.field.starts_with(&f("presets")))
    {
        let span = raw
            .scopes
            .as_ref()
            .map(|s| s.span())
            .or(raw.presets.as_ref().map(|p| p.span()))
            .unwrap_or(app_span);
        cx.err(
            span,
            &f("scopes"),
            "scope-empty",
            "the app requests no scopes",
            "add a preset (`presets = [\"NAME\"]`, see `connapp plugins list`) or list scopes in `scopes`",
        );
    }
    (presets, scopes)
}

/// RFC 6749's scope-token grammar, for every platform; a platform's own
/// grammar is its plugin's (`check_app`).
pub(super) fn check_one_scope(cx: &mut Ctx<'_>, field: &str, span: Range<usize>, scope: &str) -> bool {
    if scope::is_rfc6749_scope_token(scope) {
        return true;
    }
    let (message, fix) = if scope.is_empty() {
        ("the scope is empty".to_string(), "remove the empty entry")
    } else {
        (
            format!("{scope:?} is not a valid OAuth scope token (no spaces, quotes or backslashes)"),
            "write one scope per array entry",
        )
    };
    cx.err(span, field, "scope-grammar", message, fix);
    false
}
