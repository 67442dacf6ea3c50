//! plan / apply / rollback in-process against the Zoom sandbox, through the
//! management app, on a store in memory (the e2e tests keep the CLI surface).

use crate::apply::PlanAction;
use connapp_core::SecretKind;
use connapp_engine::memory::Memory;
use connapp_engine::secrets::Secrets;
use connapp_engine::tokens::{Shared, Silent};
use connapp_host::Registry;
use connapp_plugin_api::{Expected, StoreHandle};

use crate::apply::{self, Session};

// The built-in platform and preset this test declares (inventory).
use connapp_platform_zoom as _;
use connapp_preset_servicenow as _;

const MGMT: &str = "sbxMgmtClientId0000003";
const REDIRECT: &str = "https://acme.service-now.com/oauth_redirect.do";

fn declaration(zoom: &connapp_sandbox::Sandbox, reg: &Registry, display_name: &str) -> connapp_core::Declaration {
    let (base, account) = (zoom.base_url(), zoom.account_id());
    let scopes: Vec<String> = connapp_sandbox::MARKETPLACE_SCOPES
        .iter()
        .map(|s| format!("{s:?}"))
        .collect();
    let text = format!(
        "version = 1\n[store]\nkind = \"memory\"\n\
         [apps.dex]\ndisplay_name = \"{display_name}\"\nplatform = \"zoom\"\nusage = \"admin-managed\"\n\
         redirect_url = \"{REDIRECT}\"\nallow_list = [\"{REDIRECT}\"]\npresets = [\"servicenow-dex-zoom\"]\n\
         app_id = \"sbxAppDex0000000000001\"\nmanaged_by = \"mgmt\"\n\
         [apps.dex.oauth]\noauth_base = \"{base}\"\napi_base = \"{base}\"\n\
         [apps.mgmt]\ndisplay_name = \"Marketplace management\"\nplatform = \"zoom\"\nusage = \"admin-managed\"\nscopes = [{}]\n\
         [apps.mgmt.oauth]\ngrant = \"account_credentials\"\naccount_id = \"{account}\"\noauth_base = \"{base}\"\napi_base = \"{base}\"\n",
        scopes.join(", ")
    );
    let report = connapp_engine::platform::check("t.toml", &text, reg).expect("the plugins answer");
    report
        .declaration
        .unwrap_or_else(|| panic!("invalid: {:?}", report.diagnostics))
}

#[test]
fn plan_apply_plan_again_then_roll_back() {
    let zoom = connapp_sandbox::Sandbox::start(connapp_sandbox::Seed::default()).expect("sandbox");
    let reg = Registry::builtins();
    let plugin = reg.plugin("platform-zoom").expect("linked in");
    let dir = std::env::temp_dir().join(format!("connapp-clients-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let shared = Shared::new(StoreHandle::from_store(Memory::default()), plugin, dir.clone()).expect("shared");
    let secret = zoom.app(MGMT).expect("management app").client_secret;
    for (kind, value) in [
        (SecretKind::ClientId, MGMT),
        (SecretKind::ClientSecret, secret.as_str()),
    ] {
        Secrets::new(&shared.store)
            .put("mgmt", kind, value.as_bytes(), Expected::Any)
            .expect("stored");
    }

    // A new display name: the plan names exactly that setting.
    let decl = declaration(&zoom, &reg, "DEX for Zoom (connapp)");
    let s = Session {
        reg: &reg,
        decl: &decl,
        shared: &shared,
        obs: &Silent,
    };
    let apps = apply::targets(&decl, None).expect("targets");
    assert_eq!(apps.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["dex"]);
    let mut work = apply::prepare_all(&s, &apps, false).expect("plan");
    let plan = &work[0].plan;
    assert_eq!(plan.action, PlanAction::Update, "{:?}", plan.changes);
    assert!(
        plan.changes
            .iter()
            .any(|c| c.path == "display_information.display_name"),
        "{:?}",
        plan.changes
    );
    assert!(work[0].pending());

    apply::apply(&mut work, false, &Silent).expect("apply");
    let again = apply::prepare_all(&s, &apps, false).expect("plan again");
    assert_eq!(again[0].plan.action, PlanAction::None, "{:?}", again[0].plan.changes);

    // The manifest from before the apply was kept; restoring it brings the old name back.
    let restores = apply::rollback_plan(&s, &apps, true).expect("rollback plan");
    assert_eq!(restores.len(), 1);
    assert!(
        restores[0]
            .changes
            .iter()
            .any(|c| c.path == "display_information.display_name"),
        "{:?}",
        restores[0].changes
    );
    apply::restore(&shared.store, &restores[0]).expect("restore");
    // The saved manifest did its job: it is gone from the shared store.
    assert!(
        apply::rollback_plan(&s, &apps, true).is_err(),
        "the saved manifest was kept"
    );
    let after = apply::prepare_all(&s, &apps, false).expect("plan after the rollback");
    assert_eq!(
        after[0].plan.action,
        PlanAction::Update,
        "the declaration differs again"
    );
    assert!(
        apply::rollback_plan(&s, &apps, true).is_err(),
        "the saved copy was used up"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
