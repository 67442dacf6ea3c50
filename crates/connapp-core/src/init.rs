//! Writing a new declaration (`connapp init`). Pure: returns the text.

/// ServiceNow's OAuth callback for an instance base URL.
fn servicenow_redirect(instance_url: &str) -> String {
    format!("{}/oauth_redirect.do", instance_url.trim_end_matches('/'))
}

/// ServiceNow's base URL for an instance name.
fn servicenow_instance_url(instance: &str) -> String {
    format!("https://{instance}.service-now.com")
}

/// The redirect URL of the DEX template's target: `instance` is a ServiceNow
/// instance name (`acme`) or its base URL.
pub fn dex_redirect(instance: &str) -> String {
    if instance.contains("://") {
        servicenow_redirect(instance)
    } else {
        servicenow_redirect(&servicenow_instance_url(instance))
    }
}

/// What `connapp init` needs to write a declaration.
#[derive(Clone, Debug)]
pub struct InitOptions<'a> {
    /// The app's key under `[apps]`.
    pub app_name: &'a str,
    /// The name on the consent page.
    pub display_name: &'a str,
    /// The preset name.
    pub preset: &'a str,
    /// The preset's platform.
    pub platform: &'a str,
    /// The preset's scopes with their one-line reasons (written as comments).
    pub scopes: &'a [(String, String)],
    /// The ServiceNow instance name, or its base URL.
    pub instance: &'a str,
    /// The store kind.
    pub store_kind: &'a str,
    /// Its settings, as its plugin describes them (written as comments).
    pub store_settings: &'a [crate::SettingRule],
    /// A loopback redirect for `connapp login` (added to the allow list).
    pub login_redirect: Option<&'a str>,
    /// Zoom base URL override for both OAuth and API (e.g. the sandbox).
    pub zoom_base: Option<&'a str>,
    /// The Zoom account id of a Server-to-Server management app: when given,
    /// the declaration gets that app (`zoom-marketplace`) and `managed_by`, so
    /// `connapp plan`/`apply` can reach the Marketplace API.
    pub management_account: Option<&'a str>,
}

/// The name `connapp init` gives the management app.
pub const MANAGEMENT_APP: &str = "zoom-marketplace";

/// A store's settings as comments to uncomment: each with its type, whether
/// it is needed, its environment fallbacks and default.
fn settings_comment(settings: &[crate::SettingRule]) -> String {
    if settings.is_empty() {
        return String::new();
    }
    let mut out = String::from("# Its settings (uncomment the table and what you set):\n# [store.settings]\n");
    for s in settings {
        let example = match (&s.default, s.kind) {
            (Some(d), crate::SettingKind::Integer | crate::SettingKind::Boolean) => d.clone(),
            (Some(d), _) if !d.starts_with('<') => format!("{d:?}"),
            (_, crate::SettingKind::Integer) => "0".into(),
            (_, crate::SettingKind::Boolean) => "false".into(),
            _ => "\"\"".into(),
        };
        out.push_str(&format!("# {} = {example}\n", s.name));
        out.push_str(&format!("#     {}\n", s.describe()));
    }
    out
}

/// Renders a complete declaration for one app on a ServiceNow target.
pub fn render_declaration(o: &InitOptions<'_>) -> String {
    // `instance` is a name (acme) or a whole base URL (custom domains, sandboxes).
    let redirect = dex_redirect(o.instance);
    let instance_line = if o.instance.contains("://") {
        format!("instance_url = \"{}\"", o.instance.trim_end_matches('/'))
    } else {
        format!("instance = \"{}\"", o.instance)
    };
    let allow = match o.login_redirect {
        Some(l) => format!("[\"{redirect}\", \"{l}\"]"),
        None => format!("[\"{redirect}\"]"),
    };
    let mut oauth = String::new();
    if o.login_redirect.is_some() || o.zoom_base.is_some() {
        oauth.push_str(&format!(
            "\n# How connapp itself gets tokens (connapp login / token).\n[apps.{}.oauth]\n",
            o.app_name
        ));
        if let Some(l) = o.login_redirect {
            oauth.push_str(&format!("login_redirect = \"{l}\"\n"));
        }
        if let Some(b) = o.zoom_base {
            oauth.push_str(&format!("oauth_base = \"{b}\"\napi_base = \"{b}\"\n"));
        }
    }
    let base_lines = o
        .zoom_base
        .map(|b| format!("oauth_base = \"{b}\"\napi_base = \"{b}\"\n"))
        .unwrap_or_default();
    let (managed_by, management) = match o.management_account {
        Some(account) => (
            format!("# The app below holds the Marketplace scopes `connapp plan` / `apply` use.\nmanaged_by = \"{MANAGEMENT_APP}\"\n"),
            format!(
                r#"
# A Server-to-Server OAuth app of the same account whose token may read and
# write Marketplace apps. Store its Client ID and Client Secret with
# `connapp secrets set client-id --app {MANAGEMENT_APP}` (and client-secret).
[apps.{MANAGEMENT_APP}]
display_name = "connapp marketplace management"
platform = "{platform}"
usage = "admin-managed"
scopes = ["marketplace:read:app:admin", "marketplace:write:app:admin", "marketplace:update:client_secret:admin", "marketplace:delete:app:admin"]

[apps.{MANAGEMENT_APP}.oauth]
grant = "account_credentials"
account_id = "{account}"
{base_lines}"#,
                platform = o.platform,
            ),
        ),
        None => (
            "# To let `connapp plan` / `apply` manage this app through the Marketplace API,\n# add a Server-to-Server management app (see `connapp init --management-account`)\n# and name it here: managed_by = \"zoom-marketplace\"\n".to_string(),
            String::new(),
        ),
    };
    let mut scope_lines = String::new();
    for (scope, reason) in o.scopes {
        scope_lines.push_str(&format!("#   {scope:<52} {reason}\n"));
    }
    format!(
        r#"# connapp declaration. Check it with `connapp check`.
version = 1

# Where connapp keeps the Client ID, Client Secret and Secret Token.
# "file" is an encrypted file under connapp's data directory; the passphrase
# comes from CONNAPP_FILE_PASSPHRASE or a prompt.
[store]
kind = "{store}"
{store_settings}
[apps.{name}]
display_name = "{display}"
platform = "{platform}"
# DEX reads account-wide data, so the app must be admin-managed.
usage = "admin-managed"
# Zoom compares these byte for byte: no trailing slash, lower case.
redirect_url = "{redirect}"
allow_list = {allow}
strict_mode = false
subdomain_check = false
# The preset "{preset}" requests:
{scope_lines}presets = ["{preset}"]
# Extra scopes beyond the preset, if any.
scopes = []
{managed_by}
[apps.{name}.target]
kind = "servicenow"
{instance_line}
{oauth}{management}"#,
        store = o.store_kind,
        store_settings = settings_comment(o.store_settings),
        name = o.app_name,
        display = o.display_name,
        platform = o.platform,
        preset = o.preset,
    )
}
