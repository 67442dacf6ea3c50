//! Writing a new declaration (`connapp init`). Pure: returns the text.

use crate::model::{servicenow_instance_url, servicenow_redirect};

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
    /// The ServiceNow instance name.
    pub instance: &'a str,
    /// The store kind.
    pub store_kind: &'a str,
    /// A loopback redirect for `connapp login` (added to the allow list).
    pub login_redirect: Option<&'a str>,
    /// Zoom base URL override for both OAuth and API (e.g. the sandbox).
    pub zoom_base: Option<&'a str>,
}

/// Renders a complete declaration for one app on a ServiceNow target.
pub fn render_declaration(o: &InitOptions<'_>) -> String {
    let redirect = servicenow_redirect(&servicenow_instance_url(o.instance));
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

[apps.{name}.target]
kind = "servicenow"
instance = "{instance}"
{oauth}"#,
        store = o.store_kind,
        name = o.app_name,
        display = o.display_name,
        platform = o.platform,
        preset = o.preset,
        instance = o.instance,
    )
}
