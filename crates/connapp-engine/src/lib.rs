//! What connapp does, for any front end: the work behind the commands, with
//! no argument parsing, no terminal and no exit codes. A front end (the
//! `connapp` binary today) parses, calls in here and renders; errors come
//! back typed and carry what a user needs to fix them.
//!
//! Today it holds an app's secrets by kind and its token record
//! ([`secrets`], the only code that knows store keys), verify's report rows
//! ([`verify`]), the guide renderer ([`guide`]) and the webhook receiver
//! ([`webhook`]); the token service, plan/apply and verify's checks move here
//! from the CLI next (issue 12).
//!
//! What it is **not**: the pure rules (those are `connapp-core`'s), the HTTP
//! policy and OAuth flows (`connapp-oauth`'s) or a platform's client (the
//! `connapp-zoom` and `connapp-servicenow` crates).

mod error;
pub mod guide;
pub mod history;
pub mod platform;
pub mod secrets;
pub mod tokens;
pub mod verify;
pub mod webhook;

pub use error::{Error, ErrorKind};

#[cfg(test)]
mod test_support;
