//! Assembles connapp's platform clients for a front end: which client serves
//! which platform, and the work that spans a provider and a consumer:
//! plan/apply/rollback ([`apply`]), the Client Secret rotation across both ends
//! ([`rotate`]), the change evidence of both ([`evidence`]), `verify` ([`verify`]), the setup guide
//! ([`guide`]) and the webhook schemes ([`webhook_scheme`]), so that a front
//! end names no platform client.
//!
//! What it is **not**: a client (Zoom's and ServiceNow's knowledge stays in
//! `connapp-zoom` and `connapp-servicenow`), the generic work (that is
//! `connapp-engine`'s) or a front end (no terminal, no exit codes).

pub mod apply;
pub mod evidence;
pub mod rotate;
pub mod verify;
pub mod watch;

use connapp_core::App;
use connapp_engine::guide::Guide;
use connapp_engine::webhook::WebhookScheme;
use connapp_host::Registry;

/// The provider's setup procedure for `app`, each scope with its reason.
pub fn guide(reg: &Registry, app: &App) -> Guide {
    let reasons = connapp_engine::platform::preset_scopes(reg, app);
    connapp_zoom::guide::guide(app, &reasons)
}

/// Every webhook scheme a client provides.
const WEBHOOK_SCHEMES: &[&'static dyn WebhookScheme] = &[&connapp_zoom::webhook::SCHEME];

/// How apps of `platform` sign their webhook events, if connapp knows.
pub fn webhook_scheme(platform: &str) -> Option<&'static dyn WebhookScheme> {
    WEBHOOK_SCHEMES.iter().copied().find(|s| s.platform() == platform)
}

/// The platforms whose webhook schemes connapp knows.
pub fn webhook_platforms() -> Vec<&'static str> {
    WEBHOOK_SCHEMES.iter().map(|s| s.platform()).collect()
}

#[cfg(test)]
mod tests;
