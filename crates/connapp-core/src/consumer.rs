//! The consumer an app's credentials go to (`[apps.NAME.target]`): today
//! one kind, a ServiceNow instance — the first job, DEX for Zoom. The records
//! it needs come from the consumer platform plugin (`Target::view` is what
//! that plugin receives); making `Target` generic over consumer plugins is
//! the next step (ARCHITECTURE.md, "Debts").

use serde::Serialize;

/// The consumer that will hold the app's credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Target {
    /// A ServiceNow instance (DEX for Zoom).
    Servicenow {
        /// The instance base URL, e.g. `https://acme.service-now.com`.
        instance_url: String,
        /// The instance name when given as one, e.g. `acme`.
        instance: Option<String>,
        /// How connapp reaches the instance and names the records.
        settings: ServicenowSettings,
    },
}

/// How connapp signs in to a ServiceNow instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceAuth {
    /// Basic authentication: `instance-user` / `instance-password` in the store.
    #[default]
    Basic,
    /// OAuth client credentials at `/oauth_token.do`: `instance-client-id` /
    /// `instance-client-secret` in the store.
    Oauth,
}

/// `[apps.NAME.target]` settings beyond the instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServicenowSettings {
    /// Basic or OAuth.
    pub auth: InstanceAuth,
    /// The ID of the connection & credential alias DEX uses (discovered when absent).
    pub alias: Option<String>,
    /// The name of the OAuth provider record (default: the display name).
    pub entity_name: Option<String>,
    /// The name of the credential and connection (default: the display name).
    pub connection_name: Option<String>,
}

impl Target {
    /// The consumer platform whose plugin describes this target's records.
    pub fn platform(&self) -> &'static str {
        match self {
            Target::Servicenow { .. } => "servicenow",
        }
    }

    /// The target as its consumer platform plugin receives it (beside the
    /// app and the provider's endpoints).
    pub fn view(&self) -> serde_json::Value {
        match self {
            Target::Servicenow {
                instance_url, settings, ..
            } => serde_json::json!({
                "instance_url": instance_url,
                "alias": settings.alias,
                "entity_name": settings.entity_name,
                "connection_name": settings.connection_name,
            }),
        }
    }

    /// The consumer's base URL (its redirect URL and allow-list entries
    /// must be on this host).
    pub fn instance_url(&self) -> &str {
        match self {
            Target::Servicenow { instance_url, .. } => instance_url,
        }
    }

    /// The redirect URL this consumer uses for OAuth callbacks.
    pub fn redirect_url(&self) -> String {
        match self {
            Target::Servicenow { instance_url, .. } => servicenow_redirect(instance_url),
        }
    }
}

/// ServiceNow's OAuth callback for an instance base URL.
pub fn servicenow_redirect(instance_url: &str) -> String {
    format!("{}/oauth_redirect.do", instance_url.trim_end_matches('/'))
}

/// ServiceNow's base URL for an instance name.
pub fn servicenow_instance_url(instance: &str) -> String {
    format!("https://{instance}.service-now.com")
}
