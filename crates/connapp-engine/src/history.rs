//! The provider configurations saved before each apply, newest last, so
//! `apply --rollback` can restore the one from before the last change — on
//! any host: they live in the shared store beside the app id
//! (`apps/<app>/history/<when>`). Manifests an older connapp saved on this
//! machine (`<data dir>/manifests/<app>/<nanoseconds>.json`) are still read
//! when the store holds none.

use std::path::{Path, PathBuf};

use connapp_plugin_api::{Expected, StoreHandle};
use serde_json::{Value, json};

use crate::Error;

/// The largest saved manifest read back (Zoom's manifests are a few KiB).
pub const MAX_SAVED_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// Where an older connapp kept the manifests of `app` on this machine.
pub fn dir(data_dir: &Path, app: &str) -> PathBuf {
    data_dir.join("manifests").join(app)
}

/// The store prefix of `app`'s saved manifests.
pub fn key_prefix(app: &str) -> String {
    format!("apps/{app}/history/")
}

/// Where a saved manifest is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Saved {
    /// In the shared store, under this key.
    Store(String),
    /// A file an older connapp wrote on this machine.
    File(PathBuf),
}

impl std::fmt::Display for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Saved::Store(key) => write!(f, "the store's {key}"),
            Saved::File(p) => write!(f, "{}", p.display()),
        }
    }
}

fn store_err(app: &str, e: connapp_plugin_api::StoreError) -> Error {
    Error::failure(format!("{app}: the store (saved manifests): {e}"))
}

/// Keeps `live`, the configuration of the provider's app `app_id`, in the
/// shared store before it is replaced; `now` is the owner's clock, `host`
/// who saved it.
pub fn save(store: &StoreHandle, app: &str, app_id: &str, live: &Value, now: u64, host: &str) -> Result<Saved, Error> {
    // Seconds from the owner's clock, then nanoseconds for order within one.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let key = format!("{}{now:012}{nanos:09}", key_prefix(app));
    let doc = json!({"app_id": app_id, "saved_at": now, "host": host, "manifest": live});
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    store
        .put(&key, &bytes, Expected::Absent)
        .map_err(|e| store_err(app, e))?;
    Ok(Saved::Store(key))
}

/// The newest saved manifest of `app`: the store's, else a local file of an
/// older connapp.
pub fn newest(store: &StoreHandle, data_dir: &Path, app: &str) -> Result<Option<Saved>, Error> {
    let mut keys = store.list(&key_prefix(app)).map_err(|e| store_err(app, e))?;
    keys.retain(|k| k.starts_with(&key_prefix(app)));
    keys.sort();
    if let Some(k) = keys.pop() {
        return Ok(Some(Saved::Store(k)));
    }
    Ok(newest_file(data_dir, app).map(Saved::File))
}

fn newest_file(data_dir: &Path, app: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir(data_dir, app)).ok()?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.pop()
}

/// A saved manifest: the provider's app id and the configuration.
pub fn read(store: &StoreHandle, app: &str, saved: &Saved) -> Result<(String, Value), Error> {
    let doc: Value = match saved {
        Saved::Store(key) => {
            let rec = store
                .get(key)
                .map_err(|e| store_err(app, e))?
                .ok_or_else(|| Error::failure(format!("{app}: the saved manifest {key} is gone from the store")))?;
            serde_json::from_slice(&rec.value)
                .map_err(|e| Error::failure(format!("{saved} is not a saved manifest: {e}")))?
        }
        Saved::File(path) => {
            let text = connapp_plugin_api::bounded::read_text("the saved manifest", path, MAX_SAVED_MANIFEST_BYTES)
                .map_err(|e| Error::failure(e.to_string()))?;
            serde_json::from_str(&text).map_err(|e| Error::failure(format!("{saved} is not a saved manifest: {e}")))?
        }
    };
    match (doc.get("app_id").and_then(Value::as_str), doc.get("manifest")) {
        (Some(id), Some(m)) => Ok((id.to_string(), m.clone())),
        _ => Err(Error::failure(format!("{saved} is not a saved manifest"))),
    }
}

/// Removes a saved manifest that has done its job (an older one is next).
pub fn remove(store: &StoreHandle, app: &str, saved: &Saved) -> Result<(), Error> {
    match saved {
        Saved::Store(key) => store
            .delete(key, Expected::Any)
            .map(|_| ())
            .map_err(|e| store_err(app, e)),
        Saved::File(path) => {
            let _ = std::fs::remove_file(path);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_saved_manifest_reads_back_from_the_store_and_a_broken_one_is_named() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = StoreHandle::from_store(crate::memory::Memory::default());
        assert!(newest(&store, tmp.path(), "dex").expect("list").is_none());
        save(&store, "dex", "id1", &json!({"a": 1}), 100, "h1").expect("save");
        let second = save(&store, "dex", "id1", &json!({"a": 2}), 101, "h2").expect("save");
        let found = newest(&store, tmp.path(), "dex").expect("list").expect("one");
        assert_eq!(found, second);
        assert_eq!(
            read(&store, "dex", &found).expect("read"),
            ("id1".to_string(), json!({"a": 2}))
        );
        remove(&store, "dex", &found).expect("remove");
        let older = newest(&store, tmp.path(), "dex").expect("list").expect("the older one");
        assert_eq!(read(&store, "dex", &older).expect("read").1, json!({"a": 1}));
        store
            .put(
                &format!("{}999999999999000000000", key_prefix("dex")),
                b"{}",
                Expected::Any,
            )
            .expect("put");
        let broken = newest(&store, tmp.path(), "dex").expect("list").expect("one");
        let e = read(&store, "dex", &broken).expect_err("not a saved manifest");
        assert!(e.message.contains("is not a saved manifest"), "{e}");
        // An older connapp's local file is read when the store has none.
        let other = StoreHandle::from_store(crate::memory::Memory::default());
        std::fs::create_dir_all(dir(tmp.path(), "dex")).expect("mkdir");
        let file = dir(tmp.path(), "dex").join("000000000000000000000001.json");
        std::fs::write(&file, r#"{"app_id":"id0","manifest":{"a":0}}"#).expect("write");
        let local = newest(&other, tmp.path(), "dex").expect("list").expect("the file");
        assert_eq!(local, Saved::File(file));
        assert_eq!(read(&other, "dex", &local).expect("read").0, "id0");
    }
}
