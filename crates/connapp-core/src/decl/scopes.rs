//! An app's scopes: presets plus extras, each checked against the scope grammar
//! and the app's usage.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn check_scopes(
    cx: &mut Ctx<'_>,
    app: &str,
    raw: &RawApp,
    app_span: Range<usize>,
    platform: &str,
    is_zoom: bool,
    usage: Option<Usage>,
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
            if !check_one_scope(cx, &field, s.span(), scope, is_zoom, usage) {
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

    // Preset scopes go through the same level rules as explicit ones.
    if is_zoom && usage == Some(Usage::UserManaged) {
        for s in scopes.iter().filter(|s| matches!(s.source, ScopeSource::Preset(_))) {
            if let Ok(z) = scope::parse_zoom_scope(&s.scope)
                && z.level != ScopeLevel::User
                && let ScopeSource::Preset(p) = &s.source
            {
                let span = raw.usage.as_ref().map_or(app_span.clone(), |u| u.span());
                cx.err(
                    span,
                    &f("usage"),
                    "scope-admin-usage",
                    format!(
                        "the preset {p:?} requests {:?}, an account-level scope, but usage = \"user-managed\"; Zoom refuses: \"{} is not a valid scope name when usage is USER_OPERATION\"",
                        s.scope, s.scope
                    ),
                    "set `usage = \"admin-managed\"`",
                );
                break;
            }
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
            "add `presets = [\"servicenow-dex-zoom\"]` or list scopes in `scopes`",
        );
    }
    (presets, scopes)
}

pub(super) fn check_one_scope(
    cx: &mut Ctx<'_>,
    field: &str,
    span: Range<usize>,
    scope: &str,
    is_zoom: bool,
    usage: Option<Usage>,
) -> bool {
    if !is_zoom {
        if !scope::is_rfc6749_scope_token(scope) {
            cx.err(
                span,
                field,
                "scope-grammar",
                format!("{scope:?} is not a valid OAuth scope token (no spaces, quotes or backslashes)"),
                "write one scope per array entry",
            );
            return false;
        }
        return true;
    }
    match scope::parse_zoom_scope(scope) {
        Err(ScopeProblem::Empty) => {
            cx.err(
                span,
                field,
                "scope-grammar",
                "the scope is empty",
                "remove the empty entry",
            );
            false
        }
        Err(ScopeProblem::UpperCase) => {
            cx.err(
                span,
                field,
                "scope-grammar",
                format!("{scope:?} has upper-case letters; Zoom scopes are lower case"),
                format!("write {:?}", scope.to_ascii_lowercase()),
            );
            false
        }
        Err(ScopeProblem::BadCharacters) => {
            let fix = if scope.contains([' ', ',']) {
                "write one scope per array entry: [\"a:read:b:admin\", \"c:read:d:admin\"]".to_string()
            } else {
                "use only lower-case letters, digits, `_` and `:`".to_string()
            };
            cx.err(
                span,
                field,
                "scope-grammar",
                format!("{scope:?} is not a Zoom scope: <product>:<action>:<resource>[:admin|:master]"),
                fix,
            );
            false
        }
        Err(ScopeProblem::Classic) => {
            cx.warn(
                span,
                field,
                "scope-classic",
                format!("{scope:?} is a classic scope; new General apps use granular scopes"),
                "use the granular equivalent (see Zoom's granular scopes table)",
            );
            true
        }
        Err(ScopeProblem::Shape(why)) => {
            let fix = match scope::suggest(scope, scope::ZOOM_KNOWN_SCOPES) {
                Some(s) => format!("did you mean {s:?}?"),
                None => {
                    "write <product>:<action>:<resource>[:admin|:master], e.g. \"user:read:user:admin\"".to_string()
                }
            };
            cx.err(
                span,
                field,
                "scope-grammar",
                format!("{scope:?} does not follow Zoom's granular scope grammar: {why}"),
                fix,
            );
            false
        }
        Ok(z) => {
            match (z.level, usage) {
                (ScopeLevel::Admin | ScopeLevel::Master, Some(Usage::UserManaged)) => {
                    let user_level = scope.rsplit_once(':').map_or(scope, |(a, _)| a);
                    cx.err(
                        span.clone(),
                        field,
                        "scope-admin-usage",
                        format!(
                            "{scope:?} is an account-level scope but the app is user-managed; Zoom refuses: \"{scope} is not a valid scope name when usage is USER_OPERATION\""
                        ),
                        format!("set `usage = \"admin-managed\"`, or request the user-level scope {user_level:?}"),
                    );
                    return false;
                }
                (ScopeLevel::User, Some(Usage::AdminManaged)) => {
                    cx.warn(
                        span.clone(),
                        field,
                        "scope-level-mix",
                        format!("{scope:?} is a user-level scope in an admin-managed app; Zoom does not let apps mix user and admin levels"),
                        format!("request {:?} instead", format!("{scope}:admin")),
                    );
                }
                (ScopeLevel::Master, _) => {
                    cx.warn(
                        span.clone(),
                        field,
                        "scope-master",
                        format!("{scope:?} is a master-account scope; only master account owners can grant it"),
                        format!(
                            "use {:?} unless this is a master account",
                            scope.replace(":master", ":admin")
                        ),
                    );
                }
                _ => {}
            }
            if !scope::ZOOM_KNOWN_SCOPES.contains(&scope) {
                let fix = match scope::suggest(scope, scope::ZOOM_KNOWN_SCOPES) {
                    Some(s) => format!("did you mean {s:?}? If not, check the name in Zoom's granular scopes table"),
                    None => "check the name in Zoom's granular scopes table".to_string(),
                };
                cx.warn(
                    span,
                    field,
                    "scope-unknown",
                    format!("{scope:?} is not a Zoom scope connapp knows"),
                    fix,
                );
            }
            true
        }
    }
}
