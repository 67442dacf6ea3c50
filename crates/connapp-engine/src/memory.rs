//! A store that keeps everything in memory and nothing afterwards: for tests
//! of the engine and the clients (a real store plugin is proven by the
//! conformance suite) and for a front end's runs that must leave nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;

use connapp_plugin_api::zeroize::Zeroizing;
use connapp_plugin_api::{Capabilities, Expected, Record, Store, StoreDescription, StoreError};

/// A store in memory: versions, compare-and-set, deletes, like any store;
/// nothing is kept when it drops.
#[derive(Default)]
pub struct Memory(Mutex<BTreeMap<String, (Vec<u8>, u64)>>);

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
