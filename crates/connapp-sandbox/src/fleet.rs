//! A fleet to try connapp's fleet commands on (`connapp sandbox --fleet N`):
//! N Zoom accounts and N ServiceNow instances in one process, each on a
//! port of its own, and the files that declare them as one template times
//! an inventory: the declaration, the inventory (one row per customer) and
//! the secrets `connapp secrets import` reads (the accounts' management
//! credentials and the instances' sign-in, all sandbox values).
//!
//! Each account holds only its management app (Server-to-Server, the
//! Marketplace scopes); `connapp apply` creates each customer's DEX app.

use crate::servicenow::{Instance, SnSeed};
use crate::{Sandbox, SandboxError, Seed};

/// Most customers one sandbox fleet serves (two ports each).
pub const MAX_ROWS: usize = 2000;

/// What a customer row is called in the files: `c0`, `c1`, ...
pub fn customer(i: usize) -> String {
    format!("c{i}")
}

/// A running sandbox fleet. Dropping it stops every account and instance.
pub struct Fleet {
    /// One Zoom account per customer.
    pub zoom: Vec<Sandbox>,
    /// One ServiceNow instance per customer.
    pub servicenow: Vec<Instance>,
    /// Each account's management app: (Client ID, Client Secret).
    management: Vec<(String, String)>,
    /// The instances' sign-in connapp uses (the seeded admin).
    sign_in: (String, String),
    scopes: Vec<String>,
}

impl Fleet {
    /// `rows` accounts and instances; the instances run DEX's job every
    /// `dex_every_secs` seconds, as a real instance does on a schedule.
    pub fn start(rows: usize, dex_every_secs: u64) -> Result<Fleet, SandboxError> {
        if rows == 0 || rows > MAX_ROWS {
            return Err(SandboxError::Seed(format!(
                "a fleet has 1 to {MAX_ROWS} customers, not {rows}"
            )));
        }
        let mut management = Vec::with_capacity(rows);
        let mut scopes = Vec::new();
        let seeds: Vec<Seed> = (0..rows)
            .map(|i| {
                let mut seed = Seed {
                    account_id: format!("sbxFleetAccount{i:08}"),
                    ..Seed::default()
                };
                seed.apps
                    .retain(|a| a.scopes.iter().any(|s| s.starts_with("marketplace:")));
                if let Some(m) = seed.apps.first() {
                    management.push((m.client_id.clone(), m.client_secret.clone()));
                    scopes.clone_from(&m.scopes);
                }
                seed
            })
            .collect();
        if management.len() != rows {
            return Err(SandboxError::Seed("the default seed has no management app".into()));
        }
        let mut sn_seed = SnSeed::default();
        sn_seed.knobs.dex_every_secs = Some(dex_every_secs);
        let sign_in = sn_seed
            .users
            .iter()
            .find(|u| u.roles.iter().any(|r| r == "admin"))
            .map(|u| (u.user_name.clone(), u.password.clone()))
            .ok_or_else(|| SandboxError::Seed("the ServiceNow seed has no admin".into()))?;
        let zoom = Sandbox::start_many(seeds)?;
        let servicenow = Instance::start_many(vec![sn_seed; rows])?;
        Ok(Fleet {
            zoom,
            servicenow,
            management,
            sign_in,
            scopes,
        })
    }

    /// The declaration: the store, the inventory file and the two templates
    /// (a DEX app per customer, managed by the customer's management app).
    pub fn declaration(&self, inventory: &str) -> String {
        let scopes = self
            .scopes
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            r#"# Written by `connapp sandbox --fleet {rows}`: a DEX app and its management
# app per customer row of {inventory}, on the sandbox's Zoom accounts and
# ServiceNow instances (they live as long as that command runs).
version = 1

[store]
kind = "file"

[fleet]
inventory = "{inventory}"

[fleet.apps."dex-{{customer}}"]
display_name = "DEX for Zoom ({{customer}})"
platform = "zoom"
usage = "admin-managed"
redirect_url = "{{instance_url}}/oauth_redirect.do"
allow_list = ["{{instance_url}}/oauth_redirect.do", "http://127.0.0.1/callback"]
presets = ["servicenow-dex-zoom"]
managed_by = "mgmt-{{customer}}"

[fleet.apps."dex-{{customer}}".target]
kind = "servicenow"
instance_url = "{{instance_url}}"

[fleet.apps."dex-{{customer}}".oauth]
login_redirect = "http://127.0.0.1/callback"
oauth_base = "{{zoom_base}}"
api_base = "{{zoom_base}}"

[fleet.apps."mgmt-{{customer}}"]
display_name = "connapp marketplace management"
platform = "zoom"
usage = "admin-managed"
scopes = [{scopes}]

[fleet.apps."mgmt-{{customer}}".oauth]
grant = "account_credentials"
account_id = "{{zoom_account}}"
oauth_base = "{{zoom_base}}"
api_base = "{{zoom_base}}"
"#,
            rows = self.zoom.len(),
        )
    }

    /// The inventory: one row per customer with its instance, account and
    /// the account's address.
    pub fn inventory(&self) -> String {
        let mut csv = String::from("customer,instance_url,zoom_account,zoom_base\n");
        for (i, (z, sn)) in self.zoom.iter().zip(&self.servicenow).enumerate() {
            csv.push_str(&format!(
                "{},{},{},{}\n",
                customer(i),
                sn.base_url(),
                z.account_id(),
                z.base_url()
            ));
        }
        csv
    }

    /// The lines `connapp secrets import` reads: each management app's
    /// credentials and each instance's sign-in (sandbox values).
    pub fn secret_lines(&self) -> String {
        let mut out = String::new();
        let mut line = |app: String, secret: &str, value: &str| {
            out.push_str(&serde_json::json!({"app": app, "secret": secret, "value": value}).to_string());
            out.push('\n');
        };
        for (i, (id, secret)) in self.management.iter().enumerate() {
            let c = customer(i);
            line(format!("mgmt-{c}"), "client-id", id);
            line(format!("mgmt-{c}"), "client-secret", secret);
            line(format!("dex-{c}"), "instance-user", &self.sign_in.0);
            line(format!("dex-{c}"), "instance-password", &self.sign_in.1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_customer_has_an_account_and_an_instance_of_its_own() {
        let f = Fleet::start(3, 60).expect("fleet");
        let csv = f.inventory();
        let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 3, "{csv}");
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row[0], customer(i));
            assert_eq!(row[1], f.servicenow[i].base_url());
            assert_eq!(row[2], f.zoom[i].account_id());
            assert_eq!(row[3], f.zoom[i].base_url());
            // The account holds its management app alone, with the secret the import line carries.
            let apps = f.zoom[i].apps();
            assert_eq!(apps.len(), 1, "{:?}", apps.iter().map(|a| &a.name).collect::<Vec<_>>());
            let line = format!(
                r#"{{"app":"mgmt-{}","secret":"client-secret","value":"{}"}}"#,
                customer(i),
                apps[0].client_secret
            );
            assert!(f.secret_lines().contains(&line), "{}", f.secret_lines());
        }
        let accounts: std::collections::HashSet<_> = rows.iter().map(|r| r[2]).collect();
        assert_eq!(accounts.len(), 3);
        let decl = f.declaration("customers.csv");
        assert!(decl.contains("inventory = \"customers.csv\""), "{decl}");
        assert!(decl.contains("\"marketplace:"), "{decl}");
        assert_eq!(f.secret_lines().lines().count(), 12);
    }

    #[test]
    fn a_fleet_of_none_or_too_many_is_refused() {
        assert!(Fleet::start(0, 60).is_err());
        assert!(Fleet::start(MAX_ROWS + 1, 60).is_err());
    }
}
