//! The connected-app model of connapp and its declaration file, `connapp.toml`.
//!
//! This crate parses a declaration, checks it thoroughly and turns it into a
//! [`Declaration`] of [`App`]s. Every problem is a [`Diagnostic`] that names the
//! file, line and column, the field, the rule and the fix. It also holds the
//! pure logic around a declaration: merging a provider manifest and describing
//! the difference ([`manifest`]).
//!
//! What it is **not**: it does no IO (no files, no network, no clock, no
//! environment), has no async runtime and knows nothing of the plugin ABI.
//! Callers read files and hand over text; what only plugins know (installed
//! presets, store kinds, the rules of provider and consumer platforms) comes
//! in through a [`Catalog`].

pub mod consumer;
mod decl;
mod diag;
mod init;
pub mod manifest;
mod model;
pub mod scope;
pub mod urls;

pub use consumer::{ConsumerRules, InstanceAuth, Target};
pub use decl::{
    Catalog, DECLARATION_VERSION, DEFAULT_CREDENTIALS_SOURCE, Inventory, MAX_DECLARATION_BYTES, MAX_INVENTORY_BYTES,
    PlatformRules, PresetInfo, ROW_REPORTS, Report, SettingKind, SettingRule, StoreRules, check, check_with,
    inventory_path, nearest, too_large, valid_instance_name,
};
pub use diag::{Diagnostic, Severity, SourceMap};
pub use init::{InitOptions, MANAGEMENT_APP, dex_redirect, render_declaration};
pub use model::{
    App, AppLookupError, ClientAuthStyle, Declaration, Fleet, FleetRow, GrantKind, OAuth, Scope, ScopeSource,
    SecretKind, SelectError, StoreDecl, Usage, Webhook, app_prefix, secret_key,
};

#[cfg(test)]
mod tests;
