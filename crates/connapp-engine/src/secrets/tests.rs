use std::collections::BTreeMap;
use std::sync::Mutex;

use connapp_plugin_api::zeroize::Zeroizing;
use connapp_plugin_api::{Capabilities, Store, StoreDescription};

use super::*;

/// A store in memory: versions, compare-and-set, deletes.
#[derive(Default)]
struct Memory(Mutex<BTreeMap<String, (Vec<u8>, u64)>>);

impl Store for Memory {
    fn describe(&self) -> Result<StoreDescription, StoreError> {
        Ok(StoreDescription {
            capabilities: Capabilities {
                persistent: false,
                shared_across_hosts: false,
                native_cas: true,
                max_value_size: 0,
            },
            location: "memory".into(),
        })
    }
    fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let m = self.0.lock().map_err(|_| StoreError::conflict("poisoned"))?;
        Ok(m.get(key).map(|(v, n)| Record {
            value: Zeroizing::new(v.clone()),
            version: *n,
        }))
    }
    fn put(&self, key: &str, value: &[u8], expected: Expected) -> Result<u64, StoreError> {
        let mut m = self.0.lock().map_err(|_| StoreError::conflict("poisoned"))?;
        let current = m.get(key).map(|(_, n)| *n);
        match (expected, current) {
            (Expected::Absent, Some(_)) => return Err(StoreError::conflict("exists")),
            (Expected::Version(v), c) if c != Some(v) => return Err(StoreError::conflict("version")),
            _ => {}
        }
        let next = current.unwrap_or(0) + 1;
        m.insert(key.to_string(), (value.to_vec(), next));
        Ok(next)
    }
    fn delete(&self, key: &str, expected: Expected) -> Result<bool, StoreError> {
        let mut m = self.0.lock().map_err(|_| StoreError::conflict("poisoned"))?;
        if let Expected::Version(v) = expected
            && m.get(key).map(|(_, n)| *n) != Some(v)
        {
            return Err(StoreError::conflict("version"));
        }
        Ok(m.remove(key).is_some())
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let m = self.0.lock().map_err(|_| StoreError::conflict("poisoned"))?;
        Ok(m.keys().filter(|k| k.starts_with(prefix)).cloned().collect())
    }
}

#[test]
fn secrets_are_kept_under_the_apps_keys_by_kind() {
    let store = StoreHandle::from_store(Memory::default());
    let s = Secrets::new(&store);
    assert_eq!(
        s.put("dex", SecretKind::ClientSecret, b"s3cret", Expected::Any)
            .expect("put"),
        1
    );
    assert_eq!(
        store
            .get("apps/dex/client-secret")
            .expect("get")
            .expect("there")
            .value
            .as_slice(),
        b"s3cret"
    );
    assert!(
        s.get("other", SecretKind::ClientSecret).expect("get").is_none(),
        "apps do not share secrets"
    );
    assert!(s.put("dex", SecretKind::ClientSecret, b"x", Expected::Absent).is_err());
    assert!(s.remove("dex", SecretKind::ClientSecret).expect("rm"));
    assert!(!s.remove("dex", SecretKind::ClientSecret).expect("rm again"));
}

#[test]
fn the_inventory_names_missing_credentials_and_only_present_extras() {
    let store = StoreHandle::from_store(Memory::default());
    let s = Secrets::new(&store);
    s.put("dex", SecretKind::ClientId, b"abc", Expected::Any).expect("put");
    s.put("dex", SecretKind::AppId, b"app-1", Expected::Any).expect("put");
    let inv = s.inventory(["dex", "s2s"]).expect("inventory");
    let of = |a: &str, k: SecretKind| inv.iter().find(|e| e.app == a && e.kind == k).cloned();
    assert_eq!(
        of("dex", SecretKind::ClientId).map(|e| (e.version, e.bytes)),
        Some((Some(1), Some(3)))
    );
    assert!(
        !of("dex", SecretKind::ClientSecret)
            .expect("listed while missing")
            .present()
    );
    assert!(of("dex", SecretKind::AppId).expect("present extra").present());
    assert!(of("s2s", SecretKind::AppId).is_none(), "absent extras are left out");
    assert_eq!(inv.iter().filter(|e| e.app == "s2s").count(), SecretKind::ALL.len());
}

#[test]
fn the_token_record_is_removed_only_at_the_version_read() {
    let store = StoreHandle::from_store(Memory::default());
    let v = store.put(&token_key("dex"), b"{}", Expected::Absent).expect("put");
    let s = Secrets::new(&store);
    assert_eq!(s.token("dex").expect("token").expect("there").version, v);
    assert!(s.remove_token("dex", v + 1).is_err(), "a newer record is not removed");
    assert!(s.remove_token("dex", v).expect("remove"));
    assert!(s.token("dex").expect("token").is_none());
}
