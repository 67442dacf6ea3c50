//! The consumer an app's credentials go to (`[apps.NAME.target]`): a target
//! of some kind (a consumer platform, e.g. a ServiceNow instance for DEX for
//! Zoom), its base URL, how connapp signs in to it, and the settings its
//! platform takes. What a kind's callback path, instance URL and settings
//! are comes from its plugin's profile ([`ConsumerRules`]); the records it
//! needs come from the same plugin (`Target`'s JSON is what it receives).

use std::collections::BTreeMap;

use serde::Serialize;

/// The consumer that will hold the app's credentials. Its JSON (`connapp
/// check --json`, and the target view a consumer plugin receives) is flat:
/// `kind`, `instance_url`, `instance` (when named), `auth`, `redirect_url`
/// (when the consumer has a callback) and each setting that is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The consumer platform whose plugin describes this target's records.
    pub kind: String,
    /// The consumer's name in messages (its platform's display name).
    #[serde(skip)]
    pub display: String,
    /// The base URL, e.g. `https://acme.service-now.com`.
    pub instance_url: String,
    /// The instance name when given as one, e.g. `acme`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// How connapp signs in to the consumer.
    pub auth: InstanceAuth,
    /// Where the consumer takes OAuth callbacks (its base URL and its
    /// platform's callback path); `None`: it has no fixed callback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    /// The platform's own settings that are set (its profile names them).
    #[serde(flatten)]
    pub settings: BTreeMap<String, String>,
}

/// How connapp signs in to a consumer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceAuth {
    /// Basic authentication: `instance-user` / `instance-password` in the store.
    #[default]
    Basic,
    /// OAuth client credentials: `instance-client-id` /
    /// `instance-client-secret` in the store.
    Oauth,
}

impl Target {
    /// The setting `name`, if set.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }

    /// The target as its consumer platform plugin receives it (beside the
    /// app and the provider's endpoints).
    pub fn view(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// What the core's target rules need to know of a consumer platform (from
/// its plugin's profile).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerRules {
    /// The platform's name (`kind = "..."`).
    pub name: String,
    /// Its name in messages; empty: [`ConsumerRules::name`].
    pub display: String,
    /// Its OAuth callback below a target's base URL; empty: none.
    pub redirect_path: String,
    /// The base URL of `instance = NAME`, with `{instance}` for the name;
    /// empty: targets give `instance_url`.
    pub instance_url_template: String,
    /// The settings a target takes beyond the core's fields.
    pub settings: Vec<String>,
}

impl ConsumerRules {
    /// A consumer with no callback, no instance names and no settings.
    pub fn named(name: &str) -> Self {
        ConsumerRules {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// The consumer's name in messages.
    pub fn display(&self) -> &str {
        shown(&self.display, &self.name)
    }

    /// The base URL of the instance `name`, if this consumer names instances.
    pub fn instance_url(&self, name: &str) -> Option<String> {
        (!self.instance_url_template.is_empty()).then(|| self.instance_url_template.replace("{instance}", name))
    }

    /// The callback of a target at `base`, if this consumer has one.
    pub fn redirect_url(&self, base: &str) -> Option<String> {
        (!self.redirect_path.is_empty()).then(|| {
            format!(
                "{}/{}",
                base.trim_end_matches('/'),
                self.redirect_path.trim_start_matches('/')
            )
        })
    }
}

/// A platform's name in messages: its display name, else its name.
pub(crate) fn shown<'a>(display: &'a str, name: &'a str) -> &'a str {
    if display.is_empty() { name } else { display }
}
