//! An example third-party store: one file per key in a directory, a version
//! file beside each value, and an exclusive lock file around every write.
//!
//! It is deliberately plain — values are **not** encrypted — to show the
//! shape of a store plugin: implement [`Store`], describe it honestly,
//! implement [`Plugin`], call [`export_plugin!`]. Configure it with
//!
//! ```toml
//! [store]
//! kind = "dir"
//! [store.settings]
//! path = "/absolute/directory"
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use connapp_plugin_api::zeroize::Zeroizing;
use connapp_plugin_api::{
    Capabilities, ErrorCode, Expected, Plugin, PluginInfo, PluginKind, Provided, Record, SettingType, Store,
    StoreContext, StoreDescription, StoreError, StoreSetting, export_plugin,
};

const CAPS: Capabilities = Capabilities {
    persistent: true,
    shared_across_hosts: false,
    native_cas: false,
    max_value_size: 0,
};

fn io(e: std::io::Error) -> StoreError {
    StoreError::new(ErrorCode::UNAVAILABLE, e.to_string())
}

/// Keys map to file names by hex-encoding them: no path tricks possible.
fn encode(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode(name: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..name.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(name.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A directory of files.
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// Uses (and creates) `dir`.
    pub fn new(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(io)?;
        Ok(DirStore { dir: dir.to_path_buf() })
    }

    fn lock(&self) -> Result<File, StoreError> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(".lock"))
            .map_err(io)?;
        f.lock().map_err(io)?;
        Ok(f)
    }

    fn version(&self, key: &str) -> Result<u64, StoreError> {
        match fs::read_to_string(self.dir.join(format!("{}.version", encode(key)))) {
            Ok(s) => s
                .trim()
                .parse()
                .map_err(|_| StoreError::new(ErrorCode::CORRUPT, "bad version file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(e)),
        }
    }

    fn exists(&self, key: &str) -> bool {
        self.dir.join(format!("{}.value", encode(key))).exists()
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, self.dir.join(name)).map_err(io)
    }

    fn check(&self, key: &str, expected: Expected) -> Result<(), StoreError> {
        let current = if self.exists(key) {
            Some(self.version(key)?)
        } else {
            None
        };
        if expected.matches(current) {
            Ok(())
        } else {
            Err(StoreError::conflict(format!(
                "{key}: expected {expected:?}, found {current:?}"
            )))
        }
    }
}

impl Store for DirStore {
    fn describe(&self) -> Result<StoreDescription, StoreError> {
        Ok(StoreDescription {
            capabilities: CAPS,
            location: self.dir.display().to_string(),
        })
    }

    fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let _l = self.lock()?;
        match fs::read(self.dir.join(format!("{}.value", encode(key)))) {
            Ok(v) => Ok(Some(Record {
                value: Zeroizing::new(v),
                version: self.version(key)?,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    fn put(&self, key: &str, value: &[u8], expected: Expected) -> Result<u64, StoreError> {
        let _l = self.lock()?;
        self.check(key, expected)?;
        let version = self.version(key)? + 1;
        // Version first: a crash in between leaves a bumped version, never a reused one.
        self.write_file(&format!("{}.version", encode(key)), version.to_string().as_bytes())?;
        self.write_file(&format!("{}.value", encode(key)), value)?;
        Ok(version)
    }

    fn delete(&self, key: &str, expected: Expected) -> Result<bool, StoreError> {
        let _l = self.lock()?;
        self.check(key, expected)?;
        match fs::remove_file(self.dir.join(format!("{}.value", encode(key)))) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys: Vec<String> = fs::read_dir(&self.dir)
            .map_err(io)?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".value").and_then(decode))
            .filter(|k| k.starts_with(prefix))
            .collect();
        keys.sort();
        Ok(keys)
    }
}

/// The plugin: provides the store kind `dir`.
pub struct DirStorePlugin;

impl Plugin for DirStorePlugin {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "example-dir-store".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "example third-party store: a directory of plain files".into(),
            api_version: String::new(),
            provides: vec![Provided {
                kind: PluginKind::STORE,
                name: "dir".into(),
                store_capabilities: Some(CAPS),
            }],
        }
    }

    /// What `connapp check` validates offline (a misspelt key gets a
    /// did-you-mean), `connapp init --store dir` writes as comments and
    /// `connapp plugins info` lists (API 1.6).
    fn store_settings(_kind: &str) -> Option<Vec<StoreSetting>> {
        Some(vec![
            StoreSetting::new("path", SettingType::PATH, "the absolute directory the files go in").required(),
        ])
    }

    fn open_store(_name: &str, ctx: &StoreContext<'_>) -> Result<Box<dyn Store>, StoreError> {
        let path = ctx.setting("path").ok_or_else(|| {
            StoreError::new(
                ErrorCode::INVALID_INPUT,
                "store.settings.path is required for the dir store",
            )
        })?;
        Ok(Box::new(DirStore::new(Path::new(path))?))
    }
}

export_plugin!(DirStorePlugin);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use connapp_plugin_api::StoreHandle;

    use super::*;

    /// How a third party proves its store: the conformance suite, in process.
    #[test]
    fn passes_the_connapp_store_conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kv");
        let open: connapp_store_conformance::Opener =
            Arc::new(move || Ok(StoreHandle::from_store(DirStore::new(&path)?)));
        connapp_store_conformance::run(open).assert_ok();
    }

    #[test]
    fn key_encoding_round_trips() {
        for k in ["apps/dex/client-id", "ü/..", ""] {
            assert_eq!(decode(&encode(k)).as_deref(), Some(k));
        }
        assert_eq!(decode("zz"), None);
    }
}
