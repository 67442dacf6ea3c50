//! What connapp does, for any front end: the work behind the commands, with
//! no argument parsing, no terminal and no exit codes. A front end (the
//! `connapp` binary today) parses, calls in here and renders; errors come
//! back typed and carry what a user needs to fix them.
//!
//! Its owner makes one [`Engine`] from an [`environment::Environment`]
//! (directories, plugin search path, a prompt or none) and opens a
//! declaration's store through it. It holds the declaration check with each platform's own rules and what
//! validation needs from the plugins ([`platform`]), the token service
//! ([`tokens`]: token, renew, login, revoke, status, with an [`tokens::Observer`]
//! for events), an app's secrets by kind ([`secrets`], the only code that
//! knows store keys), verify's provider-independent checks and report rows
//! ([`verify`]), a Client Secret rotation's record, pending secret and journal
//! ([`rotation`]), change evidence as in-toto Statements in DSSE envelopes
//! ([`evidence`]), the manifests saved for rollback ([`history`]), the guide
//! renderer ([`guide`]) and webhooks ([`webhook`]: the scheme interface, the
//! decision over one request, the receiver). Nothing here names a platform:
//! their differences come from the plugins (profiles, findings) and from
//! interfaces the platform clients fill ([`verify::ApiHabits`],
//! [`webhook::WebhookScheme`], and [`manage::ProviderAdmin`] and
//! [`manage::ConsumerEnd`] for the two ends of an app managed as code).
//!
//! What it is **not**: the pure rules (those are `connapp-core`'s), the HTTP
//! policy and OAuth flows (`connapp-oauth`'s) or a platform's client (the
//! `connapp-zoom` and `connapp-servicenow` crates).

pub mod agent;
pub mod batch;
mod engine;
pub mod environment;
mod error;
pub mod evidence;
pub mod guide;
pub mod history;
pub mod listing;
pub mod manage;
pub mod memory;
pub mod platform;
pub mod rotation;
pub mod schedule;
pub mod secrets;
pub mod tokens;
pub mod verify;
pub mod watch;
pub mod webhook;

pub use engine::Engine;
pub use error::{Error, ErrorKind, Retry};

#[cfg(test)]
mod test_support;
