//! # connapp plugin API — a plugin author's guide
//!
//! This crate is the whole contract between `connapp` and its plugins. A plugin
//! depends on this crate alone. The same plugin crate can be linked into the
//! `connapp` binary (a *built-in*, registered with [`inventory`]) or built as a
//! dynamic library that `connapp` loads at run time with [`abi_stable`].
//!
//! What this crate is **not**: it knows nothing of declarations, OAuth, Zoom or
//! the command line. It only moves bytes, strings and small records across an
//! ABI-stable boundary.
//!
//! ## Writing a store plugin
//!
//! 1. Implement [`Store`] for your type (synchronous; use your own blocking IO or
//!    your own runtime — never the host's, see "Rules" below).
//! 2. Implement [`Plugin`] for a marker type: [`Plugin::info`] names the plugin
//!    and what it provides, [`Plugin::open_store`] builds your store from the
//!    settings in the user's declaration, and [`Plugin::store_settings`]
//!    (API 1.6) describes those settings ([`StoreSetting`]: name, type,
//!    required, secret, environment fallbacks), so `connapp check` judges
//!    them offline, `connapp init` writes them and `connapp plugins info`
//!    lists them. A store several hosts share (`shared_across_hosts`) whose
//!    server can time a lock implements [`Lease`] and returns it from
//!    [`Plugin::open_lease`] (API 1.7): hosts then take turns before
//!    spending a rotating refresh token. Expiry must be the server's clock,
//!    never a host's; giving back must never free a successor's lease.
//! 3. Call [`export_plugin!`] once at the crate root, and add to `Cargo.toml`:
//!
//! ```toml
//! [lib]
//! crate-type = ["rlib", "cdylib"]   # or build the cdylib with `cargo rustc --crate-type cdylib`
//! [features]
//! cdylib = []                        # switches the exported root module on
//! ```
//!
//! Build the dynamic library with `cargo build --release --features cdylib` and
//! copy it into a plugin directory `connapp` trusts (`<prefix>/lib/connapp/plugins/`,
//! `$CONNAPP_DATA_DIR/plugins/` or a directory in `CONNAPP_PLUGIN_PATH`; none of
//! them may be group- or world-writable).
//!
//! 4. Prove it: the `connapp-store-conformance` crate runs the same suite that
//!    every built-in store passes. Wrap your store with [`StoreHandle::from_store`]
//!    and hand it to the suite.
//!
//! ## Writing a platform plugin
//!
//! A platform describes a provider (or a consumer); the host does the HTTP.
//! Implement [`Plugin::platforms`] (endpoints, client authentication, PKCE,
//! whether `scope` is sent at authorize) and, with this crate's `contract`
//! feature, any of: [`Plugin::platform_profile`] (`contract::PlatformProfile`:
//! the API path, the provider's name in messages, where credentials come from,
//! a note before a login, why it refuses a refresh token, what a redirect
//! mismatch or refusal looks like), [`Plugin::check_app`] (`contract::Finding`s:
//! the platform's own rules for an app, reported by `connapp check` at the field
//! they name), [`Plugin::provider_manifest`] and [`Plugin::consumer_records`].
//! Build answers with the types and `contract::answer` (or `contract::answer_for`,
//! which answers only for your own platform); read the host's input
//! with `contract::parse_input`. The host parses every answer strictly: an
//! unknown or mistyped field is an error naming your plugin and the field.
//! Later API versions append fields to `PlatformProfile` (1.4: which of
//! connapp's declaration rules apply to your apps; 1.5: a consumer's
//! callback path, instance URL and target settings; describe a consumer with
//! [`Platform::consumer`]), so build it with
//! `..Default::default()`. [`plugin_info!`] fills in your [`PluginInfo`] from
//! your package (name without `connapp-`, version, `description`).
//! `examples/third-party-platform` in connapp's repository is a complete one.
//!
//! ## Rules
//!
//! - **Never unwind across the boundary.** Every call made through the ABI runs
//!   under `catch_unwind` in the code that [`export_plugin!`] and
//!   [`StoreHandle::from_store`] generate: a panic becomes an error with code
//!   [`ErrorCode::PANIC`], the host lives on. Don't build with `panic = "abort"`.
//! - **The glue checks first.** Before your store sees a call, keys out of
//!   shape are refused, `open_store` of a kind your info does not list is
//!   `UNSUPPORTED`, and a `put` over your declared `max_value_size` is
//!   `TOO_LARGE`; you need not check those again.
//! - **No shared async runtime.** Calls are synchronous; the host calls them from
//!   a blocking context. A plugin that needs async IO owns its runtime.
//! - **Globals don't cross.** Your `static`s, your `inventory`, your logger and
//!   your TLS provider are your own copies. Everything you need comes in through
//!   [`StoreContext`].
//! - **Secrets.** Values are opaque bytes and often secrets: never put them in
//!   an error message, a log line or a `Debug` output. [`Record`] zeroizes its
//!   value on drop; zeroize your own copies too.
//! - **Compare-and-swap.** [`Store::put`] and [`Store::delete`] take an
//!   [`Expected`] version. A store must make "check version, then write" atomic
//!   against other processes (and, if it says `shared_across_hosts`, other hosts);
//!   a mismatch is [`ErrorCode::CONFLICT`]. Versions start at 1 and grow by one
//!   per successful write of a key; deleting a key and writing it again continues
//!   the count, so an old version can never match again.
//!
//! ## Versioning
//!
//! This crate follows semver and is append-only within a major version: fields
//! are only added to [`PluginModule`] after the last prefix field, methods only at
//! the end of [`FfiStore`]. `abi_stable` checks at load time that a plugin was
//! built against a compatible version of this crate ([`PLUGIN_API_VERSION`]) and
//! that every type crossing the boundary has the layout the host expects. A
//! plugin built against an older 1.x minor (1.3 or later) loads into a newer
//! host; what it predates is absent (e.g. a 1.5 store's settings are not
//! described). A plugin built against a newer minor than the host's loads,
//! but the host parses answers strictly: a profile field it does not know is
//! an error naming the plugin, so build against the oldest minor you support.
#![allow(non_local_definitions, non_camel_case_types)]

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

pub use abi_stable;
use abi_stable::{
    StableAbi,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2},
};
pub use inventory;
pub use zeroize;

pub mod atomic;
pub mod bounded;
#[cfg(feature = "contract")]
pub mod contract;
#[cfg(feature = "tls")]
pub mod tls;
use zeroize::{Zeroize, Zeroizing};

/// The version of this crate, which is the version of the plugin ABI.
pub const PLUGIN_API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Largest key a store must accept, in bytes.
pub const MAX_KEY_LEN: usize = 512;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A numeric error class that can grow without breaking the ABI.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// Anything not covered below.
    pub const OTHER: Self = Self(0);
    /// The compare-and-swap precondition did not hold.
    pub const CONFLICT: Self = Self(1);
    /// The caller passed something the store cannot take (bad key, bad settings).
    pub const INVALID_INPUT: Self = Self(2);
    /// The backend refused access (file permissions, policy, locked keyring).
    pub const PERMISSION_DENIED: Self = Self(3);
    /// The backend cannot be reached right now.
    pub const UNAVAILABLE: Self = Self(4);
    /// A passphrase, token or key was wrong.
    pub const AUTH_FAILED: Self = Self(5);
    /// The value is larger than the store accepts.
    pub const TOO_LARGE: Self = Self(6);
    /// Stored data could not be read back (corrupt or from a newer format).
    pub const CORRUPT: Self = Self(7);
    /// The plugin does not provide what was asked for.
    pub const UNSUPPORTED: Self = Self(8);
    /// The plugin panicked; the panic was caught at the boundary.
    pub const PANIC: Self = Self(9);

    /// A short lower-case name for the code.
    pub fn name(self) -> &'static str {
        match self {
            Self::CONFLICT => "conflict",
            Self::INVALID_INPUT => "invalid input",
            Self::PERMISSION_DENIED => "permission denied",
            Self::UNAVAILABLE => "unavailable",
            Self::AUTH_FAILED => "authentication failed",
            Self::TOO_LARGE => "too large",
            Self::CORRUPT => "corrupt data",
            Self::UNSUPPORTED => "unsupported",
            Self::PANIC => "plugin panicked",
            _ => "error",
        }
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode({}: {})", self.0, self.name())
    }
}

/// An error as it crosses the ABI. The message must never contain a secret.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// A human-readable message: what failed, why, and how to fix it.
    pub message: RString,
    /// Whether trying again later may succeed.
    pub retryable: bool,
}

/// The native error type plugin code returns; converted to [`FfiError`] at the boundary.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What failed, why, and how to fix it. Never a secret.
    pub message: String,
    /// Whether trying again later may succeed.
    pub retryable: bool,
}

impl StoreError {
    /// An error with the given code and message, not retryable.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retryable: false,
        }
    }
    /// A compare-and-swap conflict.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::CONFLICT, message)
    }
    /// Mark the error as retryable.
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }
    /// Whether this is a compare-and-swap conflict.
    pub fn is_conflict(&self) -> bool {
        self.code == ErrorCode::CONFLICT
    }
    /// The answer of `open_store` when asked for a kind the plugin does not
    /// provide: "store-file provides `file`, not \"vault\"".
    pub fn unsupported_store(plugin: &str, provides: &str, asked: &str) -> Self {
        Self::new(
            ErrorCode::UNSUPPORTED,
            format!("{plugin} provides `{provides}`, not {asked:?}"),
        )
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreError({}: {})", self.code.name(), self.message)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

impl From<StoreError> for FfiError {
    fn from(e: StoreError) -> Self {
        FfiError {
            code: e.code,
            message: e.message.into(),
            retryable: e.retryable,
        }
    }
}

impl From<FfiError> for StoreError {
    fn from(e: FfiError) -> Self {
        StoreError {
            code: e.code,
            message: e.message.into_string(),
            retryable: e.retryable,
        }
    }
}

// ---------------------------------------------------------------------------
// Store: FFI types
// ---------------------------------------------------------------------------

/// A stored value and its version, as it crosses the ABI.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiRecord {
    /// The opaque value. The receiver zeroizes it after copying.
    pub value: RVec<u8>,
    /// The record's version, starting at 1.
    pub version: u64,
}

/// What a kind of store can do, reported honestly so users can choose.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Survives a reboot.
    pub persistent: bool,
    /// Several hosts can use the same store at once, safely.
    pub shared_across_hosts: bool,
    /// Compare-and-swap is done by the backend itself (not emulated with a local lock).
    pub native_cas: bool,
    /// Largest value in bytes; 0 means no limit of the store's own.
    pub max_value_size: u64,
}

impl Capabilities {
    /// The value size limit, if any.
    pub fn max_value_size(&self) -> Option<u64> {
        (self.max_value_size != 0).then_some(self.max_value_size)
    }
}

/// An open store's capabilities and location, as it crosses the ABI.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiStoreDescription {
    /// What it can do.
    pub capabilities: Capabilities,
    /// Where the data lives, for humans (a path, a URL). Never a secret.
    pub location: RString,
}

/// The store interface as it crosses the ABI. Plugin authors implement
/// [`Store`] instead; [`export_plugin!`] adapts it.
///
/// Expected versions are `ROption<u64>`: `RNone` = write unconditionally,
/// `RSome(0)` = the key must not exist, `RSome(n)` = the current version must be `n`.
#[sabi_trait]
pub trait FfiStore: Send + Sync {
    /// Capabilities and location.
    fn describe(&self) -> RResult<FfiStoreDescription, FfiError>;
    /// The value and version of `key`, if present.
    fn get(&self, key: RStr<'_>) -> RResult<ROption<FfiRecord>, FfiError>;
    /// Writes `value` under `key` if `expected` holds; returns the new version.
    fn put(&self, key: RStr<'_>, value: RSlice<'_, u8>, expected: ROption<u64>) -> RResult<u64, FfiError>;
    /// Deletes `key` if `expected` holds; returns whether something was deleted.
    fn delete(&self, key: RStr<'_>, expected: ROption<u64>) -> RResult<bool, FfiError>;
    /// Keys starting with `prefix`, sorted.
    #[sabi(last_prefix_field)]
    fn list(&self, prefix: RStr<'_>) -> RResult<RVec<RString>, FfiError>;
}

/// An owned store trait object.
pub type FfiStoreBox = FfiStore_TO<'static, RBox<()>>;

/// What the host hands a store plugin when it opens a store.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiStoreContext {
    /// The store's settings from the declaration, as `key = value` strings.
    pub settings: RVec<Tuple2<RString, RString>>,
    /// connapp's data directory (for stores that keep files).
    pub data_dir: RString,
    /// Whether a human is at a terminal and may be asked for input.
    pub interactive: bool,
    /// Asks the human for a secret with no echo. Fails when not interactive.
    pub prompt_secret: extern "C" fn(RStr<'_>) -> RResult<RVec<u8>, FfiError>,
}

// ---------------------------------------------------------------------------
// Store: native types (what plugin authors and the host use)
// ---------------------------------------------------------------------------

/// The compare-and-swap precondition of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Write whatever the current version is.
    Any,
    /// The key must not exist (or must have been deleted).
    Absent,
    /// The current version must be exactly this.
    Version(u64),
}

impl Expected {
    fn to_ffi(self) -> ROption<u64> {
        match self {
            Expected::Any => ROption::RNone,
            Expected::Absent => ROption::RSome(0),
            Expected::Version(v) => ROption::RSome(v),
        }
    }
    fn from_ffi(o: ROption<u64>) -> Self {
        match o {
            ROption::RNone => Expected::Any,
            ROption::RSome(0) => Expected::Absent,
            ROption::RSome(v) => Expected::Version(v),
        }
    }
    /// Whether a key whose current version is `current` (`None` = absent) satisfies this.
    pub fn matches(self, current: Option<u64>) -> bool {
        match self {
            Expected::Any => true,
            Expected::Absent => current.is_none(),
            Expected::Version(v) => current == Some(v),
        }
    }
}

/// A stored value and its version. The value is zeroized on drop and never printed.
pub struct Record {
    /// The value bytes.
    pub value: Zeroizing<Vec<u8>>,
    /// The version, starting at 1.
    pub version: u64,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("value", &format_args!("<{} bytes redacted>", self.value.len()))
            .field("version", &self.version)
            .finish()
    }
}

/// An open store's capabilities and location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreDescription {
    /// What it can do.
    pub capabilities: Capabilities,
    /// Where the data lives, for humans. Never a secret.
    pub location: String,
}

/// The store interface a plugin implements. Synchronous; must be safe to call
/// from several threads at once.
pub trait Store: Send + Sync + 'static {
    /// Capabilities and location.
    fn describe(&self) -> Result<StoreDescription, StoreError>;
    /// The value and version of `key`, if present.
    fn get(&self, key: &str) -> Result<Option<Record>, StoreError>;
    /// Writes `value` if `expected` holds; returns the new version. Through
    /// the glue, `value` is never larger than the capabilities'
    /// `max_value_size` (a larger one is refused with `TOO_LARGE` first).
    fn put(&self, key: &str, value: &[u8], expected: Expected) -> Result<u64, StoreError>;
    /// Deletes `key` if `expected` holds; returns whether something was deleted.
    fn delete(&self, key: &str, expected: Expected) -> Result<bool, StoreError>;
    /// Keys starting with `prefix`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
}

/// The host's side of opening a store, as a plugin sees it.
pub struct StoreContext<'a> {
    ffi: &'a FfiStoreContext,
}

impl<'a> StoreContext<'a> {
    /// Wraps the FFI context (host side builds it, plugin side reads it).
    pub fn new(ffi: &'a FfiStoreContext) -> Self {
        Self { ffi }
    }
    /// The value of a setting from the declaration.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.ffi
            .settings
            .iter()
            .find(|t| t.0.as_str() == key)
            .map(|t| t.1.as_str())
    }
    /// All settings.
    pub fn settings(&self) -> impl Iterator<Item = (&str, &str)> {
        self.ffi.settings.iter().map(|t| (t.0.as_str(), t.1.as_str()))
    }
    /// connapp's data directory.
    pub fn data_dir(&self) -> &str {
        self.ffi.data_dir.as_str()
    }
    /// Whether a human may be asked for input.
    pub fn interactive(&self) -> bool {
        self.ffi.interactive
    }
    /// Asks the human for a secret (no echo). The result is zeroized on drop.
    pub fn prompt_secret(&self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        match (self.ffi.prompt_secret)(prompt.into()) {
            RResult::ROk(mut v) => {
                let out = Zeroizing::new(v.as_slice().to_vec());
                v.as_mut_slice().zeroize();
                Ok(out)
            }
            RResult::RErr(e) => Err(e.into()),
        }
    }
}

// ---------------------------------------------------------------------------
// Presets: plain data
// ---------------------------------------------------------------------------

/// The API call that proves a scope works, as it crosses the ABI.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiProbe {
    /// HTTP method.
    pub method: RString,
    /// Path below the platform's API base, may contain `{placeholders}`.
    pub path: RString,
    /// Query parameters.
    pub query: RVec<Tuple2<RString, RString>>,
}

/// One scope of a preset, as it crosses the ABI.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiPresetScope {
    /// The scope string.
    pub scope: RString,
    /// One line: what the consumer uses it for.
    pub reason: RString,
    /// The call that proves it.
    pub probe: FfiProbe,
}

/// A preset, as it crosses the ABI.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiPreset {
    /// The name users type (`servicenow-dex-zoom`).
    pub name: RString,
    /// The provider platform the scopes belong to (`zoom`).
    pub platform: RString,
    /// One line for humans.
    pub description: RString,
    /// The scopes.
    pub scopes: RVec<FfiPresetScope>,
}

/// The API call that proves a scope works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// HTTP method.
    pub method: String,
    /// Path below the platform's API base, may contain `{placeholders}`.
    pub path: String,
    /// Query parameters.
    pub query: Vec<(String, String)>,
}

/// One scope of a preset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresetScope {
    /// The scope string.
    pub scope: String,
    /// One line: what the consumer uses it for.
    pub reason: String,
    /// The call that proves it.
    pub probe: Probe,
}

/// A named set of scopes for a platform, each with its reason and probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preset {
    /// The name users type.
    pub name: String,
    /// The provider platform.
    pub platform: String,
    /// One line for humans.
    pub description: String,
    /// The scopes.
    pub scopes: Vec<PresetScope>,
}

fn pairs_to_ffi(v: &[(String, String)]) -> RVec<Tuple2<RString, RString>> {
    v.iter()
        .map(|(k, v)| Tuple2(RString::from(k.as_str()), RString::from(v.as_str())))
        .collect()
}

fn pairs_from_ffi(v: &RVec<Tuple2<RString, RString>>) -> Vec<(String, String)> {
    v.iter().map(|t| (t.0.to_string(), t.1.to_string())).collect()
}

impl From<&Preset> for FfiPreset {
    fn from(p: &Preset) -> Self {
        FfiPreset {
            name: p.name.as_str().into(),
            platform: p.platform.as_str().into(),
            description: p.description.as_str().into(),
            scopes: p
                .scopes
                .iter()
                .map(|s| FfiPresetScope {
                    scope: s.scope.as_str().into(),
                    reason: s.reason.as_str().into(),
                    probe: FfiProbe {
                        method: s.probe.method.as_str().into(),
                        path: s.probe.path.as_str().into(),
                        query: pairs_to_ffi(&s.probe.query),
                    },
                })
                .collect(),
        }
    }
}

impl From<&FfiPreset> for Preset {
    fn from(p: &FfiPreset) -> Self {
        Preset {
            name: p.name.to_string(),
            platform: p.platform.to_string(),
            description: p.description.to_string(),
            scopes: p
                .scopes
                .iter()
                .map(|s| PresetScope {
                    scope: s.scope.to_string(),
                    reason: s.reason.to_string(),
                    probe: Probe {
                        method: s.probe.method.to_string(),
                        path: s.probe.path.to_string(),
                        query: pairs_from_ffi(&s.probe.query),
                    },
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------
// Platforms: plain data (the host does the HTTP)
// ---------------------------------------------------------------------------

/// An OAuth provider platform, as it crosses the ABI. Empty strings mean "none".
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiPlatform {
    /// The name declarations use (`zoom`, `generic`).
    pub name: RString,
    /// One line for humans.
    pub description: RString,
    /// Authorization endpoint.
    pub authorize_url: RString,
    /// Token endpoint.
    pub token_url: RString,
    /// Revocation endpoint.
    pub revoke_url: RString,
    /// API base URL.
    pub api_base: RString,
    /// `basic` or `body`.
    pub client_auth: RString,
    /// Whether logins use PKCE (S256).
    pub pkce: bool,
    /// Whether to send `scope` at authorize (Zoom: no, the app's scopes are granted).
    pub send_scopes: bool,
    /// The token-response field that carries the account's API base (Zoom: `api_url`).
    pub api_base_field: RString,
    /// Whether endpoints must come from the declaration (generic OAuth 2.0).
    pub endpoints_from_declaration: bool,
}

/// An OAuth provider platform: endpoints and habits, described, not executed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Platform {
    /// The name declarations use.
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// Authorization endpoint.
    pub authorize_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Revocation endpoint.
    pub revoke_url: String,
    /// API base URL.
    pub api_base: String,
    /// `basic` or `body`.
    pub client_auth: String,
    /// Logins use PKCE (S256).
    pub pkce: bool,
    /// Send `scope` at authorize.
    pub send_scopes: bool,
    /// Token-response field with the account's API base.
    pub api_base_field: String,
    /// Endpoints must come from the declaration.
    pub endpoints_from_declaration: bool,
}

impl Platform {
    /// A consumer platform (a target kind, API 1.5): it takes tokens rather
    /// than issuing them, so it has no endpoints; its profile says what its
    /// targets are.
    pub fn consumer(name: &str, description: &str) -> Self {
        Platform {
            name: name.into(),
            description: description.into(),
            ..Default::default()
        }
    }
}

impl From<&Platform> for FfiPlatform {
    fn from(p: &Platform) -> Self {
        FfiPlatform {
            name: p.name.as_str().into(),
            description: p.description.as_str().into(),
            authorize_url: p.authorize_url.as_str().into(),
            token_url: p.token_url.as_str().into(),
            revoke_url: p.revoke_url.as_str().into(),
            api_base: p.api_base.as_str().into(),
            client_auth: p.client_auth.as_str().into(),
            pkce: p.pkce,
            send_scopes: p.send_scopes,
            api_base_field: p.api_base_field.as_str().into(),
            endpoints_from_declaration: p.endpoints_from_declaration,
        }
    }
}

impl From<&FfiPlatform> for Platform {
    fn from(p: &FfiPlatform) -> Self {
        Platform {
            name: p.name.to_string(),
            description: p.description.to_string(),
            authorize_url: p.authorize_url.to_string(),
            token_url: p.token_url.to_string(),
            revoke_url: p.revoke_url.to_string(),
            api_base: p.api_base.to_string(),
            client_auth: p.client_auth.to_string(),
            pkce: p.pkce,
            send_scopes: p.send_scopes,
            api_base_field: p.api_base_field.to_string(),
            endpoints_from_declaration: p.endpoints_from_declaration,
        }
    }
}

// ---------------------------------------------------------------------------
// Leases (API 1.7)
// ---------------------------------------------------------------------------

/// A lease across hosts, as it crosses the ABI: a named lock whose expiry the
/// store's *server* times, so several hosts sharing one store let one of them
/// at a time refresh a rotating token (API 1.7).
#[sabi_trait]
pub trait FfiLease: Send + Sync {
    /// Tries to take the lease `name` for `ttl_secs`, recording `holder`
    /// (who: host, process, time, as the host writes it). `Some`: taken
    /// ([`Taken`]); `None`: another holds it.
    fn try_take(&self, name: RStr<'_>, holder: RStr<'_>, ttl_secs: u64) -> RResult<ROption<Taken>, FfiError>;
    /// Gives back the lease `name` taken as `version`; never a successor's.
    #[sabi(last_prefix_field)]
    fn give_back(&self, name: RStr<'_>, version: u64) -> RResult<(), FfiError>;
}

/// An owned lease trait object.
pub type FfiLeaseBox = FfiLease_TO<'static, RBox<()>>;

/// A lease taken.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    /// What gives it back.
    pub version: u64,
    /// The previous holder never gave it back: it expired. That holder may
    /// have been answered by the provider and died before publishing, so a
    /// refused refresh right after is not proof the grant is gone.
    pub after_expiry: bool,
}

/// What a store that several hosts share offers them to take turns (API
/// 1.7): implement it next to your [`Store`] and return it from
/// [`Plugin::open_lease`]. Expiry must be the server's, never a host's clock.
pub trait Lease: Send + Sync + 'static {
    /// Tries to take the lease `name` for `ttl_secs`: `Some` when taken,
    /// `None` while another holds it (then nothing changes).
    fn try_take(&self, name: &str, holder: &str, ttl_secs: u64) -> Result<Option<Taken>, StoreError>;
    /// Gives back the lease `name` taken as `version` (never a successor's:
    /// after the lease expired and another took it, this changes nothing).
    fn give_back(&self, name: &str, version: u64) -> Result<(), StoreError>;
}

struct GuardedLease(Box<dyn Lease>);

impl FfiLease for GuardedLease {
    fn try_take(&self, name: RStr<'_>, holder: RStr<'_>, ttl_secs: u64) -> RResult<ROption<Taken>, FfiError> {
        guard("try_take", || {
            self.0
                .try_take(name.as_str(), holder.as_str(), ttl_secs)
                .map(ROption::from)
        })
    }
    fn give_back(&self, name: RStr<'_>, version: u64) -> RResult<(), FfiError> {
        guard("give_back", || self.0.give_back(name.as_str(), version))
    }
}

/// A lease as the host sees it.
pub struct LeaseHandle {
    inner: FfiLeaseBox,
}

impl fmt::Debug for LeaseHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeaseHandle")
    }
}

impl LeaseHandle {
    /// Wraps a lease trait object that came from a plugin module.
    pub fn from_ffi(inner: FfiLeaseBox) -> Self {
        Self { inner }
    }
    /// Wraps a native lease, with the same panic guard a plugin gets.
    pub fn from_lease(lease: impl Lease) -> Self {
        Self {
            inner: FfiLease_TO::from_value(GuardedLease(Box::new(lease)), abi_stable::sabi_trait::TD_Opaque),
        }
    }
    /// See [`Lease::try_take`].
    pub fn try_take(&self, name: &str, holder: &str, ttl_secs: u64) -> Result<Option<Taken>, StoreError> {
        from_ffi(self.inner.try_take(name.into(), holder.into(), ttl_secs)).map(ROption::into_option)
    }
    /// See [`Lease::give_back`].
    pub fn give_back(&self, name: &str, version: u64) -> Result<(), StoreError> {
        from_ffi(self.inner.give_back(name.into(), version))
    }
}

// ---------------------------------------------------------------------------
// Store settings (API 1.6)
// ---------------------------------------------------------------------------

/// The type of a store setting's value. A newtype over an integer so that
/// types can be added (API 1.6).
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash)]
pub struct SettingType(pub u8);

impl SettingType {
    /// Any text.
    pub const TEXT: Self = Self(1);
    /// A whole number (TOML integer, or text of digits).
    pub const INTEGER: Self = Self(2);
    /// `true` or `false`.
    pub const BOOLEAN: Self = Self(3);
    /// A file or directory path.
    pub const PATH: Self = Self(4);
    /// An `http://` or `https://` URL.
    pub const URL: Self = Self(5);

    /// The type's name as users see it.
    pub fn name(self) -> &'static str {
        match self {
            Self::TEXT => "text",
            Self::INTEGER => "integer",
            Self::BOOLEAN => "boolean",
            Self::PATH => "path",
            Self::URL => "url",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for SettingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One setting of a store kind (`[store.settings]`), as it crosses the ABI.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiStoreSetting {
    /// The key under `[store.settings]`.
    pub name: RString,
    /// The value's type.
    pub kind: SettingType,
    /// The store cannot open without it (from the declaration or `env`).
    pub required: bool,
    /// The value, or the file it names, is a secret: connapp never prints it.
    pub secret: bool,
    /// Environment variables the store reads when the setting is absent, in order.
    pub env: RVec<RString>,
    /// The value used when it is absent everywhere, for humans.
    pub default: ROption<RString>,
    /// One line for humans: what it is.
    pub help: RString,
}

/// One setting of a store kind (`[store.settings]`): what `connapp check`
/// validates offline, `connapp init` writes as a comment and `connapp
/// plugins info` lists (API 1.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSetting {
    /// The key under `[store.settings]`.
    pub name: String,
    /// The value's type.
    pub kind: SettingType,
    /// The store cannot open without it (from the declaration or `env`).
    pub required: bool,
    /// The value, or the file it names, is a secret: connapp never prints it.
    pub secret: bool,
    /// Environment variables the store reads when the setting is absent, in order.
    pub env: Vec<String>,
    /// The value used when it is absent everywhere, for humans.
    pub default: Option<String>,
    /// One line for humans: what it is.
    pub help: String,
}

impl StoreSetting {
    /// An optional setting of type `kind`; add the rest with the builders.
    pub fn new(name: impl Into<String>, kind: SettingType, help: impl Into<String>) -> Self {
        StoreSetting {
            name: name.into(),
            kind,
            required: false,
            secret: false,
            env: Vec::new(),
            default: None,
            help: help.into(),
        }
    }
    /// The store cannot open without it.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// Its value, or the file it names, is a secret.
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
    /// The environment variables read when it is absent, in order.
    pub fn env(mut self, vars: &[&str]) -> Self {
        self.env = vars.iter().map(|v| v.to_string()).collect();
        self
    }
    /// The value used when it is absent everywhere.
    pub fn default_value(mut self, v: impl Into<String>) -> Self {
        self.default = Some(v.into());
        self
    }
}

impl From<&StoreSetting> for FfiStoreSetting {
    fn from(s: &StoreSetting) -> Self {
        FfiStoreSetting {
            name: s.name.as_str().into(),
            kind: s.kind,
            required: s.required,
            secret: s.secret,
            env: s.env.iter().map(|v| RString::from(v.as_str())).collect(),
            default: s.default.as_deref().map(RString::from).into(),
            help: s.help.as_str().into(),
        }
    }
}

impl From<&FfiStoreSetting> for StoreSetting {
    fn from(s: &FfiStoreSetting) -> Self {
        StoreSetting {
            name: s.name.to_string(),
            kind: s.kind,
            required: s.required,
            secret: s.secret,
            env: s.env.iter().map(|v| v.to_string()).collect(),
            default: s.default.as_ref().map(|v| v.to_string()).into_option(),
            help: s.help.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------
// Plugin info and the root module
// ---------------------------------------------------------------------------

/// A kind of plugin. A newtype over an integer so that kinds can be added.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginKind(pub u8);

impl PluginKind {
    /// A credential store.
    pub const STORE: Self = Self(1);
    /// A scope preset.
    pub const PRESET: Self = Self(2);
    /// A target platform.
    pub const PLATFORM: Self = Self(3);

    /// The kind's name as users see it.
    pub fn name(self) -> &'static str {
        match self {
            Self::STORE => "store",
            Self::PRESET => "preset",
            Self::PLATFORM => "platform",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing a plugin provides: a kind and the name users refer to it by.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiProvided {
    /// The kind.
    pub kind: PluginKind,
    /// The name (a store kind such as `file`, a preset name, a platform name).
    pub name: RString,
    /// For a store: what it can do.
    pub store_capabilities: ROption<Capabilities>,
}

/// Who a plugin is, as it crosses the ABI.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiPluginInfo {
    /// Unique plugin name, e.g. `store-file`.
    pub name: RString,
    /// The plugin's own version.
    pub version: RString,
    /// One line for humans.
    pub description: RString,
    /// The plugin API version it was built against.
    pub api_version: RString,
    /// What it provides.
    pub provides: RVec<FfiProvided>,
}

/// What a plugin provides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provided {
    /// The kind.
    pub kind: PluginKind,
    /// The name users refer to it by.
    pub name: String,
    /// For a store: what it can do.
    pub store_capabilities: Option<Capabilities>,
}

impl Provided {
    /// A store kind and what it can do.
    pub fn store(name: impl Into<String>, capabilities: Capabilities) -> Self {
        Self {
            kind: PluginKind::STORE,
            name: name.into(),
            store_capabilities: Some(capabilities),
        }
    }
    /// A preset or a platform (anything but a store).
    pub fn named(kind: PluginKind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
            store_capabilities: None,
        }
    }
}

/// Who a plugin is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// Unique plugin name, e.g. `store-file`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// One line for humans.
    pub description: String,
    /// The plugin API version it was built against (filled in by [`export_plugin!`]).
    pub api_version: String,
    /// What it provides.
    pub provides: Vec<Provided>,
}

impl PluginInfo {
    /// A plugin's description; `api_version` is left for [`export_plugin!`]
    /// to fill in.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
        provides: Vec<Provided>,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            api_version: String::new(),
            provides,
        }
    }
}

impl From<&PluginInfo> for FfiPluginInfo {
    fn from(i: &PluginInfo) -> Self {
        FfiPluginInfo {
            name: i.name.as_str().into(),
            version: i.version.as_str().into(),
            description: i.description.as_str().into(),
            api_version: i.api_version.as_str().into(),
            provides: i
                .provides
                .iter()
                .map(|p| FfiProvided {
                    kind: p.kind,
                    name: p.name.as_str().into(),
                    store_capabilities: p.store_capabilities.into(),
                })
                .collect(),
        }
    }
}

impl From<&FfiPluginInfo> for PluginInfo {
    fn from(i: &FfiPluginInfo) -> Self {
        PluginInfo {
            name: i.name.to_string(),
            version: i.version.to_string(),
            description: i.description.to_string(),
            api_version: i.api_version.to_string(),
            provides: i
                .provides
                .iter()
                .map(|p| Provided {
                    kind: p.kind,
                    name: p.name.to_string(),
                    store_capabilities: p.store_capabilities.into_option(),
                })
                .collect(),
        }
    }
}

/// The root module every plugin exports: its entry points.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// Who the plugin is.
    pub info: extern "C" fn() -> RResult<FfiPluginInfo, FfiError>,
    /// Opens the store named `name` (one the plugin lists as provided).
    pub open_store: extern "C" fn(RStr<'_>, &FfiStoreContext) -> RResult<FfiStoreBox, FfiError>,
    /// The presets the plugin provides.
    #[sabi(last_prefix_field)]
    pub presets: extern "C" fn() -> RResult<RVec<FfiPreset>, FfiError>,
    /// The platforms the plugin provides (added in 1.1; absent in 1.0 plugins).
    #[sabi(missing_field(option))]
    pub platforms: extern "C" fn() -> RResult<RVec<FfiPlatform>, FfiError>,
    /// The provider-side configuration (e.g. Zoom's app manifest) a platform
    /// wants for an app: `(platform, app JSON) -> desired JSON` (added in 1.2).
    #[sabi(missing_field(option))]
    pub provider_manifest: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<ROption<RString>, FfiError>,
    /// The records a consumer platform wants for an app, as JSON:
    /// `(platform, input JSON) -> desired records JSON` (added in 1.2).
    #[sabi(missing_field(option))]
    pub consumer_records: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<ROption<RString>, FfiError>,
    /// How a provider platform behaves and speaks beyond its endpoints, as
    /// JSON (`contract::PlatformProfile`): `platform -> profile` (added in 1.3).
    #[sabi(missing_field(option))]
    pub platform_profile: extern "C" fn(RStr<'_>) -> RResult<ROption<RString>, FfiError>,
    /// A platform's own rules for an app: `(platform, app JSON) -> findings
    /// JSON` (`contract::Finding`s; added in 1.3).
    #[sabi(missing_field(option))]
    pub check_app: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<ROption<RString>, FfiError>,
    /// The settings a store kind takes (`[store.settings]`): `kind ->
    /// settings`; `None` when the plugin does not describe them (added in 1.6).
    #[sabi(missing_field(option))]
    pub store_settings: extern "C" fn(RStr<'_>) -> RResult<ROption<RVec<FfiStoreSetting>>, FfiError>,
    // api-1.7 {
    /// The lease hosts sharing the store `kind` (opened with the context)
    /// take turns with; `None` when the store offers none (added in 1.7).
    #[sabi(missing_field(option))]
    pub open_lease: extern "C" fn(RStr<'_>, &FfiStoreContext) -> RResult<ROption<FfiLeaseBox>, FfiError>,
    // } api-1.7
}

/// The root module as plugin API 1.3 to 1.5 laid it out, before 1.6 appended
/// `store_settings`. abi_stable refuses a library whose root module has
/// fewer fields than the host's; the host checks such a plugin against this
/// layout instead and then reads it through [`PluginModuleRef`], whose
/// getters for the fields it lacks say `None`. Never changes.
#[doc(hidden)]
pub mod v1_3 {
    use super::*;

    /// The 1.3 root module (see the module).
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
    #[sabi(missing_field(panic))]
    pub struct PluginModule {
        /// As in 1.6.
        pub info: extern "C" fn() -> RResult<FfiPluginInfo, FfiError>,
        /// As in 1.6.
        pub open_store: extern "C" fn(RStr<'_>, &FfiStoreContext) -> RResult<FfiStoreBox, FfiError>,
        /// As in 1.6.
        #[sabi(last_prefix_field)]
        pub presets: extern "C" fn() -> RResult<RVec<FfiPreset>, FfiError>,
        /// As in 1.6.
        #[sabi(missing_field(option))]
        pub platforms: extern "C" fn() -> RResult<RVec<FfiPlatform>, FfiError>,
        /// As in 1.6.
        #[sabi(missing_field(option))]
        pub provider_manifest: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<ROption<RString>, FfiError>,
        /// As in 1.6.
        #[sabi(missing_field(option))]
        pub consumer_records: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<ROption<RString>, FfiError>,
        /// As in 1.6.
        #[sabi(missing_field(option))]
        pub platform_profile: extern "C" fn(RStr<'_>) -> RResult<ROption<RString>, FfiError>,
        /// As in 1.6.
        #[sabi(missing_field(option))]
        pub check_app: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<ROption<RString>, FfiError>,
    }

    impl RootModule for PluginModuleRef {
        abi_stable::declare_root_module_statics! {PluginModuleRef}
        const BASE_NAME: &'static str = "connapp_plugin";
        const NAME: &'static str = "connapp plugin";
        const VERSION_STRINGS: VersionStrings = package_version_strings!();
    }

    /// The oldest plugin API minor whose root module has this layout.
    pub const FIRST_MINOR: u32 = 3;
}

impl RootModule for PluginModuleRef {
    abi_stable::declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "connapp_plugin";
    const NAME: &'static str = "connapp plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// A built-in plugin, registered with `inventory` by [`export_plugin!`].
pub struct BuiltinPlugin {
    /// Builds the plugin's root module.
    pub module: fn() -> PluginModuleRef,
}

inventory::collect!(BuiltinPlugin);

/// Every built-in plugin linked into this binary, in no particular order.
pub fn builtin_plugins() -> impl Iterator<Item = &'static BuiltinPlugin> {
    inventory::iter::<BuiltinPlugin>.into_iter()
}

// ---------------------------------------------------------------------------
// The plugin trait and its glue
// ---------------------------------------------------------------------------

/// What a plugin crate implements (on a marker type) and passes to [`export_plugin!`].
pub trait Plugin: 'static {
    /// Who the plugin is and what it provides. `api_version` is filled in for you.
    fn info() -> PluginInfo;
    /// Opens the store `name`: always one of the store kinds [`Plugin::info`]
    /// lists (the glue refuses any other with `UNSUPPORTED` before this is
    /// called). The default says the plugin has no stores.
    fn open_store(name: &str, ctx: &StoreContext<'_>) -> Result<Box<dyn Store>, StoreError> {
        let _ = ctx;
        Err(StoreError::new(
            ErrorCode::UNSUPPORTED,
            format!("this plugin provides no store named {name:?}"),
        ))
    }
    /// The settings the store kind `kind` takes under `[store.settings]`
    /// (names, types, required, secret, environment fallbacks): `connapp
    /// check` refuses any other key (with a did-you-mean) and mistyped values
    /// offline, `connapp init` writes them as comments and `connapp plugins
    /// info` lists them. `None` (the default): not described, so only the
    /// store itself can judge them when it opens. Pure: no IO (API 1.6).
    fn store_settings(kind: &str) -> Option<Vec<StoreSetting>> {
        let _ = kind;
        None
    }
    /// The lease hosts that share the store `kind` take turns with (opened
    /// from the same settings as [`Plugin::open_store`]): only for a store
    /// shared across hosts whose server can time a lease. `None` (the
    /// default): single-host stores keep connapp's local lock (API 1.7).
    fn open_lease(kind: &str, ctx: &StoreContext<'_>) -> Result<Option<Box<dyn Lease>>, StoreError> {
        let _ = (kind, ctx);
        Ok(None)
    }
    /// The presets the plugin provides. The default is none.
    fn presets() -> Vec<Preset> {
        Vec::new()
    }
    /// The platforms the plugin provides. The default is none.
    fn platforms() -> Vec<Platform> {
        Vec::new()
    }
    /// The provider-side configuration the platform `platform` wants for an
    /// app, as JSON: only the settings the platform manages, which the host
    /// merges into the live configuration (settings not named survive).
    ///
    /// `app` is the app as `connapp check --json` prints it (name,
    /// display_name, usage, redirect_url, allow_list, strict_mode,
    /// subdomain_check, scopes with `optional`, webhook, ...) plus
    /// `scope_reasons`, an object from scope to its one-line reason. `None`
    /// means the platform has no provider configuration to manage (the
    /// default). Pure: no IO.
    fn provider_manifest(platform: &str, app: &str) -> Result<Option<String>, StoreError> {
        let _ = (platform, app);
        Ok(None)
    }
    /// The records the consumer platform `platform` (e.g. `servicenow`) wants
    /// for an app, as JSON the host executes against the consumer's API:
    /// `{"lookups": [...], "records": [...], "prune": [...]}` (see
    /// `platform-servicenow` for the shape). `input` holds the app, the
    /// provider's endpoints and the target (`kind`, `instance_url`,
    /// `instance`, `auth`, `redirect_url` and the profile's
    /// `target_settings` that are set). `None` (the default)
    /// means the plugin is no such consumer. Pure: no IO.
    fn consumer_records(platform: &str, input: &str) -> Result<Option<String>, StoreError> {
        let _ = (platform, input);
        Ok(None)
    }
    /// How the platform `platform` behaves and speaks beyond its endpoints,
    /// as the JSON of `contract::PlatformProfile` (a provider's API path,
    /// wording for hints, why a refresh token is refused; a consumer's
    /// callback path, instance URL and target settings). `None` (the
    /// default): plain RFC 6749, every field at its default. Pure: no IO.
    fn platform_profile(platform: &str) -> Result<Option<String>, StoreError> {
        let _ = platform;
        Ok(None)
    }
    /// The platform's own rules for an app that uses it (as its platform, or,
    /// since API 1.5, as its target's kind): a JSON array of
    /// `contract::Finding` (field below the app, rule, message, fix,
    /// severity), reported by `connapp check` beside connapp's own. `app` is
    /// the app as [`Plugin::provider_manifest`] receives it. `None` (the
    /// default) or `[]`: nothing to say. Pure: no IO.
    fn check_app(platform: &str, app: &str) -> Result<Option<String>, StoreError> {
        let _ = (platform, app);
        Ok(None)
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

thread_local! {
    /// Set while a guarded plugin call runs on this thread; the panic hook
    /// then records the location instead of printing.
    static IN_GUARD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static PANIC_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs (once per copy of std) a panic hook that stays quiet inside
/// guarded plugin calls and defers to the previous hook everywhere else, so
/// the host's own panics still print as usual.
fn install_quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_GUARD.with(std::cell::Cell::get) {
                let at = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
                PANIC_AT.with(|p| *p.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic into an [`ErrorCode::PANIC`] error. This is the
/// guard every exported entry point goes through.
pub fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, StoreError>) -> RResult<T, FfiError> {
    install_quiet_hook();
    let was = IN_GUARD.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_GUARD.with(|g| g.set(was));
    match result {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(payload) => {
            let at = PANIC_AT.with(|p| p.borrow_mut().take());
            let at = at.map(|a| format!(" (at {a})")).unwrap_or_default();
            RResult::RErr(FfiError {
                code: ErrorCode::PANIC,
                message: format!("the plugin panicked in {what}{at}: {}", panic_message(&*payload)).into(),
                retryable: false,
            })
        }
    }
}

/// Adapts a native [`Store`] to [`FfiStore`], guarding every call against
/// panics, keys out of shape and values over the store's own limit.
struct Guarded {
    store: Box<dyn Store>,
    /// The store's `max_value_size`, read once from `describe`.
    max_value: Option<u64>,
}

impl Guarded {
    fn new(store: Box<dyn Store>) -> Self {
        // Guarded too: `StoreHandle::from_store` calls this outside any guard.
        let described = guard("describe", || store.describe()).into_result().ok();
        let max_value = described.and_then(|d| d.capabilities.max_value_size());
        Guarded { store, max_value }
    }

    fn check_size(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        match self.max_value {
            Some(max) if value.len() as u64 > max => Err(StoreError::new(
                ErrorCode::TOO_LARGE,
                format!(
                    "{key}: the value is {} bytes; this store takes at most {max}",
                    value.len()
                ),
            )),
            _ => Ok(()),
        }
    }
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
        return Err(StoreError::new(
            ErrorCode::INVALID_INPUT,
            format!("invalid store key {key:?}: keys are 1 to {MAX_KEY_LEN} bytes without control characters"),
        ));
    }
    Ok(())
}

impl FfiStore for Guarded {
    fn describe(&self) -> RResult<FfiStoreDescription, FfiError> {
        guard("describe", || {
            let d = self.store.describe()?;
            Ok(FfiStoreDescription {
                capabilities: d.capabilities,
                location: d.location.into(),
            })
        })
    }
    fn get(&self, key: RStr<'_>) -> RResult<ROption<FfiRecord>, FfiError> {
        guard("get", || {
            check_key(key.as_str())?;
            Ok(match self.store.get(key.as_str())? {
                Some(mut r) => {
                    let value = RVec::from_slice(&r.value);
                    r.value.zeroize();
                    ROption::RSome(FfiRecord {
                        value,
                        version: r.version,
                    })
                }
                None => ROption::RNone,
            })
        })
    }
    fn put(&self, key: RStr<'_>, value: RSlice<'_, u8>, expected: ROption<u64>) -> RResult<u64, FfiError> {
        guard("put", || {
            check_key(key.as_str())?;
            self.check_size(key.as_str(), value.as_slice())?;
            self.store
                .put(key.as_str(), value.as_slice(), Expected::from_ffi(expected))
        })
    }
    fn delete(&self, key: RStr<'_>, expected: ROption<u64>) -> RResult<bool, FfiError> {
        guard("delete", || {
            check_key(key.as_str())?;
            self.store.delete(key.as_str(), Expected::from_ffi(expected))
        })
    }
    fn list(&self, prefix: RStr<'_>) -> RResult<RVec<RString>, FfiError> {
        guard("list", || {
            Ok(self
                .store
                .list(prefix.as_str())?
                .into_iter()
                .map(RString::from)
                .collect())
        })
    }
}

/// Glue used by [`export_plugin!`]; not part of the stable API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    /// A package's plugin name: its name without a `connapp-` prefix.
    pub fn plugin_name(package: &str) -> &str {
        package.strip_prefix("connapp-").unwrap_or(package)
    }

    pub extern "C" fn info<P: Plugin>() -> RResult<FfiPluginInfo, FfiError> {
        guard("info", || {
            let mut info = P::info();
            info.api_version = PLUGIN_API_VERSION.to_string();
            Ok(FfiPluginInfo::from(&info))
        })
    }

    pub extern "C" fn open_store<P: Plugin>(name: RStr<'_>, ctx: &FfiStoreContext) -> RResult<FfiStoreBox, FfiError> {
        guard("open_store", || {
            let info = P::info();
            let stores: Vec<&str> = info
                .provides
                .iter()
                .filter(|p| p.kind == PluginKind::STORE)
                .map(|p| p.name.as_str())
                .collect();
            if !stores.contains(&name.as_str()) {
                return Err(StoreError::unsupported_store(
                    &info.name,
                    &stores.join("`, `"),
                    name.as_str(),
                ));
            }
            let store = P::open_store(name.as_str(), &StoreContext::new(ctx))?;
            Ok(FfiStore_TO::from_value(
                Guarded::new(store),
                abi_stable::sabi_trait::TD_Opaque,
            ))
        })
    }

    pub extern "C" fn presets<P: Plugin>() -> RResult<RVec<FfiPreset>, FfiError> {
        guard("presets", || Ok(P::presets().iter().map(FfiPreset::from).collect()))
    }

    pub extern "C" fn platforms<P: Plugin>() -> RResult<RVec<FfiPlatform>, FfiError> {
        guard("platforms", || {
            Ok(P::platforms().iter().map(FfiPlatform::from).collect())
        })
    }

    pub extern "C" fn provider_manifest<P: Plugin>(
        platform: RStr<'_>,
        app: RStr<'_>,
    ) -> RResult<ROption<RString>, FfiError> {
        guard("provider_manifest", || {
            P::provider_manifest(platform.as_str(), app.as_str()).map(|o| o.map(RString::from).into())
        })
    }

    pub extern "C" fn consumer_records<P: Plugin>(
        platform: RStr<'_>,
        input: RStr<'_>,
    ) -> RResult<ROption<RString>, FfiError> {
        guard("consumer_records", || {
            P::consumer_records(platform.as_str(), input.as_str()).map(|o| o.map(RString::from).into())
        })
    }

    pub extern "C" fn platform_profile<P: Plugin>(platform: RStr<'_>) -> RResult<ROption<RString>, FfiError> {
        guard("platform_profile", || {
            P::platform_profile(platform.as_str()).map(|o| o.map(RString::from).into())
        })
    }

    pub extern "C" fn check_app<P: Plugin>(platform: RStr<'_>, app: RStr<'_>) -> RResult<ROption<RString>, FfiError> {
        guard("check_app", || {
            P::check_app(platform.as_str(), app.as_str()).map(|o| o.map(RString::from).into())
        })
    }

    pub extern "C" fn store_settings<P: Plugin>(kind: RStr<'_>) -> RResult<ROption<RVec<FfiStoreSetting>>, FfiError> {
        guard("store_settings", || {
            Ok(P::store_settings(kind.as_str())
                .map(|v| v.iter().map(FfiStoreSetting::from).collect::<RVec<_>>())
                .into())
        })
    }

    pub extern "C" fn open_lease<P: Plugin>(
        kind: RStr<'_>,
        ctx: &FfiStoreContext,
    ) -> RResult<ROption<FfiLeaseBox>, FfiError> {
        guard("open_lease", || {
            Ok(P::open_lease(kind.as_str(), &StoreContext::new(ctx))?
                .map(|l| FfiLease_TO::from_value(GuardedLease(l), abi_stable::sabi_trait::TD_Opaque))
                .into())
        })
    }

    pub fn module<P: Plugin>() -> PluginModuleRef {
        use abi_stable::prefix_type::PrefixTypeTrait;
        PluginModule {
            info: info::<P>,
            open_store: open_store::<P>,
            presets: presets::<P>,
            platforms: platforms::<P>,
            provider_manifest: provider_manifest::<P>,
            consumer_records: consumer_records::<P>,
            platform_profile: platform_profile::<P>,
            check_app: check_app::<P>,
            store_settings: store_settings::<P>,
            // api-1.7 {
            open_lease: open_lease::<P>,
            // } api-1.7
        }
        .leak_into_prefix()
    }
}

/// The [`PluginInfo`] of the calling package: its name without a `connapp-`
/// prefix (`connapp-store-file` is the plugin `store-file`), its version and
/// its Cargo `description`, and what it provides — so `connapp plugins list`
/// and the package registry say the same.
///
/// ```
/// use connapp_plugin_api::{PluginKind, Provided, plugin_info};
///
/// let info = plugin_info![Provided::named(PluginKind::PRESET, "my-preset")];
/// assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
/// assert_eq!(info.provides.len(), 1);
/// ```
#[macro_export]
macro_rules! plugin_info {
    ($($provided:expr),* $(,)?) => {
        $crate::PluginInfo::new(
            $crate::__private::plugin_name(env!("CARGO_PKG_NAME")),
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
            vec![$($provided),*],
        )
    };
}

/// Exports a [`Plugin`]: registers it as a built-in with `inventory` and, when
/// the crate's `cdylib` feature is on, exports the `abi_stable` root module.
///
/// ```
/// use connapp_plugin_api::{Plugin, PluginInfo, export_plugin};
///
/// pub struct MyPlugin;
///
/// impl Plugin for MyPlugin {
///     fn info() -> PluginInfo {
///         PluginInfo {
///             name: "my-plugin".into(),
///             version: "0.1.0".into(),
///             description: "an example".into(),
///             api_version: String::new(),
///             provides: vec![],
///         }
///     }
/// }
///
/// export_plugin!(MyPlugin);
/// # fn main() {}
/// ```
///
/// It also defines `pub fn __connapp_link()`, which a binary that links the
/// plugin in calls once so the linker keeps the registration.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        $crate::inventory::submit! {
            $crate::BuiltinPlugin { module: $crate::__private::module::<$plugin> }
        }

        // What `#[abi_stable::export_root_module]` generates, spelled with
        // `$crate` paths so a plugin needs no direct abi_stable dependency.
        #[cfg(feature = "cdylib")]
        #[doc(hidden)]
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static __CONNAPP_LIB_HEADER: $crate::abi_stable::library::LibHeader = {
            extern "C" fn __erased_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader($crate::__private::module::<$plugin>)
            }
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::PluginModuleRef>(
                    __erased_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };

        /// Keeps this plugin's built-in registration from being dropped by the linker.
        #[doc(hidden)]
        #[inline(never)]
        pub fn __connapp_link() {}
    };
}

// ---------------------------------------------------------------------------
// Host side: a safe handle over a store trait object
// ---------------------------------------------------------------------------

/// A store as the host sees it: native types, zeroized values, typed errors,
/// whether the store is built in, dynamic, or a plain Rust value under test.
pub struct StoreHandle {
    inner: FfiStoreBox,
}

impl fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreHandle")
    }
}

fn from_ffi<T>(r: RResult<T, FfiError>) -> Result<T, StoreError> {
    r.into_result().map_err(StoreError::from)
}

impl StoreHandle {
    /// Wraps a store trait object that came from a plugin module.
    pub fn from_ffi(inner: FfiStoreBox) -> Self {
        Self { inner }
    }

    /// Wraps a native store, with the same panic guard a plugin gets. This is
    /// how a plugin author runs the conformance suite without loading a library.
    pub fn from_store(store: impl Store) -> Self {
        Self {
            inner: FfiStore_TO::from_value(Guarded::new(Box::new(store)), abi_stable::sabi_trait::TD_Opaque),
        }
    }

    /// Capabilities and location.
    pub fn describe(&self) -> Result<StoreDescription, StoreError> {
        let d = from_ffi(self.inner.describe())?;
        Ok(StoreDescription {
            capabilities: d.capabilities,
            location: d.location.into_string(),
        })
    }

    /// The value and version of `key`, if present.
    pub fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        Ok(from_ffi(self.inner.get(key.into()))?.into_option().map(|mut r| {
            let value = Zeroizing::new(r.value.as_slice().to_vec());
            r.value.as_mut_slice().zeroize();
            Record {
                value,
                version: r.version,
            }
        }))
    }

    /// Writes `value` if `expected` holds; returns the new version.
    pub fn put(&self, key: &str, value: &[u8], expected: Expected) -> Result<u64, StoreError> {
        from_ffi(self.inner.put(key.into(), value.into(), expected.to_ffi()))
    }

    /// Deletes `key` if `expected` holds; returns whether something was deleted.
    pub fn delete(&self, key: &str, expected: Expected) -> Result<bool, StoreError> {
        from_ffi(self.inner.delete(key.into(), expected.to_ffi()))
    }

    /// Keys starting with `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(from_ffi(self.inner.list(prefix.into()))?
            .into_iter()
            .map(RString::into_string)
            .collect())
    }
}

/// Host side: calls a module's entry points with native types.
pub mod host {
    use super::*;

    /// The plugin's info.
    pub fn info(m: PluginModuleRef) -> Result<PluginInfo, StoreError> {
        from_ffi((m.info())()).map(|i| PluginInfo::from(&i))
    }

    /// Opens a store of the plugin.
    pub fn open_store(m: PluginModuleRef, name: &str, ctx: &FfiStoreContext) -> Result<StoreHandle, StoreError> {
        from_ffi((m.open_store())(name.into(), ctx)).map(StoreHandle::from_ffi)
    }

    /// The plugin's presets.
    pub fn presets(m: PluginModuleRef) -> Result<Vec<Preset>, StoreError> {
        from_ffi((m.presets())()).map(|v| v.iter().map(Preset::from).collect())
    }

    /// The provider configuration a platform wants for an app (`None` when the
    /// plugin has none, or was built against API 1.0/1.1).
    pub fn provider_manifest(m: PluginModuleRef, platform: &str, app: &str) -> Result<Option<String>, StoreError> {
        match m.provider_manifest() {
            Some(f) => from_ffi(f(platform.into(), app.into())).map(|o| o.into_option().map(|s| s.into_string())),
            None => Ok(None),
        }
    }

    /// The records a consumer platform wants (`None` when the plugin has none).
    pub fn consumer_records(m: PluginModuleRef, platform: &str, input: &str) -> Result<Option<String>, StoreError> {
        match m.consumer_records() {
            Some(f) => from_ffi(f(platform.into(), input.into())).map(|o| o.into_option().map(|s| s.into_string())),
            None => Ok(None),
        }
    }

    /// A platform's profile as JSON (`None` when the plugin has none, or was
    /// built before API 1.3).
    pub fn platform_profile(m: PluginModuleRef, platform: &str) -> Result<Option<String>, StoreError> {
        match m.platform_profile() {
            Some(f) => from_ffi(f(platform.into())).map(|o| o.into_option().map(|s| s.into_string())),
            None => Ok(None),
        }
    }

    /// A platform's findings for an app as JSON (`None` when the plugin has
    /// none, or was built before API 1.3).
    pub fn check_app(m: PluginModuleRef, platform: &str, app: &str) -> Result<Option<String>, StoreError> {
        match m.check_app() {
            Some(f) => from_ffi(f(platform.into(), app.into())).map(|o| o.into_option().map(|s| s.into_string())),
            None => Ok(None),
        }
    }

    /// The settings a store kind takes (`None` when the plugin does not
    /// describe them, or was built before API 1.6).
    pub fn store_settings(m: PluginModuleRef, kind: &str) -> Result<Option<Vec<StoreSetting>>, StoreError> {
        match m.store_settings() {
            Some(f) => {
                from_ffi(f(kind.into())).map(|o| o.into_option().map(|v| v.iter().map(StoreSetting::from).collect()))
            }
            None => Ok(None),
        }
    }

    // api-1.7 {
    /// The lease of the store `kind` (`None` when it offers none, or the
    /// plugin was built before API 1.7).
    pub fn open_lease(
        m: PluginModuleRef,
        kind: &str,
        ctx: &FfiStoreContext,
    ) -> Result<Option<LeaseHandle>, StoreError> {
        match m.open_lease() {
            Some(f) => from_ffi(f(kind.into(), ctx)).map(|o| o.into_option().map(LeaseHandle::from_ffi)),
            None => Ok(None),
        }
    }
    // } api-1.7

    /// The plugin's platforms (none for plugins built against API 1.0).
    pub fn platforms(m: PluginModuleRef) -> Result<Vec<Platform>, StoreError> {
        match m.platforms() {
            Some(f) => from_ffi(f()).map(|v| v.iter().map(Platform::from).collect()),
            None => Ok(Vec::new()),
        }
    }
}
