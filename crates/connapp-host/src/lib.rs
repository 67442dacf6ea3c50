//! The connapp plugin host: one registry for built-in plugins (registered with
//! `inventory` by the plugin crates linked into the binary) and dynamic ones
//! (loaded with `abi_stable` from trusted directories).
//!
//! The rest of connapp asks the [`Registry`] for a store or the presets and
//! gets native handles back; it never sees whether a plugin is built in or
//! loaded, except in [`Origin`], which is reported to users.
//!
//! What it is **not**: a sandbox. Loading a library runs its code; the trust
//! checks (absolute path; the file, its directory and every directory above
//! it owned by you or root and not group- or world-writable, as OpenSSH's
//! StrictModes) keep out accidents and other users, not a malicious library
//! you installed. The [`precheck`] keeps out broken files (a truncated copy
//! would crash the process inside the loader). Libraries are never unloaded.

mod context;
pub mod precheck;

pub use context::{Prompt, store_context};

use std::fmt;
use std::path::{Path, PathBuf};

use abi_stable::library::{LibraryError, lib_header_from_path};
use connapp_plugin_api::contract::{self, ConsumerRecords, ContractError, Finding, PlatformProfile};
use connapp_plugin_api::{
    FfiStoreContext, LeaseHandle, PLUGIN_API_VERSION, PluginInfo, PluginKind, PluginModuleRef, Preset, StoreError,
    StoreHandle, StoreSetting, builtin_plugins, host,
};

/// Where a plugin came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Linked into the binary.
    Builtin,
    /// Loaded from this file.
    Dynamic(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin => f.write_str("built-in"),
            Origin::Dynamic(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A plugin the host can use.
pub struct LoadedPlugin {
    /// Who it is.
    pub info: PluginInfo,
    /// Where it came from.
    pub origin: Origin,
    module: PluginModuleRef,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("info", &self.info)
            .field("origin", &self.origin)
            .finish()
    }
}

impl LoadedPlugin {
    /// Whether it provides `kind` under `name`.
    pub fn provides(&self, kind: PluginKind, name: &str) -> bool {
        self.info.provides.iter().any(|p| p.kind == kind && p.name == name)
    }

    /// The settings its store `kind` takes, as it describes them
    /// (`Plugin::store_settings`, API 1.6); `Ok(None)`: it does not.
    pub fn store_settings(&self, kind: &str) -> Result<Option<Vec<StoreSetting>>, HostError> {
        host::store_settings(self.module, kind).map_err(|error| plugin_error(self, error))
    }
}

/// Everything that can go wrong in the host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Built against an incompatible plugin API.
    #[error(
        "{}: refused: the plugin was built for connapp plugin API {found}, but this connapp supports {expected}; rebuild the plugin against connapp-plugin-api {expected}",
        path.display()
    )]
    IncompatibleAbi {
        /// The library.
        path: PathBuf,
        /// What the host supports.
        expected: String,
        /// What the plugin was built against.
        found: String,
    },
    /// The file or its directory fails the trust checks.
    #[error("{}: refused: {reason}", path.display())]
    Untrusted {
        /// The library.
        path: PathBuf,
        /// Why, with the fix.
        reason: String,
    },
    /// The file is not a complete shared library for this platform.
    #[error("{}: refused: not a loadable plugin library: {reason}; fix: rebuild the plugin or copy it again (a half-finished copy looks like this), or remove the file", path.display())]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The library could not be loaded.
    #[error("{}: cannot load: {detail}", path.display())]
    Load {
        /// The library.
        path: PathBuf,
        /// What abi_stable or the loader said.
        detail: String,
    },
    /// A second plugin with a name already taken.
    #[error("{}: refused: a plugin named {name:?} is already loaded from {existing}", path.display())]
    Duplicate {
        /// The library.
        path: PathBuf,
        /// The plugin name.
        name: String,
        /// Where the first one came from.
        existing: Origin,
    },
    /// A plugin call failed (including a caught panic). The message leads
    /// with what the plugin said about the user's thing; where the plugin's
    /// file lies is logged at `-v`, not printed.
    #[error("{error} (the {plugin} plugin)")]
    Plugin {
        /// The plugin name.
        plugin: String,
        /// Where it came from.
        origin: Origin,
        /// What it said.
        error: StoreError,
    },
    /// A plugin's answer breaks the platform contract (a missing, mistyped
    /// or unknown field).
    #[error(
        "plugin {plugin} ({origin}) answered {entry} with something that breaks the platform contract at {error}; fix: this is a bug in the plugin (or a plugin built for another connapp), report it to its author"
    )]
    Contract {
        /// The plugin name.
        plugin: String,
        /// Where it came from.
        origin: Origin,
        /// The entry point (`platform_profile`, `check_app`, `consumer_records`).
        entry: &'static str,
        /// The field and what is wrong with it.
        error: ContractError,
    },
    /// No plugin provides the store kind.
    #[error("no installed plugin provides the store kind {kind:?} (installed store kinds: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    NoSuchStore {
        /// What was asked for.
        kind: String,
        /// What exists.
        known: Vec<String>,
    },
}

impl HostError {
    /// The plugin's error, if this is one.
    pub fn plugin_error(&self) -> Option<&StoreError> {
        match self {
            HostError::Plugin { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A library that could not be loaded.
#[derive(Debug)]
pub struct LoadFailure {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub error: HostError,
}

/// All plugins: built in and dynamic.
#[derive(Debug, Default)]
pub struct Registry {
    plugins: Vec<LoadedPlugin>,
    failures: Vec<LoadFailure>,
}

/// File names that look like dynamic libraries on this platform.
pub fn is_library_name(name: &str) -> bool {
    let ext = std::env::consts::DLL_EXTENSION;
    name.rsplit_once('.').is_some_and(|(_, e)| e == ext)
}

impl Registry {
    /// Only the plugins linked into this binary.
    pub fn builtins() -> Self {
        let mut r = Registry::default();
        let mut found: Vec<(PluginInfo, PluginModuleRef)> = Vec::new();
        for b in builtin_plugins() {
            let module = (b.module)();
            match host::info(module) {
                Ok(info) => found.push((info, module)),
                Err(error) => r.failures.push(LoadFailure {
                    path: PathBuf::from("(built-in)"),
                    error: HostError::Plugin {
                        plugin: "(unknown built-in)".into(),
                        origin: Origin::Builtin,
                        error,
                    },
                }),
            }
        }
        found.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        for (info, module) in found {
            r.plugins.push(LoadedPlugin {
                info,
                origin: Origin::Builtin,
                module,
            });
        }
        r
    }

    /// Built-ins plus every library in `dirs` (in order; missing directories
    /// are skipped). Failures are recorded, not fatal: see [`Registry::failures`].
    pub fn discover(dirs: &[PathBuf]) -> Self {
        let mut r = Self::builtins();
        for dir in dirs {
            let Ok(rd) = std::fs::read_dir(dir) else { continue };
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_library_name))
                .collect();
            files.sort();
            for f in files {
                if let Err(error) = r.load_file(&f) {
                    r.failures.push(LoadFailure { path: f, error });
                }
            }
        }
        r
    }

    /// Loads one dynamic library after the trust checks.
    pub fn load_file(&mut self, path: &Path) -> Result<&LoadedPlugin, HostError> {
        let path = std::fs::canonicalize(path).map_err(|e| HostError::Load {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        check_trusted(&path)?;
        precheck::check_file(&path).map_err(|e| HostError::NotALibrary {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let header = lib_header_from_path(&path).map_err(|e| map_library_error(&path, e))?;
        let module = match header.init_root_module::<PluginModuleRef>() {
            Ok(m) => m,
            Err(e @ LibraryError::AbiInstability(_)) => older_minor(header, &path, e)?,
            Err(e) => return Err(map_library_error(&path, e)),
        };
        let info = host::info(module).map_err(|error| HostError::Plugin {
            plugin: path
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
            origin: Origin::Dynamic(path.clone()),
            error,
        })?;
        if let Some(existing) = self.plugins.iter().find(|p| p.info.name == info.name) {
            return Err(HostError::Duplicate {
                path,
                name: info.name,
                existing: existing.origin.clone(),
            });
        }
        self.plugins.push(LoadedPlugin {
            info,
            origin: Origin::Dynamic(path),
            module,
        });
        Ok(self.plugins.last().expect("just pushed"))
    }

    /// Every usable plugin: built-ins first (by name), then dynamic ones in load order.
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    /// Libraries that were refused or failed to load.
    pub fn failures(&self) -> &[LoadFailure] {
        &self.failures
    }

    /// The plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&LoadedPlugin> {
        self.plugins.iter().find(|p| p.info.name == name)
    }

    /// Store kinds provided by some plugin.
    pub fn store_kinds(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .plugins
            .iter()
            .flat_map(|p| p.info.provides.iter())
            .filter(|p| p.kind == PluginKind::STORE)
            .map(|p| p.name.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Opens the store `kind` from the first plugin providing it.
    /// The plugin that provides store `kind` (without opening a store).
    pub fn store_plugin(&self, kind: &str) -> Result<&LoadedPlugin, HostError> {
        self.plugins
            .iter()
            .find(|p| p.provides(PluginKind::STORE, kind))
            .ok_or_else(|| HostError::NoSuchStore {
                kind: kind.to_string(),
                known: self.store_kinds(),
            })
    }

    pub fn open_store(&self, kind: &str, ctx: &FfiStoreContext) -> Result<(StoreHandle, &LoadedPlugin), HostError> {
        let plugin = self
            .plugins
            .iter()
            .find(|p| p.provides(PluginKind::STORE, kind))
            .ok_or_else(|| HostError::NoSuchStore {
                kind: kind.to_string(),
                known: self.store_kinds(),
            })?;
        let handle = host::open_store(plugin.module, kind, ctx).map_err(|error| plugin_error(plugin, error))?;
        Ok((handle, plugin))
    }

    /// The lease of the store `kind` (see `Plugin::open_lease`), from the
    /// first plugin providing it; `Ok(None)` when it offers none.
    pub fn open_lease(&self, kind: &str, ctx: &FfiStoreContext) -> Result<Option<LeaseHandle>, HostError> {
        let Some(plugin) = self.plugins.iter().find(|p| p.provides(PluginKind::STORE, kind)) else {
            return Ok(None);
        };
        host::open_lease(plugin.module, kind, ctx).map_err(|error| plugin_error(plugin, error))
    }

    /// The settings the store `kind` takes, as the first plugin providing it
    /// describes them (`Plugin::store_settings`, API 1.6); `Ok(None)` when no
    /// plugin provides it or its plugin does not describe them.
    pub fn store_settings(&self, kind: &str) -> Result<Option<Vec<StoreSetting>>, HostError> {
        match self.plugins.iter().find(|p| p.provides(PluginKind::STORE, kind)) {
            Some(plugin) => plugin.store_settings(kind),
            None => Ok(None),
        }
    }

    /// All presets, with the plugin each came from. A plugin whose presets
    /// cannot be read is reported in the second list.
    pub fn presets(&self) -> (Vec<(Preset, &LoadedPlugin)>, Vec<HostError>) {
        self.gather(PluginKind::PRESET, host::presets)
    }

    /// What every plugin that provides `kind` lists (`list`), each with its
    /// plugin; a plugin whose list cannot be read is in the second list.
    fn gather<T>(
        &self,
        kind: PluginKind,
        list: impl Fn(PluginModuleRef) -> Result<Vec<T>, StoreError>,
    ) -> (Vec<(T, &LoadedPlugin)>, Vec<HostError>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for p in self
            .plugins
            .iter()
            .filter(|p| p.info.provides.iter().any(|x| x.kind == kind))
        {
            match list(p.module) {
                Ok(v) => out.extend(v.into_iter().map(|item| (item, p))),
                Err(error) => errors.push(plugin_error(p, error)),
            }
        }
        (out, errors)
    }
}

impl Registry {
    /// All platforms, with the plugin each came from.
    pub fn platforms(&self) -> (Vec<(connapp_plugin_api::Platform, &LoadedPlugin)>, Vec<HostError>) {
        self.gather(PluginKind::PLATFORM, host::platforms)
    }

    /// The provider configuration the plugin that provides `platform` wants
    /// for `app_json` (see `Plugin::provider_manifest`); `Ok(None)` when no
    /// plugin provides the platform or it manages no provider configuration.
    pub fn provider_manifest(&self, platform: &str, app_json: &str) -> Result<Option<String>, HostError> {
        let Some(p) = self.platform_plugin(platform) else {
            return Ok(None);
        };
        host::provider_manifest(p.module, platform, app_json).map_err(|e| plugin_error(p, e))
    }

    /// The plugin that provides the platform `platform`.
    fn platform_plugin(&self, platform: &str) -> Option<&LoadedPlugin> {
        self.plugins.iter().find(|p| {
            p.info
                .provides
                .iter()
                .any(|x| x.kind == PluginKind::PLATFORM && x.name == platform)
        })
    }

    /// Asks the plugin that provides `platform` through the entry point
    /// `entry` (`call`) and parses its JSON answer strictly (`parse`);
    /// `Ok(None)` when no plugin provides the platform or it has no answer.
    fn ask<T>(
        &self,
        platform: &str,
        entry: &'static str,
        call: impl FnOnce(PluginModuleRef) -> Result<Option<String>, StoreError>,
        parse: impl FnOnce(&str) -> Result<T, ContractError>,
    ) -> Result<Option<T>, HostError> {
        let Some(p) = self.platform_plugin(platform) else {
            return Ok(None);
        };
        match call(p.module).map_err(|e| plugin_error(p, e))? {
            Some(json) => parse(&json).map(Some).map_err(|e| contract_error(p, entry, e)),
            None => Ok(None),
        }
    }

    /// The records the plugin that provides the consumer platform `platform`
    /// wants (see `Plugin::consumer_records`), checked against the contract;
    /// `Ok(None)` when none does.
    pub fn consumer_records(&self, platform: &str, input_json: &str) -> Result<Option<ConsumerRecords>, HostError> {
        self.ask(
            platform,
            "consumer_records",
            |m| host::consumer_records(m, platform, input_json),
            contract::parse_consumer_records,
        )
    }

    /// How the provider platform `platform` behaves and speaks (see
    /// `Plugin::platform_profile`), checked against the contract. A platform
    /// whose plugin says nothing (or predates API 1.3) gets the defaults:
    /// plain RFC 6749.
    pub fn platform_profile(&self, platform: &str) -> Result<PlatformProfile, HostError> {
        let profile = self.ask(
            platform,
            "platform_profile",
            |m| host::platform_profile(m, platform),
            contract::parse_platform_profile,
        )?;
        Ok(profile.unwrap_or_default())
    }

    /// The platform's own findings for an app (see `Plugin::check_app`),
    /// checked against the contract; empty when it has none.
    pub fn check_app(&self, platform: &str, app_json: &str) -> Result<Vec<Finding>, HostError> {
        let findings = self.ask(
            platform,
            "check_app",
            |m| host::check_app(m, platform, app_json),
            contract::parse_findings,
        )?;
        Ok(findings.unwrap_or_default())
    }
}

fn contract_error(plugin: &LoadedPlugin, entry: &'static str, error: ContractError) -> HostError {
    HostError::Contract {
        plugin: plugin.info.name.clone(),
        origin: plugin.origin.clone(),
        entry,
        error,
    }
}

/// Wraps a plugin's error with the plugin's name and origin.
pub fn plugin_error(plugin: &LoadedPlugin, error: StoreError) -> HostError {
    tracing::info!(plugin = %plugin.info.name, origin = %plugin.origin, "a plugin call failed");
    HostError::Plugin {
        plugin: plugin.info.name.clone(),
        origin: plugin.origin.clone(),
        error,
    }
}

/// A plugin built against an older minor of this major whose root module
/// lacks fields appended since (abi_stable refuses a library with fewer
/// fields than the host's, `e`): checked against that minor's layout, then
/// read through today's module type, whose getters for the missing fields say
/// `None`. A plugin older than every layout kept here is refused by version;
/// anything else keeps abi_stable's own error.
fn older_minor(
    header: &'static abi_stable::library::LibHeader,
    path: &Path,
    e: LibraryError,
) -> Result<PluginModuleRef, HostError> {
    use connapp_plugin_api::v1_3;
    let parse = |v: &str| {
        let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
        Some((it.next()??, it.next()??))
    };
    let found = header.version_strings().to_string();
    let (Some(host), Some(lib)) = (parse(PLUGIN_API_VERSION), parse(&found)) else {
        return Err(map_library_error(path, e));
    };
    if lib.0 != host.0 || lib.1 >= host.1 {
        return Err(map_library_error(path, e));
    }
    let too_old = || HostError::IncompatibleAbi {
        path: path.to_path_buf(),
        expected: format!(
            "{}.{}.0 or newer (this connapp: {PLUGIN_API_VERSION})",
            host.0,
            v1_3::FIRST_MINOR
        ),
        found: found.clone(),
    };
    if lib.1 < v1_3::FIRST_MINOR {
        return Err(too_old());
    }
    header.ensure_layout::<v1_3::PluginModuleRef>().map_err(|_| too_old())?;
    tracing::info!(path = %path.display(), version = %found, "a plugin built against an older plugin API minor");
    // SAFETY: the library's root module has the 1.3 layout (just checked),
    // a prefix of today's; PluginModuleRef's getters check at run time which
    // fields the library's module has, and every field after 1.3's is optional.
    unsafe { header.unchecked_layout::<PluginModuleRef>() }
        .map_err(|e| map_library_error(path, e.into_library_error::<PluginModuleRef>()))
}

fn map_library_error(path: &Path, e: LibraryError) -> HostError {
    match e {
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => HostError::IncompatibleAbi {
            path: path.to_path_buf(),
            expected: format!(
                "{}.{}.x (this connapp: {PLUGIN_API_VERSION})",
                expected_version.major, expected_version.minor
            ),
            found: actual_version.to_string(),
        },
        LibraryError::GetSymbolError { .. } => HostError::Load {
            path: path.to_path_buf(),
            detail:
                "not a connapp plugin (no abi_stable root module exported; was it built with the `cdylib` feature?)"
                    .into(),
        },
        other => HostError::Load {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    }
}

/// One file or directory of the trust check: owned by you or root, and
/// neither group- nor world-writable (a sticky world-writable directory such
/// as /tmp is not trusted either: anyone can create a directory there).
/// `Err` is the reason, with the fix.
#[cfg(unix)]
fn check_entry(p: &Path, what: &str) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let meta = std::fs::metadata(p).map_err(|e| format!("cannot inspect {what} {}: {e}", p.display()))?;
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "{what} {} belongs to user id {}, not to you or root, so that user could replace the plugin; fix: chown it, or move the plugin",
            p.display(),
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        // A sticky shared directory (/tmp, /var/tmp) is meant to be writable
        // by everyone: changing it would break the system. Move the files out.
        if mode & 0o1000 != 0 && meta.is_dir() {
            return Err(format!(
                "{what} {} is writable by everyone (mode {:03o}, sticky, like /tmp: anyone can create files and directories in it), so another user could plant a plugin there; fix: move the plugin (or the whole unpacked release) to a directory only you and root can write, e.g. ~/.local/share/connapp/plugins — do not change the mode of {}",
                p.display(),
                mode & 0o777,
                p.display()
            ));
        }
        return Err(format!(
            "{what} {} is group- or world-writable (mode {:03o}), so another user could replace the plugin; fix: chmod go-w {}, or move the plugin to a directory only you and root can write",
            p.display(),
            mode & 0o777,
            p.display()
        ));
    }
    Ok(())
}

/// Whether plugins in `dir` could be trusted: `dir` and every directory
/// above it pass the checks a plugin's directories must pass. `Err` names
/// the nearest offender and the fix. (Tools that place plugins, such as
/// `cargo xtask e2e-build`, ask this instead of restating the rule.)
#[cfg(unix)]
pub fn trusted_directory(dir: &Path) -> Result<(), String> {
    let mut dirs = dir.ancestors();
    if let Some(d) = dirs.next() {
        check_entry(d, "the directory")?;
    }
    dirs.try_for_each(|d| check_entry(d, "the parent directory"))
}

/// Whether plugins in `dir` could be trusted (no checks off Unix).
#[cfg(not(unix))]
pub fn trusted_directory(_dir: &Path) -> Result<(), String> {
    Ok(())
}

/// The trust checks, nearest first: the library, its directory, then every
/// directory above it up to the root ([`trusted_directory`]).
#[cfg(unix)]
fn check_trusted(path: &Path) -> Result<(), HostError> {
    let untrusted = |reason: String| HostError::Untrusted {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| untrusted(e.to_string()))?;
    if !meta.is_file() {
        return Err(untrusted("not a regular file".into()));
    }
    check_entry(path, "the library").map_err(untrusted)?;
    if let Some(dir) = path.parent() {
        trusted_directory(dir).map_err(untrusted)?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_trusted(_path: &Path) -> Result<(), HostError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use connapp_plugin_api::abi_stable::std_types::{RResult, RStr, RVec};

    use super::*;

    /// A platform plugin whose every contract answer is malformed.
    struct Broken;

    impl connapp_plugin_api::Plugin for Broken {
        fn info() -> PluginInfo {
            PluginInfo {
                name: "fixture-broken-platform".into(),
                version: "0.0.0".into(),
                description: "answers that break the platform contract".into(),
                api_version: String::new(),
                provides: vec![connapp_plugin_api::Provided {
                    kind: PluginKind::PLATFORM,
                    name: "broken".into(),
                    store_capabilities: None,
                }],
            }
        }
        fn platform_profile(_: &str) -> Result<Option<String>, StoreError> {
            Ok(Some(r#"{"api_pth": "/v1"}"#.into()))
        }
        fn check_app(_: &str, _: &str) -> Result<Option<String>, StoreError> {
            Ok(Some(r#"[{"field": "scopes[0]", "rule": "r", "message": "m"}]"#.into()))
        }
        fn consumer_records(_: &str, _: &str) -> Result<Option<String>, StoreError> {
            Ok(Some(
                r#"{"records": [{"key": "k", "table": 7, "label": "l", "find": {}, "fields": {}}]}"#.into(),
            ))
        }
    }

    connapp_plugin_api::inventory::submit! {
        connapp_plugin_api::BuiltinPlugin { module: connapp_plugin_api::__private::module::<Broken> }
    }

    /// A store plugin that provides the store `a` and nothing else.
    struct OneStore;

    impl connapp_plugin_api::Plugin for OneStore {
        fn info() -> PluginInfo {
            let caps = connapp_plugin_api::Capabilities {
                persistent: false,
                shared_across_hosts: false,
                native_cas: false,
                max_value_size: 0,
            };
            PluginInfo::new(
                "fixture-one-store",
                "0.0.0",
                "provides the store `a`",
                vec![connapp_plugin_api::Provided::store("a", caps)],
            )
        }
        fn open_store(
            name: &str,
            _: &connapp_plugin_api::StoreContext<'_>,
        ) -> Result<Box<dyn connapp_plugin_api::Store>, StoreError> {
            panic!("asked for the store {name:?}, which the plugin does not list")
        }
    }

    /// A store that panics describing itself and takes any value.
    struct PanicsInDescribe;

    impl connapp_plugin_api::Store for PanicsInDescribe {
        fn describe(&self) -> Result<connapp_plugin_api::StoreDescription, StoreError> {
            panic!("describe is broken")
        }
        fn get(&self, _: &str) -> Result<Option<connapp_plugin_api::Record>, StoreError> {
            Ok(None)
        }
        fn put(&self, _: &str, _: &[u8], _: connapp_plugin_api::Expected) -> Result<u64, StoreError> {
            Ok(1)
        }
        fn delete(&self, _: &str, _: connapp_plugin_api::Expected) -> Result<bool, StoreError> {
            Ok(false)
        }
        fn list(&self, _: &str) -> Result<Vec<String>, StoreError> {
            Ok(Vec::new())
        }
    }

    /// Wrapping a native store reads its size limit under the panic guard:
    /// a panic in `describe` is that call's error, not the caller's crash,
    /// and the store still works without a limit.
    #[test]
    fn a_store_that_panics_in_describe_is_guarded_from_the_start() {
        let h = StoreHandle::from_store(PanicsInDescribe);
        assert_eq!(
            h.put("k", &[0u8; 4096], connapp_plugin_api::Expected::Any)
                .expect("put"),
            1
        );
        let e = h.describe().expect_err("describe panics");
        assert_eq!(e.code, connapp_plugin_api::ErrorCode::PANIC, "{e:?}");
    }

    extern "C" fn no_prompt(_: RStr<'_>) -> RResult<RVec<u8>, connapp_plugin_api::FfiError> {
        RResult::RErr(StoreError::new(connapp_plugin_api::ErrorCode::AUTH_FAILED, "no prompt").into())
    }

    /// The glue, not each plugin, refuses a store kind the plugin's info does
    /// not list, with UNSUPPORTED naming the plugin and what it provides.
    #[test]
    fn the_glue_refuses_a_store_the_plugin_does_not_list() {
        let ctx = FfiStoreContext {
            settings: RVec::new(),
            data_dir: "/nonexistent".into(),
            interactive: false,
            prompt_secret: no_prompt,
        };
        let module = connapp_plugin_api::__private::module::<OneStore>();
        let Err(e) = connapp_plugin_api::host::open_store(module, "b", &ctx) else {
            panic!("the store `b` was opened");
        };
        assert_eq!(e.code, connapp_plugin_api::ErrorCode::UNSUPPORTED, "{e:?}");
        assert_eq!(e.message, "fixture-one-store provides `a`, not \"b\"");
    }

    #[test]
    fn a_broken_contract_answer_names_the_plugin_the_entry_and_the_field() {
        let reg = Registry::builtins();
        let cases = [
            (
                reg.platform_profile("broken").map(|_| ()),
                "platform_profile",
                "api_pth",
            ),
            (reg.check_app("broken", "{}").map(|_| ()), "check_app", "fix"),
            (
                reg.consumer_records("broken", "{}").map(|_| ()),
                "consumer_records",
                "records[0].table",
            ),
        ];
        for (result, want_entry, want_field) in cases {
            let e = result.expect_err("a broken answer is an error");
            let text = e.to_string();
            match e {
                HostError::Contract {
                    plugin, entry, error, ..
                } => {
                    assert_eq!((plugin.as_str(), entry), ("fixture-broken-platform", want_entry));
                    assert!(error.to_string().contains(want_field), "{want_entry}: {error}");
                }
                other => panic!("{want_entry}: not a contract error: {other}"),
            }
            assert!(
                text.contains("fixture-broken-platform") && text.contains("bug in the plugin"),
                "{text}"
            );
        }
        // A platform nobody provides has the defaults, not an error.
        assert_eq!(
            reg.platform_profile("nobody").expect("defaults"),
            PlatformProfile::default()
        );
        assert!(reg.check_app("nobody", "{}").expect("none").is_empty());
    }

    #[test]
    fn library_names() {
        assert!(is_library_name("libconnapp_store_file.so"));
        assert!(!is_library_name("README.md"));
        assert!(!is_library_name("so"));
    }

    /// A scratch directory next to this test binary (under the target
    /// directory, not /tmp, which is itself untrusted).
    fn scratch(name: &str) -> PathBuf {
        let exe = std::env::current_exe().expect("exe");
        let dir = exe
            .parent()
            .expect("deps")
            .join(format!("connapp-host-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[cfg(unix)]
    #[test]
    fn writable_directories_are_refused_nearest_first() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
        let top = scratch("trust");
        let dir = top.join("plugins");
        std::fs::create_dir_all(&dir).expect("dir");
        mode(&top, 0o755);
        mode(&dir, 0o755);
        let lib = dir.join("libx.so");
        std::fs::write(&lib, b"not a library").expect("write");
        mode(&lib, 0o644);

        // The library's own directory.
        mode(&dir, 0o777);
        let e = Registry::default().load_file(&lib).expect_err("refused");
        assert!(matches!(e, HostError::Untrusted { .. }), "{e}");
        assert!(
            e.to_string().contains(&format!("the directory {}", dir.display())),
            "{e}"
        );
        assert!(e.to_string().contains(&format!("chmod go-w {}", dir.display())), "{e}");

        // A directory above it, even when the plugin directory itself is fine.
        mode(&dir, 0o755);
        mode(&top, 0o777);
        let e = Registry::default().load_file(&lib).expect_err("refused");
        assert!(
            e.to_string()
                .contains(&format!("the parent directory {}", top.display())),
            "{e}"
        );

        // Sticky does not make it trusted, and the fix is to move the
        // plugin, never to change a shared directory like /tmp.
        mode(&top, 0o1777);
        let e = Registry::default().load_file(&lib).expect_err("refused");
        assert!(e.to_string().contains("sticky"), "{e}");
        assert!(!e.to_string().contains("chmod"), "{e}");
        assert!(e.to_string().contains("move the plugin"), "{e}");

        // The library itself comes first.
        mode(&lib, 0o666);
        let e = Registry::default().load_file(&lib).expect_err("refused");
        assert!(e.to_string().contains("the library"), "{e}");
        mode(&top, 0o755);
        mode(&lib, 0o644);
        std::fs::remove_dir_all(&top).expect("cleanup");
    }

    #[cfg(unix)]
    #[test]
    fn a_file_that_is_not_a_library_is_refused_before_the_loader() {
        let top = scratch("notlib");
        let lib = top.join("libx.so");
        std::fs::write(&lib, b"not a library").expect("write");
        let e = Registry::default().load_file(&lib).expect_err("refused");
        match e {
            // Where the target directory sits under an untrusted directory
            // (a checkout in /tmp), the trust check speaks first; it must
            // then name a directory above the scratch one.
            HostError::Untrusted { ref reason, .. } => {
                assert!(reason.contains("parent directory"), "{e}");
                assert!(!reason.contains(&top.display().to_string()), "{e}");
            }
            HostError::NotALibrary { ref reason, .. } => assert!(reason.contains("not an ELF file"), "{e}"),
            other => panic!("{other}"),
        }
        std::fs::remove_dir_all(&top).expect("cleanup");
    }
}
