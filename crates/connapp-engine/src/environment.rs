//! The environment an owner of the engine runs in: connapp's directories,
//! where plugins are found, which declaration is read (and how much of it),
//! and how the declaration's store and its lease are opened.
//!
//! A command-line front end takes it from the process
//! ([`Environment::from_process`]: `CONNAPP_CONFIG_DIR`, `CONNAPP_DATA_DIR`,
//! `CONNAPP_PLUGIN_PATH`, the XDG directories, the executable's prefix); a
//! daemon, a fleet runner or a test builds one from its own values. Nothing
//! in the engine reads these from the process itself.
//!
//! What it is **not**: a terminal. Asking a human is the owner's
//! [`connapp_host::Prompt`], given or not.

use std::path::{Path, PathBuf};

use connapp_core::{Inventory, Report, StoreDecl};
use connapp_host::{HostError, LoadedPlugin, Prompt, Registry};
use connapp_plugin_api::bounded;
use connapp_plugin_api::{FfiStoreContext, StoreHandle};

use crate::secrets::LeaseOpener;

/// connapp's directories, its plugin search path, and whether (and how) a
/// human can be asked for a secret.
#[derive(Clone, Debug)]
pub struct Environment {
    /// Where the declaration may live (`connapp.toml`) and other settings.
    pub config_dir: PathBuf,
    /// connapp's own state: the file store, locks, journals, saved
    /// manifests, user plugins.
    pub data_dir: PathBuf,
    /// Where dynamic plugins are looked for, in order.
    pub plugin_dirs: Vec<PathBuf>,
    /// How to ask a human for a secret; `None`: nobody can be asked.
    pub prompt: Option<Prompt>,
    /// A running agent's socket (`CONNAPP_AGENT_SOCK`): a store it serves is
    /// read and written through it, unlocked once, instead of opened here.
    pub agent_socket: Option<PathBuf>,
}

/// Why the environment or the declaration could not be had.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// No home directory, and the variable that would replace it is unset.
    #[error("cannot find a home directory (set {var})")]
    NoHome {
        /// The variable to set.
        var: &'static str,
    },
    /// The declaration could not be read at all.
    #[error("{0}")]
    Unreadable(#[from] bounded::ReadError),
    /// A plugin failed while checking the declaration.
    #[error(transparent)]
    Plugin(#[from] HostError),
    /// The declaration is not UTF-8 text.
    #[error("{file}:{line}: the declaration is not valid UTF-8 text")]
    NotUtf8 {
        /// The file.
        file: String,
        /// The line of the first invalid byte.
        line: usize,
    },
}

/// `$VAR` when set, else the directory `pick` takes from the XDG dirs.
fn dir_of(var: &'static str, pick: fn(&directories::ProjectDirs) -> &Path) -> Result<PathBuf, EnvError> {
    if let Some(d) = std::env::var_os(var) {
        return Ok(PathBuf::from(d));
    }
    directories::ProjectDirs::from("", "", "connapp")
        .map(|p| pick(&p).to_path_buf())
        .ok_or(EnvError::NoHome { var })
}

impl Environment {
    /// From this process: `CONNAPP_CONFIG_DIR` (else the XDG config dir),
    /// `CONNAPP_DATA_DIR` (else the XDG data dir), and plugins from
    /// `CONNAPP_PLUGIN_PATH` (absolute entries only), then
    /// `<prefix>/lib/connapp/plugins` beside the executable, then the data
    /// directory's `plugins`. `prompt` is the owner's, if a human can be asked.
    pub fn from_process(prompt: Option<Prompt>) -> Result<Self, EnvError> {
        let config_dir = dir_of("CONNAPP_CONFIG_DIR", directories::ProjectDirs::config_dir)?;
        let data_dir = dir_of("CONNAPP_DATA_DIR", directories::ProjectDirs::data_dir)?;
        let mut plugin_dirs = Vec::new();
        if let Some(p) = std::env::var_os("CONNAPP_PLUGIN_PATH") {
            plugin_dirs.extend(std::env::split_paths(&p).filter(|d| d.is_absolute()));
        }
        if let Ok(exe) = std::env::current_exe()
            && let Some(prefix) = exe.parent().and_then(Path::parent)
        {
            plugin_dirs.push(prefix.join("lib").join("connapp").join("plugins"));
        }
        plugin_dirs.push(data_dir.join("plugins"));
        Ok(Environment {
            config_dir,
            data_dir,
            plugin_dirs,
            prompt,
            agent_socket: std::env::var_os(crate::agent::SOCK_ENV)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        })
    }

    /// The built-in plugins and the dynamic ones from the plugin directories.
    pub fn registry(&self) -> Registry {
        tracing::debug!(dirs = ?self.plugin_dirs, "plugin search path");
        let reg = Registry::discover(&self.plugin_dirs);
        for p in reg.plugins() {
            tracing::debug!(plugin = %p.info.name, origin = %p.origin, "plugin loaded");
        }
        reg
    }

    /// The declaration: `file` if given, else `./connapp.toml` if it
    /// exists, else the config directory's if that exists, else
    /// `./connapp.toml` (whose absence the reader reports).
    pub fn find_declaration(&self, file: Option<&Path>) -> PathBuf {
        if let Some(f) = file {
            return f.to_path_buf();
        }
        let local = PathBuf::from("connapp.toml");
        if local.exists() {
            return local;
        }
        let in_config = self.config_dir.join("connapp.toml");
        if in_config.exists() {
            return in_config;
        }
        local
    }

    /// Reads the declaration at `path` without trusting its size, and
    /// checks it with the plugins' rules. One over the limit is an invalid
    /// declaration (the `file-too-large` diagnostic, with its true size).
    pub fn check_declaration(&self, path: &Path, reg: &Registry) -> Result<Report, EnvError> {
        let file = path.display().to_string();
        let bytes = match bounded::read_file("the declaration", path, connapp_core::MAX_DECLARATION_BYTES as u64) {
            Ok(b) => b,
            Err(bounded::ReadError::TooLarge { size, .. }) => return Ok(connapp_core::too_large(&file, size)),
            Err(e) => return Err(e.into()),
        };
        match String::from_utf8(bytes) {
            Ok(text) => {
                let Some(inv) = connapp_core::inventory_path(&text) else {
                    return Ok(crate::platform::check(&file, &text, reg)?);
                };
                // The fleet's inventory, relative to the declaration's directory.
                let inv_path = path.parent().unwrap_or(Path::new("")).join(&inv);
                let inv_file = inv_path.display().to_string();
                let read = bounded::read_file("the inventory", &inv_path, connapp_core::MAX_INVENTORY_BYTES as u64);
                let reason;
                let inv_text;
                let inventory = match read.map(String::from_utf8) {
                    Ok(Ok(t)) => {
                        inv_text = t;
                        Inventory::Text {
                            file: &inv_file,
                            text: &inv_text,
                        }
                    }
                    Ok(Err(e)) => {
                        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
                        reason = format!("line {line} is not UTF-8 text (save it as UTF-8)");
                        Inventory::Unreadable {
                            file: &inv_file,
                            reason: &reason,
                        }
                    }
                    Err(bounded::ReadError::TooLarge { .. }) => {
                        reason = format!(
                            "it is larger than the limit of {} MiB",
                            connapp_core::MAX_INVENTORY_BYTES / (1024 * 1024)
                        );
                        Inventory::Unreadable {
                            file: &inv_file,
                            reason: &reason,
                        }
                    }
                    Err(e) => {
                        reason = e.to_string();
                        Inventory::Unreadable {
                            file: &inv_file,
                            reason: &reason,
                        }
                    }
                };
                Ok(crate::platform::check_with(&file, &text, inventory, reg)?)
            }
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
                Err(EnvError::NotUtf8 { file, line })
            }
        }
    }

    /// What `store` is opened with; asks a human only when `interactive`
    /// and the owner gave a prompt.
    pub fn store_context(&self, store: &StoreDecl, interactive: bool) -> FfiStoreContext {
        connapp_host::store_context(&store.settings, &self.data_dir, self.prompt.filter(|_| interactive))
    }

    /// Opens `store` (the declaration's, or a fleet row's; the prompt may be asked).
    pub fn open_store<'r>(
        &self,
        reg: &'r Registry,
        store: &StoreDecl,
    ) -> Result<(StoreHandle, &'r LoadedPlugin), HostError> {
        if let Some(sock) = &self.agent_socket {
            let held = crate::agent::StoreRef::of(store, &self.data_dir);
            if let Some(through) = crate::agent::AgentStore::reach(sock, held) {
                tracing::debug!(socket = %sock.display(), "the store, through the agent");
                return Ok((StoreHandle::from_store(through), reg.store_plugin(&store.kind)?));
            }
        }
        tracing::debug!(kind = %store.kind, "opening the store");
        reg.open_store(&store.kind, &self.store_context(store, true))
    }

    /// Opens the lease of `store` (`None`: it offers none) when a refresh
    /// first needs it: never at a prompt.
    pub fn lease_opener<'r>(&self, reg: &'r Registry, store: &StoreDecl) -> LeaseOpener<'r> {
        let kind = store.kind.clone();
        let ctx = self.store_context(store, false);
        Box::new(move || reg.open_lease(&kind, &ctx).map_err(|e| e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(dir: &Path) -> Environment {
        Environment {
            config_dir: dir.join("config"),
            data_dir: dir.join("data"),
            plugin_dirs: Vec::new(),
            prompt: None,
            agent_socket: None,
        }
    }

    #[test]
    fn the_declaration_is_the_given_file_else_the_config_dirs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = env(dir.path());
        assert_eq!(e.find_declaration(Some(Path::new("x.toml"))), PathBuf::from("x.toml"));
        std::fs::create_dir_all(&e.config_dir).expect("mkdir");
        std::fs::write(e.config_dir.join("connapp.toml"), "version = 1\n").expect("write");
        // (The test's working directory has no connapp.toml.)
        if !Path::new("connapp.toml").exists() {
            assert_eq!(e.find_declaration(None), e.config_dir.join("connapp.toml"));
        }
    }

    #[test]
    fn a_declaration_that_is_not_text_names_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = env(dir.path());
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, b"version = 1\n# \xff\n").expect("write");
        let reg = Registry::builtins();
        match e.check_declaration(&path, &reg) {
            Err(EnvError::NotUtf8 { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
        match e.check_declaration(&dir.path().join("missing.toml"), &reg) {
            Err(EnvError::Unreadable(r)) => assert_eq!(r.io_kind(), Some(std::io::ErrorKind::NotFound)),
            other => panic!("{other:?}"),
        }
    }
}
