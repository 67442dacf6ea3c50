//! The inventory view (`connapp list`): one row per app with what an
//! operator of many apps asks first — which customer (the fleet row), which
//! provider account and consumer instance, where its secrets live, whose
//! grant it is, when it was last refreshed and by which host, how old the
//! refresh token and the Client Secret are, and what the last `verify` said.
//! Read from the store and the run files only: nothing is called, so nothing
//! here says an app works.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use connapp_core::{App, Declaration, SecretKind, app_prefix};
use connapp_oauth::record::TokenRecord;
use serde::Serialize;

use crate::secrets::Secrets;
use crate::tokens::Shared;

/// What the last `verify` of an app said, from the run file of `verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LastVerify {
    /// When (unix seconds).
    pub at: u64,
    /// No check failed.
    pub ok: bool,
    /// Its words.
    pub detail: String,
}

/// One app in the inventory view.
#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    /// The app.
    pub app: String,
    /// The fleet row that made it (its cells by column); `null`: declared under `[apps]`.
    pub row: Option<BTreeMap<String, String>>,
    /// The provider platform.
    pub platform: String,
    /// The provider account: the app's own `account_id`, else its management app's.
    pub account: Option<String>,
    /// The consumer instance (the target's base URL).
    pub instance: Option<String>,
    /// Where its secrets are in the store (a key prefix).
    pub store_path: String,
    /// Whose grant connapp holds, as the provider named the user at login.
    pub grant_owner: Option<String>,
    /// When connapp's tokens were last obtained (a login or a refresh), unix seconds.
    pub last_refresh: Option<u64>,
    /// Which host and process obtained them.
    pub refreshed_by: Option<String>,
    /// How old the refresh token connapp holds is (it changes on every refresh).
    pub refresh_token_age_secs: Option<u64>,
    /// How old the grant is (since the consent).
    pub grant_age_secs: Option<u64>,
    /// How old the stored Client Secret is (`null`: not stored by connapp, or not dated).
    pub client_secret_age_secs: Option<u64>,
    /// The last `verify` recorded in a run file (`null`: none).
    pub last_verify: Option<LastVerify>,
    /// What could not be read.
    pub error: Option<String>,
}

impl Listed {
    /// `app` as far as the declaration says (its row's cells in `row`),
    /// nothing read from its store yet.
    fn declared(app: &App, row: Option<BTreeMap<String, String>>, account: Option<String>) -> Listed {
        Listed {
            app: app.name.clone(),
            row,
            platform: app.platform.clone(),
            account,
            instance: app.target.as_ref().map(|t| t.instance_url.clone()),
            store_path: app_prefix(&app.name),
            grant_owner: None,
            last_refresh: None,
            refreshed_by: None,
            refresh_token_age_secs: None,
            grant_age_secs: None,
            client_secret_age_secs: None,
            last_verify: None,
            error: None,
        }
    }

    /// `app` as far as the declaration says, its store unreadable (`error`).
    pub fn unreadable(decl: &Declaration, app: &App, error: String) -> Listed {
        let row = decl
            .fleet
            .as_ref()
            .and_then(|f| f.row_of(&app.name))
            .map(|r| r.values.clone());
        Listed {
            error: Some(error),
            ..Listed::declared(app, row, account_of(decl, app))
        }
    }
}

/// The provider account an app's calls count against: its own
/// `account_id`, else its management app's (whose token makes the calls).
pub fn account_of(decl: &Declaration, app: &App) -> Option<String> {
    app.oauth.account_id.clone().or_else(|| {
        let m = app.managed_by.as_deref()?;
        decl.apps.iter().find(|a| a.name == m)?.oauth.account_id.clone()
    })
}

/// [`account_of`] for every app of `decl`, by app name, in one pass (a
/// fleet has thousands of apps).
pub fn accounts(decl: &Declaration) -> HashMap<&str, Option<String>> {
    let own: HashMap<&str, Option<&String>> = decl
        .apps
        .iter()
        .map(|a| (a.name.as_str(), a.oauth.account_id.as_ref()))
        .collect();
    decl.apps
        .iter()
        .map(|a| {
            let account = a
                .oauth
                .account_id
                .clone()
                .or_else(|| own.get(a.managed_by.as_deref()?).copied().flatten().cloned());
            (a.name.as_str(), account)
        })
        .collect()
}

/// The inventory view of `apps` (from `decl`), read from `shared`'s store and
/// the newest `verify` result of each app in the run files `verify_runs`.
pub fn list(decl: &Declaration, apps: &[&App], shared: &Shared<'_>, verify_runs: &[impl AsRef<Path>]) -> Vec<Listed> {
    let now = shared.now();
    let rows: HashMap<&str, &BTreeMap<String, String>> = decl
        .fleet
        .iter()
        .flat_map(|f| {
            f.rows
                .iter()
                .flat_map(|r| r.apps.iter().map(move |a| (a.as_str(), &r.values)))
        })
        .collect();
    let mut verified: HashMap<String, LastVerify> = HashMap::new();
    for file in verify_runs {
        for (app, v) in crate::batch::last_results(file.as_ref(), "verify") {
            if verified.get(&app).is_none_or(|old| old.at <= v.at) {
                verified.insert(app, v);
            }
        }
    }
    let secrets = Secrets::new(&shared.store);
    let accounts = accounts(decl);
    apps.iter()
        .map(|app| {
            let row = rows.get(app.name.as_str()).map(|r| (*r).clone());
            let account = accounts.get(app.name.as_str()).cloned().flatten();
            let mut l = Listed {
                last_verify: verified.get(&app.name).cloned(),
                ..Listed::declared(app, row, account)
            };
            match secrets.token(&app.name) {
                Ok(Some(r)) => match TokenRecord::from_bytes(&r.value) {
                    Ok(rec) => {
                        l.grant_owner = rec.user.clone();
                        l.last_refresh = Some(rec.obtained_at);
                        l.refreshed_by = rec.by.clone();
                        l.refresh_token_age_secs =
                            rec.refresh_token.as_ref().map(|_| now.saturating_sub(rec.obtained_at));
                        l.grant_age_secs = rec.granted_at.map(|g| now.saturating_sub(g));
                    }
                    Err(e) => l.error = Some(e),
                },
                Ok(None) => {}
                Err(e) => l.error = Some(shared.store_error(e).message),
            }
            match secrets.since(&app.name, SecretKind::ClientSecret) {
                Ok(since) => l.client_secret_age_secs = since.map(|s| now.saturating_sub(s)),
                Err(e) => l.error = l.error.take().or(Some(shared.store_error(e).message)),
            }
            l
        })
        .collect()
}
