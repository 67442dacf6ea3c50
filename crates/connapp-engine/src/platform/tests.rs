//! The whole check — the core's rules, then each platform's findings — with
//! the built-in plugins linked in, as `connapp check` runs it.

use connapp_core::Severity;

use super::*;
// With the platforms and presets `test_support` links in, and a store
// kind: the catalog `connapp check` sees.
use connapp_store_file as _;

const DEX_DECLARATION: &str = "version = 1\n[store]\nkind = \"file\"\n\
[apps.dex-zoom]\ndisplay_name = \"DEX for Zoom\"\nplatform = \"zoom\"\nusage = \"admin-managed\"\n\
redirect_url = \"https://acme.service-now.com/oauth_redirect.do\"\n\
allow_list = [\"https://acme.service-now.com/oauth_redirect.do\"]\n\
presets = [\"servicenow-dex-zoom\"]\nscopes = []\n";

fn checked(text: &str) -> Report {
    check("t.toml", text, &Registry::builtins()).expect("the plugins answer")
}

/// The first diagnostic of `rule`; fails the test, listing them all, without one.
fn first<'r>(r: &'r Report, rule: &str) -> &'r connapp_core::Diagnostic {
    r.diagnostics
        .iter()
        .find(|d| d.rule == rule)
        .unwrap_or_else(|| panic!("no {rule}: {:#?}", r.diagnostics))
}

fn rules(r: &Report) -> Vec<&str> {
    r.diagnostics.iter().map(|d| d.rule.as_ref()).collect()
}

#[test]
fn the_dex_declaration_is_valid_with_the_plugins() {
    let r = checked(DEX_DECLARATION);
    assert!(r.diagnostics.is_empty(), "{:#?}", r.diagnostics);
    assert!(r.declaration.is_some());
}

/// Zoom refuses account-level scopes in a user-managed app: the preset's are
/// reported once, at `usage`; an explicit one at its own entry.
#[test]
fn admin_scopes_on_user_managed_apps_are_refused_at_usage_and_at_the_entry() {
    let text = DEX_DECLARATION.replace("usage = \"admin-managed\"", "usage = \"user-managed\"");
    let r = checked(&text);
    let d: Vec<_> = r.diagnostics.iter().filter(|d| d.rule == "scope-admin-usage").collect();
    assert_eq!(d.len(), 1, "{:#?}", r.diagnostics);
    assert_eq!(d[0].field, "apps.dex-zoom.usage");
    assert!(d[0].line > 1 && r.declaration.is_none());

    let text = text.replace("presets = [\"servicenow-dex-zoom\"]\n", "").replace(
        "scopes = []",
        "scopes = [\"user:read:user\", \"report:read:user:admin\"]",
    );
    let r = checked(&text);
    let d = first(&r, "scope-admin-usage");
    assert_eq!(d.field, "apps.dex-zoom.scopes[1]");
    assert!(d.fix.contains("\"report:read:user\""), "{}", d.fix);
}

#[test]
fn an_unknown_zoom_scope_is_a_warning_with_a_suggestion_and_still_valid() {
    let text = DEX_DECLARATION.replace(
        "scopes = []",
        "scopes = [\"phone:read:call_log:admin\", \"dashboard:read:list_zoomroom:admin\"]",
    );
    let r = checked(&text);
    assert_eq!(rules(&r), ["scope-unknown", "scope-unknown"], "{:#?}", r.diagnostics);
    assert!(r.diagnostics.iter().all(|d| d.severity == Severity::Warning));
    assert!(r.diagnostics[1].fix.contains("\"dashboard:read:list_zoomrooms:admin\""));
    assert!(r.declaration.is_some());
}

/// Zoom's grammar is the Zoom plugin's: a generic app may use any RFC 6749
/// scope token, which a Zoom app may not.
#[test]
fn zoom_grammar_applies_to_zoom_apps_only() {
    let zoom = DEX_DECLARATION.replace("scopes = []", "scopes = [\"User:Read\"]");
    let r = checked(&zoom);
    let d = first(&r, "scope-grammar");
    assert_eq!(d.field, "apps.dex-zoom.scopes[0]");
    assert!(d.fix.contains("\"user:read\""), "{}", d.fix);
    let generic = "version = 1\n[store]\nkind = \"file\"\n[apps.gen]\ndisplay_name = \"Generic\"\nplatform = \"generic\"\n\
        redirect_url = \"http://127.0.0.1/cb\"\nallow_list = [\"http://127.0.0.1/cb\"]\nscopes = [\"User:Read\"]\n\
        [apps.gen.oauth]\nauthorize_url = \"https://id.example/authorize\"\ntoken_url = \"https://id.example/token\"\n";
    let r = checked(generic);
    assert!(!r.has_errors(), "{:#?}", r.diagnostics);
}

/// The target's settings are its consumer platform's to judge: its plugin's
/// findings come at the setting's line, a warning leaves the declaration.
#[test]
fn the_consumer_plugin_judges_the_target() {
    let target = |t: &str| format!("{DEX_DECLARATION}[apps.dex-zoom.target]\nkind = \"servicenow\"\n{t}\n");
    let r = checked(&target("instance = \"acme\"\nalias = \"sn_zoom_spoke.Zoom\""));
    assert!(r.diagnostics.is_empty(), "{:#?}", r.diagnostics);
    let app = &r.declaration.expect("valid").apps[0];
    assert_eq!(app.target.as_ref().map(|t| t.display.as_str()), Some("ServiceNow"));

    let text = target("instance = \"acme\"\nalias = \"not an alias\"");
    let r = checked(&text);
    let d = first(&r, "target-alias");
    assert_eq!(d.field, "apps.dex-zoom.target.alias");
    assert_eq!(d.line, text.lines().count(), "{d}");
    assert!(d.fix.contains("SCOPE.NAME"), "{}", d.fix);
    assert!(r.declaration.is_none());

    let r = checked(&target("instance = \"ac-me\"").replace("acme.service-now.com", "ac-me.service-now.com"));
    assert_eq!(rules(&r), ["target-instance-hyphen"], "{:#?}", r.diagnostics);
    assert_eq!(r.diagnostics[0].severity, Severity::Warning);
    assert!(r.declaration.is_some());
}

/// The shared corpus of bad declarations, judged as `connapp check` judges
/// it: every file is refused, naming its rule, with a field and a fix.
#[test]
fn every_corpus_file_is_refused_by_the_core_or_its_platform() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/bad");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus exists") {
        let path = entry.expect("entry").path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("readable")).into_owned();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{} lacks `# expect: RULE`", path.display()));
        let r = checked(&text);
        assert!(
            r.has_errors() && r.declaration.is_none(),
            "{} was accepted",
            path.display()
        );
        assert!(
            rules(&r).contains(&expect),
            "{}: expected {expect}, got {:?}",
            path.display(),
            rules(&r)
        );
        for d in &r.diagnostics {
            assert!(!d.field.is_empty() && !d.fix.is_empty(), "{}: {d:?}", path.display());
        }
        n += 1;
    }
    assert!(n >= 40, "only {n} bad declarations");
}

/// The text a plugin's check is sent says what the app view says: every
/// field, the target and the preset's scopes with their reasons included.
#[test]
fn the_view_text_a_plugin_checks_is_the_app_view() {
    let text = format!(
        "{DEX_DECLARATION}[apps.dex-zoom.target]\nkind = \"servicenow\"\ninstance = \"acme\"\nalias = \"sn_zoom_spoke.Zoom\"\n"
    );
    let r = checked(&text);
    let decl = r.declaration.as_ref().expect("valid");
    let reg = Registry::builtins();
    let presets = reg.presets().0;
    for app in &decl.apps {
        let sent: Value = serde_json::from_str(&view_text(&presets, app)).expect("JSON");
        let view = view_with(&presets, app);
        assert_eq!(sent, view);
        assert!(
            view["scope_reasons"].as_object().is_some_and(|r| !r.is_empty()),
            "{view}"
        );
        assert!(view["target"].is_object(), "{view}");
    }
}
