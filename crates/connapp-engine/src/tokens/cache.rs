//! The memory tier of the token service: the tokens this process served,
//! per app of one store, for owners that live longer than one command (a
//! fleet run, an agent, a daemon, a front end's session).
//!
//! A hit touches neither the store nor the journal directory. A renewal
//! (`renew`: the API refused the token, or a refresh was asked for), a login
//! and a revoke replace or drop the entry; a failure drops it. Renewals of
//! one app are single-flight in the process: a caller that finds another
//! renewing waits for it and takes its answer from memory. What another
//! host does is seen when the token nears its expiry or an API refuses it
//! (the caller then renews) — the store stays the shared truth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use connapp_oauth::record::TokenRecord;

/// The most a proactive refresh is spread ahead of its due time, so that
/// hosts (and apps) that got their tokens at once do not all renew at once.
pub const JITTER_MAX_SECS: u64 = 30;

/// Tokens by app, and one flight per app.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, TokenRecord>>,
    flights: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let apps: Vec<String> = self
            .entries
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("TokenCache")
            .field("apps", &apps)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// The app's token if this process holds one that is fresh at `now`
    /// with `margin` seconds to spare (and not marked lost).
    pub fn get(&self, app: &str, now: u64, margin: u64) -> Option<TokenRecord> {
        let m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        m.get(app)
            .filter(|r| r.lost.is_none() && r.is_fresh(now, margin))
            .cloned()
    }

    /// Keeps `rec` as the app's token (a lost grant is dropped instead).
    pub fn put(&self, app: &str, rec: &TokenRecord) {
        let mut m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if rec.lost.is_some() {
            m.remove(app);
        } else {
            m.insert(app.to_string(), rec.clone());
        }
    }

    /// Drops the app's token (a revoke, a failure, a new consent elsewhere).
    pub fn forget(&self, app: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(app);
    }

    /// The app's flight: held while its token is renewed, so that one
    /// renewal serves every caller in the process.
    pub fn flight(&self, app: &str) -> Arc<Mutex<()>> {
        self.flights
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(app.to_string())
            .or_default()
            .clone()
    }

    /// The apps whose token a long-lived owner should renew by `now`: due
    /// at its expiry − `margin` − the app's jitter (0 to
    /// [`JITTER_MAX_SECS`], fixed per app and process), soonest first.
    pub fn due(&self, now: u64, margin: u64) -> Vec<String> {
        let m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut due: Vec<(u64, String)> = m
            .iter()
            .map(|(app, r)| (r.expires_at.saturating_sub(margin + jitter(app)), app.clone()))
            .filter(|(at, _)| *at <= now)
            .collect();
        due.sort();
        due.into_iter().map(|(_, app)| app).collect()
    }
}

/// A spread in `0..=JITTER_MAX_SECS` seconds, fixed for an app within this
/// process and different between processes (the hash's keys are random).
fn jitter(app: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
    let mut h = KEYS.get_or_init(Default::default).build_hasher();
    h.write(app.as_bytes());
    h.finish() % (JITTER_MAX_SECS + 1)
}

#[cfg(test)]
mod tests {
    use secrecy::{ExposeSecret, SecretString};

    use super::*;

    fn rec(at: &str, expires_at: u64) -> TokenRecord {
        TokenRecord {
            access_token: SecretString::from(at.to_string()),
            refresh_token: None,
            expires_at,
            obtained_at: expires_at.saturating_sub(3600),
            scopes: None,
            grant_type: "authorization_code".into(),
            api_url: None,
            granted_at: None,
            lost: None,
            user: None,
            by: None,
        }
    }

    #[test]
    fn serves_fresh_tokens_only_and_forgets_on_demand() {
        let c = TokenCache::default();
        assert!(c.get("a", 1000, 60).is_none());
        c.put("a", &rec("at-1", 5000));
        assert_eq!(c.get("a", 1000, 60).expect("hit").access_token.expose_secret(), "at-1");
        assert!(c.get("a", 4950, 60).is_none(), "within the margin of its expiry");
        c.forget("a");
        assert!(c.get("a", 1000, 60).is_none());
        let mut lost = rec("at-2", 5000);
        lost.lost = Some(connapp_oauth::record::Lost {
            at: 1000,
            reason: "invalid_grant".into(),
        });
        c.put("a", &rec("at-1", 5000));
        c.put("a", &lost);
        assert!(c.get("a", 1000, 60).is_none(), "a lost grant is never served");
    }

    #[test]
    fn renewals_fall_due_before_expiry_spread_by_a_fixed_jitter() {
        let c = TokenCache::default();
        c.put("soon", &rec("x", 1000));
        c.put("later", &rec("y", 5000));
        assert!(c.due(1000 - 60 - JITTER_MAX_SECS - 1, 60).is_empty());
        assert_eq!(c.due(1000 - 60, 60), vec!["soon".to_string()]);
        assert_eq!(c.due(5000, 60), vec!["soon".to_string(), "later".to_string()]);
        let j = jitter("soon");
        assert!(j <= JITTER_MAX_SECS);
        assert_eq!(jitter("soon"), j, "fixed per app");
    }

    #[test]
    fn one_flight_per_app() {
        let c = TokenCache::default();
        assert!(Arc::ptr_eq(&c.flight("a"), &c.flight("a")));
        assert!(!Arc::ptr_eq(&c.flight("a"), &c.flight("b")));
    }
}
