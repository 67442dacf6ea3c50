//! The provider configurations saved before each apply, newest last, so
//! `apply --rollback` can restore the one from before the last change:
//! `<data dir>/manifests/<app>/<nanoseconds>.json`, written atomically.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::Error;

/// The largest saved manifest read back (Zoom's manifests are a few KiB).
pub const MAX_SAVED_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// Where the manifests of `app` from before each apply are kept.
pub fn dir(data_dir: &Path, app: &str) -> PathBuf {
    data_dir.join("manifests").join(app)
}

/// Keeps `live`, the configuration of the provider's app `app_id`, before it is replaced.
pub fn save(data_dir: &Path, app: &str, app_id: &str, live: &Value) -> Result<PathBuf, Error> {
    let dir = dir(data_dir, app);
    std::fs::create_dir_all(&dir).map_err(|e| Error::failure(format!("cannot create {}: {e}", dir.display())))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = dir.join(format!("{nanos:024}.json"));
    let doc = json!({"app_id": app_id, "saved_at": crate::tokens::now(), "manifest": live});
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    connapp_plugin_api::atomic::write_file(&path, text.as_bytes(), 0o666)
        .map_err(|e| Error::failure(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// The newest saved manifest of `app`, if any.
pub fn newest(data_dir: &Path, app: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir(data_dir, app)).ok()?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.pop()
}

/// A saved manifest: the provider's app id and the configuration (bounded read).
pub fn read(path: &Path) -> Result<(String, Value), Error> {
    let text = connapp_plugin_api::bounded::read_text("the saved manifest", path, MAX_SAVED_MANIFEST_BYTES)
        .map_err(|e| Error::failure(e.to_string()))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| Error::failure(format!("{} is not a saved manifest: {e}", path.display())))?;
    match (doc.get("app_id").and_then(Value::as_str), doc.get("manifest")) {
        (Some(id), Some(m)) => Ok((id.to_string(), m.clone())),
        _ => Err(Error::failure(format!("{} is not a saved manifest", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_saved_manifest_reads_back_and_a_broken_one_is_named() {
        let tmp = std::env::temp_dir().join(format!("connapp-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(newest(&tmp, "dex").is_none());
        save(&tmp, "dex", "id1", &json!({"a": 1})).expect("save");
        let second = save(&tmp, "dex", "id1", &json!({"a": 2})).expect("save");
        let path = newest(&tmp, "dex").expect("one");
        assert_eq!(path, second);
        assert_eq!(read(&path).expect("read"), ("id1".to_string(), json!({"a": 2})));
        std::fs::write(&path, "{}").expect("write");
        let e = read(&path).expect_err("not a saved manifest");
        assert!(e.message.contains("is not a saved manifest"), "{e}");
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
