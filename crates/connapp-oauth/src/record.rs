//! The token record connapp keeps in the store for each app.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::TokenSet;

/// The tokens of one app, as stored. `Debug` shows no token: `SecretString`
/// redacts itself. `Clone` keeps the tokens secret (a clone is zeroized on
/// drop like the original); the memory tier holds one.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, if the grant has one.
    pub refresh_token: Option<SecretString>,
    /// When the access token expires (unix seconds).
    pub expires_at: u64,
    /// When these tokens were obtained (unix seconds).
    pub obtained_at: u64,
    /// The scopes the provider said it granted; `None` when its answer did
    /// not say (never the declaration presented as the grant).
    pub scopes: Option<Vec<String>>,
    /// The grant type that produced them.
    pub grant_type: String,
    /// The provider's API base for this account (Zoom's `api_url`).
    pub api_url: Option<String>,
    /// When the grant itself began (the consent, or the first minted token);
    /// kept across refreshes. `None` in records written before connapp kept it.
    pub granted_at: Option<u64>,
    /// Set when the provider refused the grant for good (`invalid_grant`):
    /// the tokens are dead and only a new consent helps. Cleared by a login.
    pub lost: Option<Lost>,
    /// Whose grant it is, as the provider named the user when asked with
    /// the first token (an e-mail or an id); kept across refreshes. `None`:
    /// not a user's grant, or the provider did not say.
    pub user: Option<String>,
    /// Which host and process obtained these tokens, and when (`host pid N
    /// since T`), so that a host refused later can say who rotated them.
    pub by: Option<String>,
}

/// A grant the provider refused for good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    /// When connapp learned it (unix seconds).
    pub at: u64,
    /// What the provider said (its error code and description; never a token).
    pub reason: String,
}

#[derive(Serialize)]
struct WireOut<'a> {
    v: u32,
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    expires_at: u64,
    obtained_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<&'a [String]>,
    grant_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    granted_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lost: Option<&'a Lost>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    by: Option<&'a str>,
}

#[derive(Deserialize)]
struct WireIn {
    v: u32,
    access_token: SecretString,
    #[serde(default)]
    refresh_token: Option<SecretString>,
    expires_at: u64,
    obtained_at: u64,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    grant_type: String,
    #[serde(default)]
    api_url: Option<String>,
    #[serde(default)]
    granted_at: Option<u64>,
    #[serde(default)]
    lost: Option<Lost>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    by: Option<String>,
}

impl TokenRecord {
    /// A record from a new grant's token response: the scopes are what the
    /// answer's `scope` says, or unknown.
    pub fn from_set(set: TokenSet, grant_type: &str, now: u64) -> Self {
        TokenRecord {
            expires_at: now.saturating_add(set.expires_in.unwrap_or(3600)),
            obtained_at: now,
            scopes: set.scopes,
            grant_type: grant_type.to_string(),
            api_url: set.api_url,
            access_token: set.access_token,
            refresh_token: set.refresh_token,
            granted_at: Some(now),
            lost: None,
            user: None,
            by: None,
        }
    }

    /// Serialized for the store; zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let wire = WireOut {
            v: 1,
            access_token: self.access_token.expose_secret(),
            refresh_token: self.refresh_token.as_ref().map(|t| t.expose_secret()),
            expires_at: self.expires_at,
            obtained_at: self.obtained_at,
            scopes: self.scopes.as_deref(),
            grant_type: &self.grant_type,
            api_url: self.api_url.as_deref(),
            granted_at: self.granted_at,
            lost: self.lost.as_ref(),
            user: self.user.as_deref(),
            by: self.by.as_deref(),
        };
        let mut out = Zeroizing::new(Vec::with_capacity(1024));
        // Serializing plain strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &wire);
        out
    }

    /// Parses stored bytes. The error never contains the bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, String> {
        let w: WireIn = serde_json::from_slice(b).map_err(|e| {
            format!(
                "the stored token record is unreadable (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if w.v != 1 {
            return Err(format!("the stored token record has format {}; upgrade connapp", w.v));
        }
        Ok(TokenRecord {
            access_token: w.access_token,
            refresh_token: w.refresh_token,
            expires_at: w.expires_at,
            obtained_at: w.obtained_at,
            scopes: w.scopes,
            grant_type: w.grant_type,
            api_url: w.api_url,
            granted_at: w.granted_at,
            lost: w.lost,
            user: w.user,
            by: w.by,
        })
    }

    /// Whether the access token is still good for `margin` seconds.
    pub fn is_fresh(&self, now: u64, margin: u64) -> bool {
        self.expires_at > now.saturating_add(margin)
    }

    /// The record after a refresh answered `set` (RFC 6749 §6): a new
    /// refresh token replaces the old one, but an answer without one leaves
    /// the old one valid, so it is kept; an answer without `scope` means
    /// the scope is unchanged (§5.1), so the previous one is kept too.
    pub fn refreshed(&self, set: TokenSet, now: u64) -> Self {
        let mut new = TokenRecord::from_set(set, &self.grant_type, now);
        if new.refresh_token.is_none() {
            new.refresh_token = self.refresh_token.clone();
        }
        if new.scopes.is_none() {
            new.scopes = self.scopes.clone();
        }
        if new.api_url.is_none() {
            new.api_url = self.api_url.clone();
        }
        // The same grant goes on.
        new.granted_at = self.granted_at.or(Some(self.obtained_at));
        new.user = self.user.clone();
        new
    }

    /// The same tokens, marked as refused for good at `at` for `reason`.
    pub fn marked_lost(&self, at: u64, reason: String) -> Self {
        TokenRecord {
            access_token: self.access_token.clone(),
            refresh_token: self.refresh_token.clone(),
            expires_at: self.expires_at,
            obtained_at: self.obtained_at,
            scopes: self.scopes.clone(),
            grant_type: self.grant_type.clone(),
            api_url: self.api_url.clone(),
            granted_at: self.granted_at,
            lost: Some(Lost { at, reason }),
            user: self.user.clone(),
            by: self.by.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_redacted_debug() {
        let r = TokenRecord {
            access_token: SecretString::from("AT-CANARY".to_string()),
            refresh_token: Some(SecretString::from("RT-CANARY".to_string())),
            expires_at: 100,
            obtained_at: 10,
            scopes: Some(vec!["a".into()]),
            grant_type: "authorization_code".into(),
            api_url: Some("https://api.zoom.us".into()),
            granted_at: Some(5),
            lost: None,
            user: Some("admin@example.com".into()),
            by: Some("host-a pid 7 since 10".into()),
        };
        let b = r.to_bytes();
        let back = TokenRecord::from_bytes(&b).expect("parses");
        assert_eq!(back.user.as_deref(), Some("admin@example.com"));
        assert_eq!(back.by.as_deref(), Some("host-a pid 7 since 10"));
        let set = TokenSet {
            access_token: SecretString::from("AT-2".to_string()),
            refresh_token: None,
            expires_in: Some(3600),
            scopes: None,
            api_url: None,
        };
        assert_eq!(
            back.refreshed(set, 20).user,
            back.user,
            "a refresh keeps the grant's user"
        );
        assert_eq!(back.marked_lost(30, "gone".into()).user, back.user);
        assert_eq!(back.access_token.expose_secret(), "AT-CANARY");
        assert_eq!(
            back.refresh_token.as_ref().map(|t| t.expose_secret()),
            Some("RT-CANARY")
        );
        let dbg = format!("{back:?}");
        assert!(!dbg.contains("CANARY"), "{dbg}");
        let set = TokenSet {
            access_token: SecretString::from("AT-CANARY".to_string()),
            refresh_token: Some(SecretString::from("RT-CANARY".to_string())),
            expires_in: Some(3600),
            scopes: None,
            api_url: None,
        };
        let dbg = format!("{set:?}");
        assert!(!dbg.contains("CANARY") && dbg.contains("3600"), "{dbg}");
        let c = crate::flows::Credentials {
            client_id: "id-1".into(),
            client_secret: SecretString::from("CS-CANARY".to_string()),
        };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("CANARY") && dbg.contains("id-1"), "{dbg}");
        assert!(back.is_fresh(50, 10));
        assert!(!back.is_fresh(95, 10));
        let err = TokenRecord::from_bytes(b"{\"v\":1,\"access_token\":\"SECRET-X\"}").expect_err("incomplete");
        assert!(!err.contains("SECRET-X"));
    }
}
